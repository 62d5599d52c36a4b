"""Memory policies, mbind, set/get_mempolicy and migrate_pages(2)
(kernel-semantics.md sections 2, 3, 8.4)."""

import errno

import numpy as np
import pytest
from conftest import nodes_of, pages_of, ptes, small

import engine
from engine import (
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_F_ADDR,
    MPOL_F_MEMS_ALLOWED,
    MPOL_F_NODE,
    MPOL_F_RELATIVE_NODES,
    MPOL_F_STATIC_NODES,
    MPOL_INTERLEAVE,
    MPOL_LOCAL,
    MPOL_MF_MOVE,
    MPOL_MF_MOVE_ALL,
    MPOL_MF_STRICT,
    MPOL_PREFERRED,
    MPOL_PREFERRED_MANY,
    MPOL_WEIGHTED_INTERLEAVE,
)
from engine.constants import PG_mlocked
from engine.mm.mempolicy import migrate_pages_pairs


def err(fn):
    with pytest.raises(OSError) as e:
        fn()
    return e.value.errno


# ---- placement at fault time

def test_interleave_places_every_page_by_the_formula(m):
    """node = the (ilx mod w)-th mask node, ilx = addr >> PAGE_SHIFT for anonymous VMAs."""
    pid = m.spawn("a")
    m.set_mempolicy(pid, MPOL_INTERLEAVE, "1-3")
    n = 97
    a = m.mmap(pid, n * m.page_size)
    m.touch(pid, a, n * m.page_size)
    want = [[1, 2, 3][((a >> 12) + i) % 3] for i in range(n)]
    assert nodes_of(m, pid, a, n) == want
    assert m.node_numastat(1)["interleave_hit"] > 0


def test_weighted_interleave_formula():
    m = small(nodes=3)
    m.il_weights.update({0: 3, 1: 1, 2: 2})
    pid = m.spawn("a")
    m.set_mempolicy(pid, MPOL_WEIGHTED_INTERLEAVE, "0-2")
    n = 60
    a = m.mmap(pid, n * m.page_size)
    m.touch(pid, a, n * m.page_size)
    seq = [0, 0, 0, 1, 2, 2]
    want = [seq[((a >> 12) + i) % 6] for i in range(n)]
    assert nodes_of(m, pid, a, n) == want


def test_bind_prefers_the_nearest_mask_node_to_the_cpu(m):
    pid = m.spawn("a", node=3)
    m.set_mempolicy(pid, MPOL_BIND, "0,2")
    a = m.mmap(pid, m.page_size)
    m.touch(pid, a, m.page_size)
    assert nodes_of(m, pid, a, 1) == [2]  # distance(3,2)=20 < distance(3,0)=30


def test_bind_lowest_node_first_before_2_6_26(m):
    m.era = "2.6.18"
    pid = m.spawn("a", node=3)
    m.set_mempolicy(pid, MPOL_BIND, "0,2")
    a = m.mmap(pid, m.page_size)
    m.touch(pid, a, m.page_size)
    assert nodes_of(m, pid, a, 1) == [0]


def test_preferred_and_local(m):
    pid = m.spawn("a", node=1)
    a = m.mmap(pid, 2 * m.page_size)
    m.touch(pid, a, m.page_size)
    m.mbind(pid, a + m.page_size, m.page_size, MPOL_PREFERRED, [3])
    m.touch(pid, a + m.page_size, m.page_size)
    assert nodes_of(m, pid, a, 2) == [1, 3]


def test_fallback_by_distance_when_node_below_watermark():
    m = small(nodes=3, size="16M")
    pid = m.spawn("a", node=0)
    n = m.node_available(0, "low") + 10
    a = m.mmap(pid, n * m.page_size)
    m.touch(pid, a, n * m.page_size)
    st = nodes_of(m, pid, a, n)
    assert st.count(1) == 10 and 2 not in st  # node 1 is nearer than node 2
    s0 = m.node_numastat(0)
    s1 = m.node_numastat(1)
    assert s1["numa_miss"] == 10 and s0["numa_foreign"] == 10
    assert s1["other_node"] == 10
    m.check()


