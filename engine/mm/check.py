"""Machine.check(): the invariants, and the integrity oracle (every virtual page
still reads the content last written to it)."""

from __future__ import annotations

import numpy as np

from ..constants import (
    ANON_SHMEM,
    K_ANON,
    K_FILE,
    K_FREE,
    K_OFFLINE,
    K_PFNMAP,
    KIND_NAMES,
    PG_isolated,
    PG_pinned,
)
from ..vec import distinct
from .rmap import for_each_mapping
from .state import AnonVMA, Backing, Frames, Kernel


class InvariantError(AssertionError):
    """Raised by Machine.check() naming the first broken invariant."""


# check()'s working arrays per frame, beyond the frames themselves (measured: a peak of
# 34 bytes a frame on 1M and 4M frames; rounded up)
CHECK_BYTES_PER_FRAME = 40


def bytes_needed(nr_frames: int) -> int:
    """The memory a machine of nr_frames frames needs to exist and be checked: its frame
    arrays and check()'s working arrays (page tables and the rest come on top)."""
    per_frame = sum(np.dtype(d).itemsize for d in Frames.DTYPES) + CHECK_BYTES_PER_FRAME
    return int(nr_frames) * per_frame


def _fail(msg: str):
    raise InvariantError(msg)


def check_machine(m: Kernel) -> None:
    f = m.f
    kind = f.kind
    # 1. free counts per zone agree with the frames
    for z in m.zones:
        if z.spanned == 0:
            if z.free or z.present or z.managed:
                _fail(f"zone {z.label} spans nothing but counts {z.free} free pages")
            continue
        nfree = int((kind[z.start_pfn:z.end_pfn] == K_FREE).sum())
        if nfree != z.free:
            _fail(f"zone {z.label}: free count {z.free} but {nfree} free frames")
        if z.free > z.managed:
            _fail(f"zone {z.label}: free {z.free} exceeds managed {z.managed}")
    free = kind == K_FREE
    if (f.mapcount[free] != 0).any() or (f.refcount[free] != 0).any() or (f.flags[free] != 0).any():
        pf = int(np.flatnonzero(free & ((f.mapcount != 0) | (f.refcount != 0) | (f.flags != 0)))[0])
        _fail(f"free frame {pf} has counts or flags set")
    # 2. offline blocks hold only offline frames
    if (m.blk_state == 1).any():
        blk = np.arange(m.nr_frames) // m.block_pages
        off = m.blk_state[blk] == 1
        if (kind[off] != K_OFFLINE).any():
            pf = int(np.flatnonzero(off & (kind != K_OFFLINE))[0])
            _fail(f"frame {pf} in an offline block is {KIND_NAMES[kind[pf]]}")
    # 3. page tables against frames and the reverse map
    maps = np.zeros(m.nr_frames, np.int64)
    zero = m.zero_pfn
    for p in m.procs.values():
        last = -1
        for v in p.vmas:
            if v.start < last:
                _fail(f"pid {p.pid}: overlapping VMAs at {v.start:#x}")
            last = v.end
            if v.mm is not p:
                _fail(f"pid {p.pid}: VMA {v.start:#x} belongs to another address space")
            offs, pfn = v.present()
            keep = pfn != zero
            offs, pfn = offs[keep], pfn[keep]
            if pfn.size == 0:
                _check_lost(m, p, v)
                continue
            k = kind[pfn]
            bad = ~np.isin(k, (K_ANON, K_FILE, K_PFNMAP))
            if bad.any():
                i = int(np.argmax(bad))
                _fail(f"pid {p.pid} maps {v.start + (int(offs[i]) << m.page_shift):#x} to "
                      f"frame {int(pfn[i])} which is {KIND_NAMES[k[i]]}")
            np.add.at(maps, pfn, 1)
            _check_rmap(m, p, v, offs, pfn, k)
            _check_content(m, p, v, offs, pfn, k)
            _check_lost(m, p, v)
        _check_outside(m, p)
    mapped_kind = np.isin(kind, (K_ANON, K_FILE, K_PFNMAP))
    diff = mapped_kind & (maps != f.mapcount)
    if diff.any():
        pf = int(np.flatnonzero(diff)[0])
        _fail(f"frame {pf}: mapcount {int(f.mapcount[pf])} but {int(maps[pf])} page-table "
              f"entries map it")
    # 4. reference counts: mappings + page cache/driver + isolation + pin
    iso = (f.flags & PG_isolated) != 0
    pin = (f.flags & PG_pinned) != 0
    base = np.where(np.isin(kind, (K_FILE, K_PFNMAP)), 1, 0)
    want = f.mapcount.astype(np.int64) + base + iso + pin
    diff = mapped_kind & (f.refcount != want)
    if diff.any():
        pf = int(np.flatnonzero(diff)[0])
        _fail(f"frame {pf} ({KIND_NAMES[kind[pf]]}): refcount {int(f.refcount[pf])}, "
              f"expected {int(want[pf])}")
    _check_shared_anon(m)
    orphan = (kind == K_ANON) & (f.mapcount == 0) & ~iso & ~pin
    if orphan.any():
        _fail(f"anonymous frame {int(np.flatnonzero(orphan)[0])} is mapped by nothing "
              f"(leaked)")
    if int(iso.sum()) != m.isolated_pages:
        _fail(f"{int(iso.sum())} frames isolated but the machine counts {m.isolated_pages}")
    # 5. page cache and driver regions
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
        badk = (kind[pf] != want_kind) | (f.mapping[pf] != obj.id) | (f.index[pf] != idx)
        if badk.any():
            i = int(np.argmax(badk))
            _fail(f"{obj.name}: page {int(idx[i])} points at frame {int(pf[i])} that does "
                  f"not belong to it")
        want = obj.expects(idx)
        lost = f.content[pf] != want
        if lost.any():
            i = int(np.argmax(lost))
            _fail(f"{obj.name}: page {int(idx[i])} reads {int(f.content[pf[i]])}, last "
                  f"written {int(want[i])}")
    owned = (kind == K_FILE) | (kind == K_PFNMAP)
    # every page-cache/driver frame is indexed by its object
    opf = np.flatnonzero(owned)
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
    _check_owners(m)


