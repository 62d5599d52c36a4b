"""Reverse map: from a frame to every page-table entry that maps it (mm/rmap.c).

Anonymous frames record (anon_vma, index = vpn - anon_vma.base_vpn); page-cache and
driver frames record (backing object, page index). Walking the anon_vma's or the
backing's VMA list finds every mapping, as rmap_walk() does."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..constants import K_ANON
from ..vec import distinct

if TYPE_CHECKING:  # pragma: no cover
    from ..machine import Machine


def vma_offsets(m: Machine, obj, v, index: np.ndarray) -> np.ndarray:
    """Offsets in VMA v of pages with `index` in their mapping object (may be out of range)."""
    if obj.__class__.__name__ == "AnonVMA":
        return obj.base_vpn + index - (v.start >> m.page_shift)
    return index - v.pgoff


def for_each_mapping(m: Machine, pfns: np.ndarray):
    """Yield (vma, positions into pfns, offsets in the VMA) for every pte mapping
    one of `pfns`; a loop over mapping objects and their VMAs, never over pages."""
    f = m.f
    if len(pfns) == 0:
        return
    mapping = f.mapping[pfns]
    index = f.index[pfns].astype(np.int64)
    ids = distinct(mapping)
    if ids.size == 1:
        groups = [None]  # one mapping object: every position, no index arrays
    elif ids.size <= 16:
        # few mapping objects (the usual case): a mask per object beats a sort
        groups = [np.flatnonzero(mapping == i) for i in ids]
    else:
        order = np.argsort(mapping, kind="stable")
        bounds = np.flatnonzero(np.diff(mapping[order])) + 1
        groups = np.split(order, bounds)
    for grp in groups:
        obj = m.mappings.get(int(mapping[0] if grp is None else mapping[grp[0]]))
        if obj is None:
            continue
        gidx = index if grp is None else index[grp]
        gpfn = pfns if grp is None else pfns[grp]
        for v in list(obj.vmas):
            offs = vma_offsets(m, obj, v, gidx)
            ok = (offs >= 0) & (offs < v.npages)
            if ok.all():
                hit = v.pte[offs] == gpfn
                if hit.all():  # every page of the group is mapped here (private anon)
                    yield v, (np.arange(pfns.size) if grp is None else grp), offs
                    continue
                sel = np.flatnonzero(hit)
            else:
                sel = np.flatnonzero(ok)
                sel = sel[v.pte[offs[sel]] == gpfn[sel]]
            if sel.size:
                yield v, (sel if grp is None else grp[sel]), offs[sel]


def redirect(m: Machine, old: np.ndarray, new: np.ndarray) -> None:
    """remove_migration_ptes(): point every mapping of old[i] at new[i], and the
    page cache / driver slot too."""
    f = m.f
    for v, pos, offs in for_each_mapping(m, old):
        v.pte[offs] = new[pos]
    shared = f.kind[old] != K_ANON
    if shared.any():
        o = old[shared]
        n = new[shared]
        mp = f.mapping[o]
        idx = f.index[o]
        for mid in distinct(mp):
            obj = m.mappings.get(int(mid))
            if obj is None or not hasattr(obj, "pages"):
                continue
            sel = mp == mid
            obj.pages[idx[sel]] = n[sel]


def mappers(m: Machine, pfn: int) -> list[tuple[int, int]]:
    """(pid, address) of every mapping of one frame (for inspectors and messages)."""
    out = []
    arr = np.array([pfn], dtype=np.int64)
    for v, _pos, offs in for_each_mapping(m, arr):
        pid = v.mm.pid if v.mm is not None else -1
        out.append((pid, v.start + (int(offs[0]) << m.page_shift)))
    return out
