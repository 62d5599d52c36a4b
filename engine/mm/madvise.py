"""madvise(2) for transparent huge pages (mm/madvise.c madvise_walk_vmas(),
mm/khugepaged.c hugepage_madvise())."""

from __future__ import annotations

import numpy as np

from ..constants import (
    EINVAL,
    ENOMEM,
    MADV_HUGEPAGE,
    MADV_NOHUGEPAGE,
    VM_HUGEPAGE,
    VM_HUGETLB,
    VM_NOHUGEPAGE,
    VM_PFNMAP,
    oserror,
)
from .memory import merge_vmas, range_holes, vmas_in_range
from .mm_types import Process
from .state import Kernel

__all__ = ["madvise"]


def madvise(k: Kernel, p: Process, addr: int, length: int, advice) -> None:
    """madvise(MADV_HUGEPAGE / MADV_NOHUGEPAGE) (hugepage_madvise()): set the VMA flag
    over the range, splitting VMAs at its bounds and merging after. EINVAL for an
    unaligned start, unknown advice or an era without THP, or a range that would cut
    a hugetlb page; ENOMEM for a hole (the VMAs around it still change, as
    madvise_walk_vmas() does)."""
    if isinstance(advice, bool) or not isinstance(advice, (int, np.integer)):
        raise TypeError(f"advice must be an int (engine.MADV_HUGEPAGE...), not "
                        f"{type(advice).__name__}")
    if advice not in (MADV_HUGEPAGE, MADV_NOHUGEPAGE) or not k.era.has_thp:
        raise oserror(EINVAL, f"madvise: advice {int(advice)} is not supported "
                              + ("here (MADV_HUGEPAGE 14 and MADV_NOHUGEPAGE 15 only)"
                                 if k.era.has_thp else f"in {k.era.name} (no THP)"))
    if addr < 0 or addr & (k.page_size - 1):
        raise oserror(EINVAL, f"madvise: address {addr:#x} is not page aligned")
    if length < 0:
        raise oserror(EINVAL, f"madvise: length {length} is negative")
    end = addr + k.page_align(length)
    if end == addr:
        return
    hole = range_holes(p, addr, end)
    for v in vmas_in_range(k, p, addr, end, split=True):
        if v.flags & (VM_PFNMAP | VM_HUGETLB):
            continue  # hugepage_madvise() leaves special mappings as they are
        if advice == MADV_HUGEPAGE:
            v.flags = (v.flags | VM_HUGEPAGE) & ~VM_NOHUGEPAGE
        else:
            v.flags = (v.flags | VM_NOHUGEPAGE) & ~VM_HUGEPAGE
    merge_vmas(p, addr, end)
    if hole:
        raise oserror(ENOMEM, f"madvise: [{addr:#x}, {end:#x}) has unmapped holes")
