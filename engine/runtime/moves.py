"""What a migration did, page by page, and the undo that reverses it.

The migration core tells the machine of every page it moves (`Kernel.note_moved`:
old frames, new frames; a driver's vm_ops->migrate hook does too) and of every
page whose migration failed (`Kernel.note_failed`: frames, -errno). While a
migration job steps (or a command runs a call under `MoveBook.recording`), the
machine's MoveBook hands those notes to that job's `MoveRecord`; nothing else is
kept. A finished record knows, for every page the job moved, the node it came from
and the frame it sits on now (a page moved twice in one job is followed to its
last frame), and why the pages that failed did not move.

Two things are made of it:

- the one-line result of every migration command and job (`MoveRecord.summary()`,
  `summary_line()`): what moved (pairs of nodes, pages a driver's hook relocated)
  and why the rest did not, by reason, counted with arrays;
- `undo`: the recorded pages go back to the nodes they came from through the
  migration core itself (`run_pairs` with Execute, `__GFP_THISNODE` as move_pages
  allocates today), as a job with its own bill (`bill_undo` in bill.py rehearses the
  same plan). Pages freed or reused since, PFN-mapped frames only their driver moves,
  and pages already home are not tried, and said so.

The scope of a call (the pages it looked at, those already in place, those its
rules leave alone) comes from the call's own planning functions (`scope_of`)."""

from __future__ import annotations

import errno as _errno
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..constants import (
    EACCES,
    EAGAIN,
    EBUSY,
    EFAULT,
    EINVAL,
    ENODEV,
    ENOENT,
    ENOMEM,
    EPERM,
    oserror,
)
from ..mm.huge_memory import folio_pairs
from ..mm.mempolicy import plan_mbind, plan_migrate_pages, queue_node_pages, walk_pages
from ..mm.migrate import UNTRIED, Execute, MigrateControl, PairRun, run_pairs
from ..mm.move_pages import UNWRITTEN, MoveStatus, plan_move_pages
from ..mm.state import Kernel
from ..nodemask import node_mask, nodes_str
from ..vec import distinct_counts, pair_counts

# jobs whose pages are recorded (what `undo` can reverse)
RECORDED = ("move_pages", "migrate_pages", "mbind", "offline", "offline_block", "bill",
            "undo")

# why pages were not tried (the call's rules, before any migration)
NOT_MOVABLE = "not movable (no MOVE flag, or the VMA is not migratable)"
SHARED_SKIPPED = "shared, skipped (MPOL_MF_MOVE without MOVE_ALL)"
LOCKED_VMA = "skipped: mlocked VMA (2.6.18-20 mempolicy paths)"
GONE = "gone since (freed, reused, or moved again)"
HOME = "already on their node"


# a failure code: (the one-line results' name, the bill's); {era}: the era's name
REASONS = {
    -EACCES: ("-EACCES (shared, no MPOL_MF_MOVE_ALL)",
              "-EACCES shared (mapped by more than one process, no MPOL_MF_MOVE_ALL)"),
    -EBUSY: ("-EBUSY (isolated by another migration, or off the LRU)",
             "-EBUSY off the LRU or already isolated (under migration)"),
    -EAGAIN: ("-EAGAIN (pinned)",
              "-EAGAIN pinned (a long-term pin keeps the refcount from freezing)"),
    -EFAULT: ("-EFAULT (zero page, no VMA, or PFN-mapped)",
              "-EFAULT zero page, no VMA, or a VM_PFNMAP/VM_IO mapping"),
    -ENOENT: ("-ENOENT (not present)", "-ENOENT not present (never touched)"),
    -ENOMEM: ("-ENOMEM (no free frame on the target node)",
              "-ENOMEM no free frame on the target node"),
    -EPERM: ("-EPERM (mlocked, era {era})",
             "-EPERM mlocked (2.6.16/17 try_to_unmap refuses VM_LOCKED)"),
    -ENODEV: ("-ENODEV (node without memory)", "-ENODEV target node has no memory"),
}