def test_numastat_hit_local_and_other_node(m):
    pid = m.spawn("a", node=0)
    a = m.mmap(pid, 4 * m.page_size)
    before = m.node_numastat(2)
    m.touch(pid, a, 4 * m.page_size, node=2)  # CPU on node 2 faults locally
    s = m.node_numastat(2)
    assert s["numa_hit"] - before["numa_hit"] == 4
    assert s["local_node"] - before["local_node"] == 4
    m.set_mempolicy(pid, MPOL_PREFERRED, [3])
    b = m.mmap(pid, 2 * m.page_size)
    o3 = m.node_numastat(3)["other_node"]
    m.touch(pid, b, 2 * m.page_size, node=0)
    assert m.node_numastat(3)["other_node"] - o3 == 2


def test_cpuset_limits_fallback(m):
    pid = m.spawn("a", node=0, mems_allowed="2")
    a = m.mmap(pid, m.page_size)
    m.touch(pid, a, m.page_size)
    assert nodes_of(m, pid, a, 1) == [2]


# ---- set_mempolicy / mode validation (section 3.1)

@pytest.mark.parametrize("mode,mask", [
    (7, [0]), (-1, [0]), (MPOL_DEFAULT, [0]), (MPOL_LOCAL, [1]), (MPOL_BIND, []),
    (MPOL_INTERLEAVE, []), (MPOL_PREFERRED_MANY, []),
    (MPOL_BIND | MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES, [0]),
    (MPOL_PREFERRED | MPOL_F_STATIC_NODES, []), (MPOL_INTERLEAVE | (1 << 13), [0]),
    (MPOL_BIND, [64]),
])
def test_set_mempolicy_EINVAL_cases(m, mode, mask):
    pid = m.spawn("a")
    assert err(lambda: m.set_mempolicy(pid, mode, mask)) == errno.EINVAL


def test_set_mempolicy_EINVAL_mask_outside_cpuset(m):
    pid = m.spawn("a", mems_allowed="0-1")
    assert err(lambda: m.set_mempolicy(pid, MPOL_BIND, [3])) == errno.EINVAL


def test_preferred_keeps_only_the_first_node_and_empty_means_local(m):
    pid = m.spawn("a")
    m.set_mempolicy(pid, MPOL_PREFERRED, "2-3")
    assert m.get_mempolicy(pid) == (MPOL_PREFERRED, (2,))
    m.set_mempolicy(pid, MPOL_PREFERRED, [])
    assert m.get_mempolicy(pid) == (MPOL_LOCAL, ())


def test_empty_preferred_reported_as_preferred_before_5_14(m):
    m.era = "2.6.18"
    pid = m.spawn("a")
    m.set_mempolicy(pid, MPOL_PREFERRED, [])
    assert m.get_mempolicy(pid) == (MPOL_PREFERRED, ())


def test_policy_modes_of_2006_exclude_later_modes(m):
    m.era = "2006"
    pid = m.spawn("a")
    for mode in (MPOL_LOCAL, MPOL_PREFERRED_MANY, MPOL_WEIGHTED_INTERLEAVE):
        assert err(lambda mode=mode: m.set_mempolicy(pid, mode, [0])) == errno.EINVAL


def test_relative_nodes_fold_onto_cpuset(m):
    pid = m.spawn("a", mems_allowed="2-3")
    m.set_mempolicy(pid, MPOL_INTERLEAVE | MPOL_F_RELATIVE_NODES, [0, 1, 2])
    p = m.process(pid)
    assert p.policy.nodes == (2, 3)
    assert m.get_mempolicy(pid) == (MPOL_INTERLEAVE | MPOL_F_RELATIVE_NODES, (0, 1, 2))


# ---- get_mempolicy (section 3.4)

def test_get_mempolicy_flag_errors(m):
    pid = m.spawn("a")
    assert err(lambda: m.get_mempolicy(pid, flags=1 << 3)) == errno.EINVAL
    assert err(lambda: m.get_mempolicy(pid, flags=MPOL_F_MEMS_ALLOWED | MPOL_F_NODE)) == \
        errno.EINVAL
    assert err(lambda: m.get_mempolicy(pid, 0x5000, 0)) == errno.EINVAL
    assert err(lambda: m.get_mempolicy(pid, 0x5000, MPOL_F_ADDR)) == errno.EFAULT
    assert err(lambda: m.get_mempolicy(pid, flags=MPOL_F_NODE)) == errno.EINVAL


def test_get_mempolicy_mems_allowed(m):
    pid = m.spawn("a", mems_allowed="1-2")
    assert m.get_mempolicy(pid, flags=MPOL_F_MEMS_ALLOWED) == (0, (1, 2))


