"""The migration core and move_pages(2) (mm/migrate.c).

`migrate_pairs_gen` takes arrays of (frame, target node) pairs, the 1-1 association
the 2006 thread asked for, and returns one outcome per pair: the node the page now
sits on, or a negative errno. Every step is a whole-array operation; the loop is over
chunks (batches of pages between which a job yields), never over pages."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    ENOSYS,
    EPERM,
    ESRCH,
    K_ANON,
    MAX_NUMNODES,
    MPOL_MF_MOVE,
    MPOL_MF_MOVE_ALL,
    PG_isolated,
    PG_locked,
    PG_lru,
    PG_mlocked,
    PG_pinned,
    PG_writeback,
    oserror,
)
from ..vec import distinct, distinct_counts, has_duplicates

if TYPE_CHECKING:  # pragma: no cover
    from ..machine import Machine


class MoveStatus(list):
    """move_pages' status array: one entry per page (node, negative errno, or None
    where Linux leaves the entry unwritten); `.ret` is the syscall's return value."""

    ret: int = 0

    def __repr__(self) -> str:
        return f"MoveStatus({list.__repr__(self)}, ret={self.ret})"


# ----------------------------------------------------------------- isolation

def isolate(m: Machine, pfns: np.ndarray, unique: bool = False, hold: bool = True
            ) -> np.ndarray:
    """isolate_lru_page() on each frame: returns a mask of those isolated; the
    others (off the LRU, already isolated) fail with -EBUSY. unique=True: the caller
    guarantees no frame repeats."""
    f = m.f
    fl = f.flags[pfns]
    ok = ((fl & PG_lru) != 0) & ((fl & PG_isolated) == 0)
    # the same frame twice in one request: only the first isolation succeeds
    if ok.any() and not unique:
        _, first = np.unique(pfns, return_index=True)
        dup = np.ones(pfns.size, bool)
        dup[first] = False
        ok &= ~dup
    got = pfns[ok]
    f.flags[got] = (f.flags[got] & ~PG_lru) | PG_isolated
    f.refcount[got] += 1
    if hold:
        _inflight(m, got, +1)
    m.isolated_pages += got.size
    return ok


def putback(m: Machine, pfns: np.ndarray, hold: bool = True) -> None:
    """putback_movable_pages(): back on the LRU; a page whose last mapping went while
    it was isolated is freed now (its isolation held the last reference)."""
    if pfns.size == 0:
        return
    f = m.f
    f.flags[pfns] = (f.flags[pfns] & ~PG_isolated) | PG_lru
    f.refcount[pfns] -= 1
    if hold:
        _inflight(m, pfns, -1)
    m.isolated_pages -= pfns.size
    dead = pfns[f.refcount[pfns] <= 0]
    if dead.size:
        m.free_frames(dead)


def _inflight(m: Machine, pfns: np.ndarray, d: int, kinds=None, maps=None) -> None:
    """An in-flight migration holds the page's anon_vma alive (modern refcount rule)."""
    f = m.f
    if kinds is None:
        kinds = f.kind[pfns]
    anon = kinds == K_ANON
    if not anon.any():
        return
    mp = (f.mapping[pfns] if maps is None else maps)
    ids, counts = distinct_counts(mp if anon.all() else mp[anon])
    for i, c in zip(ids.tolist(), counts.tolist()):
        av = m.mappings.get(i)
        if av is not None:
            av.inflight += d * c
            if av.inflight <= 0 and not av.vmas:
                m.mappings.pop(i, None)


# ----------------------------------------------------------------- the core

