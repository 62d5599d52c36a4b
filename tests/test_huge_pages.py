"""Transparent huge pages (issue 18): the THP fault, the setting and madvise, the
PMD-aligned placement, folios in check(), and their migration by move_pages,
migrate_pages and mbind as Linux 6.12 does it (mm/huge_memory.c, mm/migrate.c,
mm/mempolicy.c). Fixed machines, exact values."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from conftest import small

import engine
from engine import MADV_HUGEPAGE, MADV_NOHUGEPAGE, MPOL_BIND, MPOL_INTERLEAVE, MPOL_MF_MOVE
from engine.views import MachineView

HP = 512
MB2 = 2 << 20


def thp_machine(nodes=3, size="32M", **kw):
    m = small(nodes=nodes, size=size, block_size="2M", **kw)
    m.thp = "always"
    return m


def fragment(m, node):
    """Leave no wholly free aligned 2 MiB on `node`: a hog fills it with small pages,
    then keeps one page in every 256."""
    hog = m.spawn("hog", node=node)
    n = m.node_available(node) - 64
    h = m.mmap(hog, n * 4096)
    m.madvise(hog, h, n * 4096, MADV_NOHUGEPAGE)
    m.touch(hog, h, n * 4096, node=node)
    for i in range(0, n, 256):
        m.munmap(hog, h + (i + 1) * 4096, min(255, n - i - 1) * 4096) if n - i > 1 else None
    return hog


HUGETLB = engine.MAP_PRIVATE | engine.MAP_ANONYMOUS | engine.MAP_HUGETLB


def hugetlb_process(pool: int, pages: int):
    """A 2-node machine with `pool` huge pages on node 0 and a process on node 0 whose
    MAP_HUGETLB mapping of `pages` huge pages is written: (m, pid, address)."""
    m = small(nodes=2, size="32M", block_size="2M")
    m.set_nr_hugepages(0, pool)
    p = m.spawn("p", node=0)
    a = m.mmap(p, pages * MB2, flags=HUGETLB)
    m.touch(p, a, pages * MB2)
    return m, p, a


def huge_counts(m, node: int = 0) -> tuple[int, int, int]:
    """(HugePages_Total, HugePages_Free, HugePages_Surp) of a node, from meminfo."""
    rows = [ln.split() for ln in m.meminfo(node).splitlines() if "HugePages_" in ln]
    return tuple(int(r[-1]) for r in rows)


def thp_counts(m):
    return {k: v for k, v in m.vmstat().items() if k.startswith(("thp_", "pgmigrate_"))}


def test_thp_setting_default_madvise_and_2_6_18_has_no_sysfs_file():
    """/sys/kernel/mm/transparent_hugepage/enabled: madvise by default here; an unknown
    mode is EINVAL (the sysfs store refuses it); 2.6.18 had no THP: the file does not
    exist (ENOENT) and reading the setting says never."""
    m = small(nodes=2, size="16M")
    assert m.thp == "madvise"
    with pytest.raises(OSError) as e:
        m.thp = "sometimes"
    assert e.value.errno == errno.EINVAL and m.thp == "madvise"
    with pytest.raises(TypeError):
        m.thp = 1
    m.era = "2.6.18"
    assert m.thp == "never"
    with pytest.raises(OSError) as e:
        m.thp = "always"
    assert e.value.errno == errno.ENOENT


def test_thp_get_unmapped_area_aligns_anonymous_mappings_of_2mib():
    """thp_get_unmapped_area(): an anonymous mapping of 2 MiB or more starts 2 MiB
    aligned; smaller ones and 2.6.18's are placed page-aligned as before."""
    m = small(nodes=2, size="16M")
    pid = m.spawn("a")
    small_map = m.mmap(pid, 5 * 4096)
    big = m.mmap(pid, MB2 + 4096)
    assert big % MB2 == 0 and small_map % MB2 != 0
    m2 = small(nodes=2, size="16M", era="2.6.18")
    p2 = m2.spawn("a")
    m2.mmap(p2, 5 * 4096)
    assert m2.mmap(p2, MB2 + 4096) % MB2 != 0


