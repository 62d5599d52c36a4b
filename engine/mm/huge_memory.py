"""Transparent huge pages and large folios (mm/huge_memory.c, include/linux/mm.h).

The representation. A folio of 2^order frames is naturally aligned and lives in
the frame arrays like any page: no Python object per folio. Its frames carry the
folio in the record's `spare` u2 field (Frames.rec), so a migration that copies
whole entries carries it along:

- a small page (order 0): spare 0;
- the head frame: spare = order (9 with 4 KiB pages: HPAGE_PMD_ORDER; 18 for a
  1 GiB hugetlb page, the PUD order);
- each tail frame: spare = FOLIO_TAIL | order;
- FOLIO_PTE_MAPPED on the head: its PMD mapping was split (__split_huge_pmd(), a
  VMA split through the folio): the folio is mapped by page-table entries now;
- FOLIO_HUGETLB on every frame of a hugetlb page, and FOLIO_SURPLUS on the head of
  one in use beyond its node's nr_hugepages (hugetlb.py).

Every frame keeps its own flags and mapcount: a frame's mapcount is page_mapcount()
(the entire mapping plus its own PTEs), so the derived refcount and check()'s
mapcount walk hold frame by frame; the folio's isolation is the head's
PG_isolated (folio_isolate_lru()), its pins and locks any frame's (the folio's
refcount cannot freeze while one page is pinned). A PMD mapping is not stored: a
folio is PMD-mapped while its head is mapped and FOLIO_PTE_MAPPED is clear (its
VMA maps the aligned 2 MiB whole, in order: the fault only creates it so).

`Kernel.large_folios` counts the heads allocated, so the paths of a machine that
has none (every one before THP or hugetlb is used) pay nothing."""

from __future__ import annotations

import numpy as np

from ..constants import (
    EINVAL,
    ENOENT,
    FOLIO_HUGETLB,
    FOLIO_PTE_MAPPED,
    FOLIO_SURPLUS,
    FOLIO_TAIL,
    K_ANON,
    ORDER_MASK,
    VM_HUGEPAGE,
    VM_HUGETLB,
    VM_LOCKED,
    VM_NOHUGEPAGE,
    VM_PFNMAP,
    VM_SHARED,
    PG_dirty,
    PG_lru,
    PG_mlocked,
    oserror,
)
from .frames import HELD, SCAN_SLICE
from .mm_types import VMA, Process
from .page_alloc import account_alloc
from .policy import INTERLEAVE_MODES, effective_policy, fault_targets, interleave_nodes
from .state import Kernel

__all__ = ["note_pmd_split", "FOLIO_SURPLUS", "FOLIO_HUGETLB", "FOLIO_TAIL", "ORDER_MASK", "FOLIO_PTE_MAPPED", "THP_MODES", "pmd_order",
           "pmd_pages", "pud_order", "folio_orders", "folio_heads", "make_folios", "split_folios",
           "queue_folios_once", "free_blocks", "take_blocks", "take_loose", "thp_allowed",
           "thp_fault", "alloc_thp", "set_thp", "loose_breaks", "THP_COUNTERS", "note_vma_split", "count_heads",
           "folio_flags", "thp_pages", "folio_pairs"]

THP_MODES = ("always", "madvise", "never")

# /proc/vmstat's names, in its order (mm/vmstat.c vmstat_text)
THP_COUNTERS = ("thp_migration_success", "thp_migration_fail", "thp_migration_split",
                "thp_fault_alloc", "thp_fault_fallback", "thp_split_page", "thp_split_pmd")


def pmd_order(k: Kernel) -> int:
    """HPAGE_PMD_ORDER: a page table page holds page_size / 8 entries (order 9 with
    4 KiB pages: 2 MiB; order 11 with 16 KiB pages: 32 MiB)."""
    return k.page_shift - 3


def pmd_pages(k: Kernel) -> int:
    return 1 << pmd_order(k)


