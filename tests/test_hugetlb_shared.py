"""hugetlb, issue 18's remaining rules: MAP_SHARED|MAP_HUGETLB mappings are one
unlinked hugetlbfs file (hugetlb_file_setup()) whose huge pages every mapping shares,
fork()'s children included; and reservations are kept (hugetlb_reserve_pages(),
HugePages_Rsvd) and obeyed by faults, pool shrinking, migration and hot-remove as
mm/hugetlb.c does in Linux 6.12. Fixed machines, exact values."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from conftest import err, small

import engine

HP = 512
MB2 = 2 << 20
SHARED = engine.MAP_SHARED | engine.MAP_ANONYMOUS | engine.MAP_HUGETLB
PRIVATE = engine.MAP_PRIVATE | engine.MAP_ANONYMOUS | engine.MAP_HUGETLB


def pools(pool0: int = 3, pool1: int = 2, **kw):
    m = small(nodes=2, size="32M", block_size="2M", **kw)
    m.set_nr_hugepages(0, pool0)
    if pool1:
        m.set_nr_hugepages(1, pool1)
    return m


def frames(m, pid, a, n=HP):
    return m.process(pid).find_vma(a).pte_range(0, n)


def test_map_shared_hugetlb_fork_shares_the_huge_pages_and_writes_go_in_place():
    """A MAP_SHARED|MAP_HUGETLB mapping is a hugetlbfs file: the child of fork() maps
    the same huge pages (no copy-on-write), a write by either is seen by the other,
    and numa_maps shows the file, `huge`, no anon= and mapmax=2 (gather_hugetlb_stats())."""
    m = pools()
    p = m.spawn("p", node=0)
    a = m.mmap(p, 2 * MB2, flags=SHARED)
    m.touch(p, a, MB2)
    c = m.fork(p)
    m.touch(c, a + 8192, 4096)  # the child's write: to the parent's page, in place
    assert m.read(p, a + 8192) == m.read(c, a + 8192) != 0
    assert (frames(m, p, a) == frames(m, c, a)).all()
    assert m.hugepages(0) == (3, 2)  # no copy was taken from the pool
    m.touch(c, a + MB2, 4096)  # the child faults the second page: the parent finds it
    m.touch(p, a + MB2 + 4096, 4096, write=False)
    assert m.numa_maps(p).split()[1:] == [
        "default", r"file=/anon_hugepage\040(deleted)", "huge", "dirty=2", "mapmax=2",
        "N0=2", "kernelpagesize_kB=2048"]
    assert m.hugepages(0) == (3, 1)
    m.check()


def test_shared_hugetlb_pages_return_to_the_pool_when_the_last_mapping_goes():
    """The file's pages stay while any mapping is left (a hugetlbfs file lives on
    while mapped), and go back to their pool with the last one (hugetlbfs_evict_inode())."""
    m = pools()
    p = m.spawn("p", node=0)
    a = m.mmap(p, 2 * MB2, flags=SHARED)
    m.touch(p, a, 2 * MB2)
    c = m.fork(p)
    m.touch(c, a, 4096, write=False)
    m.munmap(p, a, 2 * MB2)
    assert m.hugepages(0) == (3, 1)
    assert m.read(c, a + MB2) != 0  # the parent's write, still there
    m.munmap(c, a, 2 * MB2)
    assert m.hugepages(0) == (3, 3)
    assert not [n for n in m.files if n.startswith("/anon_hugepage")]
    m.check()


def test_move_pages_of_a_shared_huge_page_needs_mpol_mf_move_all():
    """move_pages(2) ERRORS EACCES: a page mapped by several processes moves only with
    MPOL_MF_MOVE_ALL; then the whole huge page goes to a page of the target's pool,
    every mapping follows it and its content is kept."""
    m = pools()
    p = m.spawn("p", node=0)
    a = m.mmap(p, MB2, flags=SHARED)
    m.touch(p, a, MB2)
    c = m.fork(p)
    m.touch(c, a, 4096, write=False)
    data = [m.read(p, a + i * 4096) for i in range(0, HP, 61)]
    assert list(m.move_pages(c, [a], [1])) == [-errno.EACCES]
    assert list(m.move_pages(c, [a + 4096], [1], flags=engine.MPOL_MF_MOVE_ALL)) == [1]
    assert (frames(m, p, a) == frames(m, c, a)).all()
    assert set(m.node_of(frames(m, p, a)).tolist()) == {1}
    assert [m.read(c, a + i * 4096) for i in range(0, HP, 61)] == data
    assert m.hugepages(0) == (3, 3) and m.hugepages(1) == (2, 1)
    m.check()


def test_hugetlb_pages_in_use_are_neither_anon_nor_file_pages():
    """meminfo and vmstat: hugetlb pages in use are in HugePages_*, not in AnonPages,
    FilePages, Mapped or Dirty (no LRU, no NR_ANON_MAPPED/NR_FILE_MAPPED accounting,
    hugetlbfs's noop_dirty_folio())."""
    m = pools()
    p = m.spawn("p", node=0)
    m.touch(p, m.mmap(p, MB2, flags=SHARED), MB2)
    m.touch(p, m.mmap(p, MB2, flags=PRIVATE), MB2)
    rows = {r.split()[2].rstrip(":"): int(r.split()[3]) for r in m.meminfo(0).splitlines()}
    assert rows["AnonPages"] == rows["FilePages"] == rows["Mapped"] == rows["Dirty"] == 0
    assert rows["HugePages_Free"] == 1
    vm = m.vmstat()
    assert vm["nr_anon_pages"] == vm["nr_file_pages"] == 0
    m.check()


def test_mmap_reserves_huge_pages_and_faults_consume_them():
    """hugetlb_reserve_pages(): mmap() reserves the mapping's huge pages
    (HugePages_Rsvd), a fault consumes its page's reservation; mmap(2) ERRORS ENOMEM
    when the free pages not yet reserved are too few; munmap gives back what was not
    faulted (hugetlb_vm_op_close())."""
    m = pools(pool0=3, pool1=0)
    p = m.spawn("p", node=0)
    a = m.mmap(p, 2 * MB2, flags=PRIVATE)
    assert m.hugepages_reserved() == 2 and m.hugepages(0) == (3, 3)
    assert err(lambda: m.mmap(p, 2 * MB2, flags=PRIVATE)) == errno.ENOMEM
    m.touch(p, a, 4096)
    assert m.hugepages_reserved() == 1 and m.hugepages(0) == (3, 2)
    b = m.mmap(p, MB2, flags=SHARED)  # the last unreserved page: the file's now
    assert m.hugepages_reserved() == 2
    m.munmap(p, a, 2 * MB2)
    assert m.hugepages_reserved() == 1
    m.munmap(p, b, MB2)
    assert m.hugepages_reserved() == 0
    m.check()


def test_a_fault_without_a_reservation_cannot_take_a_reserved_page():
    """alloc_hugetlb_folio(): a MAP_NORESERVE mapping (its mmap checks nothing) and a
    fork() child's private mapping (hugetlb_dup_vma_private(): no HPAGE_RESV_OWNER)
    fault only pages no reservation holds; else SIGBUS (ENOMEM here), while the
    reserved mapping still gets its pages."""
    m = pools(pool0=2, pool1=0)
    p = m.spawn("p", node=0)
    a = m.mmap(p, 2 * MB2, flags=PRIVATE)
    c = m.fork(p)
    nr = m.mmap(p, MB2, flags=PRIVATE | engine.MAP_NORESERVE)
    assert m.hugepages_reserved() == 2
    e = err(lambda: m.touch(p, nr, 4096))
    assert e == errno.ENOMEM
    assert err(lambda: m.touch(c, a, 4096)) == errno.ENOMEM
    m.touch(p, a, 2 * MB2)  # the owner's reservations hold
    assert m.hugepages_reserved() == 0 and m.hugepages(0) == (2, 0)
    m.check()


def test_fork_shares_a_shared_files_reservation_without_adding_one():
    """A shared mapping's reservation is its file's (resv_map of the inode): fork()
    maps the same file and reserves nothing more; the child's fault consumes it."""
    m = pools(pool0=2, pool1=0)
    p = m.spawn("p", node=0)
    a = m.mmap(p, 2 * MB2, flags=SHARED)
    c = m.fork(p)
    assert m.hugepages_reserved() == 2
    m.touch(c, a, 4096)
    assert m.hugepages_reserved() == 1
    m.touch(p, a + MB2, 4096)
    assert m.hugepages_reserved() == 0 and m.hugepages(0) == (2, 0)
    m.check()


def test_shrinking_a_pool_keeps_the_pages_reservations_need():
    """set_max_huge_pages(): free pages that reservations need are not freed
    (min_count = resv + in use); the count read back says so."""
    m = pools(pool0=3, pool1=0)
    p = m.spawn("p", node=0)
    m.mmap(p, 2 * MB2, flags=PRIVATE)
    assert m.set_nr_hugepages(0, 0) == 2
    assert m.hugepages(0) == (2, 2) and m.hugepages_reserved() == 2
    m.check()


def test_offline_fails_on_reserved_free_huge_pages_and_the_dry_run_says_so():
    """offline_pages(): dissolve_free_hugetlb_folio() will not dissolve a free huge page
    a reservation needs (free - resv == 0: -EBUSY), so the offline fails with
    "failure to dissolve huge pages"; `offline --dry-run` names the same blocker;
    with the reservation gone the zone goes offline."""
    m = small(nodes=2, size="8M", movable="8M", block_size="2M")
    m.set_nr_hugepages(1, 3)
    assert m.hugepages(1) == (3, 3)
    p = m.spawn("db", node=1)
    a = m.mmap(p, 3 * MB2, flags=PRIVATE)
    plan = m.offline_plan(1, "Movable")
    assert not plan["ok"] and "failure to dissolve huge pages" in plan["text"]
    with pytest.raises(OSError) as e:
        m.offline(1, "Movable")
    assert e.value.errno == errno.EBUSY and "failure to dissolve huge pages" in str(e.value)
    assert m.hugepages(1) == (3, 3) and m.hugepages_reserved() == 3
    m.munmap(p, a, 3 * MB2)
    assert m.offline_plan(1, "Movable")["ok"]
    m.offline(1, "Movable")
    m.check()


def test_snapshots_keep_the_shared_file_and_the_reservations(tmp_path):
    """A save and load keeps the hugetlbfs file of a shared mapping (its pages, its
    reservation) and a private mapping's HPAGE_RESV_OWNER: the reserved count, the
    pages and their content are the same after."""
    m = pools(pool0=4, pool1=0)
    p = m.spawn("p", node=0)
    a = m.mmap(p, 2 * MB2, flags=SHARED)
    b = m.mmap(p, 2 * MB2, flags=PRIVATE)
    m.touch(p, a, 4096)
    c = m.fork(p)
    path = tmp_path / "h.snap"
    engine.save(m, path)
    n = engine.load(path, check=True)
    n.check()
    assert n.hugepages_reserved() == m.hugepages_reserved() == 3
    assert n.read(c, a) == m.read(p, a)
    n.touch(c, a + MB2, 4096)
    n.touch(p, a + MB2, 4096, write=False)
    assert n.read(p, a + MB2) == n.read(c, a + MB2)
    assert n.hugepages_reserved() == 2
    assert err(lambda: n.touch(c, b, 4096)) == errno.ENOMEM  # the child owns none
    n.touch(p, b, 2 * MB2)
    n.check()
    second = [n.process(x).find_vma(a).pte_range(HP, 2 * HP) for x in (p, c)]
    assert np.array_equal(*second) and (second[0] >= 0).all()


def test_migration_takes_no_reserved_pool_page():
    """alloc_hugetlb_folio_nodemask(): migration dequeues a pool page only while
    available_huge_pages() (free - reserved) allows; the target's one free page is
    reserved by a mapping there, so the huge page moves to a temporary page
    (alloc_migrate_hugetlb_folio()) and the reserved page stays free for its owner."""
    m = pools(pool0=1, pool1=1)
    p, q = m.spawn("p", node=0), m.spawn("q", node=1)
    a = m.mmap(p, MB2, flags=PRIVATE)
    m.touch(p, a, MB2)
    m.mmap(q, MB2, flags=PRIVATE)  # reserves node 1's free page
    assert m.hugepages_reserved() == 1
    assert list(m.move_pages(p, [a], [1])) == [1]
    assert m.hugepages(1) == (2, 1)  # the temporary page joins node 1, in use
    assert m.hugepages(0) == (0, 0)  # the old page was freed to the buddy allocator
    assert m.hugepages_reserved() == 1
    m.check()


def test_mmap_gathers_surplus_pages_for_its_reservation_and_munmap_returns_them():
    """hugetlb_acct_memory() -> gather_surplus_pages(): a reservation beyond the free
    pool pages allocates surplus pages into the pools at mmap (HugePages_Surp counts
    them, free), within nr_overcommit_hugepages (beyond it: ENOMEM, nothing changed);
    a fault takes them like any pool page; when the reservation goes
    (return_unused_surplus_pages()) the free surplus pages leave for the buddy
    allocator, and a freed surplus page in use goes there too."""
    m = pools(pool0=1, pool1=0)
    m.set_nr_overcommit_hugepages(2)
    p = m.spawn("p", node=0)
    free0 = m.node_available(0)
    a = m.mmap(p, 3 * MB2, flags=PRIVATE)
    assert m.hugepages(0) == (3, 3) and m.hugepages_surplus(0) == 2
    assert m.hugepages_reserved() == 3
    assert m.node_available(0) == free0 - 2 * HP
    assert err(lambda: m.mmap(p, MB2, flags=PRIVATE)) == errno.ENOMEM
    assert m.hugepages(0) == (3, 3) and m.hugepages_surplus(0) == 2
    m.touch(p, a, MB2)
    m.check()
    m.munmap(p, a, 3 * MB2)  # one page in use, two reserved and free
    assert m.hugepages(0)[0] == 1 and m.hugepages_surplus(0) == 0
    assert m.hugepages_reserved() == 0 and m.node_available(0) == free0
    m.check()


def test_gather_surplus_pages_fails_whole_when_memory_is_short():
    """gather_surplus_pages(): when the buddy allocator cannot give every surplus page
    the reservation needs, mmap fails with ENOMEM and the pages it took go back."""
    m = small(nodes=1, size="16M", block_size="2M")
    m.set_nr_overcommit_hugepages(100)
    p = m.spawn("p", node=0)
    free0 = m.node_available(0)
    assert err(lambda: m.mmap(p, 64 * MB2, flags=PRIVATE)) == errno.ENOMEM
    assert m.hugepages(0) == (0, 0) and m.node_available(0) == free0
    m.check()


def test_a_reserving_hugetlb_vma_never_merges_with_one_that_reserved_nothing():
    """Each MAP_HUGETLB mmap is a hugetlbfs file of its own (its own resv_map): a fork()
    child's copy of a reserved mapping (no HPAGE_RESV_OWNER) and the child's own
    reserved mapping beside it stay two VMAs when a call over both merges VMAs (mlock
    here), so populating the copy takes no page the reservation holds. Regression
    (found by the random walk with check()'s reservation invariant)."""
    m = pools(pool0=2, pool1=0)
    p = m.spawn("p", node=0)
    a = m.mmap(p, MB2, flags=PRIVATE)
    c = m.fork(p)
    b = m.mmap(c, MB2, flags=PRIVATE)
    assert b + MB2 == a and m.hugepages_reserved() == 2
    assert err(lambda: m.mlock(c, b, 2 * MB2)) == errno.ENOMEM  # the copy: no page left
    assert [(v.start, v.resv_owner) for v in m.process(c).vmas] == [(b, True), (a, False)]
    assert m.hugepages_reserved() == 1 and m.hugepages(0) == (2, 1)  # b populated
    m.check()


def test_pool_and_reservation_counts_follow_linux_step_by_step():
    """The sequence below was run on Linux 6.18 (this VM's kernel, one node) and
    printed these HugePages_{Total,Free,Rsvd,Surp}: nr_hugepages 2, overcommit 2;
    mmap 3 pages (one surplus gathered); a fault; a 2-page mmap refused (ENOMEM); munmap
    (the surplus page goes); a 2-page reservation, then nr_hugepages 0 (the reserved
    free pages stay, as surplus); munmap (they go)."""
    m = small(nodes=1, size="64M", block_size="2M")
    m.set_nr_hugepages(0, 2)
    m.set_nr_overcommit_hugepages(2)
    p = m.spawn("p", node=0)

    def counts():
        t, f = m.hugepages(0)
        return t, f, m.hugepages_reserved(), m.hugepages_surplus(0)

    assert counts() == (2, 2, 0, 0)
    a = m.mmap(p, 3 * MB2, flags=PRIVATE)
    assert counts() == (3, 3, 3, 1)
    m.touch(p, a, 4096)
    assert counts() == (3, 2, 2, 1)
    assert err(lambda: m.mmap(p, 2 * MB2, flags=PRIVATE)) == errno.ENOMEM
    assert counts() == (3, 2, 2, 1)
    m.munmap(p, a, 3 * MB2)
    assert counts() == (2, 2, 0, 0)
    c = m.mmap(p, 2 * MB2, flags=PRIVATE)
    m.set_nr_hugepages(0, 0)
    assert counts() == (2, 2, 2, 2)
    m.check()
    m.munmap(p, c, 2 * MB2)
    assert counts() == (0, 0, 0, 0)
    m.check()


def test_shared_noreserve_and_cow_counts_follow_linux_step_by_step():
    """Run on Linux 6.18 (this VM, one node), HugePages_{Total,Free,Rsvd,Surp}: a
    shared 2-page mapping reserves 2; a fork() child's write faults page 0 into the
    file (the parent reads it); munmap frees the pool; with nr_hugepages 1 and
    overcommit 1 a MAP_NORESERVE mapping reserves nothing and its two faults take the
    pool page and a surplus page; a private page's copy-on-write in a child with the
    pool empty is SIGBUS (signal 7 there, ENOMEM here) and changes nothing."""
    m = small(nodes=1, size="64M", block_size="2M")
    m.set_nr_hugepages(0, 2)
    p = m.spawn("p", node=0)

    def counts():
        t, f = m.hugepages(0)
        return t, f, m.hugepages_reserved(), m.hugepages_surplus(0)

    a = m.mmap(p, 2 * MB2, flags=SHARED)
    assert counts() == (2, 2, 2, 0)
    c = m.fork(p)
    m.touch(c, a, 1)
    m.kill(c)
    assert counts() == (2, 1, 1, 0)
    assert m.read(p, a) != 0
    m.munmap(p, a, 2 * MB2)
    assert counts() == (2, 2, 0, 0)
    m.set_nr_hugepages(0, 1)
    m.set_nr_overcommit_hugepages(1)
    b = m.mmap(p, 2 * MB2, flags=PRIVATE | engine.MAP_NORESERVE)
    assert counts() == (1, 1, 0, 0)
    m.touch(p, b, 1)
    m.touch(p, b + MB2, 1)
    assert counts() == (2, 0, 0, 1)
    m.munmap(p, b, 2 * MB2)
    assert counts() == (1, 1, 0, 0)
    m.set_nr_overcommit_hugepages(0)
    d = m.mmap(p, MB2, flags=PRIVATE)
    m.touch(p, d, 1)
    assert counts() == (1, 0, 0, 0)
    c = m.fork(p)
    e = err(lambda: m.touch(c, d, 1))
    assert e == errno.ENOMEM and counts() == (1, 0, 0, 0)
    m.munmap(p, d, MB2)
    m.kill(c)
    assert counts() == (1, 1, 0, 0)
    m.check()


def test_a_shared_files_reservation_outlives_a_partial_munmap_as_on_linux():
    """Run on Linux 6.18: a shared 2-page mapping with one page faulted, its other half
    unmapped, still holds the reservation of the page never faulted (the file's
    resv_map, given back when the file goes), HugePages (2, 1, 1, 0); after the last
    munmap (2, 2, 0, 0)."""
    m = small(nodes=1, size="64M", block_size="2M")
    m.set_nr_hugepages(0, 2)
    p = m.spawn("p", node=0)
    s = m.mmap(p, 2 * MB2, flags=SHARED)
    m.touch(p, s, 1)
    m.munmap(p, s + MB2, MB2)
    assert (*m.hugepages(0), m.hugepages_reserved()) == (2, 1, 1)
    m.munmap(p, s, MB2)
    assert (*m.hugepages(0), m.hugepages_reserved()) == (2, 2, 0)
    m.check()
