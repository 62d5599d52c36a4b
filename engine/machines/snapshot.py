"""engine.load / engine.save: machine descriptions (TOML, written by people) and exact
snapshots (written by the program).

A snapshot is a container of arrays (engine/machines/container.py): the frames, the
memory blocks, the counters, every page table's chunks, and one JSON blob "state"
holding the rest. The state walks the machine's attributes by name through one table
(KERNEL_STATE, RUNTIME_STATE): an attribute the table does not cover is refused at
save, so nothing is silently dropped. Engine objects of the runtime (workloads,
daemons, finished jobs, the timeline, the last bill) are records of the schema in
engine/machines/snapshot_schema.py: the file names a record type, never a class, and
every field is checked before anything is built."""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections import Counter
from typing import Any

import numpy as np

from ..constants import MAX_NUMNODES, MAX_OVERCOMMIT_HUGEPAGES, VM_HUGETLB, PG_pinned
from ..heap import trim
from ..machine import RUNTIME, InvariantError, Machine
from ..mm.era import ERAS, Era
from ..mm.frames import Frames
from ..mm.huge_memory import THP_MODES
from ..mm.mm_types import VMA, AnonVMA, Backing, Policy, Process
from ..mm.pagetable import CHUNK, PTE_DTYPE, PageTable
from ..mm.state import CostModel, Driver
from ..mm.zones import Node, Zone
from ..runtime.jobs import Job
from . import snapshot_schema as schema
from .container import (
    HEADER,
    MAGIC,
    MAX_DESCRIPTION,
    VERSION,
    SaveError,
    atomic_write,
    bad,
    dtype_str,
    open_regular,
    read_blobs,
    read_manifest,
    write_container,
)
from .description import DescriptionError, build_machine, slit_problem, too_big
from .snapshot_codec import Decoder, Encoder, Tables, make
from .snapshot_v1 import upgrade_v1
from .toml_lines import key_line

__all__ = ["load", "save", "SaveError", "snapshot_state", "restore_state"]


# =================================================================== public API

def load(path: str | os.PathLike, *, check: bool = False, machine: Machine | None = None,
         caller=None) -> Machine:
    """A machine from a snapshot or a TOML description; the format is sniffed from the
    first bytes. Raises SaveError("PATH: reason") for anything that cannot be loaded.
    check=True also runs Machine.check() on the result. Loading over `machine` is an
    administrator act of its process `caller` (EPERM without CAP_SYS_ADMIN)."""
    if caller is not None:
        if machine is None:
            raise ValueError("load: caller= names a process of machine=, which is missing")
        machine.require_admin(caller, "load")
    p = os.fspath(path)
    _no_nul(p)
    try:
        fh, size = open_regular(p)
        with fh:
            head = fh.read(HEADER.size)
            if not head:
                raise SaveError(f"{p}: empty file")
            if head.startswith(MAGIC):
                m = _load_snapshot(fh, p, head, size)
            elif MAGIC.startswith(head):
                raise SaveError(f"{p}: truncated snapshot ({size} bytes)")
            else:
                m = _load_description(fh, p, head, size)
    except OSError as e:
        raise SaveError(f"{p}: cannot read: {e.strerror or e}") from None
    except MemoryError:  # a machine larger than this process may allocate (ulimit -v)
        raise SaveError(f"{p}: this machine needs more memory than this host can "
                        f"give the process") from None
    if check:
        try:
            m.check()
        except InvariantError as e:
            raise SaveError(f"{p}: loaded machine is inconsistent: {e}") from None
    return m


