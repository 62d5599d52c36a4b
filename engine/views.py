"""The read-only view API: what the console may read of a machine. Process and VMA
rows with pages per node, frame descriptions for the inspector, owner look-ups,
classes of a PFN range for the map, status summaries. Pure functions over a
Machine; nothing here changes it (every change goes through engine.commands).
The console draws from these and never from frame arrays or page tables."""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .constants import FLAG_NAMES, K_ANON, K_FILE, K_KERNEL, K_PFNMAP, KIND_NAMES
from .mm.move_pages import UNWRITTEN, MoveStatus
from .mm.rmap import mappers
from .mm.state import VMA, Kernel

KUSE_NAMES = {0: "memmap", 1: "slab", 2: "page tables", 3: "zero page"}


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


def policy_str(policy: Any) -> str:
    if policy is None:
        return "default"
    return policy.describe()


def node_index(m: Any) -> dict[int, int]:
    """node id -> column position (node ids may be sparse)."""
    return {n: i for i, n in enumerate(m.nodes)}


COUNT_SLICE = 1 << 18  # page-table entries counted in one go (their temporaries stay in cache)


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


_BUCKETS: dict[tuple, Any] = {}


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
            n = v.npages if v.mm is not None else 0
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


@dataclass
class ProcRow:
    pid: int
    name: str
    uid: int
    node: int
    rss: int  # pages
    per_node: np.ndarray  # pages per node, m.nodes order
    locality: float | None  # percent of RSS on the process's own node
    policy: str


def process_rows(m: Any, counts: NodeCounts | None = None) -> list[ProcRow]:
    """A row per process; pages per node from `counts` (its last pass) when given, else
    counted now."""
    rows = []
    idx = node_index(m)
    for pid in m.pids:
        p = m.process(pid)
        if counts is not None:
            per = counts.process(pid)
        else:
            per = process_pages_per_node(m, p)
        rss = int(per.sum())
        loc = None
        if rss and p.node in idx:
            loc = 100.0 * float(per[idx[p.node]]) / rss
        rows.append(ProcRow(pid, p.name, p.uid, p.node, rss, per, loc, policy_str(p.policy)))
    return rows


@dataclass
class VmaRow:
    start: int
    end: int
    kind: str
    flags: str
    policy: str
    locked: bool
    rss: int
    per_node: np.ndarray


def vma_rows(m: Any, pid: int, counts: NodeCounts | None = None) -> list[VmaRow]:
    p = m.process(pid)
    out = []
    for v in p.vmas:
        per = counts.vma(pid, v) if counts is not None else vma_pages_per_node(m, v)
        out.append(VmaRow(v.start, v.end, v.kind, v.flag_string(), policy_str(v.policy),
                          v.locked, int(per.sum()), per))
    return out


def find_vma(m: Any, pid: int, start: int) -> Any:
    try:
        p = m.process(pid)
    except OSError:
        return None
    for v in p.vmas:
        if v.start <= start < v.end:
            return v
    return None


def frame_owner(m: Any, pfn: int) -> tuple[int, int] | None:
    """(pid, address) of the first mapping of a frame, or None."""
    try:
        ms = mappers(m, int(pfn))
    except Exception:  # noqa: BLE001 - an inspector never fails
        return None
    return ms[0] if ms else None


def zone_at(m: Any, pfn: int) -> Any:
    for z in m.zones:
        if z.spanned and z.start_pfn <= pfn < z.start_pfn + z.spanned:
            return z
    return None


def driver_of_frame(m: Any, pfn: int) -> str | None:
    """The PFN-map driver owning a frame (via its backing), if any."""
    if int(m.f.kind[pfn]) != K_PFNMAP:
        return None
    mid = int(m.f.mapping[pfn])
    for name, d in getattr(m, "drivers_map", {}).items():
        b = getattr(d, "backing", None)
        if b is not None and getattr(b, "id", None) == mid:
            return name
    return None


def hook_drivers(m: Any) -> list[tuple[str, bool]]:
    """(driver, hook enabled) for drivers that can have a migrate hook."""
    out = []
    for name, d in getattr(m, "drivers_map", {}).items():
        if getattr(d, "pfnmap", False):
            out.append((name, bool(getattr(d, "hook_enabled", False))))
    return out


def flag_names(flags: int) -> list[str]:
    return [n for bit, n in FLAG_NAMES if flags & int(bit)]


