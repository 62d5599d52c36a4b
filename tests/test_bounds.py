"""Every size is bounded before it is allocated (issue 11, item 7): mmap by the
overcommit heuristic (mm/util.c __vm_enough_memory(), OVERCOMMIT_GUESS) with
MAP_NORESERVE skipping it, and a workload's tick and region by what fits. Files are
in tests/test_bad_files.py."""

from __future__ import annotations

import errno
import tracemalloc

import pytest
from conftest import fingerprint, small

from engine.constants import (
    MAP_ANONYMOUS,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
)
from engine.mm.memory import TASK_SIZE
from engine.runtime.workload import MAX_TICK_ACCESSES

PAGE = 4096
RW = PROT_READ | PROT_WRITE


@pytest.fixture
def m():
    return small(nodes=2, size="16M")


def ram(m) -> int:
    return m.totalram_pages() * PAGE


@pytest.mark.parametrize("prot,flags,file,accounted", [
    (RW, MAP_PRIVATE | MAP_ANONYMOUS, None, True),  # private writable: accounted
    (RW, MAP_SHARED | MAP_ANONYMOUS, None, True),  # shmem: accounted
    (PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, None, False),  # read-only private: not
    (RW, MAP_SHARED, "F", False),  # a shared file: its pages are the file's
    (RW, MAP_PRIVATE, "F", True),  # a private writable file mapping: COW, accounted
])
def test_overcommit_guess_refuses_more_than_ram_for_accounted_mappings(
        m, prot, flags, file, accounted):
    """__vm_enough_memory() with vm.overcommit_memory=0: an accountable mapping (private
    writable, or shared anonymous) larger than RAM + swap is ENOMEM, changing nothing;
    the others are not accounted (mm/mmap.c accountable_mapping())."""
    p = m.spawn("a")
    before = fingerprint(m)
    length = ram(m) + PAGE
    if accounted:
        with pytest.raises(OSError) as e:
            m.mmap(p, length, prot, flags, file=file)
        assert e.value.errno == errno.ENOMEM and "overcommit" in str(e.value)
        assert fingerprint(m) == before
    else:
        a = m.mmap(p, length, prot, flags, file=file)
        assert m.process(p).find_vma(a).length == length
    assert m.mmap(p, ram(m), prot, flags, file=file)  # RAM itself always passes
    m.check()


def test_map_noreserve_skips_the_check_and_costs_nothing_until_touched(m):
    """MAP_NORESERVE: no accounting (VM_NORESERVE), so a mapping of 64x RAM is given;
    its page table is sparse (nothing allocated until touched), and touching more than
    memory holds is ENOMEM at the fault, after what fitted."""
    p = m.spawn("a")
    tracemalloc.start()
    try:
        a = m.mmap(p, 64 * ram(m), RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    m.touch(p, a, 16 * PAGE)
    with pytest.raises(OSError) as e:
        m.touch(p, a, 2 * ram(m))
    assert e.value.errno == errno.ENOMEM
    m.check()
    m.munmap(p, a, 64 * ram(m))
    m.check()


def test_mmap_beyond_the_address_space_is_enomem(m):
    p = m.spawn("a")
    for length in (TASK_SIZE + 1, 2**63, 2**64 - 1):
        with pytest.raises(OSError) as e:
            m.mmap(p, length, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)
        assert e.value.errno == errno.ENOMEM
    with pytest.raises(OSError) as e:
        m.mmap(p, 2**64)  # not a value a C caller could pass
    assert e.value.errno == errno.EINVAL


def test_workload_tick_bounded_by_rate_times_threads(m):
    """Regression: rate=2e9 got the process OOM-killed at 24 GiB (a tick samples rate
    accesses per thread at once). rate x threads is bounded before anything is mapped."""
    p = m.spawn("a")
    a = m.mmap(p, 16 * PAGE)
    before = fingerprint(m)
    for rate, threads in ((2 * 10**9, [0]), (MAX_TICK_ACCESSES // 2 + 1, [0, 1]),
                          (MAX_TICK_ACCESSES + 1, [0])):
        with pytest.raises(OSError) as e:
            m.start_sync("workload", p, a, 16 * PAGE, rate=rate, threads=threads)
        assert e.value.errno == errno.EINVAL and f"{MAX_TICK_ACCESSES}" in str(e.value)
        with pytest.raises(OSError):  # the same through a phase list
            m.start_sync("workload", p, size=16 * PAGE, phases=[{"ticks": 1},
                                                               {"rate": rate,
                                                                "threads": threads}])
    assert fingerprint(m) == before and not m.workloads


def test_workload_region_bounded_by_the_machine(m):
    """A workload keeps ground truth per page and node: a region larger than the machine
    (a MAP_NORESERVE mapping) is ENOMEM before that table is allocated."""
    p = m.spawn("a")
    big = 8 * ram(m)
    a = m.mmap(p, big, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)
    before = fingerprint(m)
    tracemalloc.start()
    try:
        with pytest.raises(OSError) as e:
            m.start_sync("workload", p, a, big, init="none")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert e.value.errno == errno.ENOMEM and "larger than the machine's" in str(e.value)
    assert peak < 1 << 20 and fingerprint(m) == before
    w = m.start_sync("workload", p, a, 64 * PAGE, ticks=2, rate=16, init="none")
    m.run_jobs()
    assert w.state == "done"
    m.check()