def save(m: Machine, path: str | os.PathLike, *, caller=None) -> None:
    """Write an exact snapshot of m, atomically: a temporary file in the same
    directory, flushed and fsynced, renamed over PATH. Refused while jobs run (a job
    is a Python generator suspended mid-operation: it cannot be written down), and to
    a caller process without CAP_SYS_ADMIN (an administrator act: EPERM)."""
    m.require_admin(caller, "save")
    p = os.fspath(path)
    _no_nul(p)
    if m.jobs:
        names = ", ".join(f"{j.name} #{j.id}" for j in m.jobs)
        raise SaveError(f"{p}: cannot save while jobs are running ({names}); wait for them "
                        f"or cancel them first")
    try:
        state, arrays = snapshot_state(m)
        for name, a in arrays.items():
            dtype_str(a, name)
    except SaveError as e:
        raise SaveError(f"{p}: {e}") from None
    state_bytes = json.dumps(state, separators=(",", ":")).encode()
    blobs = list(arrays.items()) + [("state", np.frombuffer(state_bytes, np.uint8))]
    atomic_write(p, lambda fh: write_container(fh, blobs))


def _no_nul(p) -> None:
    """A path with a NUL byte names no file (open() raised ValueError)."""
    if isinstance(p, (str, bytes)) and ("\0" in p if isinstance(p, str) else b"\0" in p):
        shown = p.replace("\0", "\\0") if isinstance(p, str) else repr(p)
        raise SaveError(f"{shown}: a file name cannot contain a NUL byte")


# tomllib takes time quadratic in the parts of one dotted key (200 000 parts: minutes),
# and 4 MiB of 32-part keys took 3 s and 450 MB; a description's keys have at most 3
MAX_KEY_PARTS = 8
_PART = r'(?:[A-Za-z0-9_-]+|"[^"\n]*"|\'[^\'\n]*\')'
_LONG_KEY = re.compile(rf"{_PART}(?:[ \t]*\.[ \t]*{_PART}){{{MAX_KEY_PARTS},}}")


def load_description(text: str, source: str = "<description>") -> Machine:
    """Parse TOML text and build its machine; a DescriptionError gets the line of the
    offending key."""
    long_key = _LONG_KEY.search(text)
    if long_key:
        line = text.count("\n", 0, long_key.start()) + 1
        raise DescriptionError(source, "(top level)", f"a dotted key of more than "
                                                      f"{MAX_KEY_PARTS} parts", line)
    d = tomllib.loads(text)
    try:
        m = build_machine(Machine(), d, source=source)
        trim()  # (as Machine.from_description)
        return m
    except DescriptionError as e:
        e.line = key_line(text, e.key)
        raise


def _load_description(fh, p: str, head: bytes, size: int) -> Machine:
    if size > MAX_DESCRIPTION:
        raise SaveError(f"{p}: not a numacon snapshot, and {size} bytes is too large for a "
                        f"machine description")
    # bounded by what is read, not by st_size: the file may grow while it is read
    data = head + fh.read(MAX_DESCRIPTION + 1 - len(head))
    if len(data) > MAX_DESCRIPTION:
        raise SaveError(f"{p}: not a numacon snapshot, and more than {MAX_DESCRIPTION} "
                        f"bytes is too large for a machine description")
    if b"\0" in data:
        raise SaveError(f"{p}: not a numacon snapshot or machine description (binary data)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SaveError(f"{p}: not a numacon snapshot or machine description (not UTF-8 "
                        f"text)") from None
    try:
        return load_description(text, source=p)
    except tomllib.TOMLDecodeError as e:
        raise SaveError(f"{p}: not a valid TOML description: {e}") from None
    except RecursionError:
        raise SaveError(f"{p}: not a valid TOML description: values nested too "
                        f"deeply") from None
    except DescriptionError as e:  # already "PATH:LINE: key: problem"
        raise SaveError(str(e)) from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OSError,
            ArithmeticError) as e:
        # the builder validates what it reads; this is the one-line net for a case it
        # missed (the description tests fuzz for them)
        raise SaveError(f"{p}: cannot build this machine: {type(e).__name__}: {e}") from None


