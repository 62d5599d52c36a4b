"""Experiment sweeps: `numacon sweep SPEC.toml [-o FILE.csv] [--workers N | --scheduler
tcp://HOST:PORT] [--resume]` (issue 17).

A spec names machines, `experiment` workloads, seeds and daemon settings; the grid is
their product (plus any explicit `[[sweep.runs]]`). Each run is one `experiment` (the
same workload and seed with the daemon off and on) run by engine.commands.execute in a
worker, on a machine the worker builds itself from a description's text or a
snapshot: no engine object crosses a process or host boundary, so a row depends only
on its parameters, never on where it ran. Rows are appended to a CSV file and a JSON
lines file beside it as runs finish; --resume skips the runs already there.

    [sweep]
    machines = ["saves/default.toml"]     # descriptions or snapshots, or "default"
    seeds = [1, 2]
    experiments = ["103 size=16M threads=0,2 shard=on pattern=zipf ticks=60 init=0"]
    [sweep.daemon]                        # each key a daemon option; lists multiply
    source = ["hint", "truth"]

    [[sweep.runs]]                        # optional: one run more, outside the product
    machine = "saves/cxl-tiered.toml"
    experiment = "..."
    seed = 1
    daemon = { mode = "damos", hot = 1 }

Backends: local processes (LocalBackend) or a Dask cluster (tools/sweep_dask.py), both
behind the same small interface (ship, submit, as_completed, close) that run_sweep
drives."""

from __future__ import annotations

import concurrent.futures
import csv
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import re
import shlex
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

import engine
from engine.commands import CommandError, execute, parse_experiment
from engine.machines.container import MAGIC, SaveError
from engine.machines.description import DescriptionError
from engine.machines.snapshot import load_description
from engine.machines.toml_lines import key_line
from engine.units import fmt_ns

SWEEP_KEYS = ("machines", "seeds", "experiments", "daemon", "runs")
RUN_KEYS = ("machine", "seed", "experiment", "daemon")
# the daemon options of the command language (`daemon start`, `experiment ... --`);
# listed here only to name them in an error: engine.commands parses the values
DAEMON_OPTIONS = ("mode", "source", "period", "rate", "threshold", "min", "hysteresis",
                  "cooldown", "decay", "hot", "cold", "hot_min", "cold_max", "cold_age",
                  "duration")
DEFAULT_MACHINE = "default"  # the embedded default machine, no file needed
PRESETS = Path(__file__).resolve().parent.parent / "saves"  # saves/NAME.toml by NAME

HEAD = ["run", "machine", "seed", "experiment"]  # then one column per daemon key
RESULT = ["status", "locality_off", "locality_on", "last_off", "last_on",
          "latency_off_ns", "latency_on_ns", "runtime_off_ns", "runtime_on_ns",
          "runtime_change", "stalls_off", "stalls_on", "migrated", "attempted",
          "migrate_ns", "pingpong", "failures", "error"]
TAIL = ["machine_file"]  # where the machine came from, for a replay in the console
INT_COLS = {"run", "seed", "runtime_off_ns", "runtime_on_ns", "stalls_off", "stalls_on",
            "migrated", "attempted", "migrate_ns", "pingpong"}
FLOAT_COLS = {"locality_off", "locality_on", "last_off", "last_on", "latency_off_ns",
              "latency_on_ns", "runtime_change"}


class SpecError(Exception):
    """A spec that cannot run: one line, "SPEC:LINE: key: reason"."""


class SweepError(Exception):
    """A results file or backend problem: one line."""


# =================================================================== the spec

@dataclass(frozen=True)
class MachineRef:
    """A machine of the spec: `name` as written there, `file` its absolute path ("" for
    the embedded default), kind "default" | "description" | "snapshot"."""

    name: str
    file: str
    kind: str
    digest: str
    text: str = ""  # a description's text

    def source(self, inline: bool) -> dict:
        """What a worker gets (plain data): the description's text, or a snapshot's path
        (inline=False: the worker shares this file system) or bytes (inline=True)."""
        src = {"name": self.name, "kind": self.kind, "digest": self.digest}
        if self.kind == "description":
            src["text"] = self.text
        elif self.kind == "snapshot":
            if inline:
                src["data"] = Path(self.file).read_bytes()
            else:
                src["path"] = self.file
        return src


