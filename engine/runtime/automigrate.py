"""Automatic page migration, in user space and the kernel's two ways, as a job:
`m.start("daemon", pid, source=..., mode=...)`.

mode "user" (the seed's point 4): a daemon that every `period` reads one information
source (engine/access.py: truth, hint, damon, query), scores each page of the
process's workload regions per node with exponentially decayed evidence, and calls
move_pages(2) toward the node that accesses a page most, when
  - the evidence is strong enough (`min_accesses`, and the best node holds at least
    `threshold` of the page's accesses),
  - the best node beats the page's current node by `hysteresis` x, and the page has
    not moved within `cooldown` (hysteresis against ping-pong),
  - the rate limit allows it (`rate` MB per simulated second, a token bucket).
mode "autonuma": the kernel's NUMA balancing: hint faults, and a migration toward
  the faulting node when the previous fault on that page came from the same node,
  or none is recorded (the two-stage filter of should_numa_migrate_memory()), rate
  limited; the faulting thread pays the migration.
mode "damos": DAMON-based operation schemes for a slow (CXL-style, CPU-less) node:
  migrate_hot moves hot regions to `hot` node, migrate_cold moves regions cold for
  `cold_age` aggregations to `cold` node, within the rate quota.

The report: locality and latency before and after, pages and bytes migrated, the
cost-model time spent migrating, failures by errno, pages that ping-ponged (moved
back to a node they had left), and what reading the source cost."""

from __future__ import annotations

import errno as _errno
from collections import Counter
from dataclasses import dataclass, field, fields

import numpy as np

from ..constants import EINVAL, ESRCH, MPOL_MF_MOVE, oserror
from ..mm.cost import migrate_cost_ns
from ..mm.migrate import MigrateControl, migrate
from ..mm.move_pages import UNWRITTEN, move_pages_gen
from ..mm.state import Kernel, drive, int_arg
from ..units import fmt_ns, fmt_size
from ..vec import pair_counts
from .access import nearest_thread_node, observer, watch
from .jobs import IDLE
from .workload import HISTORY, Workload, Workloads

MODES = ("user", "autonuma", "damos")
# entries per move_pages call the daemon makes: Linux isolates a whole run of entries
# with one node, then migrates it 512 pages at a time, so workloads meet the pages
# still waiting (isolated) between those batches
CALL_PAGES = 4096
MAX_CALLS = 256  # move_pages calls per period
IDLE_LIMIT = 1000  # idle steps, clock standing still, before a lone daemon gives up
USER_SOURCES = ("truth", "hint", "damon", "query")


@dataclass
class DaemonConfig:
    source: str = "hint"
    mode: str = "user"
    period_ns: int = 10_000_000
    threshold: float = 0.4  # best node's share of the page's decayed accesses
    min_accesses: float = 1.0  # decayed accesses (or hint faults) before a page is judged
    hysteresis: float = 1.5  # best node must beat the current node by this factor
    cooldown_ns: int = 50_000_000  # a page that moved is left alone this long
    rate_mbps: float = 1024.0  # MB per simulated second
    decay: float = 0.5  # weight the past keeps at each period
    hot: int | None = None  # damos: migrate_hot target
    cold: int | None = None  # damos: migrate_cold target
    hot_min: float = 0.2  # damos/damon: hot = nr_accesses >= hot_min x max
    cold_max: float = 0.05  # damos: cold = nr_accesses <= cold_max x max
    cold_age: int = 3  # damos: aggregations a region must stay cold
    duration_ns: int | None = None  # stop after this much simulated time
    report_ticks: int = 20  # workload ticks in the before/after windows

    def validate(self, m: Kernel) -> DaemonConfig:
        self._types()
        if self.mode not in MODES:
            raise oserror(EINVAL, f"daemon: mode {self.mode!r}: one of {', '.join(MODES)}")
        if self.mode == "user" and self.source not in USER_SOURCES:
            raise oserror(EINVAL, f"daemon: source {self.source!r}: one of "
                                  f"{', '.join(USER_SOURCES)}")
        if self.mode == "damos" and self.hot is None and self.cold is None:
            raise oserror(EINVAL, "daemon: damos needs hot=NODE and/or cold=NODE")
        for n in (self.hot, self.cold):
            if n is not None and (n not in m.nodes or not m.node_has_memory(n)):
                raise oserror(EINVAL, f"daemon: node {n} has no memory")
        if self.period_ns <= 0 or self.rate_mbps <= 0 or not 0 <= self.decay < 1:
            raise oserror(EINVAL, "daemon: period and rate must be positive, decay in [0, 1)")
        return self

    def _types(self) -> None:
        """Each option of its own type (never a coerced value: period_ns=1.9 is a
        TypeError), numbers finite."""
        for name in ("source", "mode"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"daemon: {name} must be a string")
        for name in ("period_ns", "cooldown_ns", "cold_age", "report_ticks", "duration_ns",
                     "hot", "cold"):
            v = getattr(self, name)
            if v is not None or name not in ("duration_ns", "hot", "cold"):
                int_arg(v, f"daemon: {name}")
        for name in ("threshold", "min_accesses", "hysteresis", "rate_mbps", "decay",
                     "hot_min", "cold_max"):
            v = getattr(self, name)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer,
                                                                     np.floating)):
                raise TypeError(f"daemon: {name} must be a number, not {type(v).__name__}")
            if not np.isfinite(v):
                raise oserror(EINVAL, f"daemon: {name} {v} is not a finite number")