def _load_snapshot(fh, p: str, head: bytes, size: int) -> Machine:
    """Manifest, then the state (small), then every other blob once its declared size
    is checked against what the state's machine can need; then the machine is rebuilt
    and must pass the checks a live machine passes (check(), the SLIT's rules)."""
    man = read_manifest(fh, p, head, size)
    sb = next((b for b in man["blobs"] if b["name"] == "state"), None)
    if sb is None:
        raise bad(p, "corrupt snapshot: no machine state")
    if sb["dtype"] != "|u1" or len(sb["shape"]) != 1 or sb["shape"][0] > MAX_STATE:
        raise bad(p, f"corrupt snapshot: a machine state of {sb['shape']} {sb['dtype']} "
                     f"(at most {MAX_STATE} bytes)")
    raw_state = read_blobs(fh, p, man, {"state"})["state"]
    try:
        state = json.loads(raw_state.tobytes())
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise bad(p, "corrupt snapshot: machine state is not JSON") from None
    try:
        _check_sizes(man, state, man["version"])
    except SaveError as e:
        raise bad(p, f"inconsistent snapshot: {e}") from None
    arrays = read_blobs(fh, p, man, {b["name"] for b in man["blobs"]} - {"state"})
    try:
        m = restore_state(state, arrays, man["version"])
        m.check()
    except SaveError as e:
        raise bad(p, f"inconsistent snapshot: {e}") from None
    except InvariantError as e:  # the same invariants a live machine keeps
        raise bad(p, f"inconsistent snapshot: {e}") from None
    except RecursionError:
        raise bad(p, "inconsistent snapshot: values nested too deeply") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as e:
        raise bad(p, f"inconsistent snapshot: {type(e).__name__}: {e}") from None
    return m


MAX_STATE = 256 << 20  # the JSON state: processes, VMAs, runtime records (MBs at most)
# a runtime array (a workload's counts, a daemon's scores, the timeline) holds at most
# this many bytes per frame and node of the machine, plus RUNTIME_SLACK
RUNTIME_BYTES = 8
RUNTIME_SLACK = 16 << 20


def _check_sizes(man: dict, state: Any, version: int) -> None:
    """Every blob's declared size against what the state's machine can need, before it
    is read (a 2.5 MB file declaring 4 GiB of zero chunks took 5 GiB): the frames
    exactly nr_frames of the frames' dtypes, the machine small enough to hold and check
    here, page tables exactly the chunks the state's tables declare, node tables at
    most MAX_NUMNODES square, runtime arrays bounded by frames x nodes."""
    if type(state) is not dict:
        raise SaveError("the machine state is not a table")
    n = state.get("nr_frames")
    if type(n) is not int or not 0 < n <= 1 << 31:
        raise SaveError(f"nr_frames {str(n)[:20]} is not a frame count")
    problem = too_big(n)
    if problem:
        raise SaveError(problem)
    nodes = state.get("nodes")
    ids = [d.get("id") for d in nodes if type(d) is dict] if type(nodes) is list else []
    if not ids or not all(type(i) is int and 0 <= i < MAX_NUMNODES for i in ids):
        raise SaveError(f"the nodes are not 1..{MAX_NUMNODES} node numbers")
    nr = max(ids) + 1  # node ids may be sparse: tables are sized by the highest id
    chunks = None
    if version >= 2:
        chunks = 0
        for pd in list(state.get("procs") or []) + [d for d in state.get("mappings") or []
                                                    if type(d) is dict and "pt" in d]:
            k = pd.get("pt") if type(pd) is dict else None
            if type(k) is not int or k < 0:
                raise SaveError("a page table's chunk count is not a count")
            chunks += k
    frames = dict(zip(Frames.FIELDS, Frames.DTYPES))
    for b in man["blobs"]:
        name, shape, dt = b["name"], b["shape"], b["dtype"]
        size = math.prod(shape) * np.dtype(dt).itemsize
        if name.startswith("frames."):
            want = frames.get(name[len("frames."):])
            if want is None or shape != [n] or dt != np.dtype(want).str:
                raise SaveError(f"blob {name} is {shape} {dt}; the frames are [{n}] of "
                                f"their own types")
        elif name in ("pt.keys", "pt.pfn", "pt.expect") and chunks is not None:
            want = {"pt.keys": ([chunks], np.int64), "pt.pfn": ([chunks, CHUNK], PTE_DTYPE),
                    "pt.expect": ([chunks, CHUNK], np.uint32)}[name]
            if shape != want[0] or dt != np.dtype(want[1]).str:
                raise SaveError(f"blob {name} is {shape} {dt}; the state's page tables "
                                f"have {chunks} chunks")
        elif name in ("distances", "traffic", "numastat_arr", "numastat"):
            if size > 8 * max(nr, 6) * nr:  # (nr, nr), or numastat's (6, nr), of int64
                raise SaveError(f"blob {name} of {size} bytes is larger than a node table")
        elif name != "state" and size > n * nr * RUNTIME_BYTES + RUNTIME_SLACK:
            raise SaveError(f"blob {name} declares {size} bytes; a machine of {n} frames "
                            f"keeps at most {n * nr * RUNTIME_BYTES + RUNTIME_SLACK} there")


