"""The snapshot schema: every engine object a snapshot may hold, named by a tag.

A snapshot is data, so the file never names a class. Each record type here is an
allow-list entry: its tag (what the file says, "workload"), its class, its fields
with their types and ranges, and how it is rebuilt. Loading decodes a record's
fields (plain values, arrays, references into the machine, or other records), checks
every one of them, and only then creates the object; only the classes listed here are
ever created, and none of them has a finalizer or touches a file. Saving runs the
same checks, so a file that save wrote, load accepts.

Exceptions kept by finished jobs are stored as a kind from a fixed table, an errno
(OSError kinds) and a message, and rebuilt as that kind.

Format version 1 named classes "module:qualname"; LEGACY_CLASSES and
LEGACY_EXCEPTIONS map the names that version wrote to the entries here (a name is
looked up in a table, never resolved), so old snapshots load through the same checks.
"""

from __future__ import annotations

import asyncio
import builtins
import numbers
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..mm.check import InvariantError
from ..mm.move_pages import UNWRITTEN, MoveStatus
from ..mm.state import CostModel
from ..runtime.access import DamonMonitor, HintScanner
from ..runtime.automigrate import MODES, Daemon, DaemonConfig, _PageState
from ..runtime.bill import KINDS, Bill
from ..runtime.jobs import Job, JobCancelled
from ..runtime.timeline import FIELDS as TIMELINE_FIELDS
from ..runtime.timeline import Timeline
from ..runtime.workload import HISTORY, PATTERNS, Phase, Workload


class SchemaError(Exception):
    """A record that does not fit the schema (loading) or an object the schema does
    not describe (saving): a one-line reason."""


# =================================================================== field checks

@dataclass(frozen=True)
class Check:
    """One field's type and range: ok(value, ctx); ctx has the machine as ctx.m."""

    desc: str
    ok: Callable[[Any, Any], bool]


def _int(v) -> bool:  # numpy integers count (a value being saved); bools do not
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _num(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def int_range(lo: int | None = None, hi: int | None = None) -> Check:
    desc = "an integer" + (f" >= {lo}" if lo is not None else "") + \
        (f" < {hi}" if hi is not None else "")
    return Check(desc, lambda v, c: _int(v) and (lo is None or v >= lo)
                 and (hi is None or v < hi))


def num_range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
              hi_open: bool = False) -> Check:
    def ok(v, c) -> bool:
        if not _num(v) or v != v:  # NaN fits no range
            return False
        if lo is not None and (v <= lo if lo_open else v < lo):
            return False
        return hi is None or (v < hi if hi_open else v <= hi)

    lo_s = "" if lo is None else f" {'>' if lo_open else '>='} {lo}"
    hi_s = "" if hi is None else f" {'<' if hi_open else '<='} {hi}"
    return Check("a number" + lo_s + ("," if lo_s and hi_s else "") + hi_s, ok)


INT = int_range()
NAT = int_range(0)
POS = int_range(1)
SEED = int_range(0, 1 << 256)
NUM = Check("a number", lambda v, c: _num(v))
BOOL = Check("true or false", lambda v, c: isinstance(v, (bool, np.bool_)))
STR = Check("a string", lambda v, c: isinstance(v, str))
ANY = Check("a value", lambda v, c: True)  # anything the decoder builds is data
MACHINE = Check("the machine", lambda v, c: v is c.m)


def opt(ch: Check) -> Check:
    return Check(f"{ch.desc} or null", lambda v, c: v is None or ch.ok(v, c))


def one_of(*values: str) -> Check:
    return Check("one of " + ", ".join(values), lambda v, c: isinstance(v, str) and v in values)


def array(dtype: str, ndim: int) -> Check:
    dt = np.dtype(dtype)
    return Check(f"a {ndim}-D {dt} array",
                 lambda v, c: isinstance(v, np.ndarray) and v.dtype == dt and v.ndim == ndim)


def int_array(ndim: int) -> Check:
    return Check(f"a {ndim}-D integer array", lambda v, c: isinstance(v, np.ndarray)
                 and v.dtype.kind in "iu" and v.ndim == ndim)


