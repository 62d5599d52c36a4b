"""The migration core: (frame, target node) pairs in, one outcome per pair out, with
the page lock, writeback and extra references handled as Linux's passes do
(kernel-semantics.md section 4)."""

import errno

import numpy as np
from conftest import ptes, small

from engine.constants import PG_isolated, PG_locked, PG_writeback
from engine.mm.migrate import MigrateControl, isolate, migrate, putback


def _pages(m, n=4, node=0):
    pid = m.spawn("a")
    a = m.mmap(pid, n * m.page_size)
    m.touch(pid, a, n * m.page_size, node=node)
    return pid, a, ptes(m.process(pid).vmas[0])


def run(m, pfns, targets, thisnode=True, mode="sync"):
    ctl = MigrateControl("test", thisnode=thisnode, cpu=0, mode=mode)
    return m.run(migrate(m, np.asarray(pfns), np.asarray(targets), ctl)).result


def test_pairs_go_each_to_its_own_target_one_outcome_per_pair():
    m = small()
    pid, a, pfns = _pages(m, 4)
    res = run(m, pfns, [1, 2, 3, 1])
    assert list(res) == [1, 2, 3, 1]
    st = m.move_pages(pid, [a + i * m.page_size for i in range(4)])
    assert list(st) == [1, 2, 3, 1]
    m.check()


def test_locked_and_writeback_pages_wait_in_sync_mode():
    """MIGRATE_SYNC waits for the lock holder and for writeback (from pass 3 in 2006,
    in the sync passes today): the pages move, and waiting costs time."""
    m = small()
    pid, a, pfns = _pages(m, 2)
    m.f.flags[pfns[0]] |= PG_locked
    m.f.flags[pfns[1]] |= PG_writeback
    t0 = m.clock
    res = run(m, pfns, [1, 1])
    assert list(res) == [1, 1]
    assert m.clock - t0 >= 2 * m.cost.wait_ns
    m.check()


def test_locked_page_is_EAGAIN_in_async_mode():
    """MIGRATE_ASYNC (NUMA balancing, compaction) never waits: the page stays."""
    m = small()
    pid, a, pfns = _pages(m, 2)
    m.f.flags[pfns[0]] |= PG_locked
    res = run(m, pfns, [1, 1], mode="async")
    assert list(res) == [-errno.EAGAIN, 1]
    assert m.f.flags[pfns[0]] & PG_locked
    m.check()


def test_page_already_isolated_is_EBUSY():
    m = small()
    pid, a, pfns = _pages(m, 2)
    isolate(m, pfns[:1])
    assert m.f.flags[pfns[0]] & PG_isolated
    res = run(m, pfns, [1, 1])
    assert list(res) == [-errno.EBUSY, 1]
    putback(m, pfns[:1])
    m.check()


def test_2006_fallback_allocation_vs_modern_thisnode_enomem():
    m = small(nodes=2, size="16M")
    pid, a, pfns = _pages(m, 8)
    hog = m.spawn("hog", node=1, mems_allowed="1")
    n = m.node_available(1, "min")
    h = m.mmap(hog, n * m.page_size)
    m.touch(hog, h, n * m.page_size)
    res = run(m, pfns, [1] * 8)
    assert (res == -errno.ENOMEM).all()  # __GFP_THISNODE: no fallback
    res = run(m, pfns, [1] * 8, thisnode=False)
    assert (res == 0).all()  # 2006: alloc_pages_node() falls back; status = real node
    m.check()


def test_counters_count_pages_moved_and_failed():
    m = small(drivers=[{"name": "rdma0", "kind": "rdma", "node": 0}])
    pid, a, pfns = _pages(m, 4)
    m.pin(pid, a, m.page_size)
    v0 = m.vmstat()
    res = run(m, pfns, [2] * 4)
    assert list(res) == [-errno.EAGAIN, 2, 2, 2]
    v1 = m.vmstat()
    assert v1["pgmigrate_success"] - v0["pgmigrate_success"] == 3
    assert v1["pgmigrate_fail"] - v0["pgmigrate_fail"] == 1
    m.check()