@dataclass(frozen=True)
class Run:
    index: int
    machine: MachineRef
    seed: int
    experiment: str
    daemon: tuple[tuple[str, str], ...]  # (option, value) in the spec's order

    def key(self, daemon_keys: list[str]) -> tuple:
        d = dict(self.daemon)
        return (self.machine.name, str(self.seed), self.experiment,
                tuple(d.get(k, "") for k in daemon_keys))

    def params(self, daemon_keys: list[str]) -> dict:
        d = dict(self.daemon)
        row: dict[str, Any] = {"run": self.index, "machine": self.machine.name,
                               "seed": self.seed, "experiment": self.experiment}
        row.update({k: d.get(k, "") for k in daemon_keys})
        return row

    def describe(self) -> str:
        return describe_params(self.machine.name, self.seed, self.experiment, self.daemon)


@dataclass
class Spec:
    path: str
    runs: list[Run]
    daemon_keys: list[str]

    @property
    def columns(self) -> list[str]:
        return HEAD + self.daemon_keys + RESULT + TAIL


def describe_params(machine: str, seed: int | str, experiment: str,
                    daemon: Iterable[tuple[str, str]]) -> str:
    setting = " ".join(f"{k}={v}" for k, v in daemon if v != "") or "daemon defaults"
    return f"machine={machine} seed={seed} experiment={experiment!r} {setting}"


def experiment_line(experiment: str, seed: int, daemon: Iterable[tuple[str, str]]) -> str:
    """The `experiment` command of one run: the workload arguments, seed=SEED (the
    workload's RNG seed: the run is deterministic for it), then the daemon options."""
    words = shlex.split(experiment)
    if "--" in words:
        i = words.index("--")
        wargs, dargs = words[:i], words[i + 1:]
    else:
        wargs, dargs = words, []
    args = [*wargs, f"seed={seed}", "--", *dargs, *(f"{k}={v}" for k, v in daemon if v != "")]
    return shlex.join(["experiment", *args])


class _Where:
    """file:line for a key path of the spec (engine.machines.description's key_line)."""

    def __init__(self, path: str, text: str) -> None:
        self.path, self.text = path, text

    def err(self, key: str, msg: str) -> SpecError:
        line = key_line(self.text, key) if key else None
        where = f"{self.path}:{line}" if line else self.path
        return SpecError(f"{where}: {key}: {msg}" if key else f"{where}: {msg}")


