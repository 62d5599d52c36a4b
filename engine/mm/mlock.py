"""mlock, mlock2, munlock, mlockall, munlockall: VM_LOCKED (and VM_LOCKONFAULT),
RLIMIT_MEMLOCK, populating, and the Mlocked/Unevictable page state (mm/mlock.c).

mlock and munlock change VMA by VMA (apply_vma_lock_flags()): a hole in the range is
ENOMEM once the VMAs before it are changed, as Linux leaves them. mlockall checks the
whole address space against the limit before it changes anything. Populating (the
faults that make locked pages present) comes after the VMAs are changed (2.6.18
populated each VMA as it locked it) and skips VM_LOCKONFAULT VMAs, whose pages lock
as they fault."""

from __future__ import annotations

import numpy as np

from ..constants import (
    EAGAIN,
    EFAULT,
    EINVAL,
    ENOMEM,
    ENOSYS,
    EPERM,
    MCL_CURRENT,
    MCL_FUTURE,
    MCL_ONFAULT,
    MLOCK_ONFAULT,
    RLIM_INFINITY,
    VM_EXEC,
    VM_HUGETLB,
    VM_IO,
    VM_LOCKED,
    VM_LOCKED_MASK,
    VM_LOCKONFAULT,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_SPECIAL,
    VM_WRITE,
    PG_mlocked,
    oserror,
)
from ..units import fmt_size
from .fault import fault
from .memory import merge_vmas, split_vma
from .mm_types import VMA, Process
from .rmap import recompute_mlocked
from .state import Kernel

# ---------------------------------------------------------------- accounting

def locked_pages(p: Process) -> int:
    """mm->locked_vm: pages of VM_LOCKED VMAs (VM_LOCKONFAULT ones included)."""
    return sum(v.npages for v in p.vmas if v.flags & VM_LOCKED)


def total_vm(p: Process) -> int:
    """mm->total_vm: pages of every VMA, PFN-mapped regions included."""
    return sum(v.npages for v in p.vmas)


def count_mlocked(p: Process, start: int, end: int) -> int:
    """count_mm_mlocked_page_nr(): pages of [start, end) already in VM_LOCKED VMAs."""
    n = 0
    for v in p.vmas[p._index_above(start):]:
        if v.start >= end:
            break
        if v.flags & VM_LOCKED:
            n += (min(v.end, end) - max(v.start, start)) >> p.page_shift
    return n


def cap_ipc_lock(p: Process) -> bool:
    """CAP_IPC_LOCK: root's; it lifts RLIMIT_MEMLOCK."""
    return p.uid == 0


def can_do_mlock(p: Process) -> bool:
    """can_do_mlock(): CAP_IPC_LOCK, or a RLIMIT_MEMLOCK soft limit other than 0."""
    return cap_ipc_lock(p) or p.memlock_cur != 0


def limit_pages(p: Process) -> int:
    """The RLIMIT_MEMLOCK soft limit in pages (rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT)."""
    return p.memlock_cur >> p.page_shift


def limit_text(p: Process) -> str:
    return "unlimited" if p.memlock_cur == RLIM_INFINITY else fmt_size(p.memlock_cur)


def mlock_future_ok(k: Kernel, p: Process, vmflags: int, length: int) -> bool:
    """mlock_future_ok(): a new VM_LOCKED mapping (mlockall(MCL_FUTURE)) must fit in
    RLIMIT_MEMLOCK with what is locked already, unless CAP_IPC_LOCK."""
    if not vmflags & VM_LOCKED or cap_ipc_lock(p):
        return True
    return (length >> k.page_shift) + locked_pages(p) <= limit_pages(p)


# ---------------------------------------------------------------- populating

def populate(k: Kernel, p: Process, v: VMA, o0: int = 0, o1: int | None = None) -> None:
    """populate_vma_page_range() over VMA offsets [o0, o1): write-fault private
    writable mappings (break COW without writing), read the others; nothing for
    VM_LOCKONFAULT (pages lock as they fault) or VM_IO/VM_PFNMAP (__mm_populate()
    skips them); a PROT_NONE mapping is never faulted in (EFAULT)."""
    if v.flags & (VM_LOCKONFAULT | VM_IO | VM_PFNMAP):
        return
    if not v.flags & (VM_READ | VM_WRITE | VM_EXEC):
        raise oserror(EFAULT, f"{v.start:#x}-{v.end:#x} is PROT_NONE: not populated")
    o1 = v.npages if o1 is None else o1
    write = (v.flags & (VM_WRITE | VM_SHARED)) == VM_WRITE
    try:
        fault(k, p, v, np.arange(o0, o1, dtype=np.int64), write=write, populate=True)
    except OSError as e:
        if v.flags & VM_HUGETLB and e.errno == ENOMEM:
            # no huge page for it: alloc_hugetlb_folio()'s -ENOSPC is VM_FAULT_SIGBUS,
            # which get_user_pages() returns as -EFAULT
            raise oserror(EFAULT, e.strerror or str(e)) from None
        raise


