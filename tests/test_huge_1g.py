"""1 GiB hugetlb pages (the PUD-order hstate, Linux 6.12) and the temporary pages a
hugetlb migration takes when the target's pool is empty (alloc_migrate_hugetlb_folio()).

Machines here have nodes of 3 GiB (786432 frames each): enough for two wholly free
aligned 1 GiB blocks on a node, small enough to build in milliseconds."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from conftest import fingerprint, small

import engine
from engine.commands import execute
from engine.mm.huge_memory import folio_heads, queue_folios_once
from engine.views import MachineView

G = 1 << 30
MB2 = 2 << 20
KB1G = 1048576
GP = G // 4096  # base pages in a 1 GiB page (order 18)
HUGETLB = engine.MAP_PRIVATE | engine.MAP_ANONYMOUS | engine.MAP_HUGETLB
HUGETLB_1G = HUGETLB | engine.MAP_HUGE_1GB


def big(nodes: int = 2, **kw):
    return small(nodes=nodes, size="3G", block_size="128M", **kw)


def gig_process(pool0: int = 2, pool1: int = 0, pages: int = 1):
    """A machine with 1 GiB pools on nodes 0 and 1 and a process on node 0 whose
    MAP_HUGE_1GB mapping of `pages` pages is written: (m, pid, address)."""
    m = big()
    assert m.set_nr_hugepages(0, pool0, size_kb=KB1G) == pool0
    assert m.set_nr_hugepages(1, pool1, size_kb=KB1G) == pool1
    pid = m.spawn("db", node=0)
    a = m.mmap(pid, pages * G, flags=HUGETLB_1G)
    m.touch(pid, a, pages * G)
    return m, pid, a


def head_of(m, pid: int, addr: int) -> int:
    v = m.process(pid).find_vma(addr)
    return int(v.ptes(np.array([(addr - v.start) >> 12]))[0])


def test_hstates_are_2m_and_1g_with_sysfs_directories_per_size():
    """hugetlb_add_hstate(): the default hstate of PMD order and a gigantic one of
    PUD order (2 * (PAGE_SHIFT - 3) = 18); /sys/devices/system/node/nodeN/hugepages
    has a directory for each (node_hstate_attrs). set_nr_hugepages() keeps meaning
    the 2 MiB pool; size_kb names the other; a size with no hstate has no directory
    (ENOENT)."""
    m = big()
    assert list(m.sysfs_hugepages(0)) == ["hugepages-2048kB", "hugepages-1048576kB"]
    assert m.set_nr_hugepages(0, 2, size_kb=KB1G) == 2
    assert m.hugepages(0, KB1G) == (2, 2) and m.hugepages(0) == (0, 0)
    assert m.sysfs_hugepages(0)["hugepages-1048576kB"] == {
        "nr_hugepages": 2, "free_hugepages": 2, "surplus_hugepages": 0}
    with pytest.raises(OSError) as e:
        m.set_nr_hugepages(0, 1, size_kb=4096)
    assert e.value.errno == errno.ENOENT
    with pytest.raises(OSError) as e:  # more than the node could ever hold: EINVAL
        m.set_nr_hugepages(1, 3, size_kb=KB1G)
    assert e.value.errno == errno.EINVAL and m.hugepages(1, KB1G) == (0, 0)
    # a 1 GiB page is made of a wholly free aligned 1 GiB, as many as there are: node
    # 1 (3 GiB from 3 GiB + 4 MiB) has two; a hog of 1100 MiB takes part of one
    hog = m.spawn("hog", node=1)
    h = m.mmap(hog, 1100 << 20)
    m.madvise(hog, h, 1100 << 20, engine.MADV_NOHUGEPAGE)
    m.touch(hog, h, 1100 << 20, node=1)
    assert m.set_nr_hugepages(1, 2, size_kb=KB1G) == 1
    m.kill(hog)
    assert m.set_nr_hugepages(1, 2, size_kb=KB1G) == 2
    assert m.set_nr_hugepages(1, 0, size_kb=KB1G) == 0
    m.check()


def test_sixteen_k_pages_have_a_64g_gigantic_size():
    """With 16 KiB pages the PMD is 32 MiB and the PUD 64 GiB (order 22): the
    directories say so (a 64 GiB page does not fit these nodes: none is made)."""
    m = small(nodes=1, size="256M", page_size="16K", block_size="128M")
    assert list(m.sysfs_hugepages(0)) == ["hugepages-32768kB", "hugepages-67108864kB"]
    with pytest.raises(OSError) as e:
        m.set_nr_hugepages(0, 1, size_kb=64 << 20)
    assert e.value.errno == errno.EINVAL


def test_map_huge_1gb_rounds_and_aligns_and_bad_sizes_are_einval():
    """mmap(2): MAP_HUGE_1GB with MAP_HUGETLB maps 1 GiB pages, the length rounded up
    to 1 GiB and the address 1 GiB aligned; MAP_HUGE_2MB is the default size; a
    MAP_HUGE_* size with no hstate is EINVAL (ksys_mmap_pgoff(): hstate_sizelog()
    NULL); an empty 1 GiB pool is ENOMEM (hugetlb_acct_memory()), and overcommit
    does not help (gather_surplus_pages(): no surplus gigantic pages)."""
    m = big()
    pid = m.spawn("p", node=0)
    with pytest.raises(OSError) as e:
        m.mmap(pid, 4096, flags=HUGETLB_1G)
    assert e.value.errno == errno.ENOMEM
    m.set_nr_overcommit_hugepages(10)
    with pytest.raises(OSError) as e:
        m.mmap(pid, 4096, flags=HUGETLB_1G)
    assert e.value.errno == errno.ENOMEM
    for log in (16, 25, 31):
        with pytest.raises(OSError) as e:
            m.mmap(pid, G, flags=HUGETLB | (log << 26))
        assert e.value.errno == errno.EINVAL, log
    m.set_nr_hugepages(0, 1, size_kb=KB1G)
    a = m.mmap(pid, 4096, flags=HUGETLB_1G)
    v = m.process(pid).find_vma(a)
    assert a % G == 0 and v.length == G and v.hpage_order == 18
    b = m.mmap(pid, 4096, flags=HUGETLB | engine.MAP_HUGE_2MB)
    vb = m.process(pid).find_vma(b)
    assert vb.length == MB2 and vb.hpage_order == 9
    m.check()


def test_fault_maps_the_whole_page_and_munmap_returns_it_to_the_pool():
    """hugetlb_no_page(): a touch anywhere in the 1 GiB page maps all 262144 frames
    of one pool page (zeroed, dirty); numa_maps counts huge pages and says
    kernelpagesize_kB=1048576; the last unmap gives the page back to its pool
    (free_huge_folio())."""
    m, pid, a = gig_process(pages=1)
    assert m.hugepages(0, KB1G) == (2, 1)
    nm = m.numa_maps(pid)
    assert "huge anon=1 dirty=1 N0=1 kernelpagesize_kB=1048576" in nm
    head = head_of(m, pid, a)
    assert head % GP == 0 and m.read(pid, a + G - 4096) != 0
    assert MachineView(m).folio_of(head + 12345) == (head, 18, False, True)
    lines = dict(MachineView(m).describe_frame(head + 7))
    assert lines["folio"] == "tail of a hugetlb page, order 18 (1048576 kB)"
    m.munmap(pid, a, G)
    assert m.hugepages(0, KB1G) == (2, 2)
    m.check()


def test_a_1g_mapping_is_cut_only_at_1g_boundaries():
    """hugetlb_vm_op_split(): munmap, mbind and madvise may cut a hugetlb VMA only at
    its own huge page size; a 2 MiB boundary inside a 1 GiB page is EINVAL and
    nothing changes; a 1 GiB boundary splits it. (mlock never cuts one.)"""
    m, pid, a = gig_process(pages=2)
    for call in (lambda: m.munmap(pid, a + MB2, MB2),
                 lambda: m.mbind(pid, a, G + MB2, engine.MPOL_BIND, [0]),
                 lambda: m.madvise(pid, a + G - MB2, MB2, engine.MADV_NOHUGEPAGE)):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.EINVAL
    assert len(m.process(pid).vmas) == 1
    m.munmap(pid, a + G, G)
    assert m.hugepages(0, KB1G) == (2, 1) and m.process(pid).vmas[0].hpage_order == 18
    m.check()


def test_folio_heads_rounds_down_to_the_pud_order():
    """folio_heads(): a frame anywhere in a 1 GiB folio has the head 2^18 frames
    aligned; queue_folios_once() queues the folio once, by its head, from an
    ascending scan across its many PMD-sized runs too. Small pages are themselves."""
    m, pid, a = gig_process(pages=1)
    head = head_of(m, pid, a)
    pfns = head + np.array([0, 1, 511, 512, 100000, GP - 1], np.int64)
    assert folio_heads(m, pfns).tolist() == [head] * 6
    run = head + np.arange(0, GP, 997, dtype=np.int64)
    q, t = queue_folios_once(m, run, np.zeros(run.size, np.int64))
    assert q.tolist() == [head] and t.tolist() == [0]
    other = np.array([head + GP + 5], np.int64)  # the next folio: the free pool page
    assert folio_heads(m, other).tolist() == [head + GP]
    small_page = np.array([head - 1], np.int64)  # (the kernel's share, before it)
    assert folio_heads(m, small_page).tolist() == small_page.tolist()


def test_fork_then_write_copies_the_whole_1g_page():
    """hugetlb_wp(): after fork() the 1 GiB page is shared (mapcount 2); a write by
    the child copies the whole page into a pool page of its own, the parent keeps
    the old one and its bytes."""
    m, pid, a = gig_process(pool0=2, pages=1)
    before = m.read(pid, a + 4096 * 7)
    child = m.fork(pid)
    m.touch(child, a + 4096, 4096)
    assert m.hugepages(0, KB1G) == (2, 0)
    assert head_of(m, child, a) != head_of(m, pid, a)
    assert m.read(pid, a + 4096 * 7) == before
    assert m.read(child, a + 4096 * 7) == before  # (copy_user_large_folio())
    m.kill(child)
    assert m.hugepages(0, KB1G) == (2, 1)
    m.check()


def test_move_pages_moves_the_whole_1g_folio_from_the_targets_pool():
    """move_pages(2) on any address of a 1 GiB page moves the whole folio into a free
    page of the target's 1 GiB pool, its bytes kept, the old page back in its pool;
    with none free there -ENOMEM, even with a free aligned 1 GiB in the buddy
    allocator (alloc_migrate_hugetlb_folio(): hstate_is_gigantic() returns NULL)."""
    m, pid, a = gig_process(pool0=1, pool1=0, pages=1)
    head = head_of(m, pid, a)
    content = m.f.content[head:head + GP].copy()
    with pytest.raises(OSError) as e:
        m.move_pages(pid, [a + 12345 * 4096], [1])
    assert e.value.errno == errno.ENOMEM
    assert head_of(m, pid, a) == head
    m.set_nr_hugepages(1, 1, size_kb=KB1G)
    assert list(m.move_pages(pid, [a + 12345 * 4096], [1])) == [1]
    new = head_of(m, pid, a)
    assert m.node_of(np.array([new]))[0] == 1
    assert (m.f.content[new:new + GP] == content).all()
    assert m.hugepages(0, KB1G) == (1, 1) and m.hugepages(1, KB1G) == (1, 0)
    assert list(m.move_pages(pid, [a, a + G - 4096])) == [1, 1]
    assert m.vmstat()["pgmigrate_success"] == GP
    m.check()


def test_hot_remove_dissolves_free_1g_pages_and_migrates_used_ones():
    """offline_pages(): free 1 GiB pool pages of the range are dissolved
    (dissolve_free_hugetlb_folios()); one in use moves to another node's 1 GiB pool,
    and with none there it is a named blocker (EBUSY; no temporary gigantic page)."""
    m = small(nodes=2, size="1G", movable="3G", block_size="2M")
    assert m.set_nr_hugepages(1, 2, size_kb=KB1G) == 2
    pid = m.spawn("db", node=1)
    a = m.mmap(pid, G, flags=HUGETLB_1G)
    m.touch(pid, a, G, node=1)
    with pytest.raises(OSError) as e:
        m.offline(1, "Movable")
    assert e.value.errno == errno.EBUSY and "1048576 kB in use" in str(e.value)
    assert m.hugepages(1, KB1G) == (2, 1)
    with pytest.raises(OSError) as e:  # (node 0: less than 1 GiB of its own)
        m.set_nr_hugepages(0, 1, size_kb=KB1G)
    assert e.value.errno == errno.EINVAL
    m2 = small(nodes=2, size="3G", movable="3G", block_size="2M")
    assert m2.set_nr_hugepages(1, 2, size_kb=KB1G) == 2
    assert m2.set_nr_hugepages(0, 1, size_kb=KB1G) == 1
    pid = m2.spawn("db", node=1)
    a = m2.mmap(pid, G, flags=HUGETLB_1G)
    m2.touch(pid, a, G, node=1)
    head = head_of(m2, pid, a)
    content = m2.f.content[head:head + GP].copy()
    plan = m2.offline_plan(1, "Movable")
    m2.offline(1, "Movable")
    assert plan["moves"] == {0: GP}
    new = head_of(m2, pid, a)
    assert (m2.f.content[new:new + GP] == content).all()
    assert m2.hugepages(0, KB1G) == (1, 0) and m2.hugepages(1, KB1G) == (0, 0)
    m2.check()


def test_snapshot_keeps_1g_folios_and_the_vmas_page_size(tmp_path):
    """A snapshot keeps the 1 GiB folios exactly (the spare bits of 262144 frames) and
    each hugetlb VMA's page size; a VMA with a page size no hstate has is refused."""
    m, pid, a = gig_process(pool0=2, pages=1)
    p = tmp_path / "g.snap"
    engine.save(m, p)
    m2 = engine.load(p, check=True)
    assert fingerprint(m2) == fingerprint(m)
    assert m2.process(pid).find_vma(a).hpage_order == 18
    assert m2.hugepages(0, KB1G) == (2, 1) and m2.large_folios == 2
    m2.munmap(pid, a, G)
    m2.check()
    m.process(pid).find_vma(a).hpage_order = 12
    engine.save(m, tmp_path / "bad.snap")
    with pytest.raises(engine.SaveError) as e:
        engine.load(tmp_path / "bad.snap")
    assert "huge page order" in str(e.value)


