"""The read-only view API: everything the console draws, and nothing it may change.

`MachineView(m)` reads an engine Machine; another backend (a live Linux host read
from /proc and /sys) implements the same methods and the console draws it the same
way. Every change goes through engine.commands.execute; nothing here writes.

    v = MachineView(m)

    topology
      v.topology() -> Topology       name, page size, frames, NodeInfo per node
                                     (id, cpus, PFN span), ZoneInfo per zone (index,
                                     node, name, PFN span), the SLIT distances
      v.status() -> Status           era and what its calls can do, simulated clock
                                     (ClockInfo: mode, speed, a label), jobs running
      v.node_stats() -> [NodeStat]   per node: managed, free, watermarks, pages
                                     migrated out and in
      v.free_history(n) -> {node: [fraction free]} | None   the last n samples
    page frames (the map and the inspector)
      v.frame_sample(pfns) -> (kinds, owners)     kind (K_*) of each frame, and the
                                     pid whose anonymous memory it holds (-1)
      v.frame_range(a, b) -> (kinds, flags)       of frames [a, b), read-only arrays;
                                     flags carry MARK_MLOCKED / MARK_PINNED /
                                     MARK_ISOLATED bits
      v.frame_flags(pfns) -> flags
      v.describe_frame(pfn) -> [(label, value)]   the inspector's lines
      v.cell_summary(a, b) -> str    what frames [a, b) hold, counted by kind
      v.frame_owner(pfn) -> (pid, address) | None
      v.zone_at(pfn) -> ZoneInfo | None
      v.driver_at(pfn) -> DriverInfo | None
      v.drivers() -> [DriverInfo]    name, kind, node, size, hook (None: none,
                                     False: off, True: on), PFN runs of its region,
                                     who maps it
    processes
      v.processes(counts) -> [ProcRow]  pid, name, uid, node, RSS, pages per node,
                                     locality, policy
      v.process(pid) -> ProcRow | None
      v.vmas(pid, counts) -> [VmaRow]   range, kind, flags, policy, locked, shared
                                     pages, RSS, pages per node
      v.vma_at(pid, addr) -> VmaRow | None
      v.vma_frames(pid, start) -> PFNs     the frames a VMA maps (to mark them)
      v.vma_ranges(pid) -> [(start, end)]
      v.node_counts() -> counts      pages per node of every VMA, counted a slice at a
                                     time (the console's frame budget): counts.stale(),
                                     .busy, .step(budget_s), .run(), .process(pid,
                                     anon_only); handed back to processes/vmas/vma_at
    a live machine (the host: engine/host/views.py; a simulated machine answers
    "nothing" to each)
      v.frames_unavailable() -> str | None   why the page-frame map cannot be shown
      v.refresh_info() -> RefreshInfo | None  how often what is read, and its CPU share
      v.limits() -> [str]            what the current credentials hide, a sentence each
      v.status_line() -> str         one line about the machine
      v.watch(pids, selected)        the processes the console shows (a hint: the host
                                     reads them more often; changes nothing)
    runtime
      v.jobs() -> [JobInfo]          running jobs: id, name, done, total, its line
      v.job_line(job), v.job_outcome(job) -> (text, ok)   a finished job in one line
      v.workloads(pid) / v.daemons()   (id, pid, state) of the running ones
      v.last_migration() -> (kind, job id, pages) | None   what `undo` reverses
      v.zone_names(node), v.driver_names(), v.job_ids(), v.pids(), v.nodes()
                                     (completion)

VIEW_API names every method; another backend provides them all (tests check
MachineView does)

Pages per node and the status summary are counted with arrays: no Python loop per
page (statuses as counts per node and errno, the results of migrations from the
machine's MoveBook: engine/runtime/moves.py)."""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .constants import (
    FLAG_NAMES,
    K_ANON,
    K_FILE,
    K_FREE,
    K_KERNEL,
    K_OFFLINE,
    K_PFNMAP,
    KIND_NAMES,
    PG_isolated,
    PG_mlocked,
    PG_pinned,
)
from .mm.move_pages import UNWRITTEN, MoveStatus
from .mm.policy import vma_policy
from .mm.rmap import mappers
from .mm.state import HELD, VMA, Kernel
from .nodemask import nodes_str
from .units import fmt_ns

__all__ = ["VIEW_API", "MachineView", "Topology", "NodeInfo", "ZoneInfo", "Status", "ClockInfo",
           "RefreshInfo",
           "NodeStat", "DriverInfo", "ProcRow", "VmaRow", "JobInfo", "NodeCounts",
           "K_FREE", "K_KERNEL", "K_ANON", "K_FILE", "K_PFNMAP", "K_OFFLINE", "KIND_NAMES",
           "MARK_MLOCKED", "MARK_PINNED", "MARK_ISOLATED", "fmt_bytes", "fmt_count",
           "fmt_pages", "clock_label", "daemon_sentence", "job_outcome", "job_line",
           "policy_str", "node_index", "flag_names", "COUNT_SLICE", "KUSE_NAMES", "status_counts", "status_counts_text",
           "summarize_result", "pages_per_node", "resident_pages"]

