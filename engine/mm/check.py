"""Machine.check(): the invariants, and the integrity oracle (every virtual page
still reads the content last written to it).

It scales with the machine: the frames are read a slice at a time (Frames.words,
SCAN_SLICE frames: the temporaries stay in cache and none is as large as the
machine), the page tables one VMA slice at a time, and page-table entries are
counted per frame by sorting the mapped PFNs (no frame-sized counter). A 1 TiB
machine (268 M frames) is checked in about a second within a few hundred MiB."""

from __future__ import annotations

import numpy as np

from ..constants import (
    K_ANON,
    K_FILE,
    K_KERNEL,
    K_OFFLINE,
    K_PFNMAP,
    KIND_NAMES,
    PG_isolated,
    PG_pinned,
)
from ..vec import distinct, join_runs
from .frames import HELD, KF_DTYPE, REC_DTYPE, SCAN_SLICE
from .huge_memory import FOLIO_HUGETLB, FOLIO_PTE_MAPPED, FOLIO_SURPLUS, FOLIO_TAIL, ORDER_MASK
from .hugetlb import hstate_orders, pool_counts, resv_huge_pages, size_kb
from .mm_types import AnonVMA, Backing
from .pagetable import CHUNK
from .rmap import for_each_mapping
from .state import Kernel

# kind | flags << 8 words
_ISO_BIT = int(PG_isolated) << 8
_PIN_BIT = int(PG_pinned) << 8
_NOT_PTE_MAPPED = np.uint16(~FOLIO_PTE_MAPPED & 0xFFFF)


# check()'s working arrays per frame, beyond the frames themselves (measured: a peak of
# 34 bytes a frame on 1M and 4M frames; rounded up)
CHECK_BYTES_PER_FRAME = 40


def bytes_needed(nr_frames: int) -> int:
    """The memory a machine of nr_frames frames needs to exist and be checked: its frame
    arrays and check()'s working arrays (page tables and the rest come on top)."""
    per_frame = np.dtype(KF_DTYPE).itemsize + np.dtype(REC_DTYPE).itemsize
    return int(nr_frames) * (per_frame + CHECK_BYTES_PER_FRAME)


class InvariantError(AssertionError):
    """Raised by Machine.check() naming the first broken invariant."""


def _fail(msg: str):
    raise InvariantError(msg)


def check_machine(m: Kernel) -> None:
    _check_zones(m)
    _check_offline(m)
    mapped = _check_page_tables(m)
    _check_frames(m, mapped)
    _check_shared_anon(m)
    _check_backings(m)
    _check_owners(m)
    _check_folios(m)
    _check_reservations(m)


# ----------------------------------------------------------------- frames

def _slices(a: int, b: int):
    for s in range(a, b, SCAN_SLICE):
        yield s, min(b, s + SCAN_SLICE)


def _is_mapped_kind(kind: np.ndarray) -> np.ndarray:
    """Anonymous, page-cache and PFN-mapped frames: the kinds a page table maps
    (K_ANON, K_FILE, K_PFNMAP are 2, 3, 4)."""
    return (kind >= K_ANON) & (kind <= K_PFNMAP)


def _check_zones(m: Kernel) -> None:
    """1. free counts per zone agree with the frames; a free frame has no flags."""
    f = m.f
    for z in m.zones:
        if z.spanned == 0:
            if z.free or z.present or z.managed:
                _fail(f"zone {z.label} spans nothing but counts {z.free} free pages")
            continue
        nfree = 0
        for s, e in _slices(z.start_pfn, z.end_pfn):
            w = f.words(s, e)
            kind = w.astype(np.uint8)
            free = int(np.count_nonzero(kind == 0))
            if free != int(np.count_nonzero(w == 0)):  # a free frame with flags
                pf = s + int(np.flatnonzero((kind == 0) & (w != 0))[0])
                _fail(f"free frame {pf} has counts or flags set")
            nfree += free
        if nfree != z.free:
            _fail(f"zone {z.label}: free count {z.free} but {nfree} free frames")
        if z.free > z.managed:
            _fail(f"zone {z.label}: free {z.free} exceeds managed {z.managed}")


