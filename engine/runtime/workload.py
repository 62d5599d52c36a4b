"""Workloads: processes whose threads, on chosen nodes, access a region of memory in a
pattern, tick by tick, as jobs (`m.start("workload", pid, ...)`).

Each tick every thread issues `rate` sampled accesses at once (numpy, one RNG seeded
from the machine's seed and the pid, so the same seed gives the same run). Patterns:
uniform, zipf (a hot set: rank r is hit with weight 1/(r+1)^a over a fixed random
permutation of the pages; "hot" packs the ranks at the start instead), seq (a
stream), stairs and zigzag (a window that moves every `step` ticks), and any list of
phases that change pattern and threads.

Faults and writes go through the one fault path (engine/mm/fault.py): frame content,
PG_dirty and the integrity oracle, so m.check() holds at every tick. A page under migration
(isolated) still takes the access, but the thread sleeps on the migration entry: a stall.

Ground truth: per page of the region, per node, how many sampled accesses came from
CPUs of that node (uint32, npages x nnodes, only for regions with a workload). Per
workload: local and remote accesses and the latency they cost (80 ns x SLIT / 10).

Time: threads issue their accesses one after another (no memory-level parallelism), so a
tick lasts as long as its slowest thread's accesses, stalls and hint faults (a thread
that hits pages under migration waits once per tick, for half a batch). The workload
keeps its own time and pushes m.clock forward to it; when something else (a migration)
moved m.clock ahead, the workload runs "in parallel" until it catches up."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from ..constants import (
    EINVAL,
    ENOMEM,
    ESRCH,
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
    PG_isolated,
    oserror,
)
from ..mm.fault import fault, touch
from ..mm.memory import range_holes
from ..mm.mm_types import VMA, Process
from ..mm.mmap import do_mmap, do_munmap
from ..mm.state import Kernel, int_arg
from ..nodemask import parse_nodes
from ..units import fmt_ns, fmt_size, parse_size
from ..vec import distinct, unique

PATTERNS = ("uniform", "zipf", "seq", "stairs", "zigzag")
ALIASES = {"hot": "zipf", "stream": "seq", "sequential": "seq", "random": "uniform"}
HISTORY = 8192  # ticks kept per workload (a ring)
# sampled accesses a tick (rate x threads): each costs ~100 bytes of working arrays
# while the tick runs, so this bounds a tick to about 400 MiB
MAX_TICK_ACCESSES = 1 << 22


@dataclass(frozen=True)
class Phase:
    """One phase of a workload: what its threads do for `ticks` ticks."""

    pattern: str = "uniform"
    ticks: int = 100
    threads: tuple[int, ...] = ()  # the node of each thread; () = one on the process's node
    rate: int = 2048  # sampled accesses per thread per tick
    write: float = 0.25  # fraction of accesses that write
    zipf: float = 1.1  # zipf exponent (pattern zipf)
    width: float = 0.125  # window of stairs/zigzag, a fraction of the thread's domain
    step: int = 10  # ticks per stair
    shard: bool | None = None  # each thread its own slice (default: only for seq)
    scatter: bool | None = None  # zipf: hot pages spread over the domain (default), or
    # packed at its start (pattern "hot": a contiguous hot set that DAMON regions can see)

    def validate(self, m: Kernel) -> Phase:
        scatter = self.scatter
        if scatter is None:
            scatter = self.pattern != "hot"
        pat = ALIASES.get(self.pattern, self.pattern)
        if pat not in PATTERNS:
            raise oserror(EINVAL, f"workload: pattern {self.pattern!r}: one of "
                                  f"{', '.join(PATTERNS)} (or hot, stream)")
        for n in self.threads:
            if n not in m.nodes or not m.node(n).cpus:
                raise oserror(EINVAL, f"workload: thread node {n} has no CPUs")
        if self.ticks < 1 or self.rate < 1 or self.step < 1:
            raise oserror(EINVAL, "workload: ticks, rate and step must be at least 1")
        n = self.rate * max(1, len(self.threads))
        if n > MAX_TICK_ACCESSES:
            raise oserror(EINVAL, f"workload: rate {self.rate} x {max(1, len(self.threads))} "
                                  f"thread(s) is {n} accesses a tick, more than "
                                  f"{MAX_TICK_ACCESSES} (the tick's arrays would not fit)")
        if not 0 <= self.write <= 1 or not 0 < self.width <= 1 or self.zipf <= 0:
            raise oserror(EINVAL, "workload: write in 0..1, width in (0, 1], zipf > 0")
        shard = (pat == "seq") if self.shard is None else bool(self.shard)
        return replace(self, pattern=pat, shard=shard, scatter=bool(scatter),
                       threads=tuple(int(n) for n in self.threads))


PHASE_KEYS = tuple(f.name for f in fields(Phase))


@dataclass(eq=False)
class Workload:
    m: Kernel
    pid: int
    start: int  # first address of the region
    npages: int
    phases: list[Phase]
    seed: tuple
    loop: bool = False
    id: int = 0
    # ground truth and per-workload statistics
    counts: np.ndarray = None  # (npages, nnodes) uint32: sampled accesses per node
    mark: np.ndarray | None = None  # counts at the last access-statistics reset
    local: int = 0
    remote: int = 0
    lat_ns: float = 0.0  # sum of the sampled accesses' latencies
    stalls: int = 0
    stall_ns: float = 0.0
    extra_ns: float = 0.0  # hint faults and other overhead charged to the threads
    writes: int = 0
    ticks_done: int = 0
    t_ns: int = 0  # the workload's own time
    started_ns: int = 0
    state: str = "running"  # running | done | stopped | exited | failed
    observers: list = field(default_factory=list)
    job: object = None
    # per-tick history (ring): time, local, remote, latency sum
    h_t: np.ndarray = None
    h_local: np.ndarray = None
    h_remote: np.ndarray = None
    h_lat: np.ndarray = None
    _stop: bool = False
    _phase_i: int = 0
    _phase_tick: int = 0
    _cursor: np.ndarray | None = None

    def __post_init__(self) -> None:
        nn = self.m.nr_node_ids
        self.counts = np.zeros((self.npages, nn), np.uint32)
        self.rng = np.random.default_rng(list(self.seed))
        self.h_t = np.zeros(HISTORY, np.int64)
        self.h_local = np.zeros(HISTORY, np.int64)
        self.h_remote = np.zeros(HISTORY, np.int64)
        self.h_lat = np.zeros(HISTORY, np.float64)
        self._cdf_cache: dict = {}
        self._perm_cache: dict = {}

    def __getstate__(self) -> dict:
        """For snapshots: the RNG as its state, no caches, no job; a saved workload
        is no longer running (its job does not survive the program)."""
        st = {k: v for k, v in self.__dict__.items()
              if k not in ("rng", "_cdf_cache", "_perm_cache", "job")}
        st["_rng_state"] = self.rng.bit_generator.state
        if st["state"] == "running":
            st["state"] = "stopped"
        return st

    def __setstate__(self, st: dict) -> None:
        st = dict(st)
        rs = st.pop("_rng_state", None)
        self.__dict__.update(st)
        self.rng = np.random.default_rng(list(self.seed))
        if rs is not None:
            self.rng.bit_generator.state = rs
        self._cdf_cache, self._perm_cache, self.job = {}, {}, None

    # -------------------------------------------------------------- description
    @property
    def end(self) -> int:
        return self.start + (self.npages << self.m.page_shift)

    @property
    def phase(self) -> Phase:
        return self.phases[self._phase_i]

    @property
    def total_ticks(self) -> int:
        return sum(p.ticks for p in self.phases)

    @property
    def running(self) -> bool:
        return self.state == "running"

    def thread_nodes(self, ph: Phase | None = None) -> np.ndarray:
        ph = self.phase if ph is None else ph
        if ph.threads:
            return np.asarray(ph.threads, np.int64)
        p = self.m.procs.get(self.pid)
        return np.asarray([p.node if p is not None else 0], np.int64)

    def all_thread_nodes(self) -> set[int]:
        return {int(n) for ph in self.phases for n in self.thread_nodes(ph)}

    @property
    def locality(self) -> float:
        n = self.local + self.remote
        return self.local / n if n else 1.0

    @property
    def avg_latency_ns(self) -> float:
        n = self.local + self.remote
        return self.lat_ns / n if n else 0.0

    def window(self, ticks: int, *, last: bool = True, since_ns: int | None = None
               ) -> dict:
        """Locality and latency over the last `ticks` ticks (or the first ones after
        since_ns with last=False)."""
        n = min(self.ticks_done, HISTORY)
        idx = (self.ticks_done - n + np.arange(n)) % HISTORY
        t = self.h_t[idx]
        sel = np.ones(n, bool) if since_ns is None else t >= since_ns
        pos = np.flatnonzero(sel)
        pos = pos[-ticks:] if last else pos[:ticks]
        loc = int(self.h_local[idx[pos]].sum())
        rem = int(self.h_remote[idx[pos]].sum())
        lat = float(self.h_lat[idx[pos]].sum())
        tot = loc + rem
        return {"ticks": int(pos.size), "local": loc, "remote": rem,
                "locality": loc / tot if tot else 1.0, "latency_ns": lat / tot if tot else 0.0}

    def summary(self) -> dict:
        return {"id": self.id, "pid": self.pid, "state": self.state,
                "ticks": self.ticks_done, "accesses": self.local + self.remote,
                "local": self.local, "remote": self.remote,
                "locality": round(self.locality, 4),
                "avg_latency_ns": round(self.avg_latency_ns, 1),
                "stalls": self.stalls, "writes": self.writes,
                "runtime_ns": self.t_ns - self.started_ns,
                "overhead_ns": round(self.extra_ns + self.stall_ns)}

    def describe(self) -> str:
        ph = self.phase
        thr = ",".join(str(int(n)) for n in self.thread_nodes())
        return (f"workload {self.id} pid {self.pid} {self.state} {ph.pattern} threads@{thr} "
                f"[{self.start:#x}+{fmt_size(self.npages * self.m.page_size)}] "
                f"tick {self.ticks_done}/{'loop' if self.loop else self.total_ticks} "
                f"local {self.locality:.1%} avg {self.avg_latency_ns:.0f} ns "
                f"stalls {self.stalls} runtime {fmt_ns(self.t_ns - self.started_ns)}")

    def stop(self) -> None:
        """End at the next tick boundary (state "stopped")."""
        self._stop = True

    # -------------------------------------------------------------- the region
    def segments(self, p: Process) -> list[tuple[VMA, int, int]]:
        """(vma, first region offset, last+1) for each VMA over the region; VMAs
        split and merge (mbind, mlock), so this is looked up every tick."""
        out = []
        shift = self.m.page_shift
        for v in p.vmas:
            if v.end <= self.start or v.start >= self.end:
                continue
            r0 = (max(v.start, self.start) - self.start) >> shift
            r1 = (min(v.end, self.end) - self.start) >> shift
            out.append((v, r0, r1))
        return out

    def lookup(self, segs, offs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per region offset: the PFN mapped there (-1 none, or no VMA) and the index
        of its segment (-1 outside every VMA)."""
        pfn = np.full(offs.size, -1, np.int64)
        seg = np.full(offs.size, -1, np.int64)
        for i, (v, r0, r1) in enumerate(segs):
            sel = (offs >= r0) & (offs < r1)
            if sel.any():
                vo = offs[sel] - r0 + ((self.start + (r0 << self.m.page_shift) - v.start)
                                       >> self.m.page_shift)
                pfn[sel] = v.ptes(vo)
                seg[sel] = i
        return pfn, seg

    def pages_pfn(self) -> np.ndarray:
        """PFN of every page of the region (-1 where none)."""
        p = self.m.procs.get(self.pid)
        if p is None:
            return np.full(self.npages, -1, np.int64)
        pfn, _ = self.lookup(self.segments(p), np.arange(self.npages))
        return pfn

    def page_nodes(self) -> np.ndarray:
        """Node of every page of the region (-1 where none, or the zero page)."""
        pfn = self.pages_pfn()
        ok = (pfn >= 0) & (pfn != self.m.zero_pfn)
        out = np.full(self.npages, -1, np.int64)
        out[ok] = self.m.node_of(pfn[ok])
        return out

    def _vma_offs(self, v: VMA, r0: int, offs: np.ndarray) -> np.ndarray:
        return offs - r0 + ((self.start + (r0 << self.m.page_shift) - v.start)
                            >> self.m.page_shift)

    # -------------------------------------------------------------- sampling
    def _domains(self, ph: Phase, T: int) -> tuple[np.ndarray, np.ndarray]:
        n = self.npages
        if ph.shard and T > 1:
            lo = (np.arange(T) * n) // T
            hi = (np.arange(1, T + 1) * n) // T
            return lo.astype(np.int64), np.maximum(hi - lo, 1).astype(np.int64)
        return np.zeros(T, np.int64), np.full(T, n, np.int64)

    def _cdf(self, size: int, a: float) -> np.ndarray:
        key = (size, a)
        c = self._cdf_cache.get(key)
        if c is None:
            w = 1.0 / np.power(np.arange(1, size + 1, dtype=np.float64), a)
            c = np.cumsum(w)
            c /= c[-1]
            self._cdf_cache = {key: c}  # one at a time: phases rarely share sizes
        return c

    def _perm(self, size: int) -> np.ndarray:
        # the hot set is fixed for the workload: its own RNG, not the sampling stream
        pm = self._perm_cache.get(size)
        if pm is None:
            pm = np.random.default_rng([*self.seed, size]).permutation(size)
            self._perm_cache[size] = pm
        return pm

    def sample(self, ph: Phase, T: int) -> np.ndarray:
        """(T, rate) region offsets: every thread's accesses this tick."""
        rng = self.rng
        R = ph.rate
        lo, size = self._domains(ph, T)
        if ph.pattern == "uniform":
            return lo[:, None] + (rng.random((T, R)) * size[:, None]).astype(np.int64)
        if ph.pattern == "zipf":
            s = int(size.min())
            ranks = np.minimum(np.searchsorted(self._cdf(s, ph.zipf), rng.random((T, R))),
                               s - 1)
            return lo[:, None] + (self._perm(s)[ranks] if ph.scatter else ranks)
        if ph.pattern == "seq":
            if self._cursor is None or self._cursor.size != T:
                self._cursor = np.zeros(T, np.int64)
            offs = lo[:, None] + (self._cursor[:, None] + np.arange(R)) % size[:, None]
            self._cursor = (self._cursor + R) % size
            return offs
        # stairs / zigzag: a window of `width` moving by one window every `step` ticks
        w = np.maximum((size * ph.width).astype(np.int64), 1)
        nst = -(-size // w)
        k = self._phase_tick // ph.step
        if ph.pattern == "stairs":
            j = k % nst
        else:
            period = np.maximum(2 * (nst - 1), 1)
            j = k % period
            j = np.where(j < nst, j, period - j)
        base = j * w
        x = (rng.random((T, R)) * w[:, None]).astype(np.int64)
        return lo[:, None] + (base[:, None] + x) % size[:, None]

    # -------------------------------------------------------------- one tick
    def tick(self) -> bool:
        """One tick of accesses; False when the workload has ended."""
        m = self.m
        p = m.procs.get(self.pid)
        if p is None:
            self.state = "exited"
            return False
        if self._stop:
            self.state = "stopped"
            return False
        ph = self.phase
        nodes = self.thread_nodes(ph)
        offs, tid, pfn = self._resolve(p, ph, nodes)
        wr = self.rng.random(offs.size) < ph.write
        now = max(self.t_ns, m.clock) if self.ticks_done == 0 else self.t_ns
        if offs.size:
            dur = self._account(p, offs, tid, nodes, pfn, wr, now)
        else:  # nothing mapped to touch: the threads still spin a little
            dur = 1000
            self._history(now + dur, 0, 0, 0.0)
        self.t_ns = now + dur
        m.time.advance_to(self.t_ns)
        self.ticks_done += 1
        self._advance_phase()
        return self.state == "running"

    def _resolve(self, p: Process, ph: Phase, nodes: np.ndarray):
        """Sample the tick's accesses and find their frames, faulting in what is not
        there yet. Returns (region offsets, thread index, PFN) of the accesses that
        reach a frame (pages unmapped under the workload are skipped)."""
        m = self.m
        T = nodes.size
        # threads interleave in sample order: access j of every thread, then j+1
        offs = self.sample(ph, T).T.reshape(-1)
        tid = np.tile(np.arange(T), ph.rate)
        segs = self.segments(p)
        pfn, seg = self.lookup(segs, offs)
        need = (seg >= 0) & ((pfn < 0) | (pfn == m.zero_pfn))
        if need.any():
            self._fault(p, segs, offs[need], nodes[tid[need]])
            pfn, seg = self.lookup(self.segments(p), offs)
        ok = (pfn >= 0) & (pfn != m.zero_pfn)
        return offs[ok], tid[ok], pfn[ok]

    def _account(self, p: Process, offs, tid, nodes, pfn, wr, now: int) -> int:
        """Ground truth, latency, stalls, observers and writes of one tick; returns
        the tick's duration (its slowest thread)."""
        m = self.m
        T = nodes.size
        anode = nodes[tid]
        pnode = m.node_of(pfn)
        nn = self.counts.shape[1]
        np.add.at(self.counts.reshape(-1), offs * nn + anode, 1)
        lat = m.cost.access_ns(m.distances[anode, pnode])
        iso = (m.f.flags[pfn] & PG_isolated) != 0
        nst = int(iso.sum())
        if nst:
            # a task that touches a page under migration sleeps on the migration entry
            self.stalls += nst
            p.stalls += nst
            m.vmstat_extra["migration_entry_waits"] += nst
        extra = np.zeros(offs.size)
        for obs in list(self.observers):
            e = obs.observe(self, offs, anode, pfn, pnode, now)
            if e is not None:
                extra += e
        self._write(p, offs[wr])
        # a thread that hit a migration entry sleeps until that batch is done; by then
        # the migration has moved on, so it waits once per tick, not once per page
        stall = (np.bincount(tid[iso], minlength=T) > 0) * m.cost.stall_ns()
        per_thread = np.bincount(tid, weights=lat + extra, minlength=T) + stall
        dur = int(max(per_thread.max(), 1.0))
        nloc = int((anode == pnode).sum())
        self.local += nloc
        self.remote += offs.size - nloc
        self.lat_ns += float(lat.sum())
        self.stall_ns += float(stall.sum())
        self.extra_ns += float(extra.sum())
        self._history(now + dur, nloc, offs.size - nloc, float(lat.sum()))
        return dur

    def _history(self, t: int, loc: int, rem: int, lat: float) -> None:
        i = self.ticks_done % HISTORY
        self.h_t[i], self.h_local[i], self.h_remote[i], self.h_lat[i] = t, loc, rem, lat

    def _advance_phase(self) -> None:
        self._phase_tick += 1
        if self._phase_tick < self.phase.ticks:
            return
        self._phase_tick = 0
        self._cursor = None
        if self._phase_i + 1 < len(self.phases):
            self._phase_i += 1
        elif self.loop:
            self._phase_i = 0
        else:
            self.state = "done"

    def _fault(self, p: Process, segs, offs: np.ndarray, anode: np.ndarray) -> None:
        """Fault in missing pages (or the zero page) as writes from the first thread
        that touches each: first-touch placement."""
        u, first = np.unique(offs, return_index=True)
        un = anode[first]
        for node in distinct(un):
            mine = u[un == node]
            for v, r0, r1 in segs:
                sel = mine[(mine >= r0) & (mine < r1)]
                if sel.size:
                    fault(self.m, p, v, self._vma_offs(v, r0, sel), write=True,
                          cpu=int(node))

    def _write(self, p: Process, offs: np.ndarray) -> None:
        """Write the pages at these region offsets through the fault path (a present
        page just takes the write; copy-on-write and driver regions as a fault does)."""
        if offs.size == 0:
            return
        u = unique(offs)
        self.writes += int(u.size)
        for v, r0, r1 in self.segments(p):
            sel = u[(u >= r0) & (u < r1)]
            if sel.size:
                fault(self.m, p, v, self._vma_offs(v, r0, sel), write=True)

    # -------------------------------------------------------------- the job
    def run_gen(self, job=None):
        """The job: one tick per step. Returns the summary."""
        if job is not None:
            job.total = 0 if self.loop else self.total_ticks
            job.owner = self
        self.job = job
        try:
            while self.tick():
                if job is not None:
                    job.done = self.ticks_done
                yield self.ticks_done
        except OSError:
            self.state = "failed"
            raise
        finally:
            if self.state == "running":
                self.state = "stopped"  # cancelled or closed
        if job is not None:
            job.done = self.ticks_done
        return self.summary()


# ------------------------------------------------------------------ registry, creation

class Workloads(list):
    """Every workload started on a machine (the last 32 finished ones are kept)."""

    def running(self, pid: int | None = None) -> list[Workload]:
        return [w for w in self if w.running and (pid is None or w.pid == pid)]

    def add(self, wl: Workload) -> None:
        wl.id = max((w.id for w in self), default=0) + 1
        self.append(wl)
        done = [w for w in self if not w.running]
        for w in done[:-32]:
            self.remove(w)


def process_stats(m: Kernel, workloads: Workloads, pid: int) -> dict:
    """Per process, over all its workloads: local and remote accesses, the average
    latency they cost by SLIT, and stalls on pages under migration."""
    ws = [w for w in workloads if w.pid == pid]
    loc = sum(w.local for w in ws)
    rem = sum(w.remote for w in ws)
    lat = sum(w.lat_ns for w in ws)
    p = m.procs.get(pid)
    return {"pid": pid, "workloads": len(ws), "local": loc, "remote": rem,
            "locality": loc / (loc + rem) if loc + rem else 1.0,
            "avg_latency_ns": lat / (loc + rem) if loc + rem else 0.0,
            "stalls": p.stalls if p is not None else sum(w.stalls for w in ws)}


def make_phases(m: Kernel, phases=None, **kw) -> list[Phase]:
    """Phases from a list of dicts (later phases inherit unset keys from the one
    before), or one phase from keyword arguments."""
    bad = [k for k in kw if k not in PHASE_KEYS]
    if bad:
        raise oserror(EINVAL, f"workload: unknown option {bad[0]!r} (options: "
                              f"{', '.join(PHASE_KEYS)})")
    if phases is not None and not isinstance(phases, (list, tuple)):
        raise TypeError(f"phases must be a list of tables, not {type(phases).__name__}")
    raw = list(phases) if phases else [{}]
    out: list[Phase] = []
    prev = Phase(**{k: _coerce(k, v) for k, v in kw.items()})
    for i, d in enumerate(raw):
        if not isinstance(d, dict):
            raise TypeError(f"phase {i} must be a table, not {type(d).__name__}")
        d = dict(d)
        bad = [k for k in d if k not in PHASE_KEYS]
        if bad:
            raise oserror(EINVAL, f"workload: phase {i}: unknown option {bad[0]!r}")
        ph = replace(prev, **{k: _coerce(k, v) for k, v in d.items()})
        out.append(ph.validate(m))
        prev = ph
    return out


def _coerce(k: str, v):
    """An option's value, of the option's type: never a coerced one (rate=1.9 is a
    TypeError, not 1)."""
    if k == "threads":
        if isinstance(v, str):
            # "1,1,2" = three threads; a range "0-3" = one thread on each node
            if len(v) > 1 << 16:
                raise oserror(EINVAL, "workload: threads: too long a list")
            return tuple(n for part in v.split(",") if part.strip()
                         for n in parse_nodes(part.strip(), "threads"))
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return (int_arg(v, "threads"),)
        if not isinstance(v, (list, tuple)):
            raise TypeError(f"threads must be nodes (a list or \"1,1,2\"), not "
                            f"{type(v).__name__}")
        if len(v) > MAX_TICK_ACCESSES:
            raise oserror(EINVAL, f"workload: {len(v)} threads are too many")
        return tuple(int_arg(n, "threads") for n in v)
    if k in ("ticks", "rate", "step"):
        return int_arg(v, k)
    if k in ("write", "zipf", "width"):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer,
                                                                 np.floating)):
            raise TypeError(f"{k} must be a number, not {type(v).__name__}")
        if not np.isfinite(v):
            raise oserror(EINVAL, f"workload: {k} {v} is not a finite number")
        return float(v)
    if k in ("shard", "scatter"):
        if v is not None and not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{k} must be True, False or None, not {type(v).__name__}")
        return None if v is None else bool(v)
    if k == "pattern" and not isinstance(v, str):
        raise TypeError(f"pattern must be a string, not {type(v).__name__}")
    return v