def test_description_key_hugepages_1g(tmp_path):
    """[machine] hugepages_1g = { NODE = N }: each node's 1 GiB pool, bounded before
    anything is allocated; a bad count is a one-line error naming the key."""
    base = ('[machine]\nblock_size = "128M"\n{extra}\n[[nodes]]\nid = 0\ncpus = "0"\n'
            'zones = {{ Normal = "3G" }}\n')
    f = tmp_path / "m.toml"
    f.write_text(base.format(extra="hugepages_1g = { 0 = 2 }\nhugepages = { 0 = 3 }") +
                 '[[processes]]\nname = "db"\npid = 500\nnode = 0\n'
                 '[[processes.vmas]]\nsize = "1G"\nhuge = "hugetlb-1g"\n')
    m = engine.load(f)
    assert m.hugepages(0, KB1G) == (2, 1) and m.hugepages(0) == (3, 3)
    assert m.process(500).vmas[-1].hpage_order == 18
    m.check()
    for extra, msg in (("hugepages_1g = { 0 = 3 }", "0..2 huge pages of 1024 MiB"),
                       ("hugepages_1g = { 0 = 99999999999 }", "machine.hugepages_1g.0"),
                       ("hugepages_1g = { 0 = -1 }", "machine.hugepages_1g.0"),
                       ("hugepages_1g = { 7 = 1 }", "machine.hugepages_1g.7")):
        f.write_text(base.format(extra=extra))
        with pytest.raises(engine.SaveError) as e:
            engine.load(f)
        assert msg in str(e.value) and "\n" not in str(e.value), extra


