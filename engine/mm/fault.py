"""The fault path (mm/memory.c handle_mm_fault()): one function for every kind of
mapping, taking an array of page offsets. touch(), workloads and mlock's populate
all come here.

- PFN-mapped (VM_PFNMAP): the frames are the driver's; a write changes them.
- shared (MAP_SHARED file, shmem): find or allocate the page-cache page (a file's by
  the task policy, a shmem object's by its shared policy), map it; a write dirties it.
- private read: the shared zero page, or the file's page-cache page.
- private write: a new anonymous page by the VMA's policy (breaking copy-on-write
  from the zero page, a file page, or an anonymous page fork() left shared), then the
  write; an anonymous page only this mapping maps is written in place.
- populate (mlock, MCL_FUTURE): faults as a write would, without writing: each
  page keeps what a read would give (__mm_populate breaks COW, never changes data).

Every write stores a fresh content token in the frame and in the integrity oracle
(the VMA's page table for private pages, the backing's for shared ones)."""

from __future__ import annotations

import numpy as np

from ..constants import (
    EFAULT,
    EINVAL,
    ENOMEM,
    K_ANON,
    K_FILE,
    VM_EXEC,
    VM_HUGETLB,
    VM_READ,
    VM_WRITE,
    PG_dirty,
    PG_isolated,
    PG_lru,
    PG_mlocked,
    oserror,
)
from ..vec import as_slice
from .huge_memory import alloc_thp, note_pmd_split, thp_allowed, thp_fault
from .hugetlb import hugetlb_fault
from .memory import range_holes, vmas_in_range
from .mm_types import VMA, AnonVMA, Backing, Process
from .policy import alloc_by_target, alloc_for_task, alloc_shmem, fault_targets, vma_policy_groups
from .rmap import recompute_mlocked
from .state import Kernel


def ensure_anon_vma(k: Kernel, p: Process, v: VMA) -> AnonVMA:
    """anon_vma_prepare(): give a VMA its anon_vma at the first anonymous fault."""
    if v.anon is None:
        av = AnonVMA(id=k.next_mapping_id(), pid=p.pid, base_vpn=v.vpn)
        k.mappings[av.id] = av
        v.anon = av
        av.vmas.append(v)
        v.chain.append(av)
    return v.anon


def count_stalls(k: Kernel, p: Process, pfns: np.ndarray) -> int:
    """Accesses to pages under migration (isolated): the task sleeps on the migration
    entry. Counted per process and in vmstat; returns how many."""
    if not k.isolated_pages or pfns.size == 0:
        return 0
    pf = pfns[pfns >= 0]
    n = int(((k.f.flags[pf] & PG_isolated) != 0).sum())
    if n:
        p.stalls += n
        k.vmstat_extra["migration_entry_waits"] += n
    return n


def fault(k: Kernel, p: Process, v: VMA, offs: np.ndarray, *, write: bool,
          cpu: int | None = None, populate: bool = False) -> None:
    """Fault in (and with write=True, write) the pages at the distinct VMA offsets
    `offs` from a CPU on node `cpu` (default: the process's node). Raises ENOMEM
    after doing what memory allowed."""
    offs = np.asarray(offs, np.int64)
    if offs.size == 0:
        return
    cpu = p.node if cpu is None else int(cpu)
    if populate:
        write = write and v.private  # populate never writes: COW breaks, data stays
    if v.pfnmap:
        if write:
            pte = v.ptes(offs)
            tok = k.new_tokens(offs.size, v.vpn, offs)
            k.f.content[pte] = tok
            v.backing.set_expects(v.pgoff + offs, tok)
        return
    if v.flags & VM_HUGETLB:
        # hugetlb_fault(): huge pages from the pools, mapped whole; then the access
        hugetlb_fault(k, p, v, offs, cpu, None if v.shared else ensure_anon_vma(k, p, v),
                      write)
        if not write:
            return
    if v.shared:
        _fault_shared(k, p, v, offs, write, cpu)
    elif write:
        _fault_private_write(k, p, v, offs, cpu, populate)
    else:
        _fault_private_read(k, p, v, offs, cpu)


def _cache_pages(k: Kernel, p: Process, b: Backing, idx: np.ndarray, cpu: int
                 ) -> np.ndarray:
    """find_or_create_page() for each distinct page index: the cached PFN, or a new
    page-cache page holding the file's content, allocated by the task policy (a
    file: filemap_alloc_folio()) or by the object's shared policy (shmem:
    shmem_alloc_folio()). Returns the PFNs (-1 where memory ran out)."""
    cached = b.pages(idx)
    need = cached < 0
    if need.any():
        nidx = idx[need]
        if b.shmem:
            newp = alloc_shmem(k, p, b, nidx, cpu)
            nidx, newp = nidx[newp >= 0], newp[newp >= 0]
        else:
            newp = alloc_for_task(k, p, nidx.size, cpu)
            nidx = nidx[: newp.size]
        f = k.f
        f.kind[newp] = K_FILE
        f.mapping[newp] = b.id
        f.index[newp] = nidx
        f.content[newp] = b.expects(nidx)
        b.set_pages(nidx, newp)
        cached = b.pages(idx)
    return cached