VIEW_API = ("topology", "status", "node_stats", "free_history", "frame_sample",
            "frame_range", "frame_flags", "describe_frame", "cell_summary", "frame_owner",
            "zone_at", "driver_at", "drivers", "processes", "process", "vmas", "vma_at",
            "vma_frames", "vma_ranges", "node_counts", "jobs", "job_line", "job_outcome",
            "workloads", "daemons", "last_migration", "zone_names", "driver_names",
            "job_ids", "pids", "nodes", "frames_unavailable", "refresh_info", "limits",
            "status_line", "watch")
KUSE_NAMES = {0: "memmap", 1: "slab", 2: "page tables", 3: "zero page"}
MARK_MLOCKED = int(PG_mlocked)
MARK_PINNED = int(PG_pinned)
MARK_ISOLATED = int(PG_isolated)


# ------------------------------------------------------------------ formatting

def fmt_bytes(n: float) -> str:
    """1536 -> '1.5K', 3*2**30 -> '3.0G' (binary units, short)."""
    n = float(n)
    for unit in ("B", "K", "M", "G", "T", "P"):
        if abs(n) < 1024 or unit == "P":
            if unit == "B":
                return f"{int(n)}B"
            return f"{n:.1f}{unit}" if abs(n) < 10 else f"{n:.0f}{unit}"
        n /= 1024
    return f"{n:.0f}P"  # pragma: no cover


def fmt_pages(m: Any, pages: int) -> str:
    return fmt_bytes(int(pages) * m.page_size)


def fmt_count(n: float) -> str:
    """At most 5 characters: 66048 -> '66.0k', 131072 -> '131k', 1500000 -> '1.50M'
    (counts below 100000 are shown whole)."""
    n = float(n)
    if abs(n) < 100_000:
        return str(int(n))
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            v = n / div
            s = f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"
            return s + unit
    return str(int(n))  # pragma: no cover


def policy_str(policy: Any) -> str:
    """A policy as numa_maps names it ("default" for none)."""
    return "default" if policy is None else policy.describe()


def node_index(m: Any) -> dict[int, int]:
    """node id -> column position (node ids may be sparse)."""
    return {n: i for i, n in enumerate(m.nodes)}


def flag_names(flags: int) -> list[str]:
    """PG_* bits as names."""
    return [n for bit, n in FLAG_NAMES if flags & int(bit)]


def job_line(m: Any, job: Any) -> str:
    """'#3 migrate_pages 1024/4096 25% 204k pg/s ETA 0.25s' (rate and ETA in
    simulated time)."""
    done, total = int(job.done), int(job.total)
    s = f"#{job.id} {job.name} {fmt_count(done)}/{fmt_count(total)}"
    if total:
        s += f" {100 * done // total}%"
    if done:
        dt = (m.clock - job.started_ns) / 1e9
        if dt > 0:
            rate = done / dt
            s += f" {fmt_count(rate)} pg/s"
            if total > done and rate > 0:
                s += f" ETA {(total - done) / rate:.2g}s"
    return s


def clock_label(mode: str, speed: float, resume: str = "fast") -> str:
    """How the simulated clock runs, the right way round: 'fast (as fast as
    possible)', '1/10 real time (slow motion)', '10x real time', 'paused'."""
    if mode == "fast":
        return "fast"
    if mode == "paused":
        return f"paused (then {clock_label(resume, speed)})"
    if speed == 1:
        return "real time"
    if speed < 1:
        inv = 1 / speed
        return f"1/{inv:.0f} real time" if abs(inv - round(inv)) < 1e-6 else \
            f"{speed:g}x real time"
    return f"{speed:g}x real time"


def status_counts(status: np.ndarray) -> dict[str, int]:
    """A status array (move_pages) as counts: N<node>, -E<errno>, unwritten."""
    vals, counts = np.unique(np.asarray(status, np.int64), return_counts=True)
    out: dict[str, int] = {}
    for s, c in zip(vals.tolist(), counts.tolist()):
        if s == UNWRITTEN:
            k = "unwritten"
        elif s >= 0:
            k = f"N{s}"
        else:
            k = "-" + errno.errorcode.get(-s, str(-s))
        out[k] = out.get(k, 0) + c
    return out


def status_counts_text(status: np.ndarray) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(status_counts(status).items()))