def test_commands_hugepages_size_and_mmap_huge_1g():
    """`hugepages NODE N 1G` sets the 1 GiB pool (shown under its own label);
    `mmap PID SIZE --huge-1g` is MAP_HUGETLB|MAP_HUGE_1GB; errors are one line."""
    m = big()
    r = execute(m, "hugepages 0 1 1G")
    assert r.ok and r.text.splitlines() == [
        "node 0: HugePages_Total 0 HugePages_Free 0 HugePages_Surp 0",
        "node 0 1G: HugePages_Total 1 HugePages_Free 1 HugePages_Surp 0",
        "HugePages_Rsvd 0", "1G HugePages_Rsvd 0"]
    pid = m.spawn("p", node=0)
    r = execute(m, f"mmap {pid} 4K --huge-1g")
    assert r.ok and r.value % G == 0
    assert execute(m, "hugepages").text.splitlines()[-1] == "1G HugePages_Rsvd 1"
    assert m.process(pid).find_vma(r.value).length == G
    assert execute(m, f"touch {pid} {r.value:#x}+4K").ok
    r = execute(m, f"mmap {pid} 4K --huge-1g")
    assert not r.ok and "ENOMEM" in r.text and "\n" not in r.text
    r = execute(m, "hugepages 0 1 3M")
    assert not r.ok and "ENOENT" in r.text and "\n" not in r.text