def test_do_huge_pmd_anonymous_page_madvise_mode():
    """THP "madvise": only a VMA with MADV_HUGEPAGE gets PMD folios; a fault in an
    aligned 2 MiB inside the VMA allocates the whole folio (thp_fault_alloc), the tail
    of the VMA shorter than 2 MiB gets small pages; MADV_NOHUGEPAGE wins over
    "always"."""
    m = small(nodes=2, size="32M", block_size="2M")
    pid = m.spawn("a")
    a = m.mmap(pid, 2 * MB2 + 16 * 4096)
    m.touch(pid, a, 4096)
    assert m.large_folios == 0
    m.madvise(pid, a, 2 * MB2 + 16 * 4096, MADV_HUGEPAGE)
    m.touch(pid, a + MB2 + 4096, 4096)  # the second 2 MiB: a folio
    m.touch(pid, a + 2 * MB2, 4096)  # past the last aligned 2 MiB: a small page
    assert m.large_folios == 1
    assert thp_counts(m)["thp_fault_alloc"] == 1
    assert "anon=514" in m.numa_maps(pid)
    m.check()
    m.thp = "always"
    b = m.mmap(pid, MB2)
    m.madvise(pid, b, MB2, MADV_NOHUGEPAGE)
    m.touch(pid, b, 4096)
    assert m.large_folios == 1
    m.check()


def test_madvise_errors_are_linux_errnos_and_change_nothing():
    """madvise(2): unknown advice EINVAL, an unaligned start EINVAL, a hole ENOMEM;
    2.6.18 knows no MADV_HUGEPAGE (EINVAL)."""
    m = small(nodes=2, size="16M")
    pid = m.spawn("a")
    a = m.mmap(pid, 16 * 4096)
    for args, err in (((a, 4096, 99), errno.EINVAL), ((a + 1, 4096, MADV_HUGEPAGE),
                                                       errno.EINVAL),
                      ((a, 64 * 4096, MADV_HUGEPAGE), errno.ENOMEM)):
        with pytest.raises(OSError) as e:
            m.madvise(pid, *args)
        assert e.value.errno == err
    m2 = small(nodes=2, size="16M", era="2.6.18")
    p2 = m2.spawn("a")
    b = m2.mmap(p2, 16 * 4096)
    with pytest.raises(OSError) as e:
        m2.madvise(p2, b, 4096, MADV_HUGEPAGE)
    assert e.value.errno == errno.EINVAL


def test_thp_fault_fallback_when_no_aligned_block_on_the_policy_node():
    """alloc_pages_mpol(): the huge page comes from the policy's node only; with no
    wholly free aligned block there the fault falls back to small pages
    (thp_fault_fallback)."""
    m = thp_machine(nodes=2, size="8M")
    hog = m.spawn("hog", node=1)
    h = m.mmap(hog, 7 * (1 << 20))
    m.madvise(hog, h, 7 * (1 << 20), MADV_NOHUGEPAGE)
    m.touch(hog, h, 7 * (1 << 20), node=1)
    pid = m.spawn("a", node=1)
    a = m.mmap(pid, MB2)
    m.touch(pid, a, 4096)
    c = thp_counts(m)
    assert (c["thp_fault_alloc"], c["thp_fault_fallback"]) == (0, 1)
    assert m.large_folios == 0
    m.check()


def test_interleave_places_huge_pages_per_folio():
    """get_vma_policy(): the interleave index of a huge page is per folio, so an
    interleaved THP region alternates nodes 2 MiB at a time."""
    m = thp_machine()
    pid = m.spawn("a")
    a = m.mmap(pid, 4 * MB2)
    m.mbind(pid, a, 4 * MB2, MPOL_INTERLEAVE, [0, 1])
    m.touch(pid, a, 4 * MB2)
    nodes = m.move_pages(pid, [a + i * MB2 for i in range(4)])
    ilx0 = (a >> 21) % 2
    assert list(nodes) == [(ilx0 + i) % 2 for i in range(4)]
    assert m.large_folios == 4


def test_move_pages_moves_the_whole_folio_and_a_second_entry_is_ebusy():
    """add_folio_for_migration(): an address inside a THP isolates the whole folio;
    another entry of it in the same batch finds it isolated (-EBUSY); once the batch
    is flushed a later entry finds it on its target. pgmigrate_success counts base
    pages, thp_migration_success folios."""
    m = thp_machine()
    pid = m.spawn("a")
    a = m.mmap(pid, 2 * MB2)
    m.touch(pid, a, 2 * MB2)
    pages = [a + 5 * 4096, a + 7 * 4096, a + MB2, a + 9 * 4096]
    st = m.move_pages(pid, pages, [1, 1, 2, 2])
    assert list(st) == [1, -errno.EBUSY, 2, 2] and st.ret == 0
    c = thp_counts(m)
    assert (c["pgmigrate_success"], c["thp_migration_success"]) == (3 * HP, 3)
    assert list(m.move_pages(pid, [a, a + MB2 - 4096, a + MB2])) == [2, 2, 2]
    assert m.large_folios == 2
    m.check()