def seq_of(kind: type, ch: Check, lo: int = 0, hi: int | None = None) -> Check:
    n = f" of {lo}..{hi}" if hi is not None else (f" of at least {lo}" if lo else "")
    return Check(f"a {kind.__name__}{n} of {ch.desc}",
                 lambda v, c: type(v) is kind and lo <= len(v) <= (hi or len(v))
                 and all(ch.ok(x, c) for x in v))


def dict_of(key: Check, val: Check, kind: type = dict) -> Check:
    return Check(f"a {kind.__name__} of {key.desc} -> {val.desc}",
                 lambda v, c: type(v) is kind and all(key.ok(k, c) and val.ok(x, c)
                                                      for k, x in v.items()))


def record(*tags: str) -> Check:
    return Check(" or ".join(f"a {t} record" for t in tags),
                 lambda v, c: any(type(v) is classes()[t] for t in tags))


PAIR = seq_of(tuple, INT, 2, 2)
COUNTER = dict_of(ANY, NUM, Counter)
EXCEPTION = Check("an exception", lambda v, c: isinstance(v, BaseException))
# a bit generator's state, as numpy's `bit_generator.state`; its setter checks the rest
RNG_STATE = Check("a random generator state",
                  lambda v, c: type(v) is dict and v.get("bit_generator") == "PCG64"
                  and type(v.get("state")) is dict)


def _describe(v) -> str:
    if isinstance(v, (bool, int, float)) or v is None:
        return repr(v)[:40]
    if isinstance(v, np.ndarray):
        return f"a {v.ndim}-D {v.dtype} array"
    return f"a {type(v).__name__}"


# =================================================================== records

@dataclass(frozen=True)
class Record:
    tag: str
    fields: dict[str, Check]
    build: Callable[[type, dict, Any], Any]
    optional: frozenset[str] = frozenset()  # fields an object (or an old file) may lack
    state: Callable[[Any], dict] | None = None  # the fields of an object (default: its
    # __getstate__, which the engine's classes use to leave out caches and jobs)
    consistent: Callable[[dict, Any], str | None] | None = None  # cross-field check
    v1: Callable[[dict], dict] | None = None  # a version-1 record's fields, made current

    def upgrade(self, raw: dict) -> dict:
        """The fields of a version-1 record as this version names them."""
        return raw if self.v1 is None else self.v1(dict(raw))

    def fields_of(self, obj: Any) -> dict:
        """The fields to save, exactly those the schema names (an attribute it does not
        know is refused: the schema must be extended, not bypassed)."""
        if self.state is not None:
            st = self.state(obj)
        else:
            st = obj.__getstate__()
            st = {} if st is None else dict(st)
        self.check_names(st, f"cannot save a {type(obj).__name__}")
        return st

    def check_names(self, names, what: str) -> None:
        for k in names:
            if k not in self.fields:
                raise SchemaError(f"{what}: field {str(k)[:40]!r} is not in the {self.tag} "
                                  f"schema")
        for k in self.fields:
            if k not in names and k not in self.optional:
                raise SchemaError(f"{what}: {self.tag} lacks field {k!r}")

    def validate(self, values: dict, ctx: Any) -> None:
        for k, v in values.items():
            ch = self.fields[k]
            if not ch.ok(v, ctx):
                raise SchemaError(f"{self.tag}.{k}: expected {ch.desc}, got {_describe(v)}")
        if self.consistent is not None:
            why = self.consistent(values, ctx)
            if why:
                raise SchemaError(f"{self.tag}: {why}")

    def make(self, values: dict, ctx: Any) -> Any:
        """Check every field, then create the object."""
        self.check_names(values, f"{self.tag} record")
        self.validate(values, ctx)
        try:
            return self.build(classes()[self.tag], values, ctx)
        except (ValueError, TypeError, KeyError) as e:  # numpy refusing an RNG state
            raise SchemaError(f"{self.tag}: {e}") from None


def _with_attrs(cls: type, f: dict, ctx) -> Any:
    """Plain objects: the checked fields are their attributes (no __init__: it would
    allocate what the fields already hold)."""
    obj = cls.__new__(cls)
    obj.__dict__.update(f)
    return obj


