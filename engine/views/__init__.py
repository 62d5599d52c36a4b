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
      v.frame_words(a, b) -> words   of frames [a, b): kind | flags << 8 (uint16,
                                     contiguous, read-only: one pass ORs both);
                                     flags carry MARK_MLOCKED / MARK_PINNED /
                                     MARK_ISOLATED bits
      v.frame_flags(pfns) -> flags
      v.frame_huge(pfns) -> bool array | None   part of a huge page (None: no huge
                                     page anywhere, nothing more to read)
      v.has_huge_pages() -> bool
      v.folio_of(pfn) -> (head, order, is head, hugetlb) | None
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

from typing import Any

import numpy as np

from ..constants import (
    K_ANON,
    K_FILE,
    K_FREE,
    K_KERNEL,
    K_OFFLINE,
    K_PFNMAP,
    KIND_NAMES,
)
from ..mm.frames import HELD
from ..mm.huge_memory import FOLIO_HUGETLB, FOLIO_TAIL, ORDER_MASK
from ..mm.mm_types import VMA
from ..mm.policy import vma_policy
from ..mm.rmap import mappers
from ..nodemask import nodes_str
from .counts import (
    COUNT_SLICE,
    NodeCounts,
    pages_per_node,
    resident_pages,
    vma_frames,
    vma_pages_per_node,
)
from .records import (
    ClockInfo,
    DriverInfo,
    JobInfo,
    NodeInfo,
    NodeStat,
    ProcRow,
    RefreshInfo,
    Status,
    Topology,
    VmaRow,
    ZoneInfo,
)
from .text import (
    KUSE_NAMES,
    MARK_ISOLATED,
    MARK_MLOCKED,
    MARK_PINNED,
    clock_label,
    daemon_sentence,
    flag_names,
    fmt_bytes,
    fmt_count,
    fmt_pages,
    job_line,
    job_outcome,
    node_index,
    policy_str,
    status_counts,
    status_counts_text,
    summarize_result,
)

__all__ = ["VIEW_API", "MachineView", "Topology", "NodeInfo", "ZoneInfo", "Status", "ClockInfo",
           "RefreshInfo",
           "NodeStat", "DriverInfo", "ProcRow", "VmaRow", "JobInfo", "NodeCounts",
           "K_FREE", "K_KERNEL", "K_ANON", "K_FILE", "K_PFNMAP", "K_OFFLINE", "KIND_NAMES",
           "MARK_MLOCKED", "MARK_PINNED", "MARK_ISOLATED", "fmt_bytes", "fmt_count",
           "fmt_pages", "clock_label", "daemon_sentence", "job_outcome", "job_line",
           "policy_str", "node_index", "flag_names", "COUNT_SLICE", "KUSE_NAMES", "status_counts", "status_counts_text",
           "summarize_result", "pages_per_node", "resident_pages"]

VIEW_API = ("topology", "status", "node_stats", "free_history", "frame_sample",
            "frame_words", "frame_flags", "frame_huge", "has_huge_pages", "folio_of", "describe_frame", "cell_summary", "frame_owner",
            "zone_at", "driver_at", "drivers", "processes", "process", "vmas", "vma_at",
            "vma_frames", "vma_ranges", "node_counts", "jobs", "job_line", "job_outcome",
            "workloads", "daemons", "last_migration", "zone_names", "driver_names",
            "job_ids", "pids", "nodes", "frames_unavailable", "refresh_info", "limits",
            "status_line", "watch")




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
        kind = f.words()[pfns].astype(np.uint8)  # (the low byte: a contiguous gather)
        owner = np.take(self._owner_lut(), f.mapping[pfns], mode="clip")
        np.putmask(owner, kind != K_ANON, -1)
        return kind, owner

    def frame_words(self, a: int, b: int) -> np.ndarray:
        """kind | flags << 8 of frames [a, b) (Frames.words: a read-only view). The map
        ORs them per cell in one contiguous pass; strided kind and flag views of the
        frame records took three times as long (28 ms a 200x60 redraw against 10)."""
        return _readonly(self.m.f.words(a, b))

    def frame_flags(self, pfns: np.ndarray) -> np.ndarray:
        return self.m.f.flags[pfns]

    def frame_huge(self, pfns: np.ndarray) -> np.ndarray | None:
        """Per frame (any shape): part of a huge page (a THP or hugetlb folio); None
        when the machine has none (the map then reads nothing more)."""
        m = self.m
        if not m.large_folios:
            return None
        f = m.f
        return ((f.spare[pfns] & ORDER_MASK) != 0) & HELD[f.kind[pfns]]

    def has_huge_pages(self) -> bool:
        """Whether any large folio (THP or hugetlb page) exists."""
        return bool(self.m.large_folios)

    def folio_of(self, pfn: int) -> tuple[int, int, bool, bool] | None:
        """(head PFN, order, this frame is the head, hugetlb) of the huge page holding
        a frame, or None for a small page."""
        m = self.m
        pfn = int(pfn)
        if not m.large_folios or not 0 <= pfn < m.nr_frames or \
                not HELD[m.f.kind[pfn]]:
            return None
        sp = int(m.f.spare[pfn])
        order = sp & ORDER_MASK
        if not order:
            return None
        head = pfn & ~((1 << order) - 1)
        return head, order, head == pfn, bool(sp & FOLIO_HUGETLB)

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
        fo = self.folio_of(pfn)
        if fo is not None:
            head, order, is_head, hug = fo
            what = ("hugetlb page" if hug else "THP") + f", order {order}"
            out.append(("folio", f"{'head' if is_head else 'tail'} of a {what} "
                                 f"({(m.page_size << order) >> 10} kB)"))
            out.append(("folio range", f"{head:#x}-{head + (1 << order) - 1:#x}"))
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
        huge = 0
        if self.m.large_folios:
            for v in p.vmas:
                if not v.pfnmap:
                    pf = vma_frames(v)
                    sp = self.m.f.spare[pf[(pf >= 0) & (pf != self.m.zero_pfn)]]
                    huge += int((((sp & ORDER_MASK) != 0) & ((sp & FOLIO_TAIL) == 0)).sum())
        return ProcRow(p.pid, p.name, p.uid, p.node, rss, per, loc, policy_str(p.policy),
                       huge)

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
        huge = 0
        if m.large_folios and v.kind != "driver" and pfns.size:
            sp = m.f.spare[pfns]
            huge = int((((sp & ORDER_MASK) != 0) & ((sp & FOLIO_TAIL) == 0)).sum())
        return VmaRow(v.start, v.end, v.kind, v.flag_string(), policy_str(vma_policy(v)),
                      v.locked, shared, int(per.sum()), per, v.npages,
                      drv.name if drv is not None else None, huge)

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