def pud_order(k: Kernel) -> int:
    """The PUD order, a gigantic hugetlb page: a page table page's worth of PMDs
    (order 18 with 4 KiB pages: 1 GiB; order 22 with 16 KiB pages: 64 GiB)."""
    return 2 * (k.page_shift - 3)


def folio_orders(k: Kernel, pfns: np.ndarray) -> np.ndarray:
    """folio_order() of the folio each (held) frame belongs to."""
    return (k.f.rec["spare"][pfns] & ORDER_MASK).astype(np.int64)


def folio_heads(k: Kernel, pfns: np.ndarray) -> np.ndarray:
    """The head frame of the folio each (held) frame belongs to (itself when small):
    folios are naturally aligned, so the head is the frame rounded down."""
    pfns = np.asarray(pfns, np.int64)
    if not k.large_folios or pfns.size == 0:
        return pfns
    # a large folio is of PMD order (THP, a 2 MiB hugetlb page) or PUD order (a
    # gigantic hugetlb page): a held frame of one carries its order, so its head, if
    # any, is the frame rounded down to that order; the entry there says whether it
    # heads a folio of that order (a stale order on a frame rounds to no head)
    o = (k.f.spare[pfns] & ORDER_MASK).astype(np.int64)
    base = pfns & ~((np.int64(1) << o) - 1)
    sp = k.f.spare[base]
    head = (o != 0) & ((sp & (ORDER_MASK | FOLIO_TAIL)) == o) & HELD[k.f.kind[base]]
    return np.where(head, base, pfns)


def count_heads(k: Kernel, pfns: np.ndarray) -> int:
    """How many of these frames are heads of large folios."""
    sp = k.f.rec["spare"][pfns]
    return int(((sp & ORDER_MASK) != 0).sum() - ((sp & FOLIO_TAIL) != 0).sum())


def _frames(heads: np.ndarray, order: int) -> np.ndarray:
    """Every frame of folios of one order, head by head."""
    return (heads[:, None] + np.arange(1 << order, dtype=np.int64)).reshape(-1)


def make_folios(k: Kernel, heads: np.ndarray, order: int, bits: int = 0) -> None:
    """prep_compound_page(): mark the frames [head, head + 2^order) a folio (bits:
    FOLIO_HUGETLB for a hugetlb page, on every frame)."""
    heads = np.asarray(heads, np.int64)
    if heads.size == 0 or order == 0:
        return
    sp = k.f.rec["spare"]
    sp[_frames(heads, order)] = FOLIO_TAIL | order | bits
    sp[heads] = order | bits
    k.large_folios += int(heads.size)


def folio_flags(k: Kernel, heads: np.ndarray, order: int, head_flags: np.ndarray
                ) -> np.ndarray:
    """The flags a migration decides a folio by: the head's, with any frame's pin,
    lock, writeback or mlock bit ORed in (one pinned page pins the folio)."""
    if heads.size == 0:
        return head_flags
    n = 1 << order
    fl = k.f.flags[_frames(heads, order)].reshape(heads.size, n)
    return head_flags | np.bitwise_or.reduce(fl, axis=1)


def split_folios(k: Kernel, heads: np.ndarray) -> None:
    """split_huge_page(): each folio becomes 2^order small pages where it is (same
    frames, mappings kept as PTEs). Counts thp_split_page, and thp_split_pmd for
    each PMD mapping split on the way (unmap_folio() with TTU_SPLIT_HUGE_PMD)."""
    heads = np.asarray(heads, np.int64)
    if heads.size == 0:
        return
    f = k.f
    sp = f.rec["spare"]
    hs = sp[heads]
    orders = (hs & ORDER_MASK).astype(np.int64)
    pmd = (hs & FOLIO_PTE_MAPPED) == 0
    k.vmstat_counts["thp_split_pmd"] += int(f.mapcount[heads][pmd].clip(0).sum())
    k.vmstat_counts["thp_split_page"] += int(heads.size)
    for o in np.unique(orders).tolist():
        if o:
            sp[_frames(heads[orders == o], o)] = 0
    k.large_folios -= int(heads.size)