CONFIG_KEYS = tuple(f.name for f in fields(DaemonConfig))


@dataclass(eq=False)
class _PageState:
    """What the daemon remembers about one workload's pages."""

    score: np.ndarray  # (npages, nnodes) float32: decayed evidence per node
    last: np.ndarray | None  # the source's counts at the previous period
    last_move: np.ndarray  # int64 ns of each page's last move (very negative: never)
    prev_node: np.ndarray  # int8: the node a page was on before its last move
    moves: np.ndarray  # uint16: moves per page
    seen_aggr: int = 0


@dataclass(eq=False)
class Daemon:
    m: Kernel
    workloads: Workloads  # the machine's, where it finds the workloads it follows
    pid: int
    cfg: DaemonConfig
    id: int = 0
    state: str = "running"
    started_ns: int = 0
    periods: int = 0
    migrated: int = 0
    attempted: int = 0
    calls: int = 0  # move_pages calls made
    query_ns: float = 0.0  # move_pages queries made to learn page locations
    migrate_ns: int = 0
    failures: Counter = field(default_factory=Counter)
    pingpong: int = 0
    by_pair: Counter = field(default_factory=Counter)
    tokens: float = 0.0
    baselines: dict = field(default_factory=dict)  # workload id -> ticks done at start
    pages: dict = field(default_factory=dict)  # workload id -> _PageState
    seen: set = field(default_factory=set)  # workload ids met
    _stop: bool = False
    _idle: int = 0
    _idle_clock: int = -1
    _last_t: int = 0
    _next: int = 0

    def __getstate__(self) -> dict:
        st = dict(self.__dict__)
        if st["state"] == "running":
            st["state"] = "stopped"  # a snapshot keeps the report, not the job
        return st

    # ------------------------------------------------------------ bookkeeping
    def stop(self) -> None:
        """End at the next step with a report (state "done")."""
        self._stop = True

    def _workloads(self) -> list[Workload]:
        return self.workloads.running(self.pid)

    def _state(self, wl: Workload) -> _PageState:
        st = self.pages.get(wl.id)
        if st is None:
            n, nn = wl.npages, self.m.nr_node_ids
            st = _PageState(score=np.zeros((n, nn), np.float32), last=None,
                            last_move=np.full(n, -(1 << 62), np.int64),
                            prev_node=np.full(n, -1, np.int8), moves=np.zeros(n, np.uint16))
            self.pages[wl.id] = st
        return st

    def _adopt(self, wl: Workload) -> None:
        """First sight of a workload: remember where it stood, attach what the
        source needs."""
        self.seen.add(wl.id)
        self.baselines[wl.id] = wl.ticks_done
        cfg = self.cfg
        if cfg.mode == "autonuma" or (cfg.mode == "user" and cfg.source == "hint"):
            sc = watch(self.m, wl, "hint")[0]
            if cfg.mode == "autonuma":
                sc.on_fault = self._autonuma_fault
        if cfg.mode == "damos" or (cfg.mode == "user" and cfg.source == "damon"):
            watch(self.m, wl, "damon")
        self._state(wl)

    def _refill(self, now: int) -> None:
        """Token bucket in pages; it holds at most two periods of budget."""
        rate = self.cfg.rate_mbps * (1 << 20) / self.m.page_size / 1e9  # pages per ns
        cap = rate * 2 * self.cfg.period_ns
        self.tokens = min(cap, self.tokens + rate * max(0, now - self._last_t))
        self._last_t = now

    # ------------------------------------------------------------ the job
    def run_gen(self, chunk=None, job=None):
        m = self.m
        if job is not None:
            job.owner = self
        self.started_ns = self._last_t = m.clock
        self._next = m.clock
        try:
            while not self._stop:
                if self.pid not in m.procs:
                    break
                wls = self._workloads()
                for wl in wls:
                    if wl.id not in self.seen:
                        self._adopt(wl)
                if not wls and self.seen:
                    break  # the workloads it followed have ended
                if self.cfg.duration_ns is not None and \
                        m.clock - self.started_ns >= self.cfg.duration_ns:
                    break
                if not wls or m.clock < self._next or self.cfg.mode == "autonuma":
                    if self.cfg.mode == "autonuma":
                        self._refill(m.clock)
                    if self._stuck(job):
                        break
                    yield IDLE
                    continue
                self._idle = 0
                self._next = m.clock + self.cfg.period_ns
                self._refill(m.clock)
                self.periods += 1
                for wl in wls:
                    if self.cfg.mode == "damos":
                        yield from self._damos(wl, chunk)
                    else:
                        yield from self._user(wl, chunk)
                if job is not None:
                    job.done = self.migrated
                yield self.periods
        finally:
            self.state = "done"
            for wl in self._workloads():
                sc = observer(wl, "hint")
                if sc is not None and sc.on_fault == self._autonuma_fault:
                    sc.on_fault = None
        if job is not None:
            job.done = job.total = self.migrated
        return self.report()

    def _stuck(self, job) -> bool:
        """A daemon stepped synchronously (no asyncio task) that never met a workload
        while the clock stands still would wait forever: it gives up after
        IDLE_LIMIT such steps. Under the event loop it waits for one to start."""
        if self.seen or (job is not None and job._task is not None):
            return False
        if self.m.clock != self._idle_clock:
            self._idle_clock, self._idle = self.m.clock, 0
        self._idle += 1
        return self._idle > IDLE_LIMIT

    # ------------------------------------------------------------ user space
    def _evidence(self, wl: Workload, st: _PageState, cur: np.ndarray):
        """Per page: (best node, its evidence, the current node's evidence, total),
        from the configured source, decayed across periods."""
        src = self.cfg.source
        if src in ("truth", "hint"):
            raw = wl.counts if src == "truth" else observer(wl, "hint").faults
            delta = raw.astype(np.float32) - (0 if st.last is None else st.last)
            st.last = raw.astype(np.float32)
            st.score *= self.cfg.decay
            st.score += delta
            sc = st.score
            rows = np.arange(sc.shape[0])
            best = sc.argmax(axis=1)
            here = np.where(cur >= 0, sc[rows, np.maximum(cur, 0)], 0)
            return best, sc[rows, best], here, sc.sum(axis=1)
        threads = sorted(wl.all_thread_nodes())
        off = (cur >= 0) & ~np.isin(cur, threads)
        best = nearest_thread_node(self.m, cur, threads)
        if src == "damon":
            mon = observer(wl, "damon")
            hot, _ = mon.hotness()
            ev = np.where(hot >= max(1.0, self.cfg.hot_min * mon.max_nr), hot, 0.0)
        else:  # query: every page off the threads' nodes, no notion of heat
            # the daemon learns where pages are with move_pages(pid, n, pages, NULL)
            self.query_ns += self.m.cost.syscall_ns + self.m.cost.query_ns_per_page * cur.size
            ev = np.ones(cur.size)
        ev = np.where(off, ev, 0.0)
        return best, ev, np.zeros(cur.size), ev

    def _user(self, wl: Workload, chunk):
        cfg = self.cfg
        st = self._state(wl)
        cur = wl.page_nodes()
        best, ev, here, tot = self._evidence(wl, st, cur)
        now = self.m.clock
        min_ev = cfg.min_accesses if cfg.source in ("truth", "hint") else 1e-9
        cand = ((cur >= 0) & (best >= 0) & (best != cur) & (ev >= min_ev)
                & (ev >= cfg.threshold * tot) & (ev >= cfg.hysteresis * here)
                & (now - st.last_move >= cfg.cooldown_ns))
        if cfg.source in ("truth", "hint") and cand.any():
            # only where the page's accesses would get cheaper by SLIT distance
            ci = np.flatnonzero(cand)
            w = st.score[ci]
            d = self.m.distances.astype(np.float32)
            nn = w.shape[1]
            cost_here = (w * d[:nn, cur[ci]].T).sum(axis=1)
            cost_best = (w * d[:nn, best[ci]].T).sum(axis=1)
            cand[ci[cost_best >= cost_here]] = False
        idx = self._budget(np.flatnonzero(cand), (ev - here)[cand])
        if idx.size:
            yield from self._move_pages(wl, st, idx, best[idx], cur[idx], chunk)

    def _budget(self, idx: np.ndarray, priority: np.ndarray) -> np.ndarray:
        """The candidates the rate limit lets through, strongest evidence first."""
        n = int(self.tokens)
        if idx.size > n:
            keep = np.argsort(-priority, kind="stable")[:n]
            idx = np.sort(idx[keep])
        self.tokens -= idx.size
        return idx

    def _move_pages(self, wl: Workload, st: _PageState, idx, targets, cur, chunk):
        """move_pages(2) on the chosen pages, grouped by target node (Linux isolates a
        run of entries with one node, then migrates it 512 pages at a time).
        Modern Linux ends a call at the first failing batch and leaves that batch's
        statuses unwritten, so the daemon cannot see which page failed: it bisects
        the hidden pages at once, call by call (at most MAX_CALLS a period); a page
        that fails alone is the culprit, left alone for ten cooldowns."""
        order = np.lexsort((idx, targets))
        idx, targets, cur = idx[order], targets[order], cur[order]
        queue = [np.arange(i, min(i + CALL_PAGES, idx.size))
                 for i in range(0, idx.size, CALL_PAGES)]
        ncalls = 0
        while queue and ncalls < MAX_CALLS:
            sel = queue.pop(0)
            ncalls += 1
            hidden = yield from self._call(wl, st, idx[sel], targets[sel], cur[sel], chunk)
            if hidden.size and sel.size > 1:
                h = sel[hidden]
                half = (h.size + 1) // 2
                queue[0:0] = [x for x in (h[:half], h[half:]) if x.size]

    def _call(self, wl: Workload, st: _PageState, idx, targets, cur, chunk):
        """One move_pages call; returns the positions whose status stayed unwritten."""
        m = self.m
        addrs = wl.start + (idx.astype(np.int64) << m.page_shift)
        self.attempted += int(idx.size)
        self.calls += 1
        try:
            status = yield from move_pages_gen(m, self.pid, addrs, targets, MPOL_MF_MOVE,
                                               chunk=chunk)
            res = status.array
        except OSError as e:
            # ENOMEM and friends end the call; nothing is known per page
            self.failures[_errno.errorcode.get(e.errno, str(e.errno))] += int(idx.size)
            st.last_move[idx] = m.clock
            return np.empty(0, np.int64)
        moved = (res == targets) & (cur != targets)
        known = (res < 0) & (res != UNWRITTEN)
        hidden = res == UNWRITTEN
        if idx.size == 1 and status.ret:
            known, hidden = hidden | known, np.zeros(1, bool)  # alone: it is the culprit
        codes, counts = np.unique(res[known], return_counts=True)
        for code, c in zip(codes.tolist(), counts.tolist()):
            self.failures[_errno.errorcode.get(-code, "failed alone")
                          if code != UNWRITTEN else "failed alone"] += c
        if hidden.any():
            self.failures["unwritten (failed batch)"] += int(hidden.sum())
        st.last_move[idx[known]] = m.clock + 9 * self.cfg.cooldown_ns  # 10 x backoff
        self._record(wl, st, idx[moved], cur[moved], targets[moved])
        self.migrate_ns += migrate_cost_ns(m, cur[moved], targets[moved], chunk)
        return np.flatnonzero(hidden)

    def _record(self, wl: Workload, st: _PageState, pages, src, dst) -> None:
        if pages.size == 0:
            return
        self.migrated += int(pages.size)
        self.pingpong += int((st.prev_node[pages] == dst).sum())
        st.prev_node[pages] = src
        st.moves[pages] += 1
        st.last_move[pages] = self.m.clock
        for (s, d), c in pair_counts(src, dst).items():
            self.by_pair[(s, d)] += c

    # ------------------------------------------------------------ AutoNUMA
    def _autonuma_fault(self, wl: Workload, pages, fnode, prev, pfn, pnode, extra, ai):
        """task_numa_fault() -> migrate_misplaced_folio(): a page faulted from another
        node than its own moves there when the last fault came from that node too,
        and the page is not shared; the faulting thread waits for the copy."""
        m = self.m
        # the last fault's node must be this one, unless no fault was recorded yet
        want = (fnode != pnode) & ((prev == fnode) | (prev < 0)) & (m.f.mapcount[pfn] <= 1)
        sel = np.flatnonzero(want)
        if sel.size == 0:
            return
        sel = sel[: max(0, int(self.tokens))]
        self.tokens -= sel.size
        if sel.size == 0:
            self.failures["ratelimited"] += int(want.sum())
            return
        p = m.procs[wl.pid]
        self.attempted += int(sel.size)
        res = drive(migrate(m, pfn[sel], fnode[sel],
                            MigrateControl("numa_misplaced", thisnode=True, cpu=p.node))).result
        ok = res >= 0
        self._count_failures(res[~ok])
        st = self._state(wl)
        self._record(wl, st, pages[sel][ok], pnode[sel][ok], fnode[sel][ok])
        m.vmstat_counts["numa_pages_migrated"] += int(ok.sum())
        src, dst = pnode[sel][ok], fnode[sel][ok]
        cost = migrate_cost_ns(m, src, dst)
        self.migrate_ns += cost
        if src.size:
            # each faulting access waits for its page's copy (the flushes shared out)
            per = m.cost.per_page_ns(m.page_size, m.distances[src, dst].astype(np.float64))
            extra[ai[sel][ok]] += per + (cost - per.sum()) / src.size

    # ------------------------------------------------------------ DAMOS
    def _damos(self, wl: Workload, chunk):
        """migrate_hot / migrate_cold on DAMON's last aggregation (damos_migrate)."""
        cfg, m = self.cfg, self.m
        mon = observer(wl, "damon")
        st = self._state(wl)
        if mon is None or mon.aggregations <= st.seen_aggr:
            return
        st.seen_aggr = mon.aggregations
        nr, age = mon.hotness()
        cur = wl.page_nodes()
        tgt = np.full(cur.size, -1, np.int64)
        prio = np.zeros(cur.size)
        if cfg.cold is not None:
            cold = ((nr <= cfg.cold_max * mon.max_nr) & (age >= cfg.cold_age) & (cur >= 0)
                    & (cur != cfg.cold))
            tgt[cold], prio[cold] = cfg.cold, age[cold]
        if cfg.hot is not None:
            hot = (nr >= max(1.0, cfg.hot_min * mon.max_nr)) & (cur >= 0) & (cur != cfg.hot)
            # hot first: the quota goes to what is hurting now (DAMOS prioritises heat)
            tgt[hot], prio[hot] = cfg.hot, nr[hot] + 1e6
        idx = self._budget(np.flatnonzero(tgt >= 0), prio[tgt >= 0])
        if idx.size == 0:
            return
        pfn = wl.pages_pfn()[idx]
        p = m.procs[wl.pid]
        self.attempted += int(idx.size)
        out = yield from migrate(m, pfn, tgt[idx],
                                 MigrateControl("damon", thisnode=True, cpu=p.node), chunk=chunk)
        res = out.result
        ok = res >= 0
        self._count_failures(res[~ok])
        self._record(wl, st, idx[ok], cur[idx][ok], tgt[idx][ok])
        self.migrate_ns += migrate_cost_ns(m, cur[idx][ok], tgt[idx][ok], chunk)

    def _count_failures(self, codes: np.ndarray) -> None:
        vals, counts = np.unique(codes, return_counts=True)
        for code, c in zip(vals.tolist(), counts.tolist()):
            self.failures[_errno.errorcode.get(-code, str(code))] += c

    # ------------------------------------------------------------ the report
    def source_cost_ns(self) -> float:
        tot = self.query_ns
        for wl in self.workloads:
            if wl.id in self.seen:
                for name in ("hint", "damon"):
                    o = observer(wl, name)
                    if o is not None:
                        tot += o.cost_ns
        return tot

    def report(self) -> dict:
        n = self.cfg.report_ticks
        per = []
        for wl in self.workloads:
            if wl.id not in self.seen:
                continue
            b0 = self.baselines.get(wl.id, 0)
            if b0 > 0:  # the workload ran before the daemon: its last n ticks then
                before = _window_upto(wl, b0, n)
            else:  # started together: the first n ticks
                before = wl.window(n, last=False)
            after = wl.window(n, last=True)
            per.append({"workload": wl.id, "before": before, "after": after,
                        "overall_locality": wl.locality,
                        "avg_latency_ns": wl.avg_latency_ns,
                        "runtime_ns": wl.t_ns - wl.started_ns, "stalls": wl.stalls})
        return {"id": self.id, "pid": self.pid, "mode": self.cfg.mode,
                "source": self.cfg.source, "state": self.state, "periods": self.periods,
                "attempted": self.attempted, "migrated": self.migrated, "calls": self.calls,
                "bytes": self.migrated * self.m.page_size, "migrate_ns": self.migrate_ns,
                "failures": dict(self.failures), "pingpong": self.pingpong,
                "by_pair": {f"{s}->{d}": c for (s, d), c in sorted(self.by_pair.items())},
                "source_cost_ns": self.source_cost_ns(), "workloads": per}

    def report_text(self) -> str:
        r = self.report()
        what = r["mode"] if r["mode"] != "user" else f"user/{r['source']}"
        lines = [f"daemon {r['id']} pid {r['pid']} {what} {r['state']}: {r['periods']} "
                 f"periods, {r['migrated']} of {r['attempted']} pages migrated "
                 f"({fmt_size(r['bytes'])}), migration {fmt_ns(r['migrate_ns'])}, "
                 f"ping-pong {r['pingpong']}, source cost {fmt_ns(r['source_cost_ns'])}"]
        if r["by_pair"]:
            lines.append("  moved: " + ", ".join(f"{k} {v}" for k, v in r["by_pair"].items()))
        if r["failures"]:
            lines.append("  failed: " + ", ".join(f"{k} {v}" for k, v in
                                                   sorted(r["failures"].items())))
        for w in r["workloads"]:
            b, a = w["before"], w["after"]
            lines.append(f"  workload {w['workload']}: locality {b['locality']:.1%} -> "
                         f"{a['locality']:.1%}, latency {b['latency_ns']:.0f} -> "
                         f"{a['latency_ns']:.0f} ns, runtime {fmt_ns(w['runtime_ns'])}, "
                         f"stalls {w['stalls']}")
        return "\n".join(lines)


