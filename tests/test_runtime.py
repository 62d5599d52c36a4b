"""The runtime: jobs in batches against simulated time, clock modes, workloads and
their ground truth, access statistics, the timeline, and the commands for them."""

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import pages_of, small
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.commands import execute
from engine.constants import MIGRATE_BATCH
from engine.mm.cost import migrate_cost_ns
from engine.runtime import access
from engine.runtime import clock as clock_mod
from engine.runtime.clock import ClockController
from engine.runtime.workload import Workload, make_phases


def _proc(m, npages=2048, node=0, touch_node=0):
    pid = m.spawn("a", node=node)
    a = m.mmap(pid, npages * m.page_size)
    m.touch(pid, a, npages * m.page_size, node=touch_node)
    return pid, a


def _frames(m):
    return {n: getattr(m.f, n).copy() for n in m.f.FIELDS}


# ------------------------------------------------------------------ jobs and the clock

def test_clock_advances_by_the_cost_model_with_flushes_by_era():
    out = {}
    for era in ("modern", "2.6.18"):
        m = small(nodes=2, size="32M", era=era)
        pid, a = _proc(m, 1000)
        t0 = m.clock
        m.run(m.job_generators()["move_pages"](pid, pages_of(m, a, 1000), [1] * 1000,
                                                2, chunk=100))
        d = m.distance(0, 1)
        per_page = 1200 * 0.75 + 1200 * 0.25 * d / 21
        flushes = 10 if era == "modern" else 1000  # one per 100-page batch / one per page
        want = int(1000 * per_page + flushes * m.cost.tlb_flush_ns)
        assert abs((m.clock - t0) - want) <= 10
        assert migrate_cost_ns(m, np.zeros(1000, int), np.ones(1000, int), 100) == \
            pytest.approx(m.clock - t0, abs=10)
        out[era] = m.clock - t0
    assert out["2.6.18"] - out["modern"] == pytest.approx(990 * 2500, abs=20)


def test_modern_flush_is_per_512_page_batch():
    m = small(nodes=2, size="32M")
    n = 3 * MIGRATE_BATCH + 1
    assert m.cost.flushes(n, True) == 4 and m.cost.flushes(n, False) == n


async def test_progress_is_monotonic_and_reaches_total_beside_a_workload():
    m = small(nodes=2, size="32M")
    pid, a = _proc(m, 3000)
    wl = m.start_sync("workload", pid, a, 3000 * m.page_size, threads=[1], ticks=1000,
                    init="none")
    job = m.start_sync("migrate_pages", pid, [0], [1], batch=256)
    seen = []
    while job.step():
        seen.append(job.done)
        wl.step()
        m.check()
    assert seen == sorted(seen) and job.state == "done" and job.done == job.total == 3000
    assert await job.wait() == 0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.integers(16, 700), cancel_at=st.integers(0, 12))
def test_cancel_at_any_batch_keeps_machine_consistent_and_pages_valid(batch, cancel_at):
    m = small(nodes=2, size="16M")
    pid, a = _proc(m, 1500)
    pages = pages_of(m, a, 1500)
    before = [m.read(pid, x) for x in pages]
    job = m.start_sync("move_pages", pid, pages, [1] * 1500, batch=batch)
    for _ in range(cancel_at):
        if not job.step():
            break
    job.cancel()
    job.step()
    assert job.finished
    m.check()
    assert m.isolated_pages == 0
    assert [m.read(pid, x) for x in pages] == before  # moved pages kept their content
    st_ = list(m.move_pages(pid, pages))
    assert st_.count(1) == (1500 if job.state == "done" else min(1500, job.done))