def _with_setstate(cls: type, f: dict, ctx) -> Any:
    """Objects that restore their own caches and RNG from the checked fields."""
    obj = cls.__new__(cls)
    obj.__setstate__(dict(f))
    return obj


def _with_init(cls: type, f: dict, ctx) -> Any:
    return cls(**f)


def _move_status(cls: type, f: dict, ctx) -> Any:
    return cls.of(f["array"].astype(np.int64), f.get("ret", 0))


def _move_status_v1(f: dict) -> dict:
    """Version 1 kept the entries as a list (None: unwritten) and the return value."""
    items = f.pop("items", None)
    if type(items) is not list or not all(i is None or type(i) is int for i in items):
        raise SchemaError("move_status.items: expected a list of integers or null")
    f["array"] = np.array([UNWRITTEN if i is None else i for i in items], np.int64)
    return f


JOB_RUNTIME = ("machine", "gen", "_event", "_task")  # the running program's, not saved


def _job_state(j) -> dict:
    return {k: v for k, v in vars(j).items() if k not in JOB_RUNTIME}


def _job(cls: type, f: dict, ctx) -> Any:
    """A finished job: no generator, a fresh (set) asyncio event. Job.__init__ is not
    called: it would take a new id; the caller raises Job._ids once the load succeeds."""
    j = cls.__new__(cls)
    j.__dict__.update(machine=ctx.m, gen=None, _cancel=False, _task=None,
                      _event=asyncio.Event())
    j.__dict__.update(f)
    j._event.set()
    ctx.job_ids.append(f["id"])
    return j


def _same_len(f: dict, names: tuple[str, ...], n: int | None = None) -> str | None:
    lens = {k: len(f[k]) for k in names if f.get(k) is not None}
    want = n if n is not None else next(iter(lens.values()), 0)
    bad = [k for k, ln in lens.items() if ln != want]
    return f"{bad[0]} has {lens[bad[0]]} entries, expected {want}" if bad else None


def _workload_ok(f: dict, ctx) -> str | None:
    if f["counts"].shape[0] != f["npages"]:
        return f"counts has {f['counts'].shape[0]} rows for {f['npages']} pages"
    if f.get("mark") is not None and f["mark"].shape != f["counts"].shape:
        return "mark and counts differ in shape"
    if f["_phase_i"] >= len(f["phases"]):
        return f"phase {f['_phase_i']} of {len(f['phases'])}"
    return _same_len(f, ("h_t", "h_local", "h_remote", "h_lat"), HISTORY)


def _hint_ok(f: dict, ctx) -> str | None:
    return _same_len(f, ("armed", "last_node", "faults"))


def _damon_ok(f: dict, ctx) -> str | None:
    return _same_len(f, ("lo", "hi", "nr", "age", "last_nr_reg")) or \
        _same_len(f, ("rep_lo", "rep_hi", "rep_nr", "rep_age"))


def _page_state_ok(f: dict, ctx) -> str | None:
    return _same_len(f, ("score", "last", "last_move", "prev_node", "moves"))


def _timeline_ok(f: dict, ctx) -> str | None:
    FIELDS = TIMELINE_FIELDS
    cap, nn = f["capacity"], f["nr_nodes"]
    if f["t"].shape != (cap,):
        return f"t has shape {f['t'].shape}, expected ({cap},)"
    if sorted(f["data"]) != sorted(FIELDS):
        return f"data holds {sorted(f['data'])}, expected {sorted(FIELDS)}"
    for k, a in f["data"].items():
        if not (isinstance(a, np.ndarray) and a.dtype == np.int64 and a.shape == (cap, nn)):
            return f"data[{k!r}] is not a ({cap}, {nn}) int64 array"
    return None


_COST = Check("the machine's cost model or a cost_model record",
              lambda v, c: v is c.m.cost or type(v) is classes()["cost_model"])
_FINISHED = ("done", "stopped", "exited", "failed")  # a saved workload or daemon
_I64_1 = array("int64", 1)


WORKLOADS = Check("the machine's workloads", lambda v, c: v is c.m.workloads)