def summarize_result(result: Any) -> str:
    """A job's return value in one line (when no record of its moves says more)."""
    if isinstance(result, MoveStatus):
        return f"{len(result)} pages: " + status_counts_text(result.array)
    if isinstance(result, bool):
        return str(result)
    if isinstance(result, int):
        return f"{result} page(s) not moved"
    if isinstance(result, dict) and "text" in result:
        return str(result["text"]).splitlines()[0]
    text = getattr(result, "text", None)
    if isinstance(text, str):
        return text.splitlines()[0] if text else ""
    return "" if result is None else str(result)


def daemon_sentence(r: dict, verb: str) -> str:
    """A daemon's report (Daemon.report()) as a sentence."""
    return (f"daemon {r['id']} on pid {r['pid']} {verb}: it migrated {r['migrated']} of "
            f"{r['attempted']} pages in {r['periods']} periods "
            f"({fmt_ns(r['migrate_ns'])} of migration), ping-pong {r['pingpong']}")


def job_outcome(m: Any, job: Any) -> tuple[str, bool]:
    """(one line, ok) for a finished job: a migration's says what moved and why the
    rest did not (its MoveRecord), a daemon's what it migrated, a workload's how it
    ran; a failure names the errno."""
    rec = m.moves.of_job(job.id)
    what = f"job {job.id} {job.state}"  # the line that follows names the call
    if job.name == "daemon" and job.owner is not None:
        return (f"{what}: {daemon_sentence(job.owner.report(), job.owner.state)}",
                job.state != "failed")
    if job.name == "workload" and job.owner is not None and job.state != "failed":
        return f"{what}: {job.owner.describe()}", True
    if rec is not None and job.state == "done" and not rec.query:
        return f"{what}: {rec.summary(job.result)}", True
    err = job.error
    if job.state == "done":
        line = summarize_result(job.result)
        return f"job {job.id} {job.name} done" + (f": {line}" if line else ""), True
    what = f"job {job.id} {job.name} {job.state}"
    if isinstance(err, OSError) and err.errno is not None:
        msg = f"{errno.errorcode.get(err.errno, err.errno)}: {err.strerror or err}"
    else:
        msg = str(err) if err is not None else job.state
    moved = f"; {rec.summary()}" if rec is not None and (rec.moved or rec.failures) else ""
    if job.state == "cancelled":
        return f"{what} ({msg}){moved}", True
    return f"error: {what}: {msg}{moved}", False


# ------------------------------------------------------------------ records

@dataclass(frozen=True)
class NodeInfo:
    id: int
    cpus: tuple[int, ...]
    start_pfn: int
    spanned: int

    @property
    def end_pfn(self) -> int:
        return self.start_pfn + self.spanned


@dataclass(frozen=True)
class ZoneInfo:
    index: int  # position in Topology.zones
    node: int
    name: str
    start_pfn: int
    spanned: int

    @property
    def end_pfn(self) -> int:
        return self.start_pfn + self.spanned


@dataclass(eq=False)
class Topology:
    name: str
    page_size: int
    nr_frames: int
    nodes: tuple[NodeInfo, ...]
    zones: tuple[ZoneInfo, ...]
    distances: np.ndarray  # [i, j] between nodes[i] and nodes[j]

    @property
    def node_ids(self) -> list[int]:
        return [n.id for n in self.nodes]

    def zones_of(self, nid: int) -> list[ZoneInfo]:
        return [z for z in self.zones if z.node == nid and z.spanned > 0]

    def node(self, nid: int) -> NodeInfo:
        for n in self.nodes:
            if n.id == nid:
                return n
        raise KeyError(nid)


@dataclass(frozen=True)
class ClockInfo:
    mode: str  # fast | speed | paused
    speed: float  # simulated ns per real ns (mode speed)
    label: str


@dataclass(frozen=True)
class Status:
    name: str
    era: str
    has_move_pages: bool
    nodes: int
    memory_bytes: int
    nr_frames: int
    page_size: int
    clock_ns: int
    clock: ClockInfo
    jobs: int
    live: bool = False  # a live machine (the host), not a simulated one
    read_only: bool = False  # its actions are refused (the host without --allow-actions)


@dataclass(frozen=True)
class RefreshInfo:
    """How often a live machine is read (seconds between readings) and what it costs."""

    watched: float  # the processes the console shows or has selected
    others: float  # every other process
    system: float  # zones, counters, the process list
    frames: float  # the page-frame map
    cpu_share: float  # fraction of one CPU spent reading, lately
    text: str  # all of it in a sentence


@dataclass(frozen=True)
class NodeStat:
    id: int
    managed: int
    free: int
    wmark_min: int
    wmark_low: int
    wmark_high: int
    moved_out: int
    moved_in: int


