"""Pages per node: of a frame set, a VMA or a process, counted in one sort-free pass
(bincount over node buckets), and NodeCounts, the console's incremental counter."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..budget import advance
from ..mm.mm_types import VMA
from ..mm.state import Kernel

__all__ = ["COUNT_SLICE", "NodeCounts", "pages_per_node", "resident_pages", "vma_frames", "vma_pages_per_node"]



COUNT_SLICE = 1 << 18  # page-table entries counted in one go (their temporaries stay in cache)
_BUCKETS: dict[tuple, Any] = {}


def _node_buckets(m: Any) -> tuple[int, np.ndarray] | None:
    """(shift, 1 + column in m.nodes of each bucket of 2**shift frames, 0 for none): every
    node boundary is a multiple of 2**shift, so pfn >> shift names a frame's node. None
    when the boundaries are too fine for a small table. Cached on the node layout."""
    key = tuple((n.start_pfn, n.spanned) for n in m.nodes_list) + (m.nr_frames,)
    hit = _BUCKETS.get(key, False)
    if hit is not False:
        return hit
    bounds = [b for n in m.nodes_list if n.spanned > 0
              for b in (n.start_pfn, n.start_pfn + n.spanned) if b] + [m.nr_frames]
    shift = min(((b & -b).bit_length() - 1 for b in bounds if b), default=20)
    shift = min(shift, 20)
    out = None
    if m.nr_frames >> shift <= 1 << 22:
        col = np.zeros((m.nr_frames >> shift) + 1, np.int64)
        for i, n in enumerate(m.nodes_list):
            if n.spanned > 0:
                col[n.start_pfn >> shift:(n.start_pfn + n.spanned) >> shift] = i + 1
        out = (shift, col)
    if len(_BUCKETS) > 8:
        _BUCKETS.clear()
    _BUCKETS[key] = out
    return out


def pages_per_node(m: Any, pfns: np.ndarray) -> np.ndarray:
    """Counts of pages (PFNs; -1 and the zero page not counted) per node, in m.nodes
    order."""
    pfns = np.asarray(pfns)
    out = np.zeros(len(m.nodes_list), np.int64)
    for i in range(0, pfns.size, COUNT_SLICE):
        out += _count_slice(m, pfns[i:i + COUNT_SLICE])
    return out


def _count_slice(m: Any, pfns: np.ndarray) -> np.ndarray:
    nodes = m.nodes
    if pfns.size == 0:
        return np.zeros(len(nodes), np.int64)
    tab = _node_buckets(m)
    per_bucket = None
    if tab is not None:
        shift, col = tab
        try:  # NO_PAGE (-1) lands in bucket 0 (dropped); other negatives raise
            per_bucket = np.bincount((pfns >> shift) + 1, minlength=col.size + 1)[1:]
        except ValueError:
            per_bucket = None
    if per_bucket is not None:  # PFNs past the last frame are dropped too
        per = np.bincount(col, weights=per_bucket[:col.size],
                          minlength=len(nodes) + 1)[1:].astype(np.int64)
        z = m.zero_pfn
        if 0 <= z < m.nr_frames and col[z >> shift]:
            per[col[z >> shift] - 1] -= np.count_nonzero(pfns == z)
        return per
    pfns = pfns[(pfns >= 0) & (pfns != m.zero_pfn)]  # NO_PAGE (-1) and the zero page
    if pfns.size == 0:
        return np.zeros(len(nodes), np.int64)
    counts = np.bincount(m.node_of(pfns), minlength=max(nodes) + 1)
    return counts[np.asarray(nodes, np.int64)]


def vma_frames(v: VMA, o0: int = 0, o1: int | None = None) -> np.ndarray:
    """PFNs mapped in [o0, o1) of a VMA (driver frames included; -1 never)."""
    return v.frames(o0, o1)


def vma_pages_per_node(m: Kernel, v: VMA) -> np.ndarray:
    """Pages per node (m.nodes order) mapped by a VMA, as numa_maps counts them: the
    zero page and a VM_PFNMAP region's frames (no struct page behind them) left out."""
    if v.pfnmap:
        return np.zeros(len(m.nodes_list), np.int64)
    return pages_per_node(m, vma_frames(v))


def resident_pages(m: Kernel, p) -> int:
    """Resident pages as numa_maps and VmRSS count them (PFN-mapped frames not)."""
    return int(sum((vma_frames(v) != m.zero_pfn).sum() for v in p.vmas if not v.pfnmap))


class NodeCounts:
    """Pages per node of every VMA of every process, counted a slice at a time so that
    no refresh holds the event loop for long: `step(budget_s)` counts until the budget is
    spent (a pass over every page table takes as many steps as it needs), `run()` does a
    whole pass at once. Readers get the last complete pass; `stale()` asks for a new one
    (the machine changed). While a pass runs, the machine may change under it: every VMA
    is counted in full, but its slices at different moments."""

    def __init__(self, m: Any, slice_pages: int = COUNT_SLICE) -> None:
        self.m = m
        self.slice = slice_pages
        self.vmas: dict[tuple[int, int, int], np.ndarray] = {}  # (pid, start, end) -> per node
        self.passes = 0  # complete passes so far
        self._dirty = True
        self._gen: Any = None  # the pass under way (a generator), or None

    def stale(self) -> None:
        """The machine changed: the next step begins (or queues) a fresh pass."""
        self._dirty = True

    @property
    def busy(self) -> bool:
        """A pass is under way or wanted."""
        return self._gen is not None or self._dirty

    def _pass(self):
        m = self.m
        out: dict[tuple[int, int, int], np.ndarray] = {}
        todo = [(pid, v) for pid, p in list(m.procs.items()) for v in list(p.vmas)]
        for pid, v in todo:
            per = np.zeros(len(m.nodes_list), np.int64)
            n = v.npages if v.mm is not None and not v.pfnmap else 0
            for i in range(0, n, self.slice):
                per += _count_slice(m, vma_frames(v, i, min(n, i + self.slice)))
                yield
            out[(pid, v.start, v.end)] = per
        self.vmas = out
        self.passes += 1

    def step(self, budget_s: float = 0.004) -> bool:
        """Count for about budget_s seconds (at least one slice). True when a pass ended."""
        if self._gen is None:
            if not self._dirty:
                return False
            self._dirty = False
            self._gen = self._pass()
        if advance(self._gen, budget_s):
            self._gen = None
            return True
        return False

    def run(self) -> None:
        """A whole fresh pass now (any pass under way is dropped)."""
        self._gen = None
        self._dirty = False
        for _ in self._pass():
            pass

    def vma(self, pid: int, v: Any) -> np.ndarray:
        """Pages per node of a VMA (m.nodes order): from the last pass, or counted now
        when that pass did not see it (a new VMA)."""
        per = self.vmas.get((pid, v.start, v.end))
        if per is None or per.size != len(self.m.nodes_list):
            per = vma_pages_per_node(self.m, v)
            self.vmas[(pid, v.start, v.end)] = per
        return per

    def process(self, pid: int, anon_only: bool = False) -> np.ndarray:
        p = self.m.process(pid)
        per = np.zeros(len(self.m.nodes_list), np.int64)
        for v in p.vmas:
            if not anon_only or v.kind == "anon":
                per += self.vma(pid, v)
        return per
