"""`Host`: the machine numacon runs on, read live from Linux, offering what the console
and the command language read of a simulated Machine under the same names:

- topology: name, page_size, page_shift, nodes, nodes_list (engine.mm.state.Node),
  zones (engine.mm.state.Zone, refreshed), nr_frames, node(), node_zones(),
  memory_nodes(), distance(), node_of(), zone_of(), blocks()
- processes: procs, pids, process()/task() (HostProcess with HostVma rows)
- Linux's own views: numa_maps(pid), zoneinfo(), vmstat(), numastat(), meminfo(node),
  hardware(), node_numastat(node): the host's files as they are (numastat and
  `numactl -H` are formatted by the simulator's own formatters, engine/mm/procfs.py,
  from the host's numbers)
- frames: a FrameMap over /proc/kpageflags (when readable), owner_of(pfn)
- `tick(budget_s)`: the refresh policy's due readings (engine/host/refresh.py)
- `actions`: the real move_pages/migrate_pages, refused unless allowed; with
  `confirm=True` (the console) every action is rehearsed first and waits, as
  `pending`, for an explicit `apply N` (engine/host/commands.py)
- `limits()`: what cannot be shown with the permissions numacon has, one sentence each

Nothing here changes the host except through `actions`."""

from __future__ import annotations

import ctypes
import errno
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from ..machines.capture import _task_policy
from ..mm import procfs
from ..mm.page_alloc import NUMASTAT_NAMES
from ..mm.zones import Node, NodeSet, Zone
from .kpage import C_HOLE, C_OFFLINE, FrameMap, pagemap_pfns, read_pagemap
from .readers import (
    HostProcess,
    HostVma,
    list_pids,
    read_blocks,
    read_node_numastat,
    read_process,
    read_ram_ranges,
    read_text,
    read_topology,
    read_vmas,
    read_vmstat,
)
from .refresh import Rates, RefreshPolicy
from .syscalls import Actions

OWNER_BUDGET = 1 << 24  # pagemap entries an owner search may read (128 MiB)
PROT_RW, MAP_PRIVATE_ANON = 3, 0x22