def load_spec(path: str | os.PathLike) -> Spec:
    """Read and check a spec: every key known, every machine readable and built once,
    every experiment parsed by the command language, the grid not empty. Raises
    SpecError("SPEC:LINE: key: reason") before anything runs."""
    p = os.fspath(path)
    try:
        text = Path(p).read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"{p}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{p}: not a TOML sweep spec (not UTF-8 text)") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        mt = re.search(r"at line (\d+)", str(e))
        # "at end of document": the last line with something on it
        line = mt.group(1) if mt else len(text.rstrip().splitlines()) or 1
        raise SpecError(f"{p}:{line}: not valid TOML: {e}") from None
    w = _Where(p, text)
    for k in doc:
        if k != "sweep":
            raise w.err(k, "unknown key (a spec has one [sweep] table)")
    sw = doc.get("sweep")
    if not isinstance(sw, dict):
        raise w.err("", "no [sweep] table")
    for k in sw:
        if k not in SWEEP_KEYS:
            raise w.err(f"sweep.{k}", f"unknown key (keys: {', '.join(SWEEP_KEYS)})")
    base = Path(p).resolve().parent
    machines: dict[str, MachineRef] = {}

    def machine(key: str, name: Any) -> MachineRef:
        if not isinstance(name, str) or not name:
            raise w.err(key, "a machine is a path or a preset name (text)")
        if name not in machines:
            machines[name] = _machine_ref(w, key, base, name)
        return machines[name]

    def strings(key: str) -> list[str]:
        v = sw.get(key.split(".")[-1])
        if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
            raise w.err(key, "a list of non-empty strings")
        return v

    def unique(key: str, values: list) -> None:
        seen: set = set()
        for i, x in enumerate(values):
            if x in seen:
                raise w.err(f"{key}[{i}]", f"{x!r} is listed twice")
            seen.add(x)

    has_grid = "machines" in sw or "experiments" in sw
    runs_in = sw.get("runs", [])
    if not isinstance(runs_in, list) or not all(isinstance(r, dict) for r in runs_in):
        raise w.err("sweep.runs", "a list of tables ([[sweep.runs]])")
    if not has_grid and not runs_in:
        raise w.err("sweep", "the grid is empty: give machines and experiments (or "
                             "[[sweep.runs]])")
    seeds = sw.get("seeds", [0])
    if not isinstance(seeds, list) or not all(_is_int(x) for x in seeds):
        raise w.err("sweep.seeds", "a list of integers")
    machine_names: list[str] = []
    experiments: list[str] = []
    if has_grid:
        for k in ("machines", "experiments"):
            if k not in sw:
                raise w.err("sweep", f"{k} is missing: the grid is the product of machines, "
                                     f"experiments, seeds and daemon settings")
        machine_names, experiments = strings("sweep.machines"), strings("sweep.experiments")
    for k, values in (("sweep.machines", machine_names), ("sweep.experiments", experiments),
                      ("sweep.seeds", seeds)):
        if has_grid and not values:
            raise w.err(k, "an empty list: the grid is empty")
        unique(k, values)
    daemon = sw.get("daemon", {})
    if not isinstance(daemon, dict):
        raise w.err("sweep.daemon", "a table of daemon options ([sweep.daemon])")
    daemon_keys = list(daemon)
    settings_lists = []
    for k, v in daemon.items():
        key = f"sweep.daemon.{k}"
        _daemon_key(w, key, k)
        vals = v if isinstance(v, list) else [v]
        if not vals:
            raise w.err(key, "an empty list: the grid is empty")
        strs = [_daemon_value(w, f"{key}[{i}]" if isinstance(v, list) else key, k, x)
                for i, x in enumerate(vals)]
        unique(key, strs)
        settings_lists.append([(k, s) for s in strs])
    settings = list(itertools.product(*settings_lists))
    for i, e in enumerate(experiments):
        _check_experiment(w, f"sweep.experiments[{i}]", e, daemon_keys)

    runs: list[Run] = []
    for mi, name in enumerate(machine_names):
        ref = machine(f"sweep.machines[{mi}]", name)
        for e in experiments:
            for st in settings:
                for s in seeds:
                    runs.append(Run(len(runs), ref, int(s), e, tuple(st)))
    for i, rd in enumerate(runs_in):
        key = f"sweep.runs[{i}]"
        for k in rd:
            if k not in RUN_KEYS:
                raise w.err(f"{key}.{k}", f"unknown key (keys: {', '.join(RUN_KEYS)})")
        for k in ("machine", "experiment"):
            if k not in rd:
                raise w.err(key, f"{k} is missing")
        ref = machine(f"{key}.machine", rd["machine"])
        e = rd["experiment"]
        if not isinstance(e, str) or not e.strip():
            raise w.err(f"{key}.experiment", "a non-empty string")
        seed = rd.get("seed", seeds[0] if seeds else 0)
        if not _is_int(seed):
            raise w.err(f"{key}.seed", "an integer")
        dd = rd.get("daemon", {})
        if not isinstance(dd, dict):
            raise w.err(f"{key}.daemon", "a table of daemon options")
        st = []
        for k, v in dd.items():
            _daemon_key(w, f"{key}.daemon.{k}", k)
            st.append((k, _daemon_value(w, f"{key}.daemon.{k}", k, v)))
            if k not in daemon_keys:
                daemon_keys.append(k)
        _check_experiment(w, f"{key}.experiment", e, [k for k, _ in st])
        runs.append(Run(len(runs), ref, int(seed), e, tuple(st)))
    seen: dict[tuple, int] = {}
    n_grid = len(runs) - len(runs_in)
    for r in runs:
        k = r.key(daemon_keys)
        if k in seen:
            raise w.err(f"sweep.runs[{r.index - n_grid}]" if r.index >= n_grid else "sweep",
                        f"the same run as run {seen[k]} ({r.describe()})")
        seen[k] = r.index
    if not runs:
        raise w.err("sweep", "the grid is empty")
    return Spec(p, runs, daemon_keys)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _daemon_key(w: _Where, key: str, k: str) -> None:
    if k not in DAEMON_OPTIONS:
        raise w.err(key, f"unknown daemon option (options: {', '.join(DAEMON_OPTIONS)})")


def _daemon_value(w: _Where, key: str, k: str, v: Any) -> str:
    """A TOML value as the command language's text, checked by its parser."""
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise w.err(key, f"{v!r} is not a number or a word")
    s = v if isinstance(v, str) else repr(v)
    try:
        parse_experiment(["0", "--", f"{k}={s}"])
    except CommandError as e:
        raise w.err(key, str(e)) from None
    return s


