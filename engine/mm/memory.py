"""Address spaces: VMAs and their page tables (mm/mmap.c, mm/vma.c, mm/memory.c's
zap_pte_range). VMAs are ranges over their mm's one sparse page table, so splitting
and merging them never copies an entry.

This module keeps the books; faults are in fault.py, the mmap/munmap system calls
in mmap.py."""

from __future__ import annotations

import numpy as np

from ..constants import (
    EINVAL,
    K_ANON,
    MAP_SHARED,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    VM_EXEC,
    VM_HUGETLB,
    VM_READ,
    VM_SHARED,
    VM_SPECIAL,
    VM_WRITE,
    PG_isolated,
    PG_pinned,
    oserror,
)
from .huge_memory import note_vma_split, split_partly_dead
from .mm_types import VMA, Backing, Process
from .page_alloc import free_frames
from .rmap import recompute_mlocked
from .state import Kernel

MMAP_BASE = 0x7F0000000000
TASK_SIZE = 1 << 47  # x86-64 user address space (4-level page tables)


def prot_to_vmflags(prot: int, flags: int) -> int:
    vf = 0
    if prot & PROT_READ:
        vf |= VM_READ
    if prot & PROT_WRITE:
        vf |= VM_WRITE
    if prot & PROT_EXEC:
        vf |= VM_EXEC
    if flags & MAP_SHARED:
        vf |= VM_SHARED
    return vf


def get_unmapped_area(p: Process, length: int, align: int = 0) -> int | None:
    """Top-down first fit below MMAP_BASE, as arch_get_unmapped_area_topdown() (whose
    gap-augmented VMA tree finds the highest gap that fits): the gaps between the VMAs,
    compared at once. align: a power of two the start must be a multiple of (0: page
    alignment). None when no gap is large enough."""
    starts, ends = p.vma_bounds()
    below = starts < MMAP_BASE
    s, e = starts[below], ends[below]
    # the gap above VMA j ends at the next VMA's start (the last one's: MMAP_BASE)
    hi = np.minimum(np.append(s[1:], MMAP_BASE), MMAP_BASE) - length
    a = hi & ~np.int64(align - 1) if align else hi
    fits = np.flatnonzero(a >= e)
    if fits.size:
        return int(a[fits[-1]])
    a0 = _align_down((int(s[0]) if s.size else MMAP_BASE) - length, align)
    return a0 if a0 >= 0 else None


def _align_down(x: int, align: int) -> int:
    return x & ~(align - 1) if align else x


def new_vma(p: Process, start: int, length: int, vmflags: int, backing: Backing | None,
            pgoff: int) -> VMA:
    v = VMA(start=start, end=start + length, flags=vmflags, backing=backing, pgoff=pgoff,
            mm=p)
    if backing is not None:
        backing.vmas.append(v)
    return v


def insert_vma(p: Process, v: VMA) -> None:
    """Put v into the mm's sorted VMA list (and its bounds arrays, kept in step: a
    process with thousands of VMAs maps each new one in O(log n) Python steps)."""
    starts, ends = p.vma_bounds()
    i = int(np.searchsorted(starts, v.start))
    p.vmas.insert(i, v)
    p.bounds = (np.insert(starts, i, v.start), np.insert(ends, i, v.end))


def _unlink_vma(p: Process, v: VMA) -> None:
    starts, ends = p.vma_bounds()
    i = int(np.searchsorted(starts, v.start))
    del p.vmas[i]
    p.bounds = (np.delete(starts, i), np.delete(ends, i))


def _set_end(p: Process, v: VMA, end: int) -> None:
    starts, ends = p.vma_bounds()
    v.end = end
    ends[int(np.searchsorted(starts, v.start))] = end


