"""The migration bill: the dry run of move_pages, migrate_pages, mbind(+MOVE) or a zone
offline. It is the call's own plan, rehearsed on a copy of the allocator's books
(engine/mm/migrate.py `Rehearse`), plus the cost model: pages and bytes per
source -> target pair, pages expected to fail and why, the return value or error,
and the time. Nothing changes. There are no rules here: every decision comes from
the functions the call itself runs, so a bill predicts what the call then does.

`Bill.run_gen()` (or the job "bill") makes the billed call and records the actual
outcome beside the prediction."""

from __future__ import annotations

import errno as _errno
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..constants import (
    EBUSY,
    EINTR,
    EINVAL,
    EIO,
    oserror,
)
from ..mm.memory_hotplug import plan_blocks, zone_offline_blocks
from ..mm.mempolicy import (
    plan_mbind,
    plan_migrate_pages,
    queue_node_pages,
    rehearse_mbind,
    rehearse_migrate_pages,
    walk_pages,
)
from ..mm.migrate import UNTRIED, PairRun, Rehearse, run_pairs
from ..mm.move_pages import UNWRITTEN, finish, plan_move_pages
from ..mm.state import Kernel, drive
from ..units import fmt_ns, fmt_size
from .moves import MoveRecord, plan_undo, reason_text, undo_control

KINDS = ("move_pages", "migrate_pages", "mbind", "offline", "undo")
def reason(code: int) -> str:
    """The bill's name of a failure code (engine/runtime/moves.py holds the table)."""
    return reason_text(code, long=True)


def count_reasons(codes: np.ndarray) -> Counter:
    """Failure codes (negative; UNWRITTEN and UNTRIED ignored) -> pages per reason."""
    codes = np.asarray(codes, np.int64)
    codes = codes[(codes < 0) & (codes != UNWRITTEN) & (codes != UNTRIED)]
    vals, counts = np.unique(codes, return_counts=True)
    return Counter({reason(v): int(c) for v, c in zip(vals.tolist(), counts.tolist())})