def reason_text(code: int, long: bool = False, era: str = "") -> str:
    """A failure code as the one-line results (or, long, the bill) name it."""
    code = int(code)
    hit = REASONS.get(code)
    if hit is None:
        return f"-{_errno.errorcode.get(-code, str(-code))}"
    text = hit[1] if long else hit[0]
    return text.format(era=era) if era else text.replace(", era {era}", "")


def short_reason(code: int, era: str = "") -> str:
    """A failure code as the one-line results name it."""
    return reason_text(code, False, era)


def code_counts(codes: np.ndarray, era: str = "") -> Counter:
    """Failure codes (negative; UNWRITTEN and UNTRIED left out) -> pages per short
    reason, with one sort."""
    codes = np.asarray(codes, np.int64)
    codes = codes[(codes < 0) & (codes != UNWRITTEN) & (codes != UNTRIED)]
    vals, counts = np.unique(codes, return_counts=True)
    return Counter({short_reason(v, era): int(c) for v, c in zip(vals.tolist(),
                                                                   counts.tolist())})


# ------------------------------------------------------------------ the summary

@dataclass
class Scope:
    """What a call looks at before it moves anything: pages considered, those already
    where it wants them, and those its rules leave alone (reason -> pages)."""

    considered: int
    already: int = 0
    skipped: Counter = field(default_factory=Counter)


def _pairs_text(pairs: Counter) -> str:
    items = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
    if not items:
        return ""
    if len(items) <= 3:
        return " (" + ", ".join(f"{s}→{d}: {c}" for (s, d), c in items) + ")"
    dst = sorted({d for (_s, d) in pairs})
    return f" (from {len({s for (s, _d) in pairs})} nodes to {nodes_str(dst)})"


def summary_line(kind: str, moved: int, considered: int | None, *, pairs: Counter = None,
                 hooks: Counter = None, already: int = 0, reasons: Counter = None,
                 unattempted: int = 0, verb: str = "moved") -> str:
    """`mbind: 0 of 512 pages moved: 512 -EPERM (mlocked, era 2.6.17)`, `mbind: 0 of
    2048 pages moved: already in place`, `migrate_pages: 3686 of 3686 pages moved
    (2→0: 3686), of them 2048 by fb0's migrate hook`: what moved and why the rest
    did not, one line."""
    pairs = pairs or Counter()
    hooks = hooks or Counter()
    reasons = reasons or Counter()
    of = f" of {considered}" if considered is not None else ""
    if considered is not None and moved > considered:
        # large folios: a queued entry moved its whole folio (the count is base pages)
        of, verb = "", f"{verb} (whole huge pages, for {considered} queued)"
    s = f"{kind}: {moved}{of} page{'s' if (considered or moved) != 1 else ''} {verb}"
    s += _pairs_text(pairs)
    for drv, n in sorted(hooks.items()):
        s += f", of them {n} by {drv}'s migrate hook"
    rest = []
    if already:
        rest.append("already in place" if not moved and not reasons and not unattempted
                    and already == considered else f"{already} already in place")
    for r, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
        rest.append(f"{n} {r}")
    if unattempted:
        rest.append(f"{unattempted} not attempted (the call stopped first)")
    if rest:
        s += ": " + "; ".join(rest)
    return s


# ------------------------------------------------------------------ the record

