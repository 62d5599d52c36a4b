"""The migration core (mm/migrate.c migrate_pages()).

It takes arrays of (frame, target node) pairs, the 1-1 association the 2006 thread
asked for, and gives one outcome per pair: the node the page now sits on, or a
negative errno (-EBUSY isolation failed, -EAGAIN still busy after every pass
(pinned), -EPERM mlocked in 2.6.17, -ENOMEM no frame on the target), or UNTRIED
when the call stopped before reaching it.

One planner (migrate_plan.py) decides every outcome: `plan_chunk()` looks at a chunk of pairs and a
set of allocator books and says, per pair, whether it fails and why or which zone
its new frame comes from. Two executors run it:

- `Execute` (the call): books are the zones' own at each chunk; the plan is then
  carried out (frames taken, contents copied, mappings redirected, sources freed).
- `Rehearse` (the dry run, the bill, hot-remove's rehearsal): books are a copy that
  is debited and credited as the call would, and nothing else changes.

`run_pairs()` is the one loop over chunks both use, so a rehearsal predicts exactly
what the call then does on an unchanged machine. Every step is a whole-array
operation; Python loops run over chunks, targets and zones, never over pages."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..constants import (
    EBUSY,
    ENOMEM,
    K_ANON,
    PG_locked,
    PG_lru,
    PG_writeback,
)
from ..vec import (
    previous_occurrence,
    stable_argsort,
)
from .cost import migrate_cost_ns, pairs_cost_ns
from .drivers import rehearse_relocate, relocate
from .huge_memory import FOLIO_HUGETLB, folio_flags, folio_orders, folio_pairs
from .migrate_folio import perform_folios, rehearse_folios
from .migrate_frames import (
    _FRESH_CLEAR,
    _copy_frames,
    _inflight,
    _store,
    isolatable,
    isolate,
    putback,
)
from .migrate_plan import ChunkPlan, MigrateControl, plan_chunk
from .page_alloc import ZoneBooks, _take_free, account_pairs, free_frames
from .rmap import redirect
from .state import Driver, Kernel

UNTRIED = -(1 << 40)  # an outcome for a pair the call never reached
PERFORM_SLICE = 1 << 18  # pages Execute.perform copies, redirects and frees at a time


@dataclass
class Outcome:
    """Per pair: the node the page sits on after the call (>= 0), -errno, or UNTRIED;
    the zone its new frame came from (-1 when it did not move); the new frame (-1 for
    a rehearsal); the time the migration took and the lock/writeback waits."""

    result: np.ndarray
    zone: np.ndarray
    dst: np.ndarray
    time_ns: int = 0
    waits: int = 0
    # large folios: per pair the base pages it moved whole (None: one each), and the
    # pages of split folios per (source, target) node (they move page by page)
    weights: np.ndarray | None = None
    split_pairs: np.ndarray | None = None

    def pages(self, sel) -> np.ndarray:
        """Base pages each selected pair moved whole (1 each without large folios)."""
        if self.weights is None:
            return np.ones(np.count_nonzero(sel) if np.asarray(sel).dtype == bool
                           else len(sel), np.int64)
        return self.weights[sel]

    def moved_pairs(self, src_nodes: np.ndarray) -> Counter:
        """Pages moved per (source, target) node: the pairs that moved (their source
        nodes given), by their weight, and the pages of split folios."""
        ok = self.result >= 0
        c: Counter = Counter()
        s, d, w = np.asarray(src_nodes)[ok].astype(np.int64), self.result[ok], self.pages(ok)
        if s.size:
            nn = int(max(s.max(), d.max())) + 1
            m = np.bincount(s * nn + d, weights=w, minlength=nn * nn).astype(np.int64)
            for i in np.flatnonzero(m).tolist():  # (node pairs, not pages)
                c[(i // nn, i % nn)] += int(m[i])
        if self.split_pairs is not None:
            for s, d in zip(*np.nonzero(self.split_pairs)):
                c[(int(s), int(d))] += int(self.split_pairs[s, d])
        return c

    def moved_to(self) -> Counter:
        """Pages moved per target node."""
        c: Counter = Counter()
        for (_s, d), n in self.moved_pairs(np.zeros(self.result.size, np.int64)).items():
            c[d] += n
        return c


class FrameMap:
    """Where pages a call already moved now are: original frame -> values (sorted
    keys, looked up with one binary search per batch)."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, np.int64)
        self.vals: dict[str, np.ndarray] = {}

    def __bool__(self) -> bool:
        return bool(self.keys.size)

    def update(self, keys: np.ndarray, **vals: np.ndarray) -> None:
        keys = np.asarray(keys, np.int64)
        if keys.size == 0:
            return
        allk = np.concatenate([self.keys, keys])
        order = stable_argsort(allk)
        s = allk[order]
        last = np.ones(s.size, bool)
        last[:-1] = s[1:] != s[:-1]  # a later entry replaces an earlier one
        self.keys = s[last]
        for name, v in vals.items():
            old = self.vals.get(name, np.zeros(0, v.dtype))
            self.vals[name] = np.concatenate([old, v])[order][last]

    def lookup(self, keys: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, values where found)."""
        if not self.keys.size:
            return np.zeros(keys.size, bool), np.zeros(0)
        pos = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
        found = self.keys[pos] == keys
        return found, self.vals[name][pos[found]]


class Execute:
    """Carries plans out on the machine."""

    def __init__(self, k: Kernel, hold: bool):
        self.k = k
        self.hold = hold  # anon_vma references for pages isolated across yields
        self.moved = FrameMap()  # original frame -> the frame it moved to
        self.track = False  # keep `moved` (a call that moves a page again needs it)
        # a call that moves large folios: the free aligned blocks its books count,
        # carried from chunk to chunk as the rehearsal carries them (ZoneBooks.huge)
        self._huge: np.ndarray | None = None
        self._pool = None  # hugetlb.PoolBooks, the same way

    def expect_repeats(self, repeats: bool) -> None:
        self.track = repeats

    def isolate(self, pfns: np.ndarray, unique: bool, flags: np.ndarray | None = None,
                mark: bool = True) -> np.ndarray:
        ok = isolate(self.k, pfns, unique, self.hold, flags, mark)
        if not ok.all():
            self.k.note_failed(pfns[~ok], np.full(int((~ok).sum()), -EBUSY, np.int64))
        return ok

    def current(self, pfns: np.ndarray) -> np.ndarray:
        """The frames pages now sit on (a page this call moved has a new one)."""
        found, new = self.moved.lookup(pfns, "dst")
        if not found.any():
            return pfns
        out = pfns.copy()
        out[found] = new
        return out

    def flags(self, pfns: np.ndarray) -> np.ndarray:
        return self.k.f.flags[pfns]

    def books(self) -> ZoneBooks:
        b = ZoneBooks(self.k)
        b.huge, b.pool = self._huge, self._pool
        return b

    def keep_books(self, b: ZoneBooks) -> None:
        """The free blocks the planner counted (a plan with large folios counts them
        first): kept for the next chunk."""
        self._huge, self._pool = b.huge, b.pool

    def relocate(self, d: Driver, where: Callable[[int], int],
                 avoid_blocks: np.ndarray | None = None) -> Counter:
        """A driver's vm_ops->migrate relocation (drivers.relocate): frames per node."""
        return relocate(self.k, d, where, avoid_blocks)

    def orphans(self, pfns: np.ndarray) -> np.ndarray:
        """Pages whose every mapping went while they were isolated: freed, nothing to
        copy (the isolation held the last reference)."""
        f = self.k.f
        orphan = f.mapcount[pfns] == 0
        if orphan.any():
            orphan &= (f.kind[pfns] == K_ANON) & (f.refcount[pfns] == 1)
        if orphan.any():
            op = pfns[orphan]
            if self.hold:
                _inflight(self.k, op, -1)
            self.k.isolated_pages -= op.size
            free_frames(self.k, op)
        return orphan

    def perform(self, keys: np.ndarray, pfns: np.ndarray, targets: np.ndarray,
                plan: ChunkPlan, ctl: MigrateControl, out: Outcome, sel,
                taken: tuple | None = None) -> None:
        """Carry out one chunk's plan: wait, take the planned frames, copy, redirect,
        account, free the sources, put the failures back. taken: the pages' entries
        (Frames.take) read with nothing run since, if the caller has them."""
        if plan.orders is not None:
            perform_folios(self, keys, pfns, targets, plan, ctl, out, sel)
            return
        k = self.k
        f = k.f
        codes = plan.codes
        if plan.waits:
            f.flags[pfns[plan.wait]] &= ~(PG_locked | PG_writeback)  # the holder finished
            k.time.advance(plan.waits * k.cost.wait_ns)
            out.time_ns += plan.waits * k.cost.wait_ns
        ok = codes == 0
        okpos = None if ok.all() else np.flatnonzero(ok)
        src = pfns if okpos is None else pfns[okpos]
        if src.size:
            self._move(src, targets if okpos is None else targets[okpos], plan, okpos, ctl,
                       out, sel, keys, taken)
        bad = ~ok
        if bad.any():
            putback(k, pfns[bad], self.hold)
            _store(out.result, sel, np.flatnonzero(bad), codes[bad])
            k.note_failed(pfns[bad], codes[bad])
        out.waits += plan.waits

    def _move(self, src, targets, plan: ChunkPlan, okpos, ctl: MigrateControl, out: Outcome,
              sel, keys, taken) -> None:
        """perform()'s migration of the pairs that move (src: their frames, okpos:
        their positions in the chunk, None: all)."""
        k = self.k
        zsel = plan.zones if okpos is None else plan.zones[okpos]
        groups = plan.zone_groups(okpos)
        # the planner's groups with the target of each (every pair moves): numastat's
        # pairs follow from them, without a pass over the pages
        gt = plan.group_targets if okpos is None and plan.groups is not None else None
        # the new frames and their nodes go straight into the outcome when the chunk
        # is a run of it (no array of its own: one of 32 MiB would be mapped afresh)
        direct = okpos is None and isinstance(sel, slice)
        dst = out.dst[sel] if direct else np.empty(src.size, np.int64)
        res = out.result[sel] if direct and gt is not None else None
        zone_node = k.zone_nodes()
        nodes = {k.zones[zid].node for zid, _ in groups}
        dnodes = np.int64(nodes.pop()) if len(nodes) == 1 else \
            None if res is not None else np.empty(src.size, np.int32)
        zp_groups = []
        for zid, where in groups:
            z = k.zones[zid]
            if isinstance(where, slice):  # the frames go straight into place
                cnt = len(range(src.size)[where])
                _take_free(k, z, cnt, dst[where])
            else:
                cnt = where.size
                dst[where] = _take_free(k, z, cnt)
            if dnodes is None:
                res[where] = z.node
            elif dnodes.ndim:
                dnodes[where] = z.node
            z.free -= cnt
            zp_groups.append((z.node, cnt))
        if taken is not None and okpos is not None:
            taken = (taken[0][okpos], taken[1][okpos])
        tg = targets
        if gt is None and tg.size and tg[0] == tg[-1] and (tg == tg[0]).all():
            tg = tg[0]  # one target (migrate_pages, offline): counted as one
        nn = k.nr_node_ids
        pairs = np.zeros((nn, nn), np.int64)  # pages per (source, new) node
        zp = np.zeros((nn, nn), np.int64)  # pages per (new, preferred) node: numastat
        if gt is not None:
            for (node, cnt), t in zip(zp_groups, gt):
                zp[node, t] += cnt

        def new_nodes(b):
            return dnodes if dnodes is None or dnodes.ndim == 0 else dnodes[b]

        rows = []  # (slice, source node) of the slices whose pages leave one node
        # the pages a slice at a time: the temporaries of a slice stay in cache
        # and on malloc's heap (arrays of 32 MiB and more are mapped afresh by
        # every allocation: their page faults cost more than the work)
        for a in range(0, src.size, PERFORM_SLICE):
            b = slice(a, min(src.size, a + PERFORM_SLICE))
            s_src, s_dst = src[b], dst[b]
            kinds, maps, index, mapcount = _copy_frames(
                k, s_src, s_dst, None if taken is None else (taken[0][b], taken[1][b]))
            redirect(k, s_src, s_dst, index, maps, mapcount)
            k.note_moved(s_src, s_dst)
            s_dn = res[b] if dnodes is None else new_nodes(b)
            if gt is None:
                zp += k.node_pairs(s_dn, tg if tg.ndim == 0 else tg[b], s_src.size)
            szones = k.zone_of(s_src)
            lo, hi = int(szones.min()), int(szones.max())
            if lo == hi or (zone_node[lo:hi + 1] == zone_node[lo]).all():
                # (zones lo..hi all of one node: so is every page's; a node's zones
                # have consecutive ids, as DMA32 and Normal of node 0 in the benchmark)
                rows.append((b, int(zone_node[lo])))
            else:
                pairs += k.node_pairs(zone_node[szones], s_dn, s_src.size)
            if self.hold:
                _inflight(k, s_src, -1, kinds, maps)
            free_frames(k, s_src, szones)
        if gt is not None and rows and len({n for _, n in rows}) == 1 and \
                sum(b.stop - b.start for b, _ in rows) == src.size:
            # every page left one node: its row is the pages each zone supplied
            for node, cnt in zp_groups:
                pairs[rows[0][1], node] += cnt
        else:
            for b, node in rows:
                dn = res[b] if dnodes is None else new_nodes(b)
                pairs[node] += k.node_pairs(np.int64(node), dn, b.stop - b.start)[node]
        account_pairs(k, zp, ctl.cpu)
        cost = pairs_cost_ns(k, pairs)
        k.time.advance(cost)
        out.time_ns += cost
        k.record_traffic_pairs(pairs)
        k.isolated_pages -= src.size
        if dnodes is not None:
            _store(out.result, sel, okpos, dnodes)
        _store(out.zone, sel, okpos, zsel)
        if not direct:
            _store(out.dst, sel, okpos, dst)
        if self.track:
            self.moved.update(keys if okpos is None else keys[okpos], dst=dst)

    def abandon(self, pfns: np.ndarray) -> None:
        putback(self.k, pfns, self.hold)

    def finish(self, moved: int, failed: int) -> None:
        self.k.vmstat_counts["pgmigrate_success"] += moved
        self.k.vmstat_counts["pgmigrate_fail"] += failed