@dataclass(eq=False)
class Bill:
    kind: str
    args: tuple
    kwargs: dict
    era: str
    page_size: int
    chunk: int | None = None  # pages per job step the call is billed (and run) with
    pairs: Counter = field(default_factory=Counter)  # (src, dst) -> pages predicted to move
    failures: Counter = field(default_factory=Counter)  # reason -> pages
    already: int = 0  # pages already where the call wants them
    unattempted: int = 0  # move_pages: entries after the failing batch
    predicted_ns: int = 0
    ret: int | None = None  # predicted return value (move_pages ret, migrate_pages left)
    error: tuple | None = None  # predicted whole-call error: (errno, message)
    endless: bool = False  # a job that would retry until cancelled (offline, modern)
    status: np.ndarray | None = None  # move_pages: predicted status per entry
    notes: list = field(default_factory=list)
    actual: dict | None = None

    # -------------------------------------------------------------- summary
    @property
    def pages(self) -> int:
        return int(sum(self.pairs.values()))

    @property
    def bytes(self) -> int:
        return self.pages * self.page_size

    @property
    def failing(self) -> int:
        return int(sum(v for k, v in self.failures.items() if not k.startswith("skipped")))

    @property
    def text(self) -> str:
        lines = [f"{self.kind} --dry-run (era {self.era}): would move {self.pages} pages "
                 f"({fmt_size(self.bytes)}), predicted {fmt_ns(self.predicted_ns)}"]
        for (s, d), c in sorted(self.pairs.items()):
            lines.append(f"  node {s} -> node {d}: {c} pages ({fmt_size(c * self.page_size)})")
        if self.already:
            lines.append(f"  already in place: {self.already}")
        for r, c in sorted(self.failures.items()):
            lines.append(f"  expected to fail: {c} x {r}")
        if self.unattempted:
            lines.append(f"  not attempted: {self.unattempted} entries after the first "
                         f"failing batch (their status stays unwritten)")
        if self.error is not None:
            lines.append(f"  the call fails: {_errno.errorcode.get(self.error[0], '?')}: "
                         f"{self.error[1]}")
        elif self.ret is not None:
            lines.append(f"  predicted return value: {self.ret}")
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.actual is not None:
            lines.append(self.compare_text())
        return "\n".join(lines)

    def compare_text(self) -> str:
        a = self.actual
        err = a.get("error")
        out = [f"actual: moved {a['pages']} pages (predicted {self.pages}), "
               f"{fmt_ns(a['ns'])} (predicted {fmt_ns(self.predicted_ns)})"]
        if err is not None:
            out.append(f"  call failed: {_errno.errorcode.get(err, err)} (predicted "
                       f"{'none' if self.error is None else _errno.errorcode.get(self.error[0])})")
        elif a.get("ret") is not None:
            out.append(f"  return value {a['ret']} (predicted {self.ret})")
        if a.get("status_mismatch") is not None:
            out.append(f"  status entries that differ from the prediction: "
                       f"{a['status_mismatch']}")
        return "\n".join(out)

    def __repr__(self) -> str:
        return (f"<Bill {self.kind} {self.pages} pages, {self.failing} failing, "
                f"{self.predicted_ns} ns>")

    # -------------------------------------------------------------- the real run
    def run_gen(self, k: Kernel, call, job=None):
        """Make the billed call (`call`: the call's batch generator factory) with the
        chunking it was billed with (chunks change what the allocator sees between
        steps) and record the outcome beside the prediction."""
        t0, tr0 = k.clock, _traffic(k)
        err = None
        result = None
        try:
            result = yield from call(*self.args, chunk=self.chunk, job=job, **self.kwargs)
        except OSError as e:
            err = e
        except GeneratorExit:
            # cancelled at a batch boundary: what moved until then is the outcome
            self._record(k, None, oserror(EINTR, "cancelled"), t0, tr0)
            raise
        self._record(k, result, err, t0, tr0)
        if err is not None:
            raise err
        return result

    def _record(self, k: Kernel, result, err, t0: int, tr0: np.ndarray) -> None:
        moved = _traffic(k) - tr0
        pairs = {(int(s), int(d)): int(moved[s, d]) for s, d in zip(*np.nonzero(moved))}
        a = {"ns": k.clock - t0, "pairs": pairs, "pages": int(moved.sum()),
             "error": None if err is None else err.errno, "ret": None,
             "status_mismatch": None}
        if self.kind == "move_pages" and result is not None:
            a["ret"] = result.ret
            if self.status is not None and len(result) == self.status.size:
                a["status_mismatch"] = int((result.array != self.status).sum())
                a["status"] = result.array
        elif self.kind == "migrate_pages" and err is None:
            a["ret"] = result
        self.actual = a


def _traffic(k: Kernel) -> np.ndarray:
    nn = k.nr_node_ids
    if k.traffic is None or k.traffic.shape[0] != nn:
        return np.zeros((nn, nn), np.int64)
    return k.traffic.copy()


def _call_kw(caller, maxnode) -> dict:
    """The keyword arguments the billed call is made with (maxnode only when given)."""
    return {"caller": caller} if maxnode is None else {"caller": caller, "maxnode": maxnode}


def _new_bill(k: Kernel, kind: str, args, kwargs, chunk: int | None) -> Bill:
    return Bill(kind=kind, args=tuple(args), kwargs=dict(kwargs), era=k.era.name,
                page_size=k.page_size, chunk=chunk)


def _error(b: Bill, e: OSError) -> Bill:
    b.error = (e.errno, e.strerror)
    return b


# ------------------------------------------------------------------ the calls