class MoveRecord:
    """The pages one migration job (or command) moved and failed to move."""

    def __init__(self, kind: str, job_id: int | None = None, scope: Scope | None = None,
                 era: str = "") -> None:
        self.kind = kind
        self.job_id = job_id
        self.scope = scope
        self.era = era
        self.query = False  # a move_pages query: moved nothing, tried nothing
        self._seq = 0
        self._moves: list[tuple[int, np.ndarray, np.ndarray, int]] = []  # seq, src, dst, drv
        self._fails: list[tuple[int, np.ndarray, np.ndarray]] = []  # seq, pfns, codes
        self.drivers: list[str] = []
        self.finished = False
        # after finish(): one entry per page moved, at its last frame
        self.frame = np.zeros(0, np.int64)
        self.origin = np.zeros(0, np.int32)
        self.driver = np.zeros(0, np.int16)  # index in self.drivers, -1: the migration core
        self.ident = np.zeros((3, 0), np.int32)  # kind, mapping, index of the frame then
        self.n_moved = 0
        self.pairs: Counter = Counter()  # (origin node, node now) -> pages
        self.hooks: Counter = Counter()  # driver -> frames its hook relocated
        self.failures: Counter = Counter()  # short reason -> pages that failed in the end
        self.steps = 0  # single moves made (a page moved twice makes two)
        self.fail_codes = np.zeros(0, np.int64)

    def __repr__(self) -> str:
        return f"<MoveRecord {self.kind} job {self.job_id} moved {self.moved}>"

    # -------------------------------------------------------------- notes
    def note_moved(self, src: np.ndarray, dst: np.ndarray, driver: str | None) -> None:
        d = -1
        if driver is not None:
            if driver not in self.drivers:
                self.drivers.append(driver)
            d = self.drivers.index(driver)
        self._seq += 1
        self._moves.append((self._seq, np.array(src, np.int64), np.array(dst, np.int64), d))

    def note_failed(self, pfns: np.ndarray, codes: np.ndarray) -> None:
        self._seq += 1
        self._fails.append((self._seq, np.array(pfns, np.int64), np.array(codes, np.int64)))

    # -------------------------------------------------------------- finish
    def finish(self, k: Kernel) -> None:
        """Follow pages moved more than once to their last frame, keep each failed
        page's last failure unless it moved after it, and count by pairs and reasons."""
        self.finished = True
        if self._moves:
            seq = np.concatenate([np.full(s.size, q, np.int64) for q, s, _d, _v in self._moves])
            src = np.concatenate([s for _q, s, _d, _v in self._moves])
            dst = np.concatenate([d for _q, _s, d, _v in self._moves])
            drv = np.concatenate([np.full(s.size, v, np.int64) for _q, s, _d, v in self._moves])
            self.steps = int(src.size)
            final, origin = _follow(src, dst, k.node_of(src), k.nr_frames)
            self.frame = dst[final]
            self.origin = origin[final].astype(np.int32)
            self.driver = drv[final].astype(np.int16)
            self.n_moved = int(self.frame.size)
            f = k.f
            self.ident = np.stack([f.kind[self.frame].astype(np.int32),
                                   f.mapping[self.frame].astype(np.int32),
                                   f.index[self.frame].astype(np.int32)])
            self.pairs = Counter(pair_counts(self.origin, k.node_of(self.frame)))
            hv, hc = distinct_counts(drv[drv >= 0])
            self.hooks = Counter({self.drivers[v]: int(c) for v, c in zip(hv.tolist(),
                                                                           hc.tolist())})
        else:
            seq = src = np.zeros(0, np.int64)
        if self._fails:
            fseq = np.concatenate([np.full(p.size, q, np.int64) for q, p, _c in self._fails])
            fpfn = np.concatenate([p for _q, p, _c in self._fails])
            fcode = np.concatenate([c for _q, _p, c in self._fails])
            keep = _last_failures(fpfn, fseq, src, seq)
            self.fail_codes = fcode[keep]
            self.failures = code_counts(self.fail_codes, self.era)
        self._moves, self._fails = [], []

    @property
    def moved(self) -> int:
        return self.n_moved

    def drop_pages(self) -> None:
        """Forget the pages (what undo needs), keep the counts (what the result says):
        only the last record can be undone."""
        self.frame = np.zeros(0, np.int64)
        self.origin = np.zeros(0, np.int32)
        self.driver = np.zeros(0, np.int16)
        self.ident = np.zeros((3, 0), np.int32)
        self.fail_codes = np.zeros(0, np.int64)

    # -------------------------------------------------------------- the one line
    def summary(self, result: Any = None) -> str:
        """The job's result in one line (move_pages: with its return value)."""
        sc = self.scope
        reasons = Counter(self.failures)
        considered = None
        already = 0
        unattempted = 0
        hooked = sum(self.hooks.values())
        if sc is not None:
            reasons.update(sc.skipped)
            considered = sc.considered + hooked
            already = sc.already
            unattempted = max(0, considered - self.steps - already - sum(reasons.values()))
        verb = "moved back" if self.kind == "undo" else "moved"
        line = summary_line(self.kind, self.moved, considered, pairs=self.pairs,
                            hooks=self.hooks, already=already, reasons=reasons,
                            unattempted=unattempted, verb=verb)
        if isinstance(result, MoveStatus):
            line += f"; ret {result.ret}"
        return line


