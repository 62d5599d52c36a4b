"""What user space can see about memory accesses, side by side with the ground truth
(Kame's question in the 2006 thread: can user space know enough to migrate well?).

Sources, each turned into an Estimate over a workload's region (per page: is it
accessed mostly from a remote node, which node accesses it most, how strong the
evidence is) and scored against the truth with precision and recall of "pages
accessed mostly from a remote node":

- numastat: allocation events per node (numa_hit/miss/local/other). It counts where
  pages were *allocated*, never who accesses them: its only verdict is per machine.
- query: move_pages(pid, pages, NULL) gives each page's node; with the threads' CPU
  affinity, a page on a node where no thread runs is presumed remote.
- hint: NUMA hint faults. A scanner arms (PROT_NONE) a bounded number of pages each
  scan period (change_prot_numa()); the first access to an armed page faults, which
  records the accessing node and costs the faulting thread a fault.
- damon: DAMON-style region sampling. Regions over the address space; every sampling
  interval one random page per region has its Accessed bit checked and cleared; at
  each aggregation regions with similar counts merge and regions split. It sees how
  hot memory is, not who touches it.

The truth is the workload's per-page, per-node access counts since the last reset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..constants import EINVAL, oserror
from ..mm.move_pages import query
from ..mm.state import Kernel
from ..units import fmt_ns
from .workload import Workload

SOURCES = ("truth", "numastat", "query", "hint", "damon")
OBSERVERS = ("hint", "damon")


@dataclass
class Estimate:
    source: str
    remote: np.ndarray  # bool per page: predicted "accessed mostly from a remote node"
    node: np.ndarray  # int per page: the node predicted to access it most (-1: unknown)
    strength: np.ndarray  # float per page: the evidence (accesses, faults, hotness)
    cost_ns: float  # what gathering it cost (kernel and user CPU time)
    note: str = ""


# ------------------------------------------------------------------ hint faults

class HintScanner:
    """NUMA hint faults (task_numa_work + do_numa_page): every `period_ns` the next
    `scan_pages` pages of the region are armed (4 MiB per 10 ms: simulated runs are
    short, so this is faster than Linux's 256 MB per scan period of 1 s or more); the
    first access to an armed page
    takes a hint fault that records the accessing node and disarms it. The fault
    costs the faulting thread `cost.hint_fault_ns`; arming costs the scanning task
    `cost.scan_ns_per_page` a page. `on_fault`, when set (AutoNUMA), is called with
    the faults of each tick and may migrate."""

    name = "hint"

    def __init__(self, wl: Workload, period_ns: int = 10_000_000, scan_pages: int = 1024):
        n, nn = wl.npages, wl.m.nr_node_ids
        self.period_ns = int(period_ns)
        self.scan_pages = int(min(scan_pages, n))
        self.armed = np.zeros(n, bool)
        self.cursor = 0
        self.next_scan: int | None = None
        self.faults = np.zeros((n, nn), np.uint32)  # hint faults per page per node
        self.last_node = np.full(n, -1, np.int8)  # the node of the previous fault
        self.nfaults = 0
        self.nlocal = 0
        self.scanned = 0
        self.cost_ns = 0.0
        self.on_fault = None

    def reset(self) -> None:
        self.faults[:] = 0

    def __getstate__(self) -> dict:
        # the AutoNUMA hook belongs to a running daemon, which a snapshot does not keep
        return {k: v for k, v in self.__dict__.items() if k != "on_fault"}

    def __setstate__(self, st: dict) -> None:
        self.__dict__.update(st)
        self.on_fault = None

    def _scan(self, wl: Workload, now: int) -> float:
        n = self.armed.size
        idx = (self.cursor + np.arange(self.scan_pages)) % n
        self.armed[idx] = True
        self.cursor = int((self.cursor + self.scan_pages) % n)
        self.scanned += self.scan_pages
        wl.m.vmstat_extra["numa_pte_updates"] += self.scan_pages
        self.next_scan = now + self.period_ns
        c = self.scan_pages * wl.m.cost.scan_ns_per_page
        self.cost_ns += c
        return c

    def observe(self, wl: Workload, offs, anode, pfn, pnode, now: int):
        extra = np.zeros(offs.size)
        if self.next_scan is None or now >= self.next_scan:
            # task_numa_work() runs in the task's context: the first thread pays
            if offs.size:
                extra[0] += self._scan(wl, now)
        hit = np.flatnonzero(self.armed[offs])
        if hit.size == 0:
            return extra
        pages, first = np.unique(offs[hit], return_index=True)
        ai = hit[first]  # the access that faulted: the first one to each armed page
        fnode = anode[ai]
        self.armed[pages] = False
        nn = self.faults.shape[1]
        np.add.at(self.faults.reshape(-1), pages * nn + fnode, 1)
        prev = self.last_node[pages].astype(np.int64)
        self.last_node[pages] = fnode
        local = fnode == pnode[ai]
        self.nfaults += int(pages.size)
        self.nlocal += int(local.sum())
        m = wl.m
        m.vmstat_counts["numa_hint_faults"] += int(pages.size)
        m.vmstat_counts["numa_hint_faults_local"] += int(local.sum())
        cost = m.cost.hint_fault_ns
        extra[ai] += cost
        self.cost_ns += cost * pages.size
        if self.on_fault is not None:
            self.on_fault(wl, pages, fnode, prev, pfn[ai], pnode[ai], extra, ai)
        return extra

    def estimate(self, wl: Workload, cur: np.ndarray) -> Estimate:
        fa = self.faults.astype(np.float64)
        tot = fa.sum(axis=1)
        best = fa.argmax(axis=1)
        rows = np.arange(fa.shape[0])
        here = np.where(cur >= 0, fa[rows, np.maximum(cur, 0)], 0.0)
        remote = (tot > 0) & (cur >= 0) & (best != cur) & (fa[rows, best] > here)
        node = np.where(tot > 0, best, -1)
        return Estimate("hint", remote, node, fa[rows, best], self.cost_ns,
                        f"{self.nfaults} faults, {self.scanned} pages armed")


# ------------------------------------------------------------------ DAMON

class DamonMonitor:
    """DAMON (mm/damon/vaddr.c) over one region: adaptive regions, one sampled page a
    region per sampling interval, merge and split at each aggregation interval."""

    name = "damon"

    def __init__(self, wl: Workload, sample_ns: int = 1_000_000, aggr_ns: int = 20_000_000,
                 min_regions: int = 10, max_regions: int = 200):
        n = wl.npages
        self.cost = wl.m.cost
        self.sample_ns, self.aggr_ns = int(sample_ns), int(aggr_ns)
        self.min_regions = max(1, min(int(min_regions), n))
        self.max_regions = max(self.min_regions, int(max_regions))
        self.rng = np.random.default_rng([*wl.seed, 0xDA])
        edges = (np.arange(self.min_regions + 1) * n) // self.min_regions
        self.lo = edges[:-1].astype(np.int64)
        self.hi = edges[1:].astype(np.int64)
        self.nr = np.zeros(self.lo.size, np.int64)
        self.age = np.zeros(self.lo.size, np.int64)
        self.last_nr_reg = np.zeros(self.lo.size, np.int64)
        # the last aggregation, as DAMON reports it (and DAMOS acts on it)
        self.rep_lo, self.rep_hi = self.lo.copy(), self.hi.copy()
        self.rep_nr = np.zeros(self.lo.size, np.int64)
        self.rep_age = np.zeros(self.lo.size, np.int64)
        self.accessed = np.zeros(n, bool)  # the PTE Accessed bits
        self.samples = self._pick()
        self.next_sample: int | None = None
        self.next_aggr: int | None = None
        self.aggregations = 0
        self.checks = 0
        self.cost_ns = 0.0

    @property
    def max_nr(self) -> int:
        """nr_accesses of a region accessed in every sample of an aggregation."""
        return max(1, self.aggr_ns // self.sample_ns)

    def reset(self) -> None:
        pass  # DAMON's view is always "the last aggregation"

    def __getstate__(self) -> dict:
        st = {k: v for k, v in self.__dict__.items() if k != "rng"}
        st["_rng_state"] = self.rng.bit_generator.state
        return st

    def __setstate__(self, st: dict) -> None:
        st = dict(st)
        rs = st.pop("_rng_state", None)
        self.__dict__.update(st)
        self.rng = np.random.default_rng()
        if rs is not None:
            self.rng.bit_generator.state = rs

    def _pick(self) -> np.ndarray:
        size = self.hi - self.lo
        return self.lo + (self.rng.random(size.size) * size).astype(np.int64)

    def observe(self, wl: Workload, offs, anode, pfn, pnode, now: int):
        self.accessed[offs] = True  # the MMU sets the Accessed bit on every access
        if self.next_sample is None:
            self.next_sample, self.next_aggr = now + self.sample_ns, now + self.aggr_ns
            self._prepare()
            return None
        if now >= self.next_sample:
            self._check()
            self._prepare()
            self.next_sample = now + self.sample_ns
        if now >= self.next_aggr:
            self._aggregate()
            self.next_aggr = now + self.aggr_ns
        return None  # kdamond's CPU time, not the workload's

    def _prepare(self) -> None:
        # damon_va_prepare_access_checks(): a random page a region, Accessed bit cleared
        self.samples = self._pick()
        self.accessed[self.samples] = False

    def _check(self) -> None:
        self.nr += self.accessed[self.samples]
        self.checks += self.samples.size
        self.cost_ns += self.samples.size * 2 * self.cost.damon_check_ns

    def _aggregate(self) -> None:
        thres = max(1, self.max_nr // 10)
        changed = np.abs(self.nr - self.last_nr_reg) > thres
        self.age = np.where(changed, 0, self.age + 1)
        self.rep_lo, self.rep_hi = self.lo.copy(), self.hi.copy()
        self.rep_nr, self.rep_age = self.nr.copy(), self.age.copy()
        self._merge(thres)
        if self.lo.size < self.max_regions // 2:
            self._split()
        self.last_nr_reg = self.nr.copy()
        self.nr[:] = 0
        self.aggregations += 1
        self._prepare()  # the regions changed: new sample pages

    def _merge(self, thres: int) -> None:
        """Adjacent regions whose counts differ by at most `thres` become one (count
        and age weighted by size)."""
        lo, hi, nr, age = [int(self.lo[0])], [int(self.hi[0])], [float(self.nr[0])], \
            [float(self.age[0])]
        for i in range(1, self.lo.size):
            if abs(self.nr[i] - nr[-1]) <= thres and len(lo) + (self.lo.size - i) > \
                    self.min_regions:
                a, b = hi[-1] - lo[-1], int(self.hi[i] - self.lo[i])
                nr[-1] = (nr[-1] * a + self.nr[i] * b) / (a + b)
                age[-1] = (age[-1] * a + self.age[i] * b) / (a + b)
                hi[-1] = int(self.hi[i])
            else:
                lo.append(int(self.lo[i]))
                hi.append(int(self.hi[i]))
                nr.append(float(self.nr[i]))
                age.append(float(self.age[i]))
        self.lo, self.hi = np.array(lo, np.int64), np.array(hi, np.int64)
        self.nr = np.rint(nr).astype(np.int64)
        self.age = np.rint(age).astype(np.int64)

    def _split(self) -> None:
        """Every region of two pages or more splits in two at a random point."""
        size = self.hi - self.lo
        can = size >= 2
        cut = self.lo + 1 + (self.rng.random(size.size) * np.maximum(size - 1, 1)).astype(
            np.int64)
        cut = np.where(can, np.minimum(cut, self.hi - 1), self.hi)
        lo = np.stack([self.lo, cut], axis=1).reshape(-1)
        hi = np.stack([cut, self.hi], axis=1).reshape(-1)
        keep = hi > lo
        rep = np.repeat(np.arange(self.lo.size), 2)[keep]
        self.lo, self.hi = lo[keep], hi[keep]
        self.nr, self.age = self.nr[rep], self.age[rep]

    def hotness(self) -> tuple[np.ndarray, np.ndarray]:
        """Per page: nr_accesses and age of its region at the last aggregation."""
        size = self.rep_hi - self.rep_lo
        return np.repeat(self.rep_nr, size), np.repeat(self.rep_age, size)

    def estimate(self, wl: Workload, cur: np.ndarray, hot_frac: float = 0.2) -> Estimate:
        hot, _ = self.hotness()
        threads = sorted(wl.all_thread_nodes())
        is_hot = hot >= max(1, hot_frac * self.max_nr)
        off_thread = (cur >= 0) & ~np.isin(cur, threads)
        return Estimate("damon", is_hot & off_thread, nearest_thread_node(wl.m, cur, threads),
                        hot.astype(np.float64), self.cost_ns,
                        f"{self.rep_lo.size} regions, {self.aggregations} aggregations")


# ------------------------------------------------------------------ sources

def nearest_thread_node(m: Kernel, cur: np.ndarray, threads) -> np.ndarray:
    """For each page node, the thread node nearest to it by SLIT (-1 for no page)."""
    threads = np.asarray(sorted(threads), np.int64)
    out = np.full(cur.size, -1, np.int64)
    ok = cur >= 0
    if threads.size and ok.any():
        d = m.distances[cur[ok][:, None], threads[None, :]]
        out[ok] = threads[np.argmin(d, axis=1)]
    return out


def truth_counts(wl: Workload) -> np.ndarray:
    """Per page, per node accesses since the last reset."""
    c = wl.counts.astype(np.int64)
    return c if wl.mark is None else c - wl.mark


def truth_estimate(wl: Workload, cur: np.ndarray) -> Estimate:
    c = truth_counts(wl).astype(np.float64)
    rows = np.arange(c.shape[0])
    best = c.argmax(axis=1)
    here = np.where(cur >= 0, c[rows, np.maximum(cur, 0)], 0.0)
    other = c.copy()
    other[rows[cur >= 0], cur[cur >= 0]] = -1
    remote = (cur >= 0) & (other.max(axis=1) > here)
    node = np.where(c.sum(axis=1) > 0, best, -1)
    return Estimate("truth", remote, node, c[rows, best], 0.0, "per-page, per-node counts")


def numastat_estimate(m: Kernel, wl: Workload, cur: np.ndarray) -> Estimate:
    """numastat counts allocations: the best it can say is "this machine allocates
    mostly off-node", which flags every page or none."""
    st = m.numastat_arr
    local, other = float(st[4].sum()), float(st[5].sum())
    flag = other > local
    remote = np.full(cur.size, flag) & (cur >= 0)
    cost = m.cost.syscall_ns * 2 * len(m.nodes)  # open+read of nodeN/numastat
    return Estimate("numastat", remote, np.full(cur.size, -1), np.zeros(cur.size), cost,
                    f"other_node {other / max(local + other, 1):.0%} of allocations "
                    f"(allocation events, not accesses)")


def query_estimate(m: Kernel, wl: Workload, cur: np.ndarray) -> Estimate:
    """move_pages(pid, n, pages, NULL, status): where each page is; a page on a node
    where none of the process's threads run is presumed remote."""
    addrs = wl.start + (np.arange(wl.npages, dtype=np.int64) << m.page_shift)
    st = query(m, wl.pid, addrs).array
    where = np.where(st >= 0, st, -1)
    threads = sorted(wl.all_thread_nodes())
    remote = (where >= 0) & ~np.isin(where, threads)
    cost = m.cost.syscall_ns + m.cost.query_ns_per_page * wl.npages
    return Estimate("query", remote, nearest_thread_node(m, where, threads),
                    np.zeros(where.size), cost, "page locations + thread placement")


def observer(wl: Workload, name: str):
    for o in wl.observers:
        if o.name == name:
            return o
    return None


def watch_kinds(kinds) -> list[str]:
    """The observer names of a `watch` argument ("hint,damon" or a list), checked."""
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    if not isinstance(kinds, (list, tuple)):
        raise TypeError(f"watch must be observer names, not {type(kinds).__name__}")
    for k in kinds:
        if k not in OBSERVERS:
            raise oserror(EINVAL, f"watch: {str(k)[:40]!r}: one of {', '.join(OBSERVERS)}")
    return list(kinds)


def watch(m: Kernel, wl: Workload, kinds, **kw) -> list:
    """Attach hint-fault and/or DAMON observers to a workload (once each)."""
    out = []
    for k in watch_kinds(kinds):
        o = observer(wl, k)
        if o is None:
            o = HintScanner(wl, **kw) if k == "hint" else DamonMonitor(wl, **kw)
            wl.observers.append(o)
        out.append(o)
    return out


def estimate(m: Kernel, wl: Workload, source: str, cur: np.ndarray | None = None
             ) -> Estimate | None:
    """The source's estimate for the workload's region (None: source not watching)."""
    cur = wl.page_nodes() if cur is None else cur
    if source == "truth":
        return truth_estimate(wl, cur)
    if source == "numastat":
        return numastat_estimate(m, wl, cur)
    if source == "query":
        return query_estimate(m, wl, cur)
    if source in OBSERVERS:
        o = observer(wl, source)
        return None if o is None else o.estimate(wl, cur)
    raise oserror(EINVAL, f"access source {source!r}: one of {', '.join(SOURCES)}")


def score(est: Estimate, truth: Estimate, cur: np.ndarray) -> dict:
    """Precision and recall of est.remote against truth.remote; node accuracy: of the
    true positives, how many name the node that really accesses the page most."""
    pred = est.remote & (cur >= 0)
    act = truth.remote
    tp = pred & act
    ntp, npred, nact = int(tp.sum()), int(pred.sum()), int(act.sum())
    known = tp & (est.node >= 0)
    node_ok = float((est.node[known] == truth.node[known]).mean()) if known.any() else None
    return {"source": est.source, "flagged": npred, "true_remote": nact, "hits": ntp,
            "precision": ntp / npred if npred else (1.0 if nact == 0 else 0.0),
            "recall": ntp / nact if nact else 1.0, "node_accuracy": node_ok,
            "cost_ns": est.cost_ns, "note": est.note}


def compare(m: Kernel, wl: Workload, sources=SOURCES) -> list[dict]:
    """Score every available source against the truth for one workload."""
    cur = wl.page_nodes()
    tr = truth_estimate(wl, cur)
    rows = []
    for s in sources:
        e = tr if s == "truth" else estimate(m, wl, s, cur)
        if e is None:
            rows.append({"source": s, "note": f"not watching (access PID watch {s})"})
            continue
        rows.append(score(e, tr, cur))
    return rows


def reset(m: Kernel, wl: Workload) -> None:
    """Start a new window: the truth and the observers count from now."""
    wl.mark = wl.counts.copy()
    for o in wl.observers:
        o.reset()


def compare_text(m: Kernel, wl: Workload) -> str:
    rows = compare(m, wl)
    c = truth_counts(wl)
    accessed = int((c.sum(axis=1) > 0).sum())
    head = (f"workload {wl.id} pid {wl.pid}: {wl.npages} pages, {accessed} accessed in the "
            f"window, {rows[0]['true_remote']} mostly from a remote node; locality "
            f"{wl.locality:.1%}, avg latency {wl.avg_latency_ns:.0f} ns")
    out = [head, f"{'source':<9} {'flagged':>8} {'precision':>9} {'recall':>7} "
                 f"{'node-ok':>7} {'cost':>11}  note"]
    for r in rows:
        if "flagged" not in r:
            out.append(f"{r['source']:<9} {'-':>8} {'-':>9} {'-':>7} {'-':>7} {'-':>11}  "
                       f"{r['note']}")
            continue
        na = "-" if r["node_accuracy"] is None else f"{r['node_accuracy']:.0%}"
        out.append(f"{r['source']:<9} {r['flagged']:>8} {r['precision']:>9.1%} "
                   f"{r['recall']:>7.1%} {na:>7} {fmt_ns(r['cost_ns']):>11}  {r['note']}")
    return "\n".join(out)
