"""Memory blocks, hot-remove and hot-add (drivers/base/memory.c, mm/memory_hotplug.c,
mm/page_isolation.c).

A memory block is `k.block_pages` frames, block N covering PFNs [N*size, (N+1)*size),
as /sys/devices/system/memory/memoryN. Its zone is fixed by the machine's layout
(the engine does not move blocks between zones when onlining them).

Offlining follows modern offline_pages():
  1. the range must be whole blocks of one zone with no holes, else EINVAL;
  2. has_unmovable_pages(): kernel pages, long-term pinned pages and PFN-mapped frames
     of a driver without an enabled migrate hook fail the call with EBUSY, naming
     each blocker; nothing has changed yet;
  3. the blocks are isolated (MIGRATE_ISOLATE: nothing new is allocated there) and
     go "going-offline";
  4. rounds: rescan, let hooked drivers relocate their frames, migrate every movable
     page (anon and page cache on the LRU) to the nearest other node with memory
     (the source node only when it is the last one), until the range is all free;
  5. commit: frames become offline, present/managed shrink, watermarks are
     recomputed, a node left without memory drops out of N_MEMORY.
Any failure or a cancellation (EINTR, the pending signal) before the commit undoes
the isolation; pages already moved stay where they went.

Retry rules by era (kernel-semantics.md 10, knob 15):
  "signal"  (modern)       no timeout, no retry cap: a round that moves nothing is
                           retried until the user cancels (a job). The synchronous
                           call cannot be interrupted, so there a round that makes no
                           progress fails (ENOMEM when memory ran out, else EBUSY).
  "timeout" (2.6.24-4.14)  5 rounds failing with -ENOMEM give ENOMEM; 120 s without
                           finishing gives EAGAIN.
  "none"    (2.6.18)       no hot-remove: remove_memory() returned -EINVAL on every
                           architecture (offline_pages() arrived in 2.6.23/24).
                           Hot-add (online) works in every era.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator

import numpy as np

from ..constants import (
    EAGAIN,
    EBUSY,
    EINVAL,
    ENOMEM,
    K_ANON,
    K_FILE,
    K_FREE,
    K_OFFLINE,
    K_PFNMAP,
    KUSE_HUGETLB,
    KUSE_MEMMAP,
    KUSE_PAGETABLE,
    KUSE_SLAB,
    KUSE_ZERO,
    ZONE_MOVABLE,
    oserror,
)
from ..vec import distinct
from .cpuset import rebind_after_hotplug
from .frames import SCAN_SLICE
from .huge_memory import queue_folios_once
from .hugetlb import dissolve_free, free_pool_frames
from .migrate import Execute, MigrateControl, Outcome, PairRun, Rehearse, run_pairs
from .page_alloc import ZoneBooks, zonelist
from .page_isolation import blockers_text, ebusy, find_blockers
from .state import Kernel, drive
from .zones import Zone, compute_watermarks

OfflineGen = Generator[int, None, dict]  # yields between batches, returns the result
BLOCK_ONLINE, BLOCK_OFFLINE, BLOCK_GOING_OFFLINE = 0, 1, 2
STATE_NAMES = ("online", "offline", "going-offline")
ONLINE_TYPES = ("online", "online_kernel", "online_movable")
OFFLINE_TIMEOUT_NS = 120 * 10**9  # 2.6.24-4.14: offline_pages(..., 120 * HZ)
OFFLINE_RETRY_MAX = 5  # 2.6.24-4.14: retry_max for rounds failing with an error
RETRY_NS = 1_000_000  # a round that moved nothing: lru_add_drain_all() + cond_resched()
KUSE_NAMES = {KUSE_MEMMAP: "memmap", KUSE_SLAB: "slab", KUSE_PAGETABLE: "page tables",
              KUSE_ZERO: "zero page", KUSE_HUGETLB: "hugetlb pool"}


# ----------------------------------------------------------------- blocks

def block_range(k: Kernel, b: int) -> tuple[int, int]:
    """[start, end) PFNs of block b that exist (the last block may be cut short)."""
    s = b * k.block_pages
    return s, min(s + k.block_pages, k.nr_frames)


def block_zone(k: Kernel, b: int) -> Zone | None:
    """The zone managing block b, or None when the block mixes zones or has holes
    (valid_zones "none": such a block cannot be offlined)."""
    s = b * k.block_pages
    e = s + k.block_pages
    if e > k.nr_frames:
        return None
    z = k.zones[int(k.zone_of(np.array([s]))[0])]
    return z if z.end_pfn >= e else None


def block_size_bytes(k: Kernel) -> str:
    """/sys/devices/system/memory/block_size_bytes: hex without 0x."""
    return f"{k.block_pages * k.page_size:x}"


def blocks(k: Kernel) -> list[dict]:
    """/sys/devices/system/memory/memoryN, one dict per block."""
    removable = int(k.era.offline_retry != "none")
    nblk = len(k.blk_state)
    starts = np.arange(nblk, dtype=np.int64) * k.block_pages
    ends = np.minimum(starts + k.block_pages, k.nr_frames)
    nodes = k.node_of(starts).tolist()
    zids = k.zone_of(starts)
    zend = np.array([z.end_pfn for z in k.zones], np.int64)[zids]
    # one zone and no holes, else valid_zones "none"
    single = (zend >= starts + k.block_pages) & (starts + k.block_pages <= k.nr_frames)
    out = []
    for b in range(nblk):
        name = k.zones[int(zids[b])].name if single[b] else None
        out.append({
            "index": b,
            "state": STATE_NAMES[int(k.blk_state[b])],
            "node": nodes[b],
            "zone": name,
            "valid_zones": name or "none",
            "removable": removable if name else 0,
            "start_pfn": int(starts[b]),
            "pages": int(ends[b] - starts[b]),
            "isolated": bool(k.blk_isolated[b]),
        })
    return out


def zone_blocks(k: Kernel, z: Zone) -> list[int]:
    """Blocks covering zone z; EINVAL when the zone does not start and end on block
    boundaries (its edge blocks are shared with another zone)."""
    bp = k.block_pages
    if z.spanned == 0:
        raise oserror(EINVAL, f"{z.label} is empty")
    for edge in (z.start_pfn, z.end_pfn):
        if edge % bp:
            b = edge // bp
            raise oserror(EINVAL, f"{z.label}: block {b} is shared with another zone "
                                  f"(valid_zones none); offline its whole blocks one by one "
                                  f"instead (offline_block INDEX; `blocks` lists them)")
    return list(range(z.start_pfn // bp, z.end_pfn // bp))


def _check_block_index(k: Kernel, b) -> int:
    try:
        b = int(b)
    except (TypeError, ValueError):
        raise oserror(EINVAL, f"{b!r} is not a memory block number") from None
    if not 0 <= b < len(k.blk_state):
        raise oserror(EINVAL, f"no memory block {b} (blocks 0-{len(k.blk_state) - 1})")
    return b


def _block_pfns(k: Kernel, blks: list[int]) -> np.ndarray:
    """The frames of the blocks that hold something (not free), ascending: what the
    scans of offline_pages() look at. One pass over the words of each run of
    consecutive blocks, a slice at a time (no array the size of the range)."""
    out = []
    runs = np.split(np.asarray(blks, np.int64),
                    np.flatnonzero(np.diff(np.asarray(blks, np.int64)) != 1) + 1)
    for run in runs:
        if run.size == 0:
            continue
        s0, e0 = block_range(k, int(run[0]))[0], block_range(k, int(run[-1]))[1]
        for s_ in range(s0, e0, SCAN_SLICE):
            e_ = min(e0, s_ + SCAN_SLICE)
            used = np.flatnonzero(k.f.words(s_, e_).astype(np.uint8))  # kind != K_FREE
            if used.size:
                out.append(used + s_)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _block_mask(k: Kernel, blks: list[int]) -> np.ndarray:
    mask = np.zeros(len(k.blk_state), bool)
    mask[blks] = True
    return mask


# ----------------------------------------------------------------- validation

def _check_era(k: Kernel) -> None:
    if k.era.offline_retry == "none":
        # 2.6.18: memory_block_action(MEM_OFFLINE) -> remove_memory() = -EINVAL
        raise oserror(EINVAL, f"offline: kernel {k.era.name} has no memory hot-remove "
                              f"(remove_memory() returns -EINVAL; offline_pages() came "
                              f"in 2.6.23/24); hot-add (online) works")


def _offline_blocks_checked(k: Kernel, blks: list[int]) -> Zone:
    """The structural checks of offline_pages(): one zone, no holes, online blocks."""
    _check_era(k)
    zones = set()
    for b in blks:
        st = int(k.blk_state[b])
        if st == BLOCK_GOING_OFFLINE:
            raise oserror(EBUSY, f"memory{b}: an offline of this block is in progress")
        if st == BLOCK_OFFLINE:
            raise oserror(EINVAL, f"memory{b} is already offline")
        z = block_zone(k, b)
        if z is None:
            raise oserror(EINVAL, f"memory{b} spans more than one zone or has holes "
                                  f"(valid_zones none)")
        zones.add(z.zid)
    if len(zones) != 1:
        raise oserror(EINVAL, "offline: the range must lie in one zone")
    return k.zones[zones.pop()]


def zone_offline_blocks(k: Kernel, node: int, zone: str) -> tuple[Zone, list[int]]:
    z = k.zone(int(node), zone)
    blks = zone_blocks(k, z)
    if any(k.blk_state[b] == BLOCK_GOING_OFFLINE for b in blks):
        raise oserror(EBUSY, f"{z.label}: an offline is already in progress")
    online = [b for b in blks if k.blk_state[b] == BLOCK_ONLINE]
    if not online:
        raise oserror(EINVAL, f"{z.label} is already offline")
    return z, online


# ----------------------------------------------------------------- blockers

def _hooked_drivers(k: Kernel, pfns: np.ndarray) -> list:
    """Drivers with an enabled hook that own PFN-mapped frames among `pfns`."""
    f = k.f
    pf = pfns[f.kind[pfns] == K_PFNMAP]
    if pf.size == 0:
        return []
    ids = set(distinct(f.mapping[pf]).tolist())
    return [d for d in k.drivers_map.values() if d.backing is not None
            and d.backing.id in ids and d.has_hook and d.hook_enabled]


# ----------------------------------------------------------------- isolation

def _free_in(k: Kernel, s: int, e: int) -> int:
    return int((k.f.kind[s:e] == K_FREE).sum())


def _isolate(k: Kernel, blks: list[int]) -> None:
    """start_isolate_page_range(): MIGRATE_ISOLATE, so free frames there are not
    handed out (zone.isolated_free) and frees into the range stay there."""
    for b in blks:
        s, e = block_range(k, b)
        z = block_zone(k, b)
        k.blk_isolated[b] = True
        k.blk_state[b] = BLOCK_GOING_OFFLINE
        z.isolated += 1
        z.isolated_free += _free_in(k, s, e)


def _undo_isolation(k: Kernel, blks: list[int]) -> None:
    """undo_isolate_page_range() + MEM_CANCEL_OFFLINE: the blocks are online again."""
    for b in blks:
        s, e = block_range(k, b)
        z = block_zone(k, b)
        k.blk_isolated[b] = False
        k.blk_state[b] = BLOCK_ONLINE
        z.isolated = max(0, z.isolated - 1)
        z.isolated_free = max(0, z.isolated_free - _free_in(k, s, e))


def _commit(k: Kernel, blks: list[int]) -> None:
    """The irreversible part: pull the free pages from the buddy allocator, shrink
    present/managed, recompute watermarks (N_MEMORY follows present)."""
    f = k.f
    before = tuple(k.memory_nodes())
    for b in blks:
        s, e = block_range(k, b)
        z = block_zone(k, b)
        n = e - s
        f.release(slice(s, e))  # (their records mean nothing now, as a free frame's)
        f.kind[s:e] = K_OFFLINE
        z.free -= n
        z.present -= n
        z.managed -= n
        z.isolated = max(0, z.isolated - 1)
        z.isolated_free = max(0, z.isolated_free - n)
        k.blk_isolated[b] = False
        k.blk_state[b] = BLOCK_OFFLINE
    compute_watermarks(k.zones, k.page_size, k.era.is_modern)
    rebind_after_hotplug(k, before)  # a node that lost its last memory leaves N_MEMORY


# ----------------------------------------------------------------- one round

def migration_targets(k: Kernel, src: int) -> tuple[int, frozenset]:
    """do_migrate_range(): any node with memory except the source (the source only
    when it is the last one), nearest first. Returns (first node, allowed set)."""
    mem = k.memory_nodes()
    others = frozenset(n for n in mem if n != src)
    allowed = others or frozenset({src})
    return zonelist(k, src, allowed)[0], allowed


def _movable(k: Kernel, pfns: np.ndarray) -> np.ndarray:
    kind = k.f.kind[pfns]
    mov = pfns[(kind == K_ANON) | (kind == K_FILE)]
    # do_migrate_range(): a large folio is isolated once, whole
    return queue_folios_once(k, mov)[0] if k.large_folios else mov


def _stay(node: int) -> int:
    """Hot-remove's relocation target: the same node, outside the blocks."""
    return node


