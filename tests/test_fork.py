"""fork() (issue 14 item 4): kernel/fork.c copy_process() + dup_mmap(), mm/memory.c
copy_page_range() and do_wp_page(), mm/rmap.c anon_vma_fork(); and what makes
MPOL_MF_MOVE_ALL meaningful: a page two processes map copy-on-write is "shared" for
move_pages (-EACCES), mbind and migrate_pages (skipped) unless MOVE_ALL."""

import errno

import numpy as np
import pytest
from conftest import err, fingerprint, small

import engine
from engine import (
    MAP_ANONYMOUS,
    MAP_SHARED,
    MCL_CURRENT,
    MCL_FUTURE,
    MPOL_BIND,
    MPOL_F_ADDR,
    MPOL_INTERLEAVE,
    MPOL_MF_MOVE,
    MPOL_MF_MOVE_ALL,
    MPOL_MF_STRICT,
    PROT_READ,
    PROT_WRITE,
)
from engine.commands import execute
from engine.constants import VM_LOCKED, PG_mlocked, PG_pinned

PS = 4096


def pages(a, n):
    return [a + i * PS for i in range(n)]


def frames(m, pid, a, n):
    v = m.process(pid).find_vma(a)
    return v.ptes((np.arange(n) * PS + a - v.start) // PS)


def setup(n=8, uid=1000, **kw):
    m = small(**kw)
    pid = m.spawn("parent", uid=uid)
    a = m.mmap(pid, n * PS)
    m.touch(pid, a, n * PS)
    return m, pid, a


# ---------------------------------------------------------------- the copy

def test_fork_shares_private_pages_copy_on_write_with_mapcount_2():
    """copy_present_pte(): the child's ptes point at the parent's anonymous pages,
    page_dup_rmap() makes their mapcount 2; numa_maps shows mapmax=2 on both sides."""
    m, pid, a = setup()
    c = m.fork(pid)
    assert list(frames(m, c, a, 8)) == list(frames(m, pid, a, 8))
    f = frames(m, pid, a, 8)
    assert (m.f.mapcount[f] == 2).all() and (m.f.refcount[f] == 2).all()
    assert "mapmax=2" in m.numa_maps(pid) and "mapmax=2" in m.numa_maps(c)
    assert [m.read(c, x) for x in pages(a, 8)] == [m.read(pid, x) for x in pages(a, 8)]
    m.check()


def test_a_write_by_either_side_breaks_the_sharing():
    """do_wp_page() -> wp_page_copy(): the writer gets a copy, the other side keeps the
    page (mapcount back to 1); each side reads what it last wrote (the integrity oracle
    is per process and check() verifies both)."""
    m, pid, a = setup()
    c = m.fork(pid)
    orig = frames(m, pid, a, 8).copy()
    old = [m.read(pid, x) for x in pages(a, 8)]
    m.touch(c, a, 2 * PS)  # the child writes pages 0-1
    m.touch(pid, a + 6 * PS, 2 * PS)  # the parent writes pages 6-7
    fc, fp = frames(m, c, a, 8), frames(m, pid, a, 8)
    assert list(fp[:2]) == list(orig[:2]) and list(fc[:2]) != list(orig[:2])
    assert list(fc[6:]) == list(orig[6:]) and list(fp[6:]) != list(orig[6:])
    assert list(fc[2:6]) == list(fp[2:6]) == list(orig[2:6])
    assert (m.f.mapcount[orig[:2]] == 1).all() and (m.f.mapcount[orig[6:]] == 1).all()
    assert (m.f.mapcount[orig[2:6]] == 2).all()
    assert m.read(pid, a) == old[0] != m.read(c, a)
    assert m.read(c, a + 7 * PS) == old[7] != m.read(pid, a + 7 * PS)
    m.check()


def test_exclusive_page_is_reused_and_moves_to_the_writers_anon_vma():
    """Once the parent copied a page, the original is the child's alone: the child's
    write reuses it and folio_move_anon_rmap() puts it in the child's own anon_vma."""
    m, pid, a = setup(n=1)
    c = m.fork(pid)
    orig = int(frames(m, pid, a, 1)[0])
    m.touch(pid, a, PS)
    m.touch(c, a, PS)
    cv = m.process(c).vmas[0]
    assert int(frames(m, c, a, 1)[0]) == orig
    assert m.f.mapping[orig] == cv.anon.id != m.process(pid).vmas[0].anon.id
    m.check()


def test_child_vma_is_chained_to_the_parents_anon_vma():
    """anon_vma_fork(): the child's VMA has an anon_vma of its own and is linked to the
    parent's (anon_vma_clone()), so an rmap walk of a shared page finds both mappings;
    2.6.18 linked the child's VMA into the parent's anon_vma itself."""
    m, pid, a = setup()
    c = m.fork(pid)
    pv, cv = m.process(pid).vmas[0], m.process(c).vmas[0]
    assert cv.anon is not pv.anon and cv.chain == [pv.anon, cv.anon]
    assert cv in pv.anon.vmas and pv not in cv.anon.vmas
    assert engine.mm.rmap.mappers(m, int(frames(m, pid, a, 1)[0])) == [(pid, a), (c, a)]
    m2, pid2, a2 = setup(era="2.6.18")
    c2 = m2.fork(pid2)
    assert m2.process(c2).vmas[0].anon is m2.process(pid2).vmas[0].anon
    m2.touch(c2, a2, PS)
    m2.check()


def test_check_catches_a_mapping_the_rmap_walk_cannot_find():
    """rmap_walk_anon() reaches a child's COW page only through the anon_vma chain
    (anon_vma_fork()): a child VMA missing from it is a broken reverse map, and check()
    says so."""
    m, pid, a = setup()
    c = m.fork(pid)
    m.process(pid).vmas[0].anon.vmas.remove(m.process(c).vmas[0])
    with pytest.raises(engine.InvariantError):
        m.check()


def test_shared_mappings_stay_shared_and_are_not_copied():
    """vma_needs_copy(): a shared mapping without an anon_vma is not copied (the child
    faults the same shmem pages in); a write on either side is seen by the other."""
    m = small()
    pid = m.spawn("p")
    a = m.mmap(pid, 4 * PS, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    m.touch(pid, a, 4 * PS)
    c = m.fork(pid)
    assert (frames(m, c, a, 4) < 0).all()  # not copied
    assert "N0=" not in m.numa_maps(c)
    m.touch(c, a, PS, write=False)
    assert frames(m, c, a, 1)[0] == frames(m, pid, a, 1)[0]
    m.touch(c, a + PS, PS)
    assert m.read(pid, a + PS) == m.read(c, a + PS)
    m.check()


def test_child_inherits_credentials_cpuset_limits_and_policies():
    """copy_process(): mpol_dup() of the task policy, vma_dup_policy() of each VMA's,
    the cpuset, the rlimits (signal struct), the uid."""
    m = small()
    pid = m.spawn("p", uid=1000, node=1, mems_allowed="1-3")
    m.setrlimit(pid, "memlock", 1 << 20, 4 << 20)
    m.set_mempolicy(pid, MPOL_INTERLEAVE, [1, 2])
    a = m.mmap(pid, 8 * PS)
    m.mbind(pid, a, 8 * PS, MPOL_BIND, [3])
    c = m.fork(pid)
    pc = m.process(c)
    assert (pc.uid, pc.node, pc.mems_allowed) == (1000, 1, frozenset({1, 2, 3}))
    assert m.getrlimit(c, "memlock") == (1 << 20, 4 << 20)
    assert m.get_mempolicy(c) == (MPOL_INTERLEAVE, (1, 2))
    assert m.get_mempolicy(c, a, MPOL_F_ADDR) == (MPOL_BIND, (3,))
    m.touch(c, a, 8 * PS)  # the child's faults follow the inherited VMA policy
    assert set(m.move_pages(c, pages(a, 8))) == {3}


def test_mlock_is_not_inherited():
    """dup_mmap() clears VM_LOCKED|VM_LOCKONFAULT in the child's VMAs; mm_init() starts
    def_flags empty (MCL_FUTURE is not kept); the pages stay mlocked while the parent
    maps them locked, and a page the child copies is not mlocked."""
    m, pid, a = setup(uid=0)
    m.mlockall(pid, MCL_CURRENT | MCL_FUTURE)
    c = m.fork(pid)
    pc = m.process(c)
    assert pc.def_flags == 0 and not any(v.flags & VM_LOCKED for v in pc.vmas)
    b = m.mmap(c, PS)
    assert not pc.find_vma(b).flags & VM_LOCKED
    f = frames(m, pid, a, 1)
    assert m.f.flags[f[0]] & PG_mlocked
    m.touch(c, a, PS)
    assert not m.f.flags[frames(m, c, a, 1)[0]] & PG_mlocked
    m.touch(pid, a + PS, PS)  # the parent copies page 1: the child's original unlocks
    assert not m.f.flags[frames(m, c, a + PS, 1)[0]] & PG_mlocked
    assert m.f.flags[frames(m, pid, a + PS, 1)[0]] & PG_mlocked
    m.check()


def test_pins_are_not_inherited_and_pinned_pages_are_copied_for_the_child():
    """copy_present_page(): a maybe-DMA-pinned anonymous page is copied for the child
    at fork (5.9+), so the pin stays on the parent's page; the child's copy is not
    pinned and the registration stays the parent's."""
    m, pid, a = setup(drivers=[{"name": "rdma0", "kind": "rdma", "node": 0}])
    m.pin(pid, a, 2 * PS)
    before = [m.read(pid, x) for x in pages(a, 8)]
    c = m.fork(pid)
    fp, fc = frames(m, pid, a, 8), frames(m, c, a, 8)
    assert (fp[:2] != fc[:2]).all() and (fp[2:] == fc[2:]).all()
    assert (m.f.flags[fp[:2]] & PG_pinned).all() and not (m.f.flags[fc[:2]] & PG_pinned).any()
    assert (m.f.mapcount[fp[:2]] == 1).all() and (m.f.mapcount[fc[:2]] == 1).all()
    assert [m.read(c, x) for x in pages(a, 8)] == before
    assert [p for p, *_ in m.drivers_map["rdma0"].pins] == [pid]
    m.check()
    m.kill(c)
    m.kill(pid)
    m.check()


def test_fork_acts_on_the_caller_and_not_on_kernel_threads():
    """fork(2) has no pid argument: another caller is EPERM, pid 0 is the caller; a
    kernel thread has no mm to copy (EINVAL here: copy_mm() shares none)."""
    m, pid, a = setup()
    other = m.spawn("o", uid=1000)
    assert err(lambda: m.fork(pid, caller=other)) == errno.EPERM
    assert m.fork(0, caller=pid) > pid
    k = m.spawn("kt", kthread=True)
    assert err(lambda: m.fork(k)) == errno.EINVAL
    assert execute(m, f"fork {pid}").ok


def test_kill_both_sides_frees_everything():
    """exit_mm() of either side drops its mapcount; the page is freed with the last
    mapping and the anon_vmas with their last VMA (unlink_anon_vmas())."""
    m, pid, a = setup()
    free0 = sum(z.free for z in m.zones) + 8
    c = m.fork(pid)
    m.touch(c, a, 3 * PS)
    m.kill(pid)
    m.check()
    m.kill(c)
    m.check()
    assert sum(z.free for z in m.zones) == free0
    assert not [o for o in m.mappings.values() if isinstance(o, engine.mm.state.AnonVMA)]


# ---------------------------------------------------------------- COW-shared and migration

def test_move_pages_on_a_cow_shared_page_is_EACCES_without_MOVE_ALL():
    """move_pages(2) ERRORS per page: -EACCES, the page is mapped by multiple processes
    and can only be moved with MPOL_MF_MOVE_ALL; with it, the rmap walk of the parent's
    anon_vma redirects both mappings."""
    m, pid, a = setup()
    c = m.fork(pid)
    m.touch(c, a, PS)  # page 0 is the child's own now
    st = m.move_pages(c, pages(a, 3), [1, 1, 1], MPOL_MF_MOVE)
    assert list(st) == [1, -errno.EACCES, -errno.EACCES]
    assert err(lambda: m.move_pages(c, pages(a, 3), [1] * 3, MPOL_MF_MOVE_ALL,
                                    caller=c)) == errno.EPERM  # CAP_SYS_NICE
    before = [m.read(pid, x) for x in pages(a, 8)]
    st = m.move_pages(c, pages(a, 3), [2, 2, 2], MPOL_MF_MOVE_ALL)
    assert list(st) == [2, 2, 2]
    assert list(m.move_pages(pid, pages(a, 3))) == [0, 2, 2]  # the parent's moved too
    assert frames(m, pid, a + PS, 1)[0] == frames(m, c, a + PS, 1)[0]
    assert [m.read(pid, x) for x in pages(a, 8)] == before
    m.check()


def test_migrate_pages_skips_cow_shared_pages_without_MOVE_ALL():
    """do_migrate_pages() with MPOL_MF_MOVE (a caller without CAP_SYS_NICE): shared
    pages are skipped and not counted; with CAP_SYS_NICE (MOVE_ALL) they move."""
    m, pid, a = setup()
    c = m.fork(pid)
    m.touch(c, a, 2 * PS)
    assert m.migrate_pages(c, [0], [1], caller=c) == 0
    assert list(m.move_pages(c, pages(a, 4))) == [1, 1, 0, 0]
    assert m.migrate_pages(c, [0], [1]) == 0  # the operator: MOVE_ALL
    assert list(m.move_pages(pid, pages(a, 4))) == [0, 0, 1, 1]
    m.check()


def test_mbind_move_skips_cow_shared_pages_without_counting_them():
    """queue_folios_pte_range() -> migrate_folio_add(): "choosing not to migrate a shared
    folio is not counted as a failure" -- even with MPOL_MF_STRICT mbind returns 0 and
    applies the policy; MOVE_ALL moves them."""
    m, pid, a = setup(uid=0)
    c = m.fork(pid)
    m.touch(c, a, PS)
    m.mbind(c, a, 4 * PS, MPOL_BIND, [2], MPOL_MF_MOVE | MPOL_MF_STRICT)
    assert list(m.move_pages(c, pages(a, 4))) == [2, 0, 0, 0]
    assert m.get_mempolicy(c, a, MPOL_F_ADDR) == (MPOL_BIND, (2,))
    m.mbind(c, a, 4 * PS, MPOL_BIND, [3], MPOL_MF_MOVE_ALL)
    assert list(m.move_pages(c, pages(a, 4))) == [3, 3, 3, 3]
    assert list(m.move_pages(pid, pages(a, 4))) == [0, 3, 3, 3]
    m.check()


def test_offline_moves_cow_shared_pages_for_both_processes():
    """offline_pages() migrates with MIGRATE_SYNC and no MPOL_MF flags: a COW-shared page
    moves and try_to_migrate()/remove_migration_ptes() redirect both mappings."""
    m = small(movable="8M")
    pid = m.spawn("p")
    m.set_mempolicy(pid, MPOL_BIND, [3])
    a = m.mmap(pid, 64 * PS)
    m.touch(pid, a, 64 * PS)
    assert set(m.move_pages(pid, pages(a, 64))) == {3}
    c = m.fork(pid)
    m.touch(c, a, 4 * PS)
    m.offline(3, "Movable")
    assert frames(m, c, a + 10 * PS, 1)[0] == frames(m, pid, a + 10 * PS, 1)[0]
    m.check()


def test_forked_machine_round_trips_through_a_snapshot(tmp_path):
    """A snapshot keeps the anon_vma chains and COW sharing: after a load the first write
    on either side still copies (do_wp_page())."""
    m, pid, a = setup()
    c = m.fork(pid)
    m.touch(c, a, PS)
    engine.save(m, tmp_path / "f")
    m2 = engine.load(tmp_path / "f")
    assert fingerprint(m2) == fingerprint(m)
    assert [len(v.chain) for v in m2.process(c).vmas] == [2]
    m2.touch(c, a + PS, PS)  # still copy-on-write after the load
    m2.touch(pid, a + 2 * PS, PS)
    m2.check()


def test_random_fork_write_migrate_exit_keeps_every_invariant():
    """A fixed-seed walk over fork, writes, reads, munmap, migrations with and without
    MOVE_ALL, mbind and exits; check() (the per-process integrity oracle, mapcounts,
    the rmap of shared frames) after every step."""
    rng = np.random.default_rng(14)
    m = small()
    root = m.spawn("p", uid=0)
    a = m.mmap(root, 32 * PS)
    m.touch(root, a, 16 * PS)
    live = [root]
    for _step in range(150):
        pid = int(rng.choice(live))
        op = rng.integers(0, 9)
        lo = int(rng.integers(0, 28))
        n = int(rng.integers(1, 5))
        try:
            if op == 0 and len(live) < 6:
                live.append(m.fork(pid))
            elif op in (1, 2):
                m.touch(pid, a + lo * PS, n * PS, write=op == 1, node=int(rng.integers(0, 4)))
            elif op == 3:
                m.move_pages(pid, pages(a + lo * PS, n), [int(rng.integers(0, 4))] * n,
                             int(rng.choice([MPOL_MF_MOVE, MPOL_MF_MOVE_ALL])))
            elif op == 4:
                m.migrate_pages(pid, [0, 1, 2, 3], [int(rng.integers(0, 4))],
                                caller=None if rng.integers(0, 2) else pid)
            elif op == 5:
                m.mbind(pid, a + lo * PS, n * PS, MPOL_BIND, [int(rng.integers(0, 4))],
                        MPOL_MF_MOVE_ALL if rng.integers(0, 2) else MPOL_MF_MOVE)
            elif op == 6 and len(live) > 1:
                m.kill(pid)
                live.remove(pid)
            elif op == 7:
                m.munmap(pid, a + lo * PS, n * PS)
            elif op == 8:
                m.mlock(pid, a + lo * PS, n * PS)
        except OSError:
            pass
        m.check()
