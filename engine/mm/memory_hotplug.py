"""Memory blocks, hot-remove and hot-add (drivers/base/memory.c, mm/memory_hotplug.c,
mm/page_isolation.c).

A memory block is `m.block_pages` frames, block N covering PFNs [N*size, (N+1)*size),
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
from typing import TYPE_CHECKING

import numpy as np

from ..constants import (
    EAGAIN,
    EBUSY,
    EINVAL,
    ENOMEM,
    K_ANON,
    K_FILE,
    K_FREE,
    K_KERNEL,
    K_OFFLINE,
    K_PFNMAP,
    KUSE_MEMMAP,
    KUSE_PAGETABLE,
    KUSE_SLAB,
    KUSE_ZERO,
    ZONE_MOVABLE,
    PG_locked,
    PG_pinned,
    PG_writeback,
    oserror,
)
from ..vec import distinct, distinct_counts

if TYPE_CHECKING:  # pragma: no cover
    from ..machine import Machine
    from .topology import Zone

OfflineGen = Generator[int, None, dict]  # yields between batches, returns the result
BLOCK_ONLINE, BLOCK_OFFLINE, BLOCK_GOING_OFFLINE = 0, 1, 2
STATE_NAMES = ("online", "offline", "going-offline")
ONLINE_TYPES = ("online", "online_kernel", "online_movable")
OFFLINE_TIMEOUT_NS = 120 * 10**9  # 2.6.24-4.14: offline_pages(..., 120 * HZ)
OFFLINE_RETRY_MAX = 5  # 2.6.24-4.14: retry_max for rounds failing with an error
RETRY_NS = 1_000_000  # a round that moved nothing: lru_add_drain_all() + cond_resched()
KUSE_NAMES = {KUSE_MEMMAP: "memmap", KUSE_SLAB: "slab", KUSE_PAGETABLE: "page tables",
              KUSE_ZERO: "zero page"}


# ----------------------------------------------------------------- blocks

def block_range(m: Machine, b: int) -> tuple[int, int]:
    """[start, end) PFNs of block b that exist (the last block may be cut short)."""
    s = b * m.block_pages
    return s, min(s + m.block_pages, m.nr_frames)


def block_zone(m: Machine, b: int) -> Zone | None:
    """The zone managing block b, or None when the block mixes zones or has holes
    (valid_zones "none": such a block cannot be offlined)."""
    s = b * m.block_pages
    e = s + m.block_pages
    if e > m.nr_frames:
        return None
    z = m.zones[int(m.zone_of(np.array([s]))[0])]
    return z if z.end_pfn >= e else None


def block_size_bytes(m: Machine) -> str:
    """/sys/devices/system/memory/block_size_bytes: hex without 0x."""
    return f"{m.block_pages * m.page_size:x}"


def blocks(m: Machine) -> list[dict]:
    """/sys/devices/system/memory/memoryN, one dict per block."""
    removable = int(m.era.offline_retry != "none")
    nblk = len(m.blk_state)
    starts = np.arange(nblk, dtype=np.int64) * m.block_pages
    ends = np.minimum(starts + m.block_pages, m.nr_frames)
    nodes = m.node_of(starts).tolist()
    zids = m.zone_of(starts)
    zend = np.array([z.end_pfn for z in m.zones], np.int64)[zids]
    # one zone and no holes, else valid_zones "none"
    single = (zend >= starts + m.block_pages) & (starts + m.block_pages <= m.nr_frames)
    out = []
    for b in range(nblk):
        name = m.zones[int(zids[b])].name if single[b] else None
        out.append({
            "index": b,
            "state": STATE_NAMES[int(m.blk_state[b])],
            "node": nodes[b],
            "zone": name,
            "valid_zones": name or "none",
            "removable": removable if name else 0,
            "start_pfn": int(starts[b]),
            "pages": int(ends[b] - starts[b]),
            "isolated": bool(m.blk_isolated[b]),
        })
    return out


def zone_blocks(m: Machine, z: Zone) -> list[int]:
    """Blocks covering zone z; EINVAL when the zone does not start and end on block
    boundaries (its edge blocks are shared with another zone)."""
    bp = m.block_pages
    if z.spanned == 0:
        raise oserror(EINVAL, f"{z.label} is empty")
    for edge in (z.start_pfn, z.end_pfn):
        if edge % bp:
            b = edge // bp
            raise oserror(EINVAL, f"{z.label}: block {b} is shared with another zone "
                                  f"(valid_zones none); offline single blocks instead")
    return list(range(z.start_pfn // bp, z.end_pfn // bp))


def _check_block_index(m: Machine, b) -> int:
    try:
        b = int(b)
    except (TypeError, ValueError):
        raise oserror(EINVAL, f"{b!r} is not a memory block number") from None
    if not 0 <= b < len(m.blk_state):
        raise oserror(EINVAL, f"no memory block {b} (blocks 0-{len(m.blk_state) - 1})")
    return b


def _block_pfns(m: Machine, blks: list[int]) -> np.ndarray:
    return np.concatenate([np.arange(*block_range(m, b), dtype=np.int64) for b in blks])


def _block_mask(m: Machine, blks: list[int]) -> np.ndarray:
    mask = np.zeros(len(m.blk_state), bool)
    mask[blks] = True
    return mask


# ----------------------------------------------------------------- validation

def _check_era(m: Machine) -> None:
    if m.era.offline_retry == "none":
        # 2.6.18: memory_block_action(MEM_OFFLINE) -> remove_memory() = -EINVAL
        raise oserror(EINVAL, f"offline: kernel {m.era.name} has no memory hot-remove "
                              f"(remove_memory() returns -EINVAL; offline_pages() came "
                              f"in 2.6.23/24); hot-add (online) works")


def _offline_blocks_checked(m: Machine, blks: list[int]) -> Zone:
    """The structural checks of offline_pages(): one zone, no holes, online blocks."""
    _check_era(m)
    zones = set()
    for b in blks:
        st = int(m.blk_state[b])
        if st == BLOCK_GOING_OFFLINE:
            raise oserror(EBUSY, f"memory{b}: an offline of this block is in progress")
        if st == BLOCK_OFFLINE:
            raise oserror(EINVAL, f"memory{b} is already offline")
        z = block_zone(m, b)
        if z is None:
            raise oserror(EINVAL, f"memory{b} spans more than one zone or has holes "
                                  f"(valid_zones none)")
        zones.add(z.zid)
    if len(zones) != 1:
        raise oserror(EINVAL, "offline: the range must lie in one zone")
    return m.zones[zones.pop()]


def _zone_offline_blocks(m: Machine, node: int, zone: str) -> tuple[Zone, list[int]]:
    z = m.zone(int(node), zone)
    blks = zone_blocks(m, z)
    if any(m.blk_state[b] == BLOCK_GOING_OFFLINE for b in blks):
        raise oserror(EBUSY, f"{z.label}: an offline is already in progress")
    online = [b for b in blks if m.blk_state[b] == BLOCK_ONLINE]
    if not online:
        raise oserror(EINVAL, f"{z.label} is already offline")
    return z, online


# ----------------------------------------------------------------- blockers

def find_blockers(m: Machine, pfns: np.ndarray) -> list[dict]:
    """has_unmovable_pages() with owners: kernel frames, long-term pinned pages and
    PFN-mapped frames whose driver has no enabled migrate hook. Each entry:
    {kind, what, pages, detail}."""
    f = m.f
    kind = f.kind[pfns]
    out = []
    kern = pfns[kind == K_KERNEL]
    if kern.size:
        uses = Counter(dict(zip(*(x.tolist() for x in distinct_counts(f.mapping[kern])))))
        detail = ", ".join(f"{KUSE_NAMES.get(u, 'kernel')} {n}" for u, n in sorted(uses.items()))
        out.append({"kind": "kernel", "what": "kernel", "pages": int(kern.size),
                    "detail": detail})
    user = (kind == K_ANON) | (kind == K_FILE)
    pinned = pfns[user & ((f.flags[pfns] & PG_pinned) != 0)]
    if pinned.size:
        out.extend(_pin_owners(m, pinned))
    out.extend(_driver_blockers(m, pfns[kind == K_PFNMAP]))
    return out


def _pin_owners(m: Machine, pinned: np.ndarray) -> list[dict]:
    """Name the process, VMA and pinning driver of long-term pinned pages."""
    from .rmap import for_each_mapping

    per_vma: dict = {}
    seen = np.zeros(pinned.size, bool)
    for v, pos, _offs in for_each_mapping(m, pinned):
        seen[pos] = True
        key = (v.mm.pid if v.mm is not None else -1, v.start, v.end)
        per_vma[key] = per_vma.get(key, 0) + int(pos.size)
    out = []
    for (pid, start, end), n in sorted(per_vma.items()):
        p = m.procs.get(pid)
        name = p.name if p is not None else "?"
        drv = _pinning_driver(m, pid, start, end)
        out.append({"kind": "pin", "what": f"pid {pid} ({name}) VMA {start:#x}-{end:#x} "
                                           f"pinned by {drv}",
                    "pages": n, "detail": "long-term pin", "pid": pid})
    if not seen.all():
        out.append({"kind": "pin", "what": "unmapped pages with a long-term pin",
                    "pages": int((~seen).sum()), "detail": "pin outlived its mapping"})
    return out


def _pinning_driver(m: Machine, pid: int, start: int, end: int) -> str:
    for d in m.drivers_map.values():
        for (ppid, a, ln) in d.pins:
            if ppid == pid and a < end and a + ln > start:
                return d.name
    return "a long-term pin"


def _driver_blockers(m: Machine, pf: np.ndarray) -> list[dict]:
    out = []
    if pf.size == 0:
        return out
    ids, counts = np.unique(m.f.mapping[pf], return_counts=True)
    by_backing = {d.backing.id: d for d in m.drivers_map.values() if d.backing is not None}
    for mid, n in zip(ids.tolist(), counts.tolist()):
        d = by_backing.get(mid)
        if d is not None and d.has_hook and d.hook_enabled:
            continue  # the driver relocates these frames itself
        name = d.name if d is not None else f"mapping {mid}"
        why = "migrate hook off" if d is not None and d.has_hook else "no vm_ops->migrate"
        out.append({"kind": "driver", "what": f"driver {name}", "pages": n, "detail": why})
    return out


def blockers_text(blockers: list[dict]) -> str:
    return "; ".join(f"{b['what']} ({b['pages']} pages: {b['detail']})" for b in blockers)


def _ebusy(label: str, blockers: list[dict]) -> OSError:
    return oserror(EBUSY, f"offline {label}: unmovable pages: {blockers_text(blockers)}")


def _hooked_drivers(m: Machine, pfns: np.ndarray) -> list:
    """Drivers with an enabled hook that own PFN-mapped frames among `pfns`."""
    f = m.f
    pf = pfns[f.kind[pfns] == K_PFNMAP]
    if pf.size == 0:
        return []
    ids = set(distinct(f.mapping[pf]).tolist())
    return [d for d in m.drivers_map.values() if d.backing is not None
            and d.backing.id in ids and d.has_hook and d.hook_enabled]


# ----------------------------------------------------------------- isolation

def _free_in(m: Machine, s: int, e: int) -> int:
    return int((m.f.kind[s:e] == K_FREE).sum())


def _isolate(m: Machine, blks: list[int]) -> None:
    """start_isolate_page_range(): MIGRATE_ISOLATE, so free frames there are not
    handed out (zone.isolated_free) and frees into the range stay there."""
    for b in blks:
        s, e = block_range(m, b)
        z = block_zone(m, b)
        m.blk_isolated[b] = True
        m.blk_state[b] = BLOCK_GOING_OFFLINE
        z.isolated += 1
        z.isolated_free += _free_in(m, s, e)


def _undo_isolation(m: Machine, blks: list[int]) -> None:
    """undo_isolate_page_range() + MEM_CANCEL_OFFLINE: the blocks are online again."""
    for b in blks:
        s, e = block_range(m, b)
        z = block_zone(m, b)
        m.blk_isolated[b] = False
        m.blk_state[b] = BLOCK_ONLINE
        z.isolated = max(0, z.isolated - 1)
        z.isolated_free = max(0, z.isolated_free - _free_in(m, s, e))


def _commit(m: Machine, blks: list[int]) -> None:
    """The irreversible part: pull the free pages from the buddy allocator, shrink
    present/managed, recompute watermarks (N_MEMORY follows present)."""
    from .topology import compute_watermarks

    f = m.f
    for b in blks:
        s, e = block_range(m, b)
        z = block_zone(m, b)
        n = e - s
        for name in f.FIELDS:
            getattr(f, name)[s:e] = 0
        f.kind[s:e] = K_OFFLINE
        z.free -= n
        z.present -= n
        z.managed -= n
        z.isolated = max(0, z.isolated - 1)
        z.isolated_free = max(0, z.isolated_free - n)
        m.blk_isolated[b] = False
        m.blk_state[b] = BLOCK_OFFLINE
    compute_watermarks(m.zones, m.page_size, m.era.is_modern)


# ----------------------------------------------------------------- targets

def migration_targets(m: Machine, src: int) -> tuple[int, set]:
    """do_migrate_range(): any node with memory except the source (the source only
    when it is the last one), nearest first. Returns (first node, allowed set)."""
    from .page_alloc import zonelist

    mem = m.memory_nodes()
    others = {n for n in mem if n != src}
    allowed = others or {src}
    return zonelist(m, src, allowed)[0], allowed


def _emulate_alloc(m: Machine, free: dict, iso: dict, k: int, order: list[int], *,
                   movable: bool, wmark: str) -> Counter:
    """page_alloc.alloc_frames() on counts only: how many of k frames each node would
    supply. `free`/`iso` (zid -> count) are updated like the real zones."""
    got: Counter = Counter()
    need = k
    passes = ("low", "min") if wmark == "low" else (wmark,)
    for mark in passes:
        for n in order:
            for z in reversed(m.node_zones(n)):
                if need <= 0:
                    break
                if z.movable and not movable:
                    continue
                wm = {"low": z.wmark_low, "min": z.wmark_min, "none": 0}[mark]
                take = min(need, max(0, free[z.zid] - wm) - iso[z.zid])
                if take > 0:
                    free[z.zid] -= take
                    got[n] += take
                    need -= take
    return got


# ----------------------------------------------------------------- the rehearsal

def offline_plan(m: Machine, node: int, zone: str, *, chunk: int | None = None) -> dict:
    """`offline --dry-run`: what offlining the zone would do, changing nothing.
    chunk: the batch size of the job to predict (None: the synchronous call)."""
    z, blks = _zone_offline_blocks(m, node, zone)
    return plan_blocks(m, blks, z.label, chunk=chunk)


def plan_blocks(m: Machine, blks: list[int], label: str, *,
                chunk: int | None = None) -> dict:
    """Predict an offline of `blks`: pages that would move per target node, driver
    frames the hooks would relocate, blockers with owners, the cost model's time."""
    from ..runtime import clock
    from .page_alloc import zonelist

    # the chunk-aware predictor when the cost model has one
    predict = getattr(clock, "predict_migrate_ns", None)

    z = _offline_blocks_checked(m, blks)
    src = z.node
    f = m.f
    pfns = _block_pfns(m, blks)
    kind = f.kind[pfns]
    free = {zz.zid: zz.free for zz in m.zones}
    iso = {zz.zid: zz.isolated_free for zz in m.zones}
    iso[z.zid] += int((kind == K_FREE).sum())
    time_ns = 0
    drivers = {}
    for d in _hooked_drivers(m, pfns):
        k = int(np.isin(d.backing.pages, pfns).sum())
        to = _emulate_alloc(m, free, iso, k, zonelist(m, src), movable=False, wmark="min")
        drivers[d.name] = {"frames": k, "to": dict(to)}
        time_ns += _cost(m, clock.migrate_cost_ns, src, to)  # relocate(): one call
    mov = pfns[((kind == K_ANON) | (kind == K_FILE)) & ((f.flags[pfns] & PG_pinned) == 0)]
    moves: Counter = Counter()
    if mov.size:
        t0, allowed = migration_targets(m, src)
        moves = _emulate_alloc(m, free, iso, mov.size, zonelist(m, t0, allowed),
                               movable=True, wmark="low")
        if predict is not None:
            time_ns += _cost(m, lambda mm, s, d: predict(mm, s, d, chunk), src, moves)
        else:
            time_ns += _cost(m, clock.migrate_cost_ns, src, moves)
        waits = int(((f.flags[mov] & (PG_locked | PG_writeback)) != 0).sum())
        time_ns += waits * m.cost.wait_ns
    blockers = find_blockers(m, pfns)
    unplaced = int(mov.size - sum(moves.values()))
    plan = {"label": label, "node": src, "zone": z.name, "blocks": list(blks),
            "pages": int(sum(moves.values())), "moves": dict(sorted(moves.items())),
            "drivers": drivers, "blockers": blockers, "unplaced": unplaced,
            "time_ns": int(time_ns), "ok": not blockers and unplaced == 0,
            "loses_memory": _would_lose_memory(m, src, blks)}
    plan["text"] = describe_plan(plan)
    return plan


