"""Commands for the migration calls, their bill (the dry run) and undo.

Every migration runs under the machine's MoveBook (engine/runtime/moves.py), so its
result is one line saying what moved and why the rest did not, by reason, and
`undo` can move it back."""

from __future__ import annotations

import numpy as np

from ..constants import MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT
from ..runtime.moves import undo_gen
from ..views import status_counts_text
from .core import Result, command, oserr, start_or_run
from .spec import (
    Arg,
    CommandError,
    Flag,
    Spec,
    Words,
    addr_range,
    nodes,
    pid,
    policy,
    range_or_all,
)

PID = Arg("PID", pid, "pid")
MAX_RANGE_PAGES = 1 << 26


def dry_run(m, bg: bool, what: str, *args) -> Result:
    """The bill; a dry run that predicts the call fails as a whole fails too, its
    first line the error the call would answer. In the console (bg) the call is
    billed in the job's batches, the way `bill run` will then make it."""
    b = m.migration_bill(what, *args, chunk=m.job_batch if bg else None)
    if b.error is None:
        return Result(True, b.text, value=b)
    err = f"error: {oserr(OSError(*b.error))} (predicted by --dry-run)"
    return Result(False, err + "\n" + b.text, value=b)


def recorded(m, kind: str, args: tuple, call) -> Result:
    """Run a migration call (`call()`) under a record of what it moves: its result is
    the record's one line (an error says what moved before it)."""
    err = None
    out = None
    with m.moves.recording(m, kind, args) as rec:
        try:
            out = call()
        except OSError as e:
            err = e
    if err is not None:
        moved = f"; {rec.summary()}" if rec.moved or rec.failures else ""
        return Result(False, f"error: {oserr(err)}{moved}")
    return Result(True, rec.summary(out), value=out)


def range_pages(m, pid_: int, rng) -> np.ndarray:
    """The page addresses of a range, or of every VMA of the process ("all")."""
    spans = [(v.start, v.end - v.start) for v in m.task(pid_).vmas] if rng == "all" \
        else [rng]
    out = []
    total = 0
    for a, ln in spans:
        start = a & ~(m.page_size - 1)
        n = (m.page_align(a + ln) - start) >> m.page_shift
        total += n
        if total > MAX_RANGE_PAGES:
            raise CommandError(f"range of {total} pages is too large")
        out.append(start + (np.arange(n, dtype=np.int64) << m.page_shift))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


@command("move_pages", "move pages to NODES (one node, or a list used round-robin); no NODES "
         "= query", Spec(PID, Arg("RANGE|all", range_or_all, "range", name="range"),
                         Arg("NODES", nodes(), "nodes", optional=True), Flag("all"),
                         Flag("dry-run")), job="move_pages")
def _move_pages(m, a, bg):
    pages = range_pages(m, a.pid, a.range)
    if a.nodes is None:
        st = m.move_pages(a.pid, pages, None, 0)
        return Result(True, f"{len(st)} pages: {status_counts_text(st.array)}", value=st)
    if not a.nodes:
        raise CommandError("NODES is empty")
    flags = MPOL_MF_MOVE_ALL if "all" in a.flags else MPOL_MF_MOVE
    targets = np.asarray(a.nodes, np.int64)[np.arange(pages.size) % len(a.nodes)]
    if "dry-run" in a.flags:
        return dry_run(m, bg, "move_pages", a.pid, pages, targets, flags)
    if bg:
        return start_or_run(m, True, "move_pages", a.pid, pages, targets, flags)
    return recorded(m, "move_pages", (a.pid, pages, targets, flags),
                    lambda: m.move_pages(a.pid, pages, targets, flags))


@command("migratepages", "migrate_pages(2): move a process's pages between node sets", Spec(
    PID, Arg("FROM-NODES", nodes("from-nodes"), "nodes"),
    Arg("TO-NODES", nodes("to-nodes"), "nodes"), Flag("dry-run")),
    aliases=("migrate_pages",), job="migrate_pages")
def _migratepages(m, a, bg):
    if "dry-run" in a.flags:
        return dry_run(m, bg, "migrate_pages", a.pid, a.from_nodes, a.to_nodes)
    if bg:
        return start_or_run(m, True, "migrate_pages", a.pid, a.from_nodes, a.to_nodes)
    return recorded(m, "migrate_pages", (a.pid, a.from_nodes, a.to_nodes),
                    lambda: m.migrate_pages(a.pid, a.from_nodes, a.to_nodes))


MBIND_WORDS = {"strict": MPOL_MF_STRICT, "move": MPOL_MF_MOVE, "move_all": MPOL_MF_MOVE_ALL}


@command("mbind", "set a VMA range's policy (e.g. bind:1, interleave:0-3), optionally moving "
         "pages", Spec(PID, Arg("RANGE", addr_range, "range"),
                       Arg("POLICY", policy, "policy"), Words(*MBIND_WORDS), Flag("dry-run")),
         job="mbind")
def _mbind(m, a, bg):
    flags = sum(MBIND_WORDS[w] for w in a.words)
    mode, ns = a.policy
    if "dry-run" in a.flags:
        return dry_run(m, bg, "mbind", a.pid, *a.range, mode, ns, flags)
    if not flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
        m.mbind(a.pid, *a.range, mode, ns, flags)
        return "policy set (no page moves without move or move_all)"
    if bg:
        return start_or_run(m, True, "mbind", a.pid, *a.range, mode, ns, flags)
    args = (a.pid, *a.range, mode, ns, flags)
    return recorded(m, "mbind", args, lambda: m.mbind(*args))


@command("bill", "the last migration bill (--dry-run); `bill run` makes the call and shows "
         "predicted against actual", Spec(Words("run")))
def _bill(m, a, bg):
    b = m.last_bill
    if b is None:
        raise CommandError("no bill yet: add --dry-run to move_pages, migratepages, mbind "
                           "or offline")
    if "run" in a.words:
        if b.actual is not None:
            raise CommandError("this bill already ran; make a new one with --dry-run")
        if bg:
            job = m.start("bill", b)
            return Result(True, f"job {job.id} started: {b.kind} (billed)", job=job)
        try:
            m.run_bill(b)
        except OSError:
            pass  # the outcome, error included, is in the bill
    return Result(True, b.text, value=b)


@command("undo", "move every page the last migration moved back to the node it came from "
         "(a second undo redoes)", Spec(Flag("dry-run")), job="undo")
def _undo(m, a, bg):
    last = m.moves.last
    if last is None:
        raise CommandError("nothing to undo: no migration has run yet")
    if "dry-run" in a.flags:
        return dry_run(m, bg, "undo", last)
    if not last.moved:
        raise CommandError(f"nothing to undo: the last migration ({last.kind}"
                           f"{'' if last.job_id is None else f', job {last.job_id}'}) "
                           f"moved no page")
    if bg:
        return start_or_run(m, True, "undo")
    return recorded(m, "undo", (last,), lambda: m.run(undo_gen(m, last)))
