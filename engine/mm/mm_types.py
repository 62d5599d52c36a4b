"""Address spaces: what Linux keeps in mm_types.h and mempolicy.h (struct
mempolicy, address_space/anon_vma, vm_area_struct, mm_struct with its task).
Imports nothing from the rest of mm/ but frames and page tables."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..constants import (
    MODE_NAMES,
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_F_NUMA_BALANCING,
    MPOL_F_RELATIVE_NODES,
    MPOL_F_STATIC_NODES,
    MPOL_INTERLEAVE,
    MPOL_LOCAL,
    MPOL_PREFERRED,
    UNLINKED,
    VM_EXEC,
    VM_HUGEPAGE,
    VM_HUGETLB,
    VM_IO,
    VM_LOCKED,
    VM_LOCKONFAULT,
    VM_NOHUGEPAGE,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
)
from ..nodemask import nodes_str
from .pagetable import PageTable

__all__ = ["Policy", "Backing", "AnonVMA", "VMA", "Process"]


# ================================================================ policies

@dataclass(frozen=True)
class Policy:
    """struct mempolicy: a mode, its effective nodes, mode flags, and the nodes the
    user gave (STATIC/RELATIVE remember them). MPOL_DEFAULT is None, not a Policy."""

    mode: int
    nodes: tuple[int, ...] = ()
    flags: int = 0  # MPOL_F_STATIC_NODES / RELATIVE_NODES / NUMA_BALANCING
    user_nodes: tuple[int, ...] = ()

    def describe(self, era_formats: str = "modern") -> str:
        """The policy string of /proc/PID/numa_maps (mpol_to_str)."""
        if self.mode == MPOL_DEFAULT:
            return "default"
        if era_formats == "2006":
            name = {MPOL_PREFERRED: "prefer", MPOL_BIND: "bind", MPOL_INTERLEAVE: "interleave"}
            return f"{name.get(self.mode, MODE_NAMES[self.mode])}={nodes_str(self.nodes)}"
        if self.mode == MPOL_LOCAL:
            return "local"
        s = MODE_NAMES[self.mode]
        fl = []
        if self.flags & MPOL_F_STATIC_NODES:
            fl.append("static")
        if self.flags & MPOL_F_RELATIVE_NODES:
            fl.append("relative")
        if self.flags & MPOL_F_NUMA_BALANCING:
            fl.append("balancing")
        if fl:
            s += "=" + "|".join(fl)
        return f"{s}:{nodes_str(self.nodes)}"


# ================================================================ address spaces

@dataclass(eq=False)
class Backing:
    """A shared object pages are indexed in: a page-cache file or a driver's
    PFN-mapped region (its address_space / i_mmap). Its table maps page index to
    PFN and to the content last written (the integrity oracle)."""

    id: int
    name: str
    kind: str  # "file" | "driver"
    npages: int = 0  # the object's size in pages
    pt: PageTable = field(default_factory=PageTable)
    vmas: list = field(default_factory=list)
    # shmem/tmpfs (shared anonymous memory, /dev/shm files): pages are allocated by the
    # object's shared policy (struct shared_policy: [start, end) page-index ranges ->
    # Policy, sorted, disjoint), not by a VMA's
    shmem: bool = False
    shared_policy: list = field(default_factory=list)
    # the hugetlbfs file of a MAP_SHARED|MAP_HUGETLB mapping: its pages are huge pages
    # of the pools; resv: its huge pages were reserved at mmap (hugetlb_reserve_pages()
    # into the inode's resv_map; not with MAP_NORESERVE)
    hugetlb: bool = False
    resv: bool = False

    @property
    def unlinked(self) -> bool:
        """An object of an anonymous mapping (shmem_zero_setup(), hugetlb_file_setup()):
        no name in any directory, so it goes when its last mapping (or hold) goes."""
        return self.kind == "file" and self.name.startswith(UNLINKED)

    def grow(self, n: int) -> None:
        self.npages = max(self.npages, int(n))

    def pages(self, idx) -> np.ndarray:
        """PFN of each page index (NO_PAGE when not cached)."""
        return self.pt.get(idx, "pfn", 0, self.npages)

    def set_pages(self, idx, pfns) -> None:
        self.pt.set(idx, pfns, "pfn", 0, self.npages)

    def expects(self, idx) -> np.ndarray:
        return self.pt.get(idx, "expect", 0, self.npages)

    def set_expects(self, idx, vals) -> None:
        self.pt.set(idx, vals, "expect", 0, self.npages)

    def present(self) -> tuple[np.ndarray, np.ndarray]:
        """(page indexes, PFNs) of the cached pages."""
        return self.pt.present(0, self.npages)


@dataclass(eq=False)
class AnonVMA:
    """anon_vma: the reverse-map root of a process's anonymous pages. page->index is
    stored relative to `base_vpn`. `inflight` counts isolated pages whose migration
    holds it alive after its VMAs are gone (the modern anon_vma refcount rule)."""

    id: int
    pid: int
    base_vpn: int
    vmas: list = field(default_factory=list)  # every VMA linked to it (its anon_vma_chains)
    inflight: int = 0


@dataclass(eq=False)
class VMA:
    """vm_area_struct: [start, end) of an address space, its flags, policy and the
    objects its pages belong to. Its page-table entries live in the owner's table."""

    start: int
    end: int
    flags: int
    policy: Policy | None = None
    anon: AnonVMA | None = None  # its own anon_vma: where its new anonymous pages go
    backing: Backing | None = None
    pgoff: int = 0  # index of the first page in its backing (file/driver)
    mm: Process | None = None
    # anon_vma_chain: every anon_vma the VMA is linked into -- its own, and after fork()
    # its parent's, whose COW-shared pages it maps (an rmap walk of those finds it)
    chain: list = field(default_factory=list)
    # HPAGE_RESV_OWNER: a private hugetlb mapping whose mmap() reserved its huge pages
    # (not MAP_NORESERVE); fork()'s copy is no owner (hugetlb_dup_vma_private())
    resv_owner: bool = False
    # a hugetlb VMA's huge page order (its hstate: huge_page_order(hstate_vma())):
    # PMD order for 2 MiB pages, PUD order for 1 GiB ones; 0 for any other VMA
    hpage_order: int = 0

    @property
    def shift(self) -> int:
        return self.mm.page_shift

    @property
    def vpn(self) -> int:
        return self.start >> self.mm.page_shift

    @property
    def npages(self) -> int:
        return (self.end - self.start) >> self.mm.page_shift

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def shared(self) -> bool:
        return bool(self.flags & VM_SHARED)

    @property
    def locked(self) -> bool:
        return bool(self.flags & VM_LOCKED)

    @property
    def pfnmap(self) -> bool:
        return bool(self.flags & VM_PFNMAP)

    @property
    def private(self) -> bool:
        """Private pages whose content the VMA's own oracle (expect) records."""
        return not self.flags & (VM_SHARED | VM_PFNMAP)

    @property
    def kind(self) -> str:
        if self.pfnmap:
            return "driver"
        if self.backing is not None:
            return "file"
        return "anon"

    def flag_string(self) -> str:
        s = "".join(c if self.flags & b else "-" for c, b in
                    (("r", VM_READ), ("w", VM_WRITE), ("x", VM_EXEC)))
        s += "s" if self.shared else "p"
        extra = [n for n, b in (("locked", VM_LOCKED), ("onfault", VM_LOCKONFAULT),
                                ("io", VM_IO), ("pfnmap", VM_PFNMAP), ("hugepage", VM_HUGEPAGE),
                                ("nohugepage", VM_NOHUGEPAGE), ("hugetlb", VM_HUGETLB))
                 if self.flags & b]
        return s + (" " + ",".join(extra) if extra else "")

    # page-table access: offsets are page offsets inside the VMA; a VMA whose table is
    # one run of chunks (touched in one go) is read and written as a slice of it
    def ptes(self, offs) -> np.ndarray:
        v0 = self.vpn
        sp = self.mm.pt.span(v0, v0 + self.npages)
        if sp is not None:
            return sp[offs].astype(np.int64)
        return self.mm.pt.get(np.asarray(offs, np.int64) + v0, "pfn", v0, v0 + self.npages)

    def pte_range(self, o0: int, o1: int) -> np.ndarray:
        """Entries [o0, o1) as a new array (a copy)."""
        v0 = self.vpn
        return self.mm.pt.dense(v0 + o0, v0 + o1)

    def set_ptes(self, offs, pfns) -> None:
        v0 = self.vpn
        sp = self.mm.pt.span(v0, v0 + self.npages)
        if sp is not None:
            sp[offs] = pfns
            return
        self.mm.pt.set(np.asarray(offs, np.int64) + v0, pfns, "pfn", v0, v0 + self.npages)

    def expects(self, offs) -> np.ndarray:
        v0 = self.vpn
        return self.mm.pt.get(np.asarray(offs, np.int64) + v0, "expect", v0,
                              v0 + self.npages)

    def set_expects(self, offs, vals) -> None:
        v0 = self.vpn
        self.mm.pt.set(np.asarray(offs, np.int64) + v0, vals, "expect", v0,
                       v0 + self.npages)

    def present(self, o0: int = 0, o1: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, PFNs) of the entries of [o0, o1) that map a frame (the zero page
        included), ascending."""
        v0 = self.vpn
        keys, pfns = self.mm.pt.present(v0 + o0, v0 + (self.npages if o1 is None else o1))
        return keys - v0, pfns

    def frames(self, o0: int = 0, o1: int | None = None) -> np.ndarray:
        """The PFNs mapped in [o0, o1) (the zero page included), by offset."""
        v0 = self.vpn
        return self.mm.pt.frames(v0 + o0, v0 + (self.npages if o1 is None else o1))

    def written(self) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, expected contents) of the private pages written so far."""
        v0 = self.vpn
        keys, vals = self.mm.pt.written(v0, v0 + self.npages)
        return keys - v0, vals