async def test_jobs_interleave_with_workloads_without_lost_writes():
    m = small(nodes=3, size="32M")
    pid, a = _proc(m, 4096)
    q = m.spawn("b", node=1)
    b = m.mmap(q, 1024 * m.page_size)
    m.touch(q, b, 1024 * m.page_size, node=1)
    w1 = m.start_sync("workload", pid, a, 4096 * m.page_size, threads=[1, 2],
                    pattern="uniform", write=0.5, ticks=60, init="none")
    w2 = m.start_sync("workload", q, b, 1024 * m.page_size, threads=[1], pattern="seq",
                    write=1.0, ticks=60, init="none")
    j1 = m.start_sync("migrate_pages", pid, [0], [2], batch=128)
    j2 = m.start_sync("move_pages", q, pages_of(m, b, 1024), [0] * 1024, batch=64)
    jobs = [w1, j1, w2, j2]
    while not all(j.finished for j in jobs):
        for j in jobs:
            j.step()
            m.check()  # consistent at every batch boundary, every write accounted for
    assert all(j.state == "done" for j in jobs)
    assert m.isolated_pages == 0
    assert w1.owner.writes > 0 and w2.owner.writes > 0
    assert w1.owner.stalls + w2.owner.stalls > 0  # they touched pages under migration
    assert m.vmstat()["migration_entry_waits"] == w1.owner.stalls + w2.owner.stalls


async def test_jobs_on_the_event_loop_with_workloads():
    m = small(nodes=2, size="32M")
    pid, a = _proc(m, 2048)
    w = m.start("workload", pid, a, 2048 * m.page_size, threads=[1], ticks=40, write=0.3)
    j = m.start("migrate_pages", pid, [0], [1], batch=128)
    assert await j.wait() == 0
    summary = await w.wait()
    assert summary["ticks"] == 40 and w.done == w.total == 40
    m.check()


async def test_clock_paused_then_speed_then_fast(monkeypatch):
    """Paused: no job steps. Speed x: each step sleeps until real time catches up with
    simulated time / x. Fast: jobs never sleep. The sleeps are recorded, not timed."""
    m = small(nodes=2, size="32M")
    pid, a = _proc(m, 1024)
    m.clockctl.pause()
    job = m.start("workload", pid, a, 1024 * m.page_size, threads=[1], ticks=20, rate=256)
    await asyncio.sleep(0.08)
    assert job.done == 0 and m.clock == job.started_ns  # paused: nothing steps
    # a fake real clock that moves only when a job sleeps
    real = [1000.0]
    sleeps = []
    real_sleep = asyncio.sleep

    async def recorded(s, *args):
        sleeps.append(s)
        real[0] += s
        await real_sleep(0)

    monkeypatch.setattr(clock_mod, "time", SimpleNamespace(monotonic=lambda: real[0]))
    monkeypatch.setattr(clock_mod.asyncio, "sleep", recorded)
    paced = []  # the simulated time at each paced step
    delay_s = m.clockctl.delay_s
    monkeypatch.setattr(m.clockctl, "delay_s", lambda ns: paced.append(ns) or delay_s(ns))
    m.clockctl.set_speed(0.5)  # half real time: 1 ms simulated takes 2 ms
    await job.wait()
    # from the first paced step (the anchor) to the last, real time = simulated / 0.5
    assert len(paced) == 19 and paced[-1] > paced[0]
    assert real[0] - 1000.0 == pytest.approx((paced[-1] - paced[0]) / 0.5e9)
    m.clockctl.set_fast()
    sleeps.clear()
    job2 = m.start("workload", pid, a, 1024 * m.page_size, threads=[1], ticks=200, rate=256)
    await job2.wait()
    assert job2.done == 200 and not any(sleeps)  # fast: never a real sleep
    assert execute(m, "clock").text.endswith("fast")


def test_clock_pacing_against_one_anchor():
    """delay_s against an injected real clock: the first step anchors; later steps sleep
    until real = anchor + sim / speed; lagging more than MAX_LAG_S re-anchors."""
    c = ClockController()
    assert c.delay_s(10**9, now=100.0) == 0.0  # fast
    c.set_speed(2.0)
    assert c.delay_s(0, now=100.0) == 0.0  # anchors at (100 s, 0 ns)
    assert c.delay_s(10**9, now=100.0) == pytest.approx(0.5)
    assert c.delay_s(10**9, now=100.4) == pytest.approx(0.1)
    assert c.delay_s(10**9, now=100.6) == 0.0  # behind by 0.1 s: no sleep, no re-anchor
    assert c.delay_s(2 * 10**9, now=101.0) == pytest.approx(0.0)
    assert c.delay_s(3 * 10**9, now=102.0) == 0.0  # behind by 0.5 s > MAX_LAG: re-anchor
    assert c.delay_s(4 * 10**9, now=102.0) == pytest.approx(0.5)
    c.pause()
    assert c.delay_s(5 * 10**9, now=102.0) == 0.0
    with pytest.raises(ValueError):
        c.set_speed(0)


