"""Automatic migration: a user-space daemon on each information source, AutoNUMA and
DAMOS, judged by locality with the daemon off and on in the same seed."""

import numpy as np
import pytest
from conftest import small

import engine
from engine.runtime import access
from engine.runtime.experiment import compare_runs, experiment

# a 2-socket-like 4-node machine; the process first-touches its memory on node 0,
# then two threads on nodes 1 and 2 each work on their half: remote-heavy
DIST = {"matrix": [[10, 16, 32, 32], [16, 10, 32, 32], [32, 32, 10, 16], [32, 32, 16, 10]]}
WL = {"size": 16 << 20, "threads": [1, 2], "shard": True, "pattern": "zipf", "ticks": 200}


@pytest.fixture(scope="module")
def base():
    m = small(nodes=4, size="48M", dist=DIST, seed=11,
              drivers=[{"name": "rdma0", "kind": "rdma", "node": 0}])
    m.spawn("app", node=0, pid=100)
    return m


@pytest.mark.parametrize("daemon,min_gain", [
    ({"source": "hint"}, 0.4),
    ({"source": "truth"}, 0.6),
    ({"mode": "autonuma"}, 0.1),
])
def test_remote_heavy_workload_has_better_locality_with_the_daemon(base, daemon, min_gain):
    r = compare_runs(base, 100, WL, daemon)
    off, on = r["off"], r["on"]
    assert on["workload"]["locality"] >= off["workload"]["locality"] + min_gain
    assert on["last"]["locality"] > 0.9 > off["last"]["locality"]
    assert on["workload"]["avg_latency_ns"] < off["workload"]["avg_latency_ns"]
    d = on["daemon"]
    assert d["migrated"] > 0 and d["migrate_ns"] > 0 and d["pingpong"] == 0
    assert set(d["by_pair"]) <= {"0->1", "0->2"}
    b, a = d["workloads"][0]["before"], d["workloads"][0]["after"]
    assert a["locality"] > b["locality"]
    assert "daemon on" in r["text"] and "paid" in r["text"]
    base.check()  # the experiments ran on copies


def test_same_seed_same_experiment(base):
    a = experiment(base, 100, WL, {"source": "hint"})
    b = experiment(base, 100, WL, {"source": "hint"})
    assert a["workload"] == b["workload"] and a["daemon"] == b["daemon"]
    assert a["machine"].clock == b["machine"].clock


def test_sources_without_node_information_cannot_split_pages_between_threads(base):
    # DAMON sees heat, move_pages sees places: neither knows which thread touches a page
    for src in ("damon", "query"):
        r = experiment(base, 100, WL, {"source": src})
        assert r["daemon"]["migrated"] > 0
        assert 0.3 < r["last"]["locality"] < 0.7  # everything goes to one thread's node


def test_rate_limit_bounds_migration(base):
    r = experiment(base, 100, WL, {"source": "truth", "rate_mbps": 64})
    d, c = r["daemon"], r["machine"]
    elapsed = c.clock  # the daemon ran from (about) the start
    pages_allowed = 64 * (1 << 20) / c.page_size * elapsed / 1e9 + 2 * 64 * (1 << 20) / \
        c.page_size * 0.01
    assert 0 < d["migrated"] <= pages_allowed
    fast = experiment(base, 100, WL, {"source": "truth", "rate_mbps": 4096})
    assert fast["daemon"]["migrated"] > d["migrated"]


def test_hysteresis_and_cooldown_limit_ping_pong(base):
    # the accessing node alternates every 8 ticks: an eager daemon chases it
    phases = [{"threads": [1], "ticks": 8}, {"threads": [2], "ticks": 8}] * 6
    wl = {"size": 4 << 20, "pattern": "uniform", "rate": 1024, "phases": phases}
    eager = experiment(base, 100, wl, {"source": "truth", "hysteresis": 1.0,
                                        "cooldown_ns": 0, "decay": 0.0, "period_ns": 2_000_000})
    calm = experiment(base, 100, wl, {"source": "truth", "hysteresis": 3.0,
                                       "cooldown_ns": 100_000_000, "decay": 0.9,
                                       "period_ns": 2_000_000})
    assert eager["daemon"]["pingpong"] > 0
    assert calm["daemon"]["pingpong"] < eager["daemon"]["pingpong"]


