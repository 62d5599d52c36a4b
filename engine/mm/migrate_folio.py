"""The migration of large folios (mm/migrate.c migrate_pages_batch(), migrate_folio()):
what Execute and Rehearse do with a chunk whose plan has large folios in it
(migrate_plan.plan_folios). A pair is then a folio, named by its head frame:

- a folio that moves whole gets a wholly free aligned block of its order
  (huge_memory.take_blocks), and its 2^order frames are copied, redirected and
  freed as pages are, frame by frame in whole-array steps;
- a split folio (thp_migration_split) is split where it is (split_folios: its
  frames become small pages) and its pages move as small pages, each to the zone
  the plan gave it (the pages it gave none stay: -ENOMEM);
- small pages as always, taken the take_loose() way so that the free blocks the
  books count stay free.

pgmigrate_* count base pages; thp_migration_success counts folios moved whole,
thp_migration_split folios split, thp_migration_fail folios that failed whole. The
cost charges a huge page as measured (cost.HUGE_PAGE_NS per 2 MiB), small pages per
page. No Python loop runs over pages or folios: only over zones."""

from __future__ import annotations

import numpy as np

from ..constants import FOLIO_SURPLUS, K_ANON, PG_isolated, PG_locked, PG_lru, PG_writeback
from .cost import folio_cost_ns
from .huge_memory import pmd_pages, split_folios, take_blocks, take_loose
from .hugetlb import free_pool_heads
from .migrate_frames import _FRESH_CLEAR, _copy_frames, _inflight, _store, putback
from .migrate_plan import PERFORM_SLICE, ChunkPlan, MigrateControl
from .page_alloc import account_pairs, free_frames
from .rmap import redirect
from .state import Kernel

__all__ = ["perform_folios", "rehearse_folios", "folio_frames"]


