"""Snapshots are data: the state is decoded through the explicit schema of
engine/machines/snapshot_schema.py. Crafted files (with correct checksums, so only the
decoder stands in the way) that name classes, functions or exception classes, or
whose records have wrong fields, are refused with one line, create nothing and
change nothing."""

from __future__ import annotations

import gc
import json
import zlib
from pathlib import Path

import pytest

import engine
from engine.machines import snapshot as saves
from engine.machines import snapshot_schema as schema
from engine.runtime.jobs import Job
from tests.conftest import small
from tests.test_saves import assert_same

FIXTURE_V1 = Path(__file__).parent / "data" / "v1-workloads.snap"


# ------------------------------------------------------------------ crafting files

def unpack(data: bytes) -> tuple[dict, dict]:
    """(manifest, state) of a snapshot, read without engine/machines/snapshot.py's reader."""
    _, off, ln, crc = saves.HEADER.unpack_from(data)
    man = json.loads(data[off:off + ln])
    blob = next(b for b in man["blobs"] if b["name"] == "state")
    raw, pos = b"", blob["offset"]
    for codec, slen, rlen, _ in blob["chunks"]:
        chunk = data[pos:pos + slen]
        pos += slen
        raw += bytes(rlen) if codec == "zero" else \
            zlib.decompress(chunk) if codec == "deflate" else chunk
    return man, json.loads(raw)


def repack(data: bytes, state: dict, version: int | None = None) -> bytes:
    """The snapshot with its state replaced (stored raw) and every checksum and offset
    recomputed: a file only the decoder can refuse."""
    _, off, ln, _ = saves.HEADER.unpack_from(data)
    man = json.loads(data[off:off + ln])
    body, pos = bytearray(), saves.HEADER.size
    sb = json.dumps(state).encode()
    for b in man["blobs"]:
        if b["name"] == "state":
            cs = man["chunk_size"]
            parts = [sb[i:i + cs] for i in range(0, len(sb), cs)]
            b["shape"] = [len(sb)]
            b["chunks"] = [["raw", len(c), len(c), zlib.crc32(c)] for c in parts]
            stored = sb
        else:
            start, n = b["offset"], sum(c[1] for c in b["chunks"])
            stored = data[start:start + n]
        b["offset"] = pos
        body += stored
        pos += len(stored)
    if version is not None:
        man["version"] = version
    mb = json.dumps(man).encode()
    return saves.HEADER.pack(saves.MAGIC, pos, len(mb), zlib.crc32(mb)) + bytes(body) + mb


def busy():
    """A small machine with a workload (both observers), a daemon, finished jobs (one
    failed), a bill and a timeline: every record type of the schema but cost_model."""
    m = small(procs=[{"name": "p", "pid": 10, "node": 0, "vmas": [{"size": "4M"}]}])
    m.start_sync("workload", 10, size=2 << 20, pattern="zipf", ticks=6, threads=(0, 1),
               watch="hint,damon")
    m.start_sync("daemon", 10, source="hint", period_ns=1_000_000)
    m.run_jobs()
    v = m.process(10).vmas[0]
    m.start_sync("move_pages", 10, [v.start, v.start + m.page_size], [1, 1])
    m.start_sync("migrate_pages", 99, [0], [1])  # fails: no such process
    m.run_jobs()
    m.migration_bill("migrate_pages", 10, [0], [2])
    m.timeline.sample(m)
    return m


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> bytes:
    p = tmp_path_factory.mktemp("good") / "good.snap"
    engine.save(busy(), p)
    return p.read_bytes()


def find(x, tag: str):
    """The first {"rec": [k, tag, fields]} in a state, depth first (its fields dict is
    edited in place)."""
    if isinstance(x, dict):
        if list(x) == ["rec"] and x["rec"][1] == tag:
            return x["rec"]
        for v in x.values():
            r = find(v, tag)
            if r is not None:
                return r
    elif isinstance(x, list):
        for v in x:
            r = find(v, tag)
            if r is not None:
                return r
    return None


def refused(tmp_path, data: bytes) -> str:
    p = tmp_path / "x.snap"
    p.write_bytes(data)
    ids = Job._ids
    with pytest.raises(engine.SaveError) as e:
        engine.load(p)
    gc.collect()  # anything created and dropped would run its finalizer now
    msg = str(e.value)
    assert msg.startswith(f"{p}: ") and "\n" not in msg
    assert Job._ids == ids  # a refused file changes nothing, not even the job counter
    return msg


