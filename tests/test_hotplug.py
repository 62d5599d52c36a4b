"""Memory hot-remove and hot-add (engine/memory_hotplug.py): offline_pages() rules,
blockers, the driver hook, jobs (progress, cancellation, exit/unmap while running),
the rehearsal, eras."""

from __future__ import annotations

import asyncio
import dataclasses
import errno

import numpy as np
import pytest
from conftest import fingerprint, ptes

import engine
from engine.constants import (
    K_ANON,
    K_FREE,
    K_KERNEL,
    K_OFFLINE,
    K_PFNMAP,
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MPOL_BIND,
    PROT_READ,
    PROT_WRITE,
    PG_isolated,
    PG_mlocked,
)
from engine.mm.memory_hotplug import block_size_bytes, describe_plan, plan_blocks

MB = 1 << 20
DIST = [[10, 16, 32, 32, 40],
        [16, 10, 32, 32, 40],
        [32, 32, 10, 16, 40],
        [32, 32, 16, 10, 20],
        [40, 40, 40, 20, 10]]


def small_machine() -> engine.Machine:
    """5 nodes, 4 MiB blocks: node 3 has a Movable zone an app lives in, node 4 is
    Movable only (no kernel pages), node 1 holds a hooked PFN-map driver region,
    node 2 a framebuffer without a hook."""
    return engine.Machine.from_description({
        "machine": {"name": "hotplug", "page_size": "4K", "block_size": "4M",
                    "kernel": "2%", "seed": 7},
        "nodes": [
            {"id": 0, "cpus": "0-1", "zones": {"Normal": "64M"}},
            {"id": 1, "cpus": "2-3", "zones": {"Normal": "32M"}},
            {"id": 2, "cpus": "4-5", "zones": {"Normal": "32M"}},
            {"id": 3, "cpus": "6-7", "zones": {"Normal": "16M", "Movable": "32M"}},
            {"id": 4, "cpus": "", "zones": {"Movable": "8M"}},
        ],
        "distances": {"matrix": DIST},
        "drivers": [
            {"name": "uncached", "kind": "uncached", "node": 1, "size": "8M", "hook": True},
            {"name": "fb0", "kind": "framebuffer", "node": 2, "size": "4M", "hook": False},
            {"name": "rdma0", "kind": "rdma", "node": 3},
        ],
        "processes": [
            {"name": "app", "pid": 10, "node": 3, "vmas": [
                {"size": "12M", "touch": "100%"},
                {"kind": "file", "file": "/data", "size": "4M", "touch": "100%"},
                {"size": "2M", "touch": "100%", "mlock": True}]},
            {"name": "sgi-mpt", "pid": 11, "node": 1, "vmas": [
                {"kind": "driver", "driver": "uncached", "size": "8M"}]},
            {"name": "Xorg", "pid": 12, "node": 2, "vmas": [
                {"kind": "driver", "driver": "fb0", "size": "4M"}]},
        ],
    })


def tight_machine() -> engine.Machine:
    """Two nodes: evacuating node 1's Movable zone does not fit in node 0 while the
    hog (pid 20) holds most of it."""
    return engine.Machine.from_description({
        "machine": {"name": "tight", "page_size": "4K", "block_size": "4M", "seed": 3},
        "nodes": [
            {"id": 0, "cpus": "0", "zones": {"Normal": "32M"}},
            {"id": 1, "cpus": "1", "zones": {"Movable": "16M"}},
        ],
        "distances": {"local": 10, "remote": 20},
        "processes": [
            {"name": "hog", "pid": 20, "node": 0, "policy": "bind:0",
             "vmas": [{"size": "20M", "touch": "100%"}]},
            {"name": "tenant", "pid": 21, "node": 1, "vmas": [{"size": "12M", "touch": "100%"}]},
        ],
    })


def read_all(m: engine.Machine) -> dict:
    """(pid, address) -> content, every page of every VMA, through m.read."""
    out = {}
    for pid in m.pids:
        p = m.process(pid)
        if not p.has_mm:
            continue
        for v in p.vmas:
            for a in range(v.start, v.end, m.page_size):
                out[(pid, a)] = m.read(pid, a)
    return out


def zone_used(m: engine.Machine, node: int, zone: str) -> int:
    z = m.zone(node, zone)
    return int((m.f.kind[z.start_pfn:z.end_pfn] != K_FREE).sum())