def queue_folios_once(k: Kernel, pfns: np.ndarray, targets: np.ndarray | None = None):
    """queue_folios_pte_range() / queue_folios_pmd(): a page walk meets a large folio
    once per page; it is queued once, by its head, with the target of the first page
    met (the others: the folio is already on the list). Returns (pfns, targets)."""
    pfns = np.asarray(pfns, np.int64)
    if not k.large_folios or pfns.size == 0:
        return pfns, targets
    po = pmd_order(k)
    q = pfns >> po
    newq = np.empty(q.size, bool)
    newq[0] = True
    np.not_equal(q[1:], q[:-1], out=newq[1:])
    if (pfns[1:] > pfns[:-1]).all():
        # ascending (a PFN scan, unique_frames()): each PMD-aligned run is one folio or
        # none, which its first frame's head says; only the runs' heads are read
        starts = np.flatnonzero(newq)
        base = q[starts] << po
        if ((k.f.spare[base] & ORDER_MASK) > po).any():
            # a gigantic folio spans many PMD runs: the general way below
            return _queue_by_heads(k, pfns, targets)
        ishead = ((k.f.spare[base] & (ORDER_MASK | FOLIO_TAIL)) == po) & \
            HELD[k.f.kind[base]]
        if not ishead.any():
            return pfns, targets
        lens = np.diff(np.append(starts, pfns.size))
        keep = np.repeat(~ishead, lens)
        keep[starts[ishead]] = True
        out = pfns.copy()
        out[starts[ishead]] = base[ishead]
        return out[keep], (None if targets is None else targets[keep])
    return _queue_by_heads(k, pfns, targets)


def _queue_by_heads(k: Kernel, pfns: np.ndarray, targets: np.ndarray | None):
    heads = folio_heads(k, pfns)
    _u, first = np.unique(heads, return_index=True)
    first.sort()
    return heads[first], (None if targets is None else targets[first])


def folio_pairs(k: Kernel, pfns: np.ndarray, targets: np.ndarray):
    """(heads, targets, inverse): (frame, target) pairs naming frames of large folios
    become one pair per folio, its head with the first entry's target, in order of
    first appearance; inverse[i] is the pair of entry i (None: nothing changed)."""
    pfns = np.asarray(pfns, np.int64)
    if not k.large_folios or pfns.size == 0:
        return pfns, targets, None
    heads = folio_heads(k, pfns)
    u, first, inv = np.unique(heads, return_index=True, return_inverse=True)
    if u.size == heads.size and (heads == pfns).all():
        return pfns, targets, None
    order = np.argsort(first, kind="stable")
    rank = np.empty(order.size, np.int64)
    rank[order] = np.arange(order.size)
    return u[order], np.asarray(targets)[first[order]], rank[inv.reshape(-1)]


def note_vma_split(k: Kernel, v: VMA, addr: int) -> None:
    """__split_vma() -> vma_adjust_trans_huge(): a boundary inside a PMD-mapped folio
    splits that PMD (thp_split_pmd); the folio stays whole, mapped by PTEs."""
    if not k.large_folios:
        return
    n = pmd_pages(k)
    o = (addr - v.start) >> k.page_shift
    if not (addr >> k.page_shift) % n:
        return
    pfn = v.ptes(np.array([o], np.int64))
    if pfn[0] < 0 or pfn[0] == k.zero_pfn or not k.f.kind[pfn[0]]:
        return
    note_pmd_split(k, pfn)


def note_pmd_split(k: Kernel, pfns: np.ndarray) -> None:
    """__split_huge_pmd(): the PMD mapping of each PMD-mapped large folio holding one
    of these (held) frames becomes PTEs (thp_split_pmd, once a folio); the folios stay
    whole. One bit a folio says "PTE-mapped": after fork() the parent and the child
    share one folio, so a split in one of them marks the folio for both."""
    if not k.large_folios or len(pfns) == 0:
        return
    sp = k.f.rec["spare"]
    pfns = np.asarray(pfns, np.int64)
    pfns = pfns[(sp[pfns] & ORDER_MASK) != 0]
    if pfns.size == 0:
        return
    heads = np.unique(folio_heads(k, pfns))
    heads = heads[(sp[heads] & FOLIO_PTE_MAPPED) == 0]
    sp[heads] |= FOLIO_PTE_MAPPED
    k.vmstat_counts["thp_split_pmd"] += int(heads.size)


