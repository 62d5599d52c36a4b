"""Long calls as jobs: the same generator as the synchronous call, batches with a
consistent machine at every boundary, cancellation that loses nothing."""

import errno

import numpy as np
import pytest
from conftest import pages_of, small


def _setup(n=2048):
    m = small(nodes=2, size="32M")
    pid = m.spawn("a")
    a = m.mmap(pid, n * m.page_size)
    m.touch(pid, a, n * m.page_size, node=0)
    return m, pid, a


async def test_job_progress_is_monotonic_and_reaches_total():
    m, pid, a = _setup()
    job = m.start("migrate_pages", pid, [0], [1], batch=128)
    seen = []
    while job.step():
        seen.append(job.done)
        m.check()  # consistent at every batch boundary
    assert seen == sorted(seen) and job.state == "done"
    assert job.done == job.total == 2048
    assert await job.wait() == 0


async def test_cancel_mid_job_leaves_machine_consistent_and_moved_pages_valid():
    m, pid, a = _setup()
    before = [m.read(pid, x) for x in pages_of(m, a, 2048)]
    job = m.start("move_pages", pid, pages_of(m, a, 2048), [1] * 2048, batch=100)
    for _ in range(5):
        job.step()
    job.cancel()
    job.step()
    with pytest.raises(OSError) as e:
        await job.wait()
    assert e.value.errno == errno.EINTR and job.state == "cancelled"
    m.check()
    assert m.isolated_pages == 0
    st = m.move_pages(pid, pages_of(m, a, 2048))
    assert 0 < list(st).count(1) < 2048  # some moved, the rest stayed
    assert [m.read(pid, x) for x in pages_of(m, a, 2048)] == before


async def test_process_exit_during_a_job_frees_its_in_flight_pages():
    m, pid, a = _setup()
    job = m.start("migrate_pages", pid, [0], [1], batch=64)
    job.step()
    m.kill(pid)  # isolated pages are held by the migration, then freed by it
    m.check()
    while job.step():
        m.check()
    m.check()
    assert m.isolated_pages == 0
    assert (m.f.kind[m.zone(0, "Normal").start_pfn:] == 2).sum() == 0  # no anon left


async def test_jobs_run_on_the_event_loop_and_interleave():
    m, pid, a = _setup()
    q = m.spawn("b")
    b = m.mmap(q, 512 * m.page_size)
    m.touch(q, b, 512 * m.page_size, node=1)
    j1 = m.start("migrate_pages", pid, [0], [1], batch=64)
    j2 = m.start("migrate_pages", q, [1], [0], batch=64)
    assert await j1.wait() == 0 and await j2.wait() == 0
    st = np.array(m.move_pages(q, pages_of(m, b, 512)))
    assert (st == 0).all()
    m.check()