def capacity(m: engine.Machine) -> list[tuple]:
    return [(z.present, z.managed, z.free, z.isolated, z.isolated_free) for z in m.zones]


def assert_not_isolated(m: engine.Machine) -> None:
    check_isolation_accounting(m)
    assert not m.blk_isolated.any()
    assert all(z.isolated == 0 and z.isolated_free == 0 for z in m.zones)
    assert not (m.blk_state == 2).any()
    assert m.isolated_pages == 0
    assert not (m.f.flags & PG_isolated).any()


def check_isolation_accounting(m: engine.Machine) -> None:
    """zone.isolated / isolated_free match the isolated blocks (check() does not
    look at them)."""
    blk = np.arange(m.nr_frames) // m.block_pages
    iso = m.blk_isolated[blk]
    free_iso = np.bincount(m.zone_of(np.flatnonzero(iso & (m.f.kind == K_FREE))),
                           minlength=len(m.zones))
    for z in m.zones:
        nblk = len({int(b) for b in np.unique(blk[z.start_pfn:z.end_pfn])
                    if m.blk_isolated[b]}) if z.spanned else 0
        assert (z.isolated, z.isolated_free) == (nblk, int(free_iso[z.zid])), z.label


def snapshot(m: engine.Machine) -> str:
    """Everything an operation could change."""
    return fingerprint(m)


def assert_same(a: str, b: str) -> None:
    assert a == b


