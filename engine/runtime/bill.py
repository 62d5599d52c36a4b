"""The migration bill: a dry run of move_pages, migrate_pages, mbind(+MOVE) or a zone
offline that changes nothing and says what the call would do: pages and bytes per
source -> target pair, pages expected to fail and why, the call's return value or
error, and the time the cost model predicts. `m.migration_bill(kind, *args)`.

It reads the same state the call reads, through the engine's own read-only lookups
(page_status, the node checks, the failure predictor), and follows each call's rules
for the era: modern move_pages stops at the first batch that has a failure and
leaves that batch's statuses unwritten; 2.6.18 validated every node first and let
migration allocate with fallback; migrate_pages walks node pairs vacate-before-fill,
so a page can move twice; mbind moves misplaced pages to where the new policy says.
`bill.run()` (or the job "bill") then makes the call for real and records the
actual outcome beside the prediction.

Expected failures, with Linux's codes: -EACCES shared page without MPOL_MF_MOVE_ALL,
-EBUSY page off the LRU or already isolated (under migration), -EAGAIN pinned
(a long-term GUP pin keeps the refcount from freezing), -EFAULT zero page, no VMA,
or a VM_PFNMAP/VM_IO mapping, -ENOENT not present, -ENOMEM no frame on the target,
-EPERM mlocked (2.6.16/17), and "skipped" for mlocked VMAs on the 2.6.18-20 mempolicy
paths."""

from __future__ import annotations

import errno as _errno
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..constants import (
    EACCES,
    EAGAIN,
    EBUSY,
    EFAULT,
    EINVAL,
    EIO,
    ENODEV,
    ENOENT,
    ENOMEM,
    EPERM,
    K_ANON,
    K_FILE,
    MPOL_BIND,
    MPOL_MF_MOVE,
    MPOL_MF_MOVE_ALL,
    MPOL_MF_STRICT,
    PG_isolated,
    PG_locked,
    PG_lru,
    PG_mlocked,
    PG_pinned,
    PG_writeback,
    oserror,
)
from ..vec import distinct, pair_counts, unique

if TYPE_CHECKING:  # pragma: no cover
    from ..machine import Machine

UNWRITTEN = -1000  # a move_pages status entry Linux leaves unwritten
KINDS = ("move_pages", "migrate_pages", "mbind", "offline")
REASONS = {
    -EACCES: "-EACCES shared (mapped by more than one process, no MPOL_MF_MOVE_ALL)",
    -EBUSY: "-EBUSY off the LRU or already isolated (under migration)",
    -EAGAIN: "-EAGAIN pinned (a long-term pin keeps the refcount from freezing)",
    -EFAULT: "-EFAULT zero page, no VMA, or a VM_PFNMAP/VM_IO mapping",
    -ENOENT: "-ENOENT not present (never touched)",
    -ENOMEM: "-ENOMEM no free frame on the target node",
    -EPERM: "-EPERM mlocked (2.6.16/17 try_to_unmap refuses VM_LOCKED)",
    -ENODEV: "-ENODEV target node has no memory",
}


@dataclass(eq=False)
class Bill:
    kind: str
    args: tuple
    kwargs: dict
    era: str
    page_size: int
    pairs: Counter = field(default_factory=Counter)  # (src, dst) -> pages predicted to move
    failures: Counter = field(default_factory=Counter)  # reason -> pages
    already: int = 0  # pages already where the call wants them
    unattempted: int = 0  # move_pages: entries after the failing batch
    predicted_ns: int = 0
    ret: int | None = None  # predicted return value (move_pages ret, migrate_pages left)
    error: tuple | None = None  # predicted whole-call error: (errno, message)
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
        from ..units import fmt_size
        from .clock import fmt_ns

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
        from .clock import fmt_ns

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
    def run_gen(self, m: Machine, chunk=None, job=None):
        """Make the billed call for real (as a job's generator) and record the outcome."""
        gens = m._job_generators()
        t0, tr0 = m.clock_ns, _traffic(m)
        err = None
        result = None
        try:
            result = yield from gens[self.kind](*self.args, chunk=chunk, job=job,
                                                **self.kwargs)
        except OSError as e:
            err = e
        self._record(m, result, err, t0, tr0)
        if err is not None:
            raise err
        return result

    def run(self, m: Machine):
        """Make the billed call synchronously; returns its result (or raises)."""
        return m.run(self.run_gen(m))

    def _record(self, m: Machine, result, err, t0: int, tr0: np.ndarray) -> None:
        moved = _traffic(m) - tr0
        pairs = {(int(s), int(d)): int(moved[s, d]) for s, d in zip(*np.nonzero(moved))}
        a = {"ns": m.clock_ns - t0, "pairs": pairs, "pages": int(moved.sum()),
             "error": None if err is None else err.errno, "ret": None,
             "status_mismatch": None}
        if self.kind == "move_pages" and result is not None:
            a["ret"] = result.ret
            if self.status is not None and len(result) == self.status.size:
                got = np.array([UNWRITTEN if s is None else s for s in result], np.int64)
                a["status_mismatch"] = int((got != self.status).sum())
                a["status"] = got
        elif self.kind == "migrate_pages" and err is None:
            a["ret"] = result
        self.actual = a