def _daemon_v1(f: dict) -> dict:
    f["workloads"] = {"ref": ["workloads"]}  # version 1 found them on the machine
    return f


def _records() -> dict[str, Record]:
    recs = [
        Record("phase", {
            "pattern": one_of(*PATTERNS), "ticks": POS, "threads": seq_of(tuple, NAT),
            "rate": POS, "write": num_range(0, 1), "zipf": num_range(0, lo_open=True),
            "width": num_range(0, 1, lo_open=True), "step": POS, "shard": opt(BOOL),
            "scatter": opt(BOOL)}, _with_init),
        Record("workload", {
            "m": MACHINE, "pid": NAT, "start": NAT, "npages": NAT,
            "phases": seq_of(list, record("phase"), 1), "seed": seq_of(tuple, SEED, 1, 16),
            "loop": BOOL, "id": NAT, "counts": array("uint32", 2),
            "mark": opt(array("uint32", 2)), "local": NAT, "remote": NAT, "lat_ns": NUM,
            "stalls": NAT, "stall_ns": NUM, "extra_ns": NUM, "writes": NAT,
            "ticks_done": NAT, "t_ns": INT, "started_ns": INT, "state": one_of(*_FINISHED),
            "observers": seq_of(list, record("hint_scanner", "damon_monitor")),
            "h_t": _I64_1, "h_local": _I64_1, "h_remote": _I64_1,
            "h_lat": array("float64", 1), "_stop": BOOL, "_phase_i": NAT,
            "_phase_tick": NAT, "_cursor": opt(_I64_1), "_rng_state": RNG_STATE},
            _with_setstate, consistent=_workload_ok),
        Record("hint_scanner", {
            "period_ns": NAT, "scan_pages": NAT, "armed": array("bool", 1), "cursor": NAT,
            "next_scan": opt(INT), "faults": array("uint32", 2),
            "last_node": array("int8", 1), "nfaults": NAT, "nlocal": NAT, "scanned": NAT,
            "cost_ns": NUM}, _with_setstate, consistent=_hint_ok),
        Record("damon_monitor", {
            "cost": _COST, "sample_ns": POS, "aggr_ns": POS, "min_regions": POS,
            "max_regions": POS, **{k: _I64_1 for k in (
                "lo", "hi", "nr", "age", "last_nr_reg", "rep_lo", "rep_hi", "rep_nr",
                "rep_age", "samples")},
            "accessed": array("bool", 1), "next_sample": opt(INT), "next_aggr": opt(INT),
            "aggregations": NAT, "checks": NAT, "cost_ns": NUM, "_rng_state": RNG_STATE},
            _with_setstate, consistent=_damon_ok),
        Record("cost_model", {k: NUM for k in (
            "page_ns_4k", "copy_share", "wait_ns", "tlb_flush_ns", "local_access_ns",
            "hint_fault_ns", "scan_ns_per_page", "damon_check_ns", "query_ns_per_page",
            "syscall_ns")}, _with_init),
        Record("daemon_config", {
            "source": STR, "mode": one_of(*MODES), "period_ns": POS, "threshold": NUM,
            "min_accesses": NUM, "hysteresis": NUM, "cooldown_ns": INT,
            "rate_mbps": num_range(0, lo_open=True), "decay": num_range(0, 1, hi_open=True),
            "hot": opt(NAT), "cold": opt(NAT), "hot_min": NUM, "cold_max": NUM,
            "cold_age": INT, "duration_ns": opt(INT), "report_ticks": INT}, _with_init),
        Record("page_state", {
            "score": array("float32", 2), "last": opt(array("float32", 2)),
            "last_move": _I64_1, "prev_node": array("int8", 1),
            "moves": array("uint16", 1), "seen_aggr": NAT}, _with_init,
            consistent=_page_state_ok),
        Record("daemon", {
            "m": MACHINE, "workloads": WORKLOADS, "pid": NAT, "cfg": record("daemon_config"),
            "id": NAT,
            "state": one_of(*_FINISHED), "started_ns": INT, "periods": NAT, "migrated": NAT,
            "attempted": NAT, "calls": NAT, "query_ns": NUM, "migrate_ns": INT,
            "failures": dict_of(STR, NUM, Counter), "pingpong": NAT,
            "by_pair": dict_of(PAIR, NUM, Counter), "tokens": NUM,
            "baselines": dict_of(NAT, NAT), "pages": dict_of(NAT, record("page_state")),
            "seen": seq_of(set, NAT), "_stop": BOOL, "_idle": NAT, "_idle_clock": INT,
            "_last_t": INT, "_next": INT}, _with_attrs, v1=_daemon_v1),
        Record("timeline", {
            "capacity": POS, "min_interval_ns": NAT, "nr_nodes": NAT, "t": _I64_1,
            "data": dict_of(STR, ANY), "count": NAT}, _with_attrs, consistent=_timeline_ok),
        Record("bill", {
            "kind": one_of(*KINDS), "args": seq_of(tuple, ANY), "kwargs": dict_of(STR, ANY),
            "era": STR, "page_size": POS, "chunk": opt(POS), "pairs": COUNTER,
            "failures": COUNTER, "already": NAT, "unattempted": NAT, "predicted_ns": INT,
            "ret": opt(INT), "error": opt(seq_of(tuple, ANY)), "endless": BOOL,
            "status": opt(int_array(1)), "notes": seq_of(list, STR),
            "actual": opt(dict_of(STR, ANY))}, _with_init,
            optional=frozenset({"chunk", "endless"})),  # not in files before the fields
        Record("move_status", {"array": _I64_1, "ret": INT}, _move_status,
               optional=frozenset({"ret"}), state=lambda x: {"array": x.array, "ret": x.ret},
               v1=_move_status_v1),
        Record("job", {
            "id": POS, "name": STR, "total": NAT, "done": NAT,
            "state": one_of("done", "cancelled", "failed"), "result": ANY,
            "error": opt(EXCEPTION), "started_ns": INT, "finished_ns": opt(INT),
            "steps": NAT, "idle": BOOL, "owner": opt(record("workload", "daemon")),
            "_cancel": BOOL, "rounds": NAT}, _job,
            # rounds: offline jobs only; _cancel: not in version-1 files
            optional=frozenset({"_cancel", "rounds"}), state=_job_state),
    ]
    return {r.tag: r for r in recs}