class Rehearse:
    """Runs the same plans on a copy of the allocator's books (debited by the new
    frames, credited by the freed sources) and changes nothing else. Pages it moves
    are remembered by their original frame (zone, flags), so a page moved twice is
    rehearsed from where the first move left it. A caller rehearsing pages an earlier
    step already moved passes that map in."""

    def __init__(self, k: Kernel, books: ZoneBooks | None = None,
                 moved: FrameMap | None = None):
        self.k = k
        self._books = books if books is not None else ZoneBooks(k)
        self.moved = moved if moved is not None else FrameMap()
        self._zone_node = k.zone_nodes()
        self.isolated_blocks = k.blk_isolated  # blocks whose freed frames stay isolated
        self.time_ns = 0  # time outside the pair loop (driver relocations)

    def relocate(self, d: Driver, where: Callable[[int], int],
                 avoid_blocks: np.ndarray | None = None) -> Counter:
        """The relocation rehearsed on the books; its time goes to time_ns."""
        to, ns = rehearse_relocate(self.k, self._books, d, where, avoid_blocks,
                                   self.isolated_blocks)
        self.time_ns += ns
        return to

    def _flags_now(self, pfns: np.ndarray) -> np.ndarray:
        fl = self.k.f.flags[pfns]
        found, mf = self.moved.lookup(pfns, "flags")
        if found.any():
            fl = fl.copy()
            fl[found] = mf
        return fl

    def isolate(self, pfns: np.ndarray, unique: bool, flags: np.ndarray | None = None,
                mark: bool = True) -> np.ndarray:
        fl = self._flags_now(pfns) if flags is None else flags
        return isolatable(self.k, pfns, unique, fl)

    def current(self, pfns: np.ndarray) -> np.ndarray:
        return pfns  # a rehearsal names pages by their original frame

    def flags(self, pfns: np.ndarray) -> np.ndarray:
        return self._flags_now(pfns)

    def books(self) -> ZoneBooks:
        return self._books

    def keep_books(self, b: ZoneBooks) -> None:
        pass  # (the rehearsal's books are carried already)

    def expect_repeats(self, repeats: bool) -> None:
        pass  # a rehearsal always remembers what it moved (its frames do not change)

    def orphans(self, pfns: np.ndarray) -> np.ndarray:
        return np.zeros(pfns.size, bool)

    def perform(self, keys: np.ndarray, pfns: np.ndarray, targets: np.ndarray,
                plan: ChunkPlan, ctl: MigrateControl, out: Outcome, sel,
                taken: tuple | None = None) -> None:
        if plan.orders is not None:
            rehearse_folios(self, keys, pfns, targets, plan, ctl, out, sel)
            return
        k = self.k
        ok = plan.codes == 0
        okpos = None if ok.all() else np.flatnonzero(ok)
        out.time_ns += plan.waits * k.cost.wait_ns
        out.waits += plan.waits
        if ok.any():
            src = pfns if okpos is None else pfns[okpos]
            zsel = plan.zones if okpos is None else plan.zones[okpos]
            szones = k.zone_of(src)
            found, mz = self.moved.lookup(src, "zone")
            if found.any():
                szones[found] = mz
            dnodes = self._zone_node[zsel]
            out.time_ns += migrate_cost_ns(k, self._zone_node[szones], dnodes)
            # the sources go back to their zones once the chunk is done (into an
            # isolated block's free list if their block is being offlined)
            self._books.free += np.bincount(szones, minlength=self._books.free.size)
            if self.isolated_blocks.any():
                iso = self.isolated_blocks[src // k.block_pages] & ~found
                if iso.any():
                    self._books.iso += np.bincount(szones[iso],
                                                   minlength=self._books.iso.size)
            fl = (self._flags_now(src) & ~_FRESH_CLEAR) | PG_lru
            self.moved.update(src, zone=zsel, flags=fl)
            _store(out.result, sel, okpos, dnodes)
            _store(out.zone, sel, okpos, zsel)
        bad = ~ok
        if bad.any():
            _store(out.result, sel, np.flatnonzero(bad), plan.codes[bad])

    def abandon(self, pfns: np.ndarray) -> None:
        pass

    def finish(self, moved: int, failed: int) -> None:
        pass


# ----------------------------------------------------------------- the loop

@dataclass
class PairRun:
    """The inputs of run_pairs() beyond the pairs: chunking and batch structure."""

    chunk: int | None = None  # pages per step of a job (None: one step)
    # per pair: the do_pages_move() batch it is in, or a function that computes them
    # (asked only when a pair fails)
    batch: np.ndarray | Callable[[], np.ndarray] | None = None
    unique: bool = False  # no frame repeats (else a repeat fails to isolate: -EBUSY)
    repeats: bool = False  # a frame listed again is the same page moved again later
    stats: dict = field(default_factory=lambda: {"moved": 0, "failed": 0})


def chunk_bounds(n: int, chunk: int | None, cuts: np.ndarray | None) -> np.ndarray:
    """Chunk start positions: every `chunk` pairs, plus the forced cuts."""
    step = n if not chunk else int(chunk)
    b = np.arange(0, n, max(step, 1), dtype=np.int64)
    if cuts is not None and cuts.size:
        b = np.union1d(b, cuts[(cuts > 0) & (cuts < n)])
    return b


def run_pairs(k: Kernel, ex: Execute | Rehearse, pfns: np.ndarray, targets: np.ndarray,
              ctl: MigrateControl, run: PairRun, job=None, taken: tuple | None = None):
    """Migrate pfns[i] to targets[i] (a generator: it yields between chunks, so a job
    interleaves; closing it puts back what it still holds). Returns an Outcome.
    taken: the pages' entries (Frames.take), read by the caller with nothing run
    since; then neither isolation nor the first chunk reads the frames again.

    Pages are isolated up front, as queue_pages_range() and do_pages_move() isolate
    before they migrate. With run.repeats, a page listed again is isolated when its
    chunk comes, on the frame the earlier move left it on; a chunk never holds a page
    twice (a repeat starts a new chunk)."""
    pfns = np.asarray(pfns, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    n = pfns.size
    out = Outcome(np.full(n, -EBUSY, np.int64), np.full(n, -1, np.int32),
                  np.full(n, -1, np.int64))  # (zone ids: int32, half the bytes)
    if n == 0:
        return out
    # large folios (pairs named by their heads): their orders; None when every pair is
    # a small page (then the path below is the one it always was)
    orders = folio_orders(k, pfns) if k.large_folios else None
    if orders is not None and not orders.any():
        orders = None
    hug = None if orders is None else (k.f.spare[pfns] & FOLIO_HUGETLB) != 0
    if orders is not None:
        taken = None
    later = None
    cuts = None
    if run.repeats:
        prev = previous_occurrence(pfns)
        later = prev >= 0
        cuts = np.flatnonzero(later) if later.any() else None
        if not later.any():
            later = None
    ex.expect_repeats(later is not None)
    # the flags are read once: isolation and the first chunk's plan (which looks at no
    # flag isolation changes) use them, as nothing runs before a yield
    flags = None if taken is None else taken[0]["flags"]
    fl0 = None
    if later is None:
        fl0 = ex.flags(pfns) if flags is None else flags
        # one chunk, no job: every page migrates or goes back before anything runs
        one_go = run.chunk is None and job is None
        held = ex.isolate(pfns, run.unique or run.repeats, fl0, mark=not one_go)
    else:
        taken = None  # (the chunks of repeats come after yields)
        held = np.ones(n, bool)  # the repeats are isolated when their chunk comes
        held[~later] = ex.isolate(pfns[~later], True,
                                  None if flags is None else flags[~later])
    starts = chunk_bounds(n, run.chunk, cuts)
    ends = np.append(starts[1:], n)
    pending = held.copy()  # isolated (or to isolate) and not yet done
    isolated = held.copy() if later is None else held & ~later
    stopped = False
    # an isolated page's mappings can go only while the call yields (a job), so the
    # pages of a chunk that comes before any yield cannot be orphans
    yielded = False
    try:
        for c0, c1 in zip(starts.tolist(), ends.tolist()):
            sel = slice(c0, c1)
            if later is not None and later[sel].any():
                # the repeat of a page an earlier chunk moved: isolate its frame now
                rp = c0 + np.flatnonzero(later[sel])
                ok = ex.isolate(ex.current(pfns[rp]), True)
                held[rp[~ok]] = False
                pending[rp[~ok]] = False
                isolated[rp[ok]] = True
            h = held[sel]
            if not h.any():
                continue
            hp = None if h.all() else np.flatnonzero(h)
            keys = pfns[sel] if hp is None else pfns[sel][hp]
            ct = targets[sel] if hp is None else targets[sel][hp]
            csel = sel if hp is None else c0 + hp
            cp = ex.current(keys) if later is not None else keys
            co = None if orders is None else orders[csel]
            ch = None if hug is None else hug[csel]
            orphan = ex.orphans(cp) if yielded else None
            if orphan is not None and orphan.any():
                _store(out.result, csel, np.flatnonzero(orphan), ct[orphan])
                keep = np.flatnonzero(~orphan)
                keys, cp, ct = keys[keep], cp[keep], ct[keep]
                csel = (c0 + keep) if hp is None else csel[keep]
                if co is not None:
                    co, ch = co[keep], ch[keep]
            ct_taken = None
            if fl0 is not None and not yielded:  # (no orphans then: nothing was dropped)
                cf = fl0[sel] if hp is None else fl0[sel][hp]
                if taken is not None:
                    ct_taken = tuple(t[sel] if hp is None else t[sel][hp] for t in taken)
            else:
                cf = ex.flags(cp)
            if co is not None:
                cf = _folio_flags(k, cp, co, cf)
            books = ex.books()
            plan = plan_chunk(k, books, cf, ct, ctl, co, ch)
            ex.keep_books(books)
            if ctl.batches and run.batch is not None and (plan.codes != 0).any():
                # do_pages_move(): the batch with a failure is the last one attempted
                if callable(run.batch):
                    run.batch = run.batch()
                bsel = run.batch[csel]
                cut = bsel > bsel[np.argmax(plan.codes != 0)]
                stopped = True
            elif ctl.stop_on_enomem and (plan.codes == -ENOMEM).any():
                cut = None
                stopped = True
            else:
                cut = None
            if cut is not None and cut.any():
                keep = np.flatnonzero(~cut)
                ex.abandon(cp[cut])
                _store(out.result, csel, np.flatnonzero(cut), UNTRIED)
                plan = plan.subset(keep)
                keys, cp, ct = keys[keep], cp[keep], ct[keep]
                if ct_taken is not None:
                    ct_taken = (ct_taken[0][keep], ct_taken[1][keep])
                csel = (c0 + keep) if isinstance(csel, slice) else csel[keep]
            ex.perform(keys, cp, ct, plan, ctl, out, csel, ct_taken)
            pending[c0:c1] = False
            moved, failed = plan.page_counts()  # (base pages: pgmigrate_* count them)
            run.stats["moved"] += moved
            run.stats["failed"] += failed
            if job is not None:
                job.done += c1 - c0
            if stopped:
                break
            if c1 < n:
                yielded = True
                yield c1 - c0
        left = np.flatnonzero(pending)
        if left.size:
            out.result[left] = UNTRIED
    finally:
        left = np.flatnonzero(pending & isolated)
        if left.size:
            ex.abandon(ex.current(pfns[left]) if later is not None else pfns[left])
        ex.finish(run.stats["moved"], run.stats["failed"])
    return out


def _folio_flags(k: Kernel, pfns: np.ndarray, orders: np.ndarray, flags: np.ndarray
                 ) -> np.ndarray:
    """The flags the planner decides each pair by: a large folio's with every frame's
    pin, lock, writeback and mlock bits (huge_memory.folio_flags)."""
    out = flags.copy()
    for o in np.unique(orders[orders > 0]).tolist():
        w = orders == o
        out[w] = folio_flags(k, pfns[w], o, flags[w])
    return out


def migrate(k: Kernel, pfns: np.ndarray, targets: np.ndarray, ctl: MigrateControl, *,
            chunk: int | None = None, job=None, unique: bool = False):
    """The call's migration of (frame, target) pairs: run_pairs() with Execute (a
    generator returning the Outcome). Pages isolated across yields hold their
    anon_vma, as a job's do. Frames of a large folio are one pair, its folio's
    (migrate_misplaced_folio(), damos_migrate: the folio of each page); each entry's
    outcome is its folio's."""
    heads, tg, inv = folio_pairs(k, np.asarray(pfns, np.int64), np.asarray(targets))
    if inv is None:
        return run_pairs(k, Execute(k, hold=bool(chunk)), pfns, targets, ctl,
                         PairRun(chunk=chunk, unique=unique), job)
    return _per_entry(run_pairs(k, Execute(k, hold=bool(chunk)), heads, tg, ctl,
                                PairRun(chunk=chunk, unique=True), job), inv)


def _per_entry(gen, inv: np.ndarray):
    """run_pairs() whose outcome per folio is spread back over the entries that named
    its frames."""
    out = yield from gen
    return Outcome(out.result[inv], out.zone[inv], out.dst[inv], out.time_ns, out.waits)