# ----------------------------------------------------------------- temporary pages

def test_migration_to_an_empty_pool_takes_a_temporary_page():
    """alloc_hugetlb_folio_nodemask(): with no free page in the target's pool, a
    2 MiB hugetlb folio gets a temporary page from the target's buddy allocator
    (alloc_migrate_hugetlb_folio(): no overcommit limit, not counted surplus);
    move_hugetlb_state() makes the new page the final one and the old one temporary,
    freed to the buddy allocator: the source node's pool shrinks by one, the target's
    grows by one page in use, HugePages_Surp unchanged on both. The rehearsal (the
    offline plan, a dry run) plans it by the same rule."""
    m = small(nodes=2, size="32M", block_size="2M")
    m.set_nr_hugepages(0, 2)
    pid = m.spawn("db", node=0)
    a = m.mmap(pid, 2 * MB2, flags=HUGETLB)
    m.touch(pid, a, 2 * MB2)
    assert m.nr_overcommit_hugepages == 0
    free1 = m.node_available(1)
    assert list(m.move_pages(pid, [a], [1])) == [1]
    assert [m.hugepages(n) + (m.hugepages_surplus(n),) for n in (0, 1)] == \
        [(1, 0, 0), (1, 0, 0)]
    assert m.node_available(1) == free1 - 512
    m.check()
    # back to node 0: its old page went to the buddy allocator, node 0's pool has no
    # free page, so another temporary page; node 1's page is freed the same way
    assert list(m.move_pages(pid, [a], [0])) == [0]
    assert m.hugepages(0) == (2, 0) and m.hugepages(1) == (0, 0)
    m.munmap(pid, a, 2 * MB2)
    assert m.hugepages(0) == (2, 2)
    m.check()


