"""The machine's state: the `Kernel`, which holds what Linux keeps in mmzone.h,
mm_types.h and sched.h, plus drivers, credentials, the clock and the cost model.

Every mm/ and runtime/ module takes a `Kernel` (the state below plus lookups that
only read it) as its first argument; the public facade `engine.Machine` subclasses
it and sits on top. This module imports from mm/ only the types it is made of, so
the engine's import graph points down to it and has no cycle:

- frames.py: page frames, numpy arrays indexed by PFN (`Frames`);
- zones.py: nodes and zones, PFN ranges with their watermarks;
- mm_types.py: address spaces (`Process`) with VMAs over one sparse page table
  (`PageTable`, as mm->pgd), policies, page-cache objects and driver regions
  (`Backing`, indexing their pages in the same kind of table)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..constants import (
    EINVAL,
    ENODEV,
    EPERM,
    ESRCH,
    MIGRATE_BATCH,
    ZONE_NAMES,
    oserror,
)
from ..vec import counts
from .era import MODERN, Era
from .frames import Frames
from .mm_types import VMA, AnonVMA, Backing, Process
from .pagetable import NO_PAGE, PTE_DTYPE, TOKEN_MUL, tokens
from .zones import Node, NodeSet, Zone, compute_watermarks

__all__ = ["NO_PAGE", "PTE_DTYPE", "Driver", "Cred", "SimClock", "CostModel", "Kernel", "drive", "in_nodes",
           "int_arg"]


# ================================================================ drivers

@dataclass(eq=False)
class Driver:
    """A simulated driver: a PFN-mapped region (uncached, framebuffer) with an
    optional vm_ops->migrate hook, or an RDMA driver that pins pages long-term."""

    name: str
    kind: str  # uncached | framebuffer (PFN-mapped region) | rdma (long-term pins)
    node: int
    npages: int
    has_hook: bool = False
    hook_enabled: bool = False
    backing: Backing | None = None  # its region (PFN-mapped kinds)
    # rdma: memory registrations (pid, addr, length, PFNs pinned), each alive until
    # deregistered or its process exits
    pins: list = field(default_factory=list)

    @property
    def pfnmap(self) -> bool:
        return self.kind != "rdma"


# ================================================================ credentials, time, cost

@dataclass(frozen=True)
class Cred:
    """The credentials a call runs with (struct cred, plus the caller's cpuset)."""

    uid: int
    cap_sys_nice: bool
    mems_allowed: frozenset
    node: int
    pid: int | None = None

    @property
    def cap_sys_admin(self) -> bool:
        return self.uid == 0


class SimClock:
    """Simulated time in ns. Everything that takes time goes through advance()."""

    __slots__ = ("ns",)

    def __init__(self, ns: int = 0) -> None:
        self.ns = int(ns)

    def advance(self, ns: float) -> None:
        self.ns += int(ns)

    def advance_to(self, t: int) -> None:
        """Catch up with a point in time (a workload that ran ahead); never back."""
        self.ns = max(self.ns, int(t))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SimClock) and other.ns == self.ns

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"SimClock({self.ns})"


SHMEM_DIRS = ("/dev/shm/",)  # files there are on tmpfs: shmem objects with shared policies

REF_DISTANCE = 21  # the measured 2-socket machine's remote distance