# =================================================================== machine -> state

# The machine's attributes, each saved by one entry of these tables. DERIVED ones are
# rebuilt from the others; RUNTIME ones belong to the running program (jobs under way,
# listeners, real-time pacing) except those RUNTIME_STATE keeps. save() refuses an
# attribute no table names: new state must be given a place here, not dropped.
SCALARS = ("name", "page_size", "page_shift", "block_pages", "seed", "zero_pfn",
           "isolated_pages", "next_id", "write_seq", "next_pid", "thp_mode", "large_folios",
           "nr_overcommit_hugepages")
# scalars an older snapshot may lack, with the value such a machine had
SCALAR_DEFAULTS = {"thp_mode": "madvise", "large_folios": 0, "nr_overcommit_hugepages": 0}
ARRAYS = ("distances", "blk_state", "blk_isolated", "numastat_arr")
STRUCTURED = ("_era", "cost", "nodes_list", "zones", "f", "procs", "mappings", "files",
              "drivers_map", "il_weights", "vmstat_counts", "vmstat_extra", "time",
              "traffic", "description")
DERIVED = ("_node_starts", "_node_ids", "_zone_starts", "_zone_ids", "_tabs")
RUNTIME_STATE = ("finished_jobs", "workloads", "daemons", "timeline", "bills")
KERNEL_STATE = SCALARS + ARRAYS + STRUCTURED


def _covered(m: Machine) -> None:
    known = set(KERNEL_STATE) | set(DERIVED) | set(RUNTIME)
    extra = [k for k in vars(m) if k not in known]
    if extra:
        raise SaveError(f"machine attribute {extra[0]!r} has no place in the snapshot")