def test_a_surplus_page_keeps_its_surplus_state_on_its_new_node():
    """move_hugetlb_state(): a surplus page (a fault beyond the pools with overcommit)
    migrated into a temporary page: the surplus count goes with it to the new node
    (surplus_huge_pages_node[old]--, [new]++); when it is unmapped it goes to the
    buddy allocator and every count is 0 again."""
    m = small(nodes=2, size="32M", block_size="2M")
    m.set_nr_overcommit_hugepages(1)
    pid = m.spawn("db", node=0)
    a = m.mmap(pid, MB2, flags=HUGETLB)
    m.touch(pid, a, MB2)
    assert (m.hugepages(0), m.hugepages_surplus(0)) == ((1, 0), 1)
    assert list(m.move_pages(pid, [a], [1])) == [1]
    assert [(m.hugepages(n), m.hugepages_surplus(n)) for n in (0, 1)] == \
        [((0, 0), 0), ((1, 0), 1)]
    m.munmap(pid, a, MB2)
    assert [(m.hugepages(n), m.hugepages_surplus(n)) for n in (0, 1)] == \
        [((0, 0), 0), ((0, 0), 0)]
    m.check()


def test_temporary_pages_need_a_free_aligned_block_and_offline_plans_them():
    """No free page in the pool and no wholly free aligned 2 MiB on the target
    (__GFP_THISNODE for move_pages): -ENOMEM. Hot-remove (MR_MEMORY_HOTPLUG may fall
    back to other nodes) moves a hugetlb page in use into a temporary page of another
    node; its plan says so before (bill == actual)."""
    m = small(nodes=2, size="16M", movable="8M", block_size="2M")
    m.set_nr_hugepages(1, 2)
    pid = m.spawn("db", node=1)
    a = m.mmap(pid, MB2, flags=HUGETLB)
    m.touch(pid, a, MB2, node=1)
    plan = m.offline_plan(1, "Movable")
    snap = fingerprint(m)
    assert fingerprint(m) == snap  # (the plan changed nothing)
    m.offline(1, "Movable")
    assert plan["moves"] == {0: 512}
    assert m.hugepages(0) == (1, 0) and m.hugepages(1) == (0, 0)
    m.check()
    # a node with no free aligned block left: -ENOMEM
    from test_huge_pages import fragment
    m = small(nodes=2, size="16M", block_size="2M")
    m.set_nr_hugepages(0, 1)
    pid = m.spawn("db", node=0)
    a = m.mmap(pid, MB2, flags=HUGETLB)
    m.touch(pid, a, MB2)
    fragment(m, 1)
    with pytest.raises(OSError) as e:
        m.move_pages(pid, [a], [1])
    assert e.value.errno == errno.ENOMEM
    assert m.hugepages(0) == (1, 0)
    m.check()
