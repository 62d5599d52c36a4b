"""Shared policies (issue 14 item 1): shared anonymous memory, tmpfs files (/dev/shm)
keep their policy on the object (mm/shmem.c shmem_set_policy()/shmem_get_policy(),
mm/mempolicy.c mpol_set_shared_policy()/shared_policy_replace()); faults allocate by
it (shmem_alloc_folio() -> shmem_get_pgoff_policy()), every mapping of the object sees
it, get_mempolicy(MPOL_F_ADDR) and numa_maps report it."""

import numpy as np
from conftest import small

import engine
from engine import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_F_ADDR,
    MPOL_INTERLEAVE,
    MPOL_MF_MOVE,
    MPOL_PREFERRED,
    PROT_READ,
    PROT_WRITE,
)
from engine.views import MachineView

PS = 4096
RW = PROT_READ | PROT_WRITE


def pages(a, n):
    return [a + i * PS for i in range(n)]


def test_shared_anonymous_faults_follow_mbind():
    """The conformance case: mbind(BIND, 2) on MAP_SHARED|MAP_ANONYMOUS memory, then a
    fault: the page is on node 2 (it was allocated by the task policy on node 0)."""
    m = small()
    pid = m.spawn("p")
    a = m.mmap(pid, 4 * PS, RW, MAP_SHARED | MAP_ANONYMOUS)
    m.mbind(pid, a, 4 * PS, MPOL_BIND, [2])
    m.touch(pid, a, 4 * PS)
    assert set(m.move_pages(pid, pages(a, 4))) == {2}
    line = m.numa_maps(pid).splitlines()[0]
    assert line.split()[1:3] == ["bind:2", "file=/dev/zero\\040(deleted)"]
    assert line.endswith("N2=4 kernelpagesize_kB=4")
    m.check()


def test_shmem_interleave_uses_the_object_index_with_the_inode_bias():
    """shmem_get_pgoff_policy(): ilx = i_ino + index; node = the (ilx mod w)-th mask node
    (2.6.18's shmem_alloc_page(): the index alone). The task's interleave policy is used
    the same way (not its round-robin cursor)."""
    for era, bias in (("modern", True), ("2.6.18", False)):
        m = small(era=era)
        pid = m.spawn("p")
        a = m.mmap(pid, 16 * PS, RW, MAP_SHARED | MAP_ANONYMOUS)
        b = m.process(pid).vmas[0].backing
        m.mbind(pid, a, 16 * PS, MPOL_INTERLEAVE, [0, 1, 3])
        m.touch(pid, a, 16 * PS)
        ilx = np.arange(16) + (b.id if bias else 0)
        assert list(m.move_pages(pid, pages(a, 16))) == list(np.array([0, 1, 3])[ilx % 3])
        q = m.spawn("q")
        m.set_mempolicy(q, MPOL_INTERLEAVE, [1, 2])
        c = m.mmap(q, 6 * PS, RW, MAP_SHARED | MAP_ANONYMOUS)
        cb = m.process(q).vmas[0].backing
        m.touch(q, c + 3 * PS, 3 * PS)  # pages 3-5 first
        ilx = np.arange(3, 6) + (cb.id if bias else 0)
        assert list(m.move_pages(q, pages(c + 3 * PS, 3))) == list(np.array([1, 2])[ilx % 2])


def test_a_second_process_mapping_the_object_sees_the_policy():
    """A tmpfs file mapped by two processes: the first one's mbind sets the object's
    policy; the second one's VMA has no policy of its own, yet its faults allocate by
    the shared one, get_mempolicy(MPOL_F_ADDR) and numa_maps report it."""
    m = small()
    a_pid, b_pid = m.spawn("a"), m.spawn("b", node=1)
    a = m.mmap(a_pid, 8 * PS, RW, MAP_SHARED, file="/dev/shm/seg")
    b = m.mmap(b_pid, 8 * PS, RW, MAP_SHARED, file="/dev/shm/seg")
    m.mbind(a_pid, a + 4 * PS, 4 * PS, MPOL_BIND, [3])
    assert m.process(b_pid).vmas[0].policy is None
    assert m.get_mempolicy(b_pid, b + 5 * PS, MPOL_F_ADDR) == (MPOL_BIND, (3,))
    assert m.get_mempolicy(b_pid, b, MPOL_F_ADDR) == (MPOL_DEFAULT, ())
    m.touch(b_pid, b, 8 * PS)
    assert list(m.move_pages(b_pid, pages(b, 8))) == [1] * 4 + [3] * 4  # b runs on node 1
    assert m.numa_maps(b_pid).split()[1] == "default"  # the policy at the VMA's start
    m.mbind(a_pid, a, 4 * PS, MPOL_PREFERRED, [2])
    assert m.numa_maps(b_pid).split()[1] == "prefer:2"
    # the console's VMA table says what numa_maps says, not the VMA's own (none)
    assert [r.policy for r in MachineView(m).vmas(b_pid) if r.start == b] == ["prefer:2"]
    m.check()