def _traffic(m: Machine) -> np.ndarray:
    nn = m.nr_node_ids
    if m.traffic is None or m.traffic.shape[0] != nn:
        return np.zeros((nn, nn), np.int64)
    return m.traffic.copy()


# ------------------------------------------------------------------ allocation emulation

class _Capacity:
    """Free frames per node above each watermark, consumed as a migration would
    (alloc_frames: a "low" pass over the node order, then a "min" pass)."""

    def __init__(self, m: Machine):
        from ..mm.page_alloc import zone_available

        self.avail = {w: Counter() for w in ("low", "min")}
        for z in m.zones:
            for w in ("low", "min"):
                self.avail[w][z.node] += max(0, zone_available(z, w) - z.isolated_free)
        self.used: Counter = Counter()

    def take(self, k: int, order: list[int], wmark: str) -> list[tuple[int, int]]:
        out = []
        need = k
        for mark in (("low", "min") if wmark == "low" else (wmark,)):
            for n in order:
                x = min(need, self.avail[mark][n] - self.used[n])
                if x > 0:
                    out.append((n, x))
                    self.used[n] += x
                    need -= x
        return out

    def place(self, targets: np.ndarray, orders, wmark: str, chunk: int | None
              ) -> np.ndarray:
        """Destination node per page (-1: ENOMEM), page by page in the engine's order:
        chunk by chunk, each chunk grouped by target node ascending."""
        dst = np.full(targets.size, -1, np.int64)
        step = targets.size if not chunk else int(chunk)
        for c0 in range(0, targets.size, max(step, 1)):
            tg = targets[c0:c0 + step]
            for t in distinct(tg):
                sel = c0 + np.flatnonzero(tg == t)
                pos = 0
                for n, x in self.take(sel.size, orders(int(t)), wmark):
                    dst[sel[pos:pos + x]] = n
                    pos += x
        return dst


def _predict_time(m: Machine, src: np.ndarray, dst: np.ndarray, waits: int,
                  chunk: int | None) -> int:
    from .clock import predict_migrate_ns

    return predict_migrate_ns(m, src, dst, chunk) + waits * m.cost.wait_ns


def _fail_codes(m: Machine, pfn: np.ndarray) -> np.ndarray:
    """Failures the migration core will have on isolated frames: pins on every pass,
    mlocked pages in 2.6.16/17."""
    fl = m.f.flags[pfn]
    out = np.zeros(pfn.size, np.int64)
    out[(fl & PG_pinned) != 0] = -EAGAIN
    if m.era.mlocked_migration == "eperm":
        out[((fl & PG_mlocked) != 0) & (out == 0)] = -EPERM
    return out


def _isolatable(m: Machine, pfn: np.ndarray) -> np.ndarray:
    fl = m.f.flags[pfn]
    return ((fl & PG_lru) != 0) & ((fl & PG_isolated) == 0)


def _waits(m: Machine, pfn: np.ndarray) -> int:
    return int(((m.f.flags[pfn] & (PG_locked | PG_writeback)) != 0).sum())


def _new_bill(m: Machine, kind: str, args, kwargs) -> Bill:
    return Bill(kind=kind, args=tuple(args), kwargs=dict(kwargs), era=m.era.name,
                page_size=m.page_size)