_RECORDS: dict[str, Record] = {}
_CLASSES: dict[str, type] = {}
_BY_CLASS: dict[type, Record] = {}


def classes() -> dict[str, type]:
    """tag -> the engine class."""
    if not _CLASSES:
        _CLASSES.update({
            "phase": Phase, "workload": Workload, "hint_scanner": HintScanner,
            "damon_monitor": DamonMonitor, "cost_model": CostModel,
            "daemon_config": DaemonConfig, "page_state": _PageState, "daemon": Daemon,
            "timeline": Timeline, "bill": Bill, "move_status": MoveStatus, "job": Job})
    return _CLASSES


def records() -> dict[str, Record]:
    if not _RECORDS:
        _RECORDS.update(_records())
        _BY_CLASS.update({classes()[t]: r for t, r in _RECORDS.items()})
    return _RECORDS


def record_for(obj: Any) -> Record | None:
    """The schema entry of obj's exact class (a subclass is not its parent)."""
    records()
    return _BY_CLASS.get(type(obj))


# =================================================================== exceptions

_OS_KINDS = ("OSError", "BlockingIOError", "ChildProcessError", "FileExistsError",
             "FileNotFoundError", "InterruptedError", "IsADirectoryError",
             "NotADirectoryError", "PermissionError", "ProcessLookupError", "TimeoutError")
_OTHER_KINDS = ("Exception", "ValueError", "TypeError", "KeyError", "IndexError",
                "RuntimeError", "AssertionError", "ArithmeticError", "ZeroDivisionError",
                "OverflowError", "MemoryError", "NotImplementedError")
MAX_MESSAGE = 1 << 16


def _exception_kinds() -> dict[str, type]:
    kinds = {k: getattr(builtins, k) for k in _OS_KINDS + _OTHER_KINDS}
    kinds.update(InvariantError=InvariantError, JobCancelled=JobCancelled)
    return kinds


