"""Snapshots of version 1 (numacon 0.1), upgraded to the current state on load."""

from __future__ import annotations

import numpy as np

from ..mm.pagetable import PageTable
from .container import (
    SaveError,
)
from .snapshot_codec import Tables

__all__ = ["upgrade_v1"]


V1_SCALARS = {"clock_ns": "clock", "_next_id": "next_id", "_write_seq": "write_seq",
              "_next_pid": "next_pid"}


def upgrade_v1(state: dict, arrays: dict) -> dict:
    """Version 1 (numacon 0.1) kept a dense page table per VMA and per page-cache
    object, and runtime objects as machine attributes. Rebuild its tables as sparse
    ones and move the attributes to the subsystems that hold them now."""
    state = dict(state)
    mach = dict(state["machine"])
    for old, new in V1_SCALARS.items():
        if old in mach:
            mach[new] = mach.pop(old)
    state["clock"] = mach.pop("clock")
    state["machine"] = mach
    shift = mach["page_shift"]
    arrays["numastat_arr"] = arrays.pop("numastat")
    pte, exp = arrays.pop("vma.pte"), arrays.pop("vma.expect")
    bpages, bexp = arrays.pop("backing.pages"), arrays.pop("backing.expect")
    tables = Tables()
    procs = []
    pos = epos = 0
    for pd in state["procs"]:
        pt = PageTable()
        vmas = []
        for vd in pd["vmas"]:
            k = vd["npages"]
            if not (type(k) is int and 0 <= k and pos + k <= pte.size):
                raise SaveError("vma.pte is shorter than the VMAs that use it")
            keys = (vd["start"] >> shift) + np.arange(k, dtype=np.int64)
            ent = pte[pos:pos + k].astype(np.int64)
            have = ent >= 0
            pt.set(keys[have], ent[have])
            pos += k
            if vd["expect"]:
                if epos + k > exp.size:
                    raise SaveError("vma.expect is shorter than the VMAs that use it")
                e = exp[epos:epos + k]
                pt.set(keys[e != 0], e[e != 0], "expect")
                epos += k
            vmas.append({x: vd[x] for x in ("start", "end", "flags", "policy", "pgoff",
                                            "anon", "backing")})
        fields = dict(pd["fields"])
        fields.pop("vmas", None)
        fields["page_shift"] = shift
        procs.append({"fields": fields, "pt": tables.add(pt), "vmas": vmas})
    maps = []
    bpos = 0
    for d in state["mappings"]:
        d = dict(d)
        if d["type"] == "backing":
            k = d["npages"]
            if not (type(k) is int and 0 <= k and bpos + k <= bpages.size):
                raise SaveError("backing.pages is shorter than the objects that use it")
            pt = PageTable()
            idx = np.arange(k, dtype=np.int64)
            ent = bpages[bpos:bpos + k].astype(np.int64)
            e = bexp[bpos:bpos + k]
            pt.set(idx[ent >= 0], ent[ent >= 0])
            pt.set(idx[e != 0], e[e != 0], "expect")
            bpos += k
            d["pt"] = tables.add(pt)
        maps.append(d)
    # v1 processes were saved before their tables: mm tables first, then backings
    arrays.update(tables.arrays())
    state["procs"] = procs
    state["mappings"] = maps
    state["zones"] = [{k: v for k, v in z.items() if k != "stats"} for z in state["zones"]]
    attrs = dict(state.pop("attrs", {}))
    timeline = attrs.pop("_timeline", None)
    if state.pop("hooks", None):
        raise SaveError("version-1 snapshot holds module state this numacon cannot restore")
    state["runtime"] = {
        "finished_jobs": state.pop("finished_jobs", []),
        "workloads": attrs.pop("_workloads", []),
        "daemons": attrs.pop("_daemons", []),
        "timeline": timeline,
        "last_bill": attrs.pop("_last_bill", None),
    }
    if attrs:
        raise SaveError(f"version-1 snapshot holds state this numacon cannot restore "
                        f"({', '.join(sorted(map(str, attrs)))[:60]})")
    return state