async def test_cancel_ends_a_paused_job():
    m = small(nodes=2, size="32M")
    pid, a = _proc(m, 512)
    m.clockctl.pause()
    job = m.start("migrate_pages", pid, [0], [1], batch=64)
    await asyncio.sleep(0.03)
    job.cancel()
    with pytest.raises(OSError):
        await asyncio.wait_for(job.wait(), 2)
    assert job.state == "cancelled"
    m.check()


def test_run_jobs_stops_when_nothing_can_progress():
    m = small(nodes=2, size="32M")
    pid, _ = _proc(m, 64)
    d = m.start_sync("daemon", pid, source="truth")  # no workload: it only waits
    assert m.run_jobs() == 1 and not d.finished and d.idle


# ------------------------------------------------------------------ workloads

def _wl(m, pid, a, n, **kw):
    ph = make_phases(m, **kw)
    return Workload(m=m, pid=pid, start=a, npages=n, phases=ph, seed=(1, pid, 0))


def test_patterns_sample_inside_their_domains():
    m = small(nodes=4, size="16M")
    pid, a = _proc(m, 1000)
    for pat in ("uniform", "zipf", "hot", "seq", "stairs", "zigzag"):
        w = _wl(m, pid, a, 1000, pattern=pat, threads=[0, 1, 2, 3], shard=True, rate=300)
        for _ in range(25):
            offs = w.sample(w.phase, 4)
            lo = (np.arange(4) * 1000) // 4
            hi = (np.arange(1, 5) * 1000) // 4
            assert ((offs >= lo[:, None]) & (offs < hi[:, None])).all(), pat
            w._phase_tick += 1
    # seq streams in order; a hot set is skewed; stairs move, zigzag comes back
    w = _wl(m, pid, a, 1000, pattern="seq", rate=100)
    assert (w.sample(w.phase, 1)[0] == np.arange(100)).all()
    assert (w.sample(w.phase, 1)[0] == np.arange(100, 200)).all()
    w = _wl(m, pid, a, 1000, pattern="hot", rate=5000)
    c = np.bincount(w.sample(w.phase, 1)[0], minlength=1000)
    assert c[:10].sum() > c[500:].sum()
    w = _wl(m, pid, a, 1000, pattern="zigzag", width=0.25, step=1, rate=200)
    mids = []
    for t in range(8):
        w._phase_tick = t
        mids.append(int(np.median(w.sample(w.phase, 1))))
    assert mids[:4] == sorted(mids[:4]) and mids[3] > mids[6]


def test_phases_change_pattern_and_threads():
    m = small(nodes=3, size="16M")
    pid, a = _proc(m, 512)
    j = m.start_sync("workload", pid, a, 512 * m.page_size, rate=128,
                   phases=[{"ticks": 5, "threads": [1]}, {"ticks": 7, "threads": [2, 2]}])
    m.run_jobs()
    w = j.owner
    assert w.ticks_done == 12 and w.state == "done"
    per_node = w.counts.sum(axis=0)
    assert per_node[1] == 5 * 128 and per_node[2] == 7 * 2 * 128 and per_node[0] == 0


def test_same_seed_same_run_and_truth():
    runs = []
    for seed in (5, 5, 6):
        m = small(nodes=2, size="16M", seed=seed)
        pid, a = _proc(m, 800)
        j = m.start_sync("workload", pid, a, 800 * m.page_size, threads=[0, 1],
                       pattern="zipf", ticks=30)
        m.run_jobs()
        runs.append((j.owner.counts.copy(), j.result, m.clock))
    assert (runs[0][0] == runs[1][0]).all() and runs[0][1:] == runs[1][1:]
    assert not (runs[0][0] == runs[2][0]).all()


def test_truth_locality_and_latency_from_slit():
    m = small(nodes=3, size="16M")
    pid, a = _proc(m, 256, touch_node=0)
    j = m.start_sync("workload", pid, a, 256 * m.page_size, threads=[2], ticks=10,
                   rate=100, init="none")
    m.run_jobs()
    s = j.result
    assert s["local"] == 0 and s["remote"] == 1000
    assert s["avg_latency_ns"] == pytest.approx(80 * m.distance(2, 0) / 10)
    assert j.owner.counts[:, 2].sum() == 1000 and j.owner.counts.dtype == np.uint32
    # memory: the truth is per workload region, never per frame x node
    assert j.owner.counts.shape == (256, m.nr_node_ids)
    m.check()