def _check_experiment(w: _Where, key: str, e: Any, daemon_keys: list[str]) -> None:
    if not isinstance(e, str) or not e.strip():
        raise w.err(key, "a non-empty string")
    try:
        words = shlex.split(e)
        pid, wopts, dopts = parse_experiment(words)
    except ValueError as ex:  # CommandError is not one; shlex's unbalanced quotes are
        raise w.err(key, f"cannot split: {ex}") from None
    except CommandError as ex:
        raise w.err(key, f"experiment {e}: {ex}") from None
    if "seed" in wopts:
        raise w.err(key, "seed= comes from the sweep's seeds (sweep.seeds)")
    given = set(words[words.index("--") + 1:]) if "--" in words else set()
    for k in daemon_keys:
        if any(a.startswith(f"{k}=") for a in given):
            raise w.err(key, f"{k}= is also a daemon setting of the sweep")


def _machine_ref(w: _Where, key: str, base: Path, name: str) -> MachineRef:
    """Resolve (relative to the spec's directory, else a preset of saves/ by name),
    read and build a machine once, so that a bad one stops the sweep before it runs."""
    if name == DEFAULT_MACHINE:
        return MachineRef(name, "", "default", "default")
    path = Path(name).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.exists() and "/" not in name and (PRESETS / f"{name}.toml").is_file():
        path = PRESETS / f"{name}.toml"
    try:
        data = path.read_bytes()
    except OSError as e:
        raise w.err(key, f"{name}: cannot read: {e.strerror or e}") from None
    try:
        engine.load(path)
    except SaveError as e:
        raise w.err(key, f"cannot build the machine: {e}") from None
    digest = hashlib.sha256(data).hexdigest()
    if data.startswith(MAGIC):
        return MachineRef(name, str(path), "snapshot", digest)
    return MachineRef(name, str(path), "description", digest, data.decode("utf-8"))


# =================================================================== one run (in a worker)

_cache = threading.local()  # per worker thread: the last machine built (Dask may run
#                             several runs in threads of one process)


def build_machine(src: dict | str) -> Any:
    """The machine of a run's source (MachineRef.source), or of a path / "default"."""
    if isinstance(src, str):
        if src == DEFAULT_MACHINE:
            return engine.Machine.default()
        return engine.load(src)
    kind = src["kind"]
    if kind == "default":
        return engine.Machine.default()
    if kind == "description":
        try:
            return load_description(src["text"], source=src["name"])
        except tomllib.TOMLDecodeError as e:
            raise SaveError(f"{src['name']}: not a valid TOML description: {e}") from None
    if "path" in src:
        return engine.load(src["path"])
    with tempfile.TemporaryDirectory() as d:  # engine.load reads files only
        f = Path(d) / "machine.snapshot"
        f.write_bytes(src["data"])
        return engine.load(f)


def _machine(src: dict | str) -> Any:
    key = src if isinstance(src, str) else src["digest"]
    if getattr(_cache, "key", None) != key:
        _cache.key, _cache.machine = None, None
        _cache.machine = build_machine(src)
        _cache.key = key
    return _cache.machine


def run_one(machine: dict | str, seed: int, experiment: str, daemon: dict[str, str]) -> dict:
    """One run: `experiment` with the daemon off and on, on the machine built here
    from plain data (MachineRef.source, a path or "default"). Returns the result
    columns (status "ok" or "failed" with the error); never raises for a run that
    fails, so a bad spec entry costs one row, not the sweep. The machine is reused by
    the next run of this thread: an experiment runs on copies and leaves it as it was."""
    try:
        m = _machine(machine)
    except (SaveError, DescriptionError, OSError, ValueError) as e:
        return failed_result(f"machine: {e}")
    r = execute(m, experiment_line(experiment, seed, daemon.items()))
    if not r.ok:
        return failed_result(r.text.removeprefix("error: "))
    return result_fields(r.value)