def create(m: Kernel, workloads: Workloads, pid: int, addr: int | None = None,
           length: int | None = None, *, size: int | None = None, phases=None,
           loop: bool = False, init="process", seed=None, **kw) -> Workload:
    """Validate, map (when no range is given) and populate the region; the Workload
    is registered but has not ticked yet. Every argument is checked before anything
    is mapped, and a failure after that unmaps what this call mapped: a failed
    workload leaves nothing behind."""
    p, ph, loop, seed, node = check_options(m, pid, phases=phases, loop=loop, init=init,
                                            seed=seed, **kw)
    pid = p.pid
    if addr is None:
        size = 64 << 20 if size is None else int_arg(size, "size")
        _region_fits(m, m.page_align(size) >> m.page_shift)
        addr = do_mmap(m, p, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       None, None)
        length = m.page_align(size)
        mapped = True
    else:
        addr = int_arg(addr, "addr") & ~(m.page_size - 1)
        length = m.page_align(m.page_size if length is None else int_arg(length, "length"))
        if length <= 0:
            raise oserror(EINVAL, "workload: length must be positive")
        if range_holes(p, addr, addr + length):
            raise oserror(EINVAL, f"workload: [{addr:#x}, {addr + length:#x}) is not "
                                  f"fully mapped")
        _region_fits(m, length >> m.page_shift)
        mapped = False
    npages = length >> m.page_shift
    k = sum(1 for w in workloads if w.pid == pid)
    sd = (int(m.seed), pid, k) if seed is None else (seed,)
    try:
        wl = Workload(m=m, pid=pid, start=addr, npages=npages, phases=ph, seed=sd,
                      loop=bool(loop))
        if node is not None:
            # the process initialises its memory first: first touch puts it on one node
            touch(m, p, addr, length, write=True, node=node)
    except BaseException:
        if mapped:
            do_munmap(m, p, addr, length)
        raise
    wl.t_ns = wl.started_ns = m.clock
    workloads.add(wl)
    return wl