def probe_pagemap(root: str, page_size: int) -> tuple[int, int]:
    """(PFN of a page we wrote, PFN of a page we only read: the zero page), as our own
    /proc/self/pagemap shows them (0: hidden). Two pages of a private mapping of our
    own, unmapped afterwards."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    base = libc.mmap(None, 2 * page_size, PROT_RW, MAP_PRIVATE_ANON, -1, 0)
    if base in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap failed")
    try:
        ctypes.memset(base, 1, 1)
        _ = ctypes.c_char.from_address(base + page_size).value
        e = read_pagemap(root, os.getpid(), base, 2, page_size)
        p = pagemap_pfns(e) if e.size == 2 else np.zeros(2, np.int64)
        return max(0, int(p[0])), max(0, int(p[1]))
    finally:
        libc.munmap(base, 2 * page_size)


class Host(NodeSet):
    """The live host. Reading it needs no privilege for most of it; `limits()` says
    what the current credentials hide."""

    is_host = True

    def __init__(self, root: str = "/", *, allow_actions: bool = False,
                 kpageflags: str | None = None, kpagecount: str | None = None,
                 clock: Callable[[], float] = time.monotonic, rates: Rates | None = None,
                 processes: bool = True, confirm: bool = False) -> None:
        self.root = root
        self.page_size = os.sysconf("SC_PAGE_SIZE")
        self.page_shift = self.page_size.bit_length() - 1
        u = os.uname()
        self.name, self.kernel = u.nodename, u.release
        self.clock_fn = clock
        self.refresh = RefreshPolicy(clock, rates)
        self.actions = Actions(allow_actions)
        # the console's mode: an action line gives its rehearsal, and the rehearsal
        # numbered `rehearsals` waits as `pending` until `apply N` (or another replaces it)
        self.confirm_actions = bool(confirm)
        self.pending: Any = None  # engine.host.rehearse.Rehearsal
        self.rehearsals = 0
        self.kpageflags_path = kpageflags or os.path.join(root, "proc/kpageflags")
        self.kpagecount_path = kpagecount or os.path.join(root, "proc/kpagecount")
        self.procs: dict[int, HostProcess] = {}
        self.skipped: Counter = Counter()  # processes not read, by reason
        self.listeners: list[Callable[[Host], None]] = []
        self.jobs: list = []  # the host runs no simulated jobs
        self.finished_jobs: list = []
        self.zero_pfn = -1  # numa_maps never counts the zero page; PFNs do not need it
        self._pfns_visible: bool | None = None
        self.frames: FrameMap | None = None
        self.read_system()
        if processes:
            self.read_process_list()

    # ------------------------------------------------------------ system
    def read_system(self) -> None:
        """Nodes, zones, distances, blocks, numastat (cheap sysfs and procfs files)."""
        t0 = time.perf_counter()
        topo = read_topology(self.root)
        self.nodes_list: list[Node] = topo.nodes
        self.zones: list[Zone] = topo.zones
        self.distances = topo.distances
        self.memtotal = topo.memtotal
        self.block_size, self._blocks = read_blocks(self.root, self.page_size)
        ends = [z.end_pfn for z in self.zones if z.spanned]
        self._nr_frames = max(ends, default=0)
        spans = sorted((z.start_pfn, z.end_pfn, z.node, z.zid) for z in self.zones
                       if z.spanned)
        self._starts = np.array([s[0] for s in spans], np.int64)
        self._ends = np.array([s[1] for s in spans], np.int64)
        self._span_node = np.array([s[2] for s in spans], np.int64)
        self._span_zone = np.array([s[3] for s in spans], np.int64)
        nn = self.nr_node_ids
        self.numastat_arr = np.zeros((len(NUMASTAT_NAMES), nn), np.int64)
        for n in self.nodes:
            st = read_node_numastat(self.root, n)
            for i, k in enumerate(NUMASTAT_NAMES):
                self.numastat_arr[i, n] = st.get(k, 0)
        ram = read_ram_ranges(self.root, self.page_size)
        self.ram_ranges = ram
        overlay = []
        if ram is not None:
            edges = sorted(ram)
            prev = 0
            for a, b in edges:
                if a > prev:
                    overlay.append((prev, a, C_HOLE))
                prev = max(prev, b)
            if prev < self._nr_frames:
                overlay.append((prev, self._nr_frames, C_HOLE))
        for b in self._blocks:
            if b["state"] == "offline":
                overlay.append((b["start_pfn"], b["start_pfn"] + b["pages"], C_OFFLINE))
        if self.frames is None:
            self.frames = FrameMap(self.kpageflags_path, self.kpagecount_path,
                                   self._nr_frames, self.zones, overlay, clock=self.clock_fn,
                                   max_age=self.refresh.rates.frames)
        else:
            self.frames.zones = [z for z in self.zones if z.spanned]
            self.frames.overlay = sorted(overlay)
            self.frames.nr_frames = self._nr_frames
            self.frames.max_age = self.refresh.rates.frames
        self.refresh.done("system")
        self.refresh.spent(time.perf_counter() - t0)

    @property
    def nr_frames(self) -> int:
        return self._nr_frames

    @property
    def clock(self) -> int:
        """Now, in ns of the host's monotonic clock (the simulator's m.clock is
        simulated time)."""
        return int(self.clock_fn() * 1e9)

    def node(self, nid: int) -> Node:
        for n in self.nodes_list:
            if n.id == nid:
                return n
        raise OSError(errno.ENODEV, f"no node {nid}")

    def node_zones(self, nid: int) -> list[Zone]:
        return [z for z in self.zones if z.node == nid]

    def zone(self, nid: int, name: str) -> Zone:
        for z in self.node_zones(nid):
            if z.name.lower() == str(name).lower():
                return z
        raise OSError(errno.EINVAL, f"node {nid} has no zone {name!r}")

    def memory_nodes(self) -> list[int]:
        return [n for n in self.nodes if any(z.present for z in self.node_zones(n))]

    def distance(self, a: int, b: int) -> int:
        return int(self.distances.get((a, b), 10 if a == b else 20))

    def page_align(self, n: int) -> int:
        return (int(n) + self.page_size - 1) & ~(self.page_size - 1)

    def totalram_pages(self) -> int:
        return sum(z.managed for z in self.zones)

    def _span_of(self, pfns) -> tuple[np.ndarray, np.ndarray]:
        pfns = np.asarray(pfns, np.int64)
        if not self._starts.size:
            return np.full(pfns.shape, -1, np.int64), np.zeros(pfns.shape, bool)
        i = np.searchsorted(self._starts, pfns, side="right") - 1
        ok = (i >= 0) & (pfns >= 0)
        ok[ok] &= pfns[ok] < self._ends[i[ok]]
        return i, ok

    def node_of(self, pfns) -> np.ndarray:
        """The node of each PFN (-1 outside every zone)."""
        i, ok = self._span_of(pfns)
        return np.where(ok, self._span_node[np.maximum(i, 0)], -1) if i.size else i

    def zone_of(self, pfns) -> np.ndarray:
        """The index in `zones` of each PFN's zone (-1 outside every zone)."""
        i, ok = self._span_of(pfns)
        return np.where(ok, self._span_zone[np.maximum(i, 0)], -1) if i.size else i

    def blocks(self) -> list[dict]:
        """/sys/devices/system/memory/memoryN, with the keys of Machine.blocks()."""
        return list(self._blocks)

    # ------------------------------------------------------------ processes
    def read_process_list(self) -> None:
        """Every process's status and stat (cheap: no page-table walk). Processes keep
        their VMAs from the last numa_maps reading unless their PID was reused."""
        t0 = time.perf_counter()
        cpu_node = {c: n.id for n in self.nodes_list for c in n.cpus}
        first = next((n.id for n in self.nodes_list if n.cpus), self.nodes[0] if
                     self.nodes else 0)
        procs: dict[int, HostProcess] = {}
        skipped: Counter = Counter()
        for pid in list_pids(self.root):
            try:
                p = read_process(self.root, pid, cpu_node, first, self.page_size)
            except (FileNotFoundError, ProcessLookupError):
                skipped["exited"] += 1
                continue
            except OSError:
                skipped["unreadable"] += 1
                continue
            old = self.procs.get(pid)
            if old is not None and old.starttime == p.starttime:
                p.vmas, p.policy = old.vmas, old.policy
                p.vmas_read, p.vmas_error = old.vmas_read, old.vmas_error
            procs[pid] = p
        self.procs = procs
        self.skipped = skipped
        self.refresh.spent(time.perf_counter() - t0)

    @property
    def pids(self) -> list[int]:
        return sorted(self.procs)

    def process(self, pid: int) -> HostProcess:
        """The process (read now if the list has not seen it yet); ESRCH if none."""
        pid = int(pid)
        p = self.procs.get(pid)
        if p is None:
            cpu_node = {c: n.id for n in self.nodes_list for c in n.cpus}
            try:
                p = read_process(self.root, pid, cpu_node, self.nodes[0], self.page_size)
            except OSError:
                raise OSError(errno.ESRCH, f"no process {pid}") from None
            # a new dict, not an insertion: another thread may be iterating this one
            self.procs = {**self.procs, pid: p}
        return p

    task = process

    def read_vmas(self, pid: int) -> HostProcess:
        """Re-read a process's maps and numa_maps now (a page-table walk)."""
        p = self.process(pid)
        t0 = time.perf_counter()
        if not p.kthread:
            try:
                p.vmas = read_vmas(self.root, pid, self.nodes, self.page_size,
                                   locked=p.locked_kb > 0)
                for v in p.vmas:
                    v.host = self
                p.policy = _task_policy(p)
                p.vmas_error = None
            except OSError as e:
                p.vmas = []
                p.vmas_error = f"{os.strerror(e.errno) if e.errno else e}"
        p.vmas_read = self.clock_fn()
        self.refresh.spent(time.perf_counter() - t0)
        return p

    def vmas_of(self, pid: int) -> list[HostVma]:
        """A process's VMAs, read now if never read."""
        p = self.process(pid)
        if p.vmas_read is None:
            self.read_vmas(pid)
        return p.vmas

    def per_node(self, pid: int) -> np.ndarray:
        """Pages per node (in `nodes` order) of a process, from its last numa_maps."""
        out = np.zeros(len(self.nodes_list), np.int64)
        for v in self.vmas_of(pid):
            if v.per_node.size == out.size:
                out += v.per_node
        return out

    # ------------------------------------------------------------ refresh
    def tick(self, budget_s: float = 0.02) -> bool:
        """Read what the refresh policy says is due, for about budget_s seconds.
        True when something was read (listeners are told)."""
        t_end = time.perf_counter() + budget_s
        changed = False
        if self.refresh.due("system"):
            self.read_system()
            self.read_process_list()
            changed = True
        for pid in self.refresh.due_processes({p: q.vmas_read for p, q in self.procs.items()
                                               if not q.kthread}):
            if time.perf_counter() >= t_end:
                break
            try:
                self.read_vmas(pid)
            except OSError:
                continue
            changed = True
        if self.frames is not None and self.frames.available and \
                self.refresh.due("frames") and time.perf_counter() < t_end:
            if self.frames.step(max(0.0, t_end - time.perf_counter())):
                self.refresh.done("frames")
                changed = True
        if changed:
            for cb in self.listeners:
                cb(self)
        return changed

    # ------------------------------------------------------------ Linux's views
    def numa_maps(self, pid: int) -> str:
        return self._proc_file(pid, "numa_maps")

    def _proc_file(self, pid: int, name: str) -> str:
        try:
            return read_text(self.root, f"proc/{int(pid)}/{name}")
        except FileNotFoundError:
            raise OSError(errno.ESRCH, f"no process {pid}") from None

    def zoneinfo(self) -> str:
        return read_text(self.root, "proc/zoneinfo")

    def vmstat(self) -> dict:
        return read_vmstat(self.root)

    def numastat(self) -> str:
        self.read_system()
        return procfs.numastat(self)

    def node_numastat(self, node: int) -> dict:
        return read_node_numastat(self.root, int(node))

    def meminfo(self, node: int) -> str:
        self.node(int(node))
        return read_text(self.root, f"sys/devices/system/node/node{int(node)}/meminfo")

    def hardware(self) -> str:
        """`numactl -H`, formatted by the simulator's formatter from the host's zones
        (size = managed pages = nodeN/meminfo MemTotal, free = free pages)."""
        self.read_system()
        return procfs.numactl_hardware(self)

    # ------------------------------------------------------------ frames
    @property
    def pfns_visible(self) -> bool:
        """Does /proc/PID/pagemap show PFNs to us (CAP_SYS_ADMIN)? Probed once on a
        page of our own, which also finds the zero page's PFN (`zero_pfn`)."""
        if self._pfns_visible is None:
            self._pfns_visible = False
            try:
                own, zero = probe_pagemap(self.root, self.page_size)
            except OSError:
                return False
            self._pfns_visible = own > 0
            if zero > 0:
                self.zero_pfn = zero
        return self._pfns_visible

    def vma_pfns(self, v: HostVma, o0: int = 0, o1: int | None = None) -> np.ndarray:
        """PFNs of the present pages of pages [o0, o1) of a VMA (empty without
        CAP_SYS_ADMIN, or when the process cannot be read)."""
        n = v.length // self.page_size
        o1 = n if o1 is None else min(int(o1), n)
        if o1 <= o0 or not self.pfns_visible:
            return np.zeros(0, np.int64)
        try:
            e = read_pagemap(self.root, v.pid, v.start + o0 * self.page_size, o1 - o0,
                             self.page_size)
        except OSError:
            return np.zeros(0, np.int64)
        p = pagemap_pfns(e)
        return p[p >= 0]

    def owner_of(self, pfn: int, budget: int = OWNER_BUDGET) -> tuple[int, int] | None:
        """(pid, address) of a mapping of frame `pfn`: the pagemaps of processes whose
        numa_maps show pages on the frame's node are searched, largest first, until
        `budget` entries have been read. None when not found (or PFNs are hidden)."""
        if not self.pfns_visible:
            return None
        pfn = int(pfn)
        nid = int(self.node_of([pfn])[0])
        col = self.nodes.index(nid) if nid in self.nodes else -1
        cands = []
        for pid, p in list(self.procs.items()):
            if p.kthread:
                continue
            if p.vmas_read is None:  # never read: read it now (the candidates need it)
                self.read_vmas(pid)
            for v in p.vmas:
                if v.per_node.size and (col < 0 or v.per_node[col]):
                    cands.append((-int(v.per_node.sum()), pid, v))
        read = 0
        for _n, pid, v in sorted(cands, key=lambda c: (c[0], c[1], c[2].start)):
            npages = v.length // self.page_size
            for o in range(0, npages, 1 << 18):
                k = min(npages - o, 1 << 18)
                if read + k > budget:
                    return None
                read += k
                try:
                    e = read_pagemap(self.root, pid, v.start + o * self.page_size, k,
                                     self.page_size)
                except OSError:
                    break
                hit = np.flatnonzero(pagemap_pfns(e) == pfn)
                if hit.size:
                    return pid, v.start + (o + int(hit[0])) * self.page_size
        return None

    # ------------------------------------------------------------ permissions
    def limits(self) -> list[str]:
        """What the current credentials keep numacon from showing or doing, one
        sentence each (empty: nothing is hidden)."""
        out = []
        if self.frames is not None and not self.frames.available:
            out.append(self.frames.why or "the page-frame map is not available")
        if not self.pfns_visible:
            out.append("/proc/PID/pagemap hides PFNs (it needs CAP_SYS_ADMIN): which "
                       "process maps a frame is not shown")
        if self.ram_ranges is None:
            out.append("/proc/iomem shows no addresses (it needs root): holes in a zone "
                       "are shown as kernel frames")
        unread = sum(1 for p in self.procs.values() if p.vmas_error)
        if self.skipped.get("unreadable") or unread:
            out.append(f"{self.skipped.get('unreadable', 0) + unread} process(es) cannot "
                       f"be read (numa_maps needs ptrace read access: the same user, or "
                       f"CAP_SYS_PTRACE): their pages per node are not shown")
        if not self.actions.allow:
            out.append("read-only: move_pages and migrate_pages are refused (pass "
                       "--allow-actions)")
        return out

    def __repr__(self) -> str:
        return (f"<Host {self.name!r} (Linux {self.kernel}) {len(self.nodes)} nodes, "
                f"{self.nr_frames} frames of {self.page_size} B, "
                f"{'actions allowed' if self.actions.allow else 'read-only'}>")