def result_fields(v: dict) -> dict:
    """`experiment`'s Result.value -> the result columns (plain ints and floats)."""
    off, on, d = v["off"], v["on"], v["daemon"]
    ro, rn = int(off["runtime_ns"]), int(on["runtime_ns"])
    return {"status": "ok",
            "locality_off": float(off["locality"]), "locality_on": float(on["locality"]),
            "last_off": round(float(v["last_off"]["locality"]), 4),
            "last_on": round(float(v["last_on"]["locality"]), 4),
            "latency_off_ns": float(off["avg_latency_ns"]),
            "latency_on_ns": float(on["avg_latency_ns"]),
            "runtime_off_ns": ro, "runtime_on_ns": rn,
            "runtime_change": round(rn / max(ro, 1) - 1, 6),
            "stalls_off": int(off["stalls"]), "stalls_on": int(on["stalls"]),
            "migrated": int(d["migrated"]), "attempted": int(d["attempted"]),
            "migrate_ns": int(d["migrate_ns"]), "pingpong": int(d["pingpong"]),
            "failures": {str(k): int(c) for k, c in sorted(d["failures"].items())},
            "error": ""}


def failed_result(error: str) -> dict:
    out: dict[str, Any] = {k: None for k in RESULT}
    out.update(status="failed", failures={}, error=" ".join(str(error).split()))
    return out


# =================================================================== backends

class Backend(Protocol):
    """Where runs execute: LocalBackend here, DaskBackend in tools/sweep_dask.py."""

    label: str

    @property
    def slots(self) -> int: ...  # runs it executes at once

    def ship(self, ref: MachineRef) -> Any: ...  # what run_one gets as `machine`

    def submit(self, fn: Callable, *args: Any) -> Any: ...

    def as_completed(self, futures: list) -> Iterator: ...

    def close(self, cancel: bool = False) -> None: ...


class LocalBackend:
    """Worker processes on this host (concurrent.futures). forkserver (or spawn):
    never fork a parent that may hold threads (a Textual app, a Dask client)."""

    def __init__(self, workers: int | None = None) -> None:
        n = workers or os.cpu_count() or 1
        if n < 1:
            raise SweepError(f"--workers {n}: must be at least 1")
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() \
            else "spawn"
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload([__name__])  # import numpy and the engine once
        self.pool = concurrent.futures.ProcessPoolExecutor(n, mp_context=ctx)
        self._slots = n
        self.label = f"{n} local process{'es' if n > 1 else ''}"

    @property
    def slots(self) -> int:
        return self._slots

    def ship(self, ref: MachineRef) -> Any:
        return ref.source(inline=False)

    def submit(self, fn: Callable, *args: Any) -> Any:
        return self.pool.submit(fn, *args)

    def as_completed(self, futures: list) -> Iterator:
        return concurrent.futures.as_completed(futures)

    def close(self, cancel: bool = False) -> None:
        self.pool.shutdown(wait=True, cancel_futures=cancel)


# =================================================================== results files

def jsonl_path(csv_path: str | os.PathLike) -> Path:
    return Path(csv_path).with_suffix(".jsonl")


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, dict):  # failures by reason; reasons may hold spaces, not ';'
        return ";".join(f"{k}={c}" for k, c in v.items())
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _parse_cell(col: str, s: str) -> Any:
    if col == "failures":
        out = {}
        for part in filter(None, s.split(";")):
            k, _, c = part.rpartition("=")
            out[k] = int(c)
        return out
    if s == "" and (col in INT_COLS or col in FLOAT_COLS):
        return None
    if col in INT_COLS:
        return int(s)
    if col in FLOAT_COLS:
        return float(s)
    return s


@dataclass
class SweepTable:
    """A results file read back: columns, the daemon keys among them, typed rows."""

    path: str
    columns: list[str]
    daemon_keys: list[str]
    rows: list[dict]