def unmap_ptes(k: Kernel, v: VMA, o0: int, o1: int) -> None:
    """zap_pte_range() over offsets [o0, o1): drop the mappings and the private
    oracle; anonymous pages whose last mapping goes are freed unless a migration
    holds them (isolated: freed when it finishes)."""
    _offs, pfns = v.present(o0, o1)
    v0 = v.vpn
    v.mm.pt.clear(v0 + o0, v0 + o1)
    present = pfns[pfns != k.zero_pfn]
    if present.size == 0:
        return
    f = k.f
    f.mapcount[present] -= 1
    if v.locked:
        recompute_mlocked(k, present)
    anon = present[f.kind[present] == K_ANON]
    dead = anon[f.refcount[anon] <= 0]
    if dead.size and k.large_folios:
        split_partly_dead(k, dead)
    if dead.size:
        free_frames(k, dead)
    # a K_PFNMAP/K_FILE frame stays with its driver / in the page cache


def remove_vma(k: Kernel, p: Process, v: VMA) -> None:
    """Unmap a whole VMA and drop it from its mm and its rmap objects."""
    unmap_ptes(k, v, 0, v.npages)
    _unlink_vma(p, v)
    for av in v.chain:  # unlink_anon_vmas(): an anon_vma with no VMA left goes
        av.vmas.remove(v)
        if not av.vmas and av.inflight <= 0:
            k.mappings.pop(av.id, None)
    if v.backing is not None:
        v.backing.vmas.remove(v)
        release_shmem(k, v.backing)


def release_shmem(k: Kernel, b: Backing) -> None:
    """The last mapping of an anonymous shared memory object (MAP_SHARED|
    MAP_ANONYMOUS, or MAP_SHARED|MAP_HUGETLB) went: its pages are freed (huge pages
    back to their pools) and the object goes (shmem_evict_inode(),
    hugetlbfs_evict_inode()).
    While a long-term pin or a migration still holds one of its pages, the object
    stays; whoever drops that hold calls this again."""
    if b.vmas or not b.unlinked:
        return
    _idx, pfns = b.present()
    f = k.f
    if ((f.flags[pfns] & (PG_pinned | PG_isolated)) != 0).any():
        return
    free_frames(k, pfns)
    k.files.pop(b.name, None)
    k.mappings.pop(b.id, None)


def release_orphan_shmem(k: Kernel) -> None:
    """release_shmem() for every object whose hold may have ended meanwhile (a job's
    migration batch put back or moved its pages)."""
    for b in [b for b in k.files.values() if not b.vmas]:
        release_shmem(k, b)


def split_vma(k: Kernel, p: Process, v: VMA, addr: int) -> VMA:
    """__split_vma(): cut v at addr; returns the upper part (v keeps the lower). The
    entries stay where they are in the mm's page table."""
    o = (addr - v.start) >> k.page_shift
    note_vma_split(k, v, addr)
    hi = VMA(start=addr, end=v.end, flags=v.flags, policy=v.policy, anon=v.anon,
             backing=v.backing, pgoff=v.pgoff + o, mm=p, chain=list(v.chain),
             resv_owner=v.resv_owner, hpage_order=v.hpage_order)
    _set_end(p, v, addr)
    for av in v.chain:  # anon_vma_clone(): the new part is linked where the old one is
        av.vmas.append(hi)
    if v.backing is not None:
        v.backing.vmas.append(hi)
    insert_vma(p, hi)
    return hi


def hugetlb_cut(k: Kernel, p: Process, start: int, end: int, call: str) -> None:
    """hugetlb_vm_op_split(): a hugetlb VMA is cut at huge page boundaries only; a
    range that would cut one elsewhere is EINVAL (before anything changes)."""
    i = p._index_above(start)
    for v in p.vmas[i:]:
        if v.start >= end:
            break
        hp = k.page_size << v.hpage_order  # (the VMA's own huge page size)
        if v.flags & VM_HUGETLB and ((v.start < start < v.end and start % hp)
                                     or (v.start < end < v.end and end % hp)):
            raise oserror(EINVAL, f"{call}: [{start:#x}, {end:#x}) cuts a huge page of the "
                                  f"hugetlb mapping {v.start:#x}-{v.end:#x}")