def _follow(src: np.ndarray, dst: np.ndarray, src_node: np.ndarray, nr_frames: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Moves in order (src[i] -> dst[i]); a move whose source is the frame an earlier
    move (the latest one before it) left a page on continues that page. Returns (mask
    of the moves that are a page's last, the node each move's page came from first)."""
    n = src.size
    seen = np.zeros(nr_frames, bool)
    seen[dst] = True
    if not seen[src].any():  # no page moved twice (the usual case): one pass, no sort
        return np.ones(n, bool), src_node
    order = np.argsort(dst, kind="stable")  # by frame, then by time
    key = dst[order] * n + order
    q = src * n + np.arange(n)
    pos = np.searchsorted(key, q) - 1
    ok = pos >= 0
    j = np.where(ok, order[np.maximum(pos, 0)], -1)
    pred = np.where(ok & (dst[np.maximum(j, 0)] == src), j, -1)
    final = np.ones(n, bool)
    final[pred[pred >= 0]] = False
    root = np.arange(n)
    p = pred.copy()
    while (p >= 0).any():  # as many rounds as the longest chain of moves of one page
        has = p >= 0
        root[has] = p[has]
        p = np.where(has, pred[np.maximum(p, 0)], -1)
    return final, src_node[root]


def _last_failures(fpfn: np.ndarray, fseq: np.ndarray, src: np.ndarray, seq: np.ndarray
                   ) -> np.ndarray:
    """Positions of each failed frame's last failure, unless the page moved after it
    (a later round or pass succeeded)."""
    order = np.lexsort((fseq, fpfn))
    last = np.ones(order.size, bool)
    last[:-1] = fpfn[order][1:] != fpfn[order][:-1]
    keep = order[last]
    if src.size:
        mo = np.lexsort((seq, src))
        sk, sq = src[mo], seq[mo]
        # the latest move from the same frame
        hi = np.searchsorted(sk, fpfn[keep], side="right") - 1
        moved_after = (hi >= 0) & (sk[np.maximum(hi, 0)] == fpfn[keep]) & \
            (sq[np.maximum(hi, 0)] > fseq[keep])
        keep = keep[~moved_after]
    return np.sort(keep)


# ------------------------------------------------------------------ scopes

def mbind_scope(plan) -> Scope:
    """mbind's walk (plan_mbind): pages already on a node of the mask, misplaced pages
    that cannot move, shared pages MPOL_MF_MOVE skips."""
    skipped = Counter()
    if plan.unmovable:
        skipped[NOT_MOVABLE] = plan.unmovable
    if plan.shared_skipped:
        skipped[SHARED_SKIPPED] = plan.shared_skipped
    return Scope(plan.already + plan.unmovable + plan.shared_skipped + int(plan.pfns.size),
                 plan.already, skipped)


def migrate_pages_scope(k: Kernel, plan) -> Scope:
    """migrate_pages' walk: the pages on the old nodes, those of VMAs the call skips
    (2.6.18-20: mlocked), shared ones without MOVE_ALL, and those whose node maps to
    itself (already in place). Driver frames are the hook's (counted when it moves
    them)."""
    mask = node_mask(plan.old)
    locked = shared = 0
    for v, migratable, _offs, pfn in walk_pages(k, plan.p, 0, 1 << 62, "migrate_pages"):
        if v.pfnmap:
            continue
        on = pfn[mask[k.node_of(pfn)]]
        if not migratable:
            locked += int(on.size)
        elif not plan.move_all:
            shared += int((k.f.mapcount[on] > 1).sum())
    queued = queue_node_pages(k, plan.p, plan.old, plan.move_all)
    sources = np.array(sorted({s for s, _d in plan.pairs}) or [-1], np.int64)
    nodes = k.node_of(queued)
    already = int((~np.isin(nodes, sources)).sum())
    skipped = Counter()
    if locked:
        skipped[LOCKED_VMA] = locked
    if shared:
        skipped[SHARED_SKIPPED] = shared
    return Scope(int(queued.size) + locked + shared, already, skipped)


def move_pages_scope(k: Kernel, plan) -> Scope:
    """move_pages' lookup (plan_move_pages): entries already on their node, and those
    that fail before any migration (-ENOENT, -EFAULT, -EACCES...). Entries from the
    first bad node on are never tried."""
    n = int(plan.status.size)
    pre = ~plan.queue & (np.arange(n) < plan.stop)
    return Scope(n, int((pre & (plan.status >= 0)).sum()),
                 code_counts(plan.status[pre & (plan.status < 0)], k.era.name))


def scope_of(k: Kernel, kind: str, args: tuple, kw: dict) -> Scope | None:
    """The scope of a migration call from its own planning functions (None for
    offline, whose report carries it, and a move_pages query). Raises what the call
    would raise for bad arguments."""
    caller = kw.get("caller")
    if kind == "move_pages" and len(args) > 2 and args[2] is not None:
        return move_pages_scope(k, plan_move_pages(k, *args, caller=caller))
    if kind == "mbind":
        return mbind_scope(plan_mbind(k, *args, caller=caller))
    if kind == "migrate_pages":
        return migrate_pages_scope(k, plan_migrate_pages(k, *args, caller=caller))
    if kind == "undo":
        return plan_undo(k, *args).scope
    return None


# ------------------------------------------------------------------ the book

class MoveBook:
    """The machine's records of migration jobs: the one being filled (`active`), the
    last finished one (`last`, what `undo` reverses) and, for the console, each
    recent job's (`of_job`)."""

    KEEP = 50

    def __init__(self) -> None:
        self.active: MoveRecord | None = None
        self.last: MoveRecord | None = None
        self.by_job: dict[int, MoveRecord] = {}

    def of_job(self, job_id: int) -> MoveRecord | None:
        return self.by_job.get(job_id)

    def begin(self, k: Kernel, kind: str, args: tuple = (), kw: dict | None = None,
              job_id: int | None = None) -> MoveRecord:
        """A record for a call about to run; its scope from the call's planners (a call
        whose arguments are bad gets none: it raises the same error itself)."""
        kw = kw or {}
        if kind == "bill" and args:  # `bill run`: the billed call
            b = args[0]
            kind, args, kw = b.kind, b.args, b.kwargs
        try:
            scope = scope_of(k, kind, args, kw)
        except (OSError, TypeError, ValueError):
            scope = None
        rec = MoveRecord(kind, job_id, scope, k.era.name)
        rec.query = kind == "move_pages" and len(args) > 2 and args[2] is None
        return rec

    def end(self, k: Kernel, rec: MoveRecord) -> None:
        rec.finish(k)
        if not rec.query:
            if self.last is not None and self.last is not rec:
                self.last.drop_pages()
            self.last = rec
        if rec.job_id is not None:
            self.by_job[rec.job_id] = rec
            for old in sorted(self.by_job)[:-self.KEEP]:
                del self.by_job[old]

    @contextmanager
    def recording(self, k: Kernel, kind: str, args: tuple = (), kw: dict | None = None
                  ) -> Iterator[MoveRecord]:
        """Record a synchronous call (a command without `&`)."""
        rec = self.begin(k, kind, args, kw)
        prev, self.active = self.active, rec
        try:
            yield rec
        finally:
            self.active = prev
            self.end(k, rec)

    def wrap(self, k: Kernel, rec: MoveRecord, gen):
        """A job's generator whose steps are recorded into rec."""
        try:
            while True:
                prev, self.active = self.active, rec
                try:
                    x = next(gen)
                except StopIteration as e:
                    return e.value
                finally:
                    self.active = prev
                yield x
        finally:
            prev, self.active = self.active, rec
            try:
                gen.close()  # a cancelled job's cleanup (putback) is part of its record
            finally:
                self.active = prev
                self.end(k, rec)