def read_results(path: str | os.PathLike) -> SweepTable:
    """A sweep's CSV, typed (ints, floats, None for a failed run's figures, failures as
    a dict). A last line cut short by a kill is ignored. Raises SweepError."""
    p = os.fspath(path)
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            text = fh.read()
    except OSError as e:
        raise SweepError(f"{p}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise SweepError(f"{p}: not a sweep results file (not UTF-8 text)") from None
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # a row cut short: it is run again
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if not header:
        raise SweepError(f"{p}: empty, not a sweep results file")
    missing = [c for c in HEAD + RESULT if c not in header]
    if missing:
        raise SweepError(f"{p}: not a numacon sweep results file (no column "
                         f"{missing[0]!r})")
    try:
        d0, d1 = header.index("experiment") + 1, header.index("status")
    except ValueError:  # pragma: no cover - checked above
        raise SweepError(f"{p}: not a numacon sweep results file") from None
    rows = []
    for n, rec in enumerate(reader, start=2):
        if len(rec) != len(header):
            raise SweepError(f"{p}:{n}: {len(rec)} fields where the header has "
                             f"{len(header)}")
        try:
            rows.append({c: _parse_cell(c, s) for c, s in zip(header, rec)})
        except ValueError as e:
            raise SweepError(f"{p}:{n}: {e}") from None
    return SweepTable(p, header, header[d0:d1], rows)


def row_key(row: dict, daemon_keys: list[str]) -> tuple:
    return (row["machine"], str(row["seed"]), row["experiment"],
            tuple(str(row.get(k, "")) for k in daemon_keys))


def latest(rows: list[dict], daemon_keys: list[str]) -> list[dict]:
    """The last row of each run (a failed run that --resume ran again has two)."""
    by: dict[tuple, dict] = {}
    for r in rows:
        by.pop(row_key(r, daemon_keys), None)
        by[row_key(r, daemon_keys)] = r
    return sorted(by.values(), key=lambda r: (r["run"] is None, r["run"] or 0))


class ResultsFiles:
    """-o FILE.csv and FILE.jsonl, appended a row at a time (flushed), so that a sweep
    that is killed loses at most the runs in flight. check() refuses before anything
    runs; begin() opens the files."""

    def __init__(self, csv_path: str | os.PathLike, spec: Spec, *, resume: bool) -> None:
        self.path = Path(csv_path)
        self.jsonl = jsonl_path(self.path)
        self.spec = spec
        self.columns = spec.columns
        self.resume = resume
        self.rows: list[dict] = []
        self.done: set[tuple] = set()
        self._csv: Any = None
        self._json: Any = None
        self._writer: Any = None

    def check(self) -> None:
        if self.path.suffix.lower() != ".csv":
            raise SweepError(f"{self.path}: the results file must end in .csv (the JSON "
                             f"lines go beside it)")
        if self.path.exists() and not self.resume:
            raise SweepError(f"{self.path} exists: --resume continues that sweep, or "
                             f"choose another -o FILE.csv")
        if not self.path.exists() or self.path.stat().st_size == 0:
            d = self.path.resolve().parent
            if not d.is_dir():
                raise SweepError(f"{self.path}: no directory {d}")
            return
        old = read_results(self.path)
        if old.columns != self.columns:
            extra = [c for c in old.columns if c not in self.columns]
            lack = [c for c in self.columns if c not in old.columns]
            why = (f"it has {', '.join(extra)}" if extra else "") + \
                ("; " if extra and lack else "") + \
                (f"it lacks {', '.join(lack)}" if lack else "") or "column order differs"
            raise SweepError(f"{self.path}: written by a different spec ({why}); "
                             f"choose another -o FILE.csv")
        self.rows = old.rows
        self.done = {row_key(r, self.spec.daemon_keys) for r in old.rows
                     if r["status"] == "ok"}

    def begin(self) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        for p in (self.path, self.jsonl):
            _cut_partial_line(p)
        self._csv = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._json = open(self.jsonl, "a", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._csv, lineterminator="\n")
        if new:
            self._writer.writerow(self.columns)
            self._csv.flush()

    def append(self, row: dict) -> None:
        self._writer.writerow([_cell(row.get(c)) for c in self.columns])
        self._csv.flush()
        self._json.write(json.dumps({c: row.get(c) for c in self.columns}) + "\n")
        self._json.flush()
        self.rows.append(row)

    def close(self) -> None:
        for fh in (self._csv, self._json):
            if fh is not None:
                fh.close()


def _cut_partial_line(p: Path) -> None:
    """A kill in the middle of a write leaves a line without its end: drop it."""
    if not p.exists():
        return
    with open(p, "rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


# =================================================================== running a sweep

@dataclass
class Outcome:
    ran: int = 0
    failed: int = 0
    skipped: int = 0  # done by an earlier, interrupted sweep (--resume)
    interrupted: bool = False


def run_sweep(spec: Spec, backend: Backend, results: ResultsFiles, *,
              on_row: Callable[[Run, dict, int], None] | None = None,
              on_start: Callable[[], None] | None = None,
              limit: int | None = None) -> Outcome:
    """Submit every run not done yet, append each row as its run finishes. on_start()
    once every run is sent; on_row(run, row, in_flight) after each. limit: stop after
    that many rows (as if interrupted). SweepError when the runs cannot be sent."""
    out = Outcome()
    todo = [r for r in spec.runs if r.key(spec.daemon_keys) not in results.done]
    out.skipped = len(spec.runs) - len(todo)
    if not todo:
        backend.close()
        return out
    shipped: dict[str, Any] = {}
    try:
        for r in todo:
            if r.machine.name not in shipped:
                shipped[r.machine.name] = backend.ship(r.machine)
        futures = {backend.submit(run_one, shipped[r.machine.name], r.seed, r.experiment,
                                  dict(r.daemon)): r for r in todo}
    except Exception as e:  # noqa: BLE001 - the backend went away while runs were sent
        backend.close(cancel=True)
        why = " ".join(str(e).split()) or type(e).__name__
        raise SweepError(f"{backend.label}: cannot send the runs: {why[:160]}") from None
    if on_start is not None:
        on_start()
    results.begin()
    try:
        for fut in backend.as_completed(list(futures)):
            run = futures.pop(fut)
            try:
                res = fut.result()
            except Exception as e:  # noqa: BLE001 - a worker died or the task was lost
                res = failed_result(f"worker: {type(e).__name__}: {e}")
            row = run.params(spec.daemon_keys) | res | {"machine_file": run.machine.file}
            results.append(row)
            out.ran += 1
            out.failed += row["status"] != "ok"
            if on_row is not None:
                on_row(run, row, len(futures))
            if limit is not None and out.ran >= limit:
                out.interrupted = True
                break
    except KeyboardInterrupt:
        out.interrupted = True
    finally:
        results.close()
        backend.close(cancel=out.interrupted or bool(futures))
    return out


def sweep_main(spec_path: str, out: str | None, backend_factory: Callable[[], Backend], *,
               resume: bool = False, stdout: Any = None, stderr: Any = None) -> int:
    """`numacon sweep`: check the spec and the results file, then start the backend,
    run with a progress bar (stderr), print the summary (stdout). Exit status 0, or 1
    when the spec, the files or the backend are refused (one line) or a run failed;
    130 when interrupted (--resume continues)."""
    stdout = stdout or sys.stdout
    err = Console(file=stderr or sys.stderr, highlight=False, soft_wrap=True)
    try:
        spec = load_spec(spec_path)
        results = ResultsFiles(out or Path(spec_path).with_suffix(".csv"), spec,
                               resume=resume)
        results.check()
        backend = backend_factory()
    except (SpecError, SweepError) as e:
        print(f"numacon: error: {e}", file=err.file)
        return 1
    t0 = time.monotonic()
    total = len(spec.runs)
    left = total - sum(1 for r in spec.runs if r.key(spec.daemon_keys) in results.done)
    failed = 0
    progress = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("running {task.fields[running]}  failed "
                                   "{task.fields[failed]}"),
                        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                        console=err, transient=False)

    def on_row(run: Run, row: dict, in_flight: int) -> None:
        nonlocal failed
        if row["status"] != "ok":
            failed += 1
            progress.console.print(Text(f"run {run.index} failed ({run.describe()}): "
                                        f"{row['error']}", style="red"))
        progress.update(task, advance=1, running=min(in_flight, backend.slots),
                        failed=failed)

    if total > left:
        err.print(Text(f"resuming {results.path}: {total - left} of {total} runs done"))
    task = None

    def on_start() -> None:  # the bar appears once the runs are on their way
        nonlocal task
        progress.start()
        task = progress.add_task("sweep", total=left, running=min(left, backend.slots),
                                 failed=0)

    try:
        outcome = run_sweep(spec, backend, results, on_row=on_row if left else None,
                            on_start=on_start if left else None)
    except SweepError as e:
        print(f"numacon: error: {e}", file=err.file)
        return 1
    finally:
        progress.stop()
    wall = time.monotonic() - t0
    if outcome.interrupted:
        err.print(Text(f"interrupted: {len(results.done) + outcome.ran - outcome.failed} "
                       f"of {total} runs in {results.path}; numacon sweep {spec_path} "
                       f"-o {results.path} --resume continues"))
        return 130
    print(summary_text(results.rows, spec.daemon_keys,
                       head=f"{total} runs ({outcome.skipped} done before), "
                            f"{outcome.ran} ran on {backend.label} in {wall:.1f} s"),
          file=stdout)
    print(f"results: {results.path}, {results.jsonl}  (console: numacon sweep --show "
          f"{results.path})", file=stdout)
    return 1 if outcome.failed else 0


# =================================================================== summary and heat grid

def setting_label(row: dict, daemon_keys: list[str]) -> str:
    return " ".join(f"{k}={row[k]}" for k in daemon_keys if row.get(k) not in ("", None)) \
        or "daemon defaults"


@dataclass
class Cell:
    """One (setting, workload) of the grid: its runs over seeds."""

    change: float  # mean runtime change, daemon on against off (-0.25: 25 % faster)
    locality_off: float
    locality_on: float
    runs: int
    worse: int  # runs where it made the runtime longer


def grid(rows: list[dict], daemon_keys: list[str]
         ) -> tuple[list[str], list[tuple[str, str]], dict[tuple[str, tuple[str, str]], Cell]]:
    """(settings, workloads, cells): workloads are (machine, experiment) pairs, both
    in order of first appearance; cells average the ok runs over seeds."""
    settings: list[str] = []
    workloads: list[tuple[str, str]] = []
    acc: dict[tuple[str, tuple[str, str]], list[dict]] = {}
    for r in latest(rows, daemon_keys):
        s, wl = setting_label(r, daemon_keys), (r["machine"], r["experiment"])
        if s not in settings:
            settings.append(s)
        if wl not in workloads:
            workloads.append(wl)
        if r["status"] == "ok":
            acc.setdefault((s, wl), []).append(r)
    cells = {}
    for k, rs in acc.items():
        n = len(rs)
        cells[k] = Cell(sum(r["runtime_change"] for r in rs) / n,
                        sum(r["locality_off"] for r in rs) / n,
                        sum(r["locality_on"] for r in rs) / n, n,
                        sum(1 for r in rs if r["runtime_change"] > 0))
    return settings, workloads, cells


def _columns(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(wd) for c, wd in zip(r, widths)).rstrip() for r in rows]