def vmas_in_range(k: Kernel, p: Process, start: int, end: int, *, split: bool) -> list[VMA]:
    """VMAs overlapping [start, end); with split=True they are cut at the bounds (a
    hugetlb VMA only at huge page boundaries: EINVAL, nothing cut)."""
    if split:  # (a hugetlb VMA may have no page yet: overcommit faults them later)
        hugetlb_cut(k, p, start, end, "split")
    out = []
    i = p._index_above(start)
    for v in list(p.vmas[i:]):
        if v.start >= end:
            break
        if split:
            if v.start < start:
                v = split_vma(k, p, v, start)
            if v.end > end:
                split_vma(k, p, v, end)
        out.append(v)
    return out


def range_holes(p: Process, start: int, end: int) -> bool:
    """True when [start, end) is not fully covered by VMAs."""
    pos = start
    for v in p.vmas[p._index_above(start):]:
        if v.start > pos:
            return True
        pos = v.end
        if pos >= end:
            return False
    return pos < end


def can_merge(a: VMA, b: VMA) -> bool:
    """vma_merge() compatibility: adjacent, same flags/policy/backing, contiguous pgoff,
    and anon_vmas compatible (is_mergeable_anon_vma(): the same, or one side has none
    yet and the other is linked to its own only -- not a fork()ed VMA's chain)."""
    if a.end != b.start or a.flags != b.flags or a.policy != b.policy:
        return False
    if a.flags & VM_SPECIAL:
        return False
    if a.flags & VM_HUGETLB and (a.hpage_order != b.hpage_order
                                 or a.resv_owner != b.resv_owner):
        # each MAP_HUGETLB mmap is a hugetlbfs file of its own with its own resv_map: a
        # reserving mapping never merges with one that reserved nothing (a fork()
        # child's, a MAP_NORESERVE one)
        return False
    if a.backing is not b.backing:
        return False
    if a.backing is not None and a.pgoff + a.npages != b.pgoff:
        return False
    if a.anon is not None and b.anon is not None and a.anon is not b.anon:
        return False
    if (a.anon is None) != (b.anon is None) and len(a.chain or b.chain) > 1:
        return False
    return True


def merge_pair(p: Process, a: VMA, b: VMA) -> None:
    if a.anon is None and b.anon is not None:
        # anon page index is vpn - base_vpn, so adopting the neighbour's anon_vma is free
        a.anon = b.anon
        a.chain = list(b.chain)
        for av in a.chain:
            av.vmas.append(a)
    _set_end(p, a, b.end)
    _unlink_vma(p, b)
    for av in b.chain:
        av.vmas.remove(b)
    if b.backing is not None:
        b.backing.vmas.remove(b)


def merge_vmas(p: Process, start: int | None = None, end: int | None = None) -> None:
    """vma_merge() after a call changed [start, end) (None: the whole address space):
    neighbours that became compatible merge where they meet inside the range or at its
    bounds; VMAs elsewhere are left as they are."""
    i = 0 if start is None else max(0, p._index_above(start) - 1)
    vs = p.vmas
    while i + 1 < len(vs):
        a, b = vs[i], vs[i + 1]
        if end is not None and a.end > end:
            break
        if (start is None or a.end >= start) and can_merge(a, b):
            merge_pair(p, a, b)
        else:
            i += 1


def rss(k: Kernel, p: Process) -> int:
    """Resident pages (the zero page not counted)."""
    n = 0
    for v in p.vmas:
        _o, pfns = v.present()
        n += int((pfns != k.zero_pfn).sum())
    return n


def vma_index(p: Process, addrs: np.ndarray) -> np.ndarray:
    """Per address: the index of the VMA containing it, or -1 (one binary search
    over the VMA bounds for all addresses)."""
    if not p.vmas:
        return np.full(addrs.size, -1, np.int64)
    if len(p.vmas) == 1:  # a bounds check, no search
        v = p.vmas[0]
        return ((addrs >= v.start) & (addrs < v.end)).astype(np.int64) - 1
    starts, ends = p.vma_bounds()
    i = np.searchsorted(starts, addrs, side="right") - 1
    inside = (i >= 0) & (addrs < ends[np.maximum(i, 0)])
    return np.where(inside, i, -1)