def _check_owners(m: Kernel) -> None:
    """6. The leak audit: every pinned frame is held by a live memory registration
    (of a live process, with a pinning driver), and every mapping object by
    something live: an anon_vma by a VMA or a migration in flight, a page-cache
    object by its name or its driver, anonymous shared memory by a mapping, a pin
    or a migration."""
    f = m.f
    held = np.zeros(m.nr_frames, bool)
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
            held[pfns] = True
    stray = ((f.flags & PG_pinned) != 0) & ~held
    if stray.any():
        _fail(f"frame {int(np.argmax(stray))} is pinned but no live registration holds it "
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
        elif not obj.vmas and obj.name.startswith(ANON_SHMEM):
            _idx, pf = obj.present()
            if not ((f.flags[pf] & (PG_pinned | PG_isolated)) != 0).any():
                _fail(f"{obj.name}: anonymous shared memory that nothing maps, pins or "
                      f"migrates (leaked)")


def _check_rmap(m, p, v, offs, pfn, k) -> None:
    f = m.f
    if v.backing is not None:
        shared_obj = k != K_ANON
        if shared_obj.any():
            o = offs[shared_obj]
            pf = pfn[shared_obj]
            idx = v.pgoff + o
            bad = (f.mapping[pf] != v.backing.id) | (f.index[pf] != idx)
            if bad.any():
                i = int(np.argmax(bad))
                _fail(f"pid {p.pid}: rmap of {v.start + (int(o[i]) << m.page_shift):#x} "
                      f"(frame {int(pf[i])}) does not lead back to {v.backing.name}")
    anon = k == K_ANON
    if anon.any():
        if v.anon is None or v.anon not in v.chain or \
                any(v not in av.vmas for av in v.chain):
            _fail(f"pid {p.pid}: VMA {v.start:#x} maps anonymous pages without an anon_vma "
                  f"chain that leads back to it")
        o = offs[anon]
        pf = pfn[anon]
        # the page's anon_vma is one the VMA is chained to (its own, or after fork() an
        # ancestor's for a COW-shared page), and its index places it at this address
        mp = f.mapping[pf]
        bad = np.ones(pf.size, bool)
        for av in v.chain:
            sel = mp == av.id
            bad[sel] = f.index[pf[sel]] != (v.start >> m.page_shift) + o[sel] - av.base_vpn
        if bad.any():
            i = int(np.argmax(bad))
            _fail(f"pid {p.pid}: rmap of {v.start + (int(o[i]) << m.page_shift):#x} "
                  f"(frame {int(pf[i])}) does not lead back to it")


def _check_shared_anon(m) -> None:
    """A COW-shared anonymous frame (mapcount > 1, after fork()) is found by the rmap
    walk of its anon_vma as many times as it is mapped: every process mapping it is
    on that anon_vma's chain, so migration redirects all of them."""
    f = m.f
    shared = np.flatnonzero((f.kind == K_ANON) & (f.mapcount > 1))
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


def _check_content(m, p, v, offs, pfn, k) -> None:
    anon = k == K_ANON
    if anon.any():
        got = m.f.content[pfn[anon]]
        want = v.expects(offs[anon])
        bad = got != want
        if bad.any():
            i = int(np.argmax(bad))
            addr = v.start + (int(offs[anon][i]) << m.page_shift)
            _fail(f"pid {p.pid}: page {addr:#x} reads {int(got[i])}, last written "
                  f"{int(want[i])}")


def _check_lost(m, p, v) -> None:
    if not v.private:
        return
    written, _vals = v.written()
    if written.size == 0:
        return
    pte = v.ptes(written)
    lost = (pte < 0) | (pte == m.zero_pfn)
    if lost.any():
        addr = v.start + (int(written[np.argmax(lost)]) << m.page_shift)
        _fail(f"pid {p.pid}: page {addr:#x} was written and is no longer mapped (lost)")


def _check_outside(m, p) -> None:
    """No page-table entry outside every VMA (munmap clears what it unmaps)."""
    keys, pfns = p.pt.present(0, 1 << 62)
    if keys.size == 0:
        return
    inside = np.zeros(keys.size, bool)
    for v in p.vmas:
        a = np.searchsorted(keys, v.vpn)
        b = np.searchsorted(keys, v.vpn + v.npages)
        inside[a:b] = True
    if not inside.all():
        vpn = int(keys[np.argmax(~inside)])
        _fail(f"pid {p.pid}: a page-table entry at {vpn << m.page_shift:#x} lies outside "
              f"every VMA")