# ------------------------------------------------------------------ code is never run

def inject(state: dict, x) -> None:
    """Put a value where a snapshot may hold any data: a finished job's result
    (version 2: a "job" record; version 1: a {"job": [k, state]} entry)."""
    r = find(state, "job")
    if r is not None:
        r[2]["result"] = x
        return
    r = find_job_v1(state)
    r[1]["d"]["result"] = x


def find_job_v1(x):
    if isinstance(x, dict):
        if list(x) == ["job"]:
            return x["job"]
        x = list(x.values())
    if isinstance(x, list):
        return next((r for v in x if (r := find_job_v1(v)) is not None), None)
    return None

@pytest.fixture
def sentinel(tmp_path):
    s = tmp_path / "sentinel"
    s.write_text("keep me")
    yield s
    assert s.read_text() == "keep me"


def closer(sentinel) -> dict:
    """The payload of the attack the issue reports: a tempfile._TemporaryFileCloser,
    reachable from engine.saves by attribute lookup, unlinks `name` when collected."""
    return {"d": {"file": 1, "name": str(sentinel), "delete": True}}


ATTACKS = {
    # version 2 does not know the tags of version 1 at all
    "obj-v2": (2, lambda s: {"obj": [0, "engine.saves:tempfile._TemporaryFileCloser",
                                     closer(s)]}),
    # version 1 did; its class names go through a fixed table
    "obj-v1": (1, lambda s: {"obj": [0, "engine.saves:tempfile._TemporaryFileCloser",
                                     closer(s)]}),
    "obj-v1-new-path": (1, lambda s: {"obj": [
        0, "engine.machines.snapshot:tempfile._TemporaryFileCloser", closer(s)]}),
    "lobj-v1": (1, lambda s: {"lobj": [0, "engine.saves:tempfile._TemporaryFileCloser",
                                       [], closer(s)]}),
    "rec-path": (2, lambda s: {"rec": [0, "engine.saves:tempfile._TemporaryFileCloser",
                                       closer(s)["d"]]}),
    "rec-qualname": (2, lambda s: {"rec": [0, "tempfile._TemporaryFileCloser",
                                           closer(s)["d"]]}),
    "builtins-v1": (1, lambda s: {"obj": [0, "builtins:eval", {"d": {}}]}),
    "builtins-rec": (2, lambda s: {"rec": [0, "builtins", {}]}),
    "os.system-v1": (1, lambda s: {"obj": [0, "os:system", {"d": {"x": f"rm {s}"}}]}),
    "os.system-rec": (2, lambda s: {"rec": [0, "os:system", {"command": f"rm {s}"}]}),
    "engine-class-v1": (1, lambda s: {"obj": [0, "engine.machine:Machine", {"d": {}}]}),
    "exc-path-v1": (1, lambda s: {"exc": ["engine.saves:tempfile._TemporaryFileCloser",
                                          [1, str(s)]]}),
    "exc-os.system-v1": (1, lambda s: {"exc": ["os:system", [f"rm {s}"]]}),
    "exc-systemexit-v1": (1, lambda s: {"exc": ["builtins:SystemExit", ["bye"]]}),
    "err-path": (2, lambda s: {"err": {"kind": "tempfile._TemporaryFileCloser",
                                       "errno": None, "message": str(s)}}),
    "err-builtin-path": (2, lambda s: {"err": {"kind": "builtins:OSError", "errno": 2,
                                               "message": str(s)}}),
    "err-not-in-table": (2, lambda s: {"err": {"kind": "SystemExit", "errno": None,
                                               "message": "bye"}}),
}


@pytest.mark.parametrize("name", ATTACKS)
def test_crafted_value_is_refused_and_runs_nothing(tmp_path, good, sentinel, name):
    version, payload = ATTACKS[name]
    base = good if version == 2 else FIXTURE_V1.read_bytes()
    man, state = unpack(base)
    inject(state, payload(sentinel))
    msg = refused(tmp_path, repack(base, state, version))
    assert "inconsistent snapshot" in msg


@pytest.mark.parametrize("where", ["workload observer", "job result", "job error",
                                   "daemon page state", "bill argument", "dict value"])