def _add_pairs(b: Bill, src: np.ndarray, dst: np.ndarray) -> None:
    for (s, d), c in pair_counts(src, dst).items():
        b.pairs[(int(s), int(d))] += c


# ------------------------------------------------------------------ move_pages

def bill_move_pages(m: Machine, pid, pages, nodes=None, flags: int = 0, *, caller=None,
                    chunk: int | None = None) -> Bill:
    from ..mm.migrate import _as_array, _check_move_pages_call

    b = _new_bill(m, "move_pages", (pid, pages, nodes, flags), {"caller": caller})
    try:
        p = _check_move_pages_call(m, pid, flags, caller)
        addrs = _as_array(pages, "pages")
        if nodes is None:
            b.notes.append("no nodes: a query, nothing moves")
            b.ret = 0
            return b
        tg = _as_array(nodes, "nodes")
        if tg.size < addrs.size:
            raise oserror(EFAULT, f"move_pages: nodes has {tg.size} entries for "
                                  f"{addrs.size} pages")
        tg = tg[:addrs.size]
        move_all = bool(flags & MPOL_MF_MOVE_ALL)
        if m.era.move_pages_batching:
            _move_pages_modern(m, b, p, addrs, tg, move_all, chunk)
        else:
            _move_pages_2006(m, b, p, addrs, tg, move_all, chunk)
    except OSError as e:
        b.error = (e.errno, e.strerror)
    return b


def _count_status(b: Bill, st: np.ndarray) -> None:
    for code, c in zip(*np.unique(st[st < 0], return_counts=True)):
        if code == UNWRITTEN:
            continue
        b.failures[REASONS.get(int(code), f"-{_errno.errorcode.get(-int(code))}")] += int(c)


def _move_pages_modern(m: Machine, b: Bill, p, addrs, tg, move_all, chunk) -> None:
    """do_pages_move(): batches of consecutive entries with one node; the first batch
    with a failure ends the call (its statuses unwritten, the rest never looked at);
    the first bad node ends the walk with its error."""
    from ..mm.migrate import _classify, _node_errors, _predict_failures

    n = addrs.size
    nerr = _node_errors(m, p, tg)
    bad = np.flatnonzero(nerr)
    stop = int(bad[0]) if bad.size else n
    status, pfn, queue = _classify(m, p, addrs[:stop], tg[:stop], move_all)
    t = tg[:stop]
    st = np.full(n, UNWRITTEN, np.int64)
    prev_q = np.concatenate([[False], queue[:-1]])
    prev_t = np.concatenate([[-1], t[:-1]])
    bid = np.cumsum(queue & ~(prev_q & (prev_t == t))) - 1
    qi = np.flatnonzero(queue)
    pred = _predict_failures(m, pfn[qi], t[qi])  # the engine's own predictor: pins, ENOMEM
    fails = pred < 0
    b.already = int(((status == t) & ~queue & (pfn >= 0)).sum())
    if fails.any():
        fb = int(bid[qi[np.argmax(fails)]])
        run = bid[qi] <= fb
        in_fb = bid[qi] == fb
        last = int(qi[in_fb][-1])
        trig = last + 1
        nonq = np.flatnonzero(~queue)
        w = nonq[nonq <= trig]
        st[w] = status[w]
        early = qi[bid[qi] < fb]
        st[early] = t[early]
        ok = run & ~fails
        _add_pairs(b, m.node_of(pfn[qi[ok]]), t[qi[ok]])
        b.predicted_ns = _predict_time(m, m.node_of(pfn[qi[ok]]), t[qi[ok]],
                                       _waits(m, pfn[qi[ok]]), chunk)
        _count_status(b, st)
        for code, c in zip(*np.unique(pred[in_fb & fails], return_counts=True)):
            b.failures[REASONS[int(code)]] += int(c)
        if (pred[in_fb] == -ENOMEM).any():
            b.error = (ENOMEM, f"node {int(t[last])} has no free page for the migration")
        nf = int((in_fb & fails).sum())
        b.unattempted = n - trig
        b.ret = nf + (n - trig) - (1 if trig < stop and not queue[trig] else 0)
        b.status = st
        return
    st[:stop] = np.where(queue, t, status)
    _add_pairs(b, m.node_of(pfn[qi]), t[qi])
    b.predicted_ns = _predict_time(m, m.node_of(pfn[qi]), t[qi], _waits(m, pfn[qi]), chunk)
    _count_status(b, st)
    b.status = st
    if bad.size:
        e = int(-nerr[stop])
        b.failures[REASONS.get(-e, f"-{_errno.errorcode.get(e)}")] += 1
        b.unattempted = n - stop
        b.error = (e, f"node {int(tg[stop])} " + ("has no memory or does not exist"
                                                 if e == ENODEV else "is outside the cpuset"))
    else:
        b.ret = 0


