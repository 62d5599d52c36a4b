"""The migration bill: a dry run that changes nothing and predicts what the real call
then does: pages per node pair, failures with their codes, return value, time."""

import errno

import pytest
from conftest import fingerprint, pages_of, ptes, small
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import MAP_SHARED, MPOL_INTERLEAVE, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT
from engine.commands import execute
from engine.mm.migrate import isolate, putback

RDMA = [{"name": "rdma0", "kind": "rdma", "node": 0}]


def _state(m):
    return fingerprint(m)


def _same(a, b):
    assert a == b


def _status(st_):
    return st_.array


def _scene(m):
    """A process whose pages are in every state: present, never touched, the zero
    page, shared with another process, pinned."""
    pid, q = m.spawn("a"), m.spawn("b")
    a = m.mmap(pid, 256 * m.page_size)
    m.touch(pid, a, 200 * m.page_size, node=0)
    m.touch(pid, a + 200 * m.page_size, 20 * m.page_size, write=False)  # zero page
    f = m.mmap(pid, 32 * m.page_size, flags=MAP_SHARED, file="shared")
    m.touch(pid, f, 32 * m.page_size)
    g = m.mmap(q, 32 * m.page_size, flags=MAP_SHARED, file="shared")
    m.touch(q, g, 16 * m.page_size, write=False)
    m.pin(pid, a + 100 * m.page_size, 4 * m.page_size)
    return pid, a, f


@pytest.mark.parametrize("era", ["modern", "2.6.18"])
def test_move_pages_bill_predicts_the_real_run(era):
    m = small(nodes=3, size="16M", drivers=RDMA, era=era)
    pid, a, f = _scene(m)
    pages = pages_of(m, a, 256) + pages_of(m, f, 32)
    nodes = [1] * 100 + [2] * 156 + [1] * 32
    before = _state(m)
    b = m.migration_bill("move_pages", pid, pages, nodes, MPOL_MF_MOVE)
    _same(before, _state(m))  # the dry run changed nothing
    assert m.last_bill is b and "would move" in b.text
    reasons = " ".join(b.failures)
    assert "EAGAIN" in reasons  # the pinned pages
    if era == "modern":
        assert b.unattempted > 0 and b.ret > 0
    else:
        assert "EACCES" in reasons and "ENOENT" in reasons
    t0 = m.clock
    res = m.run_bill(b)
    assert res.ret == b.ret
    assert (_status(res) == b.status).all()
    assert b.actual["status_mismatch"] == 0
    assert b.actual["pairs"] == dict(b.pairs)
    assert m.clock - t0 == b.predicted_ns == b.actual["ns"]
    assert "actual: moved" in b.text
    m.check()


def test_dry_run_changes_nothing_for_every_kind():
    m = small(nodes=3, size="16M", drivers=RDMA)
    pid, a, f = _scene(m)
    before = _state(m)
    bills = [m.migration_bill("move_pages", pid, pages_of(m, a, 256), [2] * 256),
             m.migration_bill("migrate_pages", pid, [0], [1, 2]),
             m.migration_bill("mbind", pid, a, 256 * m.page_size, MPOL_INTERLEAVE, [1, 2],
                              MPOL_MF_MOVE),
             m.migration_bill("move_pages", pid, pages_of(m, a, 8), [5] * 8)]
    _same(before, _state(m))
    assert all(b.pages > 0 for b in bills[:3])
    assert bills[3].error[0] == errno.ENODEV
    m.check()


@pytest.mark.parametrize("caller_uid", [0, 1000])
def test_migrate_pages_bill_predicts_left_and_pairs(caller_uid):
    m = small(nodes=3, size="16M", drivers=RDMA)
    pid, a, f = _scene(m)
    caller = None
    if caller_uid:
        caller = m.spawn("user", uid=caller_uid)
        m.process(pid).uid = caller_uid  # same user: allowed, but no CAP_SYS_NICE
    b = m.migration_bill("migrate_pages", pid, [0], [2], caller=caller)
    left = m.run_bill(b)
    assert left == b.ret == b.actual["ret"] and left >= 4  # the pinned pages stay
    assert b.actual["pairs"] == dict(b.pairs) == {(0, 2): b.pages}
    assert b.actual["ns"] == b.predicted_ns
    # without CAP_SYS_NICE the 16 pages shared with the other process stay put
    assert b.pages == (200 + 32 - 4 if not caller_uid else 200 + 32 - 16 - 4)
    m.check()