def snapshot_state(m: Machine) -> tuple[dict, dict[str, np.ndarray]]:
    """(JSON-able state, arrays) that restore_state() turns back into an equal machine."""
    _covered(m)
    arrays: dict[str, np.ndarray] = {f"frames.{n}": a for n, a in m.f.blobs().items()}
    arrays.update({k: getattr(m, k) for k in ARRAYS})
    if m.traffic is not None:
        arrays["traffic"] = m.traffic
    e = Encoder(m, arrays)
    tables = Tables()
    procs = [{"fields": e.fields(p, skip=("vmas", "pt", "bounds")), "pt": tables.add(p.pt),
              "vmas": [{"start": v.start, "end": v.end, "flags": v.flags,
                        "policy": e(v.policy), "pgoff": v.pgoff,
                        "hpage_order": v.hpage_order,
                        "anon": None if v.anon is None else v.anon.id,
                        "backing": None if v.backing is None else v.backing.id,
                        "resv_owner": v.resv_owner}
                       for v in p.vmas]}
             for p in m.procs.values()]
    vref = {id(v): [p.pid, i] for p in m.procs.values() for i, v in enumerate(p.vmas)}
    maps = []
    for key, obj in m.mappings.items():
        members = [vref[id(v)] for v in obj.vmas if id(v) in vref]
        if isinstance(obj, AnonVMA):
            maps.append({"key": key, "type": "anon", "id": obj.id, "pid": obj.pid,
                         "base_vpn": obj.base_vpn, "inflight": obj.inflight,
                         "vmas": members})
        else:
            maps.append({"key": key, "type": "backing", "id": obj.id, "name": obj.name,
                         "kind": obj.kind, "npages": obj.npages, "pt": tables.add(obj.pt),
                         "vmas": members, "shmem": obj.shmem,
                         "hugetlb": obj.hugetlb, "resv": obj.resv,
                         "spol": [[a, b, e(pol)] for a, b, pol in obj.shared_policy]})
    arrays.update(tables.arrays())
    state = {
        "machine": {k: e(getattr(m, k)) for k in SCALARS},
        "clock": m.time.ns,
        "nr_frames": m.f.n,
        "era": e.fields(m._era),
        "cost": e.fields(m.cost),
        "nodes": [e.fields(n) for n in m.nodes_list],
        "zones": [e.fields(z) for z in m.zones],
        "procs": procs,
        "mappings": maps,
        "files": [[name, b.id] for name, b in m.files.items()],
        "drivers": [[k, e.fields(d, skip=("backing",)),
                     None if d.backing is None else d.backing.id]
                    for k, d in m.drivers_map.items()],
        "il_weights": e(m.il_weights),
        "vmstat_counts": e(dict(m.vmstat_counts)),
        "vmstat_extra": e(dict(m.vmstat_extra)),
        "description": json.loads(json.dumps(m.description, default=str)),
        "runtime": {
            "finished_jobs": e(list(m.finished_jobs)),
            "workloads": e(list(m.workloads)),
            "daemons": e(list(m.daemons)),
            "timeline": e(m.timeline),
            "last_bill": e(m.bills.last),
        },
    }
    return state, arrays


# =================================================================== state -> machine

STATE_KEYS = ("machine", "clock", "nr_frames", "era", "cost", "nodes", "zones", "procs",
              "mappings", "files", "drivers", "il_weights", "vmstat_counts", "vmstat_extra",
              "description", "runtime")
RUNTIME_KEYS = ("finished_jobs", "workloads", "daemons", "timeline", "last_bill")


def _known_keys(d: Any, keys: tuple, what: str) -> None:
    if type(d) is not dict:
        raise SaveError(f"{what} is not a table")
    for k in d:
        if k not in keys:
            raise SaveError(f"{what} holds an entry {str(k)[:40]!r} this numacon does not "
                            f"know")


