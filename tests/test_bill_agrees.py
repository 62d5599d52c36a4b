"""bill == actual (issue 12, item 1): for every call (move_pages, migrate_pages, mbind
with MOVE/MOVE_ALL/STRICT, offline), every era, every flag, pages listed more than
once, memory nearly full, run at once or as a job in chunks, the bill's prediction
is what the call then does: its error, return value, per-entry status, pages per
node pair and simulated time. The bill is the call's own plan rehearsed, so any
disagreement is a bug in one of them."""

import dataclasses
import errno
import os

import numpy as np
import pytest
from conftest import fingerprint, small
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hotplug import tight_machine

import engine
from engine import (
    MAP_SHARED,
    MPOL_BIND,
    MPOL_INTERLEAVE,
    MPOL_MF_MOVE,
    MPOL_MF_MOVE_ALL,
    MPOL_MF_STRICT,
    MPOL_PREFERRED,
)

NPAGES = 192
ERAS = ["modern", "2.6.18", "2.6.17"]
CHUNKS = [None, 1, 5, 64]
NODES = st.lists(st.sampled_from([0, 1, 2]), min_size=1, max_size=3, unique=True)


def _scene(era: str, fill: int):
    """Three 4 MiB nodes (node 2 with a Movable zone): a process `a` with pages on
    every node, never-touched and zero pages, a file shared with `b`, a pinned run,
    an mlocked run and a hooked driver region; `fill` pages of a hog on node 1 bring it near ENOMEM."""
    m = small(nodes=3, size="4M", movable="4M", era=era, block_size="1M",
              drivers=[{"name": "rdma0", "kind": "rdma", "node": 0},
                       {"name": "unc", "kind": "uncached", "node": 0, "size": "64K",
                        "hook": True}])
    pid, q = m.spawn("a"), m.spawn("b")
    a = m.mmap(pid, NPAGES * m.page_size)
    for i, node in enumerate((0, 2, 1)):
        m.touch(pid, a + i * 48 * m.page_size, 48 * m.page_size, node=node)
    m.touch(pid, a + 144 * m.page_size, 16 * m.page_size, write=False)  # zero page
    f = m.mmap(pid, 32 * m.page_size, flags=MAP_SHARED, file="shared")
    m.touch(pid, f, 32 * m.page_size, node=2)
    g = m.mmap(q, 32 * m.page_size, flags=MAP_SHARED, file="shared")
    m.touch(q, g, 16 * m.page_size, write=False)
    m.pin(pid, a + 40 * m.page_size, 4 * m.page_size)
    m.mlock(pid, a + 100 * m.page_size, 8 * m.page_size)
    m.mmap(pid, 16 * m.page_size, flags=MAP_SHARED, driver="unc")  # 2.6.18 vm_ops->migrate
    m.set_migrate_hook("unc", True)
    if fill:
        hog = m.spawn("hog", node=1)
        h = m.mmap(hog, fill * m.page_size)
        m.touch(hog, h, fill * m.page_size, node=1)
    return m, pid, a, f


def _call(data, m, pid, a, f):
    kind = data.draw(st.sampled_from(["move_pages", "migrate_pages", "mbind", "offline"]))
    ps = m.page_size
    if kind == "move_pages":
        pool = [a + i * ps for i in range(NPAGES)] + [f + i * ps for i in range(32)]
        idx = data.draw(st.lists(st.integers(0, len(pool) - 1), min_size=1, max_size=60))
        # repeats on purpose: the same page listed again, nearby or much later
        reps = data.draw(st.lists(st.integers(0, len(idx) - 1), max_size=8))
        idx = idx + [idx[r] for r in reps]
        nodes = data.draw(st.lists(st.sampled_from([0, 1, 2, 2, 1, 7]),
                                   min_size=len(idx), max_size=len(idx)))
        flags = data.draw(st.sampled_from([MPOL_MF_MOVE, MPOL_MF_MOVE_ALL]))
        return kind, (pid, np.array([pool[i] for i in idx], np.int64), nodes, flags)
    if kind == "migrate_pages":
        return kind, (pid, data.draw(NODES), data.draw(NODES))
    if kind == "mbind":
        first = data.draw(st.integers(0, NPAGES - 1))
        n = data.draw(st.integers(1, NPAGES - first))
        mode = data.draw(st.sampled_from([MPOL_BIND, MPOL_INTERLEAVE, MPOL_PREFERRED]))
        nodes = data.draw(NODES)
        flags = data.draw(st.sampled_from([MPOL_MF_MOVE, MPOL_MF_MOVE_ALL,
                                           MPOL_MF_MOVE | MPOL_MF_STRICT,
                                           MPOL_MF_MOVE_ALL | MPOL_MF_STRICT]))
        return kind, (pid, a + first * ps, n * ps, mode, nodes, flags)
    return kind, (2, data.draw(st.sampled_from(["Movable", "Normal"])))