def test_fork_child_shares_the_object_and_its_policy():
    """dup_mmap() keeps a MAP_SHARED|MAP_ANONYMOUS VMA on the same shmem object, so the
    child's faults and its mbind() use and change the one shared_policy the parent
    sees (shmem_set_policy())."""
    m = small()
    pid = m.spawn("p")
    a = m.mmap(pid, 4 * PS, RW, MAP_SHARED | MAP_ANONYMOUS)
    m.mbind(pid, a, 4 * PS, MPOL_BIND, [1])
    c = m.fork(pid)
    m.touch(c, a, 4 * PS)
    assert set(m.move_pages(c, pages(a, 4))) == {1}
    m.mbind(c, a, 4 * PS, MPOL_BIND, [2], MPOL_MF_MOVE)
    assert m.get_mempolicy(pid, a, MPOL_F_ADDR) == (MPOL_BIND, (2,))
    m.touch(pid, a, 4 * PS, write=False)  # the parent finds the pages where they went
    assert set(m.move_pages(pid, pages(a, 4))) == {2}
    m.check()


def test_mpol_default_removes_the_range_and_splits_the_rest():
    """shared_policy_replace(): the range is cut out of the ranges it overlaps (a range
    around it is split in two); MPOL_DEFAULT inserts nothing."""
    m = small()
    pid = m.spawn("p")
    a = m.mmap(pid, 10 * PS, RW, MAP_SHARED | MAP_ANONYMOUS)
    m.mbind(pid, a, 10 * PS, MPOL_BIND, [2])
    m.mbind(pid, a + 3 * PS, 4 * PS, MPOL_DEFAULT)
    b = m.process(pid).vmas[0].backing
    assert [(s, e) for s, e, _ in b.shared_policy] == [(0, 3), (7, 10)]
    assert [m.get_mempolicy(pid, x, MPOL_F_ADDR)[0] for x in pages(a, 10)] == \
        [MPOL_BIND] * 3 + [MPOL_DEFAULT] * 4 + [MPOL_BIND] * 3


def test_private_mapping_of_a_tmpfs_file_copies_by_the_shared_policy():
    """vma_alloc_folio() -> get_vma_policy() -> shmem_get_policy(): even a private
    mapping's copy-on-write pages take the object's policy."""
    m = small()
    a_pid, b_pid = m.spawn("a"), m.spawn("b")
    a = m.mmap(a_pid, 4 * PS, RW, MAP_SHARED, file="/dev/shm/x")
    m.mbind(a_pid, a, 4 * PS, MPOL_BIND, [3])
    b = m.mmap(b_pid, 4 * PS, RW, MAP_PRIVATE, file="/dev/shm/x")
    m.touch(b_pid, b, 4 * PS)
    assert set(m.move_pages(b_pid, pages(b, 4))) == {3}
    m.check()


def test_regular_file_page_cache_ignores_the_vma_policy():
    """Page cache of a regular file is allocated by the task policy
    (filemap_alloc_folio()); a VMA policy on a MAP_SHARED file mapping does not apply."""
    m = small()
    pid = m.spawn("p")
    a = m.mmap(pid, 4 * PS, RW, MAP_SHARED, file="/data/f")
    m.mbind(pid, a, 4 * PS, MPOL_BIND, [2])
    m.touch(pid, a, 4 * PS)
    assert set(m.move_pages(pid, pages(a, 4))) == {0}


def test_mbind_move_on_shmem_moves_to_the_shared_policy_slots():
    """mbind(MPOL_MF_MOVE) on shmem: alloc_migration_target_by_mpol() places each page by
    the new shared policy's interleave index (i_ino + index, shmem_get_pgoff_policy())."""
    m = small()
    pid = m.spawn("p")
    a = m.mmap(pid, 12 * PS, RW, MAP_SHARED | MAP_ANONYMOUS)
    m.touch(pid, a, 12 * PS)
    b = m.process(pid).vmas[0].backing
    m.mbind(pid, a, 12 * PS, MPOL_INTERLEAVE, [1, 2], MPOL_MF_MOVE)
    want = np.array([1, 2])[(np.arange(12) + b.id) % 2]
    assert list(m.move_pages(pid, pages(a, 12))) == list(want)
    m.check()


def test_shared_policy_survives_a_snapshot(tmp_path):
    """The shared_policy tree of a tmpfs object is state: a snapshot keeps it, and
    get_mempolicy(MPOL_F_ADDR) of a second mapper reads it after the load."""
    m = engine.load("saves/memoryless.toml")
    engine.save(m, tmp_path / "s")
    m2 = engine.load(tmp_path / "s")
    b = m2.files["/dev/shm/ring"]
    assert b.shmem and [(s, e, p.mode, p.nodes) for s, e, p in b.shared_policy] == \
        [(0, 4096, MPOL_INTERLEAVE, (0, 2))]
    v = m2.process(201).vmas[1]
    assert m2.get_mempolicy(201, v.start, MPOL_F_ADDR) == (MPOL_INTERLEAVE, (0, 2))