def _round(k: Kernel, ex, blks: list[int], pfns: np.ndarray, src: int, chunk, job,
           drivers: dict):
    """One pass of offline_pages()'s loop: hooked drivers relocate their frames out of
    the range (a what-if: Linux never called vm_ops->migrate from offline), then every
    movable page goes to the nearest other node. The call and the rehearsal both run
    it; `ex` decides whether anything happens. Returns the migration's Outcome."""
    mask = _block_mask(k, blks)
    for d in _hooked_drivers(k, pfns):
        rec = drivers.setdefault(d.name, {"frames": 0, "to": {}})
        to = ex.relocate(d, _stay, avoid_blocks=mask)
        rec["frames"] += sum(to.values())
        for n, c in to.items():
            rec["to"][n] = rec["to"].get(n, 0) + c
        if job is not None:
            job.done += sum(to.values())
            job.total = max(job.total, job.done)
    mov = _movable(k, pfns)
    t0, allowed = migration_targets(k, src)
    ctl = MigrateControl("memory_hotplug", thisnode=False, cpu=src, allowed=allowed)
    out = yield from run_pairs(k, ex, mov, np.full(mov.size, t0, np.int64), ctl,
                               PairRun(chunk=chunk, unique=True), job)  # a PFN scan: each once
    return out