def test_damos_migrate_hot_to_the_fast_node_and_cold_to_the_slow_one():
    d = {"machine": {"name": "cxl", "seed": 3},
         "nodes": [{"id": 0, "cpus": "0-3", "zones": {"Normal": "48M"}},
                   {"id": 1, "cpus": "", "zones": {"Normal": "96M"}}],
         "distances": {"matrix": [[10, 24], [24, 10]]},
         "processes": [{"name": "db", "pid": 200, "node": 0}]}
    m = engine.Machine.from_description(d)
    # hot set on the CPU-less slow node: migrate_hot promotes it
    r = experiment(m, 200, {"size": 24 << 20, "threads": [0, 0], "pattern": "hot",
                            "zipf": 1.2, "ticks": 250, "init": 1},
                   {"mode": "damos", "hot": 0})
    assert set(r["daemon"]["by_pair"]) == {"1->0"}
    assert r["last"]["locality"] > 0.9 > r["workload"]["locality"] - 0.2
    # everything on the fast node: migrate_cold demotes what stays cold
    j = m.start_sync("workload", 200, size=24 << 20, threads=[0], pattern="hot", zipf=1.5,
                   ticks=500, init=0)
    access.watch(m, j.owner, "damon", sample_ns=200_000, aggr_ns=4_000_000)
    dj = m.start_sync("daemon", 200, mode="damos", cold=1, cold_age=2, cold_max=0.1)
    m.run_jobs()
    rep = dj.result
    assert rep["by_pair"].get("0->1", 0) > 0 and "1->0" not in rep["by_pair"]
    nodes = j.owner.page_nodes()
    assert (nodes[:64] == 0).all()  # the hottest pages stayed on the fast node
    assert (nodes == 1).sum() > 0.3 * nodes.size
    m.check()


def test_daemon_counts_failures_and_keeps_going(base):
    c = base.clone()
    j = c.start_sync("workload", 100, **WL)
    # pin the first pages (an RDMA registration cannot migrate): -EAGAIN, and the
    # batch it sits in stops the move_pages call; the daemon tries again next period
    c.pin(100, j.owner.start, 64 * c.page_size)
    dj = c.start_sync("daemon", 100, source="truth")
    c.run_jobs()
    rep = dj.result
    assert rep["failures"] and rep["migrated"] > 0
    assert (j.owner.page_nodes()[:64] == 0).all()
    assert rep["workloads"][0]["after"]["locality"] > 0.9
    c.check()


def test_daemon_stop_and_report_text(base):
    c = base.clone()
    j = c.start_sync("workload", 100, **{**WL, "ticks": 1000})
    dj = c.start_sync("daemon", 100, source="hint")
    c.run_jobs(max_steps=60)
    dj.owner.stop()
    j.owner.stop()
    c.run_jobs()
    assert dj.state == "done" and dj.result["state"] == "done"
    text = dj.owner.report_text()
    assert "locality" in text and "user/hint" in text
    assert c.vmstat()["numa_hint_faults"] > 0
    assert np.isfinite(dj.result["source_cost_ns"])
    c.check()


def test_bad_daemon_options_are_refused(base):
    for kw in ({"mode": "nope"}, {"source": "numastat"}, {"mode": "damos"},
               {"mode": "damos", "hot": 7}, {"rate_mbps": 0}, {"bogus": 1}):
        with pytest.raises(OSError):
            base.start_sync("daemon", 100, **kw)
    with pytest.raises(OSError):
        base.start_sync("daemon", 424242)
