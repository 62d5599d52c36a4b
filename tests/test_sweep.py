"""Experiment sweeps (issue 17): `numacon sweep` on local processes and on a Dask
LocalCluster gives the same rows; an interrupted sweep resumes without repeating
runs; bad specs and an unreachable scheduler are one line; the console's sweep
screen under the pilot. Small machines and short experiments; no timing asserted."""

from __future__ import annotations

import asyncio
import csv
import os
import pickle
import re
import socket
import threading
import time
from pathlib import Path

import pytest
from distributed import LocalCluster
from textual.widgets import DataTable

import engine
from tools import sweep
from tools.sweep import LocalBackend, ResultsFiles, load_spec, read_results, run_one, run_sweep
from tui import cli
from tui.app import NumaConsoleApp
from tui.screens.sweep import SweepScreen, heat_style

TINY = """\
[machine]
name = "tiny"
seed = 7

[[nodes]]
id = 0
cpus = "0-1"
zones = { Normal = "64M" }

[[nodes]]
id = 1
cpus = "2-3"
zones = { Normal = "64M" }

[distances]
matrix = [[10, 21], [21, 10]]

[[processes]]
name = "app"
pid = 100
node = 0
"""

# 2 workloads x 3 daemon settings x 2 seeds = 12 runs
SPEC = """\
[sweep]
machines = ["{machine}"]
seeds = [1, 2]
experiments = ["100 size=4M threads=0,1 shard=on pattern=zipf ticks=40 init=0",
               "100 size=4M threads=1 pattern=hot ticks=40 init=0"]

[sweep.daemon]
source = ["hint", "truth", "query"]
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    # a machine path that is Rich markup: it must reach every screen as text
    d = tmp_path / "m["
    d.mkdir()
    (d / "]tiny.toml").write_text(TINY)
    p = tmp_path / "spec.toml"
    p.write_text(SPEC.format(machine="m[/]tiny.toml"))
    return p


def rows_of(path: Path) -> list[dict]:
    return sorted(read_results(path).rows, key=lambda r: r["run"])


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------ backends agree

def test_same_rows_with_one_and_two_workers_and_a_dask_cluster(spec, tmp_path, capsys):
    outs = {}
    for n in (1, 2):
        outs[n] = tmp_path / f"w{n}.csv"
        assert cli.main(["sweep", str(spec), "-o", str(outs[n]), "--workers", str(n)]) == 0
    out, err = capsys.readouterr()
    assert "12 runs (0 done before), 12 ran on 1 local process " in out
    assert "12 ran on 2 local processes" in out
    assert "best setting per workload and machine" in out
    # workers in threads of this process (no start-up of worker processes), but over
    # TCP on the loopback: connect()'s probe, and every task and the scattered machine
    # serialized as they are to a remote worker
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp://",
                      host="127.0.0.1", dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        outs["dask"] = tmp_path / "dask.csv"
        rc = cli.main(["sweep", str(spec), "-o", str(outs["dask"]),
                       "--scheduler", cluster.scheduler_address])
        assert rc == 0, capsys.readouterr().err
    out, _ = capsys.readouterr()
    assert "12 ran on Dask at" in out
    rows = {k: rows_of(p) for k, p in outs.items()}
    assert len(rows[1]) == 12 and [r["run"] for r in rows[1]] == list(range(12))
    assert all(r["status"] == "ok" for r in rows[1])
    assert rows[1] == rows[2] == rows["dask"]
    # the seed matters, and so does the setting: these are real runs
    assert len({(r["runtime_on_ns"], r["migrated"]) for r in rows[1]}) > 3
    assert any(r["migrated"] > 0 for r in rows[1])
    # the contract's columns, and a JSON lines twin of the CSV
    cols = read_results(outs[1]).columns
    for c in ("machine", "seed", "experiment", "source", "locality_off", "locality_on",
              "runtime_off_ns", "runtime_on_ns", "migrated"):
        assert c in cols
    assert len(sweep.jsonl_path(outs[1]).read_text().splitlines()) == 12


def test_run_one_is_plain_data_and_repeatable(spec):
    s = load_spec(spec)
    r = s.runs[0]  # hint on zipf: the seed shows in the figures
    src = r.machine.source(inline=True)
    assert set(src) == {"name", "kind", "digest", "text"}
    a = run_one(src, r.seed, r.experiment, dict(r.daemon))
    b = run_one(r.machine.file, r.seed, r.experiment, dict(r.daemon))  # a path will do
    c = run_one(src, r.seed, r.experiment, dict(r.daemon))  # the cached machine again
    assert a == b == c and a["status"] == "ok"
    other = run_one(src, r.seed + 1, r.experiment, dict(r.daemon))
    assert other != a  # another seed, another run


def test_a_snapshot_machine_travels_as_bytes(spec, tmp_path):
    """A snapshot named in a spec goes to a worker as its bytes (a Dask worker on
    another host) or its path (local processes), plain data either way, and gives the
    run the description gives."""
    m = engine.load(spec.parent / "m[" / "]tiny.toml")
    engine.save(m, tmp_path / "tiny.numacon")
    p = tmp_path / "snap.toml"
    p.write_text(spec.read_text().replace("m[/]tiny.toml", "tiny.numacon"))
    s, d = load_spec(p), load_spec(spec)
    ref = s.runs[0].machine
    assert ref.kind == "snapshot" and d.runs[0].machine.kind == "description"
    inline, local = ref.source(inline=True), ref.source(inline=False)
    assert set(inline) == {"name", "kind", "digest", "data"} and "path" not in inline
    assert inline["data"] == (tmp_path / "tiny.numacon").read_bytes()
    assert local["path"] == str(tmp_path / "tiny.numacon")
    inline = pickle.loads(pickle.dumps(inline))  # as a scheduler ships it
    r = s.runs[0]
    want = run_one(d.runs[0].machine.source(inline=True), r.seed, r.experiment,
                   dict(r.daemon))
    assert want["status"] == "ok"
    sweep._cache.key = None  # build it from the bytes, not from the thread's cache
    assert run_one(inline, r.seed, r.experiment, dict(r.daemon)) == want
    sweep._cache.key = None
    assert run_one(local, r.seed, r.experiment, dict(r.daemon)) == want


def test_summary_names_the_best_setting_and_those_that_made_things_worse():
    """The summary from rows (exact text): per machine and workload the setting with
    the lowest mean runtime change over seeds, and every setting whose mean change is
    above zero, with how many seeds it made slower; a failed run counts in neither."""

    def row(run, machine, exp, seed, source, change, loc_on, status="ok"):
        r = {"run": run, "machine": machine, "seed": seed, "experiment": exp,
             "source": source, **sweep.failed_result("boom")}
        if status == "ok":
            r.update(status="ok", runtime_change=change, locality_off=0.5,
                     locality_on=loc_on, error="")
        return r

    rows = [row(0, "m1", "w", 1, "hint", 0.10, 0.6), row(1, "m1", "w", 2, "hint", -0.02, 0.6),
            row(2, "m1", "w", 1, "truth", -0.20, 0.9), row(3, "m1", "w", 2, "truth", -0.10, 0.8),
            row(4, "m2", "w", 1, "hint", -0.05, 0.7), row(5, "m2", "w", 1, "truth", 0, 0,
                                                           status="failed")]
    assert sweep.summary_text(rows, ["source"], head="6 runs").splitlines() == [
        "sweep: 6 runs; 5 ok, 1 failed",
        "best setting per workload and machine (runtime with the daemon on against off, "
        "mean over seeds):",
        "  machine  workload  best setting  runtime  locality off -> on",
        "  m1       w         source=truth  -15.0%   50.0% -> 85.0%",
        "  m2       w         source=hint   -5.0%    50.0% -> 70.0%",
        "settings that made things worse:",
        "  machine  workload  setting      runtime  worse in",
        "  m1       w         source=hint  +4.0%    1 of 2 seeds"]


# ------------------------------------------------------------------ resume

def test_interrupted_sweep_resumes_without_repeating_runs(spec, tmp_path, capsys):
    s = load_spec(spec)
    out = tmp_path / "r.csv"
    res = ResultsFiles(out, s, resume=False)
    res.check()
    got = run_sweep(s, LocalBackend(2), res, limit=5)  # as if killed after 5 rows
    assert got.interrupted and got.ran == 5
    first = out.read_text().splitlines()
    assert len(first) == 1 + 5
    with open(out, "a") as fh:  # and the kill cut a row short
        fh.write("7,m[/]tiny.toml,1,\"100 size")
    # without --resume the file is not overwritten
    assert cli.main(["sweep", str(spec), "-o", str(out)]) == 1
    assert "--resume" in one_line(capsys.readouterr().err)
    assert cli.main(["sweep", str(spec), "-o", str(out), "--resume", "--workers", "2"]) == 0
    o, e = capsys.readouterr()
    assert "resuming" in e and "5 of 12 runs done" in e
    assert "12 runs (5 done before), 7 ran" in o
    lines = out.read_text().splitlines()
    assert lines[: len(first)] == first  # rows already there stay as they were
    rows = rows_of(out)
    assert sorted(r["run"] for r in rows) == list(range(12))  # each run exactly once
    # and they are the rows an uninterrupted sweep writes
    full = tmp_path / "full.csv"
    assert cli.main(["sweep", str(spec), "-o", str(full), "--workers", "2"]) == 0
    assert rows == rows_of(full)
    # a resume with nothing left runs nothing
    capsys.readouterr()
    assert cli.main(["sweep", str(spec), "-o", str(out), "--resume"]) == 0
    assert "12 runs (12 done before), 0 ran" in capsys.readouterr().out


class _CtrlC(LocalBackend):
    """Local processes, and a Ctrl-C after `after` rows (as the terminal delivers it:
    KeyboardInterrupt in the main thread, while it waits for the next run)."""

    def __init__(self, after: int) -> None:
        super().__init__(1)
        self.after = after

    def as_completed(self, futures: list):
        for i, f in enumerate(super().as_completed(futures)):
            if i == self.after:
                raise KeyboardInterrupt
            yield f


def test_ctrl_c_keeps_what_finished_and_says_how_to_resume(spec, tmp_path, capsys):
    out = tmp_path / "c.csv"
    rc = sweep.sweep_main(str(spec), str(out), lambda: _CtrlC(3))
    assert rc == 130
    e = capsys.readouterr().err
    assert f"interrupted: 3 of 12 runs in {out}; numacon sweep {spec} -o {out} --resume " \
           f"continues" in e and "Traceback" not in e
    assert len(rows_of(out)) == 3
    assert cli.main(["sweep", str(spec), "-o", str(out), "--resume", "--workers", "2"]) == 0
    assert "12 runs (3 done before), 9 ran" in capsys.readouterr().out
    assert sorted(r["run"] for r in rows_of(out)) == list(range(12))


class _LostScheduler(LocalBackend):
    """A backend whose cluster goes away while the machines are being sent."""

    def __init__(self) -> None:
        super().__init__(1)

    def ship(self, ref):
        raise OSError("Timed out trying to connect to tcp://10.0.0.9:8786 after 1 s")


def test_a_backend_lost_while_sending_the_runs_is_one_line(spec, tmp_path, capsys):
    """The scheduler went away after the handshake, while the machines were shipped:
    one line, exit 1, no traceback; nothing ran, so the results file has no row."""
    out = tmp_path / "lost.csv"
    rc = sweep.sweep_main(str(spec), str(out), _LostScheduler)
    e = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in e
    assert one_line(e) == ("numacon: error: 1 local process: cannot send the runs: Timed "
                           "out trying to connect to tcp://10.0.0.9:8786 after 1 s")
    assert not out.exists() or rows_of(out) == []


def test_resume_refuses_results_of_another_spec(spec, tmp_path, capsys):
    out = tmp_path / "x.csv"
    assert cli.main(["sweep", str(spec), "-o", str(out), "--workers", "1"]) == 0
    text = spec.read_text().replace('source = ["hint", "truth", "query"]',
                                    'threshold = [0.3]')
    other = tmp_path / "other.toml"
    other.write_text(text)
    capsys.readouterr()
    assert cli.main(["sweep", str(other), "-o", str(out), "--resume"]) == 1
    assert "written by a different spec" in one_line(capsys.readouterr().err)


# ------------------------------------------------------------------ failures go on

def test_failed_run_is_reported_with_its_parameters_and_the_sweep_goes_on(tmp_path, capsys):
    (tmp_path / "tiny.toml").write_text(TINY)
    spec = tmp_path / "s.toml"
    spec.write_text('[sweep]\nmachines = ["tiny.toml"]\nseeds = [3]\n'
                    'experiments = ["100 size=1M threads=1 ticks=10 init=0",\n'
                    '               "999 size=1M threads=1 ticks=10 init=0"]\n'
                    '[sweep.daemon]\nsource = ["truth"]\nrate = [512, -1]\n')
    out = tmp_path / "s.csv"
    assert cli.main(["sweep", str(spec), "-o", str(out), "--workers", "2"]) == 1
    o, e = capsys.readouterr()
    rows = rows_of(out)
    assert [r["status"] for r in rows] == ["ok", "failed", "failed", "failed"]
    assert "ESRCH" in rows[2]["error"] and "must be positive" in rows[1]["error"]
    assert "run 2 failed (machine=tiny.toml seed=3 experiment='999 size=1M threads=1 " \
           "ticks=10 init=0' source=truth rate=512): ESRCH" in e
    assert "1 ok, 3 failed" in o
    # the progress bar (its last state: stderr is not a terminal here): runs done,
    # running, failed, elapsed and the ETA
    bar = next(ln for ln in e.splitlines() if ln.startswith("sweep "))
    assert re.search(r" 4/4 running 0  failed 3 \d+:\d\d:\d\d ETA \d+:\d\d:\d\d$", bar), bar
    # --resume runs the failed ones again (they fail again); the ok one is not repeated
    assert cli.main(["sweep", str(spec), "-o", str(out), "--resume", "--workers", "1"]) == 1
    o, e = capsys.readouterr()
    assert "4 runs (1 done before), 3 ran" in o
    assert sorted(r["run"] for r in rows_of(out)) == [0, 1, 1, 2, 2, 3, 3]
    assert len(sweep.latest(rows_of(out), ["source", "rate"])) == 4


# ------------------------------------------------------------------ bad specs

BAD = [
    # (spec text, line, what the message says)
    ('[sweep]\nmachines = ["{m}"]\nexperiments = ["100 ticks=5"]\ncolour = "red"\n',
     4, "sweep.colour: unknown key"),
    ('[sweep]\nmachines = ["{m}"]\nexperiments = ["100 ticks=5"]\n[sweep.daemon]\n'
     'source = ["hint"]\nspeed = [1]\n', 6, "sweep.daemon.speed: unknown daemon option"),
    ('[sweep]\nmachines = ["{m}"]\nexperiments = ["100 ticks=5"]\n[[sweep.runs]]\n'
     'machine = "{m}"\nexperiment = "100 ticks=6"\nnode = 1\n', 7,
     "sweep.runs[0].node: unknown key"),
    ('[sweep]\nexperiments = ["100 ticks=5"]\nmachines = ["{m}", "nope.toml"]\n', 3,
     "sweep.machines[1]: nope.toml: cannot read: No such file or directory"),
    ('[sweep]\nmachines = ["broken.toml"]\nexperiments = ["100 ticks=5"]\n', 2,
     "sweep.machines[0]: cannot build the machine"),
    ('[sweep]\nmachines = ["{m}"]\nexperiments = ["100 ticks=5"]\nseeds = []\n', 4,
     "sweep.seeds: an empty list: the grid is empty"),
    ('[sweep]\nmachines = ["{m}"]\nexperiments = ["100 ticks=5"]\n\n[sweep.daemon]\n'
     'source = []\n', 6, "sweep.daemon.source: an empty list: the grid is empty"),
    ('[sweep]\nseeds = [1]\n', 1, "sweep: the grid is empty"),
    ('[sweep]\nmachines = ["{m}"]\nexperiments = ["100 ticks=5", "100 tick=5"]\n', 3,
     "sweep.experiments[1]: experiment 100 tick=5: unknown option tick="),
    ('[sweep]\nmachines = ["{m}"]\nexperiments = ["100 seed=4"]\n', 3,
     "seed= comes from the sweep's seeds"),
    ('[sweep]\nmachines = ["{m}"]\nexperiments = ["100"]\n[sweep.daemon]\nrate = ["fast"]\n',
     5, "sweep.daemon.rate[0]: rate: 'fast' is not a number"),
    ('[sweep]\nmachines = ["{m}"\n', 2, "not valid TOML"),
    ('[sweep]\nmachines = ["{m}"\nseeds = 1\n', 3, "not valid TOML"),
    ('[other]\nx = 1\n', 1, "other: unknown key"),
]


@pytest.mark.parametrize("text,line,what", BAD)
def test_bad_spec_refused_with_file_line_reason_before_anything_runs(tmp_path, capsys,
                                                                     text, line, what):
    (tmp_path / "tiny.toml").write_text(TINY)
    (tmp_path / "broken.toml").write_text(TINY.replace('"64M"', '"64Q"'))
    spec = tmp_path / "bad.toml"
    spec.write_text(text.format(m="tiny.toml"))
    assert cli.main(["sweep", str(spec), "--workers", "1"]) == 1
    o, e = capsys.readouterr()
    msg = one_line(e)
    assert msg.startswith(f"numacon: error: {spec}:{line}: "), msg
    assert what in msg
    assert not o
    assert not (tmp_path / "bad.csv").exists()


def test_missing_spec_and_bad_arguments_are_one_line(tmp_path, capsys):
    assert cli.main(["sweep", str(tmp_path / "none.toml")]) == 1
    assert "cannot read" in one_line(capsys.readouterr().err)
    assert cli.main(["sweep"]) == 2
    assert "SPEC.toml" in one_line(capsys.readouterr().err)
    assert cli.main(["sweep", "--show", str(tmp_path / "none.csv")]) == 1
    assert "cannot read" in one_line(capsys.readouterr().err)


def test_explicit_runs_and_presets(tmp_path):
    spec = tmp_path / "runs.toml"
    spec.write_text('[sweep]\n[[sweep.runs]]\nmachine = "default"\n'
                    'experiment = "103 size=1M threads=2 ticks=5 init=0"\nseed = 4\n'
                    'daemon = { source = "truth", rate = 512 }\n'
                    '[[sweep.runs]]\nmachine = "cxl-tiered"\n'
                    'experiment = "200 size=1M threads=0 pattern=hot ticks=5 init=2"\n'
                    'daemon = { mode = "damos", hot = 0 }\n')
    s = load_spec(spec)
    assert [r.machine.kind for r in s.runs] == ["default", "description"]
    assert s.daemon_keys == ["source", "rate", "mode", "hot"]
    assert s.runs[0].daemon == (("source", "truth"), ("rate", "512"))
    assert s.runs[1].seed == 0
    b = LocalBackend()  # --workers: the CPU count by default
    assert b.slots == (os.cpu_count() or 1)
    b.close()


def test_the_readme_example_spec_is_the_grid_it_says():
    """docs/sweep-example.toml, README's example: 3 machines x 2 workloads x 6 daemon
    settings x 2 seeds = 72 runs, its presets found by name."""
    s = load_spec(Path(__file__).resolve().parent.parent / "docs" / "sweep-example.toml")
    assert len(s.runs) == 72 and s.daemon_keys == ["source", "rate"]
    assert [r.machine.name for r in s.runs[::24]] == ["default", "epyc-nps4", "cxl-tiered"]
    assert {r.machine.kind for r in s.runs} == {"default", "description"}
    assert {dict(r.daemon)["source"] for r in s.runs} == {"hint", "truth", "damon"}


# ------------------------------------------------------------------ the scheduler

def test_unreachable_scheduler_is_one_line(spec, tmp_path, capsys):
    with socket.socket() as so:  # a port nobody listens on
        so.bind(("127.0.0.1", 0))
        port = so.getsockname()[1]
    out = tmp_path / "u.csv"
    rc = cli.main(["sweep", str(spec), "-o", str(out), "--scheduler",
                   f"tcp://127.0.0.1:{port}", "--timeout", "2"])
    assert rc == 1
    msg = one_line(capsys.readouterr().err)
    assert msg.startswith(f"numacon: error: cannot reach the Dask scheduler at "
                          f"tcp://127.0.0.1:{port}: ")
    assert not out.exists()  # refused before any results file


@pytest.mark.parametrize("reply,why", [
    (b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
     "something listens there but does not speak Dask's protocol"),
    (None, "no answer within 1 s")], ids=["http", "silent"])
def test_a_port_that_is_not_a_scheduler_is_one_line(spec, tmp_path, capsys, reply, why):
    """Something else listening: a server that replies with other bytes (HTTP), or one
    that waits for the client to speak first and never answers: one line, within
    --timeout, not what the bytes made Dask's framing raise nor a wait until the other
    side hangs up."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    held = []

    def serve() -> None:
        for _ in range(4):
            try:
                c, _ = srv.accept()
            except OSError:
                return
            if reply is None:  # kept open, silent, until the test ends (or 15 s:
                held.append(c)  # a client that waits for it fails, it does not hang)
                t = threading.Timer(15, c.close)
                t.daemon = True
                t.start()
                continue
            with c:
                c.sendall(reply)

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        rc = cli.main(["sweep", str(spec), "-o", str(tmp_path / "h.csv"), "--scheduler",
                       f"tcp://127.0.0.1:{port}", "--timeout", "1"])
    finally:
        srv.close()
        for c in held:
            c.close()
    assert rc == 1
    assert one_line(capsys.readouterr().err) == (
        f"numacon: error: no Dask scheduler answers at tcp://127.0.0.1:{port}: {why}")
    assert not (tmp_path / "h.csv").exists()