def _map(k: Kernel, v: VMA, offs: np.ndarray, pfns: np.ndarray) -> None:
    """Install ptes for distinct pages (each frame once): their mapcount."""
    v.set_ptes(offs, pfns)
    f = k.f
    f.mapcount[pfns] += 1
    if v.locked:
        f.flags[pfns] |= PG_mlocked


def _fault_shared(k: Kernel, p: Process, v: VMA, offs: np.ndarray, write: bool,
                  cpu: int) -> None:
    b = v.backing
    pte = v.ptes(offs)
    missing = pte < 0
    if missing.any():
        mo = offs[missing]
        cached = _cache_pages(k, p, b, v.pgoff + mo, cpu)
        ok = cached >= 0
        _map(k, v, mo[ok], cached[ok])
        if not ok.all():
            raise oserror(ENOMEM, "out of memory: page cache allocation failed")
        pte = v.ptes(offs)
    if write:
        tok = k.new_tokens(offs.size, v.vpn, offs)
        k.f.content[pte] = tok
        k.f.flags[pte] |= PG_dirty
        b.set_expects(v.pgoff + offs, tok)


def _fault_private_read(k: Kernel, p: Process, v: VMA, offs: np.ndarray, cpu: int) -> None:
    missing = offs[v.ptes(offs) < 0]
    if missing.size == 0:
        return
    if v.backing is None:
        v.set_ptes(missing, np.full(missing.size, k.zero_pfn))  # the shared zero page
        return
    # a read fault on a private file mapping maps the page-cache page
    cached = _cache_pages(k, p, v.backing, v.pgoff + missing, cpu)
    if (cached < 0).any():
        raise oserror(ENOMEM, "out of memory: page cache allocation failed")
    _map(k, v, missing, cached)


def _fault_private_write(k: Kernel, p: Process, v: VMA, offs: np.ndarray, cpu: int,
                         populate: bool) -> None:
    """do_anonymous_page() / do_wp_page(): a private page where there is none, or
    where the zero page, a file page or an anonymous page another mapping still shares
    (fork()'s copy-on-write, mapcount > 1) is mapped: a copy; then the write. An
    anonymous page only this mapping maps is reused (written in place)."""
    f = k.f
    zero = k.zero_pfn
    if thp_allowed(k, v):
        # do_huge_pmd_anonymous_page(): the 2 MiB regions with no page table yet get a
        # zero-filled PMD folio first; the write below then goes to its pages
        thp_fault(k, p, v, offs, cpu, ensure_anon_vma(k, p, v), alloc_thp)
    cur = v.ptes(offs)
    have = (cur >= 0) & (cur != zero)
    c = np.maximum(cur, 0)
    # only a VMA whose anon_vma another VMA is linked to (fork(), or a split) can map
    # an anonymous page someone else maps too: skip the gathers otherwise
    forked = v.anon is not None and (len(v.chain) > 1 or len(v.anon.vmas) > 1)
    if forked:
        anon = have & (f.kind[c] == K_ANON)
        cow = anon & (f.mapcount[c] > 1)
        need = ~have | cow
        # do_huge_pmd_wp_page(): a write to a THP fork() left shared splits this
        # mapping's PMD (thp_split_pmd) and copies the one 4 KiB page, not the folio
        note_pmd_split(k, c[cow])
    else:
        anon = cow = None
        need = ~have
    if v.backing is not None:
        need |= have & (f.kind[c] == K_FILE)
    if populate:
        # each page keeps what a read gives: its frame, the file's page, or zeros
        tok = np.where(have, f.content[c], 0).astype(np.uint32)
        if v.backing is not None:
            miss = cur < 0
            idx = v.pgoff + offs[miss]
            inside = idx < v.backing.npages
            fc = np.zeros(idx.size, np.uint32)
            fc[inside] = v.backing.expects(idx[inside])
            tok[miss] = fc
    else:
        tok = k.new_tokens(offs.size, v.vpn, offs)
    if forked and k.era.anon_vma_chains:
        reuse = anon & ~cow
        if reuse.any():
            _move_anon_rmap(k, v, offs[reuse], cur[reuse])
    if not need.any():
        _write_private(k, v, offs, cur, tok, not populate)
        return
    av = ensure_anon_vma(k, p, v)
    # (every page needing one, the usual first touch: offs itself, no copy of 32 MiB)
    need_all = bool(need.all())
    noffs = offs if need_all else offs[need]
    # a first touch of every page: the new frames get whole entries below, so the
    # allocator need not clean them first
    fresh = need_all and not have.any()
    newp = None
    for sel, pol in vma_policy_groups(p, v, noffs):
        o = noffs if sel is None else noffs[sel]
        targets, il = fault_targets(k, p, v, o, cpu, pol)
        got = alloc_by_target(k, p, pol, targets, cpu, il, clean=not fresh)
        if sel is None:
            newp = got
        else:
            if newp is None:
                newp = np.full(noffs.size, -1, np.int64)
            newp[sel] = got
    if newp is None:
        newp = np.full(noffs.size, -1, np.int64)
    got = newp >= 0
    got_all = bool(got.all())
    g_offs, g_pfn = (noffs, newp) if got_all else (noffs[got], newp[got])
    w = as_slice(g_pfn)  # a fresh zone hands out runs: block writes, not scatters
    flags = PG_lru | (PG_mlocked if v.locked else 0)
    if fresh and got_all:
        # every page a new frame: their whole entries in one pass (the write's content
        # and dirty bit included), then the tables
        f.write_entries(w, K_ANON, flags | (0 if populate else PG_dirty), av.id,
                        np.add(g_offs, v.vpn - av.base_vpn), tok, 1)
        v.set_ptes(g_offs, g_pfn)
        v.set_expects(offs, tok)
        return
    if fresh:  # out of memory part way: the frames it got, clean, as the allocator's
        f.clear_records(w)
    old = cur[need] if got_all else cur[need][got]
    # drop the old mapping (a file page, or the shared anonymous page the other side
    # keeps); the zero page is not counted
    oldf = old[(old >= 0) & (old != zero)]
    if oldf.size:
        f.mapcount[oldf] -= 1
    f.kind[w] = K_ANON
    f.mapping[w] = av.id
    f.index[w] = v.vpn + g_offs - av.base_vpn
    f.mapcount[w] = 1
    f.flags[w] = flags
    v.set_ptes(g_offs, g_pfn)
    if oldf.size and v.locked:
        recompute_mlocked(k, oldf)  # munlock_vma_folio(): this mapping no longer locks it
    if got_all:
        cur[need] = newp
        _write_private(k, v, offs, cur, tok, not populate)
        return
    # write what could be written, then report the OOM
    cur[np.flatnonzero(need)[got]] = g_pfn
    wr = ~need
    wr[np.flatnonzero(need)[got]] = True
    _write_private(k, v, offs[wr], cur[wr], tok[wr], not populate)
    raise oserror(ENOMEM, "out of memory: no free page on any allowed node")