def test_migrate_pages_cycle_moves_pages_twice_as_linux_does():
    m = small(nodes=2, size="16M")
    pid = m.spawn("a")
    a = m.mmap(pid, 64 * m.page_size)
    m.touch(pid, a, 32 * m.page_size, node=0)
    m.touch(pid, a + 32 * m.page_size, 32 * m.page_size, node=1)
    b = m.migration_bill("migrate_pages", pid, [0, 1], [1, 0])
    m.run_bill(b)
    assert b.actual["pairs"] == dict(b.pairs)
    assert b.actual["ns"] == b.predicted_ns
    m.check()


def test_mbind_bill_predicts_interleave_targets_and_strict_failures():
    m = small(nodes=3, size="16M", drivers=RDMA)
    pid, a, f = _scene(m)
    b = m.migration_bill("mbind", pid, a, 256 * m.page_size, MPOL_INTERLEAVE, [1, 2],
                         MPOL_MF_MOVE | MPOL_MF_STRICT)
    assert b.error is not None and b.error[0] == errno.EIO  # the pinned pages
    with pytest.raises(OSError) as e:
        m.run_bill(b)
    assert e.value.errno == errno.EIO
    assert b.actual["pairs"] == dict(b.pairs) and b.actual["error"] == errno.EIO
    assert b.actual["ns"] == b.predicted_ns
    m.check()


def test_enomem_and_busy_pages_are_predicted():
    m = small(nodes=2, size="16M")
    pid = m.spawn("a")
    n = 2500
    a = m.mmap(pid, n * m.page_size)
    m.touch(pid, a, n * m.page_size, node=0)
    hog = m.spawn("hog", node=1)
    h = m.mmap(hog, 3000 * m.page_size)
    m.touch(hog, h, 3000 * m.page_size, node=1)  # node 1 nearly full
    pfn = ptes(m.process(pid).vmas[0])[:10]
    isolate(m, pfn)  # as if another migration had them: -EBUSY
    b = m.migration_bill("move_pages", pid, pages_of(m, a, n), [1] * n)
    assert "EBUSY" in " ".join(b.failures)
    assert b.error is not None and b.error[0] == errno.ENOMEM
    with pytest.raises(OSError) as e:
        m.run_bill(b)
    assert e.value.errno == errno.ENOMEM
    assert b.actual["pairs"] == dict(b.pairs)
    putback(m, pfn)
    m.check()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_bill_matches_the_run_for_random_pages(data):
    era = data.draw(st.sampled_from(["modern", "2.6.18"]))
    m = small(nodes=3, size="8M", drivers=RDMA, era=era)
    pid, a, f = _scene(m)
    allp = pages_of(m, a, 256) + pages_of(m, f, 32)
    idx = data.draw(st.lists(st.integers(0, len(allp) - 1), min_size=1, max_size=80,
                             unique=True))
    nodes = data.draw(st.lists(st.sampled_from([0, 1, 2, 2, 1, 7]), min_size=len(idx),
                               max_size=len(idx)))
    flags = data.draw(st.sampled_from([MPOL_MF_MOVE, MPOL_MF_MOVE_ALL]))
    pages = [allp[i] for i in idx]
    b = m.migration_bill("move_pages", pid, pages, nodes, flags)
    try:
        res = m.run_bill(b)
    except OSError as e:
        assert b.error is not None and b.error[0] == e.errno
    else:
        assert b.error is None
        assert res.ret == b.ret and (_status(res) == b.status).all()
    assert b.actual["pairs"] == dict(b.pairs)
    assert b.actual["ns"] == b.predicted_ns
    m.check()


def test_dry_run_commands_then_bill_run():
    m = small(nodes=3, size="16M", drivers=RDMA)
    pid, a, f = _scene(m)
    r = execute(m, f"move_pages {pid} {a:#x}+1M 2 --dry-run")
    assert r.ok and "would move" in r.text and m.traffic is None or m.traffic.sum() == 0
    r = execute(m, "bill run")
    assert r.ok and "actual: moved" in r.text
    assert not execute(m, "bill run").ok  # a bill runs once
    r = execute(m, f"migratepages {pid} 2 1 --dry-run")
    assert r.ok and "node 2 -> node 1" in r.text
    r = execute(m, f"mbind {pid} {a:#x}+1M interleave:0-1 move --dry-run")
    assert r.ok and "would move" in r.text
    assert execute(m, "bill").ok
    m.check()


def test_offline_bill_matches_the_offline():
    m = small(nodes=3, size="32M", movable="16M")
    pid = m.spawn("a", node=2)
    a = m.mmap(pid, 2048 * m.page_size)
    m.touch(pid, a, 2048 * m.page_size, node=2)
    b = m.migration_bill("offline", 2, "Movable")
    assert b.error is None
    assert b.pages > 0 and all(s == 2 for s, _ in b.pairs)
    m.run_bill(b)
    assert b.actual["pairs"] == dict(b.pairs)
    m.check()
