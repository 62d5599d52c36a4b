"""Reverse map: from a frame to every page-table entry that maps it (mm/rmap.c).

Anonymous frames record (anon_vma, index = vpn - anon_vma.base_vpn); page-cache and
driver frames record (backing object, page index). Walking the anon_vma's or the
backing's VMA list finds every mapping, as rmap_walk() does. Frames are grouped by
mapping object with one sort; the loops run over objects and their VMAs, never
over pages."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..constants import VM_LOCKED, PG_mlocked
from ..vec import distinct, stable_argsort
from .mm_types import VMA, AnonVMA, Backing
from .state import Kernel


def vma_offsets(obj: AnonVMA | Backing, v: VMA, index: np.ndarray) -> np.ndarray:
    """Offsets in VMA v of pages with `index` in their mapping object (may be out of
    range), as int64 (one pass over the indexes, whatever their dtype)."""
    base = obj.base_vpn - v.vpn if isinstance(obj, AnonVMA) else -v.pgoff
    return np.add(index, base, dtype=np.int64)


def by_object(k: Kernel, pfns: np.ndarray, mapping: np.ndarray | None = None
              ) -> Iterator[tuple[AnonVMA | Backing, np.ndarray | None]]:
    """(mapping object, positions into pfns) for each object the frames belong to;
    positions None: every frame (the usual case of one object). mapping: the frames'
    mapping ids, if read already."""
    if len(pfns) == 0:
        return
    if mapping is None:
        mapping = k.f.mapping[pfns]
    lo, hi = int(mapping.min()), int(mapping.max())
    ids = np.array([lo]) if lo == hi else distinct(mapping)
    if ids.size == 1:
        groups = [None]
        keys = [int(ids[0])]
    elif ids.size <= 16:
        # few mapping objects (the usual case): a mask per object beats a sort
        groups = [np.flatnonzero(mapping == i) for i in ids]
        keys = ids.tolist()
    else:
        order = stable_argsort(mapping)
        bounds = np.flatnonzero(np.diff(mapping[order])) + 1
        groups = np.split(order, bounds)
        keys = [int(mapping[g[0]]) for g in groups]
    for key, grp in zip(keys, groups):
        obj = k.mappings.get(key)
        if obj is not None:
            yield obj, grp


def for_each_mapping(k: Kernel, pfns: np.ndarray
                     ) -> Iterator[tuple[VMA, np.ndarray, np.ndarray]]:
    """Yield (vma, positions into pfns, offsets in the VMA) for every pte mapping
    one of `pfns`."""
    if len(pfns) == 0:
        return
    index_all = k.f.index[pfns].astype(np.int64)
    for obj, grp in by_object(k, pfns):
        gidx = index_all if grp is None else index_all[grp]
        gpfn = pfns if grp is None else pfns[grp]
        for v in list(obj.vmas):
            offs = vma_offsets(obj, v, gidx)
            ok = (offs >= 0) & (offs < v.npages)
            if ok.all():
                hit = v.ptes(offs) == gpfn
                if hit.all():  # every page of the group is mapped here (private anon)
                    yield v, (np.arange(pfns.size) if grp is None else grp), offs
                    continue
                sel = np.flatnonzero(hit)
            else:
                sel = np.flatnonzero(ok)
                sel = sel[v.ptes(offs[sel]) == gpfn[sel]]
            if sel.size:
                yield v, (sel if grp is None else grp[sel]), offs[sel]


def redirect(k: Kernel, old: np.ndarray, new: np.ndarray, index: np.ndarray | None = None,
             mapping: np.ndarray | None = None, mapcount: np.ndarray | None = None) -> None:
    """remove_migration_ptes(): point every mapping of old[i] at new[i], and the
    page cache / driver slot too. index, mapping, mapcount: the frames' fields, if
    read already."""
    index_all = k.f.index[old] if index is None else index
    for obj, grp in by_object(k, old, mapping):
        gidx = index_all if grp is None else index_all[grp]
        gold = old if grp is None else old[grp]
        gnew = new if grp is None else new[grp]
        # an anonymous page mapped once, of an anon_vma with one VMA, is mapped there,
        # at its index (the rmap invariant check() holds): no entry to compare first
        sole = isinstance(obj, AnonVMA) and len(obj.vmas) == 1 and mapcount is not None \
            and bool(((mapcount if grp is None else mapcount[grp]) == 1).all())
        for v in list(obj.vmas):
            offs = vma_offsets(obj, v, gidx)
            if offs.size and int(offs.min()) >= 0 and int(offs.max()) < v.npages:
                sel = None  # every page falls inside the VMA
            else:
                sel = np.flatnonzero((offs >= 0) & (offs < v.npages))
            o = offs if sel is None else offs[sel]
            if sole and sel is None:
                v.set_ptes(o, gnew)
                continue
            hit = v.ptes(o) == (gold if sel is None else gold[sel])
            if hit.all():
                v.set_ptes(o, gnew if sel is None else gnew[sel])
            elif hit.any():
                v.set_ptes(o[hit], (gnew if sel is None else gnew[sel])[hit])
        if isinstance(obj, Backing):
            obj.set_pages(gidx.astype(np.int64), gnew)


def mappers(k: Kernel, pfn: int) -> list[tuple[int, int]]:
    """(pid, address) of every mapping of one frame (for inspectors and messages)."""
    out = []
    arr = np.array([pfn], dtype=np.int64)
    for v, _pos, offs in for_each_mapping(k, arr):
        pid = v.mm.pid if v.mm is not None else -1
        out.append((pid, v.start + (int(offs[0]) << k.page_shift)))
    return out


def recompute_mlocked(k: Kernel, pfns: np.ndarray) -> None:
    """PG_mlocked stays set while any VM_LOCKED VMA maps the page: an rmap walk over
    the page's mappings, as try_to_munlock() did (munlock_folio today)."""
    if len(pfns) == 0:
        return
    pfns = np.asarray(pfns, dtype=np.int64)
    locked = np.zeros(pfns.size, bool)
    for v, pos, _offs in for_each_mapping(k, pfns):
        if v.flags & VM_LOCKED:
            locked[pos] = True
    f = k.f
    f.flags[pfns[locked]] |= PG_mlocked
    f.flags[pfns[~locked]] &= ~PG_mlocked