def _move_anon_rmap(k: Kernel, v: VMA, offs: np.ndarray, pfns: np.ndarray) -> None:
    """folio_move_anon_rmap(): a page fork() shared that this mapping now has to itself
    moves to the VMA's own anon_vma, so rmap walks stop searching the parent's family
    (a page isolated for migration stays where it is: its migration holds that
    anon_vma)."""
    av = v.anon
    if av is None:
        return
    f = k.f
    move = (f.mapping[pfns] != av.id) & ((f.flags[pfns] & PG_isolated) == 0)
    if move.any():
        f.mapping[pfns[move]] = av.id
        f.index[pfns[move]] = v.vpn + offs[move] - av.base_vpn


def _write_private(k: Kernel, v: VMA, offs: np.ndarray, pfns: np.ndarray, tok: np.ndarray,
                   dirty: bool) -> None:
    """Store tokens in private pages (their frames and the VMA's oracle)."""
    w = as_slice(pfns)
    k.f.content[w] = tok
    if dirty:
        k.f.flags[w] |= PG_dirty
    v.set_expects(offs, tok)


def touch(k: Kernel, p: Process, addr: int, length: int, *, write: bool = True,
          node: int | None = None, populate: bool = False) -> None:
    """Access [addr, addr+length) from a CPU on `node` (default: the process's node),
    faulting in what is missing. An address outside every VMA, a write to a read-only
    mapping or any access to PROT_NONE is EFAULT (a SIGSEGV). populate: fault in as
    the access would, without writing (a long-term pin's FOLL_WRITE fault)."""
    if length <= 0:
        raise oserror(EINVAL, "touch: length must be positive")
    if node is not None and node not in k.nodes:
        raise oserror(EINVAL, f"touch: no node {node}")
    start = addr & ~(k.page_size - 1)
    end = k.page_align(addr + length)
    if range_holes(p, start, end):
        raise oserror(EFAULT, f"touch: [{start:#x}, {end:#x}) is not fully mapped (SIGSEGV)")
    vmas = vmas_in_range(k, p, start, end, split=False)
    for v in vmas:
        if not v.flags & (VM_WRITE if write else VM_READ | VM_WRITE | VM_EXEC):
            raise oserror(EFAULT, f"touch: {'write to' if write else 'read of'} "
                                  f"{v.start:#x}-{v.end:#x}, mapped without "
                                  f"{'PROT_WRITE' if write else 'access'} (SIGSEGV)")
    for v in vmas:
        o0 = (max(v.start, start) - v.start) >> k.page_shift
        o1 = (min(v.end, end) - v.start) >> k.page_shift
        offs = np.arange(o0, o1, dtype=np.int64)
        if k.isolated_pages:  # (no page isolated, none to stall on: no table read)
            count_stalls(k, p, v.ptes(offs))
        fault(k, p, v, offs, write=write, cpu=node, populate=populate)