def restore_state(state: dict, arrays: dict[str, np.ndarray], version: int = VERSION
                  ) -> Machine:
    if version == 1:
        state = upgrade_v1(state, arrays)
    _known_keys(state, STATE_KEYS, "state")
    _known_keys(state["runtime"], RUNTIME_KEYS, "runtime")
    m = Machine()
    dec = Decoder(m, arrays, version)
    for k in SCALARS:
        if k in SCALAR_DEFAULTS and k not in state["machine"]:
            setattr(m, k, SCALAR_DEFAULTS[k])
            continue
        setattr(m, k, dec(state["machine"][k]))
    if m.thp_mode not in THP_MODES:
        raise SaveError(f"machine.thp_mode {str(m.thp_mode)[:20]!r} is not one of "
                        f"{', '.join(THP_MODES)}")
    _int(m.nr_overcommit_hugepages, "machine.nr_overcommit_hugepages")
    if not 0 <= m.nr_overcommit_hugepages <= MAX_OVERCOMMIT_HUGEPAGES:
        raise SaveError(f"machine.nr_overcommit_hugepages {m.nr_overcommit_hugepages} is "
                        f"out of range")
    m.time.ns = _int(state["clock"], "clock")
    era = make(Era, state["era"], dec)
    m._era = ERAS[era.name] if ERAS.get(era.name) == era else era  # keep the singletons
    m.cost = make(CostModel, state["cost"], dec)
    m.nodes_list = [make(Node, d, dec) for d in state["nodes"]]
    m.zones = [make(Zone, d, dec) for d in state["zones"]]
    _restore_frames(m, _int(state["nr_frames"], "nr_frames"), arrays)
    for k in ARRAYS:
        setattr(m, k, arrays.pop(k))
    m.traffic = arrays.pop("traffic", None)
    _restore_mappings(m, state, arrays, dec)
    m.drivers_map = {}
    for key, fields, bid in state["drivers"]:
        m.drivers_map[key] = make(Driver, fields, dec,
                                   backing=None if bid is None else m.mappings[bid])
    m.il_weights = dec(state["il_weights"])
    m.vmstat_counts = Counter(dec(state["vmstat_counts"]))
    m.vmstat_extra = Counter(dec(state["vmstat_extra"]))
    m.description = state["description"]
    rt = state["runtime"]
    m.finished_jobs = _list(dec(rt["finished_jobs"]), Job, "finished_jobs")
    m.workloads.extend(_list(dec(rt["workloads"]), schema.classes()["workload"],
                             "workloads"))
    m.daemons.extend(_list(dec(rt["daemons"]), schema.classes()["daemon"], "daemons"))
    tl = dec(rt["timeline"])
    if tl is not None:
        m.timeline = tl
    m.bills.last = dec(rt["last_bill"])
    m.index_ranges()
    _verify_structure(m)
    _restore_pins(m)
    Job._ids = max([Job._ids, *dec.job_ids])  # only now: a refused file changes nothing
    return m


def _int(x: Any, what: str) -> int:
    if type(x) is not int:
        raise SaveError(f"{what} is not an integer")
    return x


def _list(x: Any, cls: type, what: str) -> list:
    if type(x) is not list or not all(type(i) is cls for i in x):
        raise SaveError(f"{what} is not a list of {cls.__name__} records")
    return x


def _restore_frames(m: Machine, n: int, arrays: dict[str, np.ndarray]) -> None:
    blobs = {name: arrays.pop(f"frames.{name}", None) for name in Frames.FIELDS}
    try:
        m.f = Frames.from_blobs(n, blobs)
    except ValueError as e:
        raise SaveError(str(e)) from None


class _TableReader:
    """Successive page tables out of the concatenated arrays."""

    def __init__(self, arrays: dict) -> None:
        self.keys = arrays.pop("pt.keys")
        self.pfn = arrays.pop("pt.pfn")
        self.expect = arrays.pop("pt.expect")
        if self.keys.ndim != 1 or self.pfn.shape != (self.keys.size, CHUNK) or \
                self.expect.shape != self.pfn.shape:
            raise SaveError("page table arrays do not match")
        for a, dt in ((self.keys, np.int64), (self.pfn, PTE_DTYPE), (self.expect, np.uint32)):
            if a.dtype != dt:  # never cast: a float table is a broken file
                raise SaveError(f"page table array of {a.dtype}, expected {np.dtype(dt)}")
        self.pos = 0

    def take(self, k: Any) -> PageTable:
        if type(k) is not int or k < 0 or self.pos + k > self.keys.size:
            raise SaveError("page tables are shorter than the objects that use them")
        s = slice(self.pos, self.pos + k)
        self.pos += k
        try:
            return PageTable.from_export(self.keys[s], self.pfn[s], self.expect[s])
        except ValueError as e:
            raise SaveError(str(e)) from None