# ------------------------------------------------------------------ undo

@dataclass
class UndoPlan:
    record: MoveRecord
    pfns: np.ndarray  # frames to move back
    targets: np.ndarray  # the node each came from
    scope: Scope


def plan_undo(k: Kernel, rec: MoveRecord | None) -> UndoPlan:
    """Which recorded pages can go back: those still on the frame the job left them
    on (same kind, mapping and index), not home already, not PFN-mapped frames a
    driver's hook relocated (only the driver moves those)."""
    if rec is None:
        raise oserror(EINVAL, "undo: no migration to undo yet")
    frames, origin = rec.frame, rec.origin
    f = k.f
    ok = (frames >= 0) & (frames < k.nr_frames)
    fr = np.where(ok, frames, 0)
    same = ok & (f.kind[fr] == rec.ident[0]) & (f.mapping[fr] == rec.ident[1]) & \
        (f.index[fr] == rec.ident[2])
    skipped = Counter()
    gone = int((~same).sum())
    if gone:
        skipped[GONE] = gone
    hooked = same & (rec.driver >= 0)
    for d in np.unique(rec.driver[hooked]).tolist():
        name = rec.drivers[d]
        skipped[f"PFN-mapped frames of {name} (only its migrate hook moves them)"] = \
            int((rec.driver[hooked] == d).sum())
    cand = same & ~hooked
    home = cand & (k.node_of(fr) == origin)
    go = cand & ~home
    # a folio moved whole goes back whole: one pair per folio (the first frame's origin)
    pf, tg, _inv = folio_pairs(k, frames[go], origin[go])
    return UndoPlan(rec, pf, tg, Scope(int(frames.size), int(home.sum()), skipped))


def undo_control(k: Kernel) -> MigrateControl:
    """As move_pages allocates: the target node only today (__GFP_THISNODE), its
    zonelist in 2006; the console's CPU is on node 0."""
    return MigrateControl("syscall", thisnode=k.era.strict_target_node, cpu=0)


def undo_gen(k: Kernel, rec: MoveRecord | None, *, chunk: int | None = None, job=None):
    """Move the recorded pages back (a batch generator; returns what moved back)."""
    plan = plan_undo(k, rec)
    if job is not None:
        job.total = int(plan.pfns.size)
        yield 0  # planned: Machine.start() returns here
    out = yield from run_pairs(k, Execute(k, hold=bool(chunk)), plan.pfns, plan.targets,
                               undo_control(k), PairRun(chunk=chunk, unique=True), job)
    moved = int((out.result >= 0).sum())
    return {"pages": moved, "failed": int(plan.pfns.size) - moved,
            "text": f"undo: {moved} of {plan.scope.considered} pages moved back"}


__all__ = ["REASONS", "RECORDED", "MoveBook", "MoveRecord", "Scope", "UndoPlan", "code_counts",
           "plan_undo", "reason_text", "scope_of", "short_reason", "summary_line", "undo_gen"]