@dataclass(frozen=True)
class DriverInfo:
    name: str
    kind: str  # uncached | framebuffer | rdma
    node: int
    npages: int
    hook: bool | None  # its vm_ops->migrate: None (has none), False (off), True (on)
    runs: np.ndarray = field(compare=False)  # (k, 2) PFN runs [start, end) of its region
    users: tuple[tuple[int, str], ...] = ()  # (pid, name) of processes mapping it

    @property
    def hook_text(self) -> str:
        return {None: "no migrate hook", False: "migrate hook off",
                True: "migrate hook on"}[self.hook]


@dataclass
class ProcRow:
    pid: int
    name: str
    uid: int
    node: int
    rss: int  # pages
    per_node: np.ndarray  # pages per node, topology order
    locality: float | None  # percent of RSS on the process's own node
    policy: str


@dataclass
class VmaRow:
    start: int
    end: int
    kind: str  # anon | file | driver
    flags: str
    policy: str
    locked: bool
    shared_pages: int  # pages mapped by more than one process
    rss: int
    per_node: np.ndarray
    npages: int
    driver: str | None = None


@dataclass(frozen=True)
class JobInfo:
    id: int
    name: str
    done: int
    total: int
    line: str


# ------------------------------------------------------------------ page counting

COUNT_SLICE = 1 << 18  # page-table entries counted in one go (their temporaries stay in cache)
_BUCKETS: dict[tuple, Any] = {}


def _node_buckets(m: Any) -> tuple[int, np.ndarray] | None:
    """(shift, 1 + column in m.nodes of each bucket of 2**shift frames, 0 for none): every
    node boundary is a multiple of 2**shift, so pfn >> shift names a frame's node. None
    when the boundaries are too fine for a small table. Cached on the node layout."""
    key = tuple((n.start_pfn, n.spanned) for n in m.nodes_list) + (m.nr_frames,)
    hit = _BUCKETS.get(key, False)
    if hit is not False:
        return hit
    bounds = [b for n in m.nodes_list if n.spanned > 0
              for b in (n.start_pfn, n.start_pfn + n.spanned) if b] + [m.nr_frames]
    shift = min(((b & -b).bit_length() - 1 for b in bounds if b), default=20)
    shift = min(shift, 20)
    out = None
    if m.nr_frames >> shift <= 1 << 22:
        col = np.zeros((m.nr_frames >> shift) + 1, np.int64)
        for i, n in enumerate(m.nodes_list):
            if n.spanned > 0:
                col[n.start_pfn >> shift:(n.start_pfn + n.spanned) >> shift] = i + 1
        out = (shift, col)
    if len(_BUCKETS) > 8:
        _BUCKETS.clear()
    _BUCKETS[key] = out
    return out


def pages_per_node(m: Any, pfns: np.ndarray) -> np.ndarray:
    """Counts of pages (PFNs; -1 and the zero page not counted) per node, in m.nodes
    order."""
    pfns = np.asarray(pfns)
    out = np.zeros(len(m.nodes_list), np.int64)
    for i in range(0, pfns.size, COUNT_SLICE):
        out += _count_slice(m, pfns[i:i + COUNT_SLICE])
    return out


def _count_slice(m: Any, pfns: np.ndarray) -> np.ndarray:
    nodes = m.nodes
    if pfns.size == 0:
        return np.zeros(len(nodes), np.int64)
    tab = _node_buckets(m)
    per_bucket = None
    if tab is not None:
        shift, col = tab
        try:  # NO_PAGE (-1) lands in bucket 0 (dropped); other negatives raise
            per_bucket = np.bincount((pfns >> shift) + 1, minlength=col.size + 1)[1:]
        except ValueError:
            per_bucket = None
    if per_bucket is not None:  # PFNs past the last frame are dropped too
        per = np.bincount(col, weights=per_bucket[:col.size],
                          minlength=len(nodes) + 1)[1:].astype(np.int64)
        z = m.zero_pfn
        if 0 <= z < m.nr_frames and col[z >> shift]:
            per[col[z >> shift] - 1] -= np.count_nonzero(pfns == z)
        return per
    pfns = pfns[(pfns >= 0) & (pfns != m.zero_pfn)]  # NO_PAGE (-1) and the zero page
    if pfns.size == 0:
        return np.zeros(len(nodes), np.int64)
    counts = np.bincount(m.node_of(pfns), minlength=max(nodes) + 1)
    return counts[np.asarray(nodes, np.int64)]


def vma_frames(v: VMA, o0: int = 0, o1: int | None = None) -> np.ndarray:
    """PFNs mapped in [o0, o1) of a VMA (driver frames included; -1 never)."""
    return v.frames(o0, o1)


def vma_pages_per_node(m: Kernel, v: VMA) -> np.ndarray:
    """Pages per node (m.nodes order) mapped by a VMA, as numa_maps counts them: the
    zero page and a VM_PFNMAP region's frames (no struct page behind them) left out."""
    if v.pfnmap:
        return np.zeros(len(m.nodes_list), np.int64)
    return pages_per_node(m, vma_frames(v))