def test_first_touch_by_threads_and_writes_keep_the_oracle():
    m = small(nodes=2, size="16M")
    pid = m.spawn("a")
    a = m.mmap(pid, 512 * m.page_size)
    j = m.start_sync("workload", pid, a, 512 * m.page_size, threads=[1], ticks=20,
                   write=0.5, init="none")
    m.run_jobs()
    st_ = [s for s in m.move_pages(pid, pages_of(m, a, 512)) if s is not None and s >= 0]
    assert st_ and set(st_) == {1}  # faulted in by the thread on node 1
    assert j.result["locality"] == 1.0
    m.check()


def test_workload_ends_when_its_process_exits():
    m = small(nodes=2, size="16M")
    pid, a = _proc(m, 128)
    j = m.start_sync("workload", pid, a, 128 * m.page_size, ticks=100)
    j.step()
    m.kill(pid)
    m.run_jobs()
    assert j.state == "done" and j.owner.state == "exited"
    m.check()


def test_workload_on_shared_and_file_mappings():
    from engine import MAP_SHARED

    m = small(nodes=2, size="16M")
    pid = m.spawn("a")
    a = m.mmap(pid, 64 * m.page_size, flags=MAP_SHARED, file="data")
    j = m.start_sync("workload", pid, a, 64 * m.page_size, threads=[1], ticks=10,
                   write=0.5)
    m.run_jobs()
    assert j.state == "done" and j.owner.writes > 0
    m.check()


# ------------------------------------------------------------------ access statistics

def test_sources_scored_against_truth():
    m = small(nodes=3, size="32M")
    pid, a = _proc(m, 4096, touch_node=0)
    j = m.start_sync("workload", pid, a, 4096 * m.page_size, threads=[1, 2], shard=True,
                   pattern="uniform", ticks=120, watch="hint,damon")
    m.run_jobs()
    rows = {r["source"]: r for r in access.compare(m, j.owner)}
    assert rows["truth"]["precision"] == rows["truth"]["recall"] == 1.0
    assert rows["truth"]["true_remote"] == 4096
    assert rows["numastat"]["flagged"] == 0  # it counts allocations, not accesses
    assert rows["query"]["recall"] == 1.0 and rows["query"]["node_accuracy"] < 1.0
    assert rows["hint"]["precision"] == 1.0 and rows["hint"]["recall"] > 0.8
    assert rows["hint"]["node_accuracy"] == 1.0
    assert rows["damon"]["precision"] == 1.0
    for s in ("hint", "damon", "query"):
        assert rows[s]["cost_ns"] > 0
    assert m.vmstat()["numa_hint_faults"] > 0
    text = access.compare_text(m, j.owner)
    assert "precision" in text and "numastat" in text
    access.reset(m, j.owner)
    assert access.truth_counts(j.owner).sum() == 0


def test_damon_regions_split_merge_and_track_a_hot_range():
    m = small(nodes=2, size="32M")
    pid, a = _proc(m, 4000)
    j = m.start_sync("workload", pid, a, 4000 * m.page_size, threads=[0], ticks=400,
                   pattern="stairs", width=0.1, step=1000, watch="damon")
    m.run_jobs()
    mon = access.observer(j.owner, "damon")
    assert mon.aggregations >= 3
    assert mon.min_regions <= mon.rep_lo.size <= mon.max_regions
    assert (mon.rep_lo[1:] == mon.rep_hi[:-1]).all() and mon.rep_hi[-1] == 4000
    hot, _ = mon.hotness()
    assert hot[:400].mean() > 3 * max(hot[1000:].mean(), 0.1)  # the window is hot


# ------------------------------------------------------------------ timeline

