"""Simulated time and the migration cost model.

Figures from measured Linux: move_pages moves about 0.85 M pages of 4 KiB per second on
a current 2-socket machine (about 1.2 us a page, 3.3-3.6 GB/s); a 2 MiB huge page
takes about 190 us; the copy is a quarter of the cost and scales with SLIT distance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .machine import Machine

REF_DISTANCE = 21  # the measured 2-socket machine's remote distance


@dataclass
class CostModel:
    page_ns_4k: float = 1200.0  # per 4 KiB page, remote (distance 21)
    copy_share: float = 0.25  # the copy part, which scales with distance
    wait_ns: int = 20_000  # waiting for a page lock or writeback to clear

    def per_page_ns(self, page_size: int, distance: np.ndarray) -> np.ndarray:
        scale = page_size / 4096
        fixed = self.page_ns_4k * (1 - self.copy_share)
        copy = self.page_ns_4k * self.copy_share * (distance / REF_DISTANCE) * scale
        return fixed + copy


def migrate_cost_ns(m: Machine, src_nodes: np.ndarray, dst_nodes: np.ndarray) -> int:
    d = m.distances[src_nodes, dst_nodes].astype(np.float64)
    return int(m.cost.per_page_ns(m.page_size, d).sum())