def _cost(m: Machine, cost_fn, src: int, to: Counter) -> int:
    if not to:
        return 0
    dst = np.repeat(np.array(list(to.keys()), np.int64), list(to.values()))
    return cost_fn(m, np.full(dst.size, src, np.int64), dst)


def _would_lose_memory(m: Machine, node: int, blks: list[int]) -> bool:
    gone = sum(block_range(m, b)[1] - block_range(m, b)[0] for b in blks)
    return sum(zz.present for zz in m.node_zones(node)) - gone <= 0


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

def offline_zone_gen(m: Machine, node: int, zone: str, *, chunk: int | None = None,
                     job=None) -> OfflineGen:
    """`offline NODE ZONE`: every online block of the zone, as one operation."""
    z, blks = _zone_offline_blocks(m, node, zone)
    return (yield from offline_blocks_gen(m, blks, z.label, chunk=chunk, job=job))


def offline_block_gen(m: Machine, index: int, *, chunk: int | None = None,
                      job=None) -> OfflineGen:
    """echo offline > /sys/devices/system/memory/memoryN/state"""
    b = _check_block_index(m, index)
    return (yield from offline_blocks_gen(m, [b], f"memory{b}", chunk=chunk, job=job))


def offline_blocks_gen(m: Machine, blks: list[int], label: str, *,
                       chunk: int | None = None, job=None) -> OfflineGen:
    """offline_pages() over the blocks. Returns what moved; raises OSError EINVAL,
    EBUSY (blockers named), ENOMEM/EAGAIN (see the module doc); closing the generator
    (a cancelled job: EINTR) undoes the isolation."""
    z = _offline_blocks_checked(m, blks)
    pfns = _block_pfns(m, blks)
    blockers = find_blockers(m, pfns)
    if blockers:
        raise _ebusy(label, blockers)
    t_start = m.clock_ns
    _isolate(m, blks)
    committed = False
    try:
        if job is not None:
            kind = m.f.kind[pfns]
            job.rounds = 0
            job.total = int(((kind == K_ANON) | (kind == K_FILE) | (kind == K_PFNMAP)).sum())
        yield 0  # MEM_GOING_OFFLINE: the blocks show going-offline; a signal may come
        result = yield from _evacuate(m, blks, pfns, z.node, label, chunk, job)
        _commit(m, blks)
        committed = True
    finally:
        if not committed:
            _undo_isolation(m, blks)
    result.update(label=label, node=z.node, zone=z.name, blocks=list(blks),
                  time_ns=m.clock_ns - t_start, left_n_memory=not m.node_has_memory(z.node))
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