def test_nested_crafted_value_is_refused(tmp_path, good, sentinel, where):
    """The payload deep inside records that are themselves valid."""
    evil = {"rec": [9999, "engine.saves:tempfile._TemporaryFileCloser",
                    closer(sentinel)["d"]]}
    evil_exc = {"err": {"kind": "engine.saves:tempfile._TemporaryFileCloser",
                        "errno": None, "message": str(sentinel)}}
    man, state = unpack(good)
    if where == "workload observer":
        find(state, "workload")[2]["observers"].append(evil)
    elif where == "job result":
        find(state, "job")[2]["result"] = {"d": {"x": [evil]}}
    elif where == "job error":
        find(state, "job")[2]["error"] = evil_exc
    elif where == "daemon page state":
        find(state, "daemon")[2]["pages"] = {"dk": [[1, evil]]}
    elif where == "bill argument":
        find(state, "bill")[2]["args"] = {"t": [evil]}
    else:
        inject(state, {"d": {"a": {"t": [1, {"s": [evil]}]}}})
    msg = refused(tmp_path, repack(good, state))
    assert "tempfile" in msg or "unknown record type" in msg


def test_repack_keeps_a_good_file_good(tmp_path, good):
    """The crafting helper itself: an unchanged state repacked loads."""
    man, state = unpack(good)
    p = tmp_path / "same.snap"
    p.write_bytes(repack(good, state))
    m = engine.load(p)
    assert len(m.workloads) == 1 and m.last_bill is not None


# ------------------------------------------------------------------ the schema's checks

def edit(tag: str, fn):
    def go(state):
        fn(find(state, tag)[2])
    return go


BAD_RECORDS = {
    "unknown tag": (lambda s: inject(s, {"rec": [0, "nosuch", {}]}),
                    "unknown record type 'nosuch'"),
    "string for int": (edit("workload", lambda f: f.__setitem__("npages", "512")),
                       "workload.npages: expected an integer >= 0, got a str"),
    "negative": (edit("workload", lambda f: f.__setitem__("pid", -1)),
                 "workload.pid: expected an integer >= 0, got -1"),
    "bool for int": (edit("job", lambda f: f.__setitem__("steps", True)),
                     "job.steps: expected an integer >= 0, got True"),
    "float for int": (edit("phase", lambda f: f.__setitem__("ticks", 1.5)),
                      "phase.ticks: expected an integer >= 1, got 1.5"),
    "out of range": (edit("phase", lambda f: f.__setitem__("write", 2.0)),
                     "phase.write: expected a number >= 0, <= 1, got 2.0"),
    "bad choice": (edit("phase", lambda f: f.__setitem__("pattern", "__import__")),
                   "phase.pattern: expected one of uniform, zipf, seq, stairs, zigzag"),
    "extra field": (edit("workload", lambda f: f.__setitem__("__class__", 1)),
                    "field '__class__' is not in the workload schema"),
    "missing field": (edit("daemon", lambda f: f.pop("cfg")), "daemon lacks field 'cfg'"),
    "wrong record": (edit("daemon", lambda f: f.__setitem__("cfg", {"d": {}})),
                     "daemon.cfg: expected a daemon_config record, got a dict"),
    "running job": (edit("job", lambda f: f.__setitem__("state", "running")),
                    "job.state: expected one of done, cancelled, failed"),
    "running workload": (edit("workload", lambda f: f.__setitem__("state", "running")),
                         "workload.state: expected one of done, stopped, exited, failed"),
    "array dtype": (edit("page_state", lambda f: f.__setitem__("moves", {"t": []})),
                    "page_state.moves: expected a 1-D uint16 array, got a tuple"),
    "array shapes": (edit("workload", lambda f: f.__setitem__("npages", f["npages"] + 1)),
                     "workload: counts has 512 rows for 513 pages"),
    "machine ref": (edit("workload", lambda f: f.__setitem__("m", {"ref": ["proc", 10]})),
                    "workload.m: expected the machine, got a Process"),
    "missing ref": (edit("workload", lambda f: f.__setitem__("m", {"ref": ["proc", 7]})),
                    "reference to a missing object"),
    "rng state": (edit("workload", lambda f: f["_rng_state"]["d"].__setitem__(
        "bit_generator", "MT19937")), "workload._rng_state: expected a random generator"),
    "rng numbers": (edit("workload", lambda f: f["_rng_state"]["d"]["state"]["d"].__setitem__(
        "state", "x")), "workload: "),
    "undefined ref": (lambda s: inject(s, {"mref": 12345}),
                      "reference to an undefined object 12345"),
    "self reference": (lambda s: (r := find(s, "workload"))[2]["observers"].append(
        {"mref": r[0]}), "reference to an undefined object"),
    "defined twice": (lambda s: inject(s, [{"rec": [777, "phase", PHASE]},
                                           {"rec": [777, "phase", PHASE]}]), "defined twice"),
    "exception errno type": (edit("job", lambda f: f.__setitem__(
        "error", {"err": {"kind": "OSError", "errno": "2", "message": "x"}})),
        "exception: errno '2' for OSError"),
    "exception fields": (edit("job", lambda f: f.__setitem__(
        "error", {"err": {"kind": "OSError", "errno": 2, "message": "x", "extra": 1}})),
        "exception: expected fields errno, kind, message"),
    "malformed value": (lambda s: inject(s, {"t": 5}),
                        "malformed 't' value"),
    "unknown value tag": (lambda s: inject(s, {"zzz": 5}),
                          "unknown value tag 'zzz'"),
    "runtime entry": (lambda s: s["runtime"].__setitem__("era", "2.6.18"),
                      "runtime holds an entry 'era' this numacon does not know"),
    "state entry": (lambda s: s.__setitem__("__dict__", {"d": {}}),
                    "state holds an entry '__dict__' this numacon does not know"),
    "deep nesting": (lambda s: inject(s, nested(450)),
                     "nested too deeply"),
}