def resident_pages(m: Kernel, p) -> int:
    """Resident pages as numa_maps and VmRSS count them (PFN-mapped frames not)."""
    return int(sum((vma_frames(v) != m.zero_pfn).sum() for v in p.vmas if not v.pfnmap))


class NodeCounts:
    """Pages per node of every VMA of every process, counted a slice at a time so that
    no refresh holds the event loop for long: `step(budget_s)` counts until the budget is
    spent (a pass over every page table takes as many steps as it needs), `run()` does a
    whole pass at once. Readers get the last complete pass; `stale()` asks for a new one
    (the machine changed). While a pass runs, the machine may change under it: every VMA
    is counted in full, but its slices at different moments."""

    def __init__(self, m: Any, slice_pages: int = COUNT_SLICE) -> None:
        self.m = m
        self.slice = slice_pages
        self.vmas: dict[tuple[int, int, int], np.ndarray] = {}  # (pid, start, end) -> per node
        self.passes = 0  # complete passes so far
        self._dirty = True
        self._gen: Any = None  # the pass under way (a generator), or None

    def stale(self) -> None:
        """The machine changed: the next step begins (or queues) a fresh pass."""
        self._dirty = True

    @property
    def busy(self) -> bool:
        """A pass is under way or wanted."""
        return self._gen is not None or self._dirty

    def _pass(self):
        m = self.m
        out: dict[tuple[int, int, int], np.ndarray] = {}
        todo = [(pid, v) for pid, p in list(m.procs.items()) for v in list(p.vmas)]
        for pid, v in todo:
            per = np.zeros(len(m.nodes_list), np.int64)
            n = v.npages if v.mm is not None and not v.pfnmap else 0
            for i in range(0, n, self.slice):
                per += _count_slice(m, vma_frames(v, i, min(n, i + self.slice)))
                yield
            out[(pid, v.start, v.end)] = per
        self.vmas = out
        self.passes += 1

    def step(self, budget_s: float = 0.004) -> bool:
        """Count for about budget_s seconds (at least one slice). True when a pass ended."""
        if self._gen is None:
            if not self._dirty:
                return False
            self._dirty = False
            self._gen = self._pass()
        t_end = time.perf_counter() + budget_s
        while True:
            try:
                next(self._gen)
            except StopIteration:
                self._gen = None
                return True
            if time.perf_counter() >= t_end:
                return False

    def run(self) -> None:
        """A whole fresh pass now (any pass under way is dropped)."""
        self._gen = None
        self._dirty = False
        for _ in self._pass():
            pass

    def vma(self, pid: int, v: Any) -> np.ndarray:
        """Pages per node of a VMA (m.nodes order): from the last pass, or counted now
        when that pass did not see it (a new VMA)."""
        per = self.vmas.get((pid, v.start, v.end))
        if per is None or per.size != len(self.m.nodes_list):
            per = vma_pages_per_node(self.m, v)
            self.vmas[(pid, v.start, v.end)] = per
        return per

    def process(self, pid: int, anon_only: bool = False) -> np.ndarray:
        p = self.m.process(pid)
        per = np.zeros(len(self.m.nodes_list), np.int64)
        for v in p.vmas:
            if not anon_only or v.kind == "anon":
                per += self.vma(pid, v)
        return per


# ------------------------------------------------------------------ the view

