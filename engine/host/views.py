"""The read-only view API (engine/views/) over the live host: every public name of
engine.views, with the same signature and return type, taking a `Host` where that
takes a Machine, so the console can draw either through `views_for(m)`. Formatting
helpers and the row types are engine.views' own; what differs is where the numbers
come from:

- pages per node of processes and VMAs: /proc/PID/numa_maps (no privilege needed for
  your own processes), refreshed by the host's policy through `NodeCounts.step`
- frames (kinds, flags, classes, owners): /proc/kpageflags, /proc/kpagecount and
  /proc/PID/pagemap (root); without them, `frames_unavailable(m)` says why and frame
  kinds read as offline (unknown)

Host-only helpers (the simulator has no equivalent): frame_flags, frame_classes,
zone_class_counts, frames_unavailable, limits, status_line, refresh_text; the view
object offers the live-machine part of VIEW_API (frames_unavailable, refresh_info,
limits, status_line, watch), which a simulated machine's MachineView answers with
"nothing".

`HostView` is the view object the console draws (engine.views.VIEW_API, as
MachineView): `view_for(m)` gives a HostView for a Host and a MachineView for a
simulated machine. The console reads the host from two threads (its own, and one that
runs `NodeCounts.step`): the host's readers replace what they read (a new dict of
processes, a new list of VMAs) rather than change it in place, and the frame map's
cache has a lock."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import views as engine_views
from ..constants import K_OFFLINE
from ..views import (
    COUNT_SLICE,
    KUSE_NAMES,
    VIEW_API,
    ClockInfo,
    DriverInfo,
    MachineView,
    ProcRow,
    RefreshInfo,
    Status,
    VmaRow,
    flag_names,
    fmt_bytes,
    fmt_count,
    fmt_pages,
    job_line,
    node_index,
    pages_per_node,
    policy_str,
    status_counts,
    status_counts_text,
    summarize_result,
)
from .host import Host
from .kpage import CLASSES, NCLASS
from .kpage import flag_names as kpf_names
from .readers import HostProcess, HostVma

FRAME_CLASSES = CLASSES


RUN_BUDGET = 0.5  # seconds a full redraw (NodeCounts.run) may spend reading the host


class NodeCounts:
    """engine.views.NodeCounts for the host: pages per node of every VMA, from each
    process's last numa_maps reading. `step(budget_s)` does the refresh policy's due
    readings within the budget (visible and selected processes often, the rest rarely:
    m.refresh; the console runs it in a thread of its own), `run()` reads what is due
    for up to RUN_BUDGET seconds, `stale()` says the console may have changed the host
    (the system files and the watched processes are read at the next step)."""

    def __init__(self, m: Host, slice_pages: int = COUNT_SLICE) -> None:
        self.m = m
        self.slice = slice_pages
        self.passes = 0
        self._lock = threading.Lock()  # one reader of the host at a time
        self._stepping: int | None = None  # the thread a step runs in
        self._poked = False

    @property
    def vmas(self) -> dict[tuple[int, int, int], np.ndarray]:
        return {(pid, v.start, v.end): v.per_node for pid, p in self.m.procs.items()
                for v in p.vmas}

    def stale(self) -> None:
        """The host may have changed (the console ran a command): re-read the system
        files and the watched processes at the next step. The host's own report that
        a step read something (its listeners, called from the step) is not news."""
        if self._stepping != threading.get_ident():
            self._poked = True

    def _poke(self) -> None:
        if not self._poked:
            return
        self._poked = False
        m = self.m
        m.refresh.last.pop("system", None)
        for pid in m.refresh.watched:
            p = m.procs.get(pid)
            if p is not None and p.vmas_read is not None:
                p.vmas_read = float("-inf")  # due, and still counted meanwhile

    @property
    def busy(self) -> bool:
        """Something is due: the system files, a process, or the frame map's pass."""
        m = self.m
        r = m.refresh
        if self._poked or r.due("system"):
            return True
        if m.frames is not None and m.frames.available and r.due("frames"):
            return True
        return bool(r.due_processes({pid: p.vmas_read for pid, p in list(m.procs.items())
                                     if not p.kthread}))

    def step(self, budget_s: float = 0.004) -> bool:
        """Read what is due for about budget_s seconds. True when something was read."""
        with self._lock:
            self._stepping = threading.get_ident()
            try:
                self._poke()
                changed = self.m.tick(budget_s)
            finally:
                self._stepping = None
        if changed:
            self.passes += 1
        return changed

    def run(self) -> None:
        """Read what is due now, for up to RUN_BUDGET seconds (what is left stays due for
        step()); nothing while a step runs in another thread (it is reading already)."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._stepping = threading.get_ident()
            self._poke()
            self.m.tick(RUN_BUDGET)
        finally:
            self._stepping = None
            self._lock.release()
        self.passes += 1

    def vma(self, pid: int, v: HostVma) -> np.ndarray:
        return v.per_node

    def process(self, pid: int, anon_only: bool = False) -> np.ndarray:
        per = np.zeros(len(self.m.nodes_list), np.int64)
        try:
            vmas = self.m.process(pid).vmas
        except OSError:  # gone
            return per
        for v in vmas:
            if (not anon_only or v.kind == "anon") and v.per_node.size == per.size:
                per += v.per_node
        return per


def _counted(m: Host, p: HostProcess) -> bool:
    return p.vmas_read is not None and p.vmas_error is None and not p.kthread


def _row(m: Host, p: HostProcess, counts: NodeCounts | None, idx: dict[int, int]
         ) -> ProcRow:
    if _counted(m, p):
        per = counts.process(p.pid) if counts is not None else m.per_node(p.pid)
        rss = int(per.sum())
    else:
        per = np.zeros(len(m.nodes_list), np.int64)
        rss = p.rss
    loc = None
    if rss and per.sum() and p.node in idx:
        loc = 100.0 * float(per[idx[p.node]]) / float(per.sum())
    return ProcRow(p.pid, p.name, p.uid, p.node, rss, per, loc, p.policy)


def process_rows(m: Host, counts: NodeCounts | None = None) -> list[ProcRow]:
    """A row per process. Pages per node from its last numa_maps (read now if never
    read and no `counts` is given); a process whose numa_maps cannot be read shows
    its VmRSS and no per-node split."""
    rows = []
    idx = node_index(m)
    for pid in m.pids:
        try:
            p = m.process(pid)
        except OSError:  # gone since the list was read
            continue
        if counts is None and p.vmas_read is None and not p.kthread:
            m.read_vmas(pid)
        rows.append(_row(m, p, counts, idx))
    return rows


def vma_rows(m: Host, pid: int, counts: NodeCounts | None = None) -> list[VmaRow]:
    out = []
    for v in m.vmas_of(pid):
        per = v.per_node
        # numa_maps' mapmax says a page is shared, not how many are: none counted
        out.append(VmaRow(v.start, v.end, v.kind, v.flag_string(), v.policy, v.locked,
                          shared_pages=0, rss=int(per.sum()), per_node=per,
                          npages=(v.end - v.start) // m.page_size))
    return out


def find_vma(m: Host, pid: int, start: int) -> Any:
    try:
        vmas = m.vmas_of(pid)
    except OSError:
        return None
    for v in vmas:
        if v.start <= start < v.end:
            return v
    return None


def frame_owner(m: Host, pfn: int) -> tuple[int, int] | None:
    """(pid, address) of a mapping of the frame (a pagemap search; None when it is not
    mapped, not found within the search budget, or PFNs are hidden from us)."""
    try:
        if m.frames is not None and m.frames.mapcount(pfn) == 0:
            return None
        return m.owner_of(pfn)
    except Exception:  # noqa: BLE001 - an inspector never fails
        return None


def zone_at(m: Host, pfn: int) -> Any:
    for z in m.zones:
        if z.spanned and z.start_pfn <= pfn < z.end_pfn:
            return z
    return None


def driver_of_frame(m: Host, pfn: int) -> str | None:
    """The host's drivers' frames are not attributed (no kpageflags bit says whose)."""
    return None


def hook_drivers(m: Host) -> list[tuple[str, bool]]:
    return []


def frames_unavailable(m: Host) -> str | None:
    """Why the frame map cannot be shown (None: it can)."""
    if m.frames is None or not m.frames.available:
        return m.frames.why if m.frames is not None else "no frame map"
    return None


def _block_of(m: Host, pfn: int) -> dict | None:
    for b in m.blocks():
        if b["pages"] and b["start_pfn"] <= pfn < b["start_pfn"] + b["pages"]:
            return b
    return None


def describe_frame(m: Host, pfn: int, owner: Callable[[int], Any] | None = None
                   ) -> list[tuple[str, str]]:
    """(label, value) lines for the inspector: the frame's place, class and flags
    (kpageflags), map count (kpagecount), a process mapping it (pagemap; `owner`:
    another way to find it, such as HostView's cached search)."""
    pfn = int(pfn)
    if not 0 <= pfn < m.nr_frames:
        return [("PFN", f"{pfn} (outside the machine)")]
    z = zone_at(m, pfn)
    node = int(m.node_of([pfn])[0])
    out = [("PFN", f"{pfn:#x} ({pfn})"), ("phys", f"{pfn * m.page_size:#x}"),
           ("node", str(node) if node >= 0 else "?"),
           ("zone", z.name if z is not None else "?")]
    b = _block_of(m, pfn)
    if b is not None:
        out.append(("block", f"memory{b['index']} {b['state']}"))
    why = frames_unavailable(m)
    if why is not None:
        out.append(("flags", why))
        return out
    try:
        raw = m.frames.raw(pfn)
    except OSError as e:
        out.append(("flags", f"cannot read: {e.strerror}"))
        return out
    cls = int(m.frames.classes(pfn, pfn + 1)[0])
    out.append(("class", CLASSES[cls]))
    names = kpf_names(raw)
    out.append(("flags", ",".join(names) if names else "-"))
    out.append(("kpageflags", f"{raw:#018x}"))
    mc = m.frames.mapcount(pfn)
    out.append(("mapcount", "?" if mc is None else str(mc)))
    if mc:
        found = (owner or (lambda f: frame_owner(m, f)))(pfn)
        if found is not None:
            pid, addr = found
            name = m.procs[pid].name if pid in m.procs else "?"
            out.append(("owner", f"pid {pid} {name}"))
            out.append(("address", f"{addr:#x}"))
        elif not m.pfns_visible:
            out.append(("owner", "hidden (pagemap shows PFNs to CAP_SYS_ADMIN only)"))
        else:
            out.append(("owner", "not found within the search budget"))
    return out


def cell_summary(m: Host, a: int, b: int) -> str:
    """What a map cell covering frames [a, b) holds: counts by class."""
    if frames_unavailable(m) is not None:
        return "unknown (no frame map)"
    c = np.bincount(m.frames.classes(a, b), minlength=NCLASS)
    return ", ".join(f"{CLASSES[k]} {int(n)}" for k, n in enumerate(c) if n)


def frame_kinds(m: Host, a: int, b: int) -> np.ndarray:
    """The simulator's kind (K_*) of frames [a, b); all K_OFFLINE (unknown) when the
    frame map cannot be read (frames_unavailable says why)."""
    if frames_unavailable(m) is not None:
        return np.full(max(0, min(b, m.nr_frames) - max(0, a)), K_OFFLINE, np.uint8)
    return m.frames.kinds(a, b)


def frame_flags(m: Host, a: int, b: int) -> np.ndarray:
    """The simulator's flag bits (PG_*) of frames [a, b) (zeros without a frame map)."""
    if frames_unavailable(m) is not None:
        return np.zeros(max(0, min(b, m.nr_frames) - max(0, a)), np.uint8)
    return m.frames.flags(a, b)


def frame_classes(m: Host, a: int, b: int) -> np.ndarray:
    """The host class (FRAME_CLASSES index) of frames [a, b)."""
    if frames_unavailable(m) is not None:
        return np.full(max(0, min(b, m.nr_frames) - max(0, a)), CLASSES.index("hole"),
                       np.uint8)
    return m.frames.classes(a, b)


def zone_class_counts(m: Host) -> dict[int, dict[str, int]]:
    """zone index -> {class: frames} from the last complete counting pass."""
    if m.frames is None:
        return {}
    return {zid: m.frames.zone_counts(zid) for zid in m.frames.counts}


# ------------------------------------------------------------------ page tables

def vma_frames(v: HostVma, o0: int = 0, o1: int | None = None) -> np.ndarray:
    """PFNs of the present pages in [o0, o1) of a VMA (pagemap; empty without
    CAP_SYS_ADMIN)."""
    if v.host is None:
        return np.zeros(0, np.int64)
    return v.host.vma_pfns(v, o0, o1)


def vma_pages_per_node(m: Host, v: HostVma) -> np.ndarray:
    """Pages per node of a VMA (numa_maps' counts, which leave out the zero page)."""
    return v.per_node


def process_pages_per_node(m: Host, p: HostProcess) -> np.ndarray:
    return m.per_node(p.pid)


def process_frames(m: Host, pid: int) -> np.ndarray:
    """Every frame a process maps (the zero page not included): pagemap PFNs."""
    p = m.procs.get(pid)
    if p is None:
        return np.zeros(0, np.int64)
    parts = [vma_frames(v) for v in m.vmas_of(pid) if v.per_node.sum()]
    out = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return out[out != m.zero_pfn]


def resident_pages(m: Host, p: HostProcess) -> int:
    return int(m.per_node(p.pid).sum()) if _counted(m, p) else p.rss


# ------------------------------------------------------------------ host status

def limits(m: Host) -> list[str]:
    return m.limits()


def refresh_text(m: Host) -> str:
    return m.refresh.text(len(m.procs))


def status_line(m: Host) -> str:
    mem = sum(z.present for z in m.zones) * m.page_size
    mode = "actions allowed" if m.actions.allow else "read-only"
    hidden = len(m.limits()) - (0 if m.actions.allow else 1)
    return (f"host {m.name} (Linux {m.kernel}): {len(m.nodes)} node(s), {fmt_bytes(mem)}, "
            f"{len(m.procs)} processes; {mode}"
            + (f"; {hidden} thing(s) hidden (see limits)" if hidden else ""))


def views_for(m: Any):
    """The view module that draws `m`: this one for a Host, engine.views otherwise."""
    return sys.modules[__name__] if getattr(m, "is_host", False) else engine_views


# ------------------------------------------------------------------ the view object

class HostView(MachineView):
    """engine.views' view API (VIEW_API) over a Host, for the console: the topology,
    zones and watermarks as the simulator's (the host reads them into the same types);
    frames from kpageflags (kinds and flags, no owner per frame); processes and VMAs
    from numa_maps; no simulated jobs, drivers, workloads or migrations to undo."""

    def __init__(self, m: Any) -> None:
        super().__init__(m)
        self._owners: dict[int, tuple[float, tuple[int, int] | None]] = {}

    def status(self) -> Status:
        m = self.m
        return Status(m.name, f"host (Linux {m.kernel})", True, len(m.nodes_list),
                      sum(z.present for z in m.zones) * m.page_size, m.nr_frames,
                      m.page_size, 0, ClockInfo("host", 1.0, "live host"), 0,
                      live=True, read_only=not m.actions.allow)

    def _traffic(self) -> np.ndarray | None:
        return None  # the host's migration counters are per system, not per node pair

    def free_history(self, n: int) -> dict[int, list[float]] | None:
        return None

    def _gather(self, pfns: np.ndarray, which: int) -> np.ndarray:
        """Kinds (1) or flags (2) of arbitrary frames, from the frame map's cache
        (unknown frames: offline kind, no flags)."""
        fill = K_OFFLINE if which == 1 else 0
        pfns = np.asarray(pfns, np.int64)
        if frames_unavailable(self.m) is not None or pfns.size == 0:
            return np.full(pfns.shape, fill, np.uint8)
        return self.m.frames.gather(pfns, which, fill)

    def frame_sample(self, pfns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kinds = self._gather(pfns, 1)
        return kinds, np.full(kinds.shape, -1, np.int32)

    # huge pages: on the host they are a colour class of the frame map (kpageflags'
    # KPF_HUGE / KPF_THP), so the map needs no mark over them, and the inspector shows
    # the frame's raw kpageflags word (COMPOUND_HEAD, COMPOUND_TAIL bits), not a range
    def frame_huge(self, pfns: np.ndarray) -> np.ndarray | None:
        return None

    def has_huge_pages(self) -> bool:
        return False

    def folio_of(self, pfn: int) -> tuple[int, int, bool, bool] | None:
        return None

    def frame_words(self, a: int, b: int) -> np.ndarray:
        return (frame_kinds(self.m, a, b).astype(np.uint16)
                | frame_flags(self.m, a, b).astype(np.uint16) << 8)

    def frame_flags(self, pfns: np.ndarray) -> np.ndarray:
        return self._gather(pfns, 2)

    def frame_owner(self, pfn: int) -> tuple[int, int] | None:
        """frame_owner(), remembered for a frame-map period (a search reads pagemaps:
        the inspector and the keys ask for the same frame again and again)."""
        m = self.m
        pfn = int(pfn)
        now = m.clock_fn()
        hit = self._owners.get(pfn)
        if hit is not None and now - hit[0] <= m.refresh.rates.frames:
            return hit[1]
        found = frame_owner(m, pfn)
        if len(self._owners) >= 1024:
            self._owners = {}
        self._owners[pfn] = (now, found)
        return found

    def describe_frame(self, pfn: int) -> list[tuple[str, str]]:
        return describe_frame(self.m, pfn, owner=self.frame_owner)

    def cell_summary(self, a: int, b: int) -> str:
        return cell_summary(self.m, a, b)

    def drivers(self) -> list[DriverInfo]:
        return []

    def driver_names(self) -> list[str]:
        return []

    def driver_at(self, pfn: int) -> DriverInfo | None:
        return None

    def node_counts(self) -> NodeCounts:
        return NodeCounts(self.m)

    def processes(self, counts: Any = None) -> list[ProcRow]:
        return process_rows(self.m, counts)

    def process(self, pid: int, counts: Any = None) -> ProcRow | None:
        m = self.m
        p = m.procs.get(pid)
        if p is None:
            return None
        # from the last readings (counts given or not: one row never reads them all)
        return _row(m, p, counts if counts is not None else NodeCounts(m), node_index(m))

    def vmas(self, pid: int, counts: Any = None) -> list[VmaRow]:
        try:
            return vma_rows(self.m, pid, counts)
        except OSError:  # the process is gone
            return []

    def vma_at(self, pid: int, addr: int, counts: Any = None) -> VmaRow | None:
        return next((r for r in self.vmas(pid) if r.start <= addr < r.end), None)

    def vma_frames(self, pid: int, start: int) -> np.ndarray:
        v = find_vma(self.m, pid, start)
        return np.zeros(0, np.int64) if v is None else vma_frames(v)

    def vma_ranges(self, pid: int) -> list[tuple[int, int]]:
        return [(r.start, r.end) for r in self.vmas(pid)]

    def job_outcome(self, job: Any) -> tuple[str, bool]:
        return summarize_result(job.result), job.state == "done"

    def workloads(self, pid: int | None = None, running: bool = True
                  ) -> list[tuple[int, int, str]]:
        return []

    def daemons(self, running: bool = True) -> list[tuple[int, int, str]]:
        return []

    def last_migration(self) -> tuple[str, int | None, int] | None:
        return None

    # -------------------------------------------------------------- a live machine
    def frames_unavailable(self) -> str | None:
        return frames_unavailable(self.m)

    def refresh_info(self) -> RefreshInfo | None:
        r = self.m.refresh
        return RefreshInfo(r.rates.watched, r.rates.others, r.rates.system, r.rates.frames,
                           r.cpu_share(), refresh_text(self.m))

    def limits(self) -> list[str]:
        return limits(self.m)

    def status_line(self) -> str:
        return status_line(self.m)

    def watch(self, pids: list[int], selected: int | None = None) -> None:
        """The rows the console shows and the selected process: the refresh policy
        reads their numa_maps often, the others rarely."""
        self.m.refresh.set_visible(pids)
        self.m.refresh.select(selected)


def view_for(m: Any) -> MachineView:
    """The view object that draws `m`: a HostView for a Host, else a MachineView."""
    return HostView(m) if getattr(m, "is_host", False) else MachineView(m)


__all__ = [
    "COUNT_SLICE", "FRAME_CLASSES", "KUSE_NAMES", "NodeCounts", "ProcRow", "VmaRow",
    "cell_summary", "describe_frame", "driver_of_frame", "find_vma", "flag_names",
    "fmt_bytes", "fmt_count", "fmt_pages", "frame_classes", "frame_flags", "frame_kinds",
    "frame_owner", "frames_unavailable", "hook_drivers", "job_line", "limits", "node_index",
    "RUN_BUDGET",
    "pages_per_node", "policy_str", "process_frames", "process_pages_per_node",
    "process_rows", "refresh_text", "resident_pages", "status_counts", "status_counts_text",
    "status_line", "summarize_result", "vma_frames", "vma_pages_per_node", "vma_rows",
    "views_for", "zone_at", "zone_class_counts", "HostView", "view_for", "VIEW_API",
]