def test_a_scheduler_without_workers_is_one_line(spec, tmp_path, capsys):
    """A scheduler nobody has started a worker for: refused within --timeout, before
    any results file, where the runs would have waited for workers forever."""
    with LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        addr = cluster.scheduler_address
        capsys.readouterr()  # the cluster's own start-up warnings, if any
        rc = cli.main(["sweep", str(spec), "-o", str(tmp_path / "n.csv"), "--scheduler",
                       addr, "--timeout", "1"])
    assert rc == 1
    assert one_line(capsys.readouterr().err) == (
        f"numacon: error: the Dask scheduler at {addr} has no workers (none joined within "
        f"1 s): start some with `dask worker {addr}`")
    assert not (tmp_path / "n.csv").exists()


# ------------------------------------------------------------------ the console

async def _until(pilot, cond, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not cond() and time.monotonic() - t0 < timeout:
        await asyncio.sleep(0.05)
        await pilot.pause()
    assert cond()


async def test_sweep_screen_shows_runs_and_heat_grid_and_enter_replays(spec, tmp_path):
    out = tmp_path / "screen.csv"
    s = load_spec(spec)
    res = ResultsFiles(out, s, resume=False)
    res.check()
    run_sweep(s, LocalBackend(2), res)
    app = NumaConsoleApp()
    async with app.run_test(size=(200, 50)) as pilot:
        app.run_command("sweep /no/such/file.csv")  # refused; the console goes on
        await pilot.pause()
        assert not isinstance(app.screen, SweepScreen)
        assert not app.last_result.ok and "cannot read" in app.last_result.text
        app.run_command(f"sweep {out}")
        await pilot.pause()
        scr = app.screen
        assert isinstance(scr, SweepScreen)
        runs = scr.query_one("#runs", DataTable)
        assert runs.row_count == 12
        machines = {str(runs.get_cell(k, "machine")) for k in runs.rows}
        assert machines == {"m[/]tiny.toml"}  # shown as text, not read as markup
        heat = scr.query_one("#heat", DataTable)
        assert heat.row_count == 3 and len(heat.columns) == 1 + 2  # settings x workloads
        assert {str(heat.get_cell(k, "setting")) for k in heat.rows} == \
            {"source=hint", "source=truth", "source=query"}
        cell = str(heat.get_cell("source=truth", "W1")).strip()
        assert cell.endswith("%") and cell[0] in "+-"
        # coloured by the runtime change: green faster, red slower
        _, wls, cells = sweep.grid(scr.rows, scr.keys)
        assert cells
        for (setting, wl), c in cells.items():
            got = heat.get_cell(setting, f"W{wls.index(wl) + 1}")
            assert str(got).strip() == sweep.fmt_change(c.change)
            assert str(got.style) == heat_style(c.change)
            bg = str(got.style).split(" on #")[1]
            red, green = int(bg[0:2], 16), int(bg[2:4], 16)
            if abs(c.change) >= 0.005:
                assert (green > red) == (c.change < 0), (setting, c.change, bg)
        # sortable: by runtime change, then reversed
        scr.sort_by("change")
        first = [float(runs.get_row_at(i)[runs.get_column_index("change")].value)
                 for i in range(runs.row_count)]
        assert first == sorted(first)
        scr.sort_by("change")
        again = [float(runs.get_row_at(i)[runs.get_column_index("change")].value)
                 for i in range(runs.row_count)]
        assert again == sorted(first, reverse=True)
        # enter on a run replays it on screen
        runs.focus()
        runs.move_cursor(row=0)
        row = scr.selected_row()
        await pilot.press("enter")
        await _until(pilot, lambda: "recorded run" in scr.replay_text())
        text = scr.replay_text()
        assert f"seed={row['seed']}" in text and "daemon on" in text
        assert "the same figures as the recorded run" in text
        await pilot.press("b")
        await pilot.pause()
        assert not isinstance(app.screen, SweepScreen)


async def test_numacon_sweep_show_opens_the_screen(spec, tmp_path):
    out = tmp_path / "show.csv"
    s = load_spec(spec)
    res = ResultsFiles(out, s, resume=False)
    res.check()
    run_sweep(s, LocalBackend(1), res, limit=3)
    app = NumaConsoleApp(sweep=str(out))
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, SweepScreen)
        assert app.screen.query_one("#runs", DataTable).row_count == 3


def test_results_file_reads_back_what_was_written(spec, tmp_path):
    out = tmp_path / "rt.csv"
    s = load_spec(spec)
    res = ResultsFiles(out, s, resume=False)
    res.check()
    run_sweep(s, LocalBackend(1), res, limit=2)
    back = rows_of(out)
    assert back == sorted(res.rows, key=lambda r: r["run"])
    with open(out, newline="") as fh:
        header = next(csv.reader(fh))
    assert header == s.columns
