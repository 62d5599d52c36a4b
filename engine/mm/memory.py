"""Processes, VMAs, page tables and faults: private anonymous memory, the shared
zero page, and MAP_SHARED files in a page cache (mm/mmap.c, mm/memory.c)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..constants import (
    EINVAL,
    ENOMEM,
    K_ANON,
    K_FILE,
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    VM_EXEC,
    VM_IO,
    VM_LOCKED,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_SPECIAL,
    VM_WRITE,
    PG_dirty,
    PG_isolated,
    PG_lru,
    PG_mlocked,
    oserror,
)
from ..vec import unique

if TYPE_CHECKING:  # pragma: no cover
    from ..machine import Machine
    from .mempolicy import Policy

MMAP_BASE = 0x7F0000000000
NO_PAGE = -1
# page-table entries and page-cache slots hold PFNs: int32 covers 8 TiB of 4 KiB frames
PTE_DTYPE = np.int32


@dataclass(eq=False)
class Backing:
    """A shared object pages are indexed in: a page-cache file or a driver's
    PFN-mapped region (its address_space / i_mmap)."""

    id: int
    name: str
    kind: str  # "file" | "driver"
    pages: np.ndarray  # page index -> PFN or NO_PAGE
    expect: np.ndarray  # page index -> content last written (the integrity oracle)
    vmas: list = field(default_factory=list)

    @property
    def npages(self) -> int:
        return len(self.pages)

    def grow(self, n: int) -> None:
        if n > len(self.pages):
            extra = n - len(self.pages)
            self.pages = np.concatenate([self.pages, np.full(extra, NO_PAGE, PTE_DTYPE)])
            self.expect = np.concatenate([self.expect, np.zeros(extra, np.uint32)])


@dataclass(eq=False)
class AnonVMA:
    """anon_vma: the reverse-map root of a process's anonymous pages. page->index is
    stored relative to `base_vpn`. `inflight` counts isolated pages whose migration
    holds it alive after its VMAs are gone (the modern anon_vma refcount rule)."""

    id: int
    pid: int
    base_vpn: int
    vmas: list = field(default_factory=list)
    inflight: int = 0


@dataclass(eq=False)
class VMA:
    start: int
    end: int
    flags: int
    policy: Policy | None = None
    anon: AnonVMA | None = None
    backing: Backing | None = None
    pgoff: int = 0  # index of the first page in its backing (file/driver) or anon_vma
    pte: np.ndarray = None  # virtual page -> PFN, NO_PAGE if none
    expect: np.ndarray | None = None  # private pages: content last written
    mm: Process | None = None

    @property
    def npages(self) -> int:
        return len(self.pte)

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def shared(self) -> bool:
        return bool(self.flags & VM_SHARED)

    @property
    def locked(self) -> bool:
        return bool(self.flags & VM_LOCKED)

    @property
    def pfnmap(self) -> bool:
        return bool(self.flags & VM_PFNMAP)

    @property
    def kind(self) -> str:
        if self.pfnmap:
            return "driver"
        if self.backing is not None:
            return "file"
        return "anon"

    def flag_string(self) -> str:
        s = "".join(c if self.flags & b else "-" for c, b in
                    (("r", VM_READ), ("w", VM_WRITE), ("x", VM_EXEC)))
        s += "s" if self.shared else "p"
        extra = [n for n, b in (("locked", VM_LOCKED), ("io", VM_IO), ("pfnmap", VM_PFNMAP))
                 if self.flags & b]
        return s + (" " + ",".join(extra) if extra else "")


@dataclass(eq=False)
class Process:
    pid: int
    name: str
    uid: int
    node: int
    mems_allowed: frozenset
    policy: Policy | None = None
    vmas: list = field(default_factory=list)  # sorted by start
    has_mm: bool = True
    def_flags: int = 0  # mlockall(MCL_FUTURE) sets VM_LOCKED here
    il_next: int = 0  # interleave cursor for task-policy allocations without a VMA
    stalls: int = 0  # accesses that waited on a page under migration

    def find_vma(self, addr: int) -> VMA | None:
        """vma_lookup(): the VMA containing addr."""
        for v in self.vmas:
            if v.start <= addr < v.end:
                return v
            if v.start > addr:
                return None
        return None

    def find_vma_above(self, addr: int) -> VMA | None:
        """find_vma(): first VMA with end > addr (no containment check; 2.6.18 used this)."""
        for v in self.vmas:
            if v.end > addr:
                return v
        return None

    def rss(self, m: Machine) -> int:
        n = 0
        for v in self.vmas:
            pte = v.pte
            n += int(((pte >= 0) & (pte != m.zero_pfn)).sum())
        return n


def prot_to_vmflags(prot: int, flags: int) -> int:
    vf = 0
    if prot & PROT_READ:
        vf |= VM_READ
    if prot & PROT_WRITE:
        vf |= VM_WRITE
    if prot & PROT_EXEC:
        vf |= VM_EXEC
    if flags & MAP_SHARED:
        vf |= VM_SHARED
    return vf


def get_unmapped_area(p: Process, length: int) -> int:
    """Top-down first fit below MMAP_BASE, as arch_get_unmapped_area_topdown()."""
    hi = MMAP_BASE
    for v in sorted(p.vmas, key=lambda v: v.start, reverse=True):
        if v.start >= hi:
            continue
        if hi - v.end >= length:
            return hi - length
        hi = min(hi, v.start)
    return hi - length


def new_vma(m: Machine, p: Process, start: int, length: int, vmflags: int,
            backing: Backing | None, pgoff: int) -> VMA:
    npages = length >> m.page_shift
    v = VMA(start=start, end=start + length, flags=vmflags, backing=backing, pgoff=pgoff,
            pte=np.full(npages, NO_PAGE, PTE_DTYPE), mm=p)
    if not (vmflags & VM_SHARED) and not (vmflags & VM_PFNMAP):
        v.expect = np.zeros(npages, np.uint32)
    if backing is not None:
        backing.vmas.append(v)
    return v


def insert_vma(p: Process, v: VMA) -> None:
    p.vmas.append(v)
    p.vmas.sort(key=lambda x: x.start)


def do_mmap(m: Machine, p: Process, length: int, prot: int, flags: int, file: str | None,
            driver: str | None) -> int:
    if length <= 0:
        raise oserror(EINVAL, f"mmap: length {length} must be positive")
    if not (flags & (MAP_SHARED | MAP_PRIVATE)) or (flags & MAP_SHARED and flags & MAP_PRIVATE):
        raise oserror(EINVAL, "mmap: exactly one of MAP_SHARED and MAP_PRIVATE is required")
    if file is not None and driver is not None:
        raise oserror(EINVAL, "mmap: give a file or a driver, not both")
    length = m.page_align(length)
    vmflags = prot_to_vmflags(prot, flags) | p.def_flags
    backing = None
    if driver is not None:
        drv = m.driver(driver)
        return drv.map_into(m, p, length, prot)
    if file is not None:
        backing = m.file(file, create=True)
        backing.grow(length >> m.page_shift)
    elif flags & MAP_SHARED:
        # MAP_SHARED|MAP_ANONYMOUS is shmem: a page cache object of its own
        backing = m.file(f"/dev/zero (deleted) #{m.next_mapping_id()}", create=True)
        backing.grow(length >> m.page_shift)
    elif not flags & MAP_ANONYMOUS:
        raise oserror(EINVAL, "mmap: a file mapping needs file=NAME")
    addr = get_unmapped_area(p, length)
    v = new_vma(m, p, addr, length, vmflags, backing, 0)
    insert_vma(p, v)
    if vmflags & VM_LOCKED:
        # mlockall(MCL_FUTURE): new mappings are populated and locked
        fault_range(m, p, v, 0, v.npages, write=bool(vmflags & VM_WRITE) and not v.shared,
                    node=p.node, populate=True)
    m.merge_vmas(p)
    return addr


def ensure_anon_vma(m: Machine, p: Process, v: VMA) -> AnonVMA:
    """anon_vma_prepare(): give a VMA its anon_vma at the first anonymous fault."""
    if v.anon is None:
        base = v.start >> m.page_shift
        av = AnonVMA(id=m.next_mapping_id(), pid=p.pid, base_vpn=base)
        m.mappings[av.id] = av
        v.anon = av
        av.vmas.append(v)
    return v.anon


def fault_range(m: Machine, p: Process, v: VMA, o0: int, o1: int, *, write: bool,
                node: int | None, populate: bool = False) -> None:
    """Fault in / access pages [o0, o1) of VMA v from a CPU on `node`."""
    from .mempolicy import policy_nodes_for_fault

    if o1 <= o0:
        return
    cpu = p.node if node is None else node
    f = m.f
    offs = np.arange(o0, o1)
    pte = v.pte[o0:o1]
    if m.isolated_pages:
        present = pte[pte >= 0]
        stalled = int(((f.flags[present] & PG_isolated) != 0).sum()) if present.size else 0
        if stalled:
            # a task touching a page under migration sleeps on its migration entry
            p.stalls += stalled
            m.vmstat_extra["migration_entry_waits"] += stalled
    if v.pfnmap:
        if write:
            tok = m.new_tokens(offs.size, v.start >> m.page_shift, offs)
            f.content[pte] = tok
            v.backing.expect[v.pgoff + offs] = tok
        return
    locked = v.locked
    if v.shared:
        b = v.backing
        idx = v.pgoff + offs
        missing = pte < 0
        if missing.any():
            # page cache: find or allocate the file page, then map it
            midx = idx[missing]
            cached = b.pages[midx]
            need = cached < 0
            if need.any():
                nidx = midx[need]
                newp = alloc_for_task(m, p, nidx.size, cpu)
                if newp.size < nidx.size:
                    nidx = nidx[: newp.size]
                f.kind[newp] = K_FILE
                f.mapping[newp] = b.id
                f.index[newp] = nidx
                f.refcount[newp] = 1  # the page cache's reference
                f.content[newp] = b.expect[nidx]
                b.pages[nidx] = newp
                cached = b.pages[midx]
            ok = cached >= 0
            mo = offs[missing][ok]
            cp = cached[ok]
            v.pte[mo] = cp
            np.add.at(f.mapcount, cp, 1)
            np.add.at(f.refcount, cp, 1)
            if locked:
                f.flags[cp] |= PG_mlocked
            if not ok.all():
                raise oserror(ENOMEM, "out of memory: page cache allocation failed")
        if write:
            pfn = v.pte[o0:o1]
            tok = m.new_tokens(offs.size, v.start >> m.page_shift, offs)
            f.content[pfn] = tok
            f.flags[pfn] |= PG_dirty
            b.expect[idx] = tok
        return
    # private mapping (anonymous, or a private file mapping with copy-on-write)
    zero = m.zero_pfn
    if not write:
        missing = pte < 0
        if missing.any():
            if v.backing is not None:
                b = v.backing
                idx = v.pgoff + offs[missing]
                # read fault on a private file mapping maps the page cache page
                _ensure_cached(m, p, b, idx, cpu)
                cp = b.pages[idx]
                v.pte[offs[missing]] = cp
                np.add.at(f.mapcount, cp, 1)
                np.add.at(f.refcount, cp, 1)
            else:
                v.pte[offs[missing]] = zero  # read fault maps the shared zero page
        return
    # write: allocate where there is no private anonymous page yet
    cur = v.pte[o0:o1]
    need = cur < 0
    need |= cur == zero
    if v.backing is not None:
        need |= (cur >= 0) & (f.kind[np.maximum(cur, 0)] == K_FILE)
    if populate:
        # __mm_populate() breaks COW without writing: each page keeps what a read
        # would give (its frame, the file's page for a private file mapping, or zeros)
        curc = np.where(cur >= 0, f.content[np.maximum(cur, 0)], 0).astype(np.uint32)
        if v.backing is not None:
            miss = cur < 0
            idx = v.pgoff + offs[miss]
            inside = idx < v.backing.npages
            fc = np.zeros(idx.size, np.uint32)
            fc[inside] = v.backing.expect[idx[inside]]
            curc[miss] = fc
        tok = np.where(cur == zero, np.uint32(0), curc).astype(np.uint32)
    else:
        tok = m.new_tokens(offs.size, v.start >> m.page_shift, offs)
    if not populate and need.all() and (cur < 0).all():
        # the common first touch of a fresh range: no old mapping, no COW, one pass
        if _fresh_anon_write(m, p, v, o0, o1, cpu, tok, locked):
            return
    if need.any():
        av = ensure_anon_vma(m, p, v)
        noffs = offs[need]
        targets, pref, il = policy_nodes_for_fault(m, p, v, noffs, cpu)
        newp, znodes = alloc_by_target(m, p, v, targets, pref, cpu, il)
        got = newp >= 0
        g_offs = noffs[got]
        g_pfn = newp[got]
        old = v.pte[g_offs]
        # drop the old mapping (file page on COW); the zero page is not counted
        oldf = old[(old >= 0) & (old != zero)]
        if oldf.size:
            np.add.at(f.mapcount, oldf, -1)
            np.add.at(f.refcount, oldf, -1)
        f.kind[g_pfn] = K_ANON
        f.mapping[g_pfn] = av.id
        f.index[g_pfn] = (v.start >> m.page_shift) + g_offs - av.base_vpn
        f.mapcount[g_pfn] = 1
        f.refcount[g_pfn] = 1
        f.flags[g_pfn] = PG_lru | (PG_mlocked if locked else 0)
        v.pte[g_offs] = g_pfn
        if not got.all():
            # write what could be written, then report the OOM
            wr = (~need) | np.isin(offs, g_offs)
            _write_private(m, v, offs[wr], tok[wr], not populate)
            raise oserror(ENOMEM, "out of memory: no free page on any allowed node")
    _write_private(m, v, slice(o0, o1), tok, not populate)


def _as_slice(pfns: np.ndarray):
    """A slice for an ascending run of consecutive frames (what the allocator hands out
    from a fresh zone), so the frame writes below are block copies, not scatters."""
    if pfns.size and int(pfns[-1]) - int(pfns[0]) == pfns.size - 1 and \
            (pfns.size < 3 or (np.diff(pfns[:: max(1, pfns.size // 64)]) > 0).all()):
        if (np.diff(pfns) == 1).all():
            return slice(int(pfns[0]), int(pfns[-1]) + 1)
    return pfns


def _fresh_anon_write(m: Machine, p: Process, v: VMA, o0: int, o1: int, cpu: int,
                      tok: np.ndarray, locked: bool) -> bool:
    """Write faults on pages [o0, o1) that have no mapping yet. False (nothing done)
    when memory runs out, so the general path reports the OOM."""
    from .mempolicy import policy_nodes_for_fault

    offs = np.arange(o0, o1)
    targets, pref, il = policy_nodes_for_fault(m, p, v, offs, cpu)
    newp, _ = alloc_by_target(m, p, v, targets, pref, cpu, il)
    if (newp < 0).any():
        bad = newp >= 0
        # give back what was taken: the general path redoes it page by page
        if bad.any():
            m.free_frames(newp[bad])
        return False
    av = ensure_anon_vma(m, p, v)
    f = m.f
    w = _as_slice(newp)
    f.kind[w] = K_ANON
    f.mapping[w] = av.id
    f.index[w] = (v.start >> m.page_shift) + offs - av.base_vpn
    f.mapcount[w] = 1
    f.refcount[w] = 1
    f.flags[w] = PG_lru | PG_dirty | (PG_mlocked if locked else 0)
    f.content[w] = tok
    v.pte[o0:o1] = newp
    v.expect[o0:o1] = tok
    return True


def _write_private(m: Machine, v: VMA, offs, tok: np.ndarray, dirty: bool = True) -> None:
    """Write tokens to private pages at `offs` (an index array or a slice)."""
    pfn = v.pte[offs]
    m.f.content[pfn] = tok
    if dirty:
        m.f.flags[pfn] |= PG_dirty
    v.expect[offs] = tok


def _ensure_cached(m: Machine, p: Process, b: Backing, idx: np.ndarray, cpu: int) -> None:
    need = idx[b.pages[idx] < 0]
    if need.size == 0:
        return
    need = unique(need)
    newp = alloc_for_task(m, p, need.size, cpu)
    if newp.size < need.size:
        raise oserror(ENOMEM, "out of memory: page cache allocation failed")
    f = m.f
    f.kind[newp] = K_FILE
    f.mapping[newp] = b.id
    f.index[newp] = need
    f.refcount[newp] = 1
    f.content[newp] = b.expect[need]
    b.pages[need] = newp


def alloc_for_task(m: Machine, p: Process, k: int, cpu: int) -> np.ndarray:
    """Page-cache allocation: task policy, no VMA (interleave uses the task cursor)."""
    from .mempolicy import task_alloc_nodes

    targets, pref, il = task_alloc_nodes(m, p, k, cpu)
    pfns, _ = alloc_by_target(m, p, None, targets, pref, cpu, il)
    return pfns[pfns >= 0]


def alloc_by_target(m: Machine, p: Process, v: VMA | None, targets: np.ndarray,
                    pref: np.ndarray, cpu: int, il: np.ndarray | None,
                    strict_nodes=None) -> tuple[np.ndarray, np.ndarray]:
    """Allocate one frame per entry of `targets` (intended node per page; the
    zonelist of that node restricted to the allowed set is walked). Returns
    (pfns with -1 where allocation failed, supplying nodes)."""
    from ..vec import distinct
    from .mempolicy import fallback_nodes
    from .page_alloc import account_alloc, alloc_frames_runs, run_nodes

    out = np.full(targets.size, -1, np.int64)
    znodes = np.full(targets.size, -1, np.int64)
    t0 = int(targets[0]) if targets.size else 0
    if targets.size and (targets == t0).all():
        # one intended node (every policy but interleave): no grouping needed
        got, runs = alloc_frames_runs(m, targets.size, fallback_nodes(m, p, v, t0, cpu))
        out[: got.size] = got
        znodes[: got.size] = run_nodes(runs)
    else:
        for t in distinct(targets):
            sel = np.flatnonzero(targets == t)
            order = fallback_nodes(m, p, v, int(t), cpu)
            got, runs = alloc_frames_runs(m, sel.size, order)
            out[sel[: got.size]] = got
            znodes[sel[: got.size]] = run_nodes(runs)
    ok = out >= 0
    if ok.any():
        if ok.all():
            account_alloc(m, znodes, pref, cpu, il)
        else:
            account_alloc(m, znodes[ok], pref[ok], cpu, None if il is None else il[ok])
    return out, znodes


def unmap_ptes(m: Machine, v: VMA, offs: np.ndarray) -> None:
    """zap_pte_range(): drop mappings; anonymous pages whose last mapping goes are
    freed unless a migration holds them (isolated: freed when it finishes)."""
    pte = v.pte[offs]
    present = pte[(pte >= 0) & (pte != m.zero_pfn)]
    v.pte[offs] = NO_PAGE
    if v.expect is not None:
        v.expect[offs] = 0
    if present.size == 0:
        return
    f = m.f
    np.add.at(f.mapcount, present, -1)
    np.add.at(f.refcount, present, -1)
    if v.locked:
        m.clear_mlocked_if_unlocked(present)
    anon = present[f.kind[present] == K_ANON]
    dead = anon[f.refcount[anon] <= 0]
    if dead.size:
        m.free_frames(dead)
    # a kind K_PFNMAP/K_FILE frame stays with its driver / in the page cache


def split_vma(m: Machine, p: Process, v: VMA, addr: int) -> VMA:
    """__split_vma(): cut v at addr; returns the upper part (v keeps the lower)."""
    o = (addr - v.start) >> m.page_shift
    hi = VMA(start=addr, end=v.end, flags=v.flags, policy=v.policy, anon=v.anon,
             backing=v.backing, pgoff=v.pgoff + o, pte=v.pte[o:].copy(),
             expect=None if v.expect is None else v.expect[o:].copy(), mm=p)
    v.end = addr
    v.pte = v.pte[:o].copy()
    if v.expect is not None:
        v.expect = v.expect[:o].copy()
    if v.anon is not None:
        v.anon.vmas.append(hi)
    if v.backing is not None:
        v.backing.vmas.append(hi)
    insert_vma(p, hi)
    return hi


def vmas_in_range(m: Machine, p: Process, start: int, end: int, *, split: bool) -> list[VMA]:
    """VMAs overlapping [start, end); with split=True they are cut at the bounds."""
    out = []
    for v in list(p.vmas):
        if v.end <= start or v.start >= end:
            continue
        if split:
            if v.start < start:
                v = split_vma(m, p, v, start)
            if v.end > end:
                split_vma(m, p, v, end)
        out.append(v)
    return sorted(out, key=lambda x: x.start)


def range_holes(p: Process, start: int, end: int) -> bool:
    """True when [start, end) is not fully covered by VMAs."""
    pos = start
    for v in p.vmas:
        if v.end <= pos:
            continue
        if v.start > pos:
            return True
        pos = v.end
        if pos >= end:
            return False
    return pos < end


def can_merge(m: Machine, a: VMA, b: VMA) -> bool:
    """vma_merge() compatibility: adjacent, same flags/policy/backing, contiguous pgoff,
    and anon_vmas compatible (same, or one side has none yet)."""
    if a.end != b.start or a.flags != b.flags or a.policy != b.policy:
        return False
    if a.flags & VM_SPECIAL:
        return False
    if a.backing is not b.backing:
        return False
    if a.backing is not None and a.pgoff + a.npages != b.pgoff:
        return False
    if a.anon is not None and b.anon is not None and a.anon is not b.anon:
        return False
    return True


def merge_pair(m: Machine, p: Process, a: VMA, b: VMA) -> None:
    av = a.anon or b.anon
    if av is not None and a.anon is None:
        # anon page index is vpn - base_vpn, so adopting the neighbour's anon_vma is free
        a.anon = av
        av.vmas.append(a)
    a.pte = np.concatenate([a.pte, b.pte])
    if a.expect is not None:
        a.expect = np.concatenate([a.expect, b.expect])
    a.end = b.end
    p.vmas.remove(b)
    if b.anon is not None:
        b.anon.vmas.remove(b)
    if b.backing is not None:
        b.backing.vmas.remove(b)


def merge_vmas(m: Machine, p: Process) -> None:
    i = 0
    vs = p.vmas
    while i + 1 < len(vs):
        a, b = vs[i], vs[i + 1]
        if can_merge(m, a, b):
            merge_pair(m, p, a, b)
        else:
            i += 1