def _evacuate(m: Machine, blks: list[int], pfns: np.ndarray, src: int, label: str,
              chunk: int | None, job) -> OfflineGen:
    """The offline_pages() loop: rescan, relocate hooked driver frames, migrate the
    movable pages, until every frame of the range is free."""
    from .migrate import migrate_pairs_gen

    f = m.f
    mask = _block_mask(m, blks)
    moves: Counter = Counter()
    drivers: dict = {}
    state = {"rounds": 0, "retries": OFFLINE_RETRY_MAX,
             "deadline": m.clock_ns + OFFLINE_TIMEOUT_NS}
    while True:
        blockers = find_blockers(m, pfns)  # a pin taken while we ran
        if blockers:
            raise _ebusy(label, blockers)
        _relocate_hooked(m, pfns, mask, drivers, job)
        kind = f.kind[pfns]
        mov = pfns[(kind == K_ANON) | (kind == K_FILE)]
        if mov.size == 0:
            left = int((kind != K_FREE).sum())
            if left:
                raise oserror(EBUSY, f"offline {label}: {left} unmovable pages")
            return {"pages": int(sum(moves.values())), "moves": dict(sorted(moves.items())),
                    "drivers": drivers, "rounds": state["rounds"]}
        state["rounds"] += 1
        moved = sum(moves.values()) + sum(d["frames"] for d in drivers.values())
        if job is not None:
            # progress in pages: moved so far, plus this round's attempts
            job.rounds = state["rounds"]
            job.done = moved
            job.total = moved + int(mov.size)
        t0, allowed = migration_targets(m, src)
        res = yield from migrate_pairs_gen(
            m, mov, np.full(mov.size, t0, np.int64), reason="memory_hotplug",
            strict_node=False, cpu=src, allowed=allowed, chunk=chunk, job=job,
            unique=True)  # a scan of a PFN range: each frame once
        ok = res >= 0
        moves.update(dict(zip(*(x.tolist() for x in distinct_counts(res[ok])))))
        if job is not None:
            job.done = moved + int(ok.sum())  # a retried page counts once
        if not ok.all():
            # failures are rescanned; a round that moved nothing follows the era
            _failed_round(m, label, res, bool(ok.any()), job, state)
            yield 0