def migrate_pairs_gen(m: Machine, pfns: np.ndarray, targets: np.ndarray, *, reason: str,
                      strict_node: bool, cpu: int, allowed=None, chunk=None, job=None,
                      mode: str = "sync", isolated: bool = False, fail_on_enomem=False,
                      unique: bool = False):
    """Migrate pfns[i] to targets[i]. Returns an int64 array: the node each page now
    sits on, or -errno (-EBUSY isolation failed, -EAGAIN still busy after every pass
    (pinned), -EPERM mlocked in 2.6.17, -ENOMEM no frame on the target).
    A generator: it yields between chunks so a job can interleave; closing it
    puts every page it still holds back."""
    pfns = np.asarray(pfns, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    n = pfns.size
    res = np.full(n, -EBUSY, np.int64)
    if n == 0:
        return res
    # the anon_vma reference matters only when something can run while pages are
    # isolated: a job that yields between chunks (or pages isolated by the caller)
    hold = bool(chunk) or isolated
    if isolated:
        held = np.ones(n, bool)
    else:
        held = isolate(m, pfns, unique, hold)
    # every page held (the usual case): chunks are slices, no index arrays
    todo = None if held.all() else np.flatnonzero(held)
    ntodo = n if todo is None else todo.size
    step = ntodo if not chunk else int(chunk)
    stats = {"success": 0, "fail": 0}
    pos = 0
    enomem = False
    try:
        while pos < ntodo:
            end = min(ntodo, pos + max(step, 1))
            sel = slice(pos, end) if todo is None else todo[pos:end]
            size = end - pos
            pos = end
            if enomem:
                res[sel] = -ENOMEM
                putback(m, pfns[sel], hold)
                held[sel] = False
                continue
            out = _migrate_chunk(m, pfns[sel], targets[sel], strict_node=strict_node,
                                 cpu=cpu, allowed=allowed, mode=mode, reason=reason,
                                 stats=stats, hold=hold)
            res[sel] = out
            held[sel] = False
            if (out == -ENOMEM).any() and fail_on_enomem:
                enomem = True
            if job is not None:
                job.done += size
            if pos < ntodo:
                yield size
    finally:
        left = np.flatnonzero(held)
        if left.size:
            putback(m, pfns[left], hold)
        m.vmstat_counts["pgmigrate_success"] += stats["success"]
        m.vmstat_counts["pgmigrate_fail"] += stats["fail"]
    return res


def _migrate_chunk(m: Machine, pfns: np.ndarray, targets: np.ndarray, *, strict_node: bool,
                   cpu: int, allowed, mode: str, reason: str, stats: dict,
                   hold: bool = True) -> np.ndarray:
    """One migrate_pages() batch over isolated frames: the lock/writeback/reference
    checks with the era's retry passes, allocation on the target, copy, rmap redirect,
    immediate free of the source. Failed frames are put back."""
    f = m.f
    k = pfns.size
    out = np.zeros(k, np.int64)
    fail = _chunk_failures(m, pfns, mode)
    # a page whose every mapping went while it was isolated: freed, nothing to copy
    orphan = f.mapcount[pfns] == 0
    if orphan.any():
        orphan &= (f.kind[pfns] == K_ANON) & (f.refcount[pfns] == 1)
        fail[orphan] = 0
        if orphan.any():
            op = pfns[orphan]
            out[orphan] = targets[orphan]
            if hold:
                _inflight(m, op, -1)
            m.isolated_pages -= op.size
            f.refcount[op] = 0
            m.free_frames(op)
    else:
        orphan = None
    go = fail == 0
    if orphan is not None:
        go &= ~orphan
    gi = None if go.all() else np.flatnonzero(go)  # None: every page (the usual case)
    dst, dnodes = _alloc_targets(m, targets if gi is None else targets[gi], strict_node,
                                 allowed)
    if gi is None:
        ok = dst >= 0
        fail[~ok] = -ENOMEM
        okpos = None if ok.all() else np.flatnonzero(ok)
    else:
        ok = dst >= 0
        fail[gi[~ok]] = -ENOMEM
        okpos = gi[ok]
    src = pfns if okpos is None else pfns[okpos]
    if okpos is not None:
        dst, dnodes = dst[ok], dnodes[ok]
    if src.size:
        kinds, maps = _copy_frames(m, src, dst)
        from ..runtime.clock import migrate_cost_ns
        from . import rmap
        from .page_alloc import account_alloc

        rmap.redirect(m, src, dst)
        snodes = m.node_of(src)
        account_alloc(m, dnodes, targets if okpos is None else targets[okpos], cpu)
        m.clock_ns += migrate_cost_ns(m, snodes, dnodes)
        m.record_traffic(snodes, dnodes)
        if hold:
            _inflight(m, src, -1, kinds, maps)
        m.isolated_pages -= src.size
        m.free_frames(src)
        if okpos is None:
            out[:] = dnodes
        else:
            out[okpos] = dnodes
        stats["success"] += int(src.size)
    bad = fail != 0
    if bad.any():
        out[bad] = fail[bad]
        putback(m, pfns[bad], hold)
        stats["fail"] += int((bad & (fail != -ENOMEM)).sum())
    return out


def _chunk_failures(m: Machine, pfns: np.ndarray, mode: str) -> np.ndarray:
    """Per page: 0, or the error its migration ends with after every pass."""
    f = m.f
    fail = np.zeros(pfns.size, np.int64)
    fl = f.flags[pfns]
    special = (fl & (PG_pinned | PG_locked | PG_writeback | PG_mlocked)) != 0
    if not special.any():
        return fail
    # long-term pins: extra references make the refcount freeze fail on every pass
    fail[(fl & PG_pinned) != 0] = -EAGAIN
    if m.era.mlocked_migration == "eperm":
        # 2.6.16/17: try_to_unmap() refuses VM_LOCKED mappings: permanent -EPERM
        fail[((fl & PG_mlocked) != 0) & (fail == 0)] = -EPERM
    busy_lock = ((fl & (PG_locked | PG_writeback)) != 0) & (fail == 0)
    if mode == "async":
        fail[busy_lock] = -EAGAIN  # MIGRATE_ASYNC never waits on the lock or writeback
    elif busy_lock.any():
        # MIGRATE_SYNC: the lock holder / the I/O finishes while we wait (from pass 3
        # in 2006; in the sync passes of the modern split)
        w = pfns[busy_lock]
        f.flags[w] &= ~(PG_locked | PG_writeback)
        m.clock_ns += int(busy_lock.sum()) * m.cost.wait_ns
    return fail


def _alloc_targets(m: Machine, targets: np.ndarray, strict_node: bool, allowed
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A destination frame per page (-1 when the target has none) and its node:
    __GFP_THISNODE today, the target's zonelist in 2006."""
    from .page_alloc import alloc_frames_runs, run_nodes, zonelist

    dst = np.full(targets.size, -1, np.int64)
    dnodes = np.full(targets.size, -1, np.int64)
    ts = distinct(targets)
    for t in ts:
        sel = None if ts.size == 1 else np.flatnonzero(targets == t)
        n = targets.size if sel is None else sel.size
        if strict_node:
            order = [int(t)] if m.node_has_memory(int(t)) else []
            wm = "min"
        else:
            order = zonelist(m, int(t), allowed)
            wm = "low"
        if not order:
            continue
        got, runs = alloc_frames_runs(m, n, order, wmark=wm)
        if sel is None:
            dst[: got.size] = got
            dnodes[: got.size] = run_nodes(runs)
        else:
            dst[sel[: got.size]] = got
            dnodes[sel[: got.size]] = run_nodes(runs)
    return dst, dnodes


def _copy_frames(m: Machine, src: np.ndarray, dst: np.ndarray):
    """Copy contents and flags to the new frames; the isolation reference is dropped.
    Returns the kinds and mappings read (the caller needs them)."""
    f = m.f
    kinds = f.kind[src]
    maps = f.mapping[src]
    f.kind[dst] = kinds
    f.mapping[dst] = maps
    for name in ("index", "mapcount", "content"):
        arr = getattr(f, name)
        arr[dst] = arr[src]
    f.refcount[dst] = f.refcount[src] - 1
    f.flags[dst] = (f.flags[src] & ~(PG_isolated | PG_locked | PG_writeback)) | PG_lru
    return kinds, maps


# ----------------------------------------------------------------- move_pages(2)

def lookup_pages(m: Machine, p, addrs: np.ndarray):
    """Per address: (vma index or -1, pte value or -1, contained) for the process."""
    vmas = p.vmas
    n = addrs.size
    vidx = np.full(n, -1, np.int64)
    pte = np.full(n, -1, np.int64)
    if not vmas:
        return vidx, pte, vmas
    starts = np.array([v.start for v in vmas], dtype=np.int64)
    ends = np.array([v.end for v in vmas], dtype=np.int64)
    i = np.searchsorted(starts, addrs, side="right") - 1
    inside = (i >= 0) & (addrs < ends[np.maximum(i, 0)])
    vidx[inside] = i[inside]
    for j in distinct(vidx[inside]):
        sel = np.flatnonzero(vidx == j)
        v = vmas[int(j)]
        offs = (addrs[sel] - v.start) >> m.page_shift
        pte[sel] = v.pte[offs]
    return vidx, pte, vmas


def page_status(m: Machine, p, addrs: np.ndarray, *, query: bool, targets=None,
                move_all: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The lookup rules of kernel-semantics.md 1.2 for the era, vectorised: returns
    (status, pfn) where status is >= 0 for a page to queue (its current node) or the
    final status, and a separate mask of "queue" entries is derived by the caller."""
    vidx, pte, vmas = lookup_pages(m, p, addrs)
    n = addrs.size
    status = np.zeros(n, np.int64)
    era = m.era
    if era.status_rules == "2006":
        # find_vma() without a containment check: only above the last VMA is -EFAULT;
        # a hole below some VMA walks page tables and finds nothing: -ENOENT
        last_end = max((v.end for v in vmas), default=0)
        status[:] = -ENOENT
        has = pte >= 0
        status[addrs >= last_end] = -EFAULT
        # PFN-mapped frames have no struct page for follow_page(): -ENOENT;
        # the zero page is PageReserved: -ENOENT
        pfnmap = np.zeros(n, bool)
        for j in distinct(vidx[vidx >= 0]):
            if vmas[int(j)].pfnmap:
                pfnmap |= vidx == j
        real = has & ~pfnmap & (pte != m.zero_pfn)
        status[real] = m.node_of(pte[real])
        return status, np.where(real, pte, -1)
    # modern (6.12+): vma_lookup + folio_walk
    status[:] = -EFAULT
    inv = vidx >= 0
    migr = np.zeros(n, bool)
    pfnmap = np.zeros(n, bool)
    for j in distinct(vidx[inv]):
        v = vmas[int(j)]
        sel = vidx == j
        if v.pfnmap:
            pfnmap |= sel
        if m.vma_migratable(v, "move_pages"):
            migr |= sel
    if query:
        ok = inv
        status[ok & (pte < 0)] = -ENOENT
        status[ok & pfnmap] = -ENOENT  # no folio behind a PFN map
    else:
        ok = inv & migr
        status[ok & (pte < 0)] = -ENOENT
    present = ok & (pte >= 0) & ~(pfnmap & query)
    zero = present & (pte == m.zero_pfn)
    status[zero] = -EFAULT
    real = present & ~zero
    status[real] = m.node_of(pte[real])
    return status, np.where(real, pte, -1)


def move_pages(m: Machine, pid: int, pages, nodes=None, flags: int = 0, *, caller=None
               ) -> MoveStatus:
    return m.run(move_pages_gen(m, pid, pages, nodes, flags, caller=caller))


def _check_move_pages_call(m: Machine, pid, flags, caller):
    if not m.era.has_move_pages:
        raise oserror(ENOSYS, f"move_pages: not implemented in kernel {m.era.name} "
                              f"(added in 2.6.18)")
    if not isinstance(flags, (int, np.integer)) or flags & ~(MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
        raise oserror(EINVAL, f"move_pages: flags {flags!r} may only hold MPOL_MF_MOVE and "
                              f"MPOL_MF_MOVE_ALL")
    cred = m.credentials(caller)
    if flags & MPOL_MF_MOVE_ALL and not cred.cap_sys_nice:
        raise oserror(EPERM, "move_pages: MPOL_MF_MOVE_ALL needs CAP_SYS_NICE")
    p = m.lookup(pid, caller)
    if p is None:
        raise oserror(ESRCH, f"move_pages: no process {pid}")
    m.check_access(cred, p, "move_pages")
    if not p.has_mm:
        raise oserror(EINVAL, f"move_pages: pid {p.pid} has no mm (kernel thread)")
    return p


def _as_array(x, what: str) -> np.ndarray:
    try:
        a = np.asarray(list(x) if not isinstance(x, np.ndarray) else x)
    except TypeError:
        raise oserror(EFAULT, f"move_pages: {what} is not an array") from None
    if a.size == 0:
        return np.zeros(0, np.int64)
    if a.dtype.kind not in "iu":
        raise oserror(EFAULT, f"move_pages: {what} holds something other than integers")
    return a.astype(np.int64)


def move_pages_gen(m: Machine, pid: int, pages, nodes=None, flags: int = 0, *, caller=None,
                   chunk=None, job=None):
    p = _check_move_pages_call(m, pid, flags, caller)
    addrs = _as_array(pages, "pages")
    n = addrs.size
    st = MoveStatus([None] * n)
    if job is not None:
        job.total = n
    if nodes is None:
        status, _ = page_status(m, p, addrs, query=True)
        st[:] = status.tolist()
        st.ret = 0
        if job is not None:
            job.done = n
        return st
    tg = _as_array(nodes, "nodes")
    if tg.size < n:
        raise oserror(EFAULT, f"move_pages: nodes has {tg.size} entries for {n} pages")
    tg = tg[:n]
    move_all = bool(flags & MPOL_MF_MOVE_ALL)
    if job is not None:
        # what fails before any page moves fails now: a bad first node (modern), any
        # bad node (2006 validated them all up front)
        nerr = _node_errors(m, p, tg[:1] if m.era.move_pages_batching else tg)
        bad = np.flatnonzero(nerr)
        if bad.size:
            _node_error(m, p, tg, int(bad[0]), int(-nerr[bad[0]]))
        yield 0  # the call's checks are done: Machine.start() returns here
    if m.era.move_pages_batching:
        return (yield from _move_pages_modern(m, p, addrs, tg, move_all, st, chunk, job))
    return (yield from _move_pages_2006(m, p, addrs, tg, move_all, st, chunk, job))


def _node_errors(m: Machine, p, tg: np.ndarray) -> np.ndarray:
    """Per entry: 0, -ENODEV (bad or memoryless node), -EACCES (outside the target
    task's cpuset), checked in that order."""
    err = np.zeros(tg.size, np.int64)
    mem = np.zeros(MAX_NUMNODES, bool)
    mem[list(m.memory_nodes())] = True
    inrange = (tg >= 0) & (tg < MAX_NUMNODES)
    bad = ~inrange
    bad[inrange] = ~mem[tg[inrange]]
    err[bad] = -ENODEV
    allowed = np.zeros(MAX_NUMNODES, bool)
    allowed[list(p.mems_allowed)] = True
    acc = ~bad
    acc[~bad] = ~allowed[tg[~bad]]
    err[acc] = -EACCES
    return err


def _classify(m: Machine, p, addrs, tg, move_all):
    """Status of each entry against the current state; queue = to be migrated."""
    f = m.f
    status, pfn = page_status(m, p, addrs, query=False)
    real = pfn >= 0
    queue = real & (status != tg)
    status[real & (status == tg)] = tg[real & (status == tg)]
    if not move_all:
        shared = queue & (f.mapcount[np.maximum(pfn, 0)] > 1)
        status[shared] = -EACCES
        queue &= ~shared
    if m.era.status_rules == "2006":
        # 2.6.18's check_range had no VMA check: isolate whatever follow_page found
        pass
    fl = f.flags[np.maximum(pfn, 0)]
    unisol = queue & (((fl & PG_lru) == 0) | ((fl & PG_isolated) != 0))
    status[unisol] = -EBUSY
    queue &= ~unisol
    return status, pfn, queue


def _predict_failures(m: Machine, pfn: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Failures a migration of these queued pages will have, known before it runs:
    long-term pins (-EAGAIN on every pass) and, in entry order, pages beyond what
    each target node can supply (-ENOMEM)."""
    f = m.f
    pred = np.zeros(pfn.size, np.int64)
    pred[(f.flags[pfn] & PG_pinned) != 0] = -EAGAIN
    ok = pred == 0
    for node in distinct(t):
        sel = ok & (t == node)
        avail = m.node_available(int(node), "min")
        over = sel & (np.cumsum(sel) > avail)
        pred[over] = -ENOMEM
    return pred


def _first_queued(pfn: np.ndarray, queue: np.ndarray, nr_frames: int) -> np.ndarray:
    """Per entry: index of the first queued entry with the same frame (or a large
    number when none)."""
    n = pfn.size
    big = np.iinfo(np.int64).max
    out = np.full(n, big, np.int64)
    qidx = np.flatnonzero(queue)
    if qidx.size == 0:
        return out
    if not has_duplicates(pfn[pfn >= 0], nr_frames):
        return out  # no frame repeats: the common case
    u, first = np.unique(pfn[qidx], return_index=True)
    pos = np.clip(np.searchsorted(u, pfn), 0, u.size - 1)
    hit = (pfn >= 0) & (u[pos] == pfn)
    out[hit] = qidx[first[pos[hit]]]
    return out


def _move_pages_modern(m: Machine, p, addrs, tg, move_all, st, chunk, job):
    """do_pages_move(): consecutive entries with the same node form a batch; any entry
    that is not queued (error or already there) writes its status and flushes the
    pending batch; a batch with failures stops the call: return = failures of that
    batch + entries never attempted; its statuses stay unwritten."""
    n = addrs.size
    out = np.full(n, UNWRITTEN, np.int64)
    nerr = _node_errors(m, p, tg)
    bad = np.flatnonzero(nerr)
    stop = int(bad[0]) if bad.size else n  # the first bad node ends the walk
    node_error = int(-nerr[stop]) if bad.size else 0
    i0 = 0
    ret = 0
    # an entry whose frame repeats an earlier one must see the state after the
    # earlier flush, so the walk is cut into rounds at repeated frames
    while i0 < stop:
        status, pfn, queue = _classify(m, p, addrs[i0:stop], tg[i0:stop], move_all)
        seg = stop - i0
        fq = _first_queued(pfn, queue, m.nr_frames)
        dup = fq < np.arange(seg)
        cut = int(np.argmax(dup)) if dup.any() else seg
        t = tg[i0:i0 + seg]
        if cut < seg:
            f0 = int(fq[cut])
            # the repeat of a page still pending in the current batch fails to
            # isolate: -EBUSY, which flushes the batch (same node, no flush between)
            c1 = cut - 1
            pending = (queue[c1] and t[c1] == t[cut] and f0 <= c1
                       and not (~queue[f0:cut]).any() and (t[f0:cut] == t[cut]).all())
            if pending:
                status[cut] = -EBUSY
                queue[cut] = False
                cut += 1
        status, pfn, queue, t = status[:cut], pfn[:cut], queue[:cut], t[:cut]
        # a batch starts at a queued entry not preceded by a queued entry of its node
        prev_q = np.concatenate([[False], queue[:-1]])
        prev_t = np.concatenate([[-1], t[:-1]])
        bid = np.cumsum(queue & ~(prev_q & (prev_t == t))) - 1
        qi = np.flatnonzero(queue)
        pred = _predict_failures(m, pfn[qi], t[qi])
        if (pred < 0).any():
            # batches after the first failing one are never looked at
            fb = int(bid[qi[np.argmax(pred < 0)]])
            qi = qi[bid[qi] <= fb]
        res = yield from migrate_pairs_gen(m, pfn[qi], t[qi], reason="syscall",
                                           strict_node=True, cpu=p.node, chunk=chunk,
                                           job=job, fail_on_enomem=True, unique=True)
        failed = res < 0
        seg_out = out[i0:i0 + cut]
        nonq = ~queue
        if failed.any():
            fb = int(bid[qi[np.argmax(failed)]])
            in_fb = bid[qi] == fb
            last = int(qi[in_fb][-1])
            trig = last + 1  # the entry after the batch flushed it
            upto = nonq.copy()
            upto[trig + 1:] = False
            seg_out[upto] = status[upto]
            good = qi[bid[qi] < fb]
            seg_out[good] = t[good]
            if (res[in_fb] == -ENOMEM).any():
                raise oserror(ENOMEM, f"move_pages: node {int(t[last])} has no free "
                                      f"page for the migration")
            nf = int(failed[in_fb].sum())
            if trig < cut and not queue[trig]:
                ret = nf + (n - (i0 + trig)) - 1  # entry trig was accounted for
            else:
                ret = nf + (n - (i0 + trig))
            return _status_list(out, ret)
        seg_out[nonq] = status[nonq]
        seg_out[qi] = t[qi]
        i0 += cut
    if node_error:
        _node_error(m, p, tg, stop, node_error)
    return _status_list(out, ret)


def _node_error(m: Machine, p, tg: np.ndarray, i: int, err: int):
    raise oserror(err, f"move_pages: node {int(tg[i])} "
                  + ("has no memory or does not exist" if err == ENODEV else
                     f"is not in pid {p.pid}'s cpuset ({sorted(p.mems_allowed)})"))


UNWRITTEN = -(1 << 40)


def _status_list(out: np.ndarray, ret: int) -> MoveStatus:
    """The status array as Linux leaves it: entries never written are None."""
    st = MoveStatus(out.tolist())
    for i in np.flatnonzero(out == UNWRITTEN).tolist():
        st[i] = None
    st.ret = ret
    return st


def _move_pages_2006(m: Machine, p, addrs, tg, move_all, st, chunk, job):
    """2.6.18 do_move_pages(): every node is validated before anything moves, every
    page is looked up and isolated, then one migrate_pages() call allocates each
    page's own target (alloc_pages_node with fallback) and the callback writes the
    node actually used or the page's error."""
    nerr = _node_errors(m, p, tg)
    bad = np.flatnonzero(nerr)
    if bad.size:
        e = int(-nerr[bad[0]])
        raise oserror(e, f"move_pages: node {int(tg[bad[0]])} "
                      + ("is not online" if e == ENODEV else "is not in the cpuset"))
    status, pfn, queue = _classify(m, p, addrs, tg, move_all)
    qi = np.flatnonzero(queue)
    if qi.size == 0:
        if m.era.move_pages_empty_enoent:
            raise oserror(ENOENT, "move_pages: no page needed moving (2.6.18 answers ENOENT)")
    res = yield from migrate_pairs_gen(m, pfn[qi], tg[qi], reason="syscall",
                                       strict_node=False, cpu=p.node, chunk=chunk, job=job)
    status[qi] = res
    st[:] = status.tolist()
    st.ret = 0
    return st
