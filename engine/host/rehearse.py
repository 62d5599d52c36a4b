"""Rehearse, then act: the host captured into the simulator, the same migration run
there with its bill (engine/runtime/bill.py), then the real call on the host, and
the two side by side: pages moved, pages already in place, failures by reason, the
return value or errno, time, and status entries that differ. Where the model and
Linux disagree, the text says so: this is the simulator's test of itself.

The rehearsal machine is `capture()` of the host (engine/machines/capture.py; at full
size when the host has at most REHEARSE_FULL_BYTES of memory, else scaled, which the
text says), with the target process replaced by an exact replay of it: every VMA of
/proc/PID/maps mapped in the simulator, and every page /proc/PID/pagemap shows present
faulted in on its node (from its PFN when we may see PFNs, else in numa_maps order),
the zero page as the zero page, copy-on-write pages of file mappings as anonymous
pages. The action's addresses are translated VMA by VMA (host address -> the same
offset in the replayed VMA), so the simulator is asked exactly what the host is."""

from __future__ import annotations

import errno as _errno
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..constants import (
    MAP_ANONYMOUS,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_SHARED,
    MPOL_MF_MOVE,
    MPOL_MF_MOVE_ALL,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
)
from ..machine import Machine
from ..machines.capture import capture
from ..mm.move_pages import UNWRITTEN
from ..nodemask import nodes_str, parse_policy_string
from ..runtime.bill import Bill, count_reasons
from ..units import fmt_ns
from ..vec import pair_counts
from ..views import status_counts
from .host import Host
from .kpage import PM_FILE, pagemap_pfns, present, read_pagemap
from .readers import HostVma
from .syscalls import CallResult

REHEARSE_FULL_BYTES = 64 << 30  # hosts up to this size are rehearsed at full size
PAGEMAP_ALWAYS = 1 << 18  # VMAs this small are read even when numa_maps counts nothing
UNMAPPED = 0  # the simulator's address for host pages outside every replayed VMA
KINDS = ("move_pages", "migrate_pages")


class RehearsalError(Exception):
    """The rehearsal could not be built (the message says why)."""


# ------------------------------------------------------------------ the replay

@dataclass
class Replay:
    """The target process as replayed in the simulator."""

    host_start: np.ndarray  # replayed VMAs, sorted by host start
    host_end: np.ndarray
    sim_start: np.ndarray
    vmas: int = 0
    pages: int = 0  # present pages faulted in
    zero: int = 0  # of which zero-page mappings
    left_out: list[str] = field(default_factory=list)  # special VMAs not replayed
    nodes_from: str = "pagemap PFNs"
    notes: list[str] = field(default_factory=list)

    def translate(self, addrs: np.ndarray) -> np.ndarray:
        """Host addresses -> simulator addresses (UNMAPPED outside every VMA)."""
        a = np.asarray(addrs, np.int64)
        if not self.host_start.size:
            return np.full(a.shape, UNMAPPED, np.int64)
        i = np.searchsorted(self.host_start, a, side="right") - 1
        j = np.maximum(i, 0)
        inside = (i >= 0) & (a < self.host_end[j])
        return np.where(inside, self.sim_start[j] + (a - self.host_start[j]), UNMAPPED)


def _prot(v: HostVma) -> int:
    # the replay writes pages in, so every VMA is writable in the simulator (protection
    # does not enter migration's decisions)
    return PROT_READ | PROT_WRITE | (PROT_EXEC if "x" in v.perms else 0)


def _page_nodes(h: Host, v: HostVma, e: np.ndarray, pres: np.ndarray,
                zero: np.ndarray) -> np.ndarray:
    """The node of each present page: from its PFN, else numa_maps' counts in order."""
    if h.pfns_visible:
        return h.node_of(pagemap_pfns(e))
    node = np.full(e.size, -1, np.int64)
    idx = np.flatnonzero(pres & ~zero)
    counts = [(n, int(c)) for n, c in zip(h.nodes, v.per_node) if c]
    reps = np.repeat([n for n, _ in counts], [c for _, c in counts]) if counts else \
        np.zeros(0, np.int64)
    k = min(idx.size, reps.size)
    node[idx[:k]] = reps[:k]
    node[idx[k:]] = h.nodes_list[0].id if h.nodes_list else 0
    return node