def mm_populate(k: Kernel, p: Process, start: int, end: int, *, ignore_errors: bool
                ) -> None:
    """__mm_populate(): populate every VMA of [start, end). mlock() turns an error into
    its own (ENOMEM -> EAGAIN: memory ran out); mlockall() ignores them."""
    for v in list(p.vmas[p._index_above(start):]):
        if v.start >= end:
            break
        o0 = (max(v.start, start) - v.start) >> k.page_shift
        o1 = (min(v.end, end) - v.start) >> k.page_shift
        try:
            populate(k, p, v, o0, o1)
        except OSError as e:
            if ignore_errors:
                continue
            raise _posix_error(e) from None


def _posix_error(e: OSError) -> OSError:
    """__mlock_posix_error_return(): EFAULT -> ENOMEM, ENOMEM -> EAGAIN."""
    if e.errno == ENOMEM:
        return oserror(EAGAIN, f"mlock: {e.strerror}; the range is locked but not all of "
                               f"it is present")
    if e.errno == EFAULT:
        return oserror(ENOMEM, f"mlock: {e.strerror}")
    return e


def _relock(k: Kernel, v: VMA) -> None:
    """mlock_vma_pages_range(): PG_mlocked of the present pages follows VM_LOCKED
    (an rmap walk keeps a page mlocked while another locked VMA maps it)."""
    _o, pfns = v.present()
    recompute_mlocked(k, pfns[pfns != k.zero_pfn])


# ---------------------------------------------------------------- VMA flags

def mlock_fixup(k: Kernel, p: Process, v: VMA, start: int, end: int, newflags: int
                ) -> VMA:
    """mlock_fixup(): [start, end) of v gets `newflags` (split at the bounds). Special
    VMAs (VM_IO, VM_PFNMAP) and hugetlb VMAs (is_vm_hugetlb_page(): "don't set
    VM_LOCKED, don't count") never get VM_LOCKED and are left alone, never split; mlock
    still populates a hugetlb one. Returns the VMA holding [start, end)."""
    if newflags == v.flags or v.flags & (VM_SPECIAL | VM_HUGETLB):
        return v
    if v.start < start:
        v = split_vma(k, p, v, start)
    if v.end > end:
        split_vma(k, p, v, end)
    was_locked = v.flags & VM_LOCKED
    v.flags = newflags
    if not (was_locked and newflags & VM_LOCKED):
        _relock(k, v)  # locking twice would change nothing
    if k.era.mlock_populates_per_vma and newflags & VM_LOCKED:
        try:
            populate(k, p, v)  # 2.6.18: make_pages_present() inside mlock_fixup()
        except OSError as e:
            raise _posix_error(e) from None
    return v


def apply_vma_lock_flags(k: Kernel, p: Process, start: int, end: int, flags: int,
                         call: str) -> None:
    """apply_vma_lock_flags(): each VMA of [start, end) gets the lock bits `flags`, in
    order; a hole (at the start, between VMAs or at the end) is ENOMEM, and the VMAs
    before it stay changed."""
    if end < start:
        raise oserror(EINVAL, f"{call}: range wraps around")
    if end == start:
        return
    if p.find_vma(start) is None:
        raise oserror(ENOMEM, f"{call}: {start:#x} is not mapped")
    try:
        tmp = start
        for v in list(p.vmas[p._index_above(start):]):
            if v.start >= end:
                break
            if v.start > tmp:
                raise oserror(ENOMEM, f"{call}: [{tmp:#x}, {v.start:#x}) inside the range "
                                      f"is not mapped (the VMAs before it are changed)")
            newflags = (v.flags & ~VM_LOCKED_MASK) | flags
            w = mlock_fixup(k, p, v, max(v.start, start), min(v.end, end), newflags)
            tmp = min(w.end, end)
        if tmp < end:
            raise oserror(ENOMEM, f"{call}: [{tmp:#x}, {end:#x}) at the end of the range is "
                                  f"not mapped (the VMAs before it are changed)")
    finally:
        merge_vmas(p, start, end)


# ---------------------------------------------------------------- the calls