def test_get_mempolicy_addr_returns_vma_policy_without_fallback(m):
    pid = m.spawn("a")
    m.set_mempolicy(pid, MPOL_INTERLEAVE, "0-1")
    a = m.mmap(pid, 2 * m.page_size)
    assert m.get_mempolicy(pid, a, MPOL_F_ADDR) == (MPOL_DEFAULT, ())
    m.mbind(pid, a, m.page_size, MPOL_BIND, [2])
    assert m.get_mempolicy(pid, a, MPOL_F_ADDR) == (MPOL_BIND, (2,))


def test_get_mempolicy_node_addr_untouched_gives_zero_page_node(m):
    pid = m.spawn("a", node=3)
    a = m.mmap(pid, m.page_size)
    zero_node = int(m.node_of([m.zero_pfn])[0])
    assert m.get_mempolicy(pid, a, MPOL_F_NODE | MPOL_F_ADDR) == zero_node
    m.touch(pid, a, m.page_size)
    assert m.get_mempolicy(pid, a, MPOL_F_NODE | MPOL_F_ADDR) == 3


def test_get_mempolicy_node_gives_next_interleave_node(m):
    pid = m.spawn("a")
    m.set_mempolicy(pid, MPOL_INTERLEAVE, "1-2")
    assert m.get_mempolicy(pid, flags=MPOL_F_NODE) in (1, 2)


# ---- mbind (section 3.3)

def test_mbind_EINVAL_bad_flags_and_EPERM_move_all(m):
    pid = m.spawn("a", uid=1000)
    a = m.mmap(pid, m.page_size)
    assert err(lambda: m.mbind(pid, a, m.page_size, MPOL_BIND, [0], 1 << 3)) == errno.EINVAL
    assert err(lambda: m.mbind(pid, a, m.page_size, MPOL_BIND, [0], MPOL_MF_MOVE_ALL,
                               caller=pid)) == errno.EPERM


def test_mbind_EINVAL_unaligned_address(m):
    pid = m.spawn("a")
    a = m.mmap(pid, m.page_size)
    assert err(lambda: m.mbind(pid, a + 1, m.page_size, MPOL_BIND, [0])) == errno.EINVAL


def test_mbind_len_zero_returns_before_mode_mask_checks(m):
    pid = m.spawn("a")
    a = m.mmap(pid, m.page_size)
    m.mbind(pid, a, 0, MPOL_DEFAULT, [1])  # DEFAULT with a mask, but len 0: success
    assert err(lambda: m.mbind(pid, a, m.page_size, MPOL_DEFAULT, [1])) == errno.EINVAL


def test_mbind_EFAULT_on_holes(m):
    pid = m.spawn("a")
    a = m.mmap(pid, 4 * m.page_size)
    m.munmap(pid, a + m.page_size, m.page_size)
    assert err(lambda: m.mbind(pid, a, 4 * m.page_size, MPOL_BIND, [1])) == errno.EFAULT
    m.mbind(pid, a, 4 * m.page_size, MPOL_DEFAULT)  # DEFAULT allows holes


def test_mbind_strict_misplaced_page_EIO_and_policy_not_applied(m):
    pid = m.spawn("a")
    a = m.mmap(pid, 2 * m.page_size)
    m.touch(pid, a, 2 * m.page_size, node=0)
    assert err(lambda: m.mbind(pid, a, 2 * m.page_size, MPOL_BIND, [1],
                               MPOL_MF_STRICT)) == errno.EIO
    assert m.get_mempolicy(pid, a, MPOL_F_ADDR) == (MPOL_DEFAULT, ())


def test_mbind_move_moves_only_misplaced_pages(m):
    pid = m.spawn("a")
    n = 8
    a = m.mmap(pid, n * m.page_size)
    m.touch(pid, a, 4 * m.page_size, node=1)
    m.touch(pid, a + 4 * m.page_size, 4 * m.page_size, node=2)
    before = [m.read(pid, x) for x in pages_of(m, a, n)]
    m.mbind(pid, a, n * m.page_size, MPOL_INTERLEAVE, [1, 3], MPOL_MF_MOVE)
    st = nodes_of(m, pid, a, n)
    assert st[:4] == [1] * 4  # inside the mask: never touched
    assert st[4:] == [[1, 3][((a >> 12) + i) % 2] for i in range(4, 8)]
    assert [m.read(pid, x) for x in pages_of(m, a, n)] == before
    m.check()