@dataclass(eq=False)
class Process:
    pid: int
    name: str
    uid: int
    node: int
    mems_allowed: frozenset
    page_shift: int = 12
    # in the top cpuset (spawned without mems): its mems follow N_MEMORY, so a node whose
    # memory comes online joins them (cpuset_hotplug_update_tasks() of top_cpuset)
    top_cpuset: bool = False
    policy: Policy | None = None
    vmas: list = field(default_factory=list)  # sorted by start
    pt: PageTable = field(default_factory=PageTable)  # the address space's page table
    has_mm: bool = True
    def_flags: int = 0  # mlockall(MCL_FUTURE) sets VM_LOCKED (| VM_LOCKONFAULT) here
    memlock_cur: int = 8 << 20  # RLIMIT_MEMLOCK soft limit in bytes (RLIM_INFINITY: none)
    memlock_max: int = 8 << 20  # RLIMIT_MEMLOCK hard limit
    il_next: int = 0  # interleave cursor for task-policy allocations without a VMA
    stalls: int = 0  # accesses that waited on a page under migration
    # (starts, ends) of `vmas` as arrays, built on demand and kept in step by memory.py's
    # VMA book-keeping (insert, unlink, set_end): derived, never saved
    bounds: tuple | None = field(default=None, repr=False, compare=False)

    def find_vma(self, addr: int) -> VMA | None:
        """vma_lookup(): the VMA containing addr."""
        i = self._index_above(addr)
        if i < len(self.vmas) and self.vmas[i].start <= addr:
            return self.vmas[i]
        return None

    def find_vma_above(self, addr: int) -> VMA | None:
        """find_vma(): first VMA with end > addr (no containment check; 2.6.18 used this)."""
        i = self._index_above(addr)
        return self.vmas[i] if i < len(self.vmas) else None

    def _index_above(self, addr: int) -> int:
        lo, hi = 0, len(self.vmas)
        while lo < hi:  # binary search: VMAs are sorted and disjoint
            mid = (lo + hi) // 2
            if self.vmas[mid].end <= addr:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def vma_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) of the VMAs as arrays (for vectorised lookups; read only)."""
        if self.bounds is None:
            n = len(self.vmas)
            self.bounds = (np.fromiter((v.start for v in self.vmas), np.int64, n),
                           np.fromiter((v.end for v in self.vmas), np.int64, n))
        return self.bounds

    def __getstate__(self) -> dict:
        # a copy (clone, pickle) rebuilds the derived bounds on demand
        return {**self.__dict__, "bounds": None}