def _check_offline(m: Kernel) -> None:
    """2. offline blocks hold only offline frames."""
    f = m.f
    for b in np.flatnonzero(m.blk_state == 1).tolist():
        s, e = b * m.block_pages, min((b + 1) * m.block_pages, m.nr_frames)
        kind = f.kinds(s, e)
        if (kind != K_OFFLINE).any():
            pf = s + int(np.flatnonzero(kind != K_OFFLINE)[0])
            _fail(f"frame {pf} in an offline block is {KIND_NAMES[f.kind[pf]]}")


def _check_frames(m: Kernel, mapped: tuple[np.ndarray, np.ndarray]) -> None:
    """3b-5. mapcounts against the page-table entries counted (mapped: distinct
    PFNs, their entries), leaked anonymous frames, the isolated count, and every
    page-cache or driver frame indexed by its object."""
    f = m.f
    pfns, counts = mapped
    # every frame some entry maps holds a mapcount equal to the entries
    if pfns.size:
        mc = f.mapcount[pfns]
        bad = mc != counts
        if bad.any():
            i = int(np.argmax(bad))
            want = int(counts[i] if counts.size > 1 else counts[0])
            _fail(f"frame {int(pfns[i])}: mapcount {int(mc[i])} but {want} "
                  f"page-table entries map it")
    isolated = 0
    owned: list[np.ndarray] = []
    with_count = 0
    for s, e in _slices(0, m.nr_frames):
        w = f.words(s, e)
        isolated += int(np.count_nonzero(w & _ISO_BIT))
        kind = w.astype(np.uint8)
        mk = np.flatnonzero(_is_mapped_kind(kind))
        mc = f.mapcount[s + mk]
        nz = mc != 0
        n_nz = int(np.count_nonzero(nz))
        kern = np.flatnonzero(kind == K_KERNEL)
        if kern.size and f.mapcount[s + kern].any():
            # only what a page table maps has a mapcount (the zero page counts none);
            # a free or offline frame's record means nothing (Frames.release)
            pf = s + int(kern[np.argmax(f.mapcount[s + kern] != 0)])
            _fail(f"frame {pf} (kernel) has mapcount {int(f.mapcount[pf])}")
        if mk.size == 0:
            continue
        with_count += n_nz
        k = kind[mk]
        # 4. an anonymous frame nothing maps, isolates or pins has leaked
        anon0 = (k == K_ANON) & ~nz
        if anon0.any():
            held = (w[mk[anon0]] & (_ISO_BIT | _PIN_BIT)) != 0
            if not held.all():
                pf = s + int(mk[anon0][np.argmax(~held)])
                _fail(f"anonymous frame {pf} is mapped by nothing (leaked)")
        own = (k == K_FILE) | (k == K_PFNMAP)
        if own.any():
            owned.append(s + mk[own])
    if with_count != pfns.size:
        # a frame with a mapcount that no entry maps: the first one
        for s, e in _slices(0, m.nr_frames):
            mk = s + np.flatnonzero(_is_mapped_kind(f.kinds(s, e)))
            mk = mk[f.mapcount[mk] != 0]
            lone = mk[~np.isin(mk, pfns)]
            if lone.size:
                pf = int(lone[0])
                _fail(f"frame {pf}: mapcount {int(f.mapcount[pf])} but 0 page-table "
                      f"entries map it")
    if isolated != m.isolated_pages:
        _fail(f"{isolated} frames isolated but the machine counts {m.isolated_pages}")
    # every page-cache/driver frame is indexed by its object
    opf = np.concatenate(owned) if owned else np.zeros(0, np.int64)
    if opf.size:
        ids = f.mapping[opf]
        for mid in distinct(ids):
            obj = m.mappings.get(int(mid))
            sel = opf[ids == mid]
            if not isinstance(obj, Backing):
                _fail(f"frame {int(sel[0])} belongs to a mapping that does not exist")
            idx = f.index[sel]
            if (idx >= obj.npages).any() or (obj.pages(idx) != sel).any():
                _fail(f"frame {int(sel[0])} is not in {obj.name}'s index (leaked)")