# ----------------------------------------------------------------- the rehearsal

class OfflineRehearsal(Rehearse):
    """A rehearsal that also sees the blocks isolated (start_isolate_page_range())."""

    def __init__(self, k: Kernel, blks: list[int]):
        books = ZoneBooks(k)
        for b in blks:
            s_, e_ = block_range(k, b)
            z = block_zone(k, b)
            books.iso[z.zid] += _free_in(k, s_, e_)
            # the free hugetlb pages there are dissolved: free (and isolated) frames
            dz = free_pool_frames(k, s_, e_)
            books.free[z.zid] += dz
            books.iso[z.zid] += dz
        super().__init__(k, books)
        self.isolated_blocks = _block_mask(k, blks)


def offline_plan(k: Kernel, node: int, zone: str, *, chunk: int | None = None) -> dict:
    """`offline --dry-run`: what offlining the zone would do, changing nothing.
    chunk: the batch size of the job to predict (None: the synchronous call)."""
    z, blks = zone_offline_blocks(k, node, zone)
    return plan_blocks(k, blks, z.label, chunk=chunk)


def plan_blocks(k: Kernel, blks: list[int], label: str, *, chunk: int | None = None) -> dict:
    """Predict an offline of `blks` by rehearsing its rounds: the pages that would
    move per target node, driver frames the hooks would relocate, blockers with
    owners, pages that find no room, the cost model's time, and how the loop ends
    (`error`: the call's error or None; `endless`: a job that would retry until
    cancelled). chunk: the batch of the job to predict (None: the synchronous call).
    Later rounds retry the failed pages only: with nothing else running, the rescan
    finds exactly those still in the range."""
    z = _offline_blocks_checked(k, blks)
    src = z.node
    pfns = _block_pfns(k, blks)
    blockers = find_blockers(k, pfns)
    ex = OfflineRehearsal(k, blks)
    drivers: dict = {}
    first = out = drive(_round(k, ex, blks, pfns, src, chunk, None, drivers))
    moves = out.moved_to()
    ns = out.time_ns
    state = {"retries": OFFLINE_RETRY_MAX, "deadline": k.clock + OFFLINE_TIMEOUT_NS}
    err, endless, rounds = None, False, 1
    todo = _movable(k, pfns)
    while not blockers and (out.result < 0).any():
        progress = bool((out.result >= 0).any())
        err, wait = failed_round(k, label, out.result, progress, chunk is not None, state,
                                 k.clock + ns + ex.time_ns)
        ns += wait
        if err is not None:
            break
        if not progress and k.era.offline_retry == "signal":
            endless = True  # nothing changes between the job's rounds: until cancelled
            break
        if progress or out.time_ns:
            # the failed pages again, from the books as this round left them (a round
            # that moved nothing and cost nothing would only repeat itself)
            todo = todo[out.result < 0]
            out = drive(_round(k, ex, blks, todo, src, chunk, None, drivers))
            moves.update(out.moved_to())
            ns += out.time_ns
            rounds += 1
    unplaced = int((first.result == -ENOMEM).sum())
    plan = {"label": label, "node": src, "zone": z.name, "blocks": list(blks),
            "pages": sum(moves.values()), "moves": dict(sorted(moves.items())),
            "drivers": drivers, "blockers": blockers, "unplaced": unplaced,
            "failed": int(((first.result < 0) & (first.result != -ENOMEM)).sum()),
            "time_ns": int(ns + ex.time_ns), "ok": not blockers and unplaced == 0,
            "error": err, "endless": endless, "rounds": rounds,
            "loses_memory": _would_lose_memory(k, src, blks), "outcome": first}
    plan["text"] = describe_plan(plan)
    return plan