def summary_text(rows: list[dict], daemon_keys: list[str], head: str = "") -> str:
    """The best setting per workload and machine, and the settings that made things
    worse (mean runtime change over seeds above zero)."""
    last = latest(rows, daemon_keys)
    ok = sum(1 for r in last if r["status"] == "ok")
    lines = [f"sweep: {head + '; ' if head else ''}{ok} ok, {len(last) - ok} failed"]
    settings, workloads, cells = grid(rows, daemon_keys)
    best_rows = [["machine", "workload", "best setting", "runtime", "locality off -> on"]]
    worse_rows = [["machine", "workload", "setting", "runtime", "worse in"]]
    for wl in workloads:
        have = [(s, cells[(s, wl)]) for s in settings if (s, wl) in cells]
        if not have:
            best_rows.append([wl[0], wl[1], "(every run failed)", "", ""])
            continue
        s, c = min(have, key=lambda x: x[1].change)
        best_rows.append([wl[0], wl[1], s, f"{100 * c.change:+.1f}%",
                          f"{c.locality_off:.1%} -> {c.locality_on:.1%}"])
        for s, c in have:
            if c.change > 0:
                worse_rows.append([wl[0], wl[1], s, f"{100 * c.change:+.1f}%",
                                   f"{c.worse} of {c.runs} seeds"])
    lines.append("best setting per workload and machine (runtime with the daemon on "
                 "against off, mean over seeds):")
    lines += _columns(best_rows)
    if len(worse_rows) > 1:
        lines.append("settings that made things worse:")
        lines += _columns(worse_rows)
    else:
        lines.append("settings that made things worse: none")
    return "\n".join(lines)


# =================================================================== replay (the console)

def replay(row: dict, daemon_keys: list[str]) -> tuple[str, str, bool]:
    """Run a results row's experiment again, here: (command, its text, whether the
    figures equal the recorded ones). Raises SweepError when the machine is gone."""
    daemon = [(k, str(row[k])) for k in daemon_keys if row.get(k) not in ("", None)]
    line = experiment_line(row["experiment"], int(row["seed"]), daemon)
    src = row.get("machine_file") or row["machine"]
    try:
        m = build_machine(src)
    except (SaveError, OSError, ValueError) as e:
        raise SweepError(f"cannot rebuild the machine: {e}") from None
    r = execute(m, line)
    if not r.ok:
        return line, r.text, row["status"] != "ok"
    again = result_fields(r.value)
    same = all(_same(again[k], row.get(k)) for k in RESULT if k not in ("error",))
    return line, r.text, same


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def fmt_change(c: float | None) -> str:
    return "-" if c is None else f"{100 * c:+.1f}%"


def fmt_time(ns: int | None) -> str:
    return "-" if ns is None else fmt_ns(ns)