# ----------------------------------------------------------------- page tables

def _check_page_tables(m: Kernel) -> tuple[np.ndarray, np.ndarray]:
    """3. page tables against frames and the reverse map; returns the frames mapped
    (distinct PFNs, ascending) and how many entries map each."""
    zero = m.zero_pfn
    parts: list[np.ndarray] = []
    for p in m.procs.values():
        if p.bounds is not None:  # the cached bounds (get_unmapped_area, lookups)
            n = len(p.vmas)
            if p.bounds[0].size != n or any(
                    (int(p.bounds[0][i]), int(p.bounds[1][i])) != (v.start, v.end)
                    for i, v in enumerate(p.vmas)):
                _fail(f"pid {p.pid}: stale VMA bounds (a VMA change not recorded)")
        last = -1
        for v in p.vmas:
            if v.start < last:
                _fail(f"pid {p.pid}: overlapping VMAs at {v.start:#x}")
            last = v.end
            if v.mm is not p:
                _fail(f"pid {p.pid}: VMA {v.start:#x} belongs to another address space")
            for o0 in range(0, v.npages, SCAN_SLICE):
                offs, pfn = v.present(o0, min(v.npages, o0 + SCAN_SLICE))
                keep = pfn != zero
                if not keep.all():
                    offs, pfn = offs[keep], pfn[keep]
                if pfn.size:
                    _check_entries(m, p, v, offs, pfn)
                    parts.append(pfn.astype(np.int32 if m.nr_frames <= 1 << 31 else np.int64))
            _check_lost(m, p, v)
        _check_outside(m, p)
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    s = join_runs(parts)  # (VMAs mapped in order, none sharing a frame: no sort)
    if s is not None:
        return s, np.ones(1, np.int64)  # every frame mapped once (the usual case)
    s = np.sort(np.concatenate(parts))
    if s.size < 2 or not (s[1:] == s[:-1]).any():
        return s, np.ones(1, np.int64)  # every frame mapped once (the usual case)
    first = np.ones(s.size, bool)
    np.not_equal(s[1:], s[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    counts = np.diff(starts, append=s.size)
    return s[starts], counts


def _check_entries(m: Kernel, p, v, offs: np.ndarray, pfn: np.ndarray) -> None:
    """The frames some entries of v map: a kind that a page table maps, the reverse
    map leading back to the entry, and (private pages) the content last written."""
    f = m.f
    kf, rec = f.take(pfn)
    k = kf["kind"]
    bad = ~_is_mapped_kind(k)
    if bad.any():
        i = int(np.argmax(bad))
        _fail(f"pid {p.pid} maps {v.start + (int(offs[i]) << m.page_shift):#x} to "
              f"frame {int(pfn[i])} which is {KIND_NAMES[k[i]]}")
    anon = k == K_ANON
    if v.backing is not None and not anon.all():
        o = offs[~anon]
        idx = v.pgoff + o
        bad = (rec["mapping"][~anon] != v.backing.id) | (rec["index"][~anon] != idx)
        if bad.any():
            i = int(np.argmax(bad))
            _fail(f"pid {p.pid}: rmap of {v.start + (int(o[i]) << m.page_shift):#x} "
                  f"(frame {int(pfn[~anon][i])}) does not lead back to {v.backing.name}")
    if anon.any():
        if v.anon is None or v.anon not in v.chain or \
                any(v not in av.vmas for av in v.chain):
            _fail(f"pid {p.pid}: VMA {v.start:#x} maps anonymous pages without an anon_vma "
                  f"chain that leads back to it")
        every = anon.all()
        o = offs if every else offs[anon]
        ra = rec if every else rec[anon]
        # the page's anon_vma is one the VMA is chained to (its own, or after fork() an
        # ancestor's for a COW-shared page), and its index places it at this address
        mp = ra["mapping"]
        bad = np.ones(o.size, bool)
        for av in v.chain:
            sel = mp == av.id
            bad[sel] = ra["index"][sel] != (v.start >> m.page_shift) + o[sel] - av.base_vpn
        if bad.any():
            i = int(np.argmax(bad))
            pf = pfn if every else pfn[anon]
            _fail(f"pid {p.pid}: rmap of {v.start + (int(o[i]) << m.page_shift):#x} "
                  f"(frame {int(pf[i])}) does not lead back to it")
        got = ra["content"]
        want = v.expects(o)
        bad = got != want
        if bad.any():
            i = int(np.argmax(bad))
            addr = v.start + (int(o[i]) << m.page_shift)
            _fail(f"pid {p.pid}: page {addr:#x} reads {int(got[i])}, last written "
                  f"{int(want[i])}")


def _check_lost(m, p, v) -> None:
    if not v.private:
        return
    vpn = v.mm.pt.first_lost(v.vpn, v.vpn + v.npages, m.zero_pfn)
    if vpn is not None:
        addr = v.start + ((vpn - v.vpn) << m.page_shift)
        _fail(f"pid {p.pid}: page {addr:#x} was written and is no longer mapped (lost)")


def _check_outside(m, p) -> None:
    """No page-table entry outside every VMA (munmap clears what it unmaps). A chunk
    of the table that some VMA covers whole needs no look; the others (a VMA's edges,
    chunks no VMA reaches) are read entry by entry."""
    pt = p.pt
    chunks = pt.keys
    if chunks.size == 0:
        return
    covered = np.zeros(chunks.size, bool)
    for v in p.vmas:
        c0 = -(-v.vpn // CHUNK)  # the first chunk inside the VMA whole
        c1 = (v.vpn + v.npages) // CHUNK
        covered[np.searchsorted(chunks, c0):np.searchsorted(chunks, c1)] = True
    for c in chunks[~covered].tolist():
        keys, _pfns = pt.present(c * CHUNK, (c + 1) * CHUNK)
        if keys.size == 0:
            continue
        inside = np.zeros(keys.size, bool)
        for v in p.vmas:
            inside |= (keys >= v.vpn) & (keys < v.vpn + v.npages)
        if not inside.all():
            vpn = int(keys[np.argmax(~inside)])
            _fail(f"pid {p.pid}: a page-table entry at {vpn << m.page_shift:#x} lies "
                  f"outside every VMA")


# ----------------------------------------------------------------- page cache

def _check_backings(m: Kernel) -> None:
    """5. page cache and driver regions: written pages still there, frames that
    belong to the object, holding what was last written."""
    f = m.f
    for obj in m.mappings.values():
        if not isinstance(obj, Backing):
            continue
        idx, pf = obj.present()
        gone_idx, gone_val = obj.pt.written(0, obj.npages)
        if gone_idx.size:
            miss = obj.pages(gone_idx) < 0
            if miss.any():
                _fail(f"{obj.name}: page {int(gone_idx[np.argmax(miss)])} was written "
                      f"and is gone")
        if pf.size == 0:
            continue
        want_kind = K_FILE if obj.kind == "file" else K_PFNMAP
        kf, rec = f.take(pf)
        badk = (kf["kind"] != want_kind) | (rec["mapping"] != obj.id) | (rec["index"] != idx)
        if badk.any():
            i = int(np.argmax(badk))
            _fail(f"{obj.name}: page {int(idx[i])} points at frame {int(pf[i])} that does "
                  f"not belong to it")
        want = obj.expects(idx)
        lost = rec["content"] != want
        if lost.any():
            i = int(np.argmax(lost))
            _fail(f"{obj.name}: page {int(idx[i])} reads {int(rec['content'][i])}, last "
                  f"written {int(want[i])}")


def _check_shared_anon(m: Kernel) -> None:
    """A COW-shared anonymous frame (mapcount > 1, after fork()) is found by the rmap
    walk of its anon_vma as many times as it is mapped: every process mapping it is
    on that anon_vma's chain, so migration redirects all of them."""
    f = m.f
    parts = []
    for s, e in _slices(0, m.nr_frames):
        kind = f.kinds(s, e)
        a = s + np.flatnonzero(kind == K_ANON)
        if a.size:
            parts.append(a[f.mapcount[a] > 1])
    shared = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if shared.size == 0:
        return
    found = np.zeros(shared.size, np.int64)
    for _v, pos, _offs in for_each_mapping(m, shared):
        np.add.at(found, pos, 1)
    bad = found != f.mapcount[shared]
    if bad.any():
        i = int(np.argmax(bad))
        _fail(f"anonymous frame {int(shared[i])}: mapcount {int(f.mapcount[shared[i]])} but "
              f"the rmap walk of its anon_vma finds {int(found[i])} mapping(s)")


def _check_owners(m: Kernel) -> None:
    """6. The leak audit: every pinned frame is held by a live memory registration
    (of a live process, with a pinning driver), and every mapping object by
    something live: an anon_vma by a VMA or a migration in flight, a page-cache
    object by its name or its driver, anonymous shared memory by a mapping, a pin
    or a migration."""
    f = m.f
    held: list[np.ndarray] = []
    for d in m.drivers_map.values():
        for pid, addr, _length, pfns in d.pins:
            where = f"driver {d.name}: the registration of pid {pid} at {addr:#x}"
            if d.pfnmap:
                _fail(f"{where} is held by a driver that maps a region, not one that pins")
            if pid not in m.procs:
                _fail(f"{where} outlived its process (leaked pin)")
            if pfns.size == 0:
                continue
            if pfns.min() < 0 or pfns.max() >= m.nr_frames:
                _fail(f"{where} holds a frame that does not exist")
            loose = (f.flags[pfns] & PG_pinned) == 0
            if loose.any():
                _fail(f"{where} holds frame {int(pfns[np.argmax(loose)])}, which is not "
                      f"pinned")
            held.append(pfns)
    hold = np.unique(np.concatenate(held)) if held else np.zeros(0, np.int64)
    for s, e in _slices(0, m.nr_frames):
        pinned = s + np.flatnonzero(f.words(s, e) & _PIN_BIT)
        stray = pinned[~np.isin(pinned, hold)]
        if stray.size:
            _fail(f"frame {int(stray[0])} is pinned but no live registration holds it "
                  f"(leaked pin)")
    named = {id(b) for b in m.files.values()}
    named |= {id(d.backing) for d in m.drivers_map.values() if d.backing is not None}
    for obj in m.mappings.values():
        if isinstance(obj, AnonVMA):
            if not obj.vmas and obj.inflight <= 0:
                _fail(f"anon_vma {obj.id} of pid {obj.pid} has no VMA and no migration in "
                      f"flight (leaked)")
        elif id(obj) not in named:
            _fail(f"{obj.name} is neither a file nor a driver region (leaked)")
        elif not obj.vmas and obj.unlinked:
            _idx, pf = obj.present()
            if not ((f.flags[pf] & (PG_pinned | PG_isolated)) != 0).any():
                _fail(f"{obj.name}: anonymous shared memory that nothing maps, pins or "
                      f"migrates (leaked)")


# ----------------------------------------------------------------- folios

def _check_folios(m: Kernel) -> None:
    """Large folios (huge_memory.py): each head naturally aligned, its 2^order - 1
    tails right after it marked as its tails, every frame of a folio held, of the
    head's kind and in the head's zone (so on its node); no tail without its head;
    as many heads as Kernel.large_folios counts."""
    f = m.f
    found = []
    for s, e in _slices(0, m.nr_frames):
        sp = f.spare[s:e]
        nz = np.flatnonzero(sp)
        if nz.size:
            nz = nz[HELD[f.kinds(s, e)[nz]]]
            found.append(nz.astype(np.int64) + s)
    pos = np.concatenate(found) if found else np.zeros(0, np.int64)
    sp = f.spare[pos]
    tail = (sp & FOLIO_TAIL) != 0
    heads = pos[~tail]
    if heads.size != m.large_folios:
        _fail(f"{heads.size} large folio heads in the frames, but the machine counts "
              f"{m.large_folios}")
    if heads.size == 0:
        if pos.size:
            _fail(f"frame {int(pos[0])} is marked a folio tail but no folio has a head")
        return
    hs_sp = sp[~tail]
    sur = (hs_sp & FOLIO_SURPLUS) != 0
    if sur.any():
        # (in use: a private mapping's anon page or a shared one's file page; or free
        # in its pool for a reservation)
        hk = f.kind[heads]
        bad = sur & (((hs_sp & FOLIO_HUGETLB) == 0) | ((hk != K_ANON) & (hk != K_FILE)
                                                        & (hk != K_KERNEL)))
        if bad.any():
            _fail(f"folio {int(heads[bad][0])} is marked surplus but is no hugetlb page "
                  f"in use")
    orders = (sp[~tail] & ORDER_MASK).astype(np.int64)
    top = 2 * (m.page_shift - 3)  # (the PUD order: a gigantic hugetlb page)
    if (orders == 0).any() or (orders > top).any():
        h = int(heads[(orders == 0) | (orders > top)][0])
        _fail(f"folio head {h} has a bad order ({int(f.spare[h]) & ORDER_MASK})")
    bad = heads & ((np.int64(1) << orders) - 1)
    if bad.any():
        h = int(heads[bad != 0][0])
        _fail(f"folio head {h} of order {int(f.spare[h]) & ORDER_MASK} is not aligned")
    ntails = 0
    for o in np.unique(orders).tolist():
        hs = heads[orders == o]
        n = 1 << o
        if int(hs[-1]) + n > m.nr_frames:
            _fail(f"folio {int(hs[-1])} of order {o} runs past the last frame")
        fr = (hs[:, None] + np.arange(n, dtype=np.int64)).reshape(-1, n)
        tsp = f.spare[fr[:, 1:]]
        want = (FOLIO_TAIL | o | (f.spare[hs] & FOLIO_HUGETLB))[:, None]
        if ((tsp & _NOT_PTE_MAPPED) != want).any():
            i = np.argwhere((tsp & _NOT_PTE_MAPPED) != want)[0]
            _fail(f"frame {int(fr[i[0], i[1] + 1])} of folio {int(hs[i[0]])} (order {o}) "
                  f"is not marked its tail")
        kinds = f.kind[fr]
        if (kinds != kinds[:, :1]).any() or not HELD[kinds[:, 0]].all():
            i = int(np.flatnonzero((kinds != kinds[:, :1]).any(axis=1)
                                   | ~HELD[kinds[:, 0]])[0])
            _fail(f"folio {int(hs[i])} (order {o}) holds frames of different kinds or "
                  f"free frames")
        zn = m.zone_of(fr[:, [0, -1]].reshape(-1)).reshape(-1, 2)
        if (zn[:, 0] != zn[:, 1]).any():
            i = int(np.flatnonzero(zn[:, 0] != zn[:, 1])[0])
            _fail(f"folio {int(hs[i])} (order {o}) crosses a zone boundary")
        ntails += hs.size * (n - 1)
    if int(tail.sum()) != ntails:
        _fail(f"{int(tail.sum())} frames are marked folio tails, but the folios have "
              f"{ntails}")


# ----------------------------------------------------------------- reservations

def _check_reservations(m: Kernel) -> None:
    """9. every hugetlb reservation is backed: each hstate's free pool pages are at
    least its reserved ones (hugetlb_acct_memory() at mmap, and every taker of a pool
    page since, keeps free_huge_pages >= resv_huge_pages)."""
    for o in hstate_orders(m):
        resv = resv_huge_pages(m, o)
        if resv:
            free = sum(pool_counts(m, n, o)[1] for n in m.memory_nodes())
            if free < resv:
                _fail(f"{resv} huge pages of {size_kb(m, o)} kB are reserved, but the "
                      f"pools have {free} free")
