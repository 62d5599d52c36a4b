"""The snapshot's value encoding: Python values to JSON and back (Encoder,
Decoder), with runtime objects as records of snapshot_schema.py, never classes named
by the file."""

from __future__ import annotations

import dataclasses
from collections import Counter, deque
from typing import Any

import numpy as np

from ..machine import Machine
from ..mm.mm_types import Policy
from ..mm.pagetable import CHUNK, PTE_DTYPE, PageTable
from . import snapshot_schema as schema
from .container import (
    VERSION,
    SaveError,
)

__all__ = ["Encoder", "Decoder", "Tables", "make", "BIT_GENERATORS", "LEGACY_TAGS"]


# the bit generators a snapshot may name, each to its class: the file names a key of
# this table, never an attribute to look up
BIT_GENERATORS = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM,
                  "MT19937": np.random.MT19937, "Philox": np.random.Philox,
                  "SFC64": np.random.SFC64}
LEGACY_TAGS = ("obj", "lobj", "job", "exc")  # version 1 named classes; see snapshot_schema


class Encoder:
    """The JSON-able form of Python values. JSON has no tuples, sets, int-keyed dicts
    or objects, so each non-JSON value becomes a one-key object ({"t": [...]} is a
    tuple) and a plain dict is itself tagged "d": decoding is unambiguous. Numpy
    arrays go to blobs. Runtime objects (a workload, a timeline) are records of
    engine/machines/snapshot_schema.py, {"rec": [k, tag, fields]}, memoized so that
    shared objects stay shared; an object the schema does not describe is refused.
    Objects the machine saves explicitly (the machine, processes, VMAs, mappings,
    drivers, zones, nodes, the cost model) become references."""

    def __init__(self, m: Machine, arrays: dict[str, np.ndarray]):
        self.m = m
        self.arrays = arrays
        self.memo: dict[int, Any] = {}
        self.busy: set[int] = set()  # records being encoded: meeting one again is a cycle
        self.hold: list = []  # keeps encoded objects alive so that ids stay unique
        self.known: dict[int, Any] = {id(m): {"ref": ["machine"]},
                                      id(m.cost): {"ref": ["cost"]},
                                      id(m.workloads): {"ref": ["workloads"]}}
        for pid, p in m.procs.items():
            self.known[id(p)] = {"ref": ["proc", pid]}
            for i, v in enumerate(p.vmas):
                self.known[id(v)] = {"ref": ["vma", pid, i]}
        for k, o in m.mappings.items():
            self.known[id(o)] = {"ref": ["map", k]}
        for k, d in m.drivers_map.items():
            self.known[id(d)] = {"ref": ["drv", k]}
        for i, z in enumerate(m.zones):
            self.known[id(z)] = {"ref": ["zone", i]}
        for i, n in enumerate(m.nodes_list):
            self.known[id(n)] = {"ref": ["node", i]}

    def fields(self, obj, skip=()) -> dict:
        return {f.name: self(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if f.name not in skip}

    def __call__(self, x: Any) -> Any:
        t = type(x)
        if x is None or t in (bool, int, float, str):
            return x
        if isinstance(x, (np.bool_, np.integer, np.floating)):
            return x.item()
        if t is list:
            return [self(v) for v in x]
        if t is tuple:
            return {"t": [self(v) for v in x]}
        if t in (set, frozenset):
            items = [self(v) for v in x]
            try:
                items.sort()
            except TypeError:
                pass
            return {"fs" if t is frozenset else "s": items}
        if t is dict:
            if all(type(k) is str for k in x):
                return {"d": {k: self(v) for k, v in x.items()}}
            return {"dk": [[self(k), self(v)] for k, v in x.items()]}
        if t is Counter:
            return {"ctr": [[self(k), self(v)] for k, v in x.items()]}
        if t is deque:
            return {"dq": [x.maxlen, [self(v) for v in x]]}
        if t is Policy:
            return {"pol": [x.mode, list(x.nodes), x.flags, list(x.user_nodes)]}
        if isinstance(x, (int, str)) and not isinstance(x, bool):  # IntEnum and the like
            return int(x) if isinstance(x, int) else str(x)
        if isinstance(x, BaseException):
            try:
                return {"err": schema.exception_fields(x)}
            except schema.SchemaError as e:
                raise SaveError(str(e)) from None
        if t is np.random.Generator:  # a workload's RNG: its exact position is state
            bg = x.bit_generator
            return {"rng": [type(bg).__name__, self(bg.state)]}
        if id(x) in self.known:
            return self.known[id(x)]
        if id(x) in self.busy:
            raise SaveError(f"cannot save a {t.__name__} that refers back to itself")
        if id(x) in self.memo:
            return {"mref": self.memo[id(x)]}
        return self._object(x)

    def _object(self, x: Any) -> Any:
        k = len(self.memo)
        if isinstance(x, np.ndarray):
            name = f"obj.{k}"
            self.memo[id(x)] = k
            self.hold.append(x)
            self.arrays[name] = x
            return {"arr": [k, name]}
        rec = schema.record_for(x)
        if rec is None:
            raise SaveError(f"cannot save a value of type {type(x).__name__} (the snapshot "
                            f"schema has no record for it)")
        self.memo[id(x)] = k
        self.hold.append(x)
        self.busy.add(id(x))
        try:
            values = rec.fields_of(x)
            rec.validate(values, self)  # what load would refuse, save refuses
        except schema.SchemaError as e:
            raise SaveError(str(e)) from None
        out = {name: self(v) for name, v in values.items()}
        self.busy.discard(id(x))
        return {"rec": [k, rec.tag, out]}


class Decoder:
    """Inverse of Encoder, once the explicitly saved parts of m are restored. Builds
    only plain values, arrays, references into m and schema records, each record
    after all of its fields are checked."""

    def __init__(self, m: Machine, arrays: dict[str, np.ndarray], version: int = VERSION):
        self.m = m
        self.arrays = arrays
        self.version = version
        self.memo: dict[int, Any] = {}
        self.job_ids: list[int] = []  # jobs rebuilt: Job._ids passes them once loaded

    def ref(self, r: Any) -> Any:
        m = self.m
        if type(r) is not list or not r or not all(type(i) in (str, int) for i in r):
            raise SaveError(f"malformed reference {str(r)[:60]}")
        kind, key = r[0], r[1:]
        if kind == "machine" and not key:
            return m
        if kind == "cost" and not key:
            return m.cost
        if kind == "workloads" and not key:
            return m.workloads
        if kind == "vma" and len(key) == 2 and key[0] in m.procs:
            vmas = m.procs[key[0]].vmas
            if type(key[1]) is int and 0 <= key[1] < len(vmas):
                return vmas[key[1]]
        elif kind in ("proc", "map", "drv") and len(key) == 1:
            table = {"proc": m.procs, "map": m.mappings, "drv": m.drivers_map}[kind]
            if key[0] in table:
                return table[key[0]]
        elif kind in ("zone", "node") and len(key) == 1 and type(key[0]) is int:
            seq = m.zones if kind == "zone" else m.nodes_list
            if 0 <= key[0] < len(seq):
                return seq[key[0]]
        raise SaveError(f"reference to a missing object {str(r)[:60]}")

    def __call__(self, x: Any) -> Any:
        if isinstance(x, list):
            return [self(v) for v in x]
        if not isinstance(x, dict):
            return x
        if len(x) != 1:
            raise SaveError("malformed value")
        (tag, v), = x.items()
        if tag in ("t", "fs", "s", "dk", "ctr", "pol", "rng", "arr", "dq") and \
                type(v) is not list:
            raise SaveError(f"malformed {tag!r} value")
        if tag == "t":
            return tuple(self(i) for i in v)
        if tag in ("fs", "s"):
            return (frozenset if tag == "fs" else set)(self(i) for i in v)
        if tag == "d":
            if type(v) is not dict:
                raise SaveError("malformed 'd' value")
            return {k: self(i) for k, i in v.items()}
        if tag in ("dk", "ctr"):
            if not all(type(i) is list and len(i) == 2 for i in v):
                raise SaveError(f"malformed {tag!r} value")
            d = {self(k): self(i) for k, i in v}
            return Counter(d) if tag == "ctr" else d
        if tag == "dq":
            if len(v) != 2 or not (v[0] is None or type(v[0]) is int and v[0] >= 0) \
                    or type(v[1]) is not list:
                raise SaveError("malformed 'dq' value")
            return deque((self(i) for i in v[1]), maxlen=v[0])
        if tag == "pol":
            ints = (len(v) == 4 and type(v[0]) is int and type(v[2]) is int and
                    all(type(v[i]) is list and all(type(n) is int for n in v[i])
                        for i in (1, 3)))
            if not ints:
                raise SaveError("malformed memory policy")
            return Policy(v[0], tuple(v[1]), v[2], tuple(v[3]))
        if tag == "err":
            try:
                return schema.build_exception(v)
            except schema.SchemaError as e:
                raise SaveError(str(e)) from None
        if tag == "rng":
            if len(v) != 2 or not isinstance(v[0], str) or v[0] not in BIT_GENERATORS:
                raise SaveError(f"unknown random generator {str(v[0:1])[:40]}")
            bg = BIT_GENERATORS[v[0]]()
            try:
                bg.state = self(v[1])
            except (ValueError, TypeError, KeyError) as e:
                raise SaveError(f"bad random generator state: {e}") from None
            return np.random.Generator(bg)
        if tag == "ref":
            return self.ref(v)
        if tag == "mref":
            if type(v) is not int or v not in self.memo:
                raise SaveError(f"reference to an undefined object {str(v)[:20]}")
            return self.memo[v]
        if tag == "arr":
            if len(v) != 2 or type(v[1]) is not str or v[1] not in self.arrays:
                raise SaveError(f"reference to a missing array {str(v)[:40]}")
            a = self.arrays.pop(v[1])
            self._define(v[0], a)
            return a
        if tag == "rec":
            if len(v) != 3 or type(v) is not list or not isinstance(v[1], str) or \
                    type(v[2]) is not dict:
                raise SaveError("malformed record")
            rec = schema.records().get(v[1])
            if rec is None:
                raise SaveError(f"unknown record type {v[1][:80]!r}")
            return self._record(v[0], rec, v[2])
        if tag in LEGACY_TAGS and self.version == 1:
            return self._legacy(tag, v)
        raise SaveError(f"unknown value tag {str(tag)[:40]!r}")

    def _define(self, k: Any, obj: Any) -> None:
        if type(k) is not int or k in self.memo:
            raise SaveError(f"object number {str(k)[:20]} is malformed or defined twice")
        self.memo[k] = obj

    def _record(self, k: Any, rec: schema.Record, raw: dict) -> Any:
        """Decode the fields, check them all, then build. The record is numbered only
        once built: a reference to it from inside itself (a cycle) is refused."""
        try:
            if self.version == 1:
                raw = rec.upgrade(raw)
            rec.check_names(raw, f"{rec.tag} record")
            obj = rec.make({name: self(v) for name, v in raw.items()}, self)
        except schema.SchemaError as e:
            raise SaveError(str(e)) from None
        self._define(k, obj)
        return obj

    def _legacy(self, tag: str, v: Any) -> Any:
        """Version 1 wrote {"obj": [k, "module:qualname", state]} (and "lobj" for list
        subclasses, "job", "exc"): the name is looked up in a fixed table of the classes
        that version saved, and the state goes through the same record checks."""
        if tag == "exc":
            if type(v) is not list or len(v) != 2:
                raise SaveError("malformed exception")
            try:
                return schema.legacy_exception(v[0], self(v[1]))
            except schema.SchemaError as e:
                raise SaveError(str(e)) from None
        if type(v) is not list or len(v) != {"obj": 3, "lobj": 4, "job": 2}[tag]:
            raise SaveError(f"malformed {tag!r} value")
        if tag == "job":
            name = "job"
        else:
            name = schema.LEGACY_CLASSES.get(v[1]) if isinstance(v[1], str) else None
            if name is None:
                raise SaveError(f"refusing class {str(v[1])[:80]!r}: not a record type of "
                                f"the snapshot schema")
        state = v[-1]
        if type(state) is not dict or list(state) != ["d"] or type(state["d"]) is not dict:
            raise SaveError(f"malformed {name} state")
        raw = dict(state["d"])
        if tag == "lobj":
            raw["items"] = v[2]
        return self._record(v[0], schema.records()[name], raw)


def make(cls, d: Any, dec: Decoder, **extra):
    """Rebuild a dataclass; a field this version does not know means a broken file."""
    if type(d) is not dict:
        raise SaveError(f"malformed {cls.__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise SaveError(f"{cls.__name__} has no field {sorted(unknown)[0]!r}")
    return cls(**{k: dec(v) for k, v in d.items()}, **extra)


class Tables:
    """Page tables (every mm's and every page-cache object's) concatenated into three
    arrays: chunk numbers, pfn rows, expect rows. Each table keeps its chunk count."""

    def __init__(self) -> None:
        self.keys: list[np.ndarray] = []
        self.pfn: list[np.ndarray] = []
        self.expect: list[np.ndarray] = []

    def add(self, pt: PageTable) -> int:
        keys, pfn, exp = pt.export()
        self.keys.append(keys)
        self.pfn.append(pfn)
        self.expect.append(exp)
        return int(keys.size)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"pt.keys": cat(self.keys, np.int64, (0,)),
                "pt.pfn": cat(self.pfn, PTE_DTYPE, (0, CHUNK)),
                "pt.expect": cat(self.expect, np.uint32, (0, CHUNK))}


def cat(parts: list[np.ndarray], dtype, empty_shape) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else \
        np.zeros(empty_shape, dtype)