def split_partly_dead(k: Kernel, dead: np.ndarray) -> None:
    """Frames about to be freed (their last mapping went) that are part of a large
    folio whose other pages live on: the folio is split first, so its live pages stay
    small pages and the dead ones are freed (Linux queues such a folio on the
    deferred split list and splits it under pressure: done at once here)."""
    sp = k.f.rec["spare"][dead]
    big = (sp & ORDER_MASK) != 0
    if not big.any():
        return
    d = dead[big]
    o = (sp[big] & ORDER_MASK).astype(np.int64)
    heads = d & ~((np.int64(1) << o) - 1)
    uh, cnt = np.unique(heads, return_counts=True)
    uo = folio_orders(k, uh)
    part = cnt < (np.int64(1) << uo)
    if part.any():
        split_folios(k, uh[part])


def thp_pages(k: Kernel, s: int, e: int) -> int:
    """Base pages of frames [s, e) in PMD-mapped transparent huge pages: meminfo's
    AnonHugePages (NR_ANON_THPS counts a THP while a PMD maps it: a folio whose PMD
    was split, by a VMA split through it or a copy-on-write, is not counted, as
    __folio_remove_rmap() takes it off at RMAP_LEVEL_PMD). Folios never cross a zone,
    so their heads in [s, e) count them whole."""
    if not k.large_folios:
        return 0
    n = 0
    f = k.f
    for a in range(s, e, SCAN_SLICE):
        b = min(e, a + SCAN_SLICE)
        sp = f.spare[a:b]
        heads = np.flatnonzero(((sp & ORDER_MASK) != 0)
                               & ((sp & (FOLIO_HUGETLB | FOLIO_TAIL | FOLIO_PTE_MAPPED)) == 0))
        if heads.size:
            heads = heads[f.kind[a + heads] == K_ANON]
            n += int((np.int64(1) << (sp[heads] & ORDER_MASK).astype(np.int64)).sum())
    return n


# ----------------------------------------------------------------- free blocks

