"""Simulated time, the cost model, and how simulated time relates to real time.

Cost figures come from measured Linux:

- move_pages moves about 0.85 M pages of 4 KiB per second on a current 2-socket
  machine: about 1.2 us a page (3.3-3.6 GB/s), the copy being a quarter of it and
  scaling with SLIT distance (the rest is isolation, unmapping, rmap walks).
- A 2 MiB huge page takes about 190 us. Huge pages are not modelled (every frame
  is a base page), so this figure is documentation only.
- TLB flushes: since 6.3 migrate_pages_batch() unmaps a whole batch (512 base
  pages, NR_MAX_BATCHED_MIGRATION) and flushes the TLB once for it; the 2006
  kernels unmapped, flushed and copied one page at a time. `tlb_flush_ns` is one
  shootdown (an IPI round to the CPUs that ran the mm).
- A memory access costs `local_access_ns` (80 ns) scaled by SLIT distance / 10:
  distance 21 is about 170 ns, the usual remote figure on 2-socket machines.

`m.clock` is the simulated time in ns. Migrations advance it by their cost; workloads
advance it per tick. The ClockController decides how jobs pace themselves against
real time: paused (no job steps), a speed relative to real time, or as fast as
possible (the default; tests and scripts use it)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ..machine import Machine

REF_DISTANCE = 21  # the measured 2-socket machine's remote distance
HUGE_PAGE_NS = 190_000  # per 2 MiB huge page (documentation: huge pages are not modelled)
MIGRATE_BATCH = 512  # NR_MAX_BATCHED_MIGRATION: base pages unmapped per TLB flush (modern)


@dataclass
class CostModel:
    page_ns_4k: float = 1200.0  # per 4 KiB page, remote (distance 21), flush amortised
    copy_share: float = 0.25  # the copy part, which scales with distance
    wait_ns: int = 20_000  # waiting for a page lock or writeback to clear
    tlb_flush_ns: float = 2500.0  # one TLB shootdown (IPIs to the mm's CPUs)
    local_access_ns: float = 80.0  # a local DRAM access; remote scales with distance
    hint_fault_ns: float = 1500.0  # a NUMA hint fault: trap, task_numa_fault(), return
    scan_ns_per_page: float = 15.0  # change_prot_numa(): arming one page for a hint fault
    damon_check_ns: float = 250.0  # DAMON: one sampled page's Accessed-bit check and reset
    query_ns_per_page: float = 60.0  # move_pages(nodes=NULL): one page-table lookup
    syscall_ns: float = 1000.0  # entering and leaving one system call

    def per_page_ns(self, page_size: int, distance: np.ndarray) -> np.ndarray:
        scale = page_size / 4096
        fixed = self.page_ns_4k * (1 - self.copy_share)
        copy = self.page_ns_4k * self.copy_share * (distance / REF_DISTANCE) * scale
        return fixed + copy

    def flushes(self, npages: int, modern: bool) -> int:
        """TLB shootdowns for migrating npages in one batch call: one per 512-page
        batch in modern kernels, one per page in the 2006 kernels."""
        if npages <= 0:
            return 0
        return -(-npages // MIGRATE_BATCH) if modern else npages

    def access_ns(self, distance) -> np.ndarray:
        """Latency of one access at SLIT distance d: 80 ns x d / 10."""
        return self.local_access_ns * np.asarray(distance, dtype=np.float64) / 10.0

    def stall_ns(self) -> float:
        """A task that hits a migration entry sleeps until the page's batch is done:
        on average half a batch of copies."""
        return self.page_ns_4k * MIGRATE_BATCH / 2


def _per_page_sum(m: Machine, src_nodes: np.ndarray, dst_nodes) -> float:
    """Sum of the per-page cost: pages counted per (source, target) pair, then one
    cost per pair (the cost depends on the pair's distance only)."""
    nn = m.distances.shape[0]
    pair = src_nodes * nn + np.asarray(dst_nodes, dtype=np.int64)
    counts = np.bincount(pair, minlength=nn * nn)
    d = m.distances.reshape(-1).astype(np.float64)
    return float((counts * m.cost.per_page_ns(m.page_size, d)).sum())


def migrate_cost_ns(m: Machine, src_nodes: np.ndarray, dst_nodes: np.ndarray) -> int:
    """Cost of migrating one batch call's pages: per page by distance, plus the
    era's TLB flushes."""
    src_nodes = np.asarray(src_nodes, dtype=np.int64)
    per_page = _per_page_sum(m, src_nodes, dst_nodes)
    flush = m.cost.flushes(int(src_nodes.size), m.era.is_modern) * m.cost.tlb_flush_ns
    return int(per_page + flush)


def predict_migrate_ns(m: Machine, src_nodes: np.ndarray, dst_nodes: np.ndarray,
                       chunk: int | None = None) -> int:
    """What migrate_cost_ns will charge when the pages go in chunks of `chunk`
    (None: one call): the per-page part is the same, the flushes follow the chunks."""
    src_nodes = np.asarray(src_nodes, dtype=np.int64)
    n = int(src_nodes.size)
    if n == 0:
        return 0
    per_page = _per_page_sum(m, src_nodes, dst_nodes)
    modern = m.era.is_modern
    if chunk:
        full, rest = divmod(n, int(chunk))
        nfl = full * m.cost.flushes(int(chunk), modern) + m.cost.flushes(rest, modern)
    else:
        nfl = m.cost.flushes(n, modern)
    return int(per_page + nfl * m.cost.tlb_flush_ns)


def fmt_ns(ns: float) -> str:
    """1234567 -> "1.235 ms"."""
    ns = float(ns)
    for unit, div in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(ns) >= div:
            return f"{ns / div:.3f} {unit}"
    return f"{ns:.0f} ns"


# ----------------------------------------------------------------- real-time pacing

class ClockController:
    """How jobs pace simulated time against real time.

    mode "fast": jobs step as fast as the event loop lets them (yielding between
    batches); "speed": after each step a job sleeps until real time has caught up
    with simulated time / speed; "paused": no job steps (a cancel still ends a
    paused job). Pacing is measured against one anchor (real, simulated) for the
    whole machine, so several jobs together track real time, not each one alone."""

    MODES = ("fast", "speed", "paused")
    MAX_LAG_S = 0.25  # behind real time by more than this: re-anchor, no burst to catch up
    POLL_S = 0.02  # how often a paused job looks again

    def __init__(self) -> None:
        self.mode = "fast"
        self.speed = 1.0
        self._resume_mode = "fast"
        self._anchor_real = 0.0
        self._anchor_sim = 0
        self._anchored = False

    def __repr__(self) -> str:
        return f"<ClockController {self.describe()}>"

    def describe(self) -> str:
        if self.mode == "speed":
            return f"speed x{self.speed:g}"
        if self.mode == "paused":
            return f"paused (resumes {self._resume_mode})"
        return "fast"

    @property
    def paused(self) -> bool:
        return self.mode == "paused"

    def pause(self) -> None:
        if self.mode != "paused":
            self._resume_mode = self.mode
            self.mode = "paused"

    def resume(self) -> None:
        if self.mode == "paused":
            self.mode = self._resume_mode
        self._anchored = False

    def set_speed(self, x: float) -> None:
        """Simulated ns per real ns: 1.0 = real time, 1e-3 = a thousand times slower."""
        x = float(x)
        if not (x > 0) or x == float("inf"):
            raise ValueError(f"clock speed {x!r} must be a positive number")
        self.speed = x
        self.mode = "speed"
        self._anchored = False

    def set_fast(self) -> None:
        self.mode = "fast"
        self._anchored = False

    async def gate(self, job) -> None:
        """Wait while the clock is paused (a cancelled job goes on, to finish)."""
        while self.mode == "paused" and not job._cancel:
            await asyncio.sleep(self.POLL_S)

    def delay_s(self, sim_ns: int, now: float | None = None) -> float:
        """Real seconds to sleep so that simulated time tracks real time x speed."""
        if self.mode != "speed":
            return 0.0
        now = time.monotonic() if now is None else now
        if not self._anchored:
            self._anchor_real, self._anchor_sim, self._anchored = now, sim_ns, True
            return 0.0
        target = self._anchor_real + (sim_ns - self._anchor_sim) / (self.speed * 1e9)
        lag = now - target
        if lag > self.MAX_LAG_S:
            # the simulation cannot keep up: re-anchor rather than race to catch up
            self._anchor_real, self._anchor_sim = now, sim_ns
            return 0.0
        return max(0.0, target - now)

    async def pace(self, m: Machine) -> None:
        await asyncio.sleep(self.delay_s(m.clock_ns))


def controller(m: Machine) -> ClockController:
    """The machine's clock controller (created on first use)."""
    c = m.__dict__.get("_clockctl")
    if c is None:
        c = ClockController()
        m.__dict__["_clockctl"] = c
    return c
