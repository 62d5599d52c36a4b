"""hugetlb pools and MAP_HUGETLB mappings (mm/hugetlb.c).

There are two hstates (hstate_orders()): PMD order (2 MiB with 4 KiB pages, the
default) and PUD order (1 GiB, gigantic), each with a pool per node. A huge page of
a pool is a folio of its hstate's order (huge_memory.py) whose frames carry
FOLIO_HUGETLB; a hugetlb VMA's page size is its hpage_order. A free one is held by the pool (kind K_KERNEL, use KUSE_HUGETLB: not
free to the buddy allocator, as hugetlb keeps its free pages on its own lists); a
page in use is mapped by a MAP_HUGETLB mapping (VM_HUGETLB): a private one's as an
anonymous folio, a shared one's as page cache of its hugetlbfs file (K_FILE).
When its last mapping goes it returns to its node's pool (free_huge_folio():
page_alloc.free_frames hands such frames back here), and a migration takes its new
page from the target node's pool (alloc_hugetlb_folio_nodemask()). The counts of
/sys/devices/system/node/nodeN/hugepages/hugepages-NNNkB and meminfo's HugePages_*
are read off the frames, and the reservations (HugePages_Rsvd) off the mappings that
own them: nothing else is kept. Gigantic pages are never surplus
pages of overcommit nor temporary pages of a migration (mm/hugetlb.c returns NULL
for hstate_is_gigantic() in both)."""

from __future__ import annotations

import numpy as np

from ..constants import (
    EINVAL,
    ENOENT,
    ENOMEM,
    K_ANON,
    K_FILE,
    K_KERNEL,
    KUSE_HUGETLB,
    MAX_OVERCOMMIT_HUGEPAGES,
    ORDER_MASK,
    PG_dirty,
    PG_lru,
    oserror,
)
from .frames import SCAN_SLICE
from .huge_memory import (
    FOLIO_HUGETLB,
    FOLIO_SURPLUS,
    FOLIO_TAIL,
    _frames,
    make_folios,
    pmd_order,
    pud_order,
    take_blocks,
)
from .mm_types import VMA, Process
from .page_alloc import enqueue_huge_frames, free_frames, zonelist
from .policy import effective_policy, fault_targets
from .state import Kernel

__all__ = ["available_huge_pages", "resv_huge_pages", "hugetlb_reserve", "return_unused_surplus", "surplus_room", "hstate_orders", "hstate_order", "size_kb", "pool_counts", "surplus_count", "surplus_total", "set_nr_overcommit_hugepages", "set_nr_hugepages", "hugetlb_fault", "free_pool_heads",
           "hugetlb_heads", "PoolBooks", "dissolve_free",
           "free_pool_frames"]


def hstate_orders(k: Kernel) -> tuple[int, int]:
    """The hstates, as their orders: PMD (2 MiB with 4 KiB pages, the default
    hstate) and PUD (1 GiB, a gigantic page; 64 GiB with 16 KiB pages)."""
    return pmd_order(k), pud_order(k)


def size_kb(k: Kernel, order: int) -> int:
    """huge_page_size() in kB: the NNN of hugepages-NNNkB."""
    return (k.page_size << order) >> 10


def hstate_order(k: Kernel, kb: int | None) -> int:
    """The order of the hstate of this size in kB (None: the default hstate). No such
    hstate: no hugepages-NNNkB directory, ENOENT."""
    if kb is None:
        return pmd_order(k)
    for o in hstate_orders(k):
        if size_kb(k, o) == kb:
            return o
    raise oserror(ENOENT, f"no hugepages-{kb}kB: huge page sizes are "
                          f"{', '.join(f'{size_kb(k, o)} kB' for o in hstate_orders(k))}")