def _would_lose_memory(k: Kernel, node: int, blks: list[int]) -> bool:
    gone = sum(block_range(k, b)[1] - block_range(k, b)[0] for b in blks)
    return sum(zz.present for zz in k.node_zones(node)) - gone <= 0


def describe_plan(plan: dict) -> str:
    """The rehearsal as text a person reads."""
    lines = [f"offline {plan['label']} (blocks {plan['blocks'][0]}-{plan['blocks'][-1]})"
             f" --dry-run"]
    if plan["blockers"]:
        lines.append("would fail with EBUSY: " + blockers_text(plan["blockers"]))
    moves = ", ".join(f"node {n}: {c}" for n, c in plan["moves"].items()) or "none"
    lines.append(f"pages to migrate: {plan['pages']} ({moves})")
    for name, d in plan["drivers"].items():
        to = ", ".join(f"node {n}: {c}" for n, c in d["to"].items())
        lines.append(f"driver {name} relocates {d['frames']} frames ({to})")
    if plan["unplaced"]:
        lines.append(f"{plan['unplaced']} pages find no free memory elsewhere: a job "
                     f"would keep retrying, the synchronous call fails with ENOMEM")
    if plan["loses_memory"]:
        lines.append(f"node {plan['node']} would lose its last memory (leaves N_MEMORY)")
    lines.append(f"predicted time: {plan['time_ns'] / 1e6:.3f} ms")
    return "\n".join(lines)