def _readonly(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


class MachineView:
    """The view API over an engine Machine (see the module's docstring)."""

    def __init__(self, m: Any) -> None:
        self.m = m
        self._topo: Topology | None = None
        self._topo_key: tuple = ()
        self._lut = np.full(1, -1, np.int64)
        self._lut_key: tuple = ()

    def __repr__(self) -> str:
        return f"<MachineView {self.m.name!r}>"

    # -------------------------------------------------------------- topology
    def topology(self) -> Topology:
        m = self.m
        key = (m.nr_frames, len(m.zones), len(m.nodes_list), m.name)
        if self._topo is None or key != self._topo_key:
            nodes = tuple(NodeInfo(n.id, tuple(n.cpus), n.start_pfn, n.spanned)
                          for n in m.nodes_list)
            zones = tuple(ZoneInfo(i, z.node, z.name, z.start_pfn, z.spanned)
                          for i, z in enumerate(m.zones))
            ids = list(m.nodes)
            dist = np.array([[m.distance(a, b) for b in ids] for a in ids],
                            np.int64).reshape(len(ids), len(ids))
            self._topo = Topology(m.name, m.page_size, m.nr_frames, nodes, zones, dist)
            self._topo_key = key
        return self._topo

    def nodes(self) -> list[int]:
        return list(self.m.nodes)

    def status(self) -> Status:
        m = self.m
        ctl = m.clockctl
        label = clock_label(ctl.mode, ctl.speed, ctl._resume_mode)
        return Status(m.name, m.era.name, m.era.has_move_pages, len(m.nodes_list),
                      m.nr_frames * m.page_size, m.nr_frames, m.page_size, m.clock,
                      ClockInfo(ctl.mode, float(ctl.speed), label), len(m.jobs))

    def node_stats(self) -> list[NodeStat]:
        m = self.m
        tr = self._traffic()
        out = []
        for n in m.nodes_list:
            zs = [z for z in m.zones if z.node == n.id]
            mo = mi = 0
            if tr is not None and n.id < tr.shape[0]:
                mo = int(tr[n.id].sum() - tr[n.id, n.id])
                mi = int(tr[:, n.id].sum() - tr[n.id, n.id])
            out.append(NodeStat(n.id, sum(z.managed for z in zs), sum(z.free for z in zs),
                                sum(z.wmark_min for z in zs), sum(z.wmark_low for z in zs),
                                sum(z.wmark_high for z in zs), mo, mi))
        return out

    def _traffic(self) -> np.ndarray | None:
        """Pages migrated, [source, target] node (None: none recorded)."""
        return self.m.traffic

    def free_history(self, n: int) -> dict[int, list[float]] | None:
        """Free memory per node over simulated time from the engine's timeline (its last
        samples, as fractions of the node's managed pages; spikes kept), None without
        samples."""
        m = self.m
        _, free = m.timeline.series("free")
        if len(free) == 0:
            return None
        out = {}
        for st in self.node_stats():
            if st.id >= free.shape[1]:
                continue
            vals = free[-n * 8:, st.id] / (st.managed or 1)
            if vals.size > n:
                edges = np.linspace(0, vals.size, n + 1).astype(int)
                vals = np.maximum.reduceat(vals, edges[:-1])
            out[st.id] = vals.tolist()
        return out

    # -------------------------------------------------------------- frames
    def _owner_lut(self) -> np.ndarray:
        """mapping id -> pid of the anonymous memory it roots (-1 otherwise)."""
        m = self.m
        key = (id(m.mappings), len(m.mappings), m.next_id)
        if key != self._lut_key:
            maps = m.mappings
            lut = np.full(max(maps, default=0) + 2, -1, np.int32)
            for mid, obj in maps.items():
                pid = getattr(obj, "pid", None)  # AnonVMA; Backing has none
                if pid is not None:
                    lut[mid] = pid
            self._lut, self._lut_key = lut, key
        return self._lut

    def frame_sample(self, pfns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(kind, owner pid or -1) of each frame of pfns (any shape; owner int32)."""
        f = self.m.f
        kind = f.kind[pfns]
        owner = np.take(self._owner_lut(), f.mapping[pfns], mode="clip")
        np.putmask(owner, kind != K_ANON, -1)
        return kind, owner

    def frame_range(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(kinds, flags) of frames [a, b): read-only views, no copy."""
        f = self.m.f
        return _readonly(f.kind[a:b]), _readonly(f.flags[a:b])

    def frame_flags(self, pfns: np.ndarray) -> np.ndarray:
        return self.m.f.flags[pfns]

    def frame_owner(self, pfn: int) -> tuple[int, int] | None:
        """(pid, address) of the first mapping of a frame, or None."""
        m = self.m
        pfn = int(pfn)
        if not 0 <= pfn < m.nr_frames or int(m.f.kind[pfn]) not in (K_ANON, K_FILE,
                                                                      K_PFNMAP):
            return None
        ms = mappers(m, pfn)
        return ms[0] if ms else None

    def zone_at(self, pfn: int) -> ZoneInfo | None:
        for z in self.topology().zones:
            if z.spanned and z.start_pfn <= pfn < z.end_pfn:
                return z
        return None

    def drivers(self) -> list[DriverInfo]:
        m = self.m
        out = []
        for name, d in m.drivers_map.items():
            runs = np.zeros((0, 2), np.int64)
            users: list[tuple[int, str]] = []
            if d.backing is not None:
                _idx, pfns = d.backing.present()
                pfns = np.sort(pfns)
                if pfns.size:
                    cut = np.flatnonzero(np.diff(pfns) != 1) + 1
                    starts = np.concatenate(([pfns[0]], pfns[cut]))
                    ends = np.concatenate((pfns[cut - 1] + 1, [pfns[-1] + 1]))
                    runs = np.stack([starts, ends], 1)
                seen = sorted({v.mm.pid for v in d.backing.vmas if v.mm is not None})
                users = [(pid, m.procs[pid].name) for pid in seen if pid in m.procs]
            hook = (bool(d.hook_enabled) if d.has_hook else None) if d.pfnmap else None
            out.append(DriverInfo(name, d.kind, d.node, d.npages, hook, runs, tuple(users)))
        return out

    def driver_names(self) -> list[str]:
        return list(self.m.drivers_map)

    def driver_at(self, pfn: int) -> DriverInfo | None:
        """The driver whose PFN-mapped region holds the frame."""
        m = self.m
        pfn = int(pfn)
        if not 0 <= pfn < m.nr_frames or int(m.f.kind[pfn]) != K_PFNMAP:
            return None
        mid = int(m.f.mapping[pfn])
        for d in self.drivers():
            dm = m.drivers_map[d.name]
            if dm.backing is not None and dm.backing.id == mid:
                return d
        return None

    def describe_frame(self, pfn: int) -> list[tuple[str, str]]:
        """(label, value) lines for the inspector."""
        m = self.m
        f = m.f
        pfn = int(pfn)
        if not 0 <= pfn < m.nr_frames:
            return [("PFN", f"{pfn} (outside the machine)")]
        kind = int(f.kind[pfn])
        z = self.zone_at(pfn)
        out = [
            ("PFN", f"{pfn:#x} ({pfn})"),
            ("phys", f"{pfn * m.page_size:#x}"),
            ("node", str(int(m.node_of([pfn])[0]))),
            ("zone", z.name if z is not None else "?"),
            ("kind", KIND_NAMES[kind] if kind < len(KIND_NAMES) else str(kind)),
        ]
        if kind == K_KERNEL:
            out.append(("use", KUSE_NAMES.get(int(f.mapping[pfn]), "kernel")))
        owner = self.frame_owner(pfn)
        if owner is not None:
            pid, addr = owner
            name = m.procs[pid].name if pid in m.procs else "?"
            out.append(("owner", f"pid {pid} {name}"))
            out.append(("address", f"{addr:#x}"))
        if kind == K_FILE:
            obj = m.mappings.get(int(f.mapping[pfn]))
            if obj is not None and getattr(obj, "name", None):
                out.append(("file", f"{obj.name} [{int(f.index[pfn])}]"))
        d = self.driver_at(pfn)
        if d is not None:
            out.append(("driver", f"{d.name} ({d.kind}, node {d.node}), {d.hook_text}"))
        fl = flag_names(int(f.flags[pfn]))
        out.append(("flags", ",".join(fl) if fl else "-"))
        # (a frame nothing holds has a record that means nothing but its bytes)
        out.append(("mapcount", str(int(f.mapcount[pfn]) if HELD[kind] else 0)))
        out.append(("refcount", str(int(f.refcount[pfn]))))
        out.append(("content", f"{int(f.content[pfn]):#010x}"))
        acc = self._accesses(owner) if owner is not None else ""
        if acc:
            out.append(("accesses", acc))
        return out

    def _accesses(self, owner: tuple[int, int]) -> str:
        """Sampled accesses by node to the page at (pid, addr), when a workload covers it
        (engine.runtime.workload; counts since the last access-statistics reset)."""
        m = self.m
        pid, addr = owner
        for wl in reversed(m.workloads):
            if wl.pid != pid or wl.counts is None:
                continue
            i = (addr - wl.start) >> m.page_shift
            if 0 <= i < wl.npages:
                row = wl.counts[i].astype(np.int64)
                if wl.mark is not None:
                    row = row - wl.mark[i]
                parts = [f"N{n}={int(c)}" for n, c in zip(m.nodes, row) if c]
                return " ".join(parts) if parts else "none sampled"
        return ""

    def cell_summary(self, a: int, b: int) -> str:
        """What frames [a, b) hold: counts by kind."""
        kinds = np.bincount(self.m.f.kind[a:b], minlength=len(KIND_NAMES))
        return ", ".join(f"{KIND_NAMES[k]} {int(c)}" for k, c in enumerate(kinds) if c)

    # -------------------------------------------------------------- processes
    def pids(self) -> list[int]:
        return list(self.m.pids)

    def node_counts(self) -> NodeCounts:
        return NodeCounts(self.m)

    def _row(self, p: Any, per: np.ndarray) -> ProcRow:
        idx = {n: i for i, n in enumerate(self.m.nodes)}
        rss = int(per.sum())
        loc = None
        if rss and p.node in idx:
            loc = 100.0 * float(per[idx[p.node]]) / rss
        return ProcRow(p.pid, p.name, p.uid, p.node, rss, per, loc, policy_str(p.policy))

    def processes(self, counts: NodeCounts | None = None) -> list[ProcRow]:
        """A row per process; pages per node from `counts` (its last pass) when given,
        else counted now."""
        m = self.m
        rows = []
        for pid in m.pids:
            p = m.procs[pid]
            if counts is not None:
                per = counts.process(pid)
            else:
                per = np.zeros(len(m.nodes_list), np.int64)
                for v in p.vmas:
                    per += vma_pages_per_node(m, v)
            rows.append(self._row(p, per))
        return rows

    def process(self, pid: int, counts: NodeCounts | None = None) -> ProcRow | None:
        m = self.m
        p = m.procs.get(pid)
        if p is None:
            return None
        per = counts.process(pid) if counts is not None else \
            sum((vma_pages_per_node(m, v) for v in p.vmas),
                np.zeros(len(m.nodes_list), np.int64))
        return self._row(p, per)

    def _vma_row(self, v: VMA, per: np.ndarray) -> VmaRow:
        m = self.m
        drv = m.driver_of(v) if v.pfnmap else None
        shared = 0
        if v.kind != "driver":
            pfns = vma_frames(v)
            pfns = pfns[pfns != m.zero_pfn]
            shared = int((m.f.mapcount[pfns] > 1).sum()) if pfns.size else 0
        # as numa_maps: the policy at vm_start (a shmem object's shared policy)
        return VmaRow(v.start, v.end, v.kind, v.flag_string(), policy_str(vma_policy(v)),
                      v.locked, shared, int(per.sum()), per, v.npages,
                      drv.name if drv is not None else None)

    def vmas(self, pid: int, counts: NodeCounts | None = None) -> list[VmaRow]:
        p = self.m.procs.get(pid)
        if p is None:
            return []
        return [self._vma_row(v, counts.vma(pid, v) if counts is not None
                              else vma_pages_per_node(self.m, v)) for v in p.vmas]

    def vma_at(self, pid: int, addr: int, counts: NodeCounts | None = None
               ) -> VmaRow | None:
        p = self.m.procs.get(pid)
        v = p.find_vma(int(addr)) if p is not None else None
        if v is None:
            return None
        return self._vma_row(v, counts.vma(pid, v) if counts is not None
                             else vma_pages_per_node(self.m, v))

    def vma_frames(self, pid: int, start: int) -> np.ndarray:
        """The frames the VMA at `start` maps (the zero page left out)."""
        p = self.m.procs.get(pid)
        v = p.find_vma(int(start)) if p is not None else None
        if v is None:
            return np.zeros(0, np.int64)
        pfns = vma_frames(v)
        return pfns[pfns != self.m.zero_pfn]

    def vma_ranges(self, pid: int) -> list[tuple[int, int]]:
        p = self.m.procs.get(pid)
        return [] if p is None else [(v.start, v.end) for v in p.vmas]

    def zone_names(self, node: int | None = None) -> list[str]:
        return sorted({z.name for z in self.topology().zones
                       if z.spanned and (node is None or z.node == node)})

    # -------------------------------------------------------------- runtime
    def job_line(self, job: Any) -> str:
        return job_line(self.m, job)

    def jobs(self) -> list[JobInfo]:
        return [JobInfo(j.id, j.name, int(j.done), int(j.total), self.job_line(j))
                for j in list(self.m.jobs)]

    def job_ids(self) -> list[int]:
        return [j.id for j in self.m.jobs]

    def job_outcome(self, job: Any) -> tuple[str, bool]:
        return job_outcome(self.m, job)

    def workloads(self, pid: int | None = None, running: bool = True
                  ) -> list[tuple[int, int, str]]:
        """(id, pid, state) of the workloads (of pid), running ones only by default."""
        return [(w.id, w.pid, w.state) for w in self.m.workloads
                if (pid is None or w.pid == pid) and (w.running or not running)]

    def daemons(self, running: bool = True) -> list[tuple[int, int, str]]:
        return [(d.id, d.pid, d.state) for d in self.m.daemons
                if d.state == "running" or not running]

    def last_migration(self) -> tuple[str, int | None, int] | None:
        """(kind, job id, pages moved) of the migration `undo` would reverse."""
        rec = self.m.moves.last
        return None if rec is None else (rec.kind, rec.job_id, rec.moved)

    # -------------------------------------------------------------- a live machine
    def frames_unavailable(self) -> str | None:
        """Why the page-frame map cannot be shown (None: it can; always, here)."""
        return None

    def refresh_info(self) -> RefreshInfo | None:
        """None: a simulated machine is never re-read (its state is the engine's)."""
        return None

    def limits(self) -> list[str]:
        """What cannot be shown or done (nothing is hidden of a simulated machine)."""
        return []

    def status_line(self) -> str:
        st = self.status()
        return (f"{st.name}: {st.nodes} node(s), {fmt_bytes(st.memory_bytes)}, "
                f"{len(self.m.pids)} processes; era {st.era}")

    def watch(self, pids: list[int], selected: int | None = None) -> None:
        """The processes the console shows: nothing to do for a simulated machine."""
        return None


def source_nodes(row: ProcRow, nodes: list[int]) -> str:
    """The nodes a process has pages on (for prompts), all nodes when none."""
    src = [n for n, c in zip(nodes, row.per_node) if c] or list(nodes)
    return nodes_str(src)