def _restore_mappings(m: Machine, state: dict, arrays: dict, dec: Decoder) -> None:
    tables = _TableReader(arrays)
    m.mappings = {}
    procs = []
    for pd in state["procs"]:  # the mm tables come first, in process order
        procs.append((pd, tables.take(pd["pt"])))
    for d in state["mappings"]:
        if d["type"] == "anon":
            obj = AnonVMA(id=d["id"], pid=d["pid"], base_vpn=d["base_vpn"],
                          inflight=d["inflight"])
        elif d["type"] == "backing":
            obj = Backing(id=d["id"], name=d["name"], kind=d["kind"],
                          npages=_int(d["npages"], "npages"), pt=tables.take(d["pt"]),
                          shmem=d.get("shmem", _shmem_name(d["name"])) is True,
                          hugetlb=d.get("hugetlb", False) is True,
                          resv=d.get("resv", False) is True,
                          shared_policy=_shared_policy(d.get("spol", []), dec))
        else:
            raise SaveError(f"unknown mapping type {str(d['type'])[:20]!r}")
        m.mappings[d["key"]] = obj
    m.files = {name: m.mappings[bid] for name, bid in state["files"]}
    m.procs = {}
    for pd, pt in procs:
        p = make(Process, pd["fields"], dec, pt=pt)
        for vd in pd["vmas"]:
            p.vmas.append(VMA(
                start=vd["start"], end=vd["end"], flags=vd["flags"],
                policy=dec(vd["policy"]), pgoff=vd["pgoff"],
                # (snapshots before 1 GiB pages: every hugetlb VMA was of PMD order)
                hpage_order=vd.get("hpage_order", (m.page_shift - 3) * bool(
                    vd["flags"] & VM_HUGETLB) if type(vd["flags"]) is int else 0),
                anon=None if vd["anon"] is None else m.mappings[vd["anon"]],
                backing=None if vd["backing"] is None else m.mappings[vd["backing"]], mm=p,
                resv_owner=vd.get("resv_owner", False) is True))
        m.procs[p.pid] = p
    for d in state["mappings"]:
        obj = m.mappings[d["key"]]
        obj.vmas = [m.procs[pid].vmas[i] for pid, i in d["vmas"]]
        if isinstance(obj, AnonVMA):
            for v in obj.vmas:  # the anon_vma_chain: every anon_vma a VMA is linked to
                v.chain.append(obj)


def _shmem_name(name: Any) -> bool:
    """Snapshots before shared policies: shmem objects are known by their names."""
    return type(name) is str and name.startswith(("/dev/zero (deleted)", "/dev/shm/"))


def _shared_policy(x: Any, dec: Decoder) -> list:
    """A shmem object's shared policy: [start, end, policy] ranges, sorted, disjoint."""
    if type(x) is not list:
        raise SaveError("malformed shared policy")
    out, last = [], 0
    for r in x:
        if type(r) is not list or len(r) != 3 or type(r[0]) is not int or \
                type(r[1]) is not int or not last <= r[0] < r[1]:
            raise SaveError("malformed shared policy range")
        pol = dec(r[2])
        if not isinstance(pol, Policy):
            raise SaveError("shared policy range without a policy")
        out.append((r[0], r[1], pol))
        last = r[1]
    return out