def bill_move_pages(k: Kernel, pid, pages, nodes=None, flags: int = 0, *, caller=None,
                    chunk: int | None = None) -> Bill:
    b = _new_bill(k, "move_pages", (pid, pages, nodes, flags), {"caller": caller}, chunk)
    if nodes is None:
        b.notes.append("no nodes: a query, nothing moves")
        b.ret = 0
        return b
    try:
        plan = plan_move_pages(k, pid, pages, nodes, flags, caller=caller)
    except OSError as e:
        return _error(b, e)
    qi = plan.qi
    out = drive(run_pairs(k, Rehearse(k), plan.pfn[qi], plan.targets[qi], plan.control(k),
                          plan.pair_run(chunk)))
    r = finish(plan, out.result)
    b.pairs.update(out.moved_pairs(plan.node_now[qi]))
    b.predicted_ns = out.time_ns
    b.already = int(((plan.status >= 0) & ~plan.queue & (r.status >= 0)).sum())
    b.failures = count_reasons(r.status)
    # the failing batch's own failures (their statuses stay unwritten)
    hidden = (r.status[qi] == UNWRITTEN) & (out.result < 0)
    b.failures.update(count_reasons(out.result[hidden]))
    if plan.stop_error is not None and r.error is plan.stop_error:
        b.failures[reason(-plan.stop_error.errno)] += 1
    b.unattempted = r.unattempted
    b.status = r.status
    if r.error is not None:
        return _error(b, r.error)
    b.ret = r.ret
    return b


def bill_migrate_pages(k: Kernel, pid, old_nodes, new_nodes, *, caller=None,
                       maxnode=None, chunk: int | None = None) -> Bill:
    b = _new_bill(k, "migrate_pages", (pid, old_nodes, new_nodes),
                  _call_kw(caller, maxnode), chunk)
    try:
        plan = plan_migrate_pages(k, pid, old_nodes, new_nodes, caller=caller,
                                  maxnode=maxnode)
    except OSError as e:
        return _error(b, e)
    if not plan.move_all:
        shared = queue_node_pages(k, plan.p, plan.old, True).size - \
            queue_node_pages(k, plan.p, plan.old, False).size
        if shared:
            b.notes.append(f"{shared} shared page(s) skipped silently (MPOL_MF_MOVE: the "
                           f"caller has no CAP_SYS_NICE)")
    skipped = sum(int(pfn.size) for v, migratable, _o, pfn in
                  walk_pages(k, plan.p, 0, 1 << 62, "migrate_pages")
                  if not migratable and not v.pfnmap)
    if skipped:
        b.failures["skipped: mlocked VMA (2.6.18-20 mempolicy paths)"] += skipped
    left, outs, err, hook_ns = rehearse_migrate_pages(k, plan, chunk)
    if hook_ns:
        b.notes.append("2.6.18: vm_ops->migrate relocates hooked driver regions first "
                       f"({fmt_ns(hook_ns)}; driver frames are not migrated pages)")
        b.predicted_ns += hook_ns
    if err is not None:
        _error(b, err)  # the pairs before the failing one still move
    for s, _d, out in outs:
        b.pairs.update(out.moved_pairs(np.full(out.result.size, s)))
        b.failures.update(count_reasons(out.result))
        b.predicted_ns += out.time_ns
    b.ret = left
    return b


