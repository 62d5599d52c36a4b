"""Moving frame entries (mm/migrate.c, mm/vmscan.c): isolation and putback, the
anon_vma hold of an in-flight migration, the copy of a frame's entry to its new
frame. The migration core (migrate.py) and the large-folio path (migrate_folio.py)
share them."""

from __future__ import annotations

import numpy as np

from ..constants import K_ANON, PG_isolated, PG_locked, PG_lru, PG_writeback
from ..vec import distinct_counts, first_occurrence
from .page_alloc import free_frames
from .state import Kernel

__all__ = ["isolatable", "isolate", "putback", "_inflight", "_store", "_copy_frames",
           "_FRESH_CLEAR"]


def isolatable(k: Kernel, pfns: np.ndarray, unique: bool = False,
               flags: np.ndarray | None = None) -> np.ndarray:
    """isolate_lru_page() would succeed: on the LRU, not isolated already, and (for a
    frame listed twice) only the first time. flags: the frames' flags, if read already."""
    fl = k.f.flags[pfns] if flags is None else flags
    ok = (fl & (PG_lru | PG_isolated)) == PG_lru
    if not unique and ok.any():
        ok &= first_occurrence(pfns)
    return ok


def isolate(k: Kernel, pfns: np.ndarray, unique: bool = False, hold: bool = True,
            flags: np.ndarray | None = None, mark: bool = True) -> np.ndarray:
    """Isolate the frames that can be (the isolation is a reference: refcount_rule);
    returns the mask of those isolated. flags: the frames' flags, if read already.
    mark=False: counted, but PG_isolated not written, for a call that migrates or puts
    back every page before anything else runs (nothing could see the mark, which the
    migration or the putback would clear again)."""
    f = k.f
    fl = f.flags[pfns] if flags is None else flags
    ok = isolatable(k, pfns, unique, fl)
    if ok.all():
        got = pfns
        if mark:
            f.flags[pfns] = (fl & ~PG_lru) | PG_isolated
    else:
        got = pfns[ok]
        if mark:
            f.flags[got] = (fl[ok] & ~PG_lru) | PG_isolated
    if hold:
        _inflight(k, got, +1)
    k.isolated_pages += got.size
    return ok


def putback(k: Kernel, pfns: np.ndarray, hold: bool = True) -> None:
    """putback_movable_pages(): back on the LRU; a page whose last mapping went while
    it was isolated is freed now (its isolation held the last reference)."""
    if pfns.size == 0:
        return
    f = k.f
    f.flags[pfns] = (f.flags[pfns] & ~PG_isolated) | PG_lru
    if hold:
        _inflight(k, pfns, -1)
    k.isolated_pages -= pfns.size
    dead = pfns[f.refcount[pfns] <= 0]
    if dead.size:
        free_frames(k, dead)


def _inflight(k: Kernel, pfns: np.ndarray, d: int, kinds=None, maps=None) -> None:
    """An in-flight migration holds the page's anon_vma alive (modern refcount rule)."""
    f = k.f
    if kinds is None:
        kinds = f.kind[pfns]
    anon = kinds == K_ANON
    if not anon.any():
        return
    mp = (f.mapping[pfns] if maps is None else maps)
    ids, counts = distinct_counts(mp if anon.all() else mp[anon])
    for i, c in zip(ids.tolist(), counts.tolist()):
        av = k.mappings.get(i)
        if av is not None:
            av.inflight += d * c
            if av.inflight <= 0 and not av.vmas:
                k.mappings.pop(i, None)


# what a moved page's new frame looks like: on the LRU, no lock, no writeback
_FRESH_CLEAR = PG_isolated | PG_locked | PG_writeback


def _store(arr: np.ndarray, sel, pos, vals) -> None:
    """arr[sel][pos] = vals, where sel is the chunk's slice or index array and pos
    the positions inside the chunk (None: all)."""
    if isinstance(sel, slice):
        if pos is None:
            arr[sel] = vals
        else:
            arr[sel.start + pos] = vals
    else:
        arr[sel if pos is None else sel[pos]] = vals


def _copy_frames(k: Kernel, src: np.ndarray, dst: np.ndarray, taken: tuple | None = None):
    """Copy the frames' entries to the new frames, which come fresh: on the LRU, not
    isolated (the isolation's reference is dropped), unlocked. Returns the kinds,
    mappings, indexes and mapcounts read (the caller needs them): one read of each
    entry, none when the caller read them (taken: as Frames.take gives them, before
    isolation or the wait for a lock: the bits those change are the ones reset here).
    """
    f = k.f
    kf, rec = f.take(src) if taken is None else (taken[0].copy(), taken[1])
    fl = kf["flags"]
    fl &= ~_FRESH_CLEAR
    fl |= PG_lru
    f.put(dst, kf, rec)
    return kf["kind"], rec["mapping"], rec["index"], rec["mapcount"]
