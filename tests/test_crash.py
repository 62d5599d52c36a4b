"""Crashes (issue 8): a save killed at random moments leaves the previous snapshot
loadable and intact, and the next save works; a job cancelled at random moments
(random batch sizes and counts, or a real-time cancel on the event loop) leaves a
consistent machine with every page that moved valid."""

from __future__ import annotations

import asyncio
import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import pages_of, small
from test_reliability import compare_contents, contents, fingerprint

import engine
from engine.constants import MPOL_BIND, MPOL_MF_MOVE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# big enough that a save takes 100+ ms on this 2-core machine
BIG = {"machine": {"name": "crash", "block_size": "128M", "seed": 7},
       "nodes": [{"id": i, "cpus": f"{i}", "zones": {"Normal": "2G"}} for i in range(4)],
       "processes": [{"name": "p", "pid": 10, "node": 0,
                      "vmas": [{"size": "3G", "touch": "100%"}]},
                     {"name": "q", "pid": 11, "node": 1,
                      "vmas": [{"size": "1G", "touch": "100%"}]}]}


def changed(m):
    """What the killed writer was saving: the machine after a few more calls (the
    same calls in the test and in the child give the same machine)."""
    m.kill(11)
    pages = (np.arange(0, 1 << 19, 7, dtype=np.int64) << 12) + m.process(10).vmas[0].start
    m.move_pages(10, pages, [2] * len(pages), MPOL_MF_MOVE)
    return m


CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {tests!r})
    import engine
    from test_crash import BIG, changed
    m = changed(engine.Machine.from_description(BIG))
    print("saving", flush=True)
    engine.save(m, sys.argv[1])
    print("saved", flush=True)
""")


def test_save_killed_at_random_moments_keeps_the_previous_snapshot(tmp_path):
    """Kill delays drawn from a fixed seed, scaled by this machine's save time."""
    path = tmp_path / "m.snap"
    old = engine.Machine.from_description(BIG)
    t0 = time.perf_counter()
    engine.save(old, path)
    save_s = time.perf_counter() - t0
    old_fp = fingerprint(old)
    new_fp = fingerprint(changed(engine.Machine.from_description(BIG)))
    assert old_fp != new_fp
    good = path.read_bytes()
    rng = random.Random(20061101)
    script = CHILD.format(root=ROOT, tests=os.path.join(ROOT, "tests"))
    outcomes = []
    for _ in range(7):
        proc = subprocess.Popen([sys.executable, "-c", script, str(path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "saving", proc.stderr.read()
            delay = rng.uniform(0, 1.3 * save_s)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(60)
        m = engine.load(path)  # whatever moment it died at, the file loads
        fp = fingerprint(m)
        assert fp in (old_fp, new_fp)
        if fp == old_fp:
            assert path.read_bytes() == good  # not a byte of the old file changed
        m.check()
        outcomes.append((round(delay, 3), proc.returncode, "old" if fp == old_fp else "new"))
        # put the good file back for the next round (a save over the strays)
        engine.save(old, path)
        assert fingerprint(engine.load(path)) == old_fp
        good = path.read_bytes()
    # temporary files the killed writers left are hidden, and never in the way
    strays = [f for f in os.listdir(tmp_path) if f != "m.snap"]
    assert all(f.startswith(".m.snap.") and f.endswith(".tmp") for f in strays), strays
    engine.save(engine.Machine.from_description(BIG), path)
    assert fingerprint(engine.load(path)) == old_fp
    print(f"\nsave takes {save_s * 1000:.0f} ms; kills (delay s, rc, file): {outcomes}; "
          f"{len(strays)} stray temp files")
    assert any(o[2] == "old" and o[1] == -signal.SIGKILL for o in outcomes), outcomes


# ------------------------------------------------------------------ cancelled jobs

def _machine():
    m = small(nodes=3, size="32M", movable="16M",
              drivers=[{"name": "unc", "kind": "uncached", "node": 2, "size": "64K",
                        "hook": True}])
    a = m.spawn("a", node=0)
    x = m.mmap(a, 3000 * m.page_size)
    m.touch(a, x, 3000 * m.page_size, node=2)
    y = m.mmap(a, 256 * m.page_size, flags=engine.MAP_SHARED, file="f")
    m.touch(a, y, 256 * m.page_size, node=2)
    b = m.spawn("b", node=1, uid=1000)
    z = m.mmap(b, 1000 * m.page_size)
    m.touch(b, z, 1000 * m.page_size, node=2)
    m.mmap(b, 16 * m.page_size, flags=engine.MAP_SHARED, driver="unc")
    return m, a, x, b, z


@pytest.mark.parametrize("kind", ["move_pages", "migrate_pages", "mbind", "offline"])
def test_job_cancelled_at_random_batches(kind):
    rng = random.Random(f"cancel-{kind}")  # fixed seed per call
    for _ in range(6):
        m, a, x, b, z = _machine()
        batch = rng.choice([1, 3, 16, 64, 100, 512])
        k = rng.randint(0, 40)
        before = contents(m)
        job = m.start_sync(*_args(m, kind, a, x, b), batch=batch)
        for _ in range(k):
            if not job.step():
                break
        job.cancel()
        job.step()
        assert job.finished and job.state in ("cancelled", "done"), (job, job.error)
        if job.state == "cancelled":
            assert job.error.errno == errno.EINTR
        m.check()
        assert m.isolated_pages == 0 and not m.blk_isolated.any()
        compare_contents(before, contents(m))  # every page reads what it read
        # pages that moved are where they were sent, the others where they were
        where = np.array(m.move_pages(a, pages_of(m, x, 3000)))
        allowed = {"move_pages": {1, 2}, "mbind": {0, 2}, "migrate_pages": {2},
                   "offline": {2, 0, 1}}[kind]
        assert set(np.unique(where).tolist()) <= allowed, (kind, batch, k)
        if kind == "offline":
            assert set(m.blk_state.tolist()) <= {0, 1}  # online or offline, none half
            if job.state == "done":
                m.online(2, "Movable")  # hot-add gives the memory back
                m.check()


async def test_job_cancelled_at_random_real_times():
    """The console's way: jobs as asyncio tasks, cancelled after a random real delay."""
    rng = random.Random(2006)
    for kind in ("move_pages", "migrate_pages", "mbind", "offline") * 2:
        m, a, x, b, z = _machine()
        before = contents(m)
        job = m.start(*_args(m, kind, a, x, b), batch=rng.choice([8, 32, 128]))
        await asyncio.sleep(rng.uniform(0, 0.02))
        job.cancel()
        try:
            await job.wait()
        except OSError as e:
            assert e.errno == errno.EINTR
        assert job.state in ("cancelled", "done")
        m.check()
        assert m.isolated_pages == 0 and not m.blk_isolated.any()
        compare_contents(before, contents(m))


def _args(m, kind, a, x, b):
    if kind == "move_pages":
        return "move_pages", a, pages_of(m, x, 3000), [1] * 3000, MPOL_MF_MOVE
    if kind == "migrate_pages":
        return "migrate_pages", b, [2], [0]
    if kind == "mbind":
        return "mbind", a, x, 3000 * m.page_size, MPOL_BIND, [0], MPOL_MF_MOVE
    return "offline", 2, "Movable"