def _verify_structure(m: Machine) -> None:
    """Index-range checks that keep a crafted snapshot from crashing the engine later
    (the checksums already rule out accidental corruption)."""
    n = m.f.n
    for z in m.zones:
        if z.start_pfn < 0 or z.start_pfn + z.spanned > n:
            raise SaveError(f"zone {z.label} lies outside the {n} frames")
    nblk = (n + m.block_pages - 1) // max(m.block_pages, 1)
    if m.block_pages < 1 or len(m.blk_state) != nblk or len(m.blk_isolated) != nblk:
        raise SaveError("memory block arrays do not match the frames")
    nr = m.nr_node_ids
    fresh = Machine()
    for k in ARRAYS + ("traffic",):
        a = getattr(m, k)
        want = np.int64 if k == "traffic" else getattr(fresh, k).dtype
        if not (a is None and k == "traffic") and (not isinstance(a, np.ndarray) or
                                                   a.dtype != want):
            raise SaveError(f"{k} is not an array of {np.dtype(want)}")
    if m.distances.shape != (nr, nr) or m.numastat_arr.shape != (6, nr) or \
            (m.traffic is not None and m.traffic.shape != (nr, nr)):
        raise SaveError("distance, numastat or traffic table does not match the nodes")
    ids = m.nodes
    if len(set(ids)) != len(ids) or not all(type(i) is int and 0 <= i < nr for i in ids):
        raise SaveError("node ids are not distinct node numbers")
    slit = slit_problem(m.distances, ids)
    if slit is not None:  # the rule descriptions are held to
        i, j, why = slit
        raise SaveError(f"distance from node {ids[i]} to node {ids[j]} is {why}")
    if n and not -1 <= m.zero_pfn < n:
        raise SaveError(f"zero page {m.zero_pfn} is not a frame")
    for p in m.procs.values():
        if p.page_shift != m.page_shift:
            raise SaveError(f"pid {p.pid}: page size differs from the machine's")
        last = 0
        for v in p.vmas:
            if v.start < last or v.end <= v.start or (v.start | v.end) & (m.page_size - 1):
                raise SaveError(f"pid {p.pid}: VMA {v.start:#x} is misplaced")
            huge = (m.page_shift - 3, 2 * (m.page_shift - 3)) if v.flags & VM_HUGETLB else (0,)
            if type(v.hpage_order) is not int or v.hpage_order not in huge or \
                    (v.start | v.end) & ((m.page_size << v.hpage_order) - 1):
                raise SaveError(f"pid {p.pid}: VMA {v.start:#x} has a bad huge page order")
            last = v.end
        _check_table(p.pt, n, f"pid {p.pid}")
    for obj in m.mappings.values():
        if isinstance(obj, Backing):
            _check_table(obj.pt, n, obj.name)


def _restore_pins(m: Machine) -> None:
    """Memory registrations: (pid, addr, length, pinned PFNs). Snapshots before
    registrations kept their frames hold (pid, addr, length): the frames are those the
    range maps that are pinned (what deregistering it released then)."""
    for d in m.drivers_map.values():
        if type(d.pins) is not list:
            raise SaveError(f"driver {d.name}: pins is not a list")
        regs = []
        for r in d.pins:
            if type(r) is not tuple or len(r) not in (3, 4) or \
                    not all(type(x) is int for x in r[:3]):
                raise SaveError(f"driver {d.name}: malformed pin registration")
            if len(r) == 3:
                r = (*r, _pinned_in(m, *r))
            pf = r[3]
            if not isinstance(pf, np.ndarray) or pf.ndim != 1 or pf.dtype != np.int64 or \
                    (pf.size and (pf.min() < 0 or pf.max() >= m.f.n)):
                raise SaveError(f"driver {d.name}: a registration holds frames that do not "
                                f"exist")
            regs.append(r)
        d.pins = regs


def _pinned_in(m: Machine, pid: int, addr: int, length: int) -> np.ndarray:
    p = m.procs.get(pid)
    if p is None:
        return np.zeros(0, np.int64)
    parts = [np.zeros(0, np.int64)]
    for v in p.vmas:
        if v.end <= addr or v.start >= addr + length:
            continue
        o0 = (max(v.start, addr) - v.start) >> m.page_shift
        o1 = (min(v.end, addr + length) - v.start) >> m.page_shift
        _o, pf = v.present(o0, o1)
        parts.append(pf[(pf >= 0) & (pf < m.f.n)])
    pf = np.unique(np.concatenate(parts)).astype(np.int64)
    return pf[(m.f.flags[pf] & PG_pinned) != 0]


def _check_table(pt: PageTable, n: int, what: str) -> None:
    if pt.pfn.size and (pt.pfn.min() < -1 or pt.pfn.max() >= n):
        raise SaveError(f"{what} maps a frame that does not exist")
