"""mlock, munlock, mlockall, munlockall: VM_LOCKED, populating, and the
Mlocked/Unevictable page state (mm/mlock.c)."""

from __future__ import annotations

import numpy as np

from ..constants import (
    EINVAL,
    ENOMEM,
    MCL_CURRENT,
    MCL_FUTURE,
    MCL_ONFAULT,
    VM_LOCKED,
    VM_SHARED,
    VM_SPECIAL,
    VM_WRITE,
    PG_mlocked,
    oserror,
)
from .fault import fault
from .memory import merge_vmas, range_holes, vmas_in_range
from .rmap import recompute_mlocked
from .state import VMA, Kernel, Process

RLIMIT_MEMLOCK = 8 << 20  # the default soft limit since 5.16 for unprivileged users


def locked_pages(p: Process) -> int:
    return sum(v.npages for v in p.vmas if v.flags & VM_LOCKED)


def populate(k: Kernel, p: Process, v: VMA) -> None:
    """__mm_populate(): write-fault private writable mappings (break COW without
    writing), read the others."""
    write = (v.flags & (VM_WRITE | VM_SHARED)) == VM_WRITE
    fault(k, p, v, np.arange(v.npages, dtype=np.int64), write=write, populate=True)


def _relock(k: Kernel, v: VMA) -> None:
    _o, pfns = v.present()
    recompute_mlocked(k, pfns[pfns != k.zero_pfn])


def do_mlock(k: Kernel, p: Process, addr: int, length: int, *, lock: bool) -> None:
    if length < 0:
        raise oserror(EINVAL, "mlock: negative length")
    start = addr & ~(k.page_size - 1)
    end = k.page_align(addr + length)
    if end < start:
        raise oserror(EINVAL, "mlock: range wraps around")
    if end == start:
        return
    if lock and p.uid != 0:
        # RLIMIT_MEMLOCK without CAP_IPC_LOCK
        if (locked_pages(p) << k.page_shift) + (end - start) > RLIMIT_MEMLOCK:
            raise oserror(ENOMEM, f"mlock: more than RLIMIT_MEMLOCK "
                                  f"({RLIMIT_MEMLOCK >> 20} MiB) for uid {p.uid}")
    if range_holes(p, start, end):
        raise oserror(ENOMEM, f"mlock: [{start:#x}, {end:#x}) is not fully mapped")
    touched = []
    for v in vmas_in_range(k, p, start, end, split=True):
        if v.flags & VM_SPECIAL:
            continue  # mlock_fixup() leaves VM_IO/VM_PFNMAP mappings alone
        if lock:
            v.flags |= VM_LOCKED
        else:
            v.flags &= ~VM_LOCKED
        touched.append(v)
    for v in touched:
        if lock:
            populate(k, p, v)
        _relock(k, v)
    merge_vmas(p)


def do_mlockall(k: Kernel, p: Process, flags: int) -> None:
    if not flags or flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) or flags == MCL_ONFAULT:
        raise oserror(EINVAL, f"mlockall: bad flags {flags:#x}")
    if flags & MCL_FUTURE:
        p.def_flags |= VM_LOCKED
    else:
        p.def_flags &= ~VM_LOCKED
    if flags & MCL_CURRENT:
        for v in list(p.vmas):
            if v.flags & VM_SPECIAL:
                continue
            if p.uid != 0 and (locked_pages(p) + v.npages) << k.page_shift > RLIMIT_MEMLOCK:
                raise oserror(ENOMEM, "mlockall: more than RLIMIT_MEMLOCK")
            v.flags |= VM_LOCKED
            if not flags & MCL_ONFAULT:
                populate(k, p, v)
            _relock(k, v)
        merge_vmas(p)


def do_munlockall(k: Kernel, p: Process) -> None:
    p.def_flags &= ~VM_LOCKED
    for v in list(p.vmas):
        if v.flags & VM_LOCKED:
            v.flags &= ~VM_LOCKED
            _relock(k, v)
    merge_vmas(p)


def mlocked_per_node(k: Kernel) -> np.ndarray:
    f = k.f
    pf = np.flatnonzero(f.flags & PG_mlocked)
    return np.bincount(k.node_of(pf), minlength=k.nr_node_ids) if pf.size else \
        np.zeros(k.nr_node_ids, np.int64)