def _zero_pages(h: Host, v: HostVma, e: np.ndarray, pres: np.ndarray) -> np.ndarray:
    """Present pages mapping the zero page (anonymous VMAs only): by PFN when we may
    see PFNs; else the present pages numa_maps does not count (it never counts the
    zero page), taken from the end."""
    zero = np.zeros(e.size, bool)
    if v.kind != "anon" or v.shared:
        return zero
    if h.pfns_visible:
        return (pagemap_pfns(e) == h.zero_pfn) if h.zero_pfn >= 0 else zero
    extra = int(pres.sum()) - int(v.per_node.sum())
    if extra > 0:
        zero[np.flatnonzero(pres)[-extra:]] = True
    return zero


def replay_process(h: Host, m: Machine, pid: int, task_policy: str | None) -> Replay:
    """Spawn `pid` in m as the host has it (see the module docstring)."""
    hp = h.read_vmas(pid)
    if hp.vmas_error:
        raise RehearsalError(f"cannot read /proc/{pid}/maps and numa_maps: {hp.vmas_error} "
                             f"(reading another user's process needs ptrace access)")
    node = hp.node if hp.node in m.nodes and m.node(hp.node).cpus else \
        next(n.id for n in m.nodes_list if n.cpus)
    mems = [n for n in hp.mems if n in m.nodes] or None
    m.spawn(hp.name, uid=hp.uid, node=node, mems_allowed=mems, pid=pid, kthread=hp.kthread)
    rep = Replay(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    if hp.kthread:
        rep.notes.append("a kernel thread: no address space")
        return rep
    if task_policy and task_policy != "default":
        try:
            m.set_mempolicy(pid, *parse_policy_string(task_policy))
        except (OSError, ValueError) as e:
            rep.notes.append(f"task policy {task_policy} not replayed: {e}")
    if not h.pfns_visible:
        rep.nodes_from = "numa_maps counts in address order (pagemap hides PFNs)"
    hs, he, ss = [], [], []
    ps = h.page_size
    for v in hp.vmas:
        if v.special:
            rep.left_out.append(v.path)
            continue
        flags = (MAP_SHARED if v.shared else MAP_PRIVATE) | MAP_NORESERVE
        file = v.path if v.kind == "file" else None
        if file is None:
            flags |= MAP_ANONYMOUS
        try:
            sa = m.mmap(pid, v.length, _prot(v), flags, file=file)
        except OSError as e:
            raise RehearsalError(f"cannot replay VMA {v.start:#x}-{v.end:#x} {v.path}: "
                                 f"{e.strerror}") from None
        hs.append(v.start)
        he.append(v.end)
        ss.append(sa)
        rep.vmas += 1
        if v.policy not in ("default", task_policy):
            try:
                m.mbind(pid, sa, v.length, *parse_policy_string(v.policy))
            except (OSError, ValueError) as e:
                rep.notes.append(f"policy {v.policy} of {v.start:#x} not replayed: {e}")
        n = v.length // ps
        if not (v.counted and (v.per_node.sum() or v.anon)) and n > PAGEMAP_ALWAYS:
            continue
        try:
            e = read_pagemap(h.root, pid, v.start, n, ps)
        except OSError as err:
            raise RehearsalError(f"cannot read /proc/{pid}/pagemap: {err.strerror}") from None
        _fault_in(h, m, pid, v, sa, e, rep)
        if v.locked:
            m.mlock(pid, sa, v.length)
    order = np.argsort(np.asarray(hs, np.int64))
    rep.host_start = np.asarray(hs, np.int64)[order]
    rep.host_end = np.asarray(he, np.int64)[order]
    rep.sim_start = np.asarray(ss, np.int64)[order]
    return rep


def _fault_in(h: Host, m: Machine, pid: int, v: HostVma, sa: int, e: np.ndarray,
              rep: Replay) -> None:
    """Fault in the present pages of one VMA, a run of like pages per touch."""
    pres = present(e)
    if not pres.any():
        return
    zero = _zero_pages(h, v, e, pres)
    node = _page_nodes(h, v, e, pres, zero)
    cow = (e & PM_FILE) == 0  # a private file mapping's own (anonymous) copy
    if v.kind == "file":
        write = cow & ~np.bool_(v.shared)
    else:
        write = ~zero
    idx = np.flatnonzero(pres)
    key = np.stack([node[idx], write[idx].astype(np.int64)], 1)
    brk = np.flatnonzero((np.diff(idx) != 1) | (np.diff(key, axis=0) != 0).any(1)) + 1
    starts = np.concatenate([[0], brk])
    ends = np.concatenate([brk, [idx.size]])
    ps = h.page_size
    for s, t in zip(starts.tolist(), ends.tolist()):
        nd = int(key[s, 0])
        try:
            m.touch(pid, sa + int(idx[s]) * ps, (t - s) * ps, write=bool(key[s, 1]),
                    node=nd if nd in m.nodes and m.node(nd).cpus else None)
        except OSError as err:
            raise RehearsalError(
                f"cannot replay {t - s} page(s) at {v.start + int(idx[s]) * ps:#x}: "
                f"{err.strerror} (the rehearsal machine is the host scaled; try scale=1)"
            ) from None
    rep.pages += int(idx.size)
    rep.zero += int((zero & pres).sum())


# ------------------------------------------------------------------ rehearsal

@dataclass
class Actual:
    """What the host did."""

    call: CallResult
    moved: int = 0
    pairs: Counter = field(default_factory=Counter)
    already: int = 0
    failures: Counter = field(default_factory=Counter)
    unwritten: int = 0
    status_mismatch: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Rehearsal:
    kind: str
    pid: int
    name: str
    host_args: tuple  # the host call's arguments (pages, nodes, flags) | (old, new)
    machine: Machine
    bill: Bill
    replay: Replay
    scale: float
    nprocs: int
    predicted_status: np.ndarray | None = None  # move_pages: per entry, as Linux writes it
    replayed_status: np.ndarray | None = None  # move_pages: a query of the replay
    actual: Actual | None = None
    refused: str | None = None

    @property
    def text(self) -> str:
        return render(self)


def choose_scale(h: Host, scale: float | None) -> float | None:
    if scale is not None:
        return scale
    total = sum(z.present for z in h.zones) * h.page_size
    return 1.0 if total <= REHEARSE_FULL_BYTES else None


def _pages_arg(pages) -> np.ndarray:
    return np.asarray(pages, np.int64).ravel()


def rehearse(h: Host, kind: str, pid: int, *args, scale: float | None = None) -> Rehearsal:
    """The simulator's prediction of `kind` (move_pages: pages, nodes or None, flags;
    migrate_pages: old nodes, new nodes) on the host's process `pid`. Changes nothing
    on the host."""
    if kind not in KINDS:
        raise RehearsalError(f"rehearse: {kind!r}: one of {', '.join(KINDS)}")
    h.process(pid)  # ESRCH now, before the capture
    try:
        d = capture(choose_scale(h, scale), h.root)
    except ValueError as e:
        raise RehearsalError(str(e)) from None
    target = next((p for p in d["processes"] if p.get("pid") == pid), {})
    d["processes"] = [p for p in d["processes"] if p.get("pid") != pid]
    m = Machine.from_description(d, source="<capture>")
    rep = replay_process(h, m, pid, target.get("policy"))
    # the simulator checks permissions as Linux would: as root, or as our own process
    caller = None if os.geteuid() == 0 or os.getpid() not in m.procs else os.getpid()
    if kind == "move_pages":
        pages, nodes, flags = args
        pages = _pages_arg(pages)
        sim_pages = rep.translate(pages)
        bill = m.migration_bill("move_pages", pid, sim_pages, nodes, flags, caller=caller)
        status = bill.status
        try:  # where the replay has each page (a query changes nothing)
            replayed = m.move_pages(pid, sim_pages, None, 0, caller=caller).array
        except OSError as e:
            replayed = None
            if nodes is None and bill.error is None:
                bill.error, bill.ret = (e.errno, e.strerror), None
        if nodes is None:  # a query: the bill has nothing to move
            status = replayed
        host_args = (pages, None if nodes is None else np.asarray(nodes, np.int64), flags)
    else:
        old, new = args
        bill = m.migration_bill("migrate_pages", pid, tuple(old), tuple(new), caller=caller)
        host_args = (tuple(old), tuple(new))
        status = replayed = None
    name = h.procs[pid].name if pid in h.procs else str(pid)
    return Rehearsal(kind, pid, name, host_args, m, bill, rep, d["host"]["scale"],
                     len(d["processes"]) + 1, predicted_status=status,
                     replayed_status=replayed)


def act(h: Host, r: Rehearsal) -> Actual:
    """Make the rehearsed call on the host (ActionRefused when read-only, except a
    move_pages query) and record what Linux did beside the prediction."""
    if r.kind == "move_pages":
        pages, nodes, flags = r.host_args
        if nodes is not None:
            h.actions.refuse("move_pages")
        before = h.actions.query(r.pid, pages)
        call = h.actions.move_pages(r.pid, pages, nodes, flags)
        a = Actual(call)
        if call.ok:
            st = call.status
            b = before.status if before.ok else np.full(st.size, -1, np.int64)
            moved = (b >= 0) & (st >= 0) & (st != b)
            a.moved = int(moved.sum())
            for (s, d_), c in pair_counts(b[moved], st[moved]).items():
                a.pairs[(int(s), int(d_))] += int(c)
            if nodes is not None:
                a.already = int(((st >= 0) & ~moved).sum())
                a.failures = count_reasons(st)
            a.unwritten = int((st == UNWRITTEN).sum())
            ps_ = r.predicted_status
            if ps_ is not None and ps_.size == st.size:
                a.status_mismatch = int((ps_ != st).sum())
            rs = r.replayed_status
            if before.ok and rs is not None and rs.size == b.size:
                drift = int(((rs >= 0) != (b >= 0)).sum())
                if drift:
                    a.notes.append(
                        f"{drift} page(s) changed on the host between the capture and the "
                        f"call (faulted in or freed while the process ran): differences "
                        f"there are the host's, not the model's")
            if not before.ok:
                a.notes.append(f"the query before the call failed "
                               f"({_errno.errorcode.get(before.errno, before.errno)}): "
                               f"pages moved are not known")
    else:
        old, new = r.host_args
        h.actions.refuse("migrate_pages")
        h.read_vmas(r.pid)
        per0 = h.per_node(r.pid)
        vm0 = h.vmstat()
        call = h.actions.migrate_pages(r.pid, old, new)
        vm1 = h.vmstat()
        h.read_vmas(r.pid)
        per1 = h.per_node(r.pid)
        a = Actual(call)
        a.moved = vm1.get("pgmigrate_success", 0) - vm0.get("pgmigrate_success", 0)
        fail = vm1.get("pgmigrate_fail", 0) - vm0.get("pgmigrate_fail", 0)
        if fail:
            a.failures["pgmigrate_fail (vmstat)"] = fail
        a.notes.append("pages moved: /proc/vmstat pgmigrate_success over the call (the "
                       "whole host's: other migrations at the same time count too)")
        if per0.sum() or per1.sum():
            a.notes.append("numa_maps pages per node before -> after: " + ", ".join(
                f"N{n}={int(x)}->{int(y)}" for n, x, y in zip(h.nodes, per0, per1)))
    r.actual = a
    return a


# ------------------------------------------------------------------ the text

def _flags(flags: int) -> str:
    names = [n for b, n in ((MPOL_MF_MOVE, "MPOL_MF_MOVE"), (MPOL_MF_MOVE_ALL,
                                                          "MPOL_MF_MOVE_ALL")) if flags & b]
    return "|".join(names) or str(flags)


def headline(r: Rehearsal) -> str:
    """The call, its target and its arguments in one line."""
    if r.kind == "move_pages":
        pages, nodes, flags = r.host_args
        if nodes is None:
            what = f"{pages.size} pages, query (no nodes)"
        else:
            what = f"{pages.size} pages -> node(s) {nodes_str(sorted(set(nodes.tolist())))}, " \
                   f"{_flags(flags)}"
    else:
        old, new = r.host_args
        what = f"nodes {nodes_str(old)} -> {nodes_str(new)}"
    return f"{r.kind} on pid {r.pid} ({r.name}): {what}"


def _errname(e: int | None) -> str:
    return "none" if not e else _errno.errorcode.get(e, str(e))


def render(r: Rehearsal) -> str:
    b, rep, a = r.bill, r.replay, r.actual
    scale = "full size" if r.scale >= 1 else f"scaled x{r.scale:.4g} (the target at full size)"
    lines = [f"rehearse {headline(r)}",
             f"simulator: this host captured at {scale}, {r.nprocs} processes; the target "
             f"replayed: {rep.vmas} VMAs, {rep.pages} present pages ({rep.zero} zero-page), "
             f"nodes from {rep.nodes_from}"]
    if rep.left_out:
        lines.append(f"  left out (no simulator equivalent): {', '.join(rep.left_out)}")
    lines += [f"  note: {n}" for n in rep.notes + b.notes]
    rows: list[tuple[str, str, str]] = []
    act_col = (lambda x: str(x)) if a is not None else (lambda x: "-")
    if r.kind == "move_pages" and r.host_args[1] is None:
        rows += _query_rows(r)
    else:
        rows += _move_rows(r, act_col)
    if b.error is not None or (a is not None and not a.call.ok):
        rows.append(("errno", _errname(b.error[0] if b.error else None),
                     act_col(_errname(a.call.errno) if a else None)))
    else:
        rows.append(("return value", str(b.ret), act_col(a.call.ret if a else 0)))
    rows.append(("time", fmt_ns(b.predicted_ns), act_col(fmt_ns(a.call.ns) if a else 0)))
    w = max(len(x[0]) for x in rows) + 2
    lines.append(f"{'':<{w}}{'predicted':>14}{'actual':>14}")
    lines += [f"{k:<{w}}{p:>14}{q:>14}" for k, p, q in rows]
    if a is None:
        lines.append(f"actual: not run ({r.refused or 'rehearsal only'})")
        return "\n".join(lines)
    if a.status_mismatch is not None:
        lines.append(f"status entries that differ from the prediction: {a.status_mismatch} "
                     f"of {r.host_args[0].size}")
    lines += [f"  note: {n}" for n in a.notes]
    lines += differences(r)
    return "\n".join(lines)


def _query_rows(r: Rehearsal) -> list[tuple[str, str, str]]:
    """A query's statuses by value (N<node>, -E<errno>, unwritten)."""
    pred = status_counts(r.predicted_status) if r.predicted_status is not None else {}
    act = status_counts(r.actual.call.status) if r.actual is not None and \
        r.actual.call.status is not None else {}
    keys = sorted(set(pred) | set(act))
    return [(f"status {k}", str(pred.get(k, 0)), str(act.get(k, 0)) if r.actual else "-")
            for k in keys]


def _move_rows(r: Rehearsal, act_col) -> list[tuple[str, str, str]]:
    b, a = r.bill, r.actual
    rows = [("pages moved", str(b.pages), act_col(a.moved if a else 0))]
    pairs = sorted(set(b.pairs) | (set(a.pairs) if a else set()))
    for s, d in pairs:
        rows.append((f"  node {s} -> node {d}", str(b.pairs.get((s, d), 0)),
                     act_col(a.pairs.get((s, d), 0) if a else 0)))
    if r.kind == "move_pages":
        rows.append(("already in place", str(b.already), act_col(a.already if a else 0)))
    for k in sorted(set(b.failures) | (set(a.failures) if a else set())):
        rows.append((k, str(b.failures.get(k, 0)), act_col(a.failures.get(k, 0) if a else 0)))
    if r.kind == "move_pages":
        rows.append(("unwritten (not attempted)", str(b.unattempted),
                     act_col(a.unwritten if a else 0)))
    return rows


def differences(r: Rehearsal) -> list[str]:
    """Where the prediction and Linux disagree, one line each ('matched' when they do
    not, time aside)."""
    b, a = r.bill, r.actual
    if a is None:
        return []
    out = []
    if b.error is not None or not a.call.ok:
        pe, ae = (b.error[0] if b.error else None), (a.call.errno or None)
        if pe != ae:
            out.append(f"differs: the call's error: predicted {_errname(pe)}, Linux "
                       f"answered {_errname(ae)}")
    elif r.kind == "move_pages" and r.host_args[1] is None:
        pred = status_counts(r.predicted_status) if r.predicted_status is not None else {}
        got = status_counts(a.call.status)
        for k in sorted(set(pred) | set(got)):
            if pred.get(k, 0) != got.get(k, 0):
                out.append(f"differs: status {k}: predicted {pred.get(k, 0)}, Linux "
                           f"{got.get(k, 0)}")
        if a.status_mismatch:
            out.append(f"differs: {a.status_mismatch} status entries")
    else:
        if r.kind == "move_pages" and b.ret != a.call.ret:
            out.append(f"differs: return value: predicted {b.ret}, Linux returned "
                       f"{a.call.ret}")
        if b.pages != a.moved:
            out.append(f"differs: pages moved: predicted {b.pages}, moved {a.moved}")
        for k in sorted(set(b.failures) | set(a.failures)):
            if b.failures.get(k, 0) != a.failures.get(k, 0):
                out.append(f"differs: {k}: predicted {b.failures.get(k, 0)}, Linux "
                           f"{a.failures.get(k, 0)}")
        if a.status_mismatch:
            out.append(f"differs: {a.status_mismatch} status entries")
    ratio = a.call.ns / b.predicted_ns if b.predicted_ns else None
    t = f"time: the call took {fmt_ns(a.call.ns)}, predicted {fmt_ns(b.predicted_ns)}" + \
        (f" (x{ratio:.3g})" if ratio else "")
    if not out:
        out.append("matched: Linux did what the simulator predicted")
    return out + [t]