def _window_upto(wl: Workload, upto: int, n: int) -> dict:
    """Locality over ticks [upto - n, upto) of the workload's history."""
    lo = max(0, upto - n, wl.ticks_done - HISTORY)
    idx = np.arange(lo, upto) % HISTORY
    loc, rem = int(wl.h_local[idx].sum()), int(wl.h_remote[idx].sum())
    lat = float(wl.h_lat[idx].sum())
    tot = loc + rem
    return {"ticks": int(idx.size), "local": loc, "remote": rem,
            "locality": loc / tot if tot else 1.0, "latency_ns": lat / tot if tot else 0.0}


# ------------------------------------------------------------------ registry

class Daemons(list):
    """The daemons started on a machine (the last 32 are kept)."""

    def create(self, m: Kernel, workloads: Workloads, pid: int, **kw) -> Daemon:
        pid = int_arg(pid, "pid")
        if pid not in m.procs:
            raise oserror(ESRCH, f"daemon: no process {pid}")
        bad = [k for k in kw if k not in CONFIG_KEYS]
        if bad:
            raise oserror(EINVAL, f"daemon: unknown option {bad[0]!r} (options: "
                                  f"{', '.join(CONFIG_KEYS)})")
        cfg = DaemonConfig(**kw).validate(m)
        d = Daemon(m=m, workloads=workloads, pid=int(pid), cfg=cfg,
                   id=max((x.id for x in self), default=0) + 1)
        self.append(d)
        del self[:-32]
        return d
