"""move_pages(2): whole-call errors in kernel order, per-page status codes, modern
batching and return value, 2.6.18 behaviour (kernel-semantics.md section 1)."""

import errno

import pytest
from conftest import nodes_of, pages_of, small

import engine
from engine import MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT


def anon(m, pid, n, touch=True, node=None):
    a = m.mmap(pid, n * m.page_size)
    if touch:
        m.touch(pid, a, n * m.page_size, node=node)
    return a


def errno_of(fn):
    with pytest.raises(OSError) as e:
        fn()
    return e.value.errno


# ---- whole-call errors (man 2 move_pages, ERRORS), in the kernel's order

def test_EINVAL_flags_other_than_move_and_move_all(m):
    pid = m.spawn("a")
    a = anon(m, pid, 1)
    assert errno_of(lambda: m.move_pages(pid, [a], [1], MPOL_MF_STRICT)) == errno.EINVAL


def test_EINVAL_flags_checked_before_pid(m):
    assert errno_of(lambda: m.move_pages(9999, [0], [1], 1 << 5)) == errno.EINVAL


def test_EPERM_move_all_without_cap_sys_nice_even_in_query_mode(m):
    pid = m.spawn("a", uid=1000)
    a = anon(m, pid, 1)
    assert errno_of(lambda: m.move_pages(pid, [a], None, MPOL_MF_MOVE_ALL,
                                         caller=pid)) == errno.EPERM


def test_ESRCH_no_such_process(m):
    assert errno_of(lambda: m.move_pages(4242, [0], [0])) == errno.ESRCH


def test_EPERM_caller_may_not_access_other_uid(m):
    victim = m.spawn("v", uid=1001)
    caller = m.spawn("c", uid=1000)
    a = anon(m, victim, 1)
    assert errno_of(lambda: m.move_pages(victim, [a], [1], caller=caller)) == errno.EPERM


def test_pid_zero_is_the_caller(m):
    pid = m.spawn("a", uid=1000)
    a = anon(m, pid, 2, node=0)
    st = m.move_pages(0, pages_of(m, a, 2), [1, 1], caller=pid)
    assert list(st) == [1, 1] and st.ret == 0


def test_EINVAL_target_without_mm(m):
    k = m.spawn("kworker", kthread=True)
    assert errno_of(lambda: m.move_pages(k, [0], [0])) == errno.EINVAL


@pytest.mark.parametrize("node", [-1, 64, 1000])
def test_ENODEV_node_out_of_range(m, node):
    pid = m.spawn("a")
    a = anon(m, pid, 1)
    assert errno_of(lambda: m.move_pages(pid, [a], [node])) == errno.ENODEV


def test_ENODEV_node_without_memory():
    m = small(nodes=2)
    # a CPU-only node (no memory) is not in N_MEMORY
    d = m.description
    d["nodes"].append({"id": 2, "cpus": "8-9", "zones": {}})
    d["distances"] = {"local": 10, "remote": 20}
    m = engine.Machine.from_description(d)
    pid = m.spawn("a")
    a = anon(m, pid, 1)
    assert errno_of(lambda: m.move_pages(pid, [a], [2])) == errno.ENODEV


def test_EACCES_node_outside_target_cpuset(m):
    pid = m.spawn("a", mems_allowed="0-1")
    a = anon(m, pid, 1)
    assert errno_of(lambda: m.move_pages(pid, [a], [3])) == errno.EACCES


def test_ENOMEM_target_node_full():
    m = small(nodes=2, size="16M")
    pid = m.spawn("a")
    n = int(m.node_available(1, "min")) + 64
    a = m.mmap(pid, n * m.page_size)
    m.touch(pid, a, n * m.page_size, node=0)  # fills node 0 and falls back
    on0 = [x for x, s in zip(pages_of(m, a, n), m.move_pages(pid, pages_of(m, a, n)))
           if s == 0]
    hog = m.spawn("hog", node=1, mems_allowed="1")
    h = m.mmap(hog, m.node_available(1, "low") * m.page_size)
    m.touch(hog, h, m.node_available(1, "low") * m.page_size)
    assert errno_of(lambda: m.move_pages(pid, on0, [1] * len(on0))) == errno.ENOMEM
    m.check()