def driver_only_block(m: engine.Machine, name: str) -> int:
    """A block that holds frames of the driver's region and no kernel page."""
    pages = m.drivers_map[name].backing.present()[1]
    for b in np.unique(pages // m.block_pages):
        s = int(b) * m.block_pages
        kinds = m.f.kind[s:s + m.block_pages]
        if not (kinds == K_KERNEL).any():
            return int(b)
    raise AssertionError(f"no kernel-free block holds {name}")


# ----------------------------------------------------------------- success

def test_offline_movable_zone_moves_pages_and_preserves_content():
    m = small_machine()
    before = read_all(m)
    z = m.zone(3, "Movable")
    used = zone_used(m, 3, "Movable")
    assert used > 4000
    mlocked_before = int(((m.f.flags & PG_mlocked) != 0).sum())
    r = m.offline(3, "Movable")
    m.check()
    assert read_all(m) == before
    assert r["pages"] == used and r["moves"] == {2: used}  # nearest other node
    assert r["rounds"] == 1 and r["time_ns"] > 0
    assert r["text"].startswith("node3/Movable offline: migrated")
    assert (m.f.kind[z.start_pfn:z.end_pfn] == K_OFFLINE).all()
    assert z.present == z.managed == z.free == 0
    assert z.wmark_min == z.wmark_low == z.wmark_high == 0
    assert 3 in m.memory_nodes()  # node 3 keeps its Normal zone
    assert int(((m.f.flags & PG_mlocked) != 0).sum()) == mlocked_before  # still mlocked
    assert {b["state"] for b in m.blocks() if b["zone"] == "Movable" and b["node"] == 3} \
        == {"offline"}
    assert_not_isolated(m)


def test_offline_shrinks_lowmem_and_recomputes_watermarks():
    m = small_machine()
    z = m.zone(2, "Normal")
    top = z.end_pfn // m.block_pages - 1  # no kernel page up there
    before = (z.wmark_min, z.wmark_low, z.wmark_high)
    m.offline_block(top)
    assert (z.present, z.spanned - z.present) == (z.spanned - m.block_pages, m.block_pages)
    assert (z.wmark_min, z.wmark_low, z.wmark_high) != before
    fresh = [dataclasses.replace(x) for x in m.zones]
    from engine.mm.zones import compute_watermarks

    compute_watermarks(fresh, m.page_size, True)
    assert [(x.wmark_min, x.wmark_low) for x in fresh] == \
        [(x.wmark_min, x.wmark_low) for x in m.zones]
    m.online_block(top)
    assert (z.wmark_min, z.wmark_low, z.wmark_high) == before
    m.check()


def test_offline_last_memory_leaves_n_memory_and_move_pages_gives_enodev():
    m = small_machine()
    pid = m.spawn("numa4", node=3)
    m.set_mempolicy(pid, MPOL_BIND, [4])
    addr = m.mmap(pid, 4 * MB)
    m.touch(pid, addr, 4 * MB)
    pages = [addr + i * m.page_size for i in range(1024)]
    assert set(m.move_pages(pid, pages)) == {4}
    before = read_all(m)
    r = m.offline(4, "Movable")
    m.check()
    assert 4 not in m.memory_nodes()
    assert r["moves"] == {3: 1024}  # the nearest node with memory (distance 20)
    assert set(m.move_pages(pid, pages)) == {3}
    assert read_all(m) == before
    with pytest.raises(OSError) as e:
        m.move_pages(pid, pages[:1], [4])
    assert e.value.errno == errno.ENODEV
    m.check()


def test_online_restores_capacity():
    m = small_machine()
    z = m.zone(3, "Movable")
    present, managed = z.present, z.managed
    wm = (z.wmark_min, z.wmark_low, z.wmark_high)
    m.offline(3, "Movable")
    m.offline(4, "Movable")
    assert 4 not in m.memory_nodes()
    n = m.online(3, "Movable")
    assert n == present
    assert (z.present, z.managed, z.free) == (present, managed, managed)
    assert (z.wmark_min, z.wmark_low, z.wmark_high) == wm
    m.online_block(m.zone(4, "Movable").start_pfn // m.block_pages)
    assert 4 in m.memory_nodes()
    m.check()
    # the returned memory is usable again
    pid = m.spawn("again", node=3)
    addr = m.mmap(pid, 4 * MB)
    m.touch(pid, addr, 4 * MB)
    assert set(m.move_pages(pid, [addr])) == {3}
    assert zone_used(m, 3, "Movable") == 1024
    m.check()


def test_online_block_modes_follow_the_layout_zone():
    m = small_machine()
    mov = m.zone(4, "Movable").start_pfn // m.block_pages
    normal = m.zone(2, "Normal").end_pfn // m.block_pages - 1  # top block: no kernel pages
    m.offline_block(mov)
    m.offline_block(normal)
    with pytest.raises(OSError) as e:
        m.online_block(normal, "online_movable")
    assert e.value.errno == errno.EINVAL and "Normal" in str(e.value)
    with pytest.raises(OSError) as e:
        m.online_block(mov, "online_kernel")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        m.online_block(mov, "sideways")
    assert e.value.errno == errno.EINVAL
    assert m.online_block(mov, "online_movable") == m.block_pages
    assert m.online_block(normal, "online_kernel") == m.block_pages
    with pytest.raises(OSError) as e:
        m.online_block(normal)  # already online: device_online() returns 1 -> EINVAL
    assert e.value.errno == errno.EINVAL
    m.check()


def test_zone_offline_takes_the_blocks_still_online():
    m = small_machine()
    z = m.zone(3, "Movable")
    first = z.start_pfn // m.block_pages
    m.offline_block(first)
    assert z.present == z.spanned - m.block_pages
    r = m.offline(3, "Movable")
    assert r["blocks"] == list(range(first + 1, z.end_pfn // m.block_pages))
    assert z.present == 0
    m.online_block(first + 2)
    assert m.online(3, "Movable") == z.spanned - m.block_pages  # the other offline ones
    assert z.present == z.spanned
    check_isolation_accounting(m)
    m.check()


def test_offline_twice_and_bad_ranges_are_einval():
    m = small_machine()
    m.offline(4, "Movable")
    for call in (lambda: m.offline(4, "Movable"),
                 lambda: m.offline_block(m.zone(4, "Movable").start_pfn // m.block_pages),
                 lambda: m.offline_block(10**6),
                 lambda: m.offline(0, "Movable"),  # an empty zone
                 lambda: m.offline(7, "Normal")):  # no such node
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.EINVAL
    m.check()


def test_offline_rejects_zone_sharing_a_block_with_another_zone():
    m = engine.Machine.from_description({
        "machine": {"block_size": "4M"},
        "nodes": [{"id": 0, "cpus": "0", "zones": {"DMA": "2M", "Normal": "30M"}}],
    })
    with pytest.raises(OSError) as e:
        m.offline(0, "Normal")
    assert e.value.errno == errno.EINVAL and "block 0" in str(e.value)
    with pytest.raises(OSError) as e:
        m.offline_block(0)
    assert e.value.errno == errno.EINVAL
    assert m.blocks()[0]["valid_zones"] == "none"
    assert m.blocks()[1]["valid_zones"] == "Normal"
    m.check()


def test_blocks_view_lists_state_node_zone_and_removable():
    m = small_machine()
    bl = m.blocks()
    assert len(bl) == len(m.blk_state)
    assert [b["index"] for b in bl] == list(range(len(bl)))
    assert {b["state"] for b in bl} == {"online"}
    last = bl[-1]
    assert (last["node"], last["zone"], last["valid_zones"], last["removable"]) == \
        (4, "Movable", "Movable", 1)
    m.offline(4, "Movable")
    assert m.blocks()[-1]["state"] == "offline"
    m.era = "2.6.18"
    assert m.blocks()[-1]["removable"] == 0
    assert block_size_bytes(m) == "400000"


# ----------------------------------------------------------------- blockers

def test_offline_blocked_by_kernel_pages_names_kernel():
    m = small_machine()
    before = capacity(m)
    snap = snapshot(m)
    with pytest.raises(OSError) as e:
        m.offline(3, "Normal")
    assert e.value.errno == errno.EBUSY
    assert "kernel" in str(e.value) and "memmap" in str(e.value)
    assert capacity(m) == before
    assert_same(snapshot(m), snap)  # EBUSY at isolation: nothing happened
    m.check()


def test_offline_blocked_by_rdma_pin_names_process_vma_and_driver():
    m = small_machine()
    pid = m.spawn("ib_send_bw", uid=1000, node=3)
    addr = m.mmap(pid, 2 * MB)
    assert m.pin(pid, addr, 2 * MB, "rdma0") == 512
    before = capacity(m)
    with pytest.raises(OSError) as e:
        m.offline(3, "Movable")
    assert e.value.errno == errno.EBUSY
    msg = str(e.value)
    assert f"pid {pid} (ib_send_bw) VMA {addr:#x}" in msg and "pinned by rdma0" in msg
    assert capacity(m) == before
    assert_not_isolated(m)
    m.check()
    m.unpin(pid, addr, 2 * MB, "rdma0")
    m.offline(3, "Movable")  # the pin was the only blocker
    m.check()


def test_offline_blocked_by_pfnmap_driver_without_hook():
    m = small_machine()
    b = driver_only_block(m, "fb0")
    before = capacity(m)
    with pytest.raises(OSError) as e:
        m.offline_block(b)
    assert e.value.errno == errno.EBUSY
    assert "driver fb0" in str(e.value) and "no vm_ops->migrate" in str(e.value)
    assert capacity(m) == before
    assert m.blocks()[b]["state"] == "online"
    assert_not_isolated(m)
    m.check()


def test_offline_blocked_by_driver_whose_hook_is_off():
    m = small_machine()
    b = driver_only_block(m, "uncached")
    with pytest.raises(OSError) as e:
        m.offline_block(b)
    assert e.value.errno == errno.EBUSY
    assert "driver uncached" in str(e.value) and "hook off" in str(e.value)
    assert_not_isolated(m)
    m.check()


def test_hook_on_lets_hot_remove_relocate_the_driver_region():
    m = small_machine()
    m.touch(11, m.process(11).vmas[0].start, 8 * MB)  # write the region
    before = read_all(m)
    drv = m.drivers_map["uncached"]
    b = driver_only_block(m, "uncached")
    inside = int((drv.backing.present()[1] // m.block_pages == b).sum())
    assert inside > 0
    m.set_migrate_hook("uncached", True)
    plan = plan_blocks(m, [b], f"block {b}")  # the rehearsal: one walk with the call
    t0 = m.clock
    r = m.offline_block(b)
    m.check()
    assert plan["drivers"] == r["drivers"] and m.clock - t0 == plan["time_ns"]
    assert r["drivers"]["uncached"]["frames"] == inside
    assert sum(r["drivers"]["uncached"]["to"].values()) == inside
    assert not (drv.backing.present()[1] // m.block_pages == b).any()
    assert (m.f.kind[drv.backing.present()[1]] == K_PFNMAP).all()
    assert read_all(m) == before
    assert m.blocks()[b]["state"] == "offline"


def test_pin_taken_during_offline_job_fails_it_with_ebusy():
    m = small_machine()
    app = m.process(10)
    v = app.vmas[-1]  # the first mapping (highest address)
    job = m.start("offline", 3, "Movable", batch=256)  # checks and isolation run here
    m.pin(10, v.start, m.page_size, "rdma0")
    while job.step():
        pass
    assert job.state == "failed"
    assert job.error.errno == errno.EBUSY and "pinned by rdma0" in str(job.error)
    assert_not_isolated(m)
    m.check()


# ----------------------------------------------------------------- jobs

def test_offline_job_reports_progress_in_pages_and_rounds():
    m = small_machine()
    used = zone_used(m, 3, "Movable")
    job = m.start("offline", 3, "Movable", batch=512)  # checks and isolation run here
    z = m.zone(3, "Movable")
    assert z.isolated == z.spanned // m.block_pages
    assert {b["state"] for b in m.blocks() if b["node"] == 3 and b["zone"] == "Movable"} == \
        {"going-offline"}
    seen = []
    while job.step():
        seen.append(job.done)
        m.check()  # consistent at every batch boundary
        check_isolation_accounting(m)
    assert job.state == "done" and job.rounds == 1
    assert job.done == job.total == used
    assert seen == sorted(seen) and len(seen) >= used // 512 - 1
    assert job.result["pages"] == used
    m.check()


async def test_offline_job_cancelled_mid_way_gives_eintr_and_undoes_isolation():
    m = small_machine()
    before = read_all(m)
    used = zone_used(m, 3, "Movable")
    present = m.zone(3, "Movable").present
    job = m.start("offline", 3, "Movable", batch=128)
    while job.done < 1024:
        await asyncio.sleep(0)
    job.cancel()
    with pytest.raises(OSError) as e:
        await job.wait()
    assert e.value.errno == errno.EINTR
    assert job.state == "cancelled"
    assert_not_isolated(m)
    assert m.zone(3, "Movable").present == present
    assert {b["state"] for b in m.blocks()} == {"online"}
    left = zone_used(m, 3, "Movable")
    assert 0 < left < used  # pages already moved stay moved ...
    assert read_all(m) == before  # ... and valid
    m.check()


def test_offline_job_survives_kill_and_munmap():
    m = small_machine()
    victim = m.spawn("victim", node=3)
    a = m.mmap(victim, 4 * MB)
    m.touch(victim, a, 4 * MB)
    app = m.process(10)
    big = app.vmas[-1]  # 12M anonymous, all in node 3 Movable
    assert big.npages == 3072
    job = m.start("offline", 3, "Movable", batch=256)
    assert job.step() and job.step()  # isolated, first batch moved
    assert m.isolated_pages > 0
    anon_vma = m.process(victim).vmas[0].anon
    m.kill(victim)  # its isolated pages are orphans now
    assert anon_vma.inflight > 0 and anon_vma.id in m.mappings  # held alive
    m.munmap(10, big.start + 2 * MB, 4 * MB)  # part of the app, pages in flight
    m.check()
    check_isolation_accounting(m)
    before = read_all(m)
    while job.step():
        m.check()
        check_isolation_accounting(m)
    assert job.state == "done", job.error
    m.check()
    assert read_all(m) == before
    assert anon_vma.id not in m.mappings  # dropped once the migration finished
    z = m.zone(3, "Movable")
    assert (m.f.kind[z.start_pfn:z.end_pfn] == K_OFFLINE).all()
    # nothing leaked: every anonymous frame is mapped by someone
    mapped = 0
    for p in m.pids:
        for vv in m.process(p).vmas:
            pte = ptes(vv)
            pte = pte[pte >= 0]
            mapped += int((m.f.kind[pte] == K_ANON).sum())
    assert mapped == int((m.f.kind == K_ANON).sum())
    assert_not_isolated(m)


def test_allocations_avoid_isolated_blocks_during_the_job():
    m = small_machine()
    job = m.start("offline", 3, "Movable", batch=256)
    assert job.step()
    pid = m.spawn("late", node=3)
    a = m.mmap(pid, 2 * MB)
    m.touch(pid, a, 2 * MB)
    z = m.zone(3, "Movable")
    pte = ptes(m.process(pid).vmas[0])
    assert not ((pte >= z.start_pfn) & (pte < z.end_pfn)).any()
    while job.step():
        pass
    assert job.state == "done"
    m.check()


def test_second_offline_or_online_during_a_job_is_ebusy():
    m = small_machine()
    z = m.zone(3, "Movable")
    job = m.start("offline", 3, "Movable", batch=256)
    assert job.step()
    for call in (lambda: m.offline(3, "Movable"),
                 lambda: m.offline_block(z.start_pfn // m.block_pages),
                 lambda: m.online(3, "Movable"),
                 lambda: m.online_block(z.start_pfn // m.block_pages)):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.EBUSY
    while job.step():
        pass
    assert job.state == "done"
    m.check()


def test_offline_block_runs_as_a_job_too():
    m = small_machine()
    b = m.zone(3, "Movable").start_pfn // m.block_pages
    job = m.start("offline_block", b, batch=128)
    while job.step():
        pass
    assert job.state == "done" and m.blocks()[b]["state"] == "offline"
    m.check()


def test_offline_waits_for_pages_held_by_another_migration():
    m = small_machine()
    v = m.process(10).vmas[-1]
    pages = [v.start + i * m.page_size for i in range(64)]
    mover = m.start("move_pages", 10, pages, [0] * 64, batch=1)
    assert mover.step()  # all 64 isolated, one moved
    with pytest.raises(OSError) as e:
        m.offline(3, "Movable")  # the synchronous call cannot wait for the job
    assert e.value.errno == errno.EBUSY and "busy" in str(e.value)
    assert_not_isolated_blocks(m)
    while mover.step():
        pass
    m.offline(3, "Movable")
    m.check()


def assert_not_isolated_blocks(m):
    assert not m.blk_isolated.any() and all(z.isolated == 0 for z in m.zones)
    assert {b["state"] for b in m.blocks()} == {"online"}


# ----------------------------------------------------------------- no room

def test_offline_without_room_fails_enomem_and_keeps_moved_pages():
    m = tight_machine()
    before = read_all(m)
    present = m.zone(1, "Movable").present
    used = zone_used(m, 1, "Movable")
    plan = m.offline_plan(1, "Movable")
    assert plan["unplaced"] > 0 and not plan["ok"]
    with pytest.raises(OSError) as e:
        m.offline(1, "Movable")
    assert e.value.errno == errno.ENOMEM
    assert m.zone(1, "Movable").present == present
    assert_not_isolated(m)
    assert zone_used(m, 1, "Movable") == plan["unplaced"] == used - plan["pages"]
    assert read_all(m) == before
    m.check()


def test_offline_job_without_room_retries_until_memory_frees():
    m = tight_machine()
    job = m.start("offline", 1, "Movable", batch=256)
    for _ in range(40):
        assert job.step()
    assert job.state == "running" and job.rounds > 5  # modern: no retry cap
    t = m.clock
    for _ in range(4):  # each idle round costs simulated time
        assert job.step()
        if m.clock > t:
            break
    assert m.clock > t
    m.check()
    m.kill(20)  # the hog goes: the next round finds room
    while job.step():
        pass
    assert job.state == "done", job.error
    assert 1 not in m.memory_nodes()
    m.check()


def test_offline_timeout_era_gives_up_after_five_failing_rounds():
    m = tight_machine()
    m.era = dataclasses.replace(m.era, name="3.10", offline_retry="timeout")
    with pytest.raises(OSError) as e:
        m.offline(1, "Movable")
    assert e.value.errno == errno.ENOMEM and "5 failing rounds" in str(e.value)
    assert_not_isolated(m)
    m.check()


def test_offline_timeout_era_gives_eagain_after_120_seconds_of_busy_pages():
    from engine.mm.migrate import isolate, putback

    m = small_machine()
    m.era = dataclasses.replace(m.era, name="3.10", offline_retry="timeout")
    v = m.process(10).vmas[-1]
    pfn = ptes(v)[:1]
    isolate(m, pfn)  # a migration elsewhere holds this page and does not finish
    t = m.clock
    with pytest.raises(OSError) as e:
        m.offline(3, "Movable")
    assert e.value.errno == errno.EAGAIN and "120 s" in str(e.value)
    assert m.clock - t >= 120 * 10**9
    assert not m.blk_isolated.any()
    putback(m, pfn)
    assert_not_isolated(m)
    m.check()


# ----------------------------------------------------------------- rehearsal

def test_dry_run_changes_nothing():
    m = small_machine()
    m.set_migrate_hook("uncached", True)
    snap = snapshot(m)
    for node, zone in ((3, "Movable"), (3, "Normal"), (4, "Movable"), (1, "Normal")):
        plan = m.offline(node, zone, dry_run=True)
        assert isinstance(plan, dict) and describe_plan(plan)
        assert_same(snapshot(m), snap)
    m.offline_plan(2, "Normal", chunk=64)
    assert_same(snapshot(m), snap)
    m.check()


def test_dry_run_predicts_what_the_real_run_does():
    m = small_machine()
    plan = m.offline_plan(3, "Movable")
    assert plan["ok"] and not plan["blockers"] and plan["unplaced"] == 0
    t = m.clock
    r = m.offline(3, "Movable")
    assert r["moves"] == plan["moves"] and r["pages"] == plan["pages"]
    assert abs(m.clock - t - plan["time_ns"]) <= 2  # float sums in another order
    m.check()


def test_dry_run_of_a_job_predicts_its_time():
    m = small_machine()
    plan = m.offline_plan(3, "Movable", chunk=256)
    t = m.clock
    job = m.start("offline", 3, "Movable", batch=256)
    while job.step():
        pass
    assert job.result["moves"] == plan["moves"]
    assert abs(m.clock - t - plan["time_ns"]) <= plan["pages"] // 256 + 2  # ns per batch


def test_dry_run_spills_to_the_next_node_like_the_allocator():
    m = small_machine()
    hog = m.spawn("hog", node=2)
    m.set_mempolicy(hog, MPOL_BIND, [2])
    a = m.mmap(hog, 22 * MB)
    m.touch(hog, a, 22 * MB)
    plan = m.offline_plan(3, "Movable")
    assert len(plan["moves"]) == 2 and min(plan["moves"].values()) > 0  # node 2 fills up
    r = m.offline(3, "Movable")
    assert r["moves"] == plan["moves"]
    m.check()


def test_dry_run_reports_blockers_owners_and_driver_relocations():
    m = small_machine()
    pid = m.spawn("ib", node=3)
    a = m.mmap(pid, MB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    m.pin(pid, a, MB, "rdma0")
    plan = m.offline_plan(3, "Movable")
    assert not plan["ok"]
    assert [b["kind"] for b in plan["blockers"]] == ["pin"]
    assert plan["blockers"][0]["pages"] == 256 and plan["blockers"][0]["pid"] == pid
    assert plan["pages"] == zone_used(m, 3, "Movable") - 256  # pinned pages do not move
    assert "EBUSY" in describe_plan(plan)
    kplan = m.offline_plan(0, "Normal")
    assert kplan["blockers"][0]["what"] == "kernel"
    # a driver block: the hook decides between blocker and relocation
    b = driver_only_block(m, "uncached")
    z = m.zone(1, "Normal")
    assert z.start_pfn <= b * m.block_pages < z.end_pfn
    plan = m.offline_plan(1, "Normal")
    assert any(x["what"] == "driver uncached" for x in plan["blockers"])
    m.set_migrate_hook("uncached", True)
    plan = m.offline_plan(1, "Normal")
    assert not any(x["what"] == "driver uncached" for x in plan["blockers"])
    assert plan["drivers"]["uncached"]["frames"] == m.drivers_map["uncached"].npages
    m.check()


def test_dry_run_and_block_offline_agree_on_driver_relocation():
    m = small_machine()
    m.set_migrate_hook("uncached", True)
    b = driver_only_block(m, "uncached")
    from engine.mm.memory_hotplug import plan_blocks

    plan = plan_blocks(m, [b], f"memory{b}")
    t = m.clock
    r = m.offline_block(b)
    assert r["drivers"] == plan["drivers"]
    assert abs(m.clock - t - plan["time_ns"]) <= 2
    m.check()


# ----------------------------------------------------------------- eras

def test_offline_in_2_6_18_is_einval_and_online_still_works():
    m = small_machine()
    m.offline(4, "Movable")
    m.era = "2.6.18"
    snap = snapshot(m)
    for call in (lambda: m.offline(3, "Movable"), lambda: m.offline_plan(3, "Movable"),
                 lambda: m.offline_block(0)):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.EINVAL and "2.6.18" in str(e.value)
    assert_same(snapshot(m), snap)
    m.online(4, "Movable")  # 2.6.18 had hot-add
    assert 4 in m.memory_nodes()
    m.check()


def test_default_machine_node3_movable_blocked_by_ib_send_bw_until_it_exits():
    m = engine.Machine.default()
    with pytest.raises(OSError) as e:
        m.offline(3, "Movable")
    assert e.value.errno == errno.EBUSY and "(ib_send_bw)" in str(e.value)
    m.kill(107)
    r = m.offline(3, "Movable")
    assert r["moves"] and 3 in m.memory_nodes()
    m.check()  # the integrity oracle: every page still reads what was written
