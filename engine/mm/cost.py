"""What migrations cost in simulated time, from measured Linux.

- move_pages moves about 0.85 M pages of 4 KiB per second on a current 2-socket
  machine: about 1.2 us a page (3.3-3.6 GB/s), the copy being a quarter of it and
  scaling with SLIT distance (the rest is isolation, unmapping, rmap walks).
- A 2 MiB huge page takes about 190 us.
- TLB flushes: since 6.3 migrate_pages_batch() unmaps a whole batch (512 base
  pages, NR_MAX_BATCHED_MIGRATION) and flushes the TLB once for it; the 2006
  kernels unmapped, flushed and copied one page at a time. `tlb_flush_ns` is one
  shootdown (an IPI round to the CPUs that ran the mm).
- A memory access costs `local_access_ns` (80 ns) scaled by SLIT distance / 10:
  distance 21 is about 170 ns, the usual remote figure on 2-socket machines.

The numbers are the machine's `CostModel` (engine/mm/state.py)."""

from __future__ import annotations

import numpy as np

from .state import REF_DISTANCE, Kernel

HUGE_PAGE_NS = 190_000  # per 2 MiB huge page


def migrate_cost_ns(k: Kernel, src_nodes: np.ndarray, dst_nodes: np.ndarray,
                    chunk: int | None = None) -> int:
    """Cost of migrating these pages (source and target node per page) in calls of
    `chunk` pages (None: one call): per page by distance, plus the era's TLB
    flushes, which follow the calls."""
    return pairs_cost_ns(k, k.node_pairs(src_nodes, dst_nodes), chunk)


def pairs_cost_ns(k: Kernel, pairs: np.ndarray, chunk: int | None = None) -> int:
    """migrate_cost_ns() of pages counted per (source, target) node pair
    (Kernel.node_pairs): one cost per pair, as the cost depends on its distance only."""
    n = int(pairs.sum())
    if n == 0:
        return 0
    nn = pairs.shape[0]
    d = k.distances[:nn, :nn].reshape(-1).astype(np.float64)
    per_page = float((pairs.reshape(-1) * k.cost.per_page_ns(k.page_size, d)).sum())
    modern = k.era.is_modern
    if chunk:
        full, rest = divmod(n, int(chunk))
        nfl = full * k.cost.flushes(int(chunk), modern) + k.cost.flushes(rest, modern)
    else:
        nfl = k.cost.flushes(n, modern)
    return int(per_page + nfl * k.cost.tlb_flush_ns)


def folio_cost_ns(k: Kernel, small: np.ndarray, huge: np.ndarray, nb: int) -> int:
    """The cost of a migration batch with huge pages: small pages counted per
    (source, target) node pair as pairs_cost_ns() charges them, huge folios (of nb
    base pages) per pair at HUGE_PAGE_NS per 2 MiB (its copy part scaling with
    distance, as a small page's), and the era's TLB flushes over every base page."""
    nn = small.shape[0]
    d = k.distances[:nn, :nn].reshape(-1).astype(np.float64)
    c = k.cost
    per_page = float((small.reshape(-1) * c.per_page_ns(k.page_size, d)).sum())
    scale = nb * k.page_size / (2 << 20)
    per_huge = HUGE_PAGE_NS * scale * ((1 - c.copy_share)
                                       + c.copy_share * d / REF_DISTANCE)
    n = int(small.sum()) + int(huge.sum()) * nb
    nfl = c.flushes(n, k.era.is_modern)
    return int(per_page + float((huge.reshape(-1) * per_huge).sum()) + nfl * c.tlb_flush_ns)