def test_modern_validates_nodes_lazily_earlier_batches_move(m):
    pid = m.spawn("a")
    a = anon(m, pid, 3, node=0)
    with pytest.raises(OSError) as e:
        m.move_pages(pid, pages_of(m, a, 3), [1, 1, 77])
    assert e.value.errno == errno.ENODEV
    assert nodes_of(m, pid, a, 3) == [1, 1, 0]


def test_2006_validates_all_nodes_before_moving(m):
    m.era = "2.6.18"
    pid = m.spawn("a")
    a = anon(m, pid, 3, node=0)
    assert errno_of(lambda: m.move_pages(pid, pages_of(m, a, 3), [1, 1, 77])) == errno.ENODEV
    assert nodes_of(m, pid, a, 3) == [0, 0, 0]


def test_ENOSYS_before_2_6_18(m):
    m.era = "2.6.17"
    pid = m.spawn("a")
    assert errno_of(lambda: m.move_pages(pid, [0], None)) == errno.ENOSYS


# ---- per-page status codes (modern = 6.12+)

def test_status_moved_and_already_there(m):
    pid = m.spawn("a")
    a = anon(m, pid, 4, node=0)
    st = m.move_pages(pid, pages_of(m, a, 4), [2, 2, 0, 0])
    assert list(st) == [2, 2, 0, 0] and st.ret == 0
    assert nodes_of(m, pid, a, 4) == [2, 2, 0, 0]
    m.check()


def test_status_EFAULT_address_outside_any_vma(m):
    pid = m.spawn("a")
    st = m.move_pages(pid, [0x1000], [1])
    assert list(st) == [-errno.EFAULT]


def test_status_ENOENT_untouched_anonymous_page_6_12(m):
    pid = m.spawn("a")
    a = anon(m, pid, 1, touch=False)
    assert list(m.move_pages(pid, [a], [1])) == [-errno.ENOENT]
    assert list(m.move_pages(pid, [a])) == [-errno.ENOENT]


def test_status_EFAULT_shared_zero_page(m):
    pid = m.spawn("a")
    a = m.mmap(pid, m.page_size)
    m.touch(pid, a, m.page_size, write=False)
    assert list(m.move_pages(pid, [a], [1])) == [-errno.EFAULT]
    assert list(m.move_pages(pid, [a])) == [-errno.EFAULT]


def test_status_EFAULT_pfnmap_vma_and_query_ENOENT():
    m = small(drivers=[{"name": "unc", "kind": "uncached", "node": 0, "size": "64K"}])
    pid = m.spawn("a")
    a = m.mmap(pid, 16 * m.page_size, driver="unc")
    assert list(m.move_pages(pid, [a], [1])) == [-errno.EFAULT]
    assert list(m.move_pages(pid, [a])) == [-errno.ENOENT]


def test_status_EACCES_shared_page_without_move_all(m):
    a1 = m.spawn("a")
    a2 = m.spawn("b")
    x = m.mmap(a1, m.page_size, flags=engine.MAP_SHARED, file="f")
    y = m.mmap(a2, m.page_size, flags=engine.MAP_SHARED, file="f")
    m.touch(a1, x, m.page_size, node=0)
    m.touch(a2, y, m.page_size, write=False)
    assert list(m.move_pages(a1, [x], [1], MPOL_MF_MOVE)) == [-errno.EACCES]
    st = m.move_pages(a1, [x], [1], MPOL_MF_MOVE_ALL)
    assert list(st) == [1]
    # both mappings were redirected by the reverse map
    assert list(m.move_pages(a2, [y])) == [1]
    assert m.read(a1, x) == m.read(a2, y) != 0
    m.check()


def test_status_EBUSY_same_page_twice_in_one_batch(m):
    pid = m.spawn("a")
    a = anon(m, pid, 2, node=0)
    st = m.move_pages(pid, [a, a, a + m.page_size], [1, 1, 1])
    assert list(st) == [1, -errno.EBUSY, 1]
    m.check()


def test_same_page_after_a_flush_sees_the_move(m):
    pid = m.spawn("a")
    a = anon(m, pid, 1, node=0)
    st = m.move_pages(pid, [a, a], [1, 2])
    assert list(st) == [1, 2]
    assert nodes_of(m, pid, a, 1) == [2]