PHASE = {"pattern": "uniform", "ticks": 1, "threads": {"t": []}, "rate": 1, "write": 0.0,
         "zipf": 1.1, "width": 0.5, "step": 1, "shard": None, "scatter": None}


def nested(n: int):
    x: object = 1
    for _ in range(n):
        x = {"t": [x]}
    return x


@pytest.mark.parametrize("case", BAD_RECORDS)
def test_bad_record_is_refused(tmp_path, good, case):
    fn, want = BAD_RECORDS[case]
    man, state = unpack(good)
    fn(state)
    msg = refused(tmp_path, repack(good, state))
    assert want in msg, msg


def test_schema_classes_have_no_finalizers():
    """What the decoder may create cannot act when dropped."""
    for tag, cls in schema.classes().items():
        assert not hasattr(cls, "__del__"), tag
    assert set(schema.classes()) == set(schema.records())


# ------------------------------------------------------------------ save side

def test_save_refuses_objects_outside_the_schema(tmp_path):
    from engine.mm.era import get_era
    from engine.runtime.workload import Workload

    m = small()
    m.bills.last = get_era("modern")  # an engine object, but not a record type
    with pytest.raises(engine.SaveError, match=r"type Era \(the snapshot "
                                               r"schema has no record for it\)"):
        engine.save(m, tmp_path / "m.snap")

    class Sub(Workload):
        pass

    m = busy()
    m.workloads[0].__class__ = Sub  # a subclass is not its parent
    with pytest.raises(engine.SaveError, match="job.owner: expected a workload record or a "
                                               "daemon record or null, got a Sub"):
        engine.save(m, tmp_path / "m.snap")
    m.workloads[0].__class__ = Workload
    m.workloads[0].note = "x"  # an attribute the schema does not know
    with pytest.raises(engine.SaveError, match="field 'note' is not in the workload schema"):
        engine.save(m, tmp_path / "m.snap")
    del m.workloads[0].note
    m.workloads[0].pid = "10"  # what load would refuse, save refuses
    with pytest.raises(engine.SaveError, match="workload.pid: expected an integer"):
        engine.save(m, tmp_path / "m.snap")
    assert not (tmp_path / "m.snap").exists()


def test_save_refuses_cycles(tmp_path):
    m = busy()
    m.last_bill.kwargs = {"me": m.last_bill}
    with pytest.raises(engine.SaveError, match="Bill that refers back to itself"):
        engine.save(m, tmp_path / "m.snap")