# ----------------------------------------------------------------- offline

def offline_zone_gen(k: Kernel, node: int, zone: str, *, chunk: int | None = None,
                     job=None) -> OfflineGen:
    """`offline NODE ZONE`: every online block of the zone, as one operation."""
    z, blks = zone_offline_blocks(k, node, zone)
    return (yield from offline_blocks_gen(k, blks, z.label, chunk=chunk, job=job))


def offline_block_gen(k: Kernel, index: int, *, chunk: int | None = None,
                      job=None) -> OfflineGen:
    """echo offline > /sys/devices/system/memory/memoryN/state"""
    b = _check_block_index(k, index)
    return (yield from offline_blocks_gen(k, [b], f"memory{b}", chunk=chunk, job=job))


def offline_blocks_gen(k: Kernel, blks: list[int], label: str, *,
                       chunk: int | None = None, job=None) -> OfflineGen:
    """offline_pages() over the blocks. Returns what moved; raises OSError EINVAL,
    EBUSY (blockers named), ENOMEM/EAGAIN (see the module doc); closing the generator
    (a cancelled job: EINTR) undoes the isolation."""
    z = _offline_blocks_checked(k, blks)
    pfns = _block_pfns(k, blks)
    blockers = find_blockers(k, pfns)
    if blockers:
        raise ebusy(label, blockers)
    t_start = k.clock
    _isolate(k, blks)
    committed = False
    try:
        if job is not None:
            kind = k.f.kind[pfns]
            job.rounds = 0
            job.total = int(((kind == K_ANON) | (kind == K_FILE) | (kind == K_PFNMAP)).sum())
        yield 0  # MEM_GOING_OFFLINE: the blocks show going-offline; a signal may come
        result = yield from _evacuate(k, blks, pfns, z.node, label, chunk, job)
        _commit(k, blks)
        committed = True
    finally:
        if not committed:
            _undo_isolation(k, blks)
    result.update(label=label, node=z.node, zone=z.name, blocks=list(blks),
                  time_ns=k.clock - t_start, left_n_memory=not k.node_has_memory(z.node))
    result["text"] = describe_result(result)
    return result