def test_migrate_pages_queues_each_folio_once():
    """queue_folios_pmd(): a folio is queued once, not once per page: migrate_pages
    moves 2 folios of 512 pages (pgmigrate_success 1024, thp_migration_success 2)."""
    m = thp_machine()
    pid = m.spawn("a")
    a = m.mmap(pid, 2 * MB2)
    m.touch(pid, a, 2 * MB2)
    assert m.migrate_pages(pid, [0], [2]) == 0
    c = thp_counts(m)
    assert (c["pgmigrate_success"], c["thp_migration_success"]) == (2 * HP, 2)
    assert "N2=1024" in m.numa_maps(pid)
    m.check()


def test_mbind_on_half_a_thp_splits_the_pmd_not_the_folio():
    """do_mbind(): queue_folios_pmd() queues the folio whole; mbind_range() splits the
    VMA in the middle of the PMD (thp_split_pmd), not the folio, so the whole folio
    moves, the pages outside the range with it."""
    m = thp_machine()
    pid = m.spawn("a")
    a = m.mmap(pid, MB2)
    m.touch(pid, a, MB2)
    m.mbind(pid, a, MB2 // 2, MPOL_BIND, [1], MPOL_MF_MOVE)
    c = thp_counts(m)
    assert (c["thp_split_pmd"], c["thp_split_page"], c["thp_migration_success"]) == (1, 0, 1)
    maps = m.numa_maps(pid).splitlines()
    assert len(maps) == 2 and "N1=256" in maps[0] and "N1=256" in maps[1]
    assert m.large_folios == 1
    m.check()


def test_no_aligned_block_on_target_splits_and_retries_as_small_pages():
    """migrate_pages_batch(): the target has no wholly free aligned 2 MiB block, the
    folio's allocation fails with -ENOMEM, the folio is split (thp_migration_split,
    thp_split_page) and its pages move as small pages."""
    m = thp_machine(nodes=3, size="8M")
    fragment(m, 2)
    pid = m.spawn("a")
    a = m.mmap(pid, MB2)
    m.touch(pid, a, MB2)
    assert m.migrate_pages(pid, [0], [2]) == 0
    c = thp_counts(m)
    assert (c["thp_migration_split"], c["thp_split_page"], c["thp_migration_success"],
            c["pgmigrate_success"]) == (1, 1, 0, HP)
    assert m.large_folios == 0 and "N2=512" in m.numa_maps(pid)
    m.check()


def test_numa_misplaced_does_not_split():
    """migrate_pages_batch(): MR_NUMA_MISPLACED never splits a folio; with no block on
    the target it fails (thp_migration_fail)."""
    from engine.mm.huge_memory import folio_heads
    from engine.mm.migrate import MigrateControl, migrate
    from engine.mm.state import drive

    m = thp_machine(nodes=3, size="8M")
    fragment(m, 2)
    pid = m.spawn("a")
    a = m.mmap(pid, MB2)
    m.touch(pid, a, MB2)
    pfn = m.process(pid).find_vma(a).ptes(np.array([3]))
    head = folio_heads(m, pfn)
    ctl = MigrateControl("numa_misplaced", thisnode=True, cpu=0)
    out = drive(migrate(m, head, np.array([2]), ctl))
    assert out.result.tolist() == [-errno.ENOMEM]
    c = thp_counts(m)
    assert (c["thp_migration_fail"], c["thp_migration_split"]) == (1, 0)
    m.check()


def test_a_pinned_page_pins_the_folio():
    """A long-term pin on one page keeps the folio's refcount from freezing: the
    whole folio fails with -EAGAIN (folio_migrate_mapping()'s refcount check)."""
    m = thp_machine(drivers=[{"name": "rdma0", "kind": "rdma", "node": 0}])
    pid = m.spawn("a")
    a = m.mmap(pid, MB2)
    m.touch(pid, a, MB2)
    m.pin(pid, a + 100 * 4096, 4096)
    st = m.move_pages(pid, [a], [1])
    assert st.ret == 1 and list(st) == [None]
    assert thp_counts(m)["thp_migration_fail"] == 1
    m.check()


def test_munmap_of_part_of_a_thp_splits_it():
    """zap_pte_range() on part of a THP: the folio is split (Linux: deferred split),
    the unmapped pages freed, the rest stay mapped as small pages."""
    m = thp_machine()
    pid = m.spawn("a")
    a = m.mmap(pid, MB2)
    m.touch(pid, a, MB2)
    free0 = m.node(0).free if hasattr(m.node(0), "free") else None
    m.munmap(pid, a, 16 * 4096)
    c = thp_counts(m)
    assert (c["thp_split_pmd"], c["thp_split_page"]) == (1, 1)
    assert m.large_folios == 0 and "anon=496" in m.numa_maps(pid)
    del free0
    m.check()


def test_check_rejects_a_broken_folio():
    """check(): a tail frame without its head, or a head whose tails are missing, is
    an invariant broken."""
    m = thp_machine()
    pid = m.spawn("a")
    a = m.mmap(pid, MB2)
    m.touch(pid, a, MB2)
    head = int(m.process(pid).find_vma(a).ptes(np.array([0]))[0])
    m.f.spare[head + 7] = 0
    with pytest.raises(engine.InvariantError, match="tail"):
        m.check()


# ----------------------------------------------------------------- hugetlb

HUGETLB = engine.MAP_PRIVATE | engine.MAP_ANONYMOUS | engine.MAP_HUGETLB


def test_nr_hugepages_grows_and_shrinks_a_nodes_pool():
    """nodeN/hugepages/hugepages-2048kB/nr_hugepages: the pool grows from free aligned
    blocks of that node and shrinks by its free pages; a node without memory has no
    such file (ENOENT), a negative or impossible count is EINVAL, nothing changes."""
    m = small(nodes=2, size="16M", block_size="2M")
    assert m.set_nr_hugepages(1, 3) == 3 and m.hugepages(1) == (3, 3)
    assert "HugePages_Total:    3" in m.meminfo(1)
    for n, err in ((-1, errno.EINVAL), (10**6, errno.EINVAL)):
        with pytest.raises(OSError) as e:
            m.set_nr_hugepages(1, n)
        assert e.value.errno == err and m.hugepages(1) == (3, 3)
    with pytest.raises(OSError) as e:
        m.set_nr_hugepages(5, 1)
    assert e.value.errno == errno.ENOENT
    assert m.set_nr_hugepages(1, 1) == 1
    m.check()


def test_map_hugetlb_without_pool_pages_is_enomem():
    """hugetlb_reserve_pages(): MAP_HUGETLB needing more huge pages than the pools have
    free is ENOMEM; with a pool the mapping is 2 MiB aligned and its faults take pool
    pages; numa_maps says huge, counts huge pages, kernelpagesize_kB=2048."""
    m = small(nodes=2, size="16M", block_size="2M")
    pid = m.spawn("db")
    with pytest.raises(OSError) as e:
        m.mmap(pid, MB2, flags=HUGETLB)
    assert e.value.errno == errno.ENOMEM
    m.set_nr_hugepages(0, 2)
    a = m.mmap(pid, MB2 + 4096, flags=HUGETLB)  # rounded up to two huge pages
    assert a % MB2 == 0
    m.touch(pid, a, 4096)
    assert m.hugepages(0) == (2, 1)
    line = m.numa_maps(pid).splitlines()[0]
    assert line.endswith("huge anon=1 dirty=1 N0=1 kernelpagesize_kB=2048")
    with pytest.raises(OSError) as e:
        m.munmap(pid, a, 4096)  # hugetlb_vm_op_split(): not at a huge page boundary
    assert e.value.errno == errno.EINVAL
    m.munmap(pid, a, 2 * MB2)
    assert m.hugepages(0) == (2, 2)  # free_huge_folio(): back to the pool
    m.check()


def test_hugetlb_migration_takes_the_targets_pool_page():
    """alloc_hugetlb_folio_nodemask(): a hugetlb folio moves to a free page of the
    target node's pool and its old page rejoins the source's pool; with none free
    there and no free aligned block for a temporary page either
    (alloc_migrate_hugetlb_folio()), -ENOMEM and no split. hugetlb moves are not THP
    counters."""
    m = small(nodes=2, size="16M", block_size="2M")
    m.set_nr_hugepages(0, 2)
    m.set_nr_hugepages(1, 1)
    pid = m.spawn("db")
    a = m.mmap(pid, 2 * MB2, flags=HUGETLB)
    m.touch(pid, a, 2 * MB2)
    fragment(m, 1)
    with pytest.raises(OSError) as e:  # the batch's -ENOMEM: the call's error
        m.move_pages(pid, [a, a + MB2], [1, 1])
    assert e.value.errno == errno.ENOMEM
    assert list(m.move_pages(pid, [a, a + MB2])) == [1, 0]
    assert m.hugepages(1) == (1, 0) and m.hugepages(0) == (2, 1)
    c = thp_counts(m)
    assert (c["thp_migration_success"], c["thp_split_page"], c["pgmigrate_success"]) == \
        (0, 0, HP)
    m.check()


def test_offline_names_hugetlb_pages_as_blockers():
    """Hot-remove of a zone with hugetlb pages: huge pages in use that no other node's
    pool can take are named blockers (EBUSY); with room in another pool they migrate
    there, the zone's free huge pages are dissolved (dissolve_free_hugetlb_folios())
    and the zone goes offline."""
    m = small(nodes=2, size="8M", movable="8M", block_size="2M")
    m.set_nr_hugepages(1, 4)
    pid = m.spawn("db", node=1)
    a = m.mmap(pid, MB2, flags=HUGETLB)
    m.touch(pid, a, MB2, node=1)
    hog = fragment(m, 0)  # (no free aligned block for a temporary page on node 0)
    with pytest.raises(OSError) as e:
        m.offline(1, "Movable")
    assert e.value.errno == errno.EBUSY and "in use" in str(e.value)
    assert m.hugepages(1) == (4, 3)  # (the refused offline changed nothing)
    m.kill(hog)
    m.set_nr_hugepages(0, 1)
    plan = m.offline_plan(1, "Movable")
    m.offline(1, "Movable")
    assert plan["moves"] == {0: HP}
    assert m.hugepages(0) == (1, 0) and m.hugepages(1)[0] < 4  # dissolved
    m.check()


def test_commands_thp_madvise_hugepages():
    """The commands: `thp MODE`, `madvise PID RANGE hugepage|nohugepage`, `hugepages
    NODE N`; bad input is a one-line error and changes nothing."""
    from engine.commands import execute

    m = small(nodes=2, size="16M", block_size="2M")
    pid = m.spawn("a")
    a = m.mmap(pid, MB2)
    assert execute(m, "thp never").text == "thp never"
    assert execute(m, f"madvise {pid} {a:#x}+2M hugepage").ok
    assert m.process(pid).vmas[0].flags & engine.constants.VM_HUGEPAGE
    r = execute(m, "hugepages 0 2")
    assert r.ok and r.text == "node 0: HugePages_Total 2 HugePages_Free 2 HugePages_Surp 0\nHugePages_Rsvd 0"
    for bad in ("thp sometimes", f"madvise {pid} {a:#x}+2M huge", "hugepages 0 -3",
                "hugepages 7 1", "overcommit_hugepages -1", "overcommit_hugepages x"):
        r = execute(m, bad)
        assert not r.ok and "\n" not in r.text, (bad, r.text)
    assert m.thp == "never" and m.hugepages(0) == (2, 2)
    assert execute(m, "overcommit_hugepages 5").text == "nr_overcommit_hugepages 5"
    assert execute(m, "overcommit_hugepages").text == "nr_overcommit_hugepages 5"


def test_snapshot_keeps_folios_exactly_and_refuses_a_broken_one(tmp_path):
    """A snapshot keeps the folio bits (frames.spare), the THP setting, the pools and
    the VMAs' MADV_HUGEPAGE; load(check=True) refuses a file whose folio is broken."""
    from conftest import fingerprint

    m = thp_machine()
    m.thp = "madvise"
    m.set_nr_hugepages(1, 2)
    pid = m.spawn("a")
    a = m.mmap(pid, 2 * MB2)
    m.madvise(pid, a, 2 * MB2, MADV_HUGEPAGE)
    m.touch(pid, a, 2 * MB2)
    b = m.mmap(pid, MB2, flags=HUGETLB)
    m.touch(pid, b, MB2)
    p = tmp_path / "f.snap"
    engine.save(m, p)
    m2 = engine.load(p, check=True)
    assert fingerprint(m2) == fingerprint(m)
    assert (m2.thp, m2.large_folios, m2.hugepages(1)) == ("madvise", 4, (2, 1))
    head = int(m.process(pid).find_vma(a).ptes(np.array([0]))[0])
    m.f.spare[head + 3] = 0
    engine.save(m, tmp_path / "broken.snap")
    with pytest.raises((engine.SaveError, engine.InvariantError)) as e:
        engine.load(tmp_path / "broken.snap", check=True)
    assert "tail" in str(e.value)


def test_offline_migrates_thps_as_folios_or_splits_them():
    """Hot-remove (do_migrate_range()): THPs in the zone move as folios while the
    other node has free aligned blocks; once it has none they are split and move as
    small pages (thp_migration_split); the offline plan predicts it exactly."""
    m = small(nodes=2, size="8M", movable="8M", block_size="2M")
    m.thp = "always"
    pid = m.spawn("a", node=1)
    a = m.mmap(pid, 3 * MB2)
    m.touch(pid, a, 3 * MB2, node=1)
    assert m.large_folios == 3
    fragment(m, 0)  # node 0: no wholly free aligned 2 MiB left
    plan = m.offline_plan(1, "Movable")
    m.offline(1, "Movable")
    c = thp_counts(m)
    assert (c["thp_migration_split"], c["thp_migration_success"]) == (3, 0)
    assert plan["moves"] == {0: 3 * HP} and m.large_folios == 0
    m.check()
    m2 = small(nodes=2, size="16M", movable="8M", block_size="2M")
    m2.thp = "always"
    pid = m2.spawn("a", node=1)
    a = m2.mmap(pid, 3 * MB2)
    m2.touch(pid, a, 3 * MB2, node=1)
    m2.offline(1, "Movable")
    c = thp_counts(m2)
    assert (c["thp_migration_success"], c["thp_migration_split"]) == (3, 0)
    assert m2.large_folios == 3
    m2.check()


def test_hugetlb_vma_is_cut_at_huge_page_boundaries_only():
    """hugetlb_vm_op_split(): mbind or madvise of a range that would cut a hugetlb
    VMA inside a huge page is EINVAL and changes nothing; at a boundary it works.
    mlock never cuts one: mlock_fixup() leaves a hugetlb VMA alone (no VM_LOCKED, not
    counted, not split; the host kernel answers the same, test_host_reference.py)."""
    m = small(nodes=2, size="16M", block_size="2M")
    m.set_nr_hugepages(0, 2)
    pid = m.spawn("db")
    a = m.mmap(pid, 2 * MB2, flags=HUGETLB)
    m.touch(pid, a, 2 * MB2)
    for call in (lambda: m.mbind(pid, a, 4096, MPOL_BIND, [1]),
                 lambda: m.madvise(pid, a + 4096, MB2, MADV_HUGEPAGE)):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.EINVAL
    m.mlock(pid, a + 4096, MB2)
    m.munlock(pid, a, 4096)
    assert len(m.process(pid).vmas) == 1
    assert not m.process(pid).vmas[0].flags & engine.constants.VM_LOCKED
    m.mbind(pid, a, MB2, MPOL_BIND, [0])
    assert len(m.process(pid).vmas) == 2
    m.check()


def test_write_to_a_thp_fork_shares_splits_the_pmd_and_copies_one_page():
    """do_huge_pmd_wp_page(): a write to a THP that fork() left mapped by parent and
    child is not a copy of the folio: the writer's PMD is split (thp_split_pmd, once
    for the folio) and one 4 KiB page is copied (wp_page_copy()); the folio stays
    whole, its other 511 pages still shared, and a second write in it splits nothing
    more."""
    m = thp_machine()
    p = m.spawn("p", node=0)
    a = m.mmap(p, MB2)
    m.touch(p, a, MB2)
    c = m.fork(p)
    before = m.read(p, a + 4096)
    m.touch(c, a + 4096, 4096)
    t = thp_counts(m)
    assert t["thp_split_pmd"] == 1 and t["thp_split_page"] == 0
    assert m.read(p, a + 4096) == before and m.read(c, a + 4096) != before
    head = int(m.process(p).find_vma(a).pte_range(0, 1)[0])
    assert MachineView(m).folio_of(head) == (head, 9, True, False)
    assert (m.f.mapcount[head:head + HP] == 2).sum() == HP - 1
    m.touch(c, a + 8192, 4096)
    assert thp_counts(m)["thp_split_pmd"] == 1
    m.check()


def test_write_to_a_hugetlb_page_fork_shares_copies_the_whole_huge_page():
    """hugetlb_wp(): a private MAP_HUGETLB page fork() left mapped by both is copied
    whole into a free page of a pool on a write (copy_user_large_folio()), never into
    a small page; the other side keeps the old one; with the pools empty the write is
    SIGBUS (ENOMEM here) and nothing changes."""
    m, p, a = hugetlb_process(3, 2)
    c = m.fork(p)
    before = [m.read(p, a + i * 4096) for i in range(0, HP, 97)]
    m.touch(c, a + 4096, 4096)
    pp = m.process(p).find_vma(a).pte_range(0, HP)
    pc = m.process(c).find_vma(a).pte_range(0, HP)
    v = MachineView(m)
    assert not np.intersect1d(pp, pc).size
    assert v.folio_of(int(pc[0])) == (int(pc[0]), 9, True, True)
    assert [m.read(p, a + i * 4096) for i in range(0, HP, 97)] == before
    assert [m.read(c, a + i * 4096) for i in range(0, HP, 97) if i != 1] == \
        [b for i, b in zip(range(0, HP, 97), before) if i != 1]
    assert m.read(c, a + 4096) != m.read(p, a + 4096)
    assert "HugePages_Free:     0" in m.meminfo(0)
    m.touch(p, a, 4096)  # the parent's page is its own again: written in place
    assert "HugePages_Free:     0" in m.meminfo(0)
    mapped = m.process(c).find_vma(a).pte_range(HP, HP + 1)
    with pytest.raises(OSError) as e:
        m.touch(c, a + MB2, 4096)
    assert e.value.errno == errno.ENOMEM and "SIGBUS" in str(e.value)
    assert (m.process(c).find_vma(a).pte_range(HP, HP + 1) == mapped).all()
    m.check()


def test_a_hugetlb_page_back_from_its_pool_is_zeroed_at_the_next_fault():
    """hugetlb_no_page() -> clear_huge_page(): a pool page a process wrote and freed
    (munmap: back to its pool) reads zeros in the next mapping that faults it, as a
    fresh page does. Regression (found by a random walk): the new mapping read the last
    user's bytes."""
    m = small(nodes=1, size="16M", block_size="2M")
    m.set_nr_hugepages(0, 1)
    flags = engine.MAP_PRIVATE | engine.MAP_ANONYMOUS | engine.MAP_HUGETLB
    p = m.spawn("p")
    a = m.mmap(p, MB2, flags=flags)
    m.touch(p, a, MB2)
    assert m.read(p, a + 4096) != 0
    m.munmap(p, a, MB2)
    b = m.mmap(p, MB2, flags=flags)
    m.touch(p, b, 4096)  # one page written; the 511 others are only cleared
    assert m.read(p, b + 4096) == 0 and m.read(p, b + MB2 - 4096) == 0
    m.check()


def test_shrinking_a_pool_below_its_pages_in_use_makes_them_surplus():
    """set_max_huge_pages(): nr_hugepages written below the pages in use frees the free
    ones and makes the rest of the excess surplus (adjust_pool_surplus():
    HugePages_Surp; nr_hugepages reads back every huge page, surplus included); growing
    again turns surplus pages persistent first; a surplus page freed by its last
    munmap goes to the buddy allocator (free_huge_folio()), a persistent one to its
    pool."""
    m, p, a = hugetlb_process(4, 3)
    assert huge_counts(m) == (4, 1, 0)
    assert m.set_nr_hugepages(0, 1) == 3 and huge_counts(m) == (3, 0, 2)
    assert m.set_nr_hugepages(0, 2) == 3 and huge_counts(m) == (3, 0, 1)
    free_before = m.meminfo(0)
    m.munmap(p, a, 3 * MB2)
    assert huge_counts(m) == (2, 2, 0)  # one surplus page went back to the buddy allocator
    assert free_before != m.meminfo(0)
    m.check()


def test_overcommit_lets_faults_take_surplus_pages_beyond_the_pools():
    """/proc/sys/vm/nr_overcommit_hugepages: with the pools empty, MAP_HUGETLB is
    ENOMEM (hugetlb_acct_memory()) unless overcommit allows surplus pages; a fault then
    takes a surplus page from the buddy allocator (alloc_surplus_hugetlb_folio()),
    HugePages_Surp counts it, nr_hugepages written above the pages in use makes it
    persistent, and a surplus page freed goes back to the buddy allocator. The
    setting is root's; a negative count is EINVAL; snapshots keep it."""
    m = small(nodes=2, size="32M", block_size="2M")
    flags = engine.MAP_PRIVATE | engine.MAP_ANONYMOUS | engine.MAP_HUGETLB
    p = m.spawn("p", node=0, uid=1000)
    with pytest.raises(OSError) as e:
        m.mmap(p, MB2, flags=flags)
    assert e.value.errno == errno.ENOMEM
    with pytest.raises(OSError) as e:
        m.set_nr_overcommit_hugepages(2, caller=p)
    assert e.value.errno == errno.EPERM
    with pytest.raises(OSError) as e:
        m.set_nr_overcommit_hugepages(-1)
    assert e.value.errno == errno.EINVAL and m.nr_overcommit_hugepages == 0
    m.set_nr_overcommit_hugepages(2)
    free = int(m.meminfo(0).split("MemFree:")[1].split()[0])
    a = m.mmap(p, 2 * MB2, flags=flags)
    with pytest.raises(OSError) as e:
        m.mmap(p, 3 * MB2, flags=flags)
    assert e.value.errno == errno.ENOMEM
    m.touch(p, a, 2 * MB2)
    assert huge_counts(m) == (2, 0, 2) and m.hugepages_surplus(0) == 2
    assert m.set_nr_hugepages(0, 1) == 2 and huge_counts(m) == (2, 0, 1)
    m.check()
    m.munmap(p, a, 2 * MB2)
    assert huge_counts(m) == (1, 1, 0)
    assert int(m.meminfo(0).split("MemFree:")[1].split()[0]) == free - MB2 // 1024
    m.check()


def test_overcommit_is_kept_by_snapshots_and_set_by_descriptions(tmp_path):
    """machine.overcommit_hugepages in a description (file:line errors for a bad
    value); snapshots keep the setting and the surplus marks."""
    m = small(nodes=2, size="32M", block_size="2M", overcommit_hugepages=3)
    assert m.nr_overcommit_hugepages == 3
    p = m.spawn("p", node=0)
    a = m.mmap(p, MB2, flags=engine.MAP_PRIVATE | engine.MAP_ANONYMOUS
               | engine.MAP_HUGETLB)
    m.touch(p, a, MB2)
    engine.save(m, tmp_path / "o.snap")
    back = engine.load(tmp_path / "o.snap", check=True)
    assert back.nr_overcommit_hugepages == 3 and back.hugepages_surplus(0) == 1
    with pytest.raises(engine.DescriptionError, match="overcommit_hugepages"):
        small(nodes=2, size="32M", overcommit_hugepages=-2)


def test_a_hugetlb_mapping_with_no_page_yet_is_not_cut_inside_a_huge_page():
    """hugetlb_vm_op_split(): mbind and madvise over half a huge page of a MAP_HUGETLB
    mapping are EINVAL even before any page is faulted (MAP_NORESERVE with overcommit:
    the mapping needs no pool page yet); mlock there cuts nothing and populates the
    huge page (mlock_fixup() leaves hugetlb VMAs alone). Regression (found by the
    random walk): the VMA was cut at a 4 KiB boundary while the machine had no huge
    page at all."""
    m = small(nodes=2, size="32M", block_size="2M")
    m.set_nr_overcommit_hugepages(1)
    p = m.spawn("p", node=0)
    a = m.mmap(p, MB2, flags=engine.MAP_PRIVATE | engine.MAP_ANONYMOUS
               | engine.MAP_HUGETLB | engine.MAP_NORESERVE)
    assert m.large_folios == 0
    for call in (lambda: m.mbind(p, a, MB2 // 2, MPOL_BIND, [1]),
                 lambda: m.madvise(p, a, MB2 // 2, MADV_HUGEPAGE)):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.EINVAL
    assert [(v.start, v.end) for v in m.process(p).vmas] == [(a, a + MB2)]
    m.mlock(p, a + 4096, 4096)  # populates: a surplus page (overcommit 1)
    assert [(v.start, v.end) for v in m.process(p).vmas] == [(a, a + MB2)]
    assert m.hugepages_surplus(0) == 1 and m.hugepages(0) == (1, 0)
    m.touch(p, a, MB2)
    m.check()


def test_anon_huge_pages_counts_pmd_mapped_thps_only():
    """meminfo's AnonHugePages is NR_ANON_THPS: a THP counts while a PMD maps it. A
    VMA split through a THP (MADV_NOHUGEPAGE on half of it) splits the PMD
    (thp_split_pmd +1) and AnonHugePages drops by 2048 kB while the folio stays whole:
    the numbers Linux 6.18 printed for the same calls on this VM."""
    m = thp_machine()
    pid = m.spawn("a", node=0)
    a = m.mmap(pid, 4 * MB2)
    m.madvise(pid, a, 4 * MB2, MADV_HUGEPAGE)
    m.touch(pid, a, 4 * MB2)

    def anon_huge_kb():
        row = [r for r in m.meminfo(0).splitlines() if "AnonHugePages" in r][0]
        return int(row.split()[-2])

    before, split0 = anon_huge_kb(), m.vmstat()["thp_split_pmd"]
    assert before == 8192
    m.madvise(pid, a, MB2 // 2, MADV_NOHUGEPAGE)
    assert m.vmstat()["thp_split_pmd"] - split0 == 1
    assert anon_huge_kb() == before - 2048
    head = int(m.process(pid).find_vma(a).ptes([0])[0])
    assert MachineView(m).folio_of(head)[:3] == (head, 9, True)  # still one folio
    m.check()
