"""The planner of one migrate_pages() batch (mm/migrate.c): what each isolated page's
migration ends with (failure_codes) and where its new frame comes from (plan_chunk),
decided before anything changes, so that the call and its rehearsal share it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..constants import (
    EAGAIN,
    ENOMEM,
    EPERM,
    PG_locked,
    PG_mlocked,
    PG_pinned,
    PG_writeback,
)
from ..vec import (
    distinct,
)
from .page_alloc import ZoneBooks, zone_takes, zonelist
from .state import Kernel

UNTRIED = -(1 << 40)  # an outcome for a pair the call never reached
PERFORM_SLICE = 1 << 18  # pages Execute.perform copies, redirects and frees at a time

__all__ = ["MigrateControl", "target_order", "failure_codes", "ChunkPlan", "plan_chunk"]


@dataclass(frozen=True)
class MigrateControl:
    """How a caller migrates: the arguments of migrate_pages() beyond the pages
    (get_new_folio's policy, mode, reason) and what ends the call early."""

    reason: str  # "syscall", "mbind", "memory_hotplug", "numa_misplaced"
    thisnode: bool  # __GFP_THISNODE: the target node or -ENOMEM; else its zonelist
    cpu: int  # node of the CPU that migrates (numastat local/other)
    allowed: frozenset | None = None  # nodes a zonelist allocation may fall back to
    mode: str = "sync"  # MIGRATE_SYNC waits on locks and writeback; "async" never waits
    stop_on_enomem: bool = False  # -ENOMEM ends the call (a negative migrate_pages())
    batches: bool = False  # stop after the first batch with a failure (do_pages_move)


def target_order(k: Kernel, target: int, ctl: MigrateControl) -> tuple[list[int], str]:
    """Where a new frame for `target` may come from, and the watermark it may dip to:
    __GFP_THISNODE today (the node itself, down to min), the target's zonelist in
    2006 and for mbind/hot-remove (down to low, then min)."""
    if ctl.thisnode:
        return ([target] if k.node_has_memory(target) else []), "min"
    return zonelist(k, target, ctl.allowed), "low"


# ----------------------------------------------------------------- isolation

def failure_codes(era_mlocked: str, flags: np.ndarray, mode: str) -> np.ndarray:
    """Per isolated page: 0, or the error its migration ends with after every pass.
    Long-term pins keep the refcount from freezing on every pass (-EAGAIN); 2.6.16/17's
    try_to_unmap() refuses VM_LOCKED mappings (-EPERM); MIGRATE_ASYNC never waits on
    the page lock or writeback (-EAGAIN), the sync passes do."""
    fail = np.zeros(flags.size, np.int32)
    special = (flags & (PG_pinned | PG_locked | PG_writeback | PG_mlocked)) != 0
    if not special.any():
        return fail
    fail[(flags & PG_pinned) != 0] = -EAGAIN
    if era_mlocked == "eperm":
        fail[((flags & PG_mlocked) != 0) & (fail == 0)] = -EPERM
    if mode == "async":
        fail[((flags & (PG_locked | PG_writeback)) != 0) & (fail == 0)] = -EAGAIN
    return fail


@dataclass
class ChunkPlan:
    """What one migrate_pages() batch will do: per pair 0 (moves) or -errno, the
    zone its new frame comes from (-1 if none), and whether it waits for the page
    lock or writeback first."""

    codes: np.ndarray
    zones: np.ndarray
    wait: np.ndarray
    # the pairs each zone supplies, as the planner found them: [(zone id, positions
    # or a slice)]; None when not known (a subset)
    groups: list | None = None

    @property
    def waits(self) -> int:
        return int(self.wait.sum())

    def subset(self, keep: np.ndarray) -> ChunkPlan:
        return ChunkPlan(self.codes[keep], self.zones[keep], self.wait[keep])

    def zone_groups(self, okpos: np.ndarray | None) -> list:
        """[(zone id, positions among the moving pairs)]: the pairs that move (okpos:
        their positions in the chunk, None: all) grouped by the zone supplying them."""
        if okpos is None and self.groups is not None:
            return self.groups
        zsel = self.zones if okpos is None else self.zones[okpos]
        zids = distinct(zsel).tolist()
        if len(zids) == 1:
            return [(zids[0], slice(None))]
        return [(z, np.flatnonzero(zsel == z)) for z in zids]


def plan_chunk(k: Kernel, books: ZoneBooks, flags: np.ndarray, targets: np.ndarray,
               ctl: MigrateControl) -> ChunkPlan:
    """Decide every pair of a chunk of isolated pages (their flags, their targets):
    the failures known from the pages, then destinations by the allocator's walk,
    per target node in ascending order, pages in order (the rest: -ENOMEM)."""
    n = targets.size
    codes = failure_codes(k.era.mlocked_migration, flags, ctl.mode)
    zones = np.full(n, -1, np.int32)  # (int32: half the bytes of a per-pair array)
    groups: list = []
    if ctl.mode != "async":
        wait = ((flags & (PG_locked | PG_writeback)) != 0) & (codes == 0)
    else:
        wait = np.zeros(n, bool)
    go = codes == 0
    if go.all():
        tg, ts = targets, distinct(targets)
    else:
        tg, ts = np.where(go, targets, -1), distinct(targets[go])
    for t in ts.tolist():
        # the pages going to t, in order (None: all of them, t is the only target)
        sel = None if ts.size == 1 and go.all() else np.flatnonzero(tg == t)
        cnt = n if sel is None else sel.size
        order, wm = target_order(k, t, ctl)
        takes = zone_takes(k, books, cnt, order, movable=True, wmark=wm) if order else []
        pos = 0
        for zid, c in takes:
            where = slice(pos, pos + c) if sel is None else sel[pos:pos + c]
            zones[where] = zid
            groups.append((zid, where))
            pos += c
        if pos < cnt:
            codes[slice(pos, None) if sel is None else sel[pos:]] = -ENOMEM
    # the groups are positions among the moving pairs when every pair moves
    return ChunkPlan(codes, zones, wait, groups if (codes == 0).all() else None)


# ----------------------------------------------------------------- executors