def describe_result(r: dict) -> str:
    """What an offline did, as one line."""
    moves = ", ".join(f"node {n}: {c}" for n, c in r["moves"].items()) or "none"
    s = (f"{r['label']} offline: migrated {r['pages']} pages ({moves}) in "
         f"{r['rounds']} round{'s' if r['rounds'] != 1 else ''}")
    for name, d in r["drivers"].items():
        s += f"; driver {name} relocated {d['frames']} frames"
    if r["left_n_memory"]:
        s += f"; node {r['node']} has no memory left"
    return s + f"; {r['time_ns'] / 1e6:.3f} ms"


def _evacuate(k: Kernel, blks: list[int], pfns: np.ndarray, src: int, label: str,
              chunk: int | None, job) -> OfflineGen:
    """The offline_pages() loop: rescan, relocate hooked driver frames, migrate the
    movable pages, until every frame of the range is free."""
    moves: Counter = Counter()
    drivers: dict = {}
    state = {"rounds": 0, "retries": OFFLINE_RETRY_MAX,
             "deadline": k.clock + OFFLINE_TIMEOUT_NS}
    first = True
    while True:
        if not first:
            pfns = _block_pfns(k, blks)  # rescan: what the last round freed drops out
        first = False
        dissolve_free(k, pfns)  # dissolve_free_hugetlb_folios() of every round
        blockers = find_blockers(k, pfns)  # a pin taken while we ran
        if blockers:
            raise ebusy(label, blockers)
        kind = k.f.kind[pfns]
        nmov = int(((kind == K_ANON) | (kind == K_FILE)).sum())
        if not nmov and not _hooked_drivers(k, pfns):
            left = int((kind != K_FREE).sum())
            if left:
                raise oserror(EBUSY, f"offline {label}: {left} unmovable pages")
            return {"pages": int(sum(moves.values())), "moves": dict(sorted(moves.items())),
                    "drivers": drivers, "rounds": state["rounds"]}
        if nmov:
            state["rounds"] += 1  # a round is a pass over movable pages
        moved = sum(moves.values()) + sum(d["frames"] for d in drivers.values())
        if job is not None:
            # progress in pages: moved so far, plus this round's attempts
            job.rounds = state["rounds"]
            job.done = moved
            job.total = moved + nmov
        out: Outcome = yield from _round(k, Execute(k, hold=bool(chunk)), blks,
                                         pfns, src, chunk, job, drivers)
        res = out.result
        ok = res >= 0
        moves.update(out.moved_to())
        if job is not None:
            # a retried page counts once
            job.done = sum(moves.values()) + sum(d["frames"] for d in drivers.values())
        if not ok.all():
            # failures are rescanned; a round that moved nothing follows the era
            err, wait = failed_round(k, label, res, bool(ok.any()), job is not None, state,
                                     k.clock)
            k.time.advance(wait)
            if err is not None:
                raise err
            yield 0


