"""Nodes and zones: what Linux keeps in pg_data_t and struct zone, and the
watermarks (setup_per_zone_wmarks). Imports nothing from the rest of mm/."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..constants import (
    ZONE_MOVABLE,
)

__all__ = ["Node", "Zone", "NodeSet", "compute_watermarks"]


# ================================================================ nodes and zones

@dataclass
class Node:
    id: int
    cpus: tuple[int, ...]
    start_pfn: int
    spanned: int  # frames from start_pfn to the end of the node's last zone

    @property
    def end_pfn(self) -> int:
        return self.start_pfn + self.spanned


@dataclass
class Zone:
    node: int
    name: str
    zone_type: int  # index into ZONE_NAMES
    start_pfn: int
    spanned: int
    present: int = 0
    managed: int = 0
    free: int = 0
    wmark_min: int = 0
    wmark_low: int = 0
    wmark_high: int = 0
    zid: int = 0  # index in Kernel.zones
    cursor: int = 0  # next-fit allocation cursor (relative to start_pfn)
    isolated: int = 0  # isolated pageblocks (memory blocks) in this zone
    isolated_free: int = 0  # free frames inside isolated blocks (not allocatable)

    @property
    def end_pfn(self) -> int:
        return self.start_pfn + self.spanned

    @property
    def online(self) -> bool:
        return self.present > 0

    @property
    def movable(self) -> bool:
        return self.zone_type == ZONE_MOVABLE

    @property
    def label(self) -> str:
        return f"node{self.node}/{self.name}"

    def available(self, wmark: str) -> int:
        """Free pages above the watermark (`none`: all free pages)."""
        mark = {"low": self.wmark_low, "min": self.wmark_min, "high": self.wmark_high,
                "none": 0}[wmark]
        return max(0, self.free - mark)


class NodeSet:
    """The node ids of a machine that keeps its nodes in `nodes_list`: the simulated
    kernel (state.Kernel) and the live host (host.Host) both."""

    nodes_list: list[Node]

    @property
    def nodes(self) -> list[int]:
        return [n.id for n in self.nodes_list]

    @property
    def nr_node_ids(self) -> int:
        """nr_node_ids: one more than the highest node id (node ids may have gaps)."""
        return max(self.nodes) + 1 if self.nodes_list else 0


def compute_watermarks(zones: list[Zone], page_size: int, modern: bool) -> None:
    """__setup_per_zone_wmarks(): min_free_kbytes = clamp(sqrt(lowmem_kB * 16), 128, 262144)
    (2006 capped at 65536); each lowmem zone gets its share of pages_min; ZONE_MOVABLE (like
    highmem) gets managed/1024 clamped to [32, 128]. Modern: delta = max(min/4,
    managed * watermark_scale_factor(10) / 10000); 2006: low = 5/4 min, high = 3/2 min."""
    page_kb = page_size // 1024
    lowmem_pages = sum(z.managed for z in zones if not z.movable)
    lowmem_kb = lowmem_pages * page_kb
    min_free_kbytes = int(math.isqrt(lowmem_kb * 16)) if lowmem_kb else 128
    min_free_kbytes = max(128, min(min_free_kbytes, 262144 if modern else 65536))
    pages_min = min_free_kbytes // page_kb
    for z in zones:
        if z.managed == 0:
            z.wmark_min = z.wmark_low = z.wmark_high = 0
            continue
        if z.movable:
            zmin = max(32, min(z.managed // 1024, 128))
        else:
            zmin = pages_min * z.managed // lowmem_pages if lowmem_pages else 0
        z.wmark_min = zmin
        if modern:
            delta = max(zmin // 4, z.managed * 10 // 10000)
            z.wmark_low = zmin + delta
            z.wmark_high = zmin + 2 * delta
        else:
            z.wmark_low = zmin + (zmin >> 2)
            z.wmark_high = zmin + (zmin >> 1)
