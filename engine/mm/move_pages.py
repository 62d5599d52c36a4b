"""move_pages(2) (mm/migrate.c do_pages_move(), do_pages_stat(); 2.6.18's
do_move_pages()).

Plan, then execute: `plan_move_pages()` checks the call, looks up every entry and
decides, against the machine as it is, which entries are queued for migration, in
which batch, and the status of every other one (repeated pages included: a page
pending in the current batch fails to isolate, -EBUSY; once flushed it is found
on its new node). The call and its rehearsal then run the queued pairs through
the migration core (`run_pairs` with `Execute` or `Rehearse`) and turn the
outcomes into the status array and return value with one function, `finish()`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..constants import (
    EACCES,
    EBUSY,
    EFAULT,
    EINVAL,
    ENODEV,
    ENOENT,
    ENOMEM,
    ENOSYS,
    EPERM,
    ESRCH,
    MAX_NUMNODES,
    MPOL_MF_MOVE,
    MPOL_MF_MOVE_ALL,
    VM_IO,
    VM_LOCKED,
    VM_PFNMAP,
    oserror,
)
from ..vec import distinct, previous_occurrence
from .memory import vma_index
from .migrate import UNTRIED, Execute, MigrateControl, PairRun, isolatable, run_pairs
from .state import VMA, Kernel, Process

UNWRITTEN = -(1 << 41)  # a status entry Linux leaves unwritten


class MoveStatus(list):
    """move_pages' status array: one entry per page (node, negative errno, or None
    where Linux leaves the entry unwritten); `.ret` is the syscall's return value
    and `.array` the statuses as an int64 array (UNWRITTEN where None)."""

    ret: int = 0
    array: np.ndarray

    @classmethod
    def of(cls, arr: np.ndarray, ret: int) -> MoveStatus:
        obj = arr.astype(object)
        obj[arr == UNWRITTEN] = None
        st = cls(obj.tolist())
        st.ret = int(ret)
        st.array = arr
        return st

    def __repr__(self) -> str:
        return f"MoveStatus({list.__repr__(self)}, ret={self.ret})"


def vma_migratable(k: Kernel, v: VMA, path: str) -> bool:
    """vma_migratable(): VM_IO/VM_PFNMAP never (since 2.6.21 also for move_pages;
    2.6.18's move_pages had no VMA check); 2.6.18-20 mempolicy paths skip VM_LOCKED."""
    era = k.era
    if path == "move_pages" and era.status_rules == "2006":
        return True
    if v.flags & (VM_IO | VM_PFNMAP):
        return False
    if path in ("mbind", "migrate_pages") and v.flags & VM_LOCKED and \
            era.mlocked_migration == "move_pages_only":
        return False
    return True


# ----------------------------------------------------------------- lookups

def lookup_pages(k: Kernel, p: Process, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per address: (index of its VMA or -1, page-table entry or -1). One binary search
    over the VMAs, one gather from the mm's page table."""
    vidx = vma_index(p, addrs)
    pte = np.full(addrs.size, -1, np.int64)
    inside = vidx >= 0
    if inside.any():
        vs = distinct(vidx[inside])
        if vs.size == 1:  # one VMA (the usual case): its range makes the gather cheap
            v = p.vmas[int(vs[0])]
            pte[inside] = v.ptes((addrs[inside] - v.start) >> k.page_shift)
        else:
            pte[inside] = p.pt.get(addrs[inside] >> k.page_shift)
    return vidx, pte


def page_status(k: Kernel, p: Process, addrs: np.ndarray, *, query: bool
                ) -> tuple[np.ndarray, np.ndarray]:
    """The lookup rules of kernel-semantics.md 1.2 for the era: (status, pfn) where
    status is the page's node for a page found (pfn >= 0) or its final -errno."""
    vidx, pte = lookup_pages(k, p, addrs)
    n = addrs.size
    status = np.zeros(n, np.int64)
    vmas = p.vmas
    pfnmap_v = np.fromiter((v.pfnmap for v in vmas), bool, len(vmas))
    inv = vidx >= 0
    pfnmap = np.zeros(n, bool)
    pfnmap[inv] = pfnmap_v[vidx[inv]]
    if k.era.status_rules == "2006":
        # find_vma() without a containment check: only above the last VMA is -EFAULT;
        # a hole below some VMA walks page tables and finds nothing: -ENOENT
        last_end = vmas[-1].end if vmas else 0
        status[:] = -ENOENT
        status[addrs >= last_end] = -EFAULT
        # PFN-mapped frames have no struct page for follow_page(), and the zero page
        # is PageReserved: both -ENOENT
        real = (pte >= 0) & ~pfnmap & (pte != k.zero_pfn)
        status[real] = k.node_of(pte[real])
        return status, np.where(real, pte, -1)
    # modern (6.12+): vma_lookup + folio_walk
    status[:] = -EFAULT
    if query:
        ok = inv
        status[ok & (pte < 0)] = -ENOENT
        status[ok & pfnmap] = -ENOENT  # no folio behind a PFN map
    else:
        migr_v = np.fromiter((vma_migratable(k, v, "move_pages") for v in vmas), bool,
                             len(vmas))
        ok = inv.copy()
        ok[inv] = migr_v[vidx[inv]]
        status[ok & (pte < 0)] = -ENOENT
    present = ok & (pte >= 0) & ~(pfnmap & query)
    zero = present & (pte == k.zero_pfn)
    status[zero] = -EFAULT
    real = present & ~zero
    status[real] = k.node_of(pte[real])
    return status, np.where(real, pte, -1)


# ----------------------------------------------------------------- checks

def check_call(k: Kernel, pid, flags, caller) -> Process:
    """kernel_move_pages()'s whole-call checks, in its order."""
    if not k.era.has_move_pages:
        raise oserror(ENOSYS, f"move_pages: not implemented in kernel {k.era.name} "
                              f"(added in 2.6.18)")
    if isinstance(flags, bool) or not isinstance(flags, (int, np.integer)) or \
            flags & ~(MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
        raise oserror(EINVAL, f"move_pages: flags {flags!r} may only hold MPOL_MF_MOVE and "
                              f"MPOL_MF_MOVE_ALL")
    cred = k.credentials(caller)
    if flags & MPOL_MF_MOVE_ALL and not cred.cap_sys_nice:
        raise oserror(EPERM, "move_pages: MPOL_MF_MOVE_ALL needs CAP_SYS_NICE")
    p = k.lookup(pid, caller)
    if p is None:
        raise oserror(ESRCH, f"move_pages: no process {pid}")
    k.check_access(cred, p, "move_pages")
    if not p.has_mm:
        raise oserror(EINVAL, f"move_pages: pid {p.pid} has no mm (kernel thread)")
    return p


def as_int_array(x, what: str) -> np.ndarray:
    """An array argument (a C array of the syscall): integers, else EFAULT."""
    try:
        a = np.asarray(list(x) if not isinstance(x, np.ndarray) else x)
    except TypeError:
        raise oserror(EFAULT, f"move_pages: {what} is not an array") from None
    if a.size == 0:
        return np.zeros(0, np.int64)
    if a.dtype.kind not in "iu" or a.ndim != 1:
        raise oserror(EFAULT, f"move_pages: {what} holds something other than integers")
    if a.dtype.kind == "u" and a.size and int(a.max()) >= 1 << 63:
        raise oserror(EFAULT, f"move_pages: {what} holds an address beyond the user range")
    return a.astype(np.int64)


def node_errors(k: Kernel, p: Process, tg: np.ndarray) -> np.ndarray:
    """Per entry: 0, -ENODEV (no such node, or no memory), -EACCES (outside the
    target task's cpuset), checked in that order."""
    err = np.zeros(tg.size, np.int64)
    mem = np.zeros(MAX_NUMNODES, bool)
    mem[list(k.memory_nodes())] = True
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


def node_error(p: Process, node: int, err: int, modern: bool) -> OSError:
    if err == ENODEV:
        why = "has no memory or does not exist" if modern else "is not online"
    else:
        why = f"is not in pid {p.pid}'s cpuset ({sorted(p.mems_allowed)})"
    return oserror(err, f"move_pages: node {node} {why}")


# ----------------------------------------------------------------- the plan

@dataclass
class MovePlan:
    """What move_pages will do, entry by entry, before anything moves."""

    p: Process
    targets: np.ndarray  # per entry
    status: np.ndarray  # per entry: the status of an entry that is not queued
    pfn: np.ndarray  # per entry: the frame found (-1: none)
    node_now: np.ndarray  # per entry: the node its page is on when the walk reaches it
    queue: np.ndarray  # per entry: queued for migration
    batch: np.ndarray  # per entry: its batch (-1: not queued)
    stop: int  # entries [0, stop) are walked; stop < n: entry stop has a bad node
    stop_error: OSError | None  # that entry's error
    modern: bool
    error: OSError | None = None  # a whole-call error known up front (2006 ENOENT)

    @property
    def qi(self) -> np.ndarray:
        return np.flatnonzero(self.queue)

    def control(self, k: Kernel) -> MigrateControl:
        if self.modern:
            return MigrateControl("syscall", thisnode=True, cpu=self.p.node, batches=True)
        return MigrateControl("syscall", thisnode=False, cpu=self.p.node)

    def pair_run(self, chunk: int | None) -> PairRun:
        """Queued entries in order. Modern: a page queued again (in a later batch)
        moves again from where the first move left it; 2006: one migrate_pages()
        call, where a page listed twice fails to isolate the second time (-EBUSY)."""
        if not self.modern:
            return PairRun(chunk=chunk)
        return PairRun(chunk=chunk, batch=self.batch[self.qi], repeats=True)


def plan_move_pages(k: Kernel, pid, pages, nodes, flags: int = 0, *, caller=None) -> MovePlan:
    """The checks and the per-entry plan of move_pages with target nodes."""
    p = check_call(k, pid, flags, caller)
    addrs = as_int_array(pages, "pages")
    n = addrs.size
    tg = as_int_array(nodes, "nodes")
    if tg.size < n:
        raise oserror(EFAULT, f"move_pages: nodes has {tg.size} entries for {n} pages")
    tg = tg[:n]
    move_all = bool(flags & MPOL_MF_MOVE_ALL)
    modern = bool(k.era.move_pages_batching)
    nerr = node_errors(k, p, tg)
    bad = np.flatnonzero(nerr)
    if bad.size and not modern:
        # 2.6.18 validated every node before anything moved
        raise node_error(p, int(tg[bad[0]]), int(-nerr[bad[0]]), modern)
    stop = int(bad[0]) if bad.size else n
    stop_error = node_error(p, int(tg[stop]), int(-nerr[stop]), modern) if bad.size else None
    status = np.full(n, UNWRITTEN, np.int64)
    pfn = np.full(n, -1, np.int64)
    node_now = np.full(n, -1, np.int64)
    queue = np.zeros(n, bool)
    st, pf, nn, q = classify(k, p, addrs[:stop], tg[:stop], move_all, modern)
    status[:stop], pfn[:stop], node_now[:stop], queue[:stop] = st, pf, nn, q
    batch = np.full(n, -1, np.int64)
    if modern and queue.any():
        # do_pages_move(): consecutive queued entries with the same node are a batch
        prev_q = np.concatenate([[False], queue[:-1]])
        prev_t = np.concatenate([[-1], tg[:-1]])
        bid = np.cumsum(queue & ~(prev_q & (prev_t == tg))) - 1
        batch[queue] = bid[queue]
    plan = MovePlan(p, tg, status, pfn, node_now, queue, batch, stop, stop_error, modern)
    if not modern and not queue.any() and k.era.move_pages_empty_enoent:
        plan.error = oserror(ENOENT, "move_pages: no page needed moving (2.6.18 answers "
                                     "ENOENT)")
    return plan


def classify(k: Kernel, p: Process, addrs: np.ndarray, tg: np.ndarray, move_all: bool,
             modern: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """add_folio_for_migration() for every entry: (status, pfn, node when looked up,
    queued). A page already on its node gives its node; a shared page without
    MOVE_ALL -EACCES; a page that cannot be isolated -EBUSY."""
    f = k.f
    status, pfn = page_status(k, p, addrs, query=False)
    real = pfn >= 0
    node0 = status.copy()
    shared = real & (f.mapcount[np.maximum(pfn, 0)] > 1) & (not move_all)
    iso_ok = real & isolatable(k, np.maximum(pfn, 0), unique=True)
    queue = _decide(real, node0, tg, shared, iso_ok, status)
    node_now = np.where(real, node0, -1)
    if modern and real.any():
        _resolve_repeats(pfn, real, node0, tg, shared, iso_ok, status, queue, node_now)
    return status, pfn, node_now, queue


def _decide(real, node_now, tg, shared, iso_ok, status, pending=None) -> np.ndarray:
    """The order of add_folio_for_migration(): already there (status = node), shared
    (-EACCES), not isolatable or pending in this batch (-EBUSY), else queued."""
    already = real & (node_now == tg)
    status[already] = tg[already]
    acc = real & ~already & shared
    status[acc] = -EACCES
    busy = real & ~already & ~acc & (~iso_ok if pending is None else (~iso_ok | pending))
    status[busy] = -EBUSY
    return real & ~already & ~acc & ~busy


def _resolve_repeats(pfn, real, node0, tg, shared, iso_ok, status, queue, node_now) -> None:
    """Entries whose page appeared earlier. Until the earlier entry's batch is
    flushed the page is isolated (a repeat fails with -EBUSY); after it the page sits
    on that batch's node, on a new frame that isolates. Outcomes depend only on
    earlier entries, so iterating from the first-look answer fixes at least the
    earliest wrong entry each round: a few rounds, each one pass over the arrays."""
    prev = previous_occurrence(np.where(real, pfn, -1 - np.arange(pfn.size)))
    rep = np.flatnonzero(prev >= 0)
    if rep.size == 0:
        return
    n = pfn.size
    key = np.where(real, pfn, -1 - np.arange(n))
    order = np.argsort(key, kind="stable")
    grp_start = np.ones(n, bool)
    grp_start[1:] = key[order][1:] != key[order][:-1]
    first_of = np.maximum.accumulate(np.where(grp_start, np.arange(n), 0))
    for _ in range(rep.size + 1):
        # runs of the current answer: queued entries of one node, back to back
        joins = np.zeros(n, bool)
        joins[1:] = queue[1:] & queue[:-1] & (tg[1:] == tg[:-1])
        runid = np.cumsum(queue & ~joins)
        # the last queued earlier occurrence of each entry's page
        qpos = np.where(queue[order], order, -1)
        lastq = _segmented_running_max(qpos, first_of)  # up to and including self
        before = np.full(n, -1, np.int64)
        excl = np.concatenate([[-1], lastq[:-1]])
        excl[grp_start] = -1
        before[order] = excl
        lq = before[rep]
        has = lq >= 0
        lq0 = np.maximum(lq, 0)
        prev_j = np.maximum(rep - 1, 0)
        pend = has & (rep > 0) & queue[prev_j] & (tg[prev_j] == tg[rep]) & \
            (runid[prev_j] == runid[lq0])
        # flushed: the page sits on the earlier batch's node; pending: still where it was
        nb = np.where(has, np.where(pend, node_now[lq0], tg[lq0]), node0[rep])
        st = status[rep].copy()
        q = _decide(real[rep], nb, tg[rep], shared[rep], iso_ok[rep] | has, st, pend)
        node_now[rep] = nb
        if (q == queue[rep]).all() and (st == status[rep]).all():
            return
        queue[rep] = q
        status[rep] = st


def _segmented_running_max(x: np.ndarray, seg_first: np.ndarray) -> np.ndarray:
    """Running maximum of x restarting at each segment (seg_first: index of each
    position's segment start, non-decreasing)."""
    # offset each segment so that a plain running max cannot leak across segments
    big = np.int64(x.size + 2)
    seg = np.cumsum(np.concatenate([[1], (seg_first[1:] != seg_first[:-1]).astype(np.int64)]))
    shifted = np.where(x >= 0, x + seg * big, seg * big - 1)
    run = np.maximum.accumulate(shifted)
    return run - seg * big


# ----------------------------------------------------------------- the outcome

@dataclass
class MoveResult:
    """The call's answer: statuses, return value or error, and how many entries the
    walk never looked at (after the batch that failed)."""

    status: np.ndarray
    ret: int
    error: OSError | None
    unattempted: int = 0


def finish(plan: MovePlan, result: np.ndarray) -> MoveResult:
    """The status array, return value and error of the call, from the plan and the
    migration outcome of its queued entries (result: node, -errno or UNTRIED).
    Modern: a batch with a failure ends the walk; its statuses stay unwritten and the
    return value counts its failures and every entry never looked at."""
    n = plan.targets.size
    out = np.full(n, UNWRITTEN, np.int64)
    qi = plan.qi
    if plan.error is not None:
        return MoveResult(out, 0, plan.error)
    if not plan.modern:
        out[:] = plan.status
        out[qi] = result
        return MoveResult(out, 0, None)
    res = np.full(n, UNWRITTEN, np.int64)
    res[qi] = result
    failed = plan.queue & (res < 0) & (res != UNTRIED)
    walked = np.arange(n) < plan.stop
    if not failed.any():
        w = walked & ~plan.queue
        out[w] = plan.status[w]
        out[qi] = plan.targets[qi]
        return MoveResult(out, 0, plan.stop_error, n - plan.stop)
    fb = plan.batch[int(np.argmax(failed))]
    in_fb = plan.batch == fb
    trig = int(np.flatnonzero(in_fb)[-1]) + 1  # the entry that flushed the batch
    w = (np.arange(n) < trig) & ~plan.queue
    stored = trig < plan.stop and not plan.queue[trig]
    if stored:
        w[trig] = True  # its status was stored before the flush
    out[w] = plan.status[w]
    good = plan.queue & (plan.batch < fb) & (plan.batch >= 0)
    out[good] = plan.targets[good]
    unattempted = n - trig - (1 if stored else 0)
    if (res[in_fb] == -ENOMEM).any():
        return MoveResult(out, 0, oserror(
            ENOMEM, f"move_pages: node {int(plan.targets[trig - 1])} has no free page "
                    f"for the migration"), unattempted)
    if trig == plan.stop and plan.stop_error is not None:
        # the bad node's error beats the batch's count
        return MoveResult(out, 0, plan.stop_error, unattempted)
    return MoveResult(out, int((failed & in_fb).sum()) + unattempted, None, unattempted)


def query(k: Kernel, pid, pages, flags: int = 0, *, caller=None) -> MoveStatus:
    """move_pages with nodes == NULL: every page's node or -errno, nothing moves."""
    p = check_call(k, pid, flags, caller)
    status, _ = page_status(k, p, as_int_array(pages, "pages"), query=True)
    return MoveStatus.of(status, 0)


def move_pages_gen(k: Kernel, pid, pages, nodes=None, flags: int = 0, *, caller=None,
                   chunk: int | None = None, job=None):
    """move_pages(2): plan, then run the queued pairs (a batch generator; returns a
    MoveStatus, raises the call's OSError)."""
    if nodes is None:
        st = query(k, pid, pages, flags, caller=caller)
        if job is not None:
            job.total = job.done = len(st)
        return st
    plan = plan_move_pages(k, pid, pages, nodes, flags, caller=caller)
    if job is not None:
        job.total = int(plan.targets.size)
        if plan.stop == 0 and plan.stop_error is not None:
            raise plan.stop_error  # a bad first node fails before the job starts
        yield 0  # the call's checks are done: Machine.start() returns here
    qi = plan.qi
    out = yield from run_pairs(k, Execute(k, hold=bool(chunk)), plan.pfn[qi],
                               plan.targets[qi], plan.control(k), plan.pair_run(chunk), job)
    r = finish(plan, out.result)
    if r.error is not None:
        raise r.error
    return MoveStatus.of(r.status, r.ret)