def _move_pages_2006(m: Machine, b: Bill, p, addrs, tg, move_all, chunk) -> None:
    """2.6.18: every node validated first; each queued page allocated on its node with
    fallback; the status is the node actually used or the page's error."""
    from ..mm.migrate import _classify, _node_errors
    from ..mm.page_alloc import zonelist

    nerr = _node_errors(m, p, tg)
    bad = np.flatnonzero(nerr)
    if bad.size:
        e = int(-nerr[bad[0]])
        b.error = (e, f"node {int(tg[bad[0]])} is not usable; nothing moves")
        return
    status, pfn, queue = _classify(m, p, addrs, tg, move_all)
    qi = np.flatnonzero(queue)
    b.already = int(((status == tg) & ~queue & (pfn >= 0)).sum())
    if qi.size == 0 and m.era.move_pages_empty_enoent:
        b.error = (ENOENT, "no page needs moving (2.6.18 answers ENOENT)")
        return
    res = _migrate_emulated(m, pfn[qi], tg[qi], lambda t: zonelist(m, t, None), "low", chunk)
    ok = res >= 0
    _add_pairs(b, m.node_of(pfn[qi][ok]), res[ok])
    b.predicted_ns = _predict_time(m, m.node_of(pfn[qi][ok]), res[ok],
                                   _waits(m, pfn[qi][ok]), chunk)
    status[qi] = res
    b.status = status
    _count_status(b, status)
    b.ret = 0


def _migrate_emulated(m: Machine, pfn: np.ndarray, targets: np.ndarray, orders, wmark: str,
                      chunk: int | None, cap: _Capacity | None = None) -> np.ndarray:
    """What migrate_pairs_gen() will answer per page: the node it lands on, or
    -EBUSY (isolation), -EAGAIN (pinned), -EPERM (2.6.17 mlocked), -ENOMEM."""
    res = np.full(pfn.size, -EBUSY, np.int64)
    iso = _isolatable(m, pfn)
    # the same frame twice: only the first isolation succeeds
    _, first = np.unique(pfn, return_index=True)
    dup = np.ones(pfn.size, bool)
    dup[first] = False
    iso &= ~dup
    fc = _fail_codes(m, pfn)
    go = iso & (fc == 0)
    res[iso & (fc != 0)] = fc[iso & (fc != 0)]
    cap = _Capacity(m) if cap is None else cap
    gi = np.flatnonzero(go)
    dst = cap.place(targets[gi], orders, wmark, chunk)
    res[gi] = np.where(dst >= 0, dst, -ENOMEM)
    return res


# ------------------------------------------------------------------ migrate_pages