def bill_mbind(k: Kernel, pid, addr, length, mode, nodemask=(), flags: int = 0, *,
               caller=None, maxnode=None, chunk: int | None = None) -> Bill:
    b = _new_bill(k, "mbind", (pid, addr, length, mode, nodemask, flags),
                  _call_kw(caller, maxnode), chunk)
    try:
        plan = plan_mbind(k, pid, addr, length, mode, nodemask, flags, caller=caller,
                          maxnode=maxnode)
    except OSError as e:
        if e.errno == EIO:
            e = oserror(EIO, f"{e.strerror}; the policy is not applied")
        return _error(b, e)
    if plan.noop:
        b.ret = 0
        return b
    b.already = plan.already
    if plan.unmovable:
        b.failures["not movable here (VMA not migratable, or no MOVE flag)"] += plan.unmovable
    if plan.shared_skipped:
        b.notes.append(f"{plan.shared_skipped} shared page(s) skipped silently "
                       f"(MPOL_MF_MOVE without MOVE_ALL)")
    out = rehearse_mbind(k, plan, chunk)
    ok = out.result >= 0
    b.pairs.update(out.moved_pairs(k.node_of(plan.pfns)))
    b.failures.update(count_reasons(out.result))
    b.predicted_ns = out.time_ns
    failed = plan.unmovable + int((~ok).sum())
    if failed and plan.strict:
        b.error = (EIO, f"MPOL_MF_STRICT and {failed} page(s) could not be moved "
                        f"(the others move, the policy is applied)")
    else:
        b.ret = 0
    return b


def bill_offline(k: Kernel, node: int, zone: str, *, chunk: int | None = None) -> Bill:
    b = _new_bill(k, "offline", (node, zone), {}, chunk)
    try:
        z, blks = zone_offline_blocks(k, int(node), zone)
        plan = plan_blocks(k, blks, z.label, chunk=chunk)
    except OSError as e:
        return _error(b, e)
    for d, c in plan["moves"].items():
        b.pairs[(plan["node"], int(d))] += int(c)
    b.predicted_ns = plan["time_ns"]
    if plan["blockers"]:
        b.failures["-EBUSY unmovable pages in the range (blockers)"] += \
            sum(x["pages"] for x in plan["blockers"])
        b.error = (EBUSY, "the zone has pages that cannot move: "
                          + "; ".join(x["what"] for x in plan["blockers"]))
    elif plan["error"] is not None:
        _error(b, plan["error"])
    b.endless = plan["endless"]
    if b.endless:
        b.notes.append("the job retries until cancelled: nothing it waits for changes")
    b.failures.update(count_reasons(plan["outcome"].result))
    b.notes.extend(plan["text"].splitlines()[1:-1])  # the rehearsal's own lines
    return b


def bill_undo(k: Kernel, rec: MoveRecord | None = None, *, chunk: int | None = None) -> Bill:
    """The rehearsal of `undo`: the recorded pages that can go back, moved back on a
    copy of the allocator's books by the same loop the undo runs."""
    b = _new_bill(k, "undo", (rec,), {}, chunk)
    try:
        plan = plan_undo(k, rec)
    except OSError as e:
        return _error(b, e)
    out = drive(run_pairs(k, Rehearse(k), plan.pfns, plan.targets, undo_control(k),
                          PairRun(chunk=chunk, unique=True)))
    b.pairs.update(out.moved_pairs(k.node_of(plan.pfns)))
    b.failures = count_reasons(out.result)
    b.failures.update({f"skipped: {r}": c for r, c in plan.scope.skipped.items()})
    b.already = plan.scope.already
    b.predicted_ns = out.time_ns
    b.notes.append(f"reverses job {rec.job_id} ({rec.kind}): {rec.moved} pages recorded"
                   if rec.job_id is not None else
                   f"reverses the last {rec.kind}: {rec.moved} pages recorded")
    b.ret = 0
    return b


BILLS = {"move_pages": bill_move_pages, "migrate_pages": bill_migrate_pages,
         "mbind": bill_mbind, "offline": bill_offline, "undo": bill_undo}


def migration_bill(k: Kernel, kind: str, *args, **kw) -> Bill:
    """The dry run of `kind` (move_pages, migrate_pages, mbind, offline) with that
    call's arguments; nothing changes."""
    fn = BILLS.get(kind)
    if fn is None:
        raise oserror(EINVAL, f"migration_bill: {kind!r}: one of {', '.join(KINDS)}")
    return fn(k, *args, **kw)


class Bills:
    """The machine's book of bills: the last one made, which `bill run` makes."""

    def __init__(self) -> None:
        self.last: Bill | None = None