def check_options(m: Kernel, pid: int, *, phases=None, loop: bool = False, init="process",
                  seed=None, **kw) -> tuple:
    """create()'s checks of everything but the region, changing nothing: (process,
    phases, loop, seed, the node that initialises the memory or None). Raises
    TypeError for a wrong type, OSError for a wrong value."""
    pid = int_arg(pid, "pid")
    p = m.procs.get(pid)
    if p is None:
        raise oserror(ESRCH, f"workload: no process {pid}")
    if not p.has_mm:
        raise oserror(EINVAL, f"workload: pid {pid} is a kernel thread")
    ph = make_phases(m, phases, **kw)
    if not isinstance(loop, (bool, np.bool_)):
        raise TypeError(f"loop must be True or False, not {type(loop).__name__}")
    seed = None if seed is None else int_arg(seed, "seed")
    node = None  # the node the process initialises its memory from (first touch)
    if isinstance(init, str) and init in ("process", "none"):
        node = p.node if init == "process" else None
    elif init is not None and init is not False:
        node = int_arg(init, "init")
        if node not in m.nodes:
            raise oserror(EINVAL, f"workload: init node {node} does not exist")
    return p, ph, bool(loop), seed, node


def _region_fits(m: Kernel, npages: int) -> None:
    """A region is at most the machine's memory: its ground truth (npages x nodes)."""
    if npages > m.nr_frames:
        raise oserror(ENOMEM, f"workload: a region of {npages} pages is larger than the "
                              f"machine's {m.nr_frames} frames")


