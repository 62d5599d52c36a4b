"""The planner of one migrate_pages() batch (mm/migrate.c): what each isolated page's
migration ends with (failure_codes) and where its new frame comes from (plan_chunk),
decided before anything changes, so that the call and its rehearsal share it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..constants import (
    EAGAIN,
    ENOMEM,
    EPERM,
    PG_locked,
    PG_mlocked,
    PG_pinned,
    PG_writeback,
)
from ..vec import (
    distinct,
)
from .huge_memory import free_blocks, loose_breaks, pmd_order, pmd_pages
from .hugetlb import PoolBooks
from .page_alloc import ZoneBooks, _mark, zone_takes, zonelist
from .state import Kernel

UNTRIED = -(1 << 40)  # an outcome for a pair the call never reached
PERFORM_SLICE = 1 << 18  # pages Execute.perform copies, redirects and frees at a time

__all__ = ["MigrateControl", "target_order", "failure_codes", "ChunkPlan", "plan_chunk",
           "hugetlb_targets"]


@dataclass(frozen=True)
class MigrateControl:
    """How a caller migrates: the arguments of migrate_pages() beyond the pages
    (get_new_folio's policy, mode, reason) and what ends the call early."""

    reason: str  # "syscall", "mbind", "memory_hotplug", "numa_misplaced"
    thisnode: bool  # __GFP_THISNODE: the target node or -ENOMEM; else its zonelist
    cpu: int  # node of the CPU that migrates (numastat local/other)
    allowed: frozenset | None = None  # nodes a zonelist allocation may fall back to
    mode: str = "sync"  # MIGRATE_SYNC waits on locks and writeback; "async" never waits
    stop_on_enomem: bool = False  # -ENOMEM ends the call (a negative migrate_pages())
    batches: bool = False  # stop after the first batch with a failure (do_pages_move)


def target_order(k: Kernel, target: int, ctl: MigrateControl) -> tuple[list[int], str]:
    """Where a new frame for `target` may come from, and the watermark it may dip to:
    __GFP_THISNODE today (the node itself, down to min), the target's zonelist in
    2006 and for mbind/hot-remove (down to low, then min)."""
    if ctl.thisnode:
        return ([target] if k.node_has_memory(target) else []), "min"
    return zonelist(k, target, ctl.allowed), "low"


# ----------------------------------------------------------------- isolation

def failure_codes(era_mlocked: str, flags: np.ndarray, mode: str) -> np.ndarray:
    """Per isolated page: 0, or the error its migration ends with after every pass.
    Long-term pins keep the refcount from freezing on every pass (-EAGAIN); 2.6.16/17's
    try_to_unmap() refuses VM_LOCKED mappings (-EPERM); MIGRATE_ASYNC never waits on
    the page lock or writeback (-EAGAIN), the sync passes do."""
    fail = np.zeros(flags.size, np.int32)
    if not (flags & (PG_pinned | PG_locked | PG_writeback | PG_mlocked)).any():
        return fail
    fail[(flags & PG_pinned) != 0] = -EAGAIN
    if era_mlocked == "eperm":
        fail[((flags & PG_mlocked) != 0) & (fail == 0)] = -EPERM
    if mode == "async":
        fail[((flags & (PG_locked | PG_writeback)) != 0) & (fail == 0)] = -EAGAIN
    return fail


@dataclass
class ChunkPlan:
    """What one migrate_pages() batch will do: per pair 0 (moves) or -errno, the
    zone its new frame comes from (-1 if none), and whether it waits for the page
    lock or writeback first."""

    codes: np.ndarray
    zones: np.ndarray
    wait: np.ndarray
    # the pairs each zone supplies, as the planner found them: [(zone id, positions
    # or a slice)]; None when not known (a subset); and the target node of each group
    groups: list | None = None
    # large folios (None: every pair is a small page): per pair its folio order, and
    # whether it is split and retried as small pages (thp_migration_split); per split
    # pair the zone of each of its pages (-1: -ENOMEM, the page stays)
    orders: np.ndarray | None = None
    split: np.ndarray | None = None
    split_zones: np.ndarray | None = None
    hugetlb: np.ndarray | None = None  # per pair: a hugetlb folio (its target: a pool page)
    # per pair: a hugetlb folio whose new page is a temporary one from the buddy
    # allocator (alloc_migrate_hugetlb_folio(): the pools had none free)
    temp: np.ndarray | None = None
    group_targets: list | None = None  # with groups: the target node of each

    @property
    def waits(self) -> int:
        return int(self.wait.sum())

    def subset(self, keep: np.ndarray) -> ChunkPlan:
        if self.orders is None:
            return ChunkPlan(self.codes[keep], self.zones[keep], self.wait[keep])
        sk = self.split[keep]
        srow = np.cumsum(self.split) - 1  # each split pair's row of split_zones
        return ChunkPlan(self.codes[keep], self.zones[keep], self.wait[keep], None,
                         self.orders[keep], sk, self.split_zones[srow[keep][sk]],
                         self.hugetlb[keep], self.temp[keep])

    def page_counts(self) -> tuple[int, int]:
        """(base pages that move, base pages that fail other than by -ENOMEM): what
        pgmigrate_success and pgmigrate_fail count."""
        ok = self.codes == 0
        if self.orders is None:
            moved = int(np.count_nonzero(ok))
            if moved == ok.size:
                return moved, 0
            return moved, int(((~ok) & (self.codes != -ENOMEM)).sum())
        w = np.int64(1) << self.orders
        whole = ok & ~self.split
        moved = int(w[whole].sum()) + int((self.split_zones >= 0).sum())
        bad = (~ok) & (self.codes != -ENOMEM) & ~self.split
        return moved, int(w[bad].sum())

    def zone_groups(self, okpos: np.ndarray | None) -> list:
        """[(zone id, positions among the moving pairs)]: the pairs that move (okpos:
        their positions in the chunk, None: all) grouped by the zone supplying them."""
        if okpos is None and self.groups is not None:
            return self.groups
        zsel = self.zones if okpos is None else self.zones[okpos]
        zids = distinct(zsel).tolist()
        if len(zids) == 1:
            return [(zids[0], slice(None))]
        return [(z, np.flatnonzero(zsel == z)) for z in zids]


def plan_chunk(k: Kernel, books: ZoneBooks, flags: np.ndarray, targets: np.ndarray,
               ctl: MigrateControl, orders: np.ndarray | None = None,
               hugetlb: np.ndarray | None = None) -> ChunkPlan:
    """Decide every pair of a chunk of isolated pages (their flags, their targets):
    the failures known from the pages, then destinations by the allocator's walk,
    per target node in ascending order, pages in order (the rest: -ENOMEM).
    orders: per pair its folio order, when some pair is a large folio (plan_folios)."""
    if orders is not None and (books.huge is not None or orders.any()):
        return plan_folios(k, books, flags, targets, ctl, orders,
                           np.zeros(targets.size, bool) if hugetlb is None else hugetlb)
    n = targets.size
    # no page pinned, locked, under writeback or mlocked (the usual): nothing fails
    # or waits, and the passes that would find out are skipped
    special = bool((flags & (PG_pinned | PG_locked | PG_writeback | PG_mlocked)).any())
    codes = failure_codes(k.era.mlocked_migration, flags, ctl.mode) if special else \
        np.zeros(n, np.int32)
    zones = np.full(n, -1, np.int32)  # (int32: half the bytes of a per-pair array)
    groups: list = []
    gtargets: list = []
    if ctl.mode != "async" and special:
        wait = ((flags & (PG_locked | PG_writeback)) != 0) & (codes == 0)
    else:
        wait = np.zeros(n, bool)
    go = codes == 0 if special else None
    free0 = None if books.huge is None else books.free.copy()
    if go is None or go.all():
        tg, ts = targets, distinct(targets)
    else:
        tg, ts = np.where(go, targets, -1), distinct(targets[go])
    full = True  # every pair got a frame
    for t in ts.tolist():
        # the pages going to t, in order (None: all of them, t is the only target)
        sel = None if ts.size == 1 and (go is None or go.all()) else np.flatnonzero(tg == t)
        cnt = n if sel is None else sel.size
        order, wm = target_order(k, t, ctl)
        takes = zone_takes(k, books, cnt, order, movable=True, wmark=wm) if order else []
        pos = 0
        for zid, c in takes:
            where = slice(pos, pos + c) if sel is None else sel[pos:pos + c]
            zones[where] = zid
            groups.append((zid, where))
            gtargets.append(t)
            pos += c
        if pos < cnt:
            codes[slice(pos, None) if sel is None else sel[pos:]] = -ENOMEM
            full = False
    if books.huge is not None:
        _debit_loose(k, books, zones[codes == 0], free0)
    # the groups are positions among the moving pairs when every pair moves
    if not (full and not special) and not (codes == 0).all():
        return ChunkPlan(codes, zones, wait)
    return ChunkPlan(codes, zones, wait, groups, group_targets=gtargets)





# ----------------------------------------------------------------- large folios

def _debit_loose(k: Kernel, books: ZoneBooks, zones: np.ndarray, free0: np.ndarray
                 ) -> None:
    """Small pages taken from each zone break wholly free blocks only once the frames
    outside them are gone (take_loose()): debit the blocks so counted."""
    if zones.size == 0:
        return
    n = pmd_pages(k)
    cnt = np.bincount(zones, minlength=books.free.size)
    for z in np.flatnonzero(cnt).tolist():
        books.huge[z] -= loose_breaks(int(free0[z] - books.iso[z]), int(books.huge[z]),
                                      int(cnt[z]), n)


def _take_blocks(k: Kernel, books: ZoneBooks, order: list[int], wm: str, n: int,
                 cnt: int) -> list[tuple[int, int]]:
    """Wholly free aligned blocks of n frames for cnt folios, each from the first zone
    of the walk that has one and stays above the watermark (a "low" pass, then
    "min"): [(zone id, blocks)] in that order; the books debited."""
    out = []
    for mark in (("low", "min") if wm == "low" else (wm,)):
        for node in order:
            for z in reversed(k.node_zones(node)):
                if cnt <= 0:
                    return out
                room = (int(books.free[z.zid]) - _mark(z, mark) - int(books.iso[z.zid])) // n
                c = min(cnt, int(books.huge[z.zid]), room)
                if c <= 0:
                    continue
                books.huge[z.zid] -= c
                books.free[z.zid] -= c * n
                out.append((z.zid, c))
                cnt -= c
    return out


def plan_folios(k: Kernel, books: ZoneBooks, flags: np.ndarray, targets: np.ndarray,
                ctl: MigrateControl, orders: np.ndarray, hugetlb: np.ndarray) -> ChunkPlan:
    """plan_chunk() of a chunk with large folios, as migrate_pages_batch() runs it: a
    large folio needs a wholly free aligned block of its order on the target
    (alloc_migration_target() of that order); where there is none, the -ENOMEM of its
    allocation splits it (try_split_folio(), thp_migration_split) and its pages are
    retried as small pages after the batch, unless the migration is NUMA balancing's
    (MR_NUMA_MISPLACED: no split, thp_migration_fail). Small pages are planned as
    plan_chunk() plans them; the split pages after them, in order."""
    if books.huge is None:
        books.huge = free_blocks(k, pmd_pages(k))
    if books.pool is None and hugetlb.any():
        # (counted at the first hugetlb folio: no migration before it changed a pool)
        books.pool = PoolBooks(k)
    big = orders > 0
    fl = flags
    small = np.flatnonzero(~big)
    sp = plan_chunk(k, books, fl[small], targets[small], ctl) if small.size else None
    n = targets.size
    codes = np.zeros(n, np.int32)
    zones = np.full(n, -1, np.int32)
    wait = np.zeros(n, bool)
    if sp is not None:
        codes[small], zones[small], wait[small] = sp.codes, sp.zones, sp.wait
    bigp = np.flatnonzero(big)
    bc = failure_codes(k.era.mlocked_migration, fl[bigp], ctl.mode)
    codes[bigp] = bc
    if ctl.mode != "async":
        wait[bigp] = ((fl[bigp] & (PG_locked | PG_writeback)) != 0) & (bc == 0)
    split = np.zeros(n, bool)
    temp = np.zeros(n, bool)
    go = bigp[bc == 0]
    hg = go[hugetlb[go]]
    for t in distinct(targets[hg]).tolist():
        # a hugetlb folio is never split: a page of the target's pool, else a
        # temporary one, else -ENOMEM
        ti = hg[targets[hg] == t]
        for o in distinct(orders[ti]).tolist():
            tio = ti[orders[ti] == o]
            pos = 0
            for zid, c, tmp in hugetlb_targets(k, books, t, ctl, int(o), tio.size):
                zones[tio[pos:pos + c]] = zid
                temp[tio[pos:pos + c]] = tmp
                pos += c
            codes[tio[pos:]] = -ENOMEM
    thp = go[~hugetlb[go]]
    for t in distinct(targets[thp]).tolist():
        # the THPs going to t, in order: blocks from the zones in the walk's order,
        # as many as each has (the same as asking folio by folio)
        ti = thp[targets[thp] == t]
        order, wm = target_order(k, t, ctl)
        pos = 0
        for zid, c in (_take_blocks(k, books, order, wm, pmd_pages(k), ti.size)
                       if order else []):
            zones[ti[pos:pos + c]] = zid
            pos += c
        rest = ti[pos:]
        if ctl.reason == "numa_misplaced":
            codes[rest] = -ENOMEM
        else:
            split[rest] = True
    srows = np.flatnonzero(split)
    nb = pmd_pages(k)
    split_zones = np.full((srows.size, nb), -1, np.int32)
    for r, i in enumerate(srows.tolist()):
        # the folio's pages as small pages (each of order 0 now: no block needed)
        cnt = 1 << int(orders[i])
        order, wm = target_order(k, int(targets[i]), ctl)
        free0 = books.free.copy()
        takes = zone_takes(k, books, cnt, order, movable=True, wmark=wm) if order else []
        pos = 0
        for zid, c in takes:
            split_zones[r, pos:pos + c] = zid
            pos += c
        _debit_loose(k, books, split_zones[r, :pos], free0)
        if pos < cnt:
            codes[i] = -ENOMEM
    return ChunkPlan(codes, zones, wait, None, orders, split, split_zones, hugetlb, temp)


def hugetlb_targets(k: Kernel, books: ZoneBooks, target: int, ctl: MigrateControl,
                    order: int, cnt: int) -> list[tuple[int, int, bool]]:
    """New pages for cnt hugetlb folios of one order going to `target`, as
    alloc_hugetlb_folio_nodemask() finds them: free pages of the pools of the nodes
    the walk allows (dequeue_hugetlb_folio_nodemask()); where those run out, and the
    page is not gigantic, temporary pages from the buddy allocator, wholly free
    aligned blocks above the watermark (alloc_migrate_hugetlb_folio(): no overcommit
    limit, the page is not counted surplus; __GFP_THISNODE as the caller asks).
    [(zone id, pages, temporary)] in that order; the books debited. The one rule of
    the call and its rehearsal (both plan with it)."""
    nodes, wm = target_order(k, target, ctl)
    out = []
    pool = books.pool.free[order]
    for node in nodes:
        for z in reversed(k.node_zones(node)):
            c = min(cnt, int(pool[z.zid]), books.pool.avail[order])
            if c > 0:
                pool[z.zid] -= c
                books.pool.avail[order] -= c
                out.append((z.zid, c, False))
                cnt -= c
    if cnt > 0 and order == pmd_order(k):  # (hstate_is_gigantic(): NULL, -ENOMEM)
        out += [(zid, c, True) for zid, c in
                _take_blocks(k, books, nodes, wm, 1 << order, cnt)]
    return out