def test_timeline_ring_is_bounded_and_records_traffic():
    m = small(nodes=2, size="32M")
    pid, a = _proc(m, 2048)
    tl = m.timeline
    m.run(m.job_generators()["migrate_pages"](pid, [0], [1], chunk=128))
    j = m.start_sync("migrate_pages", pid, [1], [0], batch=128)
    m.run_jobs()
    t, out = tl.series("mig_out", 1)
    assert (np.diff(t) >= 0).all() and out[-1] - out[0] >= 2048
    _, used = tl.series("used", 0)
    assert used.min() < used.max()
    _, rate = tl.rate("mig_in", 0)
    assert rate.max() > 0
    small_tl = type(tl)(m.nr_node_ids, capacity=8)
    for _ in range(50):
        m.time.advance(1000)
        small_tl.sample(m)
    assert len(small_tl) == 8 and small_tl.series("free")[0][0] == m.clock - 7000
    assert j.state == "done"
    assert "node 1" in execute(m, "timeline 20").text


# ------------------------------------------------------------------ commands

def test_runtime_commands_script():
    m = small(nodes=3, size="32M")
    pid, _ = _proc(m, 16)
    lines = [f"workload {pid} size=8M threads=1,2 shard=on pattern=zipf ticks=150 &",
             f"daemon start {pid} source=truth rate=512",
             "wait", f"access {pid}", "workloads", "daemon report", "timeline",
             "clock", "check"]
    out = [execute(m, x) for x in lines]
    assert all(r.ok for r in out), [r.text for r in out if not r.ok]
    assert "local " in out[4].text and "daemon 1" in out[5].text
    rep = out[5].value[0]
    assert rep["migrated"] > 0 and rep["workloads"][0]["after"]["locality"] > 0.9
    # malformed lines change nothing
    for bad in (f"workload {pid} pattern=nope", f"workload {pid} threads=9",
                "daemon start 99999", f"daemon start {pid} mode=bogus", "clock speed -1",
                f"workload {pid} size=1M --loop", "bill run"):
        assert not execute(m, bad).ok, bad
    r = execute(m, f"workload {pid} size=4M ticks=5 rate=64 then pattern=seq ticks=5")
    assert r.ok and r.value["ticks"] == 10
    r = execute(m, f"experiment {pid} size=4M threads=1 ticks=60 -- source=truth")
    assert r.ok and r.value["on"]["locality"] > r.value["off"]["locality"]
    m.check()


async def test_background_commands_and_stop():
    m = small(nodes=2, size="32M")
    pid, _ = _proc(m, 16)
    r = execute(m, f"workload {pid} size=4M threads=1 --loop", background=True)
    assert r.ok and r.job is not None
    d = execute(m, f"daemon start {pid} source=hint", background=True)
    assert d.ok
    await asyncio.sleep(0.2)
    assert execute(m, f"workload stop {pid}").ok
    await asyncio.wait_for(r.job.wait(), 5)
    await asyncio.wait_for(d.job.wait(), 5)
    assert d.job.state == "done" and r.job.owner.state == "stopped"
    m.check()


def test_save_and_load_keep_workload_and_daemon_reports(tmp_path):
    import engine

    m = small(nodes=2, size="16M")
    pid, a = _proc(m, 512)
    m.start_sync("workload", pid, a, 512 * m.page_size, threads=[1], ticks=30,
               watch="hint,damon")
    m.start_sync("daemon", pid, source="hint")
    m.run_jobs()
    m.timeline  # noqa: B018 - created, so it is saved too
    p = tmp_path / "snap.numacon"
    engine.save(m, str(p))
    m2 = engine.load(str(p))
    m2.check()
    w, w2 = m.workloads[0], m2.workloads[0]
    assert (w.counts == w2.counts).all() and w2.summary() == w.summary()
    assert len(m2.timeline) == len(m.timeline)


def test_workloads_from_the_description():
    import engine

    d = {"machine": {"name": "t", "seed": 4},
         "nodes": [{"id": 0, "cpus": "0-1", "zones": {"Normal": "32M"}},
                   {"id": 1, "cpus": "2-3", "zones": {"Normal": "32M"}}],
         "processes": [{"name": "a", "pid": 10}],
         "workloads": [{"pid": 10, "size": "4M", "threads": "1", "ticks": 20,
                        "phases": [{"pattern": "zipf"}, {"pattern": "seq", "ticks": 5}]}]}
    m = engine.Machine.from_description(d)
    r = execute(m, "workloads start")
    assert r.ok and m.workloads[0].ticks_done == 25 and m.workloads[0].remote > 0
    assert "pid 10:" in execute(m, "workloads").text
    m.check()
