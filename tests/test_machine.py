"""Machine model, mlock, views and the integrity checks."""

import errno

import numpy as np
import pytest
from conftest import nodes_of, pages_of, ptes, small

import engine
from engine.constants import K_FREE, K_KERNEL, ZONE_MOVABLE, PG_mlocked
from engine.mm.procfs import numa_maps


def test_default_machine_has_what_the_contract_promises():
    m = engine.Machine.default()
    assert len(m.memory_nodes()) >= 4
    assert m.distance(0, 0) == 10 and m.distance(0, 2) > m.distance(0, 1)
    assert any(z.zone_type == ZONE_MOVABLE and z.present for z in m.zones)
    assert m.drivers and len(m.pids) >= 6
    k = m.f.kind
    for z in m.zones:
        kern = int((k[z.start_pfn:z.end_pfn] == K_KERNEL).sum())
        if z.zone_type == ZONE_MOVABLE:
            assert kern == 0  # ZONE_MOVABLE never holds kernel pages
    assert (k == K_KERNEL).sum() > 0
    m.check()


def test_watermarks_follow_linux_formula():
    m = small(nodes=1, size="1G")
    lowmem = sum(z.managed for z in m.zones if z.zone_type != ZONE_MOVABLE)
    mfk = max(128, min(int(np.sqrt(lowmem * 4 * 16)), 262144))
    pages_min = mfk // 4
    z = m.zone(0, "Normal")
    zmin = pages_min * z.managed // lowmem
    assert z.wmark_min == zmin
    delta = max(zmin // 4, z.managed * 10 // 10000)
    assert (z.wmark_low, z.wmark_high) == (zmin + delta, zmin + 2 * delta)
    m.era = "2006"
    assert (z.wmark_low, z.wmark_high) == (zmin + zmin // 4, zmin + zmin // 2)


def test_kill_frees_private_pages_and_keeps_page_cache(m):
    pid = m.spawn("a")
    a = m.mmap(pid, 8 * m.page_size)
    m.touch(pid, a, 8 * m.page_size)
    f = m.mmap(pid, 2 * m.page_size, flags=engine.MAP_SHARED, file="data")
    m.touch(pid, f, 2 * m.page_size)
    free0 = (m.f.kind == K_FREE).sum()
    m.kill(pid)
    assert (m.f.kind == K_FREE).sum() == free0 + 8
    assert pid not in m.pids
    m.check()
    q = m.spawn("b")
    g = m.mmap(q, 2 * m.page_size, flags=engine.MAP_SHARED, file="data")
    assert m.read(q, g) != 0  # the file kept what was written


def test_munmap_splits_and_private_file_cow(m):
    pid = m.spawn("a")
    a = m.mmap(pid, 4 * m.page_size, flags=engine.MAP_PRIVATE, file="lib")
    m.touch(pid, a, 4 * m.page_size, write=False)
    m.touch(pid, a, m.page_size)  # COW: a private anonymous copy
    q = m.spawn("b")
    b = m.mmap(q, 4 * m.page_size, flags=engine.MAP_PRIVATE, file="lib")
    m.touch(q, b, 4 * m.page_size, write=False)
    assert m.read(q, b) == 0 and m.read(pid, a) != 0
    m.munmap(pid, a + m.page_size, m.page_size)
    assert len(m.process(pid).vmas) == 2
    m.check()


def test_touch_outside_vma_is_EFAULT(m):
    pid = m.spawn("a")
    with pytest.raises(OSError) as e:
        m.touch(pid, 0x1000, 10)
    assert e.value.errno == errno.EFAULT


# ---- mlock

def test_mlock_splits_vma_populates_and_marks_pages(m):
    pid = m.spawn("a")
    a = m.mmap(pid, 8 * m.page_size)
    m.mlock(pid, a + 2 * m.page_size, 2 * m.page_size)
    vmas = m.process(pid).vmas
    assert len(vmas) == 3 and vmas[1].locked
    pte = ptes(vmas[1])
    assert (pte >= 0).all() and (pte != m.zero_pfn).all()  # populated, COW broken
    assert ((m.f.flags[pte] & PG_mlocked) != 0).all()
    assert "Mlocked:" in m.meminfo(0)
    m.munlock(pid, a, 8 * m.page_size)
    assert len(m.process(pid).vmas) == 1
    assert ((m.f.flags[pte] & PG_mlocked) == 0).all()
    m.check()


def test_mlock_ENOMEM_unmapped_and_over_rlimit(m):
    pid = m.spawn("a", uid=1000)
    with pytest.raises(OSError) as e:
        m.mlock(pid, 0x1000, m.page_size)
    assert e.value.errno == errno.ENOMEM
    a = m.mmap(pid, 16 << 20)
    with pytest.raises(OSError) as e:
        m.mlock(pid, a, 16 << 20)
    assert e.value.errno == errno.ENOMEM


def test_mlockall_future_locks_new_mappings(m):
    pid = m.spawn("a")
    m.mlockall(pid, engine.MCL_CURRENT | engine.MCL_FUTURE)
    a = m.mmap(pid, 2 * m.page_size)
    assert m.process(pid).find_vma(a).locked
    with pytest.raises(OSError):
        m.mlockall(pid, 0)
    m.munlockall(pid)
    assert not m.process(pid).find_vma(a).locked
    m.check()


def test_mlocked_pages_stay_mlocked_after_migration_modern(m):
    pid = m.spawn("a")
    a = m.mmap(pid, 2 * m.page_size)
    m.mlock(pid, a, 2 * m.page_size)
    m.move_pages(pid, pages_of(m, a, 2), [3, 3])
    pte = ptes(m.process(pid).vmas[0])
    assert ((m.f.flags[pte] & PG_mlocked) != 0).all()
    assert nodes_of(m, pid, a, 2) == [3, 3]


# ---- views

def test_numa_maps_format_modern_and_2006(m):
    pid = m.spawn("a")
    m.set_mempolicy(pid, engine.MPOL_INTERLEAVE, "0-1")
    a = m.mmap(pid, 4 * m.page_size)
    m.mbind(pid, a, 4 * m.page_size, engine.MPOL_INTERLEAVE, "0-1")
    m.touch(pid, a, 4 * m.page_size)
    line = numa_maps(m, m.process(pid)).strip()
    assert line == f"{a:08x} interleave:0-1 anon=4 dirty=4 N0=2 N1=2 kernelpagesize_kB=4"
    m.era = "2006"
    assert m.numa_maps(pid).strip() == f"{a:08x} interleave=0-1 anon=4 dirty=4 N0=2 N1=2"


def test_numa_maps_shared_file_fields(m):
    p1, p2 = m.spawn("a"), m.spawn("b")
    x = m.mmap(p1, 2 * m.page_size, flags=engine.MAP_SHARED, file="/lib/x.so")
    m.mmap(p2, 2 * m.page_size, flags=engine.MAP_SHARED, file="/lib/x.so")
    m.touch(p1, x, 2 * m.page_size, write=False, node=1)
    m.touch(p2, m.process(p2).vmas[0].start, 2 * m.page_size, write=False)
    line = m.numa_maps(p1).strip()
    assert line == f"{x:08x} default file=/lib/x.so mapped=2 mapmax=2 N1=2 kernelpagesize_kB=4"


def test_zoneinfo_lists_every_zone_and_stops_empty_ones_after_protection():
    m = small(nodes=2)
    z = m.zoneinfo()
    assert "Node 0, zone      DMA" in z and "Node 1, zone   Normal" in z
    assert "per-node stats" in z and "start_pfn:" in z
    m.era = "2006"
    assert "boost" not in m.zoneinfo()


def test_numastat_and_hardware_views(m):
    assert m.numastat().splitlines()[1].startswith("numa_hit")
    hw = m.hardware()
    assert hw.startswith("available: 4 nodes (0-3)") and "node distances:" in hw
    assert set(m.vmstat()) >= {"pgmigrate_success", "pgmigrate_fail", "numa_hit"}
    m.era = "2006"
    assert "pgmigrate_success" not in m.vmstat()


# ---- the integrity checks catch corruption

def test_check_detects_lost_write(m):
    pid = m.spawn("a")
    a = m.mmap(pid, 2 * m.page_size)
    m.touch(pid, a, 2 * m.page_size)
    pfn = ptes(m.process(pid).vmas[0])[0]
    m.f.content[pfn] ^= 1
    with pytest.raises(engine.InvariantError, match="last written"):
        m.check()


def test_check_detects_mapcount_and_free_count_mismatch(m):
    pid = m.spawn("a")
    a = m.mmap(pid, m.page_size)
    m.touch(pid, a, m.page_size)
    pfn = ptes(m.process(pid).vmas[0])[0]
    m.f.mapcount[pfn] += 1
    with pytest.raises(engine.InvariantError):
        m.check()
    m.f.mapcount[pfn] -= 1
    m.zone(1, "Normal").free += 1
    with pytest.raises(engine.InvariantError, match="free count"):
        m.check()


def test_check_detects_a_mapping_of_a_free_frame(m):
    pid = m.spawn("a")
    a = m.mmap(pid, m.page_size)
    m.touch(pid, a, m.page_size)
    v = m.process(pid).vmas[0]
    free = int(np.flatnonzero(m.f.kind == K_FREE)[5])
    v.set_ptes([0], [free])
    with pytest.raises(engine.InvariantError):
        m.check()