def describe_frame(m: Any, pfn: int) -> list[tuple[str, str]]:
    """(label, value) lines for the inspector."""
    f = m.f
    pfn = int(pfn)
    if not 0 <= pfn < m.nr_frames:
        return [("PFN", f"{pfn} (outside the machine)")]
    kind = int(f.kind[pfn])
    z = zone_at(m, pfn)
    out = [
        ("PFN", f"{pfn:#x} ({pfn})"),
        ("phys", f"{pfn * m.page_size:#x}"),
        ("node", str(int(m.node_of([pfn])[0]))),
        ("zone", z.name if z is not None else "?"),
        ("kind", KIND_NAMES[kind] if kind < len(KIND_NAMES) else str(kind)),
    ]
    if kind == K_KERNEL:
        out.append(("use", KUSE_NAMES.get(int(f.mapping[pfn]), "kernel")))
    owner = None
    if kind in (K_ANON, K_FILE, K_PFNMAP):
        owner = frame_owner(m, pfn)
    if owner is not None:
        pid, addr = owner
        name = m.procs[pid].name if pid in m.procs else "?"
        out.append(("owner", f"pid {pid} {name}"))
        out.append(("address", f"{addr:#x}"))
    if kind == K_FILE:
        obj = getattr(m, "mappings", {}).get(int(f.mapping[pfn]))
        if obj is not None and getattr(obj, "name", None):
            out.append(("file", f"{obj.name} [{int(f.index[pfn])}]"))
    drv = driver_of_frame(m, pfn)
    if drv:
        out.append(("driver", drv))
    fl = flag_names(int(f.flags[pfn]))
    out.append(("flags", ",".join(fl) if fl else "-"))
    out.append(("mapcount", str(int(f.mapcount[pfn]))))
    out.append(("refcount", str(int(f.refcount[pfn]))))
    out.append(("content", f"{int(f.content[pfn]):#010x}"))
    acc = _accesses(m, owner) if owner is not None else ""
    if acc:
        out.append(("accesses", acc))
    return out


def _accesses(m: Any, owner: tuple[int, int]) -> str:
    """Sampled accesses by node to the page at (pid, addr), when a workload covers it
    (engine.runtime.workload; counts since the last access-statistics reset)."""
    pid, addr = owner
    for wl in reversed(m.workloads):
        if getattr(wl, "pid", None) != pid or getattr(wl, "counts", None) is None:
            continue
        i = (addr - wl.start) >> m.page_shift
        if 0 <= i < wl.npages:
            row = wl.counts[i].astype(np.int64)
            if getattr(wl, "mark", None) is not None:
                row = row - wl.mark[i]
            parts = [f"N{n}={int(c)}" for n, c in zip(m.nodes, row) if c]
            return " ".join(parts) if parts else "none sampled"
    return ""


def cell_summary(m: Any, a: int, b: int) -> str:
    """What a map cell covering frames [a, b) holds: counts by kind."""
    kinds = np.bincount(m.f.kind[a:b], minlength=len(KIND_NAMES))
    parts = [f"{KIND_NAMES[k]} {int(c)}" for k, c in enumerate(kinds) if c]
    return ", ".join(parts)


def fmt_count(n: float) -> str:
    """66048 -> '66k', 1500000 -> '1.5M'."""
    n = float(n)
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            v = n / div
            return f"{v:.1f}{unit}" if v < 10 else f"{v:.0f}{unit}"
    return str(int(n))


def job_line(m: Any, job: Any) -> str:
    """'#3 migrate_pages 1.0k/4.1k 25% 204k pg/s ETA 0.25s' (rate and ETA in simulated
    time)."""
    done, total = int(getattr(job, "done", 0)), int(getattr(job, "total", 0))
    s = f"#{job.id} {job.name} {fmt_count(done)}/{fmt_count(total)}"
    if total:
        s += f" {100 * done // total}%"
    started = getattr(job, "started_ns", None)
    if started is not None and done:
        dt = (m.clock - started) / 1e9
        if dt > 0:
            rate = done / dt
            s += f" {fmt_count(rate)} pg/s"
            if total > done and rate > 0:
                s += f" ETA {(total - done) / rate:.2g}s"
    return s


def summarize_result(result: Any) -> str:
    """A job's result in one line: a move_pages status list as counts per node or
    errno, a count of pages not moved, or the result's own text."""
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
    return str(result)


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


# ------------------------------------------------------------------ page tables

def vma_frames(v: VMA, o0: int = 0, o1: int | None = None) -> np.ndarray:
    """PFNs mapped in [o0, o1) of a VMA (driver frames included; -1 never)."""
    _offs, pfns = v.present(o0, o1)
    return pfns


def vma_pages_per_node(m: Kernel, v: VMA) -> np.ndarray:
    """Pages per node (m.nodes order) mapped by a VMA, the zero page not counted."""
    return pages_per_node(m, vma_frames(v))


def process_pages_per_node(m: Kernel, p) -> np.ndarray:
    per = np.zeros(len(m.nodes_list), np.int64)
    for v in p.vmas:
        per += vma_pages_per_node(m, v)
    return per


def process_frames(m: Kernel, pid: int) -> np.ndarray:
    """Every frame a process maps (the zero page not included), for marking a
    process's pages on the map."""
    p = m.procs.get(pid)
    if p is None:
        return np.zeros(0, np.int64)
    _keys, pfns = p.pt.present(0, 1 << 62)
    return pfns[pfns != m.zero_pfn]


def resident_pages(m: Kernel, p) -> int:
    return int(sum((vma_frames(v) != m.zero_pfn).sum() for v in p.vmas))


def frame_kinds(m: Kernel, a: int, b: int) -> np.ndarray:
    """The kind (K_*) of frames [a, b) (a view: do not write to it)."""
    return m.f.kind[a:b]