def folio_frames(heads: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Every frame of the folios (head, order), folio by folio."""
    if orders.size and orders[0] == orders[-1] and (orders == orders[0]).all():
        n = 1 << int(orders[0])  # (one order, the usual: no repeat)
        return (heads.astype(np.int64)[:, None] + np.arange(n, dtype=np.int64)).reshape(-1)
    w = np.int64(1) << orders.astype(np.int64)
    base = np.repeat(heads.astype(np.int64), w)
    start = np.repeat(np.cumsum(w) - w, w)
    return base + (np.arange(int(w.sum()), dtype=np.int64) - start)


def _claim(k: Kernel, pfns: np.ndarray) -> None:
    """Frames taken for new copies are no longer free for the next take of the same
    chunk (the copy writes their entries whole soon after)."""
    k.f.kind[pfns] = K_ANON


def _weigh(k: Kernel, out, sel, plan: ChunkPlan, split_pairs: np.ndarray | None) -> None:
    """The outcome's page weights (a whole folio: its base pages; a split one: 0, its
    pages counted per node pair in split_pairs)."""
    if out.weights is None:
        out.weights = np.ones(out.result.size, np.int64)
    w = np.where(plan.split, 0, np.int64(1) << plan.orders.astype(np.int64))
    _store(out.weights, sel, None, w)
    if split_pairs is not None and split_pairs.any():
        if out.split_pairs is None:
            out.split_pairs = np.zeros_like(split_pairs)
        out.split_pairs += split_pairs


def _counts(k: Kernel, plan: ChunkPlan, ok: np.ndarray) -> None:
    big = (plan.orders > 0) & ~plan.hugetlb  # (hugetlb folios: not THP counters)
    k.vmstat_counts["thp_migration_success"] += int((big & ok & ~plan.split).sum())
    k.vmstat_counts["thp_migration_split"] += int(plan.split.sum())
    k.vmstat_counts["thp_migration_fail"] += int((big & ~ok & ~plan.split).sum())


def _huge_pairs(k: Kernel, src: np.ndarray, dst: np.ndarray, units: np.ndarray
                ) -> np.ndarray:
    """Huge folios per (source, target) node pair, in PMD-sized units (a 1 GiB folio
    costs as 512 huge pages of 2 MiB do)."""
    nn = k.nr_node_ids
    return np.bincount(src * nn + dst, weights=units, minlength=nn * nn
                       ).astype(np.int64).reshape(nn, nn)


def perform_folios(ex, keys: np.ndarray, pfns: np.ndarray, targets: np.ndarray,
                   plan: ChunkPlan, ctl: MigrateControl, out, sel) -> None:
    """Execute.perform() of a plan with large folios."""
    k = ex.k
    f = k.f
    codes = plan.codes
    nb = pmd_pages(k)
    if plan.waits:
        f.flags[pfns[plan.wait]] &= ~(PG_locked | PG_writeback)
        k.time.advance(plan.waits * k.cost.wait_ns)
        out.time_ns += plan.waits * k.cost.wait_ns
    ok = codes == 0
    whole = ok & ~plan.split
    orders = plan.orders
    # the new frames: blocks for whole folios, loose frames for small pages
    dst_head = np.full(pfns.size, -1, np.int64)
    for zid in np.unique(plan.zones[whole]).tolist():
        z = k.zones[zid]
        w = np.flatnonzero(whole & (plan.zones == zid))
        hug = w[plan.hugetlb[w] & ~plan.temp[w]]
        big = w[(orders[w] > 0) & (~plan.hugetlb[w] | plan.temp[w])]
        sm = w[orders[w] == 0]
        for o in np.unique(orders[hug]).tolist():
            # pages of the target's hugetlb pool (not the buddy allocator's), by order
            ho = hug[orders[hug] == o]
            ph = free_pool_heads(k, z, o)[:ho.size]
            dst_head[ho] = ph
            _claim(k, folio_frames(ph, orders[ho]))
        if big.size:  # (THPs, and temporary hugetlb pages: PMD order both)
            blk = take_blocks(k, z, big.size, nb)
            dst_head[big] = blk
            z.free -= blk.size * nb
            _claim(k, folio_frames(blk, orders[big]))
        if sm.size:
            dst_head[sm] = take_loose(k, z, sm.size, nb)
            z.free -= sm.size
            _claim(k, dst_head[sm])
    # split folios: split where they are, then their pages to the frames planned
    sp_rows = np.flatnonzero(plan.split)
    s_src = s_dst = s_tg = np.zeros(0, np.int64)
    split_pairs = None
    if sp_rows.size:
        split_folios(k, pfns[sp_rows])
        szones = plan.split_zones
        pages = (pfns[sp_rows][:, None] + np.arange(nb, dtype=np.int64))
        s_src = pages[szones >= 0]
        s_dst = np.empty(s_src.size, np.int64)
        zflat = szones[szones >= 0]
        for zid in np.unique(zflat).tolist():
            z = k.zones[zid]
            w = np.flatnonzero(zflat == zid)
            s_dst[w] = take_loose(k, z, w.size, nb)
            z.free -= w.size
            _claim(k, s_dst[w])
        s_tg = np.repeat(targets[sp_rows], (szones >= 0).sum(axis=1))
        split_pairs = k.node_pairs(k.node_of(s_src), k.node_of(s_dst), s_src.size)
        stay = pages[szones < 0]
        if stay.size:  # the split pages with no frame: back on the LRU where they are
            f.flags[stay] = (f.flags[stay] & ~PG_isolated) | PG_lru
    wp = np.flatnonzero(whole)
    if ex.hold and (wp.size or sp_rows.size):
        _inflight(k, pfns[np.concatenate([wp, sp_rows])], -1)
    if wp.size or s_src.size:
        zn = k.zone_nodes()
        w_pages = np.int64(1) << orders[wp].astype(np.int64)
        hzs = k.zone_of(pfns[wp])  # per folio: its source zone (all its frames')
        hs, hd = zn[hzs], zn[k.zone_of(dst_head[wp])]
        # the pages per node pair, counted per folio (weighted), not per frame
        nn = k.nr_node_ids
        pairs = np.bincount(hs * nn + hd, weights=w_pages, minlength=nn * nn
                            ).astype(np.int64).reshape(nn, nn)
        zp = np.bincount(hd * nn + targets[wp], weights=w_pages, minlength=nn * nn
                         ).astype(np.int64).reshape(nn, nn)
        if s_src.size:
            sn, dn = k.node_of(s_src), k.node_of(s_dst)
            pairs += k.node_pairs(sn, dn, s_src.size)
            zp += k.node_pairs(dn, s_tg, s_src.size)
        account_pairs(k, zp, ctl.cpu)
        hb = orders[wp] > 0
        huge = _huge_pairs(k, hs[hb], hd[hb], w_pages[hb] // nb)
        small = pairs - huge * nb
        cost = folio_cost_ns(k, small, huge, nb)
        k.time.advance(cost)
        out.time_ns += cost
        k.record_traffic_pairs(pairs)
        ht = plan.hugetlb[wp]
        tmp = plan.temp[wp]
        # the copies are folios (free_frames drops the sources'; a hugetlb source goes
        # back to its pool, still a folio, unless its copy is a temporary page)
        k.large_folios += int((hb & (~ht | tmp)).sum())
        # the frames a slice of folios at a time (arrays of 32 MiB and more are mapped
        # afresh by every allocation: Execute.perform's PERFORM_SLICE)
        per = max(1, PERFORM_SLICE // nb)
        pw, dw, ow = pfns[wp], dst_head[wp], orders[wp]
        spare = k.f.rec["spare"]
        for a in range(0, wp.size, per):
            b = slice(a, a + per)
            src = folio_frames(pw[b], ow[b])
            dst = folio_frames(dw[b], ow[b])
            # a free surplus page of the target's pool (gathered for a reservation) stays
            # surplus when it takes the content: its node's surplus count is unchanged
            dsur = np.where(ht[b] & ~tmp[b], spare[dw[b]] & FOLIO_SURPLUS, 0
                            ).astype(np.uint16)
            kinds, maps, index, mapcount = _copy_frames(k, src, dst)
            redirect(k, src, dst, index, maps, mapcount)
            k.note_moved(src, dst)
            # move_hugetlb_state(): a surplus page's state goes with it to its new
            # frames (copied with the record); the old page joins its pool
            spare[pw[b]] &= np.uint16(~FOLIO_SURPLUS & 0xFFFF)
            spare[dw[b]] |= dsur
            # move_hugetlb_state(): the new page of a temporary allocation is final,
            # the old one takes over the temporary state: freed to the buddy
            # allocator (a surplus head's way), not to its pool
            spare[pw[b][tmp[b]]] |= FOLIO_SURPLUS
            free_frames(k, src, np.repeat(hzs[b], w_pages[b]))
        if s_src.size:
            kinds, maps, index, mapcount = _copy_frames(k, s_src, s_dst)
            redirect(k, s_src, s_dst, index, maps, mapcount)
            k.note_moved(s_src, s_dst)
            free_frames(k, s_src)
        if ex._huge is not None:  # a whole THP's source block is free again
            th = pfns[wp][hb & (~ht | tmp)]
            iso = k.blk_isolated[th // k.block_pages]
            ex._huge += np.bincount(k.zone_of(th[~iso]), minlength=ex._huge.size)
        if ex._pool is not None and (ht & ~tmp).any():  # a hugetlb source joins its pool
            back = ht & ~tmp
            ex._pool.credit(k, pfns[wp][back], orders[wp][back])
    k.isolated_pages -= wp.size + sp_rows.size
    res = np.where(ok, 0, codes).astype(np.int64)
    res[wp] = k.node_of(dst_head[wp]) if wp.size else res[wp]
    if sp_rows.size:
        res[sp_rows] = np.where(codes[sp_rows] == 0, targets[sp_rows], codes[sp_rows])
    _store(out.result, sel, None, res)
    _store(out.zone, sel, None, np.where(whole, plan.zones, -1))
    _store(out.dst, sel, None, dst_head)
    if ex.track and wp.size:
        ex.moved.update(keys[wp], dst=dst_head[wp])
    bad = ~ok & ~plan.split
    if bad.any():
        putback(k, pfns[bad], ex.hold)
        k.note_failed(pfns[bad], codes[bad])
    _counts(k, plan, ok)
    _weigh(k, out, sel, plan, split_pairs)
    out.waits += plan.waits


def rehearse_folios(rx, keys: np.ndarray, pfns: np.ndarray, targets: np.ndarray,
                    plan: ChunkPlan, ctl: MigrateControl, out, sel) -> None:
    """Rehearse.perform() of a plan with large folios: the books credited with the
    sources (a whole folio's block counted free again), the moves remembered."""
    k = rx.k
    nb = pmd_pages(k)
    ok = plan.codes == 0
    whole = ok & ~plan.split
    out.time_ns += plan.waits * k.cost.wait_ns
    out.waits += plan.waits
    orders = plan.orders
    books = rx._books
    wp = np.flatnonzero(whole)
    res = np.where(ok, 0, plan.codes).astype(np.int64)
    zn = rx._zone_node
    szones = k.zone_of(pfns)
    found, mz = rx.moved.lookup(pfns, "zone")
    if found.any():
        szones[found] = mz
    small = np.zeros((k.nr_node_ids,) * 2, np.int64)
    huge = np.zeros_like(small)
    if wp.size:
        w = np.int64(1) << orders[wp].astype(np.int64)
        sz, dz = szones[wp], plan.zones[wp]
        ht = plan.hugetlb[wp]
        tmp = plan.temp[wp]
        back = ht & ~tmp
        if back.any():  # a hugetlb source goes back to its pool, not to the free lists
            books.pool.credit(k, pfns[wp][back], orders[wp][back], sz[back])
            w = np.where(back, 0, w)
        books.free += np.bincount(sz, weights=w, minlength=books.free.size).astype(np.int64)
        hb = orders[wp] > 0
        small += k.node_pairs(zn[sz[~hb]], zn[dz[~hb]], int((~hb).sum()))
        units = (np.int64(1) << orders[wp][hb].astype(np.int64)) // nb
        huge += _huge_pairs(k, zn[sz[hb]], zn[dz[hb]], units)
        iso_blk = rx.isolated_blocks
        inside = iso_blk[pfns[wp] // k.block_pages] & ~found[wp] if iso_blk.any() else \
            np.zeros(wp.size, bool)
        if inside.any():
            books.iso += np.bincount(sz[inside], weights=w[inside],
                                     minlength=books.iso.size).astype(np.int64)
        if books.huge is not None:
            free_blk = hb & ~inside & ~back
            books.huge += np.bincount(sz[free_blk], minlength=books.huge.size)
        res[wp] = zn[dz]
        fl = (rx._flags_now(pfns[wp]) & ~_FRESH_CLEAR) | PG_lru
        rx.moved.update(pfns[wp], zone=dz, flags=fl)
    sp_rows = np.flatnonzero(plan.split)
    if sp_rows.size:
        sz_pages = plan.split_zones
        moved = sz_pages >= 0
        per = moved.sum(axis=1)
        src_z = np.repeat(szones[sp_rows], per)
        books.free += np.bincount(src_z, minlength=books.free.size)
        if rx.isolated_blocks.any():
            inside = np.repeat(rx.isolated_blocks[pfns[sp_rows] // k.block_pages], per)
            if inside.any():
                books.iso += np.bincount(src_z[inside], minlength=books.iso.size)
        sp_pairs = k.node_pairs(zn[src_z], zn[sz_pages[moved]], src_z.size)
        small += sp_pairs
        _weigh(k, out, sel, plan, sp_pairs)
        res[sp_rows] = np.where(plan.codes[sp_rows] == 0, targets[sp_rows],
                                plan.codes[sp_rows])
    if not sp_rows.size:
        _weigh(k, out, sel, plan, None)
    out.time_ns += folio_cost_ns(k, small, huge, nb)
    _store(out.result, sel, None, res)
    _store(out.zone, sel, None, np.where(whole, plan.zones, -1))