def bill_migrate_pages(m: Machine, pid, old_nodes, new_nodes, *, caller=None,
                       chunk: int | None = None) -> Bill:
    from ..mm.mempolicy import check_migrate_pages_call, migrate_pages_pairs
    from ..mm.page_alloc import zonelist

    b = _new_bill(m, "migrate_pages", (pid, old_nodes, new_nodes), {"caller": caller})
    try:
        p, old, new, cred = check_migrate_pages_call(m, pid, old_nodes, new_nodes, caller)
    except OSError as e:
        b.error = (e.errno, e.strerror)
        return b
    move_all = cred.cap_sys_nice
    f = m.f
    pfns, skipped = [], 0
    for v in p.vmas:
        pte = v.pte
        pf = pte[(pte >= 0) & (pte != m.zero_pfn)]
        pf = pf[np.isin(f.kind[pf], (K_ANON, K_FILE))]
        if not m.vma_migratable(v, "migrate_pages"):
            skipped += int(pf.size) if not v.pfnmap else 0
            continue
        pfns.append(pf)
    if skipped:
        b.failures["skipped: mlocked VMA (2.6.18-20 mempolicy paths)"] += skipped
    pf = unique(np.concatenate(pfns)) if pfns else np.empty(0, np.int64)
    node = m.node_of(pf) if pf.size else np.empty(0, np.int64)
    if not move_all:
        shared = f.mapcount[pf] > 1
        pf, node = pf[~shared], node[~shared]  # shared pages are skipped silently
    strict = m.era.strict_target_node
    cap = _Capacity(m)
    failed = 0
    src_all, dst_all, waits = [], [], 0
    if m.era.vm_ops_migrate_hook:
        b.notes.append("2.6.18: vm_ops->migrate of hooked driver VMAs runs first (not billed)")
    for s, d in migrate_pages_pairs(m, old, new):
        sel = np.flatnonzero(node == s)
        if sel.size == 0:
            continue
        orders = (lambda t: [t] if m.node_has_memory(t) else []) if strict else \
            (lambda t: zonelist(m, t, None))
        res = _migrate_emulated(m, pf[sel], np.full(sel.size, d, np.int64), orders,
                                "min" if strict else "low", chunk, cap)
        if strict and (res == -ENOMEM).any():
            # fail_on_enomem: once a batch hits ENOMEM, the rest of the pair fails too
            res[np.argmax(res == -ENOMEM):][res[np.argmax(res == -ENOMEM):] >= 0] = -ENOMEM
        ok = res >= 0
        src_all.append(np.full(int(ok.sum()), s, np.int64))
        dst_all.append(res[ok])
        waits += _waits(m, pf[sel][ok])
        node[sel[ok]] = res[ok]  # a later pair may move it again (as Linux does)
        failed += int((~ok).sum())
        for code, c in zip(*np.unique(res[~ok], return_counts=True)):
            b.failures[REASONS.get(int(code), str(code))] += int(c)
    if src_all:
        src, dst = np.concatenate(src_all), np.concatenate(dst_all)
        _add_pairs(b, src, dst)
        b.predicted_ns = _predict_time(m, src, dst, waits, chunk)
    b.ret = min(failed, 2**31 - 1)
    return b


# ------------------------------------------------------------------ mbind

def bill_mbind(m: Machine, pid, addr, length, mode, nodemask=(), flags: int = 0, *,
               caller=None, chunk: int | None = None) -> Bill:
    from ..mm.mempolicy import check_mbind_call, policy_nodes_for_fault
    from ..mm.page_alloc import zonelist

    b = _new_bill(m, "mbind", (pid, addr, length, mode, nodemask, flags), {"caller": caller})
    try:
        call = check_mbind_call(m, pid, addr, length, mode, nodemask, flags, caller)
        if call is None:
            b.ret = 0
            return b
        p, addr, end, flags, _mode, nodes, new = call
    except OSError as e:
        b.error = (e.errno, e.strerror)
        return b
    f = m.f
    mask = set(nodes)
    move = bool(flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL))
    strict = bool(flags & MPOL_MF_STRICT)
    nr_failed = 0
    pfns, tgts = [], []
    for v in m.vmas_in_range(p, addr, end, split=False):
        o0 = (max(v.start, addr) - v.start) >> m.page_shift
        o1 = (min(v.end, end) - v.start) >> m.page_shift
        migratable = m.vma_migratable(v, "mbind")
        if not migratable and not strict:
            continue
        pte = v.pte[o0:o1]
        offs = np.arange(o0, o1)
        present = (pte >= 0) & (pte != m.zero_pfn)
        pf, offs = pte[present], offs[present]
        if not v.pfnmap:
            k = np.isin(f.kind[pf], (K_ANON, K_FILE))
            pf, offs = pf[k], offs[k]
        nid = m.node_of(pf)
        mis = ~np.isin(nid, list(mask)) if mask else np.ones(pf.size, bool)
        b.already += int((~mis).sum())
        pf, offs = pf[mis], offs[mis]
        if pf.size == 0:
            continue
        if not move or not migratable:
            nr_failed += pf.size
            if strict and not move:
                b.error = (EIO, f"MPOL_MF_STRICT and {pf.size} page(s) on other nodes; "
                                f"the policy is not applied")
                return b
            b.failures["not movable here (VMA not migratable, or no MOVE flag)"] += \
                int(pf.size)
            continue
        if not flags & MPOL_MF_MOVE_ALL:
            sh = f.mapcount[pf] > 1
            if sh.any():
                b.notes.append(f"{int(sh.sum())} shared page(s) skipped silently "
                               f"(MPOL_MF_MOVE without MOVE_ALL)")
            pf, offs = pf[~sh], offs[~sh]
        if pf.size:
            t, _, _ = policy_nodes_for_fault(m, p, v, offs, p.node, new)
            pfns.append(pf)
            tgts.append(t)
    if pfns:
        pf, t = np.concatenate(pfns), np.concatenate(tgts)
        allowed = set(new.nodes) if new is not None and new.mode == MPOL_BIND else None
        res = _migrate_emulated(m, pf, t, lambda x: zonelist(m, x, allowed), "low", chunk)
        ok = res >= 0
        _add_pairs(b, m.node_of(pf[ok]), res[ok])
        b.predicted_ns = _predict_time(m, m.node_of(pf[ok]), res[ok], _waits(m, pf[ok]), chunk)
        for code, c in zip(*np.unique(res[~ok], return_counts=True)):
            b.failures[REASONS.get(int(code), str(code))] += int(c)
        nr_failed += int((~ok).sum())
    if nr_failed and strict:
        b.error = (EIO, f"MPOL_MF_STRICT and {nr_failed} page(s) could not be moved "
                        f"(the others move, the policy is applied)")
    else:
        b.ret = 0
    return b