@pytest.mark.parametrize("exc, kind, back", [
    (OSError(22, "bad"), "OSError", OSError),
    (OSError(1, "eperm"), "PermissionError", PermissionError),  # Python picks the class
    (PermissionError(22, "odd errno"), "PermissionError", PermissionError),
    (OSError("just text"), "OSError", OSError),
    (ValueError("v"), "ValueError", ValueError),
    (KeyError("k"), "KeyError", KeyError),
    (RuntimeError(), "RuntimeError", RuntimeError),
    (engine.InvariantError("broken"), "InvariantError", engine.InvariantError),
    # not in the table: kept as the nearest kind that is, with its text as the message
    (engine.DescriptionError("x.toml", "nodes", "bad"), "ValueError", ValueError),
    (ConnectionRefusedError(111, "refused"), "OSError", ConnectionRefusedError),
])
def test_exceptions_are_kind_errno_and_message(exc, kind, back):
    d = schema.exception_fields(exc)
    assert d["kind"] == kind
    e = schema.build_exception(json.loads(json.dumps(d)))
    assert type(e) is back
    assert e.args == (exc.args if len(exc.args) < 3 else (str(exc),))


def test_exception_outside_the_table_is_refused_at_save():
    with pytest.raises(schema.SchemaError, match="KeyboardInterrupt"):
        schema.exception_fields(KeyboardInterrupt())


def test_failed_jobs_keep_their_errors(tmp_path):
    m = busy()
    m2 = engine.load(_save(m, tmp_path))
    errs = [(type(j.error), j.error.args) for j in m2.finished_jobs if j.error]
    assert errs == [(ProcessLookupError, (3, "migrate_pages: no process 99"))]


def _save(m, tmp_path, name="m.snap"):
    p = tmp_path / name
    engine.save(m, p)
    return p


def test_job_counter_follows_a_successful_load(tmp_path):
    m = busy()
    p = _save(m, tmp_path)
    top = max(j.id for j in m.finished_jobs)
    Job._ids = 0
    try:
        engine.load(p)
        assert Job._ids == top
    finally:
        Job._ids = max(Job._ids, top)


def test_every_record_type_round_trips(tmp_path):
    """Cancelled jobs keep their cancel flag, offline jobs their rounds, and a DAMON
    monitor still shares the machine's cost model after a load."""
    m = busy()
    m.start_sync("workload", 10, size=1 << 20, ticks=50)
    m.run_jobs(max_steps=2)
    for j in list(m.jobs):
        j.cancel()
    m.run_jobs()
    m.start_sync("offline_block", m.f.n // m.block_pages - 1)  # it counts its rounds
    m.run_jobs()
    assert m.finished_jobs[-1].state == "done" and m.finished_jobs[-1].rounds == 0
    assert m.workloads[0].observers[1].cost is m.cost
    m2 = engine.load(_save(m, tmp_path))
    assert_same(m, m2)
    assert m2.workloads[0].observers[1].cost is m2.cost
    assert [j._cancel for j in m2.finished_jobs] == [j._cancel for j in m.finished_jobs]
    state, _ = saves.snapshot_state(m)
    tags = {r for r in schema.records() if find(state, r) is not None}
    assert tags == set(schema.records()) - {"cost_model"}


# ------------------------------------------------------------------ version 1 files

def find_v1(x, path: str):
    """The first version-1 {"obj": [k, path, state]} in a state, depth first."""
    if isinstance(x, dict):
        if list(x) == ["obj"] and x["obj"][1] == path:
            return x["obj"]
        x = list(x.values())
    if isinstance(x, list):
        return next((r for v in x if (r := find_v1(v, path)) is not None), None)
    return None


def test_version_1_file_written_by_numacon_loads(tmp_path):
    """tests/data/v1-workloads.snap was written by numacon before the schema (commit
    d3c9846) from the machine busy() builds."""
    m = engine.load(FIXTURE_V1, check=True)
    assert [(j.name, j.state) for j in m.finished_jobs] == [
        ("workload", "done"), ("daemon", "done"), ("migrate_pages", "failed"),
        ("move_pages", "done")]
    err = m.finished_jobs[2].error
    assert type(err) is ProcessLookupError and err.args == (3, "migrate_pages: no process 99")
    wl = m.workloads[0]
    assert [o.name for o in wl.observers] == ["hint", "damon"] and wl.state == "done"
    assert list(m.finished_jobs[3].result) == [1, 1] and m.finished_jobs[3].result.ret == 0
    assert m.last_bill.kind == "migrate_pages" and m.timeline.count > 0
    # the workload's RNG is where the file says it was
    man, state = unpack(FIXTURE_V1.read_bytes())
    saved = find_v1(state, "engine.workload:Workload")[2]["d"]["_rng_state"]
    assert wl.rng.bit_generator.state["state"]["state"] == \
        saved["d"]["state"]["d"]["state"]