def _zone_blocks(k: Kernel, z, n: int) -> tuple[int, int]:
    """The aligned n-frame blocks wholly inside zone z: (first block's pfn, count)."""
    a = -(-z.start_pfn // n) * n
    return a, max(0, (z.end_pfn - a) // n)


def _free_block_mask(k: Kernel, z, n: int, a: int, nb: int) -> np.ndarray:
    """Per aligned block of the zone: every frame free, and not in an isolated
    pageblock (MIGRATE_ISOLATE)."""
    out = np.zeros(nb, bool)
    per = max(1, SCAN_SLICE // n)
    for b0 in range(0, nb, per):
        b1 = min(nb, b0 + per)
        w = k.f.words(a + b0 * n, a + b1 * n).reshape(b1 - b0, n)
        out[b0:b1] = ~w.any(axis=1)
    if z.isolated and out.any():
        bp = k.block_pages
        starts = a + np.arange(nb, dtype=np.int64) * n
        out &= ~k.blk_isolated[starts // bp] & ~k.blk_isolated[(starts + n - 1) // bp]
    return out


def free_blocks(k: Kernel, n: int) -> np.ndarray:
    """Per zone: how many aligned blocks of n frames are wholly free (what a huge
    page allocation can take: the buddy allocator's free areas of that order)."""
    out = np.zeros(len(k.zones), np.int64)
    for z in k.zones:
        a, nb = _zone_blocks(k, z, n)
        if nb and z.free >= n:
            out[z.zid] = int(_free_block_mask(k, z, n, a, nb).sum())
    return out


def take_blocks(k: Kernel, z, cnt: int, n: int) -> np.ndarray:
    """The first `cnt` wholly free aligned blocks of n frames of zone z (their first
    PFNs, ascending); the caller debits the zone. Fewer if there are not so many."""
    a, nb = _zone_blocks(k, z, n)
    if not nb or cnt <= 0:
        return np.zeros(0, np.int64)
    got = np.flatnonzero(_free_block_mask(k, z, n, a, nb))[:cnt]
    return a + got.astype(np.int64) * n


def take_loose(k: Kernel, z, cnt: int, n: int) -> np.ndarray:
    """`cnt` free frames of zone z taken as the buddy allocator takes order-0 pages,
    from the smallest free areas first: frames outside wholly free aligned n-blocks
    first (lowest PFN first), then whole blocks broken in order. A migration that
    moves huge pages takes its small pages so, so that the free blocks its books
    count stay free (the planner and its rehearsal count the blocks alike)."""
    s, e = z.start_pfn, z.end_pfn
    free = k.f.words(s, e) == 0
    if z.isolated:
        bp = k.block_pages
        b0 = s // bp
        iso = np.repeat(k.blk_isolated[b0:(e - 1) // bp + 1], bp)
        free &= ~iso[s - b0 * bp:e - b0 * bp]
    a, nb = _zone_blocks(k, z, n)
    whole = np.zeros(e - s, bool)
    if nb:
        blk = free[a - s:a - s + nb * n].reshape(nb, n).all(axis=1)
        whole[a - s:a - s + nb * n] = np.repeat(blk, n)
    loose = np.flatnonzero(free & ~whole)[:cnt]
    if loose.size < cnt:
        more = np.flatnonzero(whole)[:cnt - loose.size]
        loose = np.concatenate([loose, more])
    return loose.astype(np.int64) + s


def loose_breaks(free: int, blocks: int, cnt: int, n: int) -> int:
    """How many wholly free blocks taking `cnt` small frames the take_loose() way
    breaks, from the counts alone: the frames outside the blocks go first."""
    loose = free - blocks * n
    if cnt <= loose:
        return 0
    return min(blocks, -(-(cnt - max(loose, 0)) // n))


# ----------------------------------------------------------------- THP faults

def set_thp(k: Kernel, mode) -> None:
    """echo MODE > /sys/kernel/mm/transparent_hugepage/enabled. Before 2.6.38 the file
    does not exist: ENOENT (2.6.18's THP is "never")."""
    if not isinstance(mode, str):
        raise TypeError(f"thp must be one of {', '.join(THP_MODES)}, not "
                        f"{type(mode).__name__}")
    if not k.era.has_thp:
        raise oserror(ENOENT, f"/sys/kernel/mm/transparent_hugepage/enabled does not exist "
                              f"in {k.era.name} (transparent huge pages came in 2.6.38)")
    if mode not in THP_MODES:
        raise oserror(EINVAL, f"thp: {mode!r} is not one of {', '.join(THP_MODES)}")
    k.thp_mode = mode


def thp_allowed(k: Kernel, v: VMA) -> bool:
    """thp_vma_allowable_order() for an anonymous fault: a private anonymous VMA,
    not VM_NOHUGEPAGE, with THP "always", or "madvise" and VM_HUGEPAGE."""
    if not k.era.has_thp or k.thp_mode == "never":
        return False
    if v.backing is not None or v.flags & (VM_SHARED | VM_PFNMAP | VM_HUGETLB | VM_NOHUGEPAGE):
        return False
    return k.thp_mode == "always" or bool(v.flags & VM_HUGEPAGE)


def thp_fault(k: Kernel, p: Process, v: VMA, offs: np.ndarray, cpu: int, anon_vma,
              alloc) -> None:
    """do_huge_pmd_anonymous_page(): each PMD-aligned 2 MiB of the VMA that a fault
    touches, lies wholly inside the VMA and has no page table entry yet gets a PMD
    folio (zero-filled; the write then goes to its pages) from a free aligned block
    on the policy's node for its address (alloc: alloc_thp(k, p, v, region_offsets,
    cpu) -> head PFNs or -1), else falls back to small pages (thp_fault_fallback).
    The interleave index of a huge page is per folio (get_vma_policy(): ilx +=
    vm_pgoff >> order, + (addr - vm_start) >> (PAGE_SHIFT + order))."""
    n = pmd_pages(k)
    vpn0 = v.vpn
    # the aligned regions (by their first offset in the VMA) inside the VMA
    r0 = ((vpn0 + offs) // n) * n - vpn0
    first = r0 >= 0
    first &= r0 + n <= v.npages
    if not first.any():
        return
    regions = np.unique(r0[first])
    allo = (regions[:, None] + np.arange(n, dtype=np.int64)).reshape(-1)
    empty = (v.ptes(allo).reshape(regions.size, n) < 0).all(axis=1)
    regions = regions[empty]
    if regions.size == 0:
        return
    heads = alloc(k, p, v, regions, cpu)
    got = heads >= 0
    k.vmstat_counts["thp_fault_fallback"] += int((~got).sum())
    if not got.any():
        return
    regions, heads = regions[got], heads[got]
    k.vmstat_counts["thp_fault_alloc"] += int(heads.size)
    frames = _frames(heads, pmd_order(k))
    offs_all = (regions[:, None] + np.arange(n, dtype=np.int64)).reshape(-1)
    f = k.f
    f.kind[frames] = K_ANON
    f.mapping[frames] = anon_vma.id
    f.index[frames] = vpn0 + offs_all - anon_vma.base_vpn
    f.mapcount[frames] = 1
    f.content[frames] = 0
    # (do_huge_pmd_anonymous_page(): pmd_mkdirty(); numa_maps counts every page dirty)
    f.flags[frames] = PG_lru | PG_dirty | (PG_mlocked if v.flags & VM_LOCKED else 0)
    make_folios(k, heads, pmd_order(k))
    v.set_ptes(offs_all, frames)


def alloc_thp(k: Kernel, p: Process, v: VMA, regions: np.ndarray, cpu: int) -> np.ndarray:
    """vma_alloc_folio(HPAGE_PMD_ORDER) for each region (its first VMA offset): the
    node the VMA's policy gives the region's address (interleave: per folio), only
    that node (alloc_pages_mpol() tries THP with __GFP_THISNODE and, with the default
    defrag setting, gives up rather than fall back), a wholly free aligned block of a
    zone that stays above its low watermark. Returns head PFNs, -1 where none."""
    order = pmd_order(k)
    n = 1 << order
    out = np.full(regions.size, -1, np.int64)
    pol = effective_policy(p, v)  # (a private anonymous VMA: one policy)
    t, il = fault_targets(k, p, v, regions, cpu, pol)
    if pol is not None and pol.mode in INTERLEAVE_MODES:
        ilx = (v.vpn >> order) + (regions >> order)
        t = interleave_nodes(k, pol, ilx.astype(np.int64))
    pos = np.arange(regions.size)
    for node in np.unique(t).tolist():
        want = pos[t == node]
        got = []
        for z in reversed(k.node_zones(node)):
            need = want.size - sum(g.size for g in got)
            if need <= 0:
                break
            room = (z.free - z.wmark_low - z.isolated_free) // n
            if room <= 0:
                continue
            blk = take_blocks(k, z, min(need, room), n)
            if blk.size:
                z.free -= blk.size * n
                fr = _frames(blk, order)
                k.f.flags[fr] = PG_lru
                k.f.clear_records(fr)
                got.append(blk)
        if got:
            heads = np.concatenate(got)
            out[want[:heads.size]] = heads
            zn = np.repeat(k.node_of(heads), n)
            account_alloc(k, zn, np.full(zn.size, node, np.int64), cpu,
                          None if il is None else np.ones(zn.size, bool))
    return out