@dataclass
class CostModel:
    """What simulated operations cost, from measured Linux (engine/mm/cost.py)."""

    page_ns_4k: float = 1200.0  # per 4 KiB page, remote (distance 21), flush amortised
    copy_share: float = 0.25  # the copy part, which scales with distance
    wait_ns: int = 20_000  # waiting for a page lock or writeback to clear
    tlb_flush_ns: float = 2500.0  # one TLB shootdown (IPIs to the mm's CPUs)
    local_access_ns: float = 80.0  # a local DRAM access; remote scales with distance
    hint_fault_ns: float = 1500.0  # a NUMA hint fault: trap, task_numa_fault(), return
    scan_ns_per_page: float = 15.0  # change_prot_numa(): arming one page for a hint fault
    damon_check_ns: float = 250.0  # DAMON: one sampled page's Accessed-bit check and reset
    query_ns_per_page: float = 60.0  # move_pages(nodes=NULL): one page-table lookup
    syscall_ns: float = 1000.0  # entering and leaving one system call

    def per_page_ns(self, page_size: int, distance: np.ndarray) -> np.ndarray:
        scale = page_size / 4096
        fixed = self.page_ns_4k * (1 - self.copy_share)
        copy = self.page_ns_4k * self.copy_share * (distance / REF_DISTANCE) * scale
        return fixed + copy

    def flushes(self, npages: int, modern: bool) -> int:
        """TLB shootdowns for migrating npages in one batch call: one per 512-page
        batch in modern kernels, one per page in the 2006 kernels."""
        if npages <= 0:
            return 0
        return -(-npages // MIGRATE_BATCH) if modern else npages

    def access_ns(self, distance) -> np.ndarray:
        """Latency of one access at SLIT distance d: 80 ns x d / 10."""
        return self.local_access_ns * np.asarray(distance, dtype=np.float64) / 10.0

    def stall_ns(self) -> float:
        """A task that hits a migration entry sleeps until the page's batch is done:
        on average half a batch of copies."""
        return self.page_ns_4k * MIGRATE_BATCH / 2


def drive(gen):
    """Run a batch generator to completion and return its value (the synchronous
    form of every long operation; a job steps the same generator)."""
    try:
        while True:
            next(gen)
    except StopIteration as e:
        return e.value


# ================================================================ the kernel state

class Kernel(NodeSet):
    """The state of a NUMA machine and its kernel, with read-only lookups. The
    operations live in the mm/ modules, which take a Kernel; `engine.Machine` adds
    the runtime subsystems and the public API."""

    def __init__(self) -> None:
        self.name = "machine"
        self.page_size = 4096
        self.page_shift = 12
        self._era: Era = MODERN
        self.nodes_list: list[Node] = []
        self.zones: list[Zone] = []
        self.distances = np.zeros((0, 0), np.uint8)
        self.f = Frames(0)
        self.block_pages = 32768
        self.blk_state = np.zeros(0, np.uint8)
        self.blk_isolated = np.zeros(0, bool)
        self.procs: dict[int, Process] = {}
        self.mappings: dict[int, AnonVMA | Backing] = {}  # rmap objects by id
        self.files: dict[str, Backing] = {}
        self.drivers_map: dict[str, Driver] = {}
        self.il_weights: dict[int, int] = {}
        self.numastat_arr = np.zeros((6, 0), np.int64)
        self.vmstat_counts: Counter = Counter()
        self.vmstat_extra: Counter = Counter()
        self.time = SimClock()
        self.cost = CostModel()
        self.seed = 0
        self.zero_pfn = -1
        self.isolated_pages = 0
        # transparent_hugepage/enabled (huge_memory.py); large folios allocated (heads)
        self.thp_mode = "madvise"
        self.large_folios = 0
        # /proc/sys/vm/nr_overcommit_hugepages: surplus huge pages a fault may take from
        # the buddy allocator when the pools are empty (hugetlb.py)
        self.nr_overcommit_hugepages = 0
        self.traffic: np.ndarray | None = None  # pages migrated, (source, target) node
        self.description: dict | None = None
        self.next_id = 1  # ids of rmap objects (anon_vmas, backings)
        self.write_seq = 0  # content tokens of writes
        self.next_pid = 1
        self._node_starts = np.zeros(0, np.int64)
        self._node_ids = np.zeros(0, np.int64)
        self._zone_starts = np.zeros(0, np.int64)
        self._zone_ids = np.zeros(0, np.int64)
        self._tabs: tuple | None = None

    # ------------------------------------------------------------ layout
    def layout(self, page_size: int, nodes: list[tuple[int, tuple, list[int]]],
               distances: np.ndarray, block_size: int) -> None:
        """nodes: (id, cpus, [pages per zone type]). Lays nodes out in PFN order."""
        self.page_size = page_size
        self.page_shift = page_size.bit_length() - 1
        self.block_pages = max(1, block_size // page_size)
        pfn = 0
        for nid, cpus, sizes in nodes:
            start = pfn
            for zt, npg in enumerate(sizes):
                z = Zone(node=nid, name=ZONE_NAMES[zt], zone_type=zt, start_pfn=pfn,
                         spanned=npg, present=npg, managed=npg, free=npg, zid=len(self.zones))
                self.zones.append(z)
                pfn += npg
            self.nodes_list.append(Node(id=nid, cpus=tuple(cpus), start_pfn=start,
                                        spanned=pfn - start))
        self.f = Frames(pfn)
        self.distances = distances
        nblk = (pfn + self.block_pages - 1) // self.block_pages
        self.blk_state = np.zeros(nblk, np.uint8)
        self.blk_isolated = np.zeros(nblk, bool)
        self.numastat_arr = np.zeros((6, self.nr_node_ids), np.int64)
        self.index_ranges()

    def index_ranges(self) -> None:
        """Rebuild the PFN -> node/zone lookup tables (after a layout or a load)."""
        ne = [n for n in self.nodes_list if n.spanned > 0]
        self._node_starts = np.array([n.start_pfn for n in ne], np.int64)
        self._node_ids = np.array([n.id for n in ne], np.int64)
        zs = [z for z in self.zones if z.spanned > 0]
        self._zone_starts = np.array([z.start_pfn for z in zs], np.int64)
        self._zone_ids = np.array([z.zid for z in zs], np.int64)
        # tables node/zone by (pfn >> shift): every node and zone boundary is a
        # multiple of 2**shift, so a gather replaces a binary search per frame
        bounds = [int(b) for b in np.concatenate([self._zone_starts, self._node_starts]) if b]
        bounds += [z.end_pfn for z in self.zones if z.spanned] + [self.nr_frames]
        shift = min((b & -b).bit_length() - 1 for b in bounds if b) if any(bounds) else 20
        shift = min(shift, 20)
        if shift < 6 or not self.nr_frames:
            self._tabs = None  # boundaries too fine: keep the binary search
            return
        base = np.arange(0, self.nr_frames, 1 << shift, dtype=np.int64)
        zt = self._zone_ids[np.searchsorted(self._zone_starts, base, side="right") - 1]
        nt = self._node_ids[np.searchsorted(self._node_starts, base, side="right") - 1]
        self._tabs = (shift, nt.astype(np.int64), zt.astype(np.int64))

    # ------------------------------------------------------------ topology
    @property
    def nr_frames(self) -> int:
        return self.f.n

    @property
    def clock(self) -> int:
        """Simulated time in ns."""
        return self.time.ns

    @property
    def era(self) -> Era:
        return self._era

    @era.setter
    def era(self, era: Era) -> None:
        self._era = era
        compute_watermarks(self.zones, self.page_size, era.is_modern)

    def node(self, nid: int) -> Node:
        nid = int_arg(nid, "node")
        for n in self.nodes_list:
            if n.id == nid:
                return n
        raise oserror(ENODEV, f"no node {nid}")

    def zone_nodes(self) -> np.ndarray:
        """The node of each zone, by zone id."""
        return np.fromiter((z.node for z in self.zones), np.int64, len(self.zones))

    def distance(self, a: int, b: int) -> int:
        """node_distance(): the SLIT entry; a node that does not exist is ENODEV."""
        return int(self.distances[self.node(a).id, self.node(b).id])

    def node_zones(self, nid: int) -> list[Zone]:
        nid = int_arg(nid, "node")
        return [z for z in self.zones if z.node == nid]

    def zone(self, nid: int, name: str) -> Zone:
        if not isinstance(name, str):
            raise TypeError(f"zone must be a zone name, not {type(name).__name__}")
        for z in self.node_zones(nid):
            if z.name.lower() == str(name).lower():
                return z
        raise oserror(EINVAL, f"node {nid} has no zone {name!r}")

    def memory_nodes(self) -> list[int]:
        """Nodes in N_MEMORY: those with present memory."""
        return [n.id for n in self.nodes_list if self.node_has_memory(n.id)]

    def node_has_memory(self, nid: int) -> bool:
        nid = int_arg(nid, "node")
        return any(z.present > 0 for z in self.zones if z.node == nid)

    def node_available(self, nid: int, wmark: str = "min") -> int:
        nid = int_arg(nid, "node")
        return sum(max(0, z.available(wmark) - z.isolated_free) for z in self.node_zones(nid))

    def totalram_pages(self) -> int:
        return sum(z.managed for z in self.zones)

    def node_of(self, pfns) -> np.ndarray:
        pfns = np.asarray(pfns, dtype=np.int64)
        if self._tabs is not None:
            return self._tabs[1][pfns >> self._tabs[0]]
        i = np.searchsorted(self._node_starts, pfns, side="right") - 1
        return self._node_ids[i]

    def zone_of(self, pfns) -> np.ndarray:
        pfns = np.asarray(pfns, dtype=np.int64)
        if self._tabs is not None:
            return self._tabs[2][pfns >> self._tabs[0]]
        i = np.searchsorted(self._zone_starts, pfns, side="right") - 1
        return self._zone_ids[i]

    def page_align(self, n: int) -> int:
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"length must be an integer, not {type(n).__name__}")
        return (int(n) + self.page_size - 1) & ~(self.page_size - 1)

    def il_weight(self, nid: int) -> int:
        return int(self.il_weights.get(int_arg(nid, "node"), 1))

    # ------------------------------------------------------------ objects
    def driver(self, name: str) -> Driver:
        if not isinstance(name, str):
            raise TypeError(f"driver must be a driver name, not {type(name).__name__}")
        try:
            return self.drivers_map[name]
        except KeyError:
            raise oserror(EINVAL, f"no driver {name!r} (drivers: "
                                  f"{', '.join(self.drivers_map) or 'none'})") from None

    def driver_of(self, v: VMA) -> Driver | None:
        if v.backing is None:
            return None
        for d in self.drivers_map.values():
            if d.backing is v.backing:
                return d
        return None

    def next_mapping_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def new_backing(self, name: str, kind: str, npages: int) -> Backing:
        b = Backing(id=self.next_mapping_id(), name=name, kind=kind, npages=int(npages))
        self.mappings[b.id] = b
        return b

    def file(self, name: str, create: bool = False) -> Backing:
        if not isinstance(name, str):
            raise TypeError(f"file must be a file name, not {type(name).__name__}")
        b = self.files.get(name)
        if b is None:
            if not create:
                raise oserror(EINVAL, f"no file {name!r} in the page cache")
            b = self.new_backing(name, "file", 0)
            b.shmem = name.startswith(SHMEM_DIRS)  # tmpfs: POSIX shared memory
            self.files[name] = b
        return b

    def new_tokens(self, k: int, base_vpn: int, offs: np.ndarray) -> np.ndarray:
        """Content values for k page writes: distinct, never 0 (0 = never written).
        uint32 arithmetic wraps modulo 2**32, which is the hash we want."""
        self.write_seq += 1
        seed = np.uint32((self.write_seq * 0x9E3779B1 + base_vpn * int(TOKEN_MUL)) & 0xFFFFFFFF)
        return tokens(offs, seed)  # (the page table stores a chunk of them as its seed)

    def node_pairs(self, src, dst, size: int | None = None) -> np.ndarray:
        """Pages per (source, target) node: an nr_node_ids x nr_node_ids matrix. Either
        side may be one node for every page (size: the pages, when both are)."""
        nn = self.nr_node_ids
        src, dst = np.asarray(src), np.asarray(dst)
        out = np.zeros((nn, nn), np.int64)
        if src.ndim == 0 and dst.ndim == 0:
            out[int(src), int(dst)] = size or 0
            return out
        if src.ndim and src.size:
            lo, hi = int(src.min()), int(src.max())
            if lo == hi:  # one source node (a process that sits on one node): a row
                src, size = np.int64(lo), src.size
        if src.ndim == 0:
            out[int(src)] = counts(dst, nn) if dst.ndim else 0
            if dst.ndim == 0:
                out[int(src), int(dst)] = size or 0
            return out
        if dst.ndim == 0:
            out[:, int(dst)] = counts(src, nn)
            return out
        pair = src.astype(np.int64) * nn
        pair += dst
        return np.bincount(pair, minlength=nn * nn).reshape(nn, nn)

    def record_traffic(self, src: np.ndarray, dst: np.ndarray) -> None:
        self.record_traffic_pairs(self.node_pairs(src, dst))

    def record_traffic_pairs(self, pairs: np.ndarray) -> None:
        """Pages migrated per (source, target) node pair (node_pairs())."""
        nn = self.nr_node_ids
        if self.traffic is None or self.traffic.shape[0] != nn:
            self.traffic = np.zeros((nn, nn), np.int64)
        self.traffic += pairs

    # ------------------------------------------------------------ observers
    def note_moved(self, src: np.ndarray, dst: np.ndarray, driver: str | None = None) -> None:
        """Pages left frames src for frames dst (the migration core, or `driver`'s
        vm_ops->migrate hook). The kernel keeps nothing; the facade records them for
        the results and the undo of migration jobs (engine/runtime/moves.py)."""

    def note_failed(self, pfns: np.ndarray, codes: np.ndarray) -> None:
        """The migration of the pages on frames pfns failed with codes (-errno)."""

    # ------------------------------------------------------------ tasks and credentials
    def credentials(self, caller) -> Cred:
        """The console operator (None: uid 0, CAP_SYS_NICE, the top cpuset: every node
        with memory) or a process."""
        if caller is None:
            return Cred(uid=0, cap_sys_nice=True, mems_allowed=frozenset(self.memory_nodes()),
                        node=0)
        p = self.procs.get(int_arg(caller, "caller"))
        if p is None:
            raise oserror(ESRCH, f"caller pid {caller} does not exist")
        return Cred(uid=p.uid, cap_sys_nice=p.uid == 0, mems_allowed=p.mems_allowed,
                    node=p.node, pid=p.pid)

    def lookup(self, pid, caller=None) -> Process | None:
        """find_task_by_vpid(); pid 0 = the caller."""
        pid = int_arg(pid, "pid")
        if pid == 0:
            if caller is None:
                return None
            pid = int_arg(caller, "caller")
        return self.procs.get(pid)

    def task(self, pid, caller=None) -> Process:
        p = self.lookup(pid, caller)
        if p is None:
            raise oserror(ESRCH, f"no process {pid}")
        return p

    def user(self, pid, caller=None) -> Process:
        """A process with an address space (not a kernel thread)."""
        p = self.task(pid, caller)
        if not p.has_mm:
            raise oserror(EINVAL, f"pid {p.pid} is a kernel thread with no address space")
        return p

    def own_task(self, pid, caller, call: str) -> Process:
        """The process a call that acts on the caller's own address space acts on
        (mbind, set_mempolicy, get_mempolicy, mlock, fork): Linux has no pid argument for
        them, so a caller naming another process gets EPERM. The console operator
        (caller None) acts as the process itself."""
        p = self.task(pid, caller)
        if caller is not None:
            cp = self.credentials(caller).pid
            if cp != p.pid:
                raise oserror(EPERM, f"{call}: acts on the caller's own address space; pid "
                                     f"{cp} cannot make it for pid {p.pid}")
        return p

    def require_admin(self, caller, what: str) -> None:
        """An administrator act (hooks, hot-remove, the era, load, save): refused to a
        caller without CAP_SYS_ADMIN (uid != 0), as the sysfs files and the reboot into
        another kernel are."""
        cred = self.credentials(caller)
        if not cred.cap_sys_admin:
            raise oserror(EPERM, f"{what}: needs CAP_SYS_ADMIN (pid {cred.pid} runs as uid "
                                 f"{cred.uid})")

    def check_access(self, cred: Cred, p: Process, call: str) -> None:
        """ptrace_may_access(PTRACE_MODE_READ_REALCREDS) (modern), or the <= 4.12 rule:
        caller uid matches the target's uid, or CAP_SYS_NICE. Root passes both."""
        if cred.uid == 0 or cred.uid == p.uid:
            return
        if self.era.perm_model == "uid" and cred.cap_sys_nice:
            return
        raise oserror(EPERM, f"{call}: uid {cred.uid} may not act on pid {p.pid} "
                             f"(uid {p.uid})")


def int_arg(x, what: str) -> int:
    """An integer argument of the API: ints only (a float or a bool is a TypeError,
    never silently truncated), and one a C caller could pass: a value that does not
    fit in 64 bits is EINVAL."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, not {type(x).__name__}")
    x = int(x)
    if not -(1 << 63) <= x < 1 << 64:
        raise oserror(EINVAL, f"{what} {x} does not fit in 64 bits")
    return x


def in_nodes(k: Kernel, pfns: np.ndarray, nodes) -> np.ndarray:
    """Whether each frame is on one of `nodes`: a node's frames are its zones' ranges,
    so a few compares a frame where node_of() gathers from a table (4 Mi frames: 5 ms
    against 16). Many ranges: node_of()."""
    spans = sorted((z.start_pfn, z.end_pfn) for n in set(nodes) for z in k.zones
                   if z.node == n and z.end_pfn > z.start_pfn)
    ranges: list[list[int]] = []
    for s, e in spans:  # (adjacent zones of a node: one range)
        if ranges and ranges[-1][1] == s:
            ranges[-1][1] = e
        else:
            ranges.append([s, e])
    if len(ranges) > 3:
        mask = np.zeros(max(k.nr_node_ids, 1), bool)
        mask[[n for n in nodes if 0 <= n < mask.size]] = True
        return mask[k.node_of(pfns)]
    out = np.zeros(len(pfns), bool)
    for s, e in ranges:
        out |= (pfns >= s) & (pfns < e)
    return out
