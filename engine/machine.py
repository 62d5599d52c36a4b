"""`Machine`: the facade that wires topology, frames, processes, policies and the
migration machinery into the public API of shared/design/engine-api.md."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

import numpy as np

from .constants import (
    EFAULT,
    EINTR,
    EINVAL,
    ENODEV,
    EPERM,
    ESRCH,
    K_ANON,
    K_FILE,
    K_FREE,
    K_KERNEL,
    K_OFFLINE,
    K_PFNMAP,
    KUSE_MEMMAP,
    KUSE_SLAB,
    KUSE_ZERO,
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAX_NUMNODES,
    PROT_READ,
    PROT_WRITE,
    VM_EXEC,
    VM_IO,
    VM_LOCKED,
    VM_PFNMAP,
    VM_READ,
    VM_WRITE,
    ZONE_MOVABLE,
    ZONE_NAMES,
    PG_isolated,
    PG_lru,
    PG_mlocked,
    PG_pinned,
    PG_reserved,
    oserror,
)
from .mm import memory as mm
from .mm.era import Era, get_era
from .mm.page_alloc import Frames, zone_available
from .mm.topology import Node, Zone, compute_watermarks
from .runtime.clock import CostModel


class InvariantError(AssertionError):
    """Raised by Machine.check() naming the first broken invariant."""


@dataclass(frozen=True)
class Cred:
    uid: int
    cap_sys_nice: bool
    mems_allowed: frozenset
    node: int
    pid: int | None = None


class Machine:
    """A NUMA machine and its kernel. Build one with Machine.default(),
    Machine.from_description(d) or engine.load(path)."""

    def __init__(self) -> None:
        self.name = "machine"
        self.page_size = 4096
        self.page_shift = 12
        self._era: Era = get_era("modern")
        self.nodes_list: list[Node] = []
        self.zones: list[Zone] = []
        self.distances = np.zeros((0, 0), np.uint8)
        self.f = Frames(0)
        self.block_pages = 32768
        self.blk_state = np.zeros(0, np.uint8)
        self.blk_isolated = np.zeros(0, bool)
        self.procs: dict[int, mm.Process] = {}
        self.mappings: dict[int, object] = {}
        self.files: dict[str, mm.Backing] = {}
        self.drivers_map: dict = {}
        self.il_weights: dict[int, int] = {}
        self.numastat_arr = np.zeros((6, 0), np.int64)
        self.vmstat_counts: Counter = Counter()
        self.vmstat_extra: Counter = Counter()
        self.clock_ns = 0
        self.cost = CostModel()
        self.seed = 0
        self.zero_pfn = -1
        self.isolated_pages = 0
        self.jobs: list = []
        self.finished_jobs: list = []
        self.traffic = None
        self.description: dict | None = None
        self._next_id = 1
        self._write_seq = 0
        self._next_pid = 1
        self._node_starts = np.zeros(0, np.int64)
        self._node_ids = np.zeros(0, np.int64)
        self._zone_starts = np.zeros(0, np.int64)
        self._zone_ids = np.zeros(0, np.int64)
        self._tabs = None
        self.listeners: list = []

    # ------------------------------------------------------------ construction
    @classmethod
    def default(cls) -> Machine:
        """The embedded default machine (no file needed)."""
        from .machines.presets import DEFAULT_DESCRIPTION

        return cls.from_description(DEFAULT_DESCRIPTION)

    @classmethod
    def from_description(cls, d: dict, *, source: str = "<description>") -> Machine:
        from .machines.description import build_machine

        return build_machine(cls(), d, source=source)

    def _layout(self, page_size: int, nodes: list[tuple[int, tuple, list[int]]],
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
        self._index_ranges()

    def _index_ranges(self) -> None:
        ne = [n for n in self.nodes_list if n.spanned > 0]
        self._node_starts = np.array([n.start_pfn for n in ne], np.int64)
        self._node_ids = np.array([n.id for n in ne], np.int64)
        zs = [z for z in self.zones if z.spanned > 0]
        self._zone_starts = np.array([z.start_pfn for z in zs], np.int64)
        self._zone_ids = np.array([z.zid for z in zs], np.int64)
        self._build_tabs()

    def _build_tabs(self) -> None:
        """Lookup tables node/zone by (pfn >> shift): every node and zone boundary is a
        multiple of 2**shift, so a gather replaces a binary search per frame."""
        bounds = [int(b) for b in np.concatenate([self._zone_starts, self._node_starts])
                  if b]
        bounds += [z.end_pfn for z in self.zones if z.spanned] + [self.nr_frames]
        shift = min((b & -b).bit_length() - 1 for b in bounds) if bounds else 20
        shift = min(shift, 20)
        if shift < 6:
            self._tabs = False  # boundaries too fine: keep the binary search
            return
        base = np.arange(0, self.nr_frames, 1 << shift, dtype=np.int64)
        zt = self._zone_ids[np.searchsorted(self._zone_starts, base, side="right") - 1]
        nt = self._node_ids[np.searchsorted(self._node_starts, base, side="right") - 1]
        self._tabs = (shift, nt.astype(np.int64), zt.astype(np.int64))

    # ------------------------------------------------------------ topology
    @property
    def nodes(self) -> list[int]:
        return [n.id for n in self.nodes_list]

    @property
    def nr_node_ids(self) -> int:
        return max(self.nodes) + 1 if self.nodes_list else 0

    @property
    def nr_frames(self) -> int:
        return self.f.n

    def node(self, nid: int) -> Node:
        for n in self.nodes_list:
            if n.id == nid:
                return n
        raise oserror(ENODEV, f"no node {nid}")

    def distance(self, a: int, b: int) -> int:
        return int(self.distances[a, b])

    def node_zones(self, nid: int) -> list[Zone]:
        return [z for z in self.zones if z.node == nid]

    def zone(self, nid: int, name: str) -> Zone:
        for z in self.node_zones(nid):
            if z.name.lower() == str(name).lower():
                return z
        raise oserror(EINVAL, f"node {nid} has no zone {name!r}")

    def memory_nodes(self) -> list[int]:
        """Nodes in N_MEMORY: those with present memory."""
        return [n.id for n in self.nodes_list if any(z.present > 0 for z in
                                                     self.node_zones(n.id))]

    def node_has_memory(self, nid: int) -> bool:
        return any(z.present > 0 for z in self.node_zones(nid))

    def node_available(self, nid: int, wmark: str = "min") -> int:
        return sum(max(0, zone_available(z, wmark) - z.isolated_free)
                   for z in self.node_zones(nid))

    def node_of(self, pfns) -> np.ndarray:
        pfns = np.asarray(pfns, dtype=np.int64)
        if getattr(self, "_tabs", None) is None:
            self._build_tabs()
        if self._tabs:
            return self._tabs[1][pfns >> self._tabs[0]]
        i = np.searchsorted(self._node_starts, pfns, side="right") - 1
        return self._node_ids[i]

    def zone_of(self, pfns) -> np.ndarray:
        pfns = np.asarray(pfns, dtype=np.int64)
        if getattr(self, "_tabs", None) is None:
            self._build_tabs()
        if self._tabs:
            return self._tabs[2][pfns >> self._tabs[0]]
        i = np.searchsorted(self._zone_starts, pfns, side="right") - 1
        return self._zone_ids[i]

    def page_align(self, n: int) -> int:
        return (int(n) + self.page_size - 1) & ~(self.page_size - 1)

    def il_weight(self, nid: int) -> int:
        return int(self.il_weights.get(nid, 1))

    @property
    def era(self) -> Era:
        return self._era

    @era.setter
    def era(self, name) -> None:
        self._era = name if isinstance(name, Era) else get_era(name)
        compute_watermarks(self.zones, self.page_size, self._era.is_modern)

    @property
    def clock(self) -> int:
        return self.clock_ns

    @property
    def drivers(self) -> list[str]:
        return list(self.drivers_map)

    def driver(self, name: str):
        try:
            return self.drivers_map[name]
        except KeyError:
            raise oserror(EINVAL, f"no driver {name!r} (drivers: "
                                  f"{', '.join(self.drivers_map) or 'none'})") from None

    def driver_of(self, v):
        if v.backing is None:
            return None
        for d in self.drivers_map.values():
            if d.backing is v.backing:
                return d
        return None

    def set_migrate_hook(self, driver: str, enabled: bool) -> None:
        d = self.driver(driver)
        if not d.pfnmap:
            raise oserror(EINVAL, f"driver {driver} pins pages; it has no vm_ops->migrate")
        d.has_hook = True
        d.hook_enabled = bool(enabled)

    # ------------------------------------------------------------ ids, mappings
    def next_mapping_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def new_backing(self, name: str, kind: str, npages: int) -> mm.Backing:
        b = mm.Backing(id=self.next_mapping_id(), name=name, kind=kind,
                       pages=np.full(npages, mm.NO_PAGE, mm.PTE_DTYPE),
                       expect=np.zeros(npages, np.uint32))
        self.mappings[b.id] = b
        return b

    def file(self, name: str, create: bool = False) -> mm.Backing:
        b = self.files.get(name)
        if b is None:
            if not create:
                raise oserror(EINVAL, f"no file {name!r} in the page cache")
            b = self.new_backing(name, "file", 0)
            self.files[name] = b
        return b

    def new_tokens(self, k: int, base_vpn: int, offs: np.ndarray) -> np.ndarray:
        """Content values for k page writes: distinct, never 0 (0 = never written).
        uint32 arithmetic wraps modulo 2**32, which is the hash we want."""
        self._write_seq += 1
        seed = np.uint32((self._write_seq * 0x9E3779B1 + base_vpn * 2654435761) & 0xFFFFFFFF)
        t = offs.astype(np.uint32)
        t *= np.uint32(2654435761)
        t += seed
        t[t == 0] = 1
        return t

    # ------------------------------------------------------------ frames
    def free_frames(self, pfns) -> None:
        from .mm.page_alloc import free_frames

        free_frames(self, np.asarray(pfns, dtype=np.int64))

    def clear_mlocked_if_unlocked(self, pfns: np.ndarray) -> None:
        from .mm.mlock import recompute_mlocked

        recompute_mlocked(self, pfns)

    def record_traffic(self, src: np.ndarray, dst: np.ndarray) -> None:
        nn = self.nr_node_ids
        if self.traffic is None or self.traffic.shape[0] != nn:
            self.traffic = np.zeros((nn, nn), np.int64)
        pair = np.asarray(src, np.int64) * nn + np.asarray(dst, np.int64)
        self.traffic += np.bincount(pair, minlength=nn * nn).reshape(nn, nn)

    # ------------------------------------------------------------ credentials
    def credentials(self, caller) -> Cred:
        if caller is None:
            return Cred(uid=0, cap_sys_nice=True, mems_allowed=frozenset(self.nodes), node=0)
        p = self.procs.get(int(caller))
        if p is None:
            raise oserror(ESRCH, f"caller pid {caller} does not exist")
        return Cred(uid=p.uid, cap_sys_nice=p.uid == 0, mems_allowed=p.mems_allowed,
                    node=p.node, pid=p.pid)

    def lookup(self, pid: int, caller=None) -> mm.Process | None:
        """find_task_by_vpid(); pid 0 = the caller."""
        try:
            pid = int(pid)
        except (TypeError, ValueError):
            return None
        if pid == 0:
            if caller is None:
                return None
            pid = int(caller)
        return self.procs.get(pid)

    def task(self, pid: int, caller=None) -> mm.Process:
        p = self.lookup(pid, caller)
        if p is None:
            raise oserror(ESRCH, f"no process {pid}")
        return p

    def check_access(self, cred: Cred, p: mm.Process, call: str) -> None:
        """ptrace_may_access(PTRACE_MODE_READ_REALCREDS) (modern), or the <= 4.12 rule:
        caller uid matches the target's uid, or CAP_SYS_NICE. Root passes both."""
        if cred.uid == 0 or cred.uid == p.uid:
            return
        if self.era.perm_model == "uid" and cred.cap_sys_nice:
            return
        raise oserror(EPERM, f"{call}: uid {cred.uid} may not act on pid {p.pid} "
                             f"(uid {p.uid})")

    # ------------------------------------------------------------ processes
    @property
    def pids(self) -> list[int]:
        return sorted(self.procs)

    def process(self, pid: int) -> mm.Process:
        return self.task(pid)

    def spawn(self, name: str, uid: int = 0, node: int = 0, mems_allowed=None, *,
              pid: int | None = None, kthread: bool = False) -> int:
        from .mm.mempolicy import nodes_str, parse_nodes

        if node not in self.nodes:
            raise oserror(EINVAL, f"spawn: no node {node} (nodes {nodes_str(self.nodes)})")
        if not self.node(node).cpus and not kthread:
            raise oserror(EINVAL, f"spawn: node {node} has no CPUs to run on")
        if int(uid) < 0:
            raise oserror(EINVAL, f"spawn: uid {uid} is negative")
        mems = frozenset(self.nodes) if mems_allowed is None else frozenset(
            parse_nodes(mems_allowed, "mems_allowed"))
        bad = [n for n in mems if n not in self.nodes]
        if bad or not mems:
            raise oserror(EINVAL, f"spawn: cpuset mems {nodes_str(mems) or '(empty)'} "
                                  f"names nodes that do not exist")
        if pid is None:
            pid = max(self._next_pid, max(self.procs, default=0) + 1)
        elif pid in self.procs or pid <= 0:
            raise oserror(EINVAL, f"spawn: pid {pid} is taken or invalid")
        self._next_pid = pid + 1
        self.procs[pid] = mm.Process(pid=pid, name=str(name), uid=int(uid), node=int(node),
                                     mems_allowed=mems, has_mm=not kthread)
        self._changed()
        return pid

    def kill(self, pid: int) -> None:
        p = self.task(pid)
        for d in self.drivers_map.values():
            for (ppid, a, ln) in list(d.pins):
                if ppid == p.pid:
                    from .mm.drivers import unpin_range

                    unpin_range(self, p, a, ln, d)
        for v in list(p.vmas):
            self._unmap_vma(p, v)
        del self.procs[p.pid]
        self._changed()

    def _unmap_vma(self, p: mm.Process, v: mm.VMA) -> None:
        mm.unmap_ptes(self, v, np.arange(v.npages))
        p.vmas.remove(v)
        if v.anon is not None:
            v.anon.vmas.remove(v)
            if not v.anon.vmas and v.anon.inflight <= 0:
                self.mappings.pop(v.anon.id, None)
        if v.backing is not None:
            v.backing.vmas.remove(v)

    def _user(self, pid) -> mm.Process:
        p = self.task(pid)
        if not p.has_mm:
            raise oserror(EINVAL, f"pid {p.pid} is a kernel thread with no address space")
        return p

    def mmap(self, pid: int, length: int, prot: int = PROT_READ | PROT_WRITE,
             flags: int = MAP_PRIVATE | MAP_ANONYMOUS, *, file: str | None = None,
             driver: str | None = None) -> int:
        p = self._user(pid)
        addr = mm.do_mmap(self, p, int(length), int(prot), int(flags), file, driver)
        self._changed()
        return addr

    def munmap(self, pid: int, addr: int, length: int) -> None:
        p = self._user(pid)
        addr, length = int(addr), int(length)
        if addr & (self.page_size - 1) or length <= 0:
            raise oserror(EINVAL, f"munmap: address {addr:#x} must be page aligned and "
                                  f"length positive")
        end = addr + self.page_align(length)
        for v in mm.vmas_in_range(self, p, addr, end, split=True):
            self._unmap_vma(p, v)
        self._changed()

    def vmas_in_range(self, p, start, end, *, split: bool):
        return mm.vmas_in_range(self, p, start, end, split=split)

    def merge_vmas(self, p) -> None:
        mm.merge_vmas(self, p)

    def touch(self, pid: int, addr: int, length: int, *, write: bool = True,
              node: int | None = None) -> None:
        """Fault in / access [addr, addr+length) from a CPU on `node` (default: the
        process's node). An address outside every VMA is EFAULT (a SIGSEGV)."""
        p = self._user(pid)
        addr, length = int(addr), int(length)
        if length <= 0:
            raise oserror(EINVAL, "touch: length must be positive")
        if node is not None and node not in self.nodes:
            raise oserror(EINVAL, f"touch: no node {node}")
        start = addr & ~(self.page_size - 1)
        end = self.page_align(addr + length)
        if mm.range_holes(p, start, end):
            raise oserror(EFAULT, f"touch: [{start:#x}, {end:#x}) is not fully mapped "
                                  f"(SIGSEGV)")
        vmas = mm.vmas_in_range(self, p, start, end, split=False)
        for v in vmas:  # a write to a read-only mapping, any access to PROT_NONE
            if not v.flags & (VM_WRITE if write else VM_READ | VM_WRITE | VM_EXEC):
                raise oserror(EFAULT, f"touch: {'write to' if write else 'read of'} "
                                      f"{v.start:#x}-{v.end:#x}, mapped without "
                                      f"{'PROT_WRITE' if write else 'access'} (SIGSEGV)")
        for v in vmas:
            o0 = (max(v.start, start) - v.start) >> self.page_shift
            o1 = (min(v.end, end) - v.start) >> self.page_shift
            mm.fault_range(self, p, v, o0, o1, write=write, node=node)
        self._changed()

    def touch_vma(self, p, v, o0, o1, *, write, node):
        mm.fault_range(self, p, v, o0, o1, write=write, node=node)

    def read(self, pid: int, addr: int) -> int:
        """The content of the page at addr (0 for a page never written), without
        faulting anything in."""
        p = self._user(pid)
        v = p.find_vma(int(addr))
        if v is None:
            raise oserror(EFAULT, f"read: {int(addr):#x} is not mapped")
        off = (int(addr) - v.start) >> self.page_shift
        pfn = int(v.pte[off])
        if pfn < 0:
            if v.backing is not None and not v.pfnmap:
                i = v.pgoff + off
                return int(v.backing.expect[i]) if i < v.backing.npages else 0
            return 0
        return int(self.f.content[pfn])

    def vma_migratable(self, v: mm.VMA, path: str) -> bool:
        """vma_migratable(): VM_IO/VM_PFNMAP never (since 2.6.21 also for move_pages;
        2.6.18's move_pages had no VMA check); 2.6.18 mempolicy paths skip VM_LOCKED."""
        era = self.era
        if path == "move_pages" and era.status_rules == "2006":
            return True
        if v.flags & (VM_IO | VM_PFNMAP):
            return False
        if path in ("mbind", "migrate_pages") and v.flags & VM_LOCKED and \
                era.mlocked_migration == "move_pages_only":
            return False
        return True

    # ------------------------------------------------------------ Linux calls
    def move_pages(self, pid: int, pages, nodes=None, flags: int = 0, *, caller=None):
        from .mm.migrate import move_pages_gen

        return self.run(move_pages_gen(self, pid, pages, nodes, flags, caller=caller))

    def migrate_pages(self, pid: int, old_nodes, new_nodes, *, caller=None) -> int:
        from .mm.mempolicy import migrate_pages_syscall_gen

        return self.run(migrate_pages_syscall_gen(self, pid, old_nodes, new_nodes,
                                                  caller=caller))

    def mbind(self, pid: int, addr: int, length: int, mode: int, nodemask=(), flags: int = 0,
              *, caller=None) -> None:
        from .mm.mempolicy import mbind_gen

        return self.run(mbind_gen(self, pid, addr, length, mode, nodemask, flags,
                                  caller=caller))

    def set_mempolicy(self, pid: int, mode: int, nodemask=(), *, caller=None) -> None:
        from .mm.mempolicy import set_mempolicy

        set_mempolicy(self, pid, mode, nodemask, caller=caller)
        self._changed()

    def get_mempolicy(self, pid: int, addr: int | None = None, flags: int = 0, *,
                      caller=None):
        from .mm.mempolicy import get_mempolicy

        return get_mempolicy(self, pid, addr, flags, caller=caller)

    def mlock(self, pid: int, addr: int, length: int) -> None:
        from .mm.mlock import do_mlock

        do_mlock(self, self._user(pid), int(addr), int(length), lock=True)
        self._changed()

    def munlock(self, pid: int, addr: int, length: int) -> None:
        from .mm.mlock import do_mlock

        do_mlock(self, self._user(pid), int(addr), int(length), lock=False)
        self._changed()

    def mlockall(self, pid: int, flags: int) -> None:
        from .mm.mlock import do_mlockall

        do_mlockall(self, self._user(pid), int(flags))
        self._changed()

    def munlockall(self, pid: int) -> None:
        from .mm.mlock import do_munlockall

        do_munlockall(self, self._user(pid))
        self._changed()

    def pin(self, pid: int, addr: int, length: int, driver: str | None = None) -> int:
        """Long-term pin (an RDMA memory registration) of a range: its pages can no
        longer migrate. Returns the number of pages pinned."""
        from .mm.drivers import pin_range

        d = self._pin_driver(driver)
        n = pin_range(self, self._user(pid), int(addr), int(length), d)
        self._changed()
        return n

    def unpin(self, pid: int, addr: int, length: int, driver: str | None = None) -> int:
        from .mm.drivers import unpin_range

        d = self._pin_driver(driver)
        n = unpin_range(self, self._user(pid), int(addr), int(length), d)
        self._changed()
        return n

    def _pin_driver(self, name):
        if name is None:
            ds = [d for d in self.drivers_map.values() if not d.pfnmap]
            if not ds:
                raise oserror(EINVAL, "no pinning (rdma) driver on this machine")
            return ds[0]
        d = self.driver(name)
        if d.pfnmap:
            raise oserror(EINVAL, f"driver {name} maps a region; it does not pin pages")
        return d

    # ------------------------------------------------------------ hot-remove / hot-add
    def offline(self, node: int, zone: str, *, dry_run: bool = False) -> dict:
        """Offline every online block of a zone (engine/memory_hotplug.py); returns
        what moved. dry_run: the rehearsal (offline_plan), changing nothing."""
        from .mm.memory_hotplug import offline_plan, offline_zone_gen

        if dry_run:
            return offline_plan(self, node, zone)
        return self.run(offline_zone_gen(self, node, zone))

    def offline_plan(self, node: int, zone: str, *, chunk: int | None = None) -> dict:
        """The rehearsal (`offline --dry-run`); chunk: predict a job of that batch."""
        from .mm.memory_hotplug import offline_plan

        return offline_plan(self, node, zone, chunk=chunk)

    def online(self, node: int, zone: str) -> int:
        from .mm.memory_hotplug import online_zone

        n = online_zone(self, node, zone)
        self._changed()
        return n

    def offline_block(self, index: int) -> dict:
        from .mm.memory_hotplug import offline_block_gen

        return self.run(offline_block_gen(self, index))

    def online_block(self, index: int, how: str = "online") -> int:
        from .mm.memory_hotplug import online_block

        n = online_block(self, index, how)
        self._changed()
        return n

    def blocks(self) -> list[dict]:
        """/sys/devices/system/memory/memoryN: index, state, node, zone, valid_zones,
        removable (and start_pfn, pages, isolated)."""
        from .mm.memory_hotplug import blocks

        return blocks(self)

    # ------------------------------------------------------------ views
    def numa_maps(self, pid: int) -> str:
        from .mm.procfs import numa_maps

        return numa_maps(self, self.task(pid))

    def numastat(self) -> str:
        from .mm.procfs import numastat

        return numastat(self)

    def zoneinfo(self) -> str:
        from .mm.procfs import zoneinfo

        return zoneinfo(self)

    def vmstat(self) -> dict:
        from .mm.procfs import vmstat

        return vmstat(self)

    def meminfo(self, node: int) -> str:
        from .mm.procfs import node_meminfo

        return node_meminfo(self, node)

    def hardware(self) -> str:
        from .mm.procfs import numactl_hardware

        return numactl_hardware(self)

    def node_numastat(self, node: int) -> dict:
        from .mm.page_alloc import NUMASTAT_NAMES

        return {n: int(self.numastat_arr[i, node]) for i, n in enumerate(NUMASTAT_NAMES)}

    # ------------------------------------------------------------ jobs
    def run(self, gen):
        """Drive an operation's generator to completion (the synchronous call)."""
        try:
            while True:
                next(gen)
        except StopIteration as e:
            self._changed()
            return e.value

    def start(self, name: str, *args, batch: int | None = None, **kw):
        """Start a long operation as an asyncio job (a running event loop is needed)."""
        from .runtime.jobs import Job

        gen_fn = self._job_generators().get(name)
        if gen_fn is None:
            raise oserror(EINVAL, f"start: no job {name!r} (jobs: "
                                  f"{', '.join(sorted(self._job_generators()))})")
        chunk = batch or self.job_batch
        job = Job(self, name, None)
        job.gen = gen_fn(*args, chunk=chunk, job=job, **kw)
        self.jobs.append(job)
        if name in self.CHECKED_JOBS:
            # run the call's argument checks now, as the syscall would before any work:
            # a bad call raises here instead of failing after "job started"
            job.step()
            if job.state == "failed" and job.steps == 0:
                if job in self.finished_jobs:
                    self.finished_jobs.remove(job)
                raise job.error
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            job._task = loop.create_task(job.run())
        self._changed()
        return job

    job_batch = 512  # Linux migrates in batches of 512 base pages
    # jobs whose generators yield once their argument checks are done
    CHECKED_JOBS = ("move_pages", "migrate_pages", "mbind", "offline", "offline_block")

    def _job_generators(self) -> dict:
        from .mm.memory_hotplug import offline_block_gen, offline_zone_gen
        from .mm.mempolicy import mbind_gen, migrate_pages_syscall_gen
        from .mm.migrate import move_pages_gen

        gens = {
            "move_pages": lambda *a, **k: move_pages_gen(self, *a, **k),
            "migrate_pages": lambda *a, **k: migrate_pages_syscall_gen(self, *a, **k),
            "mbind": lambda *a, **k: mbind_gen(self, *a, **k),
            "offline": lambda *a, **k: offline_zone_gen(self, *a, **k),
            "offline_block": lambda *a, **k: offline_block_gen(self, *a, **k),
        }
        from .runtime.jobs import job_factories

        for jname, fac in job_factories().items():  # workload, daemon, bill: register_job()
            gens.setdefault(jname, lambda *a, _f=fac, **k: _f(self, *a, **k))
        return gens

    def cancel_error(self, job) -> OSError:
        return oserror(EINTR, f"{job.name}: cancelled after {job.done} of {job.total} pages")

    def _job_finished(self, job) -> None:
        if job in self.jobs:
            self.jobs.remove(job)
        self.finished_jobs.append(job)
        del self.finished_jobs[:-50]
        self._changed()

    def _changed(self) -> None:
        for cb in self.listeners:
            cb(self)

    # ------------------------------------------------------------ runtime (issue 4)
    @property
    def clockctl(self):
        """How jobs pace simulated time against real time (engine/clock.py)."""
        from .runtime.clock import controller

        return controller(self)

    @property
    def timeline(self):
        """Per-node free/used pages and migration traffic over simulated time
        (engine/timeline.py)."""
        from .runtime.timeline import timeline

        return timeline(self)

    @property
    def workloads(self) -> list:
        """Workloads started on this machine, running or finished (engine/workload.py)."""
        from .runtime.workload import workloads

        return workloads(self)

    def migration_bill(self, kind: str, *args, **kw):
        """The dry run of a migration: what would move, fail and cost (engine/bill.py)."""
        from .runtime.bill import migration_bill

        return migration_bill(self, kind, *args, **kw)

    @property
    def last_bill(self):
        """The last migration bill made (with the actual outcome once it ran)."""
        from .runtime.bill import last_bill

        return last_bill(self)

    def run_jobs(self, jobs=None, *, max_steps: int | None = None) -> int:
        """Step jobs round-robin without an event loop (deterministic)."""
        from .runtime.jobs import run_jobs

        return run_jobs(self, jobs, max_steps=max_steps)

    # ------------------------------------------------------------ checks
    def check(self) -> None:
        from .mm.check import check_machine

        check_machine(self)

    def __repr__(self) -> str:
        return (f"<Machine {self.name!r} {len(self.nodes)} nodes, "
                f"{self.nr_frames} frames of {self.page_size} B, era {self.era.name}>")



__all__ = ["Machine", "InvariantError", "Cred", "K_FREE", "K_KERNEL", "K_ANON", "K_FILE",
           "K_PFNMAP", "K_OFFLINE", "KUSE_MEMMAP", "KUSE_SLAB", "KUSE_ZERO", "PG_isolated",
           "PG_lru", "PG_mlocked", "PG_pinned", "PG_reserved", "MAX_NUMNODES", "ZONE_MOVABLE"]