def _run(m, b, chunk):
    """Make the billed call, at once or as a job stepped in its chunks."""
    if b.endless:
        job = m.start_sync("bill", b)
        m.run_jobs([job], max_steps=200)
        assert not job.finished  # still retrying, as the bill said
        job.cancel()
        m.run_jobs([job])
        return None, job.error
    if chunk is None:
        try:
            return m.run_bill(b), None
        except OSError as e:
            return None, e
    job = m.start_sync("bill", b)
    m.run_jobs([job])
    assert job.finished
    return job.result, job.error


@settings(max_examples=int(os.environ.get("NUMACON_BILL_EXAMPLES", 300)), deadline=None,
          derandomize="NUMACON_BILL_EXAMPLES" not in os.environ,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_bill_equals_actual_for_every_call_era_flag_and_chunk(data):
    era = data.draw(st.sampled_from(ERAS), label="era")
    fill = data.draw(st.sampled_from([0, 1000, 1100]), label="fill")
    chunk = data.draw(st.sampled_from(CHUNKS), label="chunk")
    m, pid, a, f = _scene(era, fill)
    kind, args = _call(data, m, pid, a, f)
    before = fingerprint(m)
    b = m.migration_bill(kind, *args, chunk=chunk)
    assert fingerprint(m) == before  # the dry run changed nothing
    result, err = _run(m, b, chunk)
    _agree(m, kind, b, result, err)


def _agree(m, kind, b, result, err):
    act = b.actual
    if b.endless:  # cancelled: what moved before the cancel is the bill's
        assert err.errno == errno.EINTR and act["pairs"] == dict(b.pairs), b.text
        m.check()
        return
    # whole-call error, or return value
    if b.error is None:
        assert err is None, (b.text, err)
    else:
        assert err is not None and err.errno == b.error[0], (b.text, err)
    if kind == "move_pages" and result is not None:
        assert result.ret == b.ret
        np.testing.assert_array_equal(result.array, b.status)
    if kind == "migrate_pages" and err is None:
        assert result == b.ret
    assert act["pairs"] == {k: v for k, v in b.pairs.items() if v}, b.text
    assert act["ns"] == b.predicted_ns, b.text
    m.check()


@pytest.mark.parametrize("chunk", [None, 64])
@pytest.mark.parametrize("retry", ["signal", "timeout"])
@pytest.mark.parametrize("room", [True, False])
def test_offline_bill_equals_actual_over_rounds(room, retry, chunk):
    """Hot-remove in rounds (kernel-semantics.md 10): with room, one round; without,
    the synchronous call fails with ENOMEM after a round without progress, a modern
    job retries until cancelled, a 2.6.24-4.14 job gives up with ENOMEM after 5
    failing rounds. The bill rehearses the same rounds and says which."""
    m = tight_machine()
    if room:
        m.kill(20)  # the hog goes: node 0 has room for everything
    if retry == "timeout":
        m.era = dataclasses.replace(m.era, name="3.10", offline_retry="timeout")
    b = m.migration_bill("offline", 1, "Movable", chunk=chunk)
    assert b.endless == (not room and retry == "signal" and chunk is not None)
    result, err = _run(m, b, chunk)
    _agree(m, "offline", b, result, err)
    if not room:
        assert b.error is not None or b.endless
        assert b.error is None or b.error[0] == errno.ENOMEM


def test_repeated_page_bill_is_the_calls_answer():
    """The first version's bill predicted [1, 1, 2, 1, 2] for a page listed twice;
    move_pages answers -EBUSY for the second listing within one batch (Linux
    add_page_for_migration: the page is already isolated), and so does the bill."""
    m = small(nodes=3, size="16M")
    pid = m.spawn("a")
    a = m.mmap(pid, 8 * m.page_size)
    m.touch(pid, a, 8 * m.page_size, node=0)
    ps = m.page_size
    pages = [a, a, a + ps, a + 2 * ps, a + ps]
    b = m.migration_bill("move_pages", pid, pages, [1, 1, 2, 1, 2], MPOL_MF_MOVE)
    res = m.run_bill(b)
    assert list(b.status) == list(res.array)
    assert list(res) == [1, -errno.EBUSY, 2, 1, 2]


# ----------------------------------------------------------------- THP-backed memory

HP = 512  # base pages of a 2 MiB huge page


def _thp_scene(fill: int, pin: bool):
    """Three 12 MiB nodes with THP "always": a process whose 8 MiB region is four huge
    pages (two on node 0, two on node 1), followed by small pages (a region under
    MADV_NOHUGEPAGE); a hog of `fill` pages on node 2 leaves it room for small pages
    only, or for none (the split-and-retry path, thp_migration_split, and -ENOMEM);
    optionally a pinned page inside a huge page (the folio cannot move)."""
    m = small(nodes=3, size="12M", block_size="2M",
              drivers=[{"name": "rdma0", "kind": "rdma", "node": 0}])
    m.thp = "always"
    pid = m.spawn("a")
    a = m.mmap(pid, 4 * HP * m.page_size)
    m.touch(pid, a, 2 * HP * m.page_size, node=0)
    m.touch(pid, a + 2 * HP * m.page_size, 2 * HP * m.page_size, node=1)
    s = m.mmap(pid, 64 * m.page_size)
    m.madvise(pid, s, 64 * m.page_size, engine.MADV_NOHUGEPAGE)
    m.touch(pid, s, 64 * m.page_size, node=0)
    if pin:
        m.pin(pid, a + (HP + 3) * m.page_size, m.page_size)
    # a hugetlb page in use on node 0; one free in node 1's pool (node 2 has none)
    m.set_nr_hugepages(0, 1)
    m.set_nr_hugepages(1, 1)
    hb = m.mmap(pid, HP * m.page_size, flags=engine.MAP_PRIVATE | engine.MAP_ANONYMOUS |
                engine.MAP_HUGETLB)
    m.touch(pid, hb, HP * m.page_size, node=0)
    if fill:
        hog = m.spawn("hog", node=2)
        h = m.mmap(hog, fill * m.page_size)
        m.madvise(hog, h, fill * m.page_size, engine.MADV_NOHUGEPAGE)
        m.touch(hog, h, fill * m.page_size, node=2)
    return m, pid, a, s, hb


@settings(max_examples=int(os.environ.get("NUMACON_BILL_EXAMPLES", 60)), deadline=None,
          derandomize="NUMACON_BILL_EXAMPLES" not in os.environ,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_bill_equals_actual_with_huge_pages(data):
    """bill == actual for THP-backed memory (issue 18): folios moved whole, a second
    entry of a folio in one batch -EBUSY (add_folio_for_migration()), folios queued
    once by migrate_pages/mbind (queue_folios_pmd()), split and retried as small pages
    when the target has no free aligned block (migrate_pages_batch(), -ENOMEM), pinned
    folios failing, at once or in chunks."""
    fill = data.draw(st.sampled_from([0, 2200, 2700, 3000]), label="fill")
    pin = data.draw(st.booleans(), label="pin")
    chunk = data.draw(st.sampled_from(CHUNKS), label="chunk")
    m, pid, a, s, hb = _thp_scene(fill, pin)
    ps = m.page_size
    kind = data.draw(st.sampled_from(["move_pages", "migrate_pages", "mbind"]))
    if kind == "move_pages":
        pool = [a + i * ps for i in range(0, 4 * HP, 97)] + [s + i * ps for i in range(64)] \
            + [hb, hb + 9 * ps]
        idx = data.draw(st.lists(st.integers(0, len(pool) - 1), min_size=1, max_size=30))
        nodes = data.draw(st.lists(st.sampled_from([0, 1, 2]), min_size=len(idx),
                                   max_size=len(idx)))
        args = (pid, np.array([pool[i] for i in idx], np.int64), nodes, MPOL_MF_MOVE)
    elif kind == "migrate_pages":
        args = (pid, data.draw(NODES), data.draw(NODES))
    else:
        first = data.draw(st.integers(0, 4 * HP - 1))
        n = data.draw(st.integers(1, 4 * HP + 64 - first))
        mode = data.draw(st.sampled_from([MPOL_BIND, MPOL_INTERLEAVE]))
        args = (pid, a + first * ps, n * ps, mode, data.draw(NODES), MPOL_MF_MOVE)
    before = fingerprint(m)
    b = m.migration_bill(kind, *args, chunk=chunk)
    assert fingerprint(m) == before
    result, err = _run(m, b, chunk)
    _agree(m, kind, b, result, err)