def test_failing_batch_statuses_unwritten_and_positive_return():
    """4.17+: a batch with a failure stops the call; its statuses stay unwritten and the
    return is its failures plus the entries never attempted."""
    m2 = small(drivers=[{"name": "rdma0", "kind": "rdma", "node": 0}])
    pid = m2.spawn("a")
    a = anon(m2, pid, 6, node=0)
    m2.pin(pid, a + 2 * m2.page_size, m2.page_size)
    pg = pages_of(m2, a, 6)
    st = m2.move_pages(pid, pg, [1, 1, 2, 2, 3, 3])
    # batch [0,1] -> node 1 fine; batch [2,3] -> node 2 has the pinned page: stop
    assert st[:2] == [1, 1]
    assert st[2:] == [None] * 4
    assert st.ret == 1 + 2  # one failed page in the batch + two entries never tried
    assert nodes_of(m2, pid, a, 6) == [1, 1, 0, 2, 0, 0]
    m2.check()


def test_error_entry_flushes_batch_and_counts(m):
    pid = m.spawn("a")
    a = anon(m, pid, 3, node=0)
    st = m.move_pages(pid, [a, 0x1000, a + m.page_size], [1, 1, 1])
    assert list(st) == [1, -errno.EFAULT, 1] and st.ret == 0


def test_count_zero_returns_zero(m):
    pid = m.spawn("a")
    st = m.move_pages(pid, [], [])
    assert list(st) == [] and st.ret == 0


def test_contents_preserved_and_counters(m):
    pid = m.spawn("a")
    a = anon(m, pid, 64, node=0)
    before = [m.read(pid, x) for x in pages_of(m, a, 64)]
    vm0 = m.vmstat()["pgmigrate_success"]
    st = m.move_pages(pid, pages_of(m, a, 64), [3] * 64)
    assert st.ret == 0
    assert [m.read(pid, x) for x in pages_of(m, a, 64)] == before
    assert m.vmstat()["pgmigrate_success"] == vm0 + 64
    m.check()


def test_move_pages_ignores_memory_policy(m):
    pid = m.spawn("a")
    a = anon(m, pid, 2, node=0)
    m.mbind(pid, a, 2 * m.page_size, engine.MPOL_BIND, [0])
    assert list(m.move_pages(pid, pages_of(m, a, 2), [2, 2])) == [2, 2]


# ---- 2.6.18

def test_2006_hole_below_a_vma_is_ENOENT_and_above_last_is_EFAULT(m):
    m.era = "2006"
    pid = m.spawn("a")
    a = anon(m, pid, 1, node=0)
    hi = max(v.end for v in m.process(pid).vmas)
    st = m.move_pages(pid, [a, a - 16 * m.page_size, hi + m.page_size], [1, 1, 1])
    assert list(st) == [1, -errno.ENOENT, -errno.EFAULT]


def test_2006_zero_page_is_ENOENT_and_nothing_isolated_is_whole_call_ENOENT(m):
    m.era = "2.6.18"
    pid = m.spawn("a")
    a = m.mmap(pid, m.page_size)
    m.touch(pid, a, m.page_size, write=False)
    assert list(m.move_pages(pid, [a])) == [-errno.ENOENT]
    assert errno_of(lambda: m.move_pages(pid, [a], [1])) == errno.ENOENT


def test_2006_fallback_allocation_reports_real_node():
    m = small(nodes=2, size="16M", era="2.6.18")
    pid = m.spawn("a")
    a = anon(m, pid, 8, node=0)
    hog = m.spawn("hog", node=1, mems_allowed="1")
    n = m.node_available(1, "min")
    h = m.mmap(hog, n * m.page_size)
    m.touch(hog, h, n * m.page_size)
    st = m.move_pages(pid, pages_of(m, a, 8), [1] * 8)
    assert st.ret == 0 and all(s in (0, 1) for s in st)
    m.check()


def test_2006_moves_mlocked_pages_through_move_pages(m):
    m.era = "2.6.18"
    pid = m.spawn("a")
    a = anon(m, pid, 2, node=0)
    m.mlock(pid, a, 2 * m.page_size)
    assert list(m.move_pages(pid, pages_of(m, a, 2), [1, 1])) == [1, 1]