# ------------------------------------------------------------------ offline

def bill_offline(m: Machine, node: int, zone: str, *, chunk: int | None = None) -> Bill:
    b = _new_bill(m, "offline", (node, zone), {})
    plan_fn = getattr(m, "offline_plan", None)
    if plan_fn is None:
        b.error = (EINVAL, "hot-remove is not available in this build")
        return b
    try:
        plan = plan_fn(node, zone)
    except OSError as e:
        b.error = (e.errno, e.strerror)
        return b
    src = int(plan.get("node", node))
    for d, c in plan.get("moves", {}).items():
        b.pairs[(src, int(d))] += int(c)
    b.predicted_ns = int(plan.get("time_ns", 0))
    if plan.get("blockers"):
        n = plan["blockers"] if isinstance(plan["blockers"], int) else len(plan["blockers"])
        b.failures["-EBUSY unmovable pages in the range (blockers)"] += n
        b.error = (EBUSY, "the zone has pages that cannot move")
    if plan.get("unplaced"):
        b.failures[REASONS[-ENOMEM]] += int(plan["unplaced"])
    for name, d in plan.get("drivers", {}).items():
        b.notes.append(f"driver {name} relocates {d.get('frames')} frames")
    return b


# ------------------------------------------------------------------ entry points

def migration_bill(m: Machine, kind: str, *args, **kw) -> Bill:
    """The dry run of `kind` (move_pages, migrate_pages, mbind, offline) with that
    call's arguments; nothing changes. The bill is also kept as m's last bill."""
    fn = {"move_pages": bill_move_pages, "migrate_pages": bill_migrate_pages,
          "mbind": bill_mbind, "offline": bill_offline}.get(kind)
    if fn is None:
        raise oserror(EINVAL, f"migration_bill: {kind!r}: one of {', '.join(KINDS)}")
    b = fn(m, *args, **kw)
    m.__dict__["_last_bill"] = b
    return b


def last_bill(m: Machine) -> Bill | None:
    return m.__dict__.get("_last_bill")


def bill_job(m: Machine, bill: Bill | None = None, *, chunk=None, job=None):
    """Job factory: `m.start("bill", bill)` runs the billed call (default: the last)."""
    b = bill if bill is not None else last_bill(m)
    if b is None:
        raise oserror(EINVAL, "bill: no bill to run (make one with --dry-run first)")
    if b.kind == "offline":
        b.kwargs = {}
    return b.run_gen(m, chunk=chunk, job=job)


def _register_jobs() -> None:
    from .jobs import register_job

    register_job("bill", bill_job)


_register_jobs()