def do_mlock(k: Kernel, p: Process, addr: int, length: int, *, lock: bool,
             flags: int = VM_LOCKED) -> None:
    """mlock() / mlock2() (flags: VM_LOCKED, | VM_LOCKONFAULT) and munlock()."""
    call = "mlock" if lock else "munlock"
    if lock and not can_do_mlock(p):
        raise oserror(EPERM, f"mlock: pid {p.pid} (uid {p.uid}) has RLIMIT_MEMLOCK 0 and no "
                             f"CAP_IPC_LOCK")
    if length < 0:
        raise oserror(EINVAL, f"{call}: negative length")
    start = addr & ~(k.page_size - 1)
    end = k.page_align(addr + length)
    if end >= 1 << 64:
        end -= 1 << 64  # size_t arithmetic wraps: apply_vma_lock_flags() says EINVAL
    if lock and not cap_ipc_lock(p):
        locked = ((end - start) >> k.page_shift) + locked_pages(p)
        if locked > limit_pages(p) and k.era.mlock_discounts_locked:
            locked -= count_mlocked(p, start, end)  # pages already locked count once
        if locked > limit_pages(p):
            raise oserror(ENOMEM, f"mlock: {locked} pages would be locked, more than "
                                  f"RLIMIT_MEMLOCK ({limit_text(p)}) of pid {p.pid}")
    apply_vma_lock_flags(k, p, start, end, flags if lock else 0, call)
    if lock and not k.era.mlock_populates_per_vma:
        mm_populate(k, p, start, end, ignore_errors=False)


def do_mlock2(k: Kernel, p: Process, addr: int, length: int, flags: int) -> None:
    """mlock2(): MLOCK_ONFAULT locks pages as they fault instead of populating."""
    if not k.era.has_mlock2:
        raise oserror(ENOSYS, f"mlock2: not implemented in kernel {k.era.name} (added in "
                              f"4.4)")
    if flags & ~MLOCK_ONFAULT:
        raise oserror(EINVAL, f"mlock2: unknown flags {flags:#x} (only MLOCK_ONFAULT)")
    vmflags = VM_LOCKED | (VM_LOCKONFAULT if flags & MLOCK_ONFAULT else 0)
    do_mlock(k, p, addr, length, lock=True, flags=vmflags)


def do_mlockall(k: Kernel, p: Process, flags: int) -> None:
    """mlockall(): flags checked, can_do_mlock(), then with MCL_CURRENT the whole
    address space (total_vm, PFN maps included) against RLIMIT_MEMLOCK before anything
    changes: a refused call leaves no VMA locked and no MCL_FUTURE behind."""
    valid = MCL_CURRENT | MCL_FUTURE | (MCL_ONFAULT if k.era.has_mlock2 else 0)
    if not flags or flags & ~valid or flags == MCL_ONFAULT:
        raise oserror(EINVAL, f"mlockall: bad flags {flags:#x}")
    if not can_do_mlock(p):
        raise oserror(EPERM, f"mlockall: pid {p.pid} (uid {p.uid}) has RLIMIT_MEMLOCK 0 and "
                             f"no CAP_IPC_LOCK")
    if flags & MCL_CURRENT and not cap_ipc_lock(p) and total_vm(p) > limit_pages(p):
        raise oserror(ENOMEM, f"mlockall: pid {p.pid} maps {total_vm(p)} pages, more than "
                              f"RLIMIT_MEMLOCK ({limit_text(p)})")
    apply_mlockall_flags(k, p, flags)
    if flags & MCL_CURRENT and not k.era.mlock_populates_per_vma:
        mm_populate(k, p, 0, 1 << 62, ignore_errors=True)


def apply_mlockall_flags(k: Kernel, p: Process, flags: int) -> None:
    """apply_mlockall_flags(): MCL_FUTURE sets mm->def_flags (VM_LOCKED, with
    MCL_ONFAULT also VM_LOCKONFAULT) and a call without it clears them; MCL_CURRENT
    locks every VMA, a call without it (munlockall) unlocks every VMA."""
    p.def_flags &= ~VM_LOCKED_MASK
    onfault = VM_LOCKONFAULT if flags & MCL_ONFAULT else 0
    if flags & MCL_FUTURE:
        p.def_flags |= VM_LOCKED | onfault
        if not flags & MCL_CURRENT:
            return
    to_add = VM_LOCKED | onfault if flags & MCL_CURRENT else 0
    for v in list(p.vmas):
        mlock_fixup(k, p, v, v.start, v.end, (v.flags & ~VM_LOCKED_MASK) | to_add)
    merge_vmas(p)


def do_munlockall(k: Kernel, p: Process) -> None:
    apply_mlockall_flags(k, p, 0)


def mlocked_per_node(k: Kernel) -> np.ndarray:
    f = k.f
    pf = np.flatnonzero(f.flags & PG_mlocked)
    return np.bincount(k.node_of(pf), minlength=k.nr_node_ids) if pf.size else \
        np.zeros(k.nr_node_ids, np.int64)
