"""mlock, munlock, mlockall, munlockall: VM_LOCKED, populating, and the
Mlocked/Unevictable page state (mm/mlock.c)."""

from __future__ import annotations

from typing import TYPE_CHECKING

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

if TYPE_CHECKING:  # pragma: no cover
    from ..machine import Machine

RLIMIT_MEMLOCK = 8 << 20  # the default soft limit since 5.16 for unprivileged users


def recompute_mlocked(m: Machine, pfns: np.ndarray) -> None:
    """PG_mlocked stays set while any VM_LOCKED VMA maps the page (munlock_folio)."""
    from .rmap import for_each_mapping

    if len(pfns) == 0:
        return
    pfns = np.asarray(pfns, dtype=np.int64)
    locked = np.zeros(pfns.size, bool)
    for v, pos, _offs in for_each_mapping(m, pfns):
        if v.flags & VM_LOCKED:
            locked[pos] = True
    f = m.f
    f.flags[pfns[locked]] |= PG_mlocked
    f.flags[pfns[~locked]] &= ~PG_mlocked


def locked_pages(m: Machine, p) -> int:
    return sum(v.npages for v in p.vmas if v.flags & VM_LOCKED)


def _populate(m: Machine, p, v, o0: int, o1: int) -> None:
    from .memory import fault_range

    # __mm_populate(): write-fault private writable mappings (break COW), read others
    write = (v.flags & (VM_WRITE | VM_SHARED)) == VM_WRITE
    fault_range(m, p, v, o0, o1, write=write, node=p.node, populate=True)


def do_mlock(m: Machine, p, addr: int, length: int, *, lock: bool) -> None:
    from .memory import range_holes, vmas_in_range

    if length < 0:
        raise oserror(EINVAL, "mlock: negative length")
    start = addr & ~(m.page_size - 1)
    end = m.page_align(addr + length)
    if end < start:
        raise oserror(EINVAL, "mlock: range wraps around")
    if end == start:
        return
    if lock and p.uid != 0:
        # RLIMIT_MEMLOCK without CAP_IPC_LOCK
        if (locked_pages(m, p) << m.page_shift) + (end - start) > RLIMIT_MEMLOCK:
            raise oserror(ENOMEM, f"mlock: more than RLIMIT_MEMLOCK "
                                  f"({RLIMIT_MEMLOCK >> 20} MiB) for uid {p.uid}")
    if range_holes(p, start, end):
        raise oserror(ENOMEM, f"mlock: [{start:#x}, {end:#x}) is not fully mapped")
    touched = []
    for v in vmas_in_range(m, p, start, end, split=True):
        if v.flags & VM_SPECIAL:
            continue  # mlock_fixup() leaves VM_IO/VM_PFNMAP mappings alone
        if lock:
            v.flags |= VM_LOCKED
        else:
            v.flags &= ~VM_LOCKED
        touched.append(v)
    for v in touched:
        if lock:
            _populate(m, p, v, 0, v.npages)
        pte = v.pte
        present = pte[(pte >= 0) & (pte != m.zero_pfn)]
        recompute_mlocked(m, present)
    m.merge_vmas(p)


def do_mlockall(m: Machine, p, flags: int) -> None:
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
            if p.uid != 0 and (locked_pages(m, p) + v.npages) << m.page_shift > RLIMIT_MEMLOCK:
                raise oserror(ENOMEM, "mlockall: more than RLIMIT_MEMLOCK")
            v.flags |= VM_LOCKED
            if not flags & MCL_ONFAULT:
                _populate(m, p, v, 0, v.npages)
            pte = v.pte
            recompute_mlocked(m, pte[(pte >= 0) & (pte != m.zero_pfn)])
        m.merge_vmas(p)


def do_munlockall(m: Machine, p) -> None:
    p.def_flags &= ~VM_LOCKED
    for v in list(p.vmas):
        if v.flags & VM_LOCKED:
            v.flags &= ~VM_LOCKED
            pte = v.pte
            recompute_mlocked(m, pte[(pte >= 0) & (pte != m.zero_pfn)])
    m.merge_vmas(p)


def mlocked_per_node(m: Machine) -> np.ndarray:
    f = m.f
    pf = np.flatnonzero(f.flags & PG_mlocked)
    return np.bincount(m.node_of(pf), minlength=m.nr_node_ids) if pf.size else \
        np.zeros(m.nr_node_ids, np.int64)