def _relocate_hooked(m: Machine, pfns: np.ndarray, mask: np.ndarray, drivers: dict,
                     job) -> None:
    """vm_ops->migrate as a hot-remove helper: the driver moves its frames out of the
    range itself (a what-if: Linux never called the hook from offline_pages)."""
    for d in _hooked_drivers(m, pfns):
        before = d.backing.pages.copy()
        d.relocate(m, lambda n: n, avoid_blocks=mask)
        moved = d.backing.pages != before
        to = Counter(dict(zip(*(x.tolist() for x in distinct_counts(m.node_of(d.backing.pages[moved]))))))
        rec = drivers.setdefault(d.name, {"frames": 0, "to": {}})
        rec["frames"] += int(moved.sum())
        for n, c in to.items():
            rec["to"][n] = rec["to"].get(n, 0) + c
        if job is not None:
            job.done += int(moved.sum())
            job.total = max(job.total, job.done)


def _failed_round(m: Machine, label: str, res: np.ndarray, progress: bool, job,
                  state: dict) -> None:
    """What a round with failed migrations leads to, by era (knob 15)."""
    enomem = bool((res == -ENOMEM).any())
    nfail = int((res < 0).sum())
    why = (f"{nfail} pages found no free memory on the other nodes" if enomem else
           f"{nfail} pages are busy (isolated by another migration or locked)")
    if m.era.offline_retry == "timeout":
        if enomem:
            state["retries"] -= 1
            if state["retries"] <= 0:
                raise oserror(ENOMEM, f"offline {label}: {why}; gave up after "
                                      f"{OFFLINE_RETRY_MAX} failing rounds")
        if not progress:
            if job is None and not enomem:
                # nothing changes between synchronous rounds: they spin to the timeout
                m.clock_ns = max(m.clock_ns, state["deadline"])
            else:
                m.clock_ns += RETRY_NS
        if m.clock_ns >= state["deadline"]:
            raise oserror(EAGAIN, f"offline {label}: timed out after 120 s; {why}")
        return
    if progress:
        return
    if job is None:
        raise oserror(ENOMEM if enomem else EBUSY,
                      f"offline {label}: {why}; Linux retries until interrupted; run "
                      f"the offline as a job to keep retrying")
    m.clock_ns += RETRY_NS