def hugetlb_heads(k: Kernel, s: int, e: int, order: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(heads of hugetlb folios in frames [s, e), whether each is free in the pool);
    only those of one order if given."""
    out, free = [], []
    f = k.f
    for a in range(s, e, SCAN_SLICE):
        b = min(e, a + SCAN_SLICE)
        sp = f.spare[a:b]
        h = np.flatnonzero(((sp & FOLIO_HUGETLB) != 0) & ((sp & FOLIO_TAIL) == 0))
        if h.size:
            h = h + a
            kinds = f.kind[h]
            # in use (a private mapping's anonymous page, a shared one's file page) or a
            # free pool page: other frames keep a stale record (a freed frame, one
            # offlined since)
            h = h[(kinds == K_ANON) | (kinds == K_FILE)
                  | ((kinds == K_KERNEL) & (f.mapping[h] == KUSE_HUGETLB))]
            if order is not None:
                h = h[(f.spare[h] & ORDER_MASK) == order]
            out.append(h)
            free.append(f.kind[h] == K_KERNEL)
    if not out:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    return np.concatenate(out).astype(np.int64), np.concatenate(free)


def _node_range(k: Kernel, node: int) -> tuple[int, int]:
    zs = k.node_zones(node)
    return (zs[0].start_pfn, zs[-1].end_pfn) if zs else (0, 0)


def pool_counts(k: Kernel, node: int, order: int | None = None) -> tuple[int, int]:
    """(HugePages_Total, HugePages_Free) of a node's pool of one hstate (default:
    PMD order)."""
    if not k.large_folios:
        return 0, 0
    h, free = hugetlb_heads(k, *_node_range(k, node), _order(k, order))
    return int(h.size), int(free.sum())


def _order(k: Kernel, order: int | None) -> int:
    return pmd_order(k) if order is None else order


def _surplus_heads(k: Kernel, node: int, order: int | None = None) -> np.ndarray:
    """The node's surplus huge pages (FOLIO_SURPLUS on the head): in use, or free in
    its pool for a reservation (gather_surplus_pages())."""
    if not k.large_folios:
        return np.zeros(0, np.int64)
    h, _free = hugetlb_heads(k, *_node_range(k, node), _order(k, order))
    return h[(k.f.spare[h] & FOLIO_SURPLUS) != 0]


def surplus_count(k: Kernel, node: int, order: int | None = None) -> int:
    """HugePages_Surp of a node: huge pages beyond its nr_hugepages (in use, or free
    for a reservation)."""
    return int(_surplus_heads(k, node, order).size)


def free_pool_heads(k: Kernel, z, order: int | None = None) -> np.ndarray:
    """The free pool pages of zone z of one hstate (their heads, ascending)."""
    h, free = hugetlb_heads(k, z.start_pfn, z.end_pfn, _order(k, order))
    return h[free]


def _to_pool(k: Kernel, heads: np.ndarray, order: int) -> None:
    """The folios become free pool pages (enqueue_hugetlb_folio())."""
    enqueue_huge_frames(k, _frames(heads, order))


def set_nr_hugepages(k: Kernel, node: int, n: int, order: int | None = None) -> int:
    """echo n > /sys/devices/system/node/nodeN/hugepages/hugepages-2048kB/nr_hugepages:
    grow the node's pool from wholly free aligned blocks (as many as there are, as
    Linux does: the count read back says how many; surplus pages in use become
    persistent first), or shrink it by freeing free huge pages; pages in use beyond
    the count become surplus (HugePages_Surp), freed to the buddy allocator when their
    last mapping goes (the count read back includes them, as nr_hugepages_show() does).
    A node with no memory has no such file (ENOENT);
    a negative count, or more huge pages than the node's memory could ever hold, is
    refused with no change (EINVAL). Returns the pool's new size. order: the hstate
    (hugepages-1048576kB for PUD order: each page a wholly free aligned 1 GiB,
    as alloc_contig_pages() finds one, without migrating anything out of it)."""
    order = _order(k, order)
    if node not in k.nodes or not k.node_has_memory(node):
        raise oserror(ENOENT, f"nr_hugepages: node {node} has no memory or does not exist "
                              f"(no /sys/devices/system/node/node{node}/hugepages)")
    nb = 1 << order
    cap = sum(z.managed for z in k.node_zones(node)) // nb
    if n < 0 or n > cap:
        raise oserror(EINVAL, f"nr_hugepages: {n} is not a count node {node} can hold "
                              f"(0..{cap} huge pages of {nb * k.page_size >> 20} MiB)")
    h, is_free = hugetlb_heads(k, *_node_range(k, node), order)  # (the node's pool)
    plain = (k.f.spare[h] & FOLIO_SURPLUS) == 0
    persistent = int(plain.sum())
    if n > persistent and not plain.all():
        # set_max_huge_pages(): surplus pages in use become persistent ones first
        back = h[~plain][:n - persistent]
        k.f.spare[back] &= np.uint16(~FOLIO_SURPLUS & 0xFFFF)
        persistent += back.size
    if n > persistent:
        blk = _new_huge_pages(k, list(reversed(k.node_zones(node))), n - persistent,
                              order)
        _to_pool(k, blk, order)
    elif n < persistent:
        # set_max_huge_pages(): the free pages reservations need are kept (min_count);
        # the persistent free pages go, the last first (a free surplus page is a
        # reservation's)
        cand = np.flatnonzero(is_free & plain)[::-1]
        drop = cand[:min(persistent - n, cand.size, available_huge_pages(k, order))]
        _dissolve(k, h[drop], order)
        # adjust_pool_surplus(): pages beyond the new count become surplus, and go to
        # the buddy allocator when freed (a count per node in Linux: here pages in use
        # first, then the free pages kept for reservations, which
        # return_unused_surplus() frees when those go)
        extra = persistent - drop.size - n
        if extra > 0:
            plain[drop] = False
            mark = np.concatenate([h[~is_free & plain][::-1], h[is_free & plain][::-1]])
            k.f.spare[mark[:extra]] |= FOLIO_SURPLUS
    return pool_counts(k, node, order)[0]


def resv_huge_pages(k: Kernel, order: int | None = None) -> int:
    """h->resv_huge_pages (HugePages_Rsvd) of one hstate: huge pages mappings were
    promised at mmap() and have not faulted yet. Derived, not kept: the huge pages with
    no page of the private mappings that own a reservation (HPAGE_RESV_OWNER) and of
    the shared hugetlb files that made one (their resv_map), so an unmap, a fork or a
    fault changes it by what it does to those pages (hugetlb_vm_op_close() gives the
    unfaulted ones back)."""
    order = _order(k, order)
    n = 1 << order
    total = 0
    for p in k.procs.values():  # (a loop per VMA: few are hugetlb ones)
        for v in p.vmas:
            if v.resv_owner and v.hpage_order == order:
                total += int((v.ptes(np.arange(0, v.npages, n)) < 0).sum())
    for b in k.files.values():
        if b.hugetlb and b.resv and b.vmas and b.vmas[0].hpage_order == order:
            total += int((b.pages(np.arange(0, b.npages, n)) < 0).sum())
    return total


def _free_total(k: Kernel, order: int) -> int:
    return sum(pool_counts(k, n, order)[1] for n in k.memory_nodes())


def available_huge_pages(k: Kernel, order: int | None = None) -> int:
    """available_huge_pages(): free pool pages of one hstate no reservation holds
    (free_huge_pages - resv_huge_pages), all a migration or a dissolve may take."""
    order = _order(k, order)
    return max(0, _free_total(k, order) - resv_huge_pages(k, order)) if k.large_folios else 0


def surplus_room(k: Kernel, order: int) -> int:
    """Surplus pages nr_overcommit_hugepages still allows (alloc_surplus_hugetlb_folio():
    surplus_huge_pages < nr_overcommit_huge_pages; never a gigantic page). A frame scan:
    asked only when the pools are short."""
    if not k.nr_overcommit_hugepages or order != pmd_order(k):
        return 0
    return max(0, k.nr_overcommit_hugepages - surplus_total(k))


def hugetlb_reserve(k: Kernel, p: Process, need: int, order: int) -> None:
    """hugetlb_acct_memory() at mmap (hugetlb_reserve_pages()): the new mapping's huge
    pages must fit in the free pool pages not yet reserved; the rest are surplus pages
    gather_surplus_pages() allocates into the pools now, from the caller's node and its
    zonelist, while nr_overcommit_hugepages allows (never gigantic ones); too few:
    ENOMEM, and the pages it took go back. The reservation itself is the mapping's
    (resv_huge_pages() counts it from then on), so the pools keep free >= reserved."""
    free = _free_total(k, order)
    resv = resv_huge_pages(k, order)
    needed = resv + need - free
    if needed <= 0:
        return
    room = surplus_room(k, order)
    got = _surplus_pages(k, p.node, needed) if needed <= room else np.zeros(0, np.int64)
    if got.size < needed:
        _dissolve(k, got, order)
        raise oserror(ENOMEM, f"mmap: MAP_HUGETLB needs {need} huge pages of "
                              f"{size_kb(k, order)} kB; the pools have {free} free, "
                              f"{min(free, resv)} of them reserved, and overcommit allows "
                              f"{room} more, of which memory gives {got.size} "
                              f"(set the pools with hugepages NODE N)")
    _to_pool(k, got, order)  # (free pages of their pools, surplus: a reservation's)


def return_unused_surplus(k: Kernel) -> None:
    """return_unused_surplus_pages(): when reservations go (a mapping's unfaulted huge
    pages with it), the free surplus pages no reservation needs any more leave their
    pools for the buddy allocator."""
    if not k.large_folios or not k.nr_overcommit_hugepages:
        return  # (no surplus page without overcommit)
    order = pmd_order(k)
    heads = []
    for node in k.memory_nodes():
        h, free = hugetlb_heads(k, *_node_range(k, node), order)
        heads.append(h[free & ((k.f.spare[h] & FOLIO_SURPLUS) != 0)])
    heads = np.concatenate(heads) if heads else np.zeros(0, np.int64)
    _dissolve(k, heads[:available_huge_pages(k, order)], order)


def _dissolve(k: Kernel, heads: np.ndarray, order: int) -> None:
    """Free pool pages (or pages just taken for one) to the buddy allocator."""
    if heads.size:
        fr = _frames(heads, order)
        k.f.spare[fr] = 0
        k.large_folios -= int(heads.size)
        k.f.kind[fr] = K_ANON  # (held for a moment: free_frames frees held frames)
        free_frames(k, fr)


def _take_pool_pages(k: Kernel, p: Process, v: VMA, regions: np.ndarray, cpu: int,
                     reserved: bool) -> np.ndarray:
    """dequeue_hugetlb_folio_vma() for each huge page of a VMA (its first offset): a
    free page of a pool, from the node the policy gives its address and then the
    zonelist's others; where the pools have none, a surplus page from the buddy
    allocator while nr_overcommit_hugepages allows (alloc_surplus_hugetlb_folio());
    -1 where neither is left. reserved: the pages have a reservation (any free page
    may be taken: the pools keep as many as are reserved); without one, only the free
    pages no reservation holds (alloc_hugetlb_folio()). The pages are taken
    (K_ANON). Gigantic pages are never surplus (alloc_surplus_hugetlb_folio():
    hstate_is_gigantic() returns NULL)."""
    order = v.hpage_order
    pol = effective_policy(p, v)
    t, _il = fault_targets(k, p, v, regions, cpu, pol)
    f = k.f
    heads = np.full(regions.size, -1, np.int64)
    pool_room = regions.size if reserved else available_huge_pages(k, order)
    sur_room = None  # (counted when first short)
    for node in np.unique(t).tolist():  # (nodes, not pages): each its zonelist's pools
        want = np.flatnonzero(t == node)
        got = []
        for nd in zonelist(k, int(node)):
            for z in reversed(k.node_zones(nd)):
                need = min(want.size - sum(g.size for g in got), pool_room)
                if need > 0:
                    h = free_pool_heads(k, z, order)[:need]
                    got.append(h)
                    pool_room -= h.size
                    f.kind[h] = K_ANON  # (taken: the next zone scan skips them)
        need = want.size - sum(g.size for g in got)
        if need > 0:
            if sur_room is None:
                sur_room = surplus_room(k, order)
            if sur_room > 0:
                got.append(_surplus_pages(k, int(node), min(need, sur_room)))
                sur_room -= got[-1].size
        got_all = np.concatenate(got) if got else np.zeros(0, np.int64)
        heads[want[:got_all.size]] = got_all
    return heads


def _new_huge_pages(k: Kernel, zones: list, n: int, order: int) -> np.ndarray:
    """alloc_fresh_hugetlb_folio(): up to n huge pages of this order made of wholly
    free aligned blocks of these zones, in order, above each zone's min watermark;
    their heads (folios marked hugetlb, records cleared, taken from the zones' free
    counts)."""
    nb = 1 << order
    out = []
    for z in zones:
        if n <= 0:
            break
        room = (z.free - z.wmark_min - z.isolated_free) // nb
        blk = take_blocks(k, z, min(n, max(0, room)), nb)
        if blk.size:
            z.free -= blk.size * nb
            k.f.clear_records(_frames(blk, order))
            make_folios(k, blk, order, FOLIO_HUGETLB)
            out.append(blk)
            n -= blk.size
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _surplus_pages(k: Kernel, node: int, n: int) -> np.ndarray:
    """Surplus huge pages (alloc_surplus_hugetlb_folio()): new pages from the node's
    zonelist, marked surplus (freed to the buddy allocator again when their last
    mapping goes), taken (K_ANON)."""
    heads = _new_huge_pages(k, [z for nd in zonelist(k, node)
                                for z in reversed(k.node_zones(nd))], n, pmd_order(k))
    k.f.spare[heads] |= FOLIO_SURPLUS
    k.f.kind[_frames(heads, pmd_order(k))] = K_ANON
    return heads


def surplus_total(k: Kernel) -> int:
    """Surplus huge pages of every node (h->surplus_huge_pages)."""
    return sum(surplus_count(k, n) for n in k.memory_nodes()) if k.large_folios else 0


def set_nr_overcommit_hugepages(k: Kernel, n: int) -> None:
    """echo n > /proc/sys/vm/nr_overcommit_hugepages: how many surplus huge pages
    faults may take from the buddy allocator beyond the pools. A negative count, or
    one no machine could hold, is EINVAL."""
    if not 0 <= n <= MAX_OVERCOMMIT_HUGEPAGES:
        raise oserror(EINVAL, f"nr_overcommit_hugepages: {n} is not a count of huge pages")
    k.nr_overcommit_hugepages = n


def _map_huge(k: Kernel, v: VMA, regions: np.ndarray, heads: np.ndarray, anon_vma
              ) -> np.ndarray:
    """Map pool pages whole at these huge-page offsets of v (zeroed, dirty, mapcount
    1). Returns the frames, in the order of the offsets."""
    n = 1 << v.hpage_order
    f = k.f
    fr = _frames(heads, v.hpage_order)
    o = (regions[:, None] + np.arange(n, dtype=np.int64)).reshape(-1)
    f.kind[fr] = K_ANON
    f.mapping[fr] = anon_vma.id
    f.index[fr] = v.vpn + o - anon_vma.base_vpn
    f.mapcount[fr] = 1
    f.content[fr] = 0  # clear_huge_page(): a pool page keeps its last user's bytes
    f.flags[fr] = PG_lru | PG_dirty
    v.set_ptes(o, fr)
    return fr


def _sigbus(k: Kernel, v: VMA, region: int, what: str) -> OSError:
    return oserror(ENOMEM, f"hugetlb {what} at {v.start + region * k.page_size:#x}: no "
                           f"free huge page in any pool (SIGBUS)")


def hugetlb_fault(k: Kernel, p: Process, v: VMA, offs: np.ndarray, cpu: int, anon_vma,
                  write: bool = False) -> None:
    """hugetlb_no_page(): each huge page of the VMA a fault touches that has none yet
    gets a free page of a pool (_take_pool_pages; with the mapping's reservation when
    it owns one); none left: SIGBUS (ENOMEM here). The page is mapped whole and dirty.
    A shared mapping's pages are its hugetlbfs file's (_fault_file). A write to a
    private huge page fork() left shared (mapcount > 1) is hugetlb_wp(): the whole
    huge page is copied into a pool page of the writer's own (never a reserved one:
    cow_from_owner), the other side keeps the old one."""
    n = 1 << v.hpage_order
    regions = np.unique((offs // n) * n)
    cur = v.ptes(regions)
    fresh = regions[cur < 0]
    if v.shared:
        if fresh.size:
            _fault_file(k, p, v, fresh, cpu)
        return  # a write goes to the file's page in place (fault()'s shared path)
    if fresh.size:
        heads = _take_pool_pages(k, p, v, fresh, cpu, v.resv_owner)
        ok = heads >= 0
        if ok.any():
            _map_huge(k, v, fresh[ok], heads[ok], anon_vma)
        if not ok.all():
            raise _sigbus(k, v, int(fresh[~ok][0]), "fault")
    if not write:
        return
    f = k.f
    held = cur >= 0
    shared = np.zeros(regions.size, bool)
    shared[held] = f.mapcount[cur[held]] > 1
    if not shared.any():
        return
    cow, old = regions[shared], cur[shared]
    heads = _take_pool_pages(k, p, v, cow, cpu, False)
    ok = heads >= 0
    if ok.any():
        src = _frames(old[ok], v.hpage_order)
        content = f.content[src]
        dst = _map_huge(k, v, cow[ok], heads[ok], anon_vma)
        f.content[dst] = content  # copy_user_large_folio(): the whole huge page
        f.mapcount[src] -= 1
    if not ok.all():
        raise _sigbus(k, v, int(cow[~ok][0]), "copy-on-write")


def _fault_file(k: Kernel, p: Process, v: VMA, regions: np.ndarray, cpu: int) -> None:
    """hugetlb_no_page() of a shared mapping: the huge page at each region's file index
    is found in the hugetlbfs file's page cache (another mapping, a fork() parent or
    child, faulted it) or taken from a pool (the file's reservation, if it made one)
    and added to the cache (hugetlb_add_to_page_cache(): dirty, never written back);
    then mapped whole in v."""
    n = 1 << v.hpage_order
    b = v.backing
    f = k.f
    idx = v.pgoff + regions
    cached = b.pages(idx)
    need = np.flatnonzero(cached < 0)
    bad = None
    if need.size:
        heads = _take_pool_pages(k, p, v, regions[need], cpu, b.resv)
        ok = heads >= 0
        if not ok.all():
            bad = int(regions[need[~ok][0]])
        got, heads = need[ok], heads[ok]
        fr = _frames(heads, v.hpage_order)
        fidx = (idx[got][:, None] + np.arange(n, dtype=np.int64)).reshape(-1)
        f.kind[fr] = K_FILE
        f.mapping[fr] = b.id
        f.index[fr] = fidx
        f.mapcount[fr] = 0
        f.content[fr] = 0  # clear_huge_page()
        f.flags[fr] = PG_lru | PG_dirty
        b.set_pages(fidx, fr)
        cached[got] = heads
    have = cached >= 0
    if have.any():
        o = (regions[have][:, None] + np.arange(n, dtype=np.int64)).reshape(-1)
        fr = _frames(cached[have], v.hpage_order)
        v.set_ptes(o, fr)
        f.mapcount[fr] += 1
    if bad is not None:
        raise _sigbus(k, v, bad, "fault")


class PoolBooks:
    """A migration's books for hugetlb targets: free pool pages per zone per hstate
    order, and per order how many of them no reservation holds (available_huge_pages():
    alloc_hugetlb_folio_nodemask() dequeues only those)."""

    __slots__ = ("free", "avail")

    def __init__(self, k: Kernel) -> None:
        self.free = {o: np.zeros(len(k.zones), np.int64) for o in hstate_orders(k)}
        if k.large_folios:
            for z in k.zones:
                if z.spanned:
                    h, free = hugetlb_heads(k, z.start_pfn, z.end_pfn)
                    o = (k.f.spare[h[free]] & ORDER_MASK).astype(np.int64)
                    for order, arr in self.free.items():
                        arr[z.zid] = int((o == order).sum())
        # available_huge_pages() from the counts just made (no second scan)
        self.avail = {o: max(0, int(arr.sum()) - resv_huge_pages(k, o)) if k.large_folios
                      else 0 for o, arr in self.free.items()}

    def credit(self, k: Kernel, heads: np.ndarray, orders: np.ndarray, zids=None) -> None:
        """Huge pages back in their pools (a migration's sources)."""
        for o, arr in self.free.items():
            sel = orders == o
            if sel.any():
                z = k.zone_of(heads[sel]) if zids is None else zids[sel]
                arr += np.bincount(z, minlength=arr.size)
                self.avail[o] += int(sel.sum())


def _dissolvable(k: Kernel, heads: np.ndarray) -> np.ndarray:
    """The free pool pages among these heads dissolve_free_hugetlb_folio() can take:
    not those reservations need (available_huge_pages() of their hstate is 0: -EBUSY,
    and offline_pages() fails with "failure to dissolve huge pages")."""
    if heads.size == 0:
        return heads
    o = k.f.spare[heads] & ORDER_MASK
    keep = np.zeros(heads.size, bool)
    for order in np.unique(o).tolist():
        at = np.flatnonzero(o == order)
        keep[at[:available_huge_pages(k, int(order))]] = True
    return heads[keep]


def dissolve_free(k: Kernel, pfns: np.ndarray) -> int:
    """dissolve_free_hugetlb_folios(): the free pool pages among these frames leave
    their pool for the buddy allocator (the pool shrinks). Returns the frames freed."""
    if not k.large_folios or pfns.size == 0:
        return 0
    f = k.f
    kern = pfns[f.kind[pfns] == K_KERNEL]
    kern = kern[f.mapping[kern] == KUSE_HUGETLB]
    if kern.size == 0:
        return 0
    sp = f.spare[kern]
    heads = _dissolvable(k, kern[((sp & FOLIO_TAIL) == 0) & ((sp & FOLIO_HUGETLB) != 0)])
    orders = (f.spare[heads] & ORDER_MASK).astype(np.int64)
    for o in np.unique(orders).tolist():
        _dissolve(k, heads[orders == o], o)
    return int((np.int64(1) << orders).sum())


def free_pool_frames(k: Kernel, s: int, e: int) -> int:
    """Frames of free pool pages in [s, e) (what dissolve_free() would free)."""
    if not k.large_folios:
        return 0
    h, free = hugetlb_heads(k, s, e)
    o = (k.f.spare[_dissolvable(k, h[free])] & ORDER_MASK).astype(np.int64)
    return int((np.int64(1) << o).sum())