def test_mbind_interleave_move_places_every_page_exactly(m):
    """The thread's point 3: MPOL_INTERLEAVE|MPOL_MF_MOVE follows the interleave pattern."""
    pid = m.spawn("a")
    n = 100
    a = m.mmap(pid, n * m.page_size)
    m.touch(pid, a, n * m.page_size, node=0)
    m.mbind(pid, a, n * m.page_size, MPOL_INTERLEAVE, "1-3", MPOL_MF_MOVE)
    assert nodes_of(m, pid, a, n) == [[1, 2, 3][((a >> 12) + i) % 3] for i in range(n)]


def test_mbind_splits_and_merges_vmas(m):
    pid = m.spawn("a")
    a = m.mmap(pid, 8 * m.page_size)
    m.mbind(pid, a + 2 * m.page_size, 2 * m.page_size, MPOL_BIND, [1])
    assert len(m.process(pid).vmas) == 3
    m.mbind(pid, a + 2 * m.page_size, 2 * m.page_size, MPOL_DEFAULT)
    assert len(m.process(pid).vmas) == 1
    m.check()


def test_mbind_shared_pages_skipped_under_move_moved_under_move_all(m):
    p1, p2 = m.spawn("a"), m.spawn("b")
    x = m.mmap(p1, m.page_size, flags=engine.MAP_SHARED, file="f")
    y = m.mmap(p2, m.page_size, flags=engine.MAP_SHARED, file="f")
    m.touch(p1, x, m.page_size, node=0)
    m.touch(p2, y, m.page_size, write=False)
    m.mbind(p1, x, m.page_size, MPOL_BIND, [2], MPOL_MF_MOVE | MPOL_MF_STRICT)  # no EIO
    assert nodes_of(m, p1, x, 1) == [0]
    m.mbind(p1, x, m.page_size, MPOL_BIND, [2], MPOL_MF_MOVE_ALL)
    assert nodes_of(m, p2, y, 1) == [2]
    m.check()


def test_mbind_strict_move_with_pinned_page_is_EIO():
    m = small(drivers=[{"name": "rdma0", "kind": "rdma", "node": 0}])
    pid = m.spawn("a")
    a = m.mmap(pid, 2 * m.page_size)
    m.touch(pid, a, 2 * m.page_size, node=0)
    m.pin(pid, a, m.page_size)
    assert err(lambda: m.mbind(pid, a, 2 * m.page_size, MPOL_BIND, [1],
                               MPOL_MF_MOVE | MPOL_MF_STRICT)) == errno.EIO
    assert nodes_of(m, pid, a, 2) == [0, 1]  # the unpinned page moved anyway
    m.check()


def test_mbind_without_strict_returns_0_when_pages_cannot_move():
    m = small(drivers=[{"name": "rdma0", "kind": "rdma", "node": 0}])
    pid = m.spawn("a")
    a = m.mmap(pid, m.page_size)
    m.touch(pid, a, m.page_size, node=0)
    m.pin(pid, a, m.page_size)
    m.mbind(pid, a, m.page_size, MPOL_BIND, [1], MPOL_MF_MOVE)
    assert nodes_of(m, pid, a, 1) == [0]


def test_mbind_strict_counts_pfnmap_pages_EIO():
    m = small(drivers=[{"name": "unc", "kind": "uncached", "node": 0, "size": "64K"}])
    pid = m.spawn("a")
    a = m.mmap(pid, 4 * m.page_size, driver="unc")
    assert err(lambda: m.mbind(pid, a, 4 * m.page_size, MPOL_BIND, [1],
                               MPOL_MF_MOVE | MPOL_MF_STRICT)) == errno.EIO
    m.mbind(pid, a, 4 * m.page_size, MPOL_BIND, [1], MPOL_MF_MOVE)  # skipped silently


# ---- migrate_pages(2) (section 2)

def test_migrate_pages_pair_order_vacate_before_fill():
    m = small(nodes=6, size="8M")
    assert migrate_pages_pairs(m, (2, 3, 4), (3, 4, 5)) == [(4, 5), (3, 4), (2, 3)]


def test_migrate_pages_skips_destinations_when_weights_differ():
    m = small(nodes=8, size="4M")
    pairs = migrate_pages_pairs(m, tuple(range(8)), (3, 4, 5))
    assert sorted(pairs) == [(0, 3), (1, 4), (2, 5), (6, 3), (7, 4)]
    m.era = "2006"
    assert (3, 3) not in migrate_pages_pairs(m, tuple(range(8)), (3, 4, 5))