# ----------------------------------------------------------------- online

def online_blocks(m: Machine, blks: list[int], how: str = "online") -> int:
    """online_pages(): offline blocks become free memory of their zone again.
    Returns the number of pages onlined."""
    from .topology import compute_watermarks

    if how not in ONLINE_TYPES:
        raise oserror(EINVAL, f"online: {how!r} is not one of {', '.join(ONLINE_TYPES)}")
    zones = []
    for b in blks:
        st = int(m.blk_state[b])
        if st == BLOCK_GOING_OFFLINE:
            raise oserror(EBUSY, f"memory{b}: an offline of this block is in progress")
        if st != BLOCK_OFFLINE:
            raise oserror(EINVAL, f"memory{b} is already online")
        zones.append(_online_zone(m, b, how))
    f = m.f
    n = 0
    for b, z in zip(blks, zones):
        s, e = block_range(m, b)
        for name in f.FIELDS:
            getattr(f, name)[s:e] = 0
        f.kind[s:e] = K_FREE
        z.present += e - s
        z.managed += e - s
        z.free += e - s
        m.blk_state[b] = BLOCK_ONLINE
        n += e - s
    compute_watermarks(m.zones, m.page_size, m.era.is_modern)
    return n


def _online_zone(m: Machine, b: int, how: str) -> Zone:
    """The zone a block comes back in: the engine keeps the layout's zone, so
    online_movable needs a Movable block and online_kernel a kernel-zone block."""
    z = block_zone(m, b)
    if z is None:
        raise oserror(EINVAL, f"memory{b} has no single zone to online into")
    if how == "online_movable" and z.zone_type != ZONE_MOVABLE:
        raise oserror(EINVAL, f"memory{b} belongs to {z.label} (valid_zones {z.name}); "
                              f"this machine does not move blocks between zones")
    if how == "online_kernel" and z.zone_type == ZONE_MOVABLE:
        raise oserror(EINVAL, f"memory{b} belongs to {z.label} (valid_zones Movable); "
                              f"this machine does not move blocks between zones")
    return z


def online_zone(m: Machine, node: int, zone: str) -> int:
    z = m.zone(int(node), zone)
    blks = zone_blocks(m, z)
    off = [b for b in blks if m.blk_state[b] == BLOCK_OFFLINE]
    if not off:
        if any(m.blk_state[b] == BLOCK_GOING_OFFLINE for b in blks):
            raise oserror(EBUSY, f"{z.label}: an offline is in progress")
        raise oserror(EINVAL, f"{z.label} has no offline block")
    return online_blocks(m, off)


def online_block(m: Machine, index: int, how: str = "online") -> int:
    return online_blocks(m, [_check_block_index(m, index)], how)


__all__ = ["blocks", "block_size_bytes", "offline_plan", "plan_blocks", "describe_plan",
           "describe_result",
           "offline_zone_gen", "offline_block_gen", "offline_blocks_gen", "online_zone",
           "online_block", "online_blocks", "find_blockers", "migration_targets",
           "STATE_NAMES", "ONLINE_TYPES"]