def exception_fields(e: BaseException) -> dict:
    """{"kind", "errno", "message"} of an exception: its class if in the table, else its
    nearest ancestor that is (a DescriptionError is kept as a ValueError)."""
    kinds = _exception_kinds()
    kind = next((c.__name__ for c in type(e).__mro__ if kinds.get(c.__name__) is c), None)
    if kind is None:
        raise SchemaError(f"cannot save an exception of type {type(e).__name__}")
    args = e.args
    errno = None
    if kind in _OS_KINDS and isinstance(e.errno, int) and len(args) == 2 \
            and isinstance(e.strerror, str):
        errno, message = e.errno, e.strerror
    elif not args:
        message = None
    elif len(args) == 1 and isinstance(args[0], str):
        message = args[0]
    else:
        message = str(e)
    return {"kind": kind, "errno": errno, "message": message}


def build_exception(d: Any) -> BaseException:
    """The exception a snapshot stores, after checking every field."""
    if type(d) is not dict or sorted(d) != ["errno", "kind", "message"]:
        raise SchemaError("exception: expected fields errno, kind, message")
    kind, errno, message = d["kind"], d["errno"], d["message"]
    cls = _exception_kinds().get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise SchemaError(f"exception: kind {str(kind)[:60]!r} is not one a snapshot may "
                          f"hold")
    if errno is not None and (kind not in _OS_KINDS or not _int(errno)
                              or not 0 <= errno < 4096):
        raise SchemaError(f"exception: errno {errno!r} for {kind}")
    if message is not None and (not isinstance(message, str) or len(message) > MAX_MESSAGE):
        raise SchemaError("exception: the message is not a string of at most 64 KiB")
    if errno is not None:
        return cls(errno, message or "")
    return cls() if message is None else cls(message)


def legacy_exception(path: Any, args: Any) -> BaseException:
    """A version-1 {"exc": ["module:qualname", args]}: the name must be one the old
    writer used for a kind of the table; args become errno and message."""
    kind = LEGACY_EXCEPTIONS.get(path) if isinstance(path, str) else None
    if kind is None:
        raise SchemaError(f"refusing exception class {str(path)[:80]!r}: not a kind a "
                          f"snapshot may hold")
    if type(args) is not list:
        raise SchemaError("exception: malformed arguments")
    if len(args) == 2 and _int(args[0]) and isinstance(args[1], str) and kind in _OS_KINDS:
        d = {"kind": kind, "errno": args[0], "message": args[1]}
    elif not args:
        d = {"kind": kind, "errno": None, "message": None}
    elif len(args) == 1 and isinstance(args[0], str):
        d = {"kind": kind, "errno": None, "message": args[0]}
    else:
        raise SchemaError(f"exception: {kind} arguments are not an errno and a message")
    return build_exception(d)


# what version 1 wrote as "module:qualname" -> the record or exception kind it was
_LEGACY = {
    "workload:Phase": "phase", "workload:Workload": "workload",
    "access:HintScanner": "hint_scanner", "access:DamonMonitor": "damon_monitor",
    "clock:CostModel": "cost_model", "automigrate:DaemonConfig": "daemon_config",
    "automigrate:_PageState": "page_state", "automigrate:Daemon": "daemon",
    "timeline:Timeline": "timeline", "bill:Bill": "bill",
}
# (with the module paths before and after the engine's layout change: version 1 was
# written by both)
LEGACY_CLASSES = {
    **{f"engine.{k}": v for k, v in _LEGACY.items()},
    **{f"engine.runtime.{k}": v for k, v in _LEGACY.items()},
    "engine.migrate:MoveStatus": "move_status", "engine.mm.migrate:MoveStatus": "move_status",
}
LEGACY_EXCEPTIONS = {
    **{f"builtins:{k}": k for k in _OS_KINDS + _OTHER_KINDS},
    "engine.machine:InvariantError": "InvariantError",
    "engine.jobs:JobCancelled": "JobCancelled",
    "engine.runtime.jobs:JobCancelled": "JobCancelled",
}