def test_migrate_pages_moves_everything_and_returns_zero(m):
    pid = m.spawn("a")
    a = m.mmap(pid, 16 * m.page_size)
    m.touch(pid, a, 16 * m.page_size, node=0)
    before = [m.read(pid, x) for x in pages_of(m, a, 16)]
    assert m.migrate_pages(pid, [0], [2]) == 0
    assert nodes_of(m, pid, a, 16) == [2] * 16
    assert [m.read(pid, x) for x in pages_of(m, a, 16)] == before
    m.check()


def test_migrate_pages_errors(m):
    pid = m.spawn("a", uid=1000, mems_allowed="0-1")
    other = m.spawn("b", uid=1001)
    assert err(lambda: m.migrate_pages(4242, [0], [1])) == errno.ESRCH
    assert err(lambda: m.migrate_pages(pid, [0], [64])) == errno.EINVAL
    assert err(lambda: m.migrate_pages(other, [0], [1], caller=pid)) == errno.EPERM
    # destination outside the target's cpuset without CAP_SYS_NICE
    assert err(lambda: m.migrate_pages(pid, [0], [3], caller=pid)) == errno.EPERM
    k = m.spawn("k", kthread=True)
    assert err(lambda: m.migrate_pages(k, [0], [1])) == errno.EINVAL


def test_migrate_pages_returns_pages_not_moved():
    m = small(drivers=[{"name": "rdma0", "kind": "rdma", "node": 0}])
    pid = m.spawn("a")
    a = m.mmap(pid, 4 * m.page_size)
    m.touch(pid, a, 4 * m.page_size, node=0)
    m.pin(pid, a, m.page_size)
    assert m.migrate_pages(pid, [0], [1]) == 1
    m.check()


def test_migrate_pages_skips_shared_pages_without_cap_sys_nice(m):
    p1 = m.spawn("a", uid=1000)
    p2 = m.spawn("b", uid=1000)
    x = m.mmap(p1, m.page_size, flags=engine.MAP_SHARED, file="g")
    y = m.mmap(p2, m.page_size, flags=engine.MAP_SHARED, file="g")
    m.touch(p1, x, m.page_size, node=0)
    m.touch(p2, y, m.page_size, write=False)
    assert m.migrate_pages(p1, [0], [1], caller=p1) == 0  # skipped, not counted
    assert nodes_of(m, p1, x, 1) == [0]
    assert m.migrate_pages(p1, [0], [1]) == 0  # root: MOVE_ALL
    assert nodes_of(m, p1, x, 1) == [1]


def test_migrate_pages_skips_pfnmap_and_2006_skips_mlocked():
    m = small(era="2.6.18")
    pid = m.spawn("a")
    a = m.mmap(pid, 2 * m.page_size)
    m.touch(pid, a, 2 * m.page_size, node=0)
    m.mlock(pid, a, m.page_size)
    assert m.migrate_pages(pid, [0], [1]) == 0
    assert nodes_of(m, pid, a, 2) == [0, 1]
    m.era = "modern"
    m.migrate_pages(pid, [0], [1])
    assert nodes_of(m, pid, a, 2) == [1, 1]
    assert (m.f.flags[ptes(m.process(pid).vmas[0])[0]] & PG_mlocked) != 0


def test_parse_nodes_accepts_strings_and_rejects_nonsense(m):
    from engine.nodemask import parse_nodes

    assert parse_nodes("0-2,5") == (0, 1, 2, 5)
    assert parse_nodes([3, 1]) == (1, 3)
    for bad in ("x", "3-1", [1.5], "70"):
        with pytest.raises(OSError):
            parse_nodes(bad)
    assert np.array_equal(np.array(parse_nodes("")), np.array([]))


def test_2006_mbind_interleave_move_uses_first_vma_only(m):
    """2.6.18's new_vma_page() took addresses in the range's first VMA: pages of later
    VMAs got -EFAULT as address and all landed on one interleave node."""
    for era, spread in (("modern", True), ("2.6.18", False)):
        m.era = era
        pid = m.spawn("x")
        a = m.mmap(pid, 8 * m.page_size)
        m.touch(pid, a, 8 * m.page_size, node=0)
        m.mbind(pid, a + 4 * m.page_size, 4 * m.page_size, MPOL_BIND, [0])  # two VMAs
        m.mbind(pid, a, 8 * m.page_size, MPOL_INTERLEAVE, "1-3", MPOL_MF_MOVE)
        st = nodes_of(m, pid, a, 8)
        assert st[:4] == [[1, 2, 3][((a >> 12) + i) % 3] for i in range(4)]
        assert (len(set(st[4:])) > 1) == spread
        m.check()