def described(m: Kernel) -> list[dict]:
    """The `[[workloads]]` of the machine's description: tables of `pid` and the
    options of m.start("workload", ...) (size "64M", pattern, threads "1,2", ticks,
    phases = [{...}], ...), each checked as create() checks it (the description is
    checked when it is built). Raises EINVAL naming the table."""
    specs = (m.description or {}).get("workloads", []) or []
    out = []
    for i, d in enumerate(specs):
        try:
            out.append(described_one(m, d))
        except (TypeError, ValueError, OSError) as e:
            raise oserror(EINVAL, f"workloads[{i}]: {error_text(e)}") from None
    return out


def described_one(m: Kernel, d) -> dict:
    """One `[[workloads]]` table as m.start("workload", ...) keywords, checked as
    create() checks them (nothing is mapped); raises TypeError/ValueError/OSError."""
    if not isinstance(d, dict) or "pid" not in d:
        raise ValueError("a table with a pid is required")
    kw = dict(d)
    if "size" in kw:
        kw["size"] = parse_size(kw["size"], "size")
        _region_fits(m, m.page_align(kw["size"]) >> m.page_shift)
    check_options(m, **{k: v for k, v in kw.items() if k not in ("size", "watch")})
    return kw


def error_text(e: BaseException) -> str:
    """An error's sentence without its errno (OSError's strerror)."""
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e)