def failed_round(k: Kernel, label: str, res: np.ndarray, progress: bool, background: bool,
                 state: dict, now: int) -> tuple[OSError | None, int]:
    """What a round with failed migrations leads to, by era (knob 15), at simulated
    time `now`: (the error that ends the call, or None for another round; the ns the
    loop waits first). `state` carries the retry count and the deadline across
    rounds. The call and its rehearsal both decide here."""
    enomem = bool((res == -ENOMEM).any())
    nfail = int((res < 0).sum())
    why = (f"{nfail} pages found no free memory on the other nodes" if enomem else
           f"{nfail} pages are busy (isolated by another migration or locked)")
    if k.era.offline_retry == "timeout":
        if enomem:
            state["retries"] -= 1
            if state["retries"] <= 0:
                return oserror(ENOMEM, f"offline {label}: {why}; gave up after "
                                       f"{OFFLINE_RETRY_MAX} failing rounds"), 0
        wait = 0
        if not progress:
            # nothing changes between synchronous rounds: they spin to the timeout
            wait = (max(0, state["deadline"] - now) if not background and not enomem
                    else RETRY_NS)
        if now + wait >= state["deadline"]:
            return oserror(EAGAIN, f"offline {label}: timed out after 120 s; {why}"), wait
        return None, wait
    if progress:
        return None, 0
    if not background:
        return oserror(ENOMEM if enomem else EBUSY,
                       f"offline {label}: {why}; Linux retries until interrupted; run "
                       f"the offline as a job to keep retrying"), 0
    return None, RETRY_NS


# ----------------------------------------------------------------- online

def online_blocks(k: Kernel, blks: list[int], how: str = "online") -> int:
    """online_pages(): offline blocks become free memory of their zone again.
    Returns the number of pages onlined."""
    if how not in ONLINE_TYPES:
        raise oserror(EINVAL, f"online: {how!r} is not one of {', '.join(ONLINE_TYPES)}")
    zones = []
    for b in blks:
        st = int(k.blk_state[b])
        if st == BLOCK_GOING_OFFLINE:
            raise oserror(EBUSY, f"memory{b}: an offline of this block is in progress")
        if st != BLOCK_OFFLINE:
            raise oserror(EINVAL, f"memory{b} is already online")
        zones.append(_online_zone(k, b, how))
    f = k.f
    n = 0
    before = tuple(k.memory_nodes())
    for b, z in zip(blks, zones):
        s, e = block_range(k, b)
        f.release(slice(s, e))  # K_FREE is 0
        z.present += e - s
        z.managed += e - s
        z.free += e - s
        k.blk_state[b] = BLOCK_ONLINE
        n += e - s
    compute_watermarks(k.zones, k.page_size, k.era.is_modern)
    rebind_after_hotplug(k, before)  # a node that gets memory back joins N_MEMORY
    return n


def _online_zone(k: Kernel, b: int, how: str) -> Zone:
    """The zone a block comes back in: the engine keeps the layout's zone, so
    online_movable needs a Movable block and online_kernel a kernel-zone block."""
    z = block_zone(k, b)
    if z is None:
        raise oserror(EINVAL, f"memory{b} has no single zone to online into")
    if how == "online_movable" and z.zone_type != ZONE_MOVABLE:
        raise oserror(EINVAL, f"memory{b} belongs to {z.label} (valid_zones {z.name}); "
                              f"this machine does not move blocks between zones")
    if how == "online_kernel" and z.zone_type == ZONE_MOVABLE:
        raise oserror(EINVAL, f"memory{b} belongs to {z.label} (valid_zones Movable); "
                              f"this machine does not move blocks between zones")
    return z


def online_zone(k: Kernel, node: int, zone: str) -> int:
    z = k.zone(int(node), zone)
    blks = zone_blocks(k, z)
    off = [b for b in blks if k.blk_state[b] == BLOCK_OFFLINE]
    if not off:
        if any(k.blk_state[b] == BLOCK_GOING_OFFLINE for b in blks):
            raise oserror(EBUSY, f"{z.label}: an offline is in progress")
        raise oserror(EINVAL, f"{z.label} has no offline block")
    return online_blocks(k, off)


def online_block(k: Kernel, index: int, how: str = "online") -> int:
    return online_blocks(k, [_check_block_index(k, index)], how)


__all__ = ["blocks", "block_size_bytes", "offline_plan", "plan_blocks", "describe_plan",
           "describe_result",
           "offline_zone_gen", "offline_block_gen", "offline_blocks_gen", "online_zone",
           "online_block", "online_blocks", "find_blockers", "migration_targets",
           "STATE_NAMES", "ONLINE_TYPES"]
