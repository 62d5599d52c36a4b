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
from functools import cached_property

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
from ..vec import has_duplicates, previous_occurrence, stable_argsort
from .huge_memory import folio_heads
from .memory import vma_index
from .migrate import UNTRIED, Execute, MigrateControl, PairRun, isolatable, run_pairs
from .mm_types import VMA, Process
from .state import Kernel

UNWRITTEN = -(1 << 41)  # a status entry Linux leaves unwritten


class MoveStatus(list):
    """move_pages' status array: one entry per page (node, negative errno, or None
    where Linux leaves the entry unwritten); `.ret` is the syscall's return value
    and `.array` the statuses as an int64 array (UNWRITTEN where None)."""

    ret: int = 0
    array: np.ndarray

    @classmethod
    def of(cls, arr: np.ndarray, ret: int) -> MoveStatus:
        lo = int(arr.min()) if arr.size else 0
        st = cls()
        if lo == UNWRITTEN:  # (the smallest value a status array holds)
            obj = arr.astype(object)
            obj[arr == UNWRITTEN] = None
            st.extend(obj.tolist())
        else:
            # the empty list extended (its constructor would copy a list it was given
            # again) by Python ints made the cheapest way: nodes alone (0-255) from
            # bytes, whose iterator hands out the interpreter's cached small ints; else
            # a list from the narrowest dtype that holds them. 1 Mi nodes: 2.9 ms from
            # bytes, 10 ms from an int8 tolist(), 13.6 ms as list(int64 tolist())
            hi = int(arr.max()) if arr.size else 0
            if 0 <= lo and hi < 256:
                st.extend(arr.astype(np.uint8).tobytes())
            else:
                narrow = np.int8 if -128 <= lo and hi < 128 else \
                    np.int16 if -32768 <= lo and hi < 32768 else arr.dtype
                st.extend(arr.astype(narrow, copy=False).tolist())
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

def lookup_pages(k: Kernel, p: Process, addrs: np.ndarray
                 ) -> tuple[np.ndarray | int, np.ndarray]:
    """Per address: (index of its VMA or -1, page-table entry or -1), one gather from
    the mm's page table. When one VMA holds every address (the usual case) the index
    is that VMA's, as an int, and its range makes the gather a slice's."""
    n = addrs.size
    if n and p.vmas:
        lo, hi = int(addrs.min()), int(addrs.max())
        i = p._index_above(lo)
        if i < len(p.vmas) and p.vmas[i].start <= lo and hi < p.vmas[i].end:
            v = p.vmas[i]
            return i, p.pt.get(addrs >> k.page_shift, "pfn", v.vpn, v.vpn + v.npages)
    vidx = vma_index(p, addrs)
    inside = vidx >= 0
    pte = np.full(n, -1, np.int64)
    if inside.any():
        pte[inside] = p.pt.get(addrs[inside] >> k.page_shift)
    return vidx, pte


def page_status(k: Kernel, p: Process, addrs: np.ndarray, *, query: bool
                ) -> tuple[np.ndarray, np.ndarray]:
    """The lookup rules of kernel-semantics.md 1.2 for the era: (status, pfn) where
    status is the page's node for a page found (pfn >= 0) or its final -errno."""
    vidx, pte = lookup_pages(k, p, addrs)
    vmas = p.vmas
    if k.era.status_rules == "2006":
        # find_vma() without a containment check: only above the last VMA is -EFAULT;
        # a hole below some VMA walks page tables and finds nothing: -ENOENT
        last_end = vmas[-1].end if vmas else 0
        status = np.full(addrs.size, -ENOENT, np.int64)
        status[addrs >= last_end] = -EFAULT
        # PFN-mapped frames have no struct page for follow_page(), and the zero page
        # is PageReserved: both -ENOENT
        real = (pte >= 0) & (pte != k.zero_pfn)
        if isinstance(vidx, int):
            real &= not vmas[vidx].pfnmap
        else:
            pfnmap = np.fromiter((v.pfnmap for v in vmas), bool, len(vmas))
            inv = vidx >= 0
            real[inv] &= ~pfnmap[vidx[inv]]
        status[real] = k.node_of(pte[real])
        return status, np.where(real, pte, -1)
    # modern (6.12+): vma_lookup + folio_walk. What a VMA says of its entries, whatever
    # the page: -EFAULT outside every VMA or in one move_pages may not migrate from,
    # -ENOENT for a query of a PFN map (no folio behind it), else 0: look at the page
    said = np.array([(-ENOENT if v.pfnmap else 0) if query else
                     (0 if vma_migratable(k, v, "move_pages") else -EFAULT)
                     for v in vmas] + [-EFAULT], np.int64)  # [-1]: no VMA
    absent = pte < 0
    zero = pte == k.zero_pfn
    if isinstance(vidx, int) and said[vidx] == 0 and not absent.any() and not zero.any():
        return k.node_of(pte), pte  # every page present in one VMA: its node
    pre = said[vidx] if not isinstance(vidx, int) else np.full(pte.size, said[vidx])
    # no page in the page table: -ENOENT; the zero page: -EFAULT (no struct page to move)
    status = np.where(pre != 0, pre, np.where(absent, -ENOENT, -EFAULT))
    real = (pre == 0) & ~absent & ~zero
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


def as_int_array(x, what: str, copy: bool = True) -> np.ndarray:
    """An array argument (a C array of the syscall): integers, else EFAULT. copy=False:
    an int64 array is used as it is (for an argument only read while the call plans)."""
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
    return a.astype(np.int64, copy=copy)


def node_errors(k: Kernel, p: Process, tg: np.ndarray) -> np.ndarray:
    """Per entry: 0, -ENODEV (no such node, or no memory), -EACCES (outside the
    target task's cpuset), checked in that order."""
    # one look-up per entry in a table of the answers by node (MAX_NUMNODES: no node)
    table = np.full(MAX_NUMNODES + 1, -ENODEV, np.int64)
    mem = list(k.memory_nodes())
    table[mem] = np.where(np.isin(mem, list(p.mems_allowed)), 0, -EACCES)
    if tg.size and (int(tg.min()) < 0 or int(tg.max()) >= MAX_NUMNODES):
        tg = np.where((tg >= 0) & (tg < MAX_NUMNODES), tg, MAX_NUMNODES)
    return table[tg]


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
    stop: int  # entries [0, stop) are walked; stop < n: entry stop has a bad node
    stop_error: OSError | None  # that entry's error
    modern: bool
    error: OSError | None = None  # a whole-call error known up front (2006 ENOENT)
    repeats: bool = True  # some page is listed more than once
    entries: tuple | None = None  # per entry: its frame's entry when looked up (take)

    @property
    def qi(self) -> np.ndarray | slice:
        """The queued entries: their positions, or slice(None) when all are queued."""
        return slice(None) if self.queue.all() else np.flatnonzero(self.queue)

    @cached_property
    def batch(self) -> np.ndarray:
        """Per entry: its do_pages_move() batch (-1: not queued). Consecutive queued
        entries with the same node are a batch (computed when a failure asks)."""
        q, tg = self.queue, self.targets
        start = q.copy()
        start[1:] &= ~(q[:-1] & (tg[1:] == tg[:-1]))
        return np.where(q, np.cumsum(start) - 1, -1) if self.modern else \
            np.full(q.size, -1, np.int64)

    def control(self, k: Kernel) -> MigrateControl:
        if self.modern:
            return MigrateControl("syscall", thisnode=True, cpu=self.p.node, batches=True)
        return MigrateControl("syscall", thisnode=False, cpu=self.p.node)

    def pair_run(self, chunk: int | None) -> PairRun:
        """Queued entries in order. Modern: a page queued again (in a later batch)
        moves again from where the first move left it; 2006: one migrate_pages()
        call, where a page listed twice fails to isolate the second time (-EBUSY)."""
        if not self.modern:
            return PairRun(chunk=chunk, unique=not self.repeats)
        return PairRun(chunk=chunk, batch=lambda: self.batch[self.qi], repeats=self.repeats,
                       unique=not self.repeats)


def plan_move_pages(k: Kernel, pid, pages, nodes, flags: int = 0, *, caller=None) -> MovePlan:
    """The checks and the per-entry plan of move_pages with target nodes."""
    p = check_call(k, pid, flags, caller)
    addrs = as_int_array(pages, "pages", copy=False)  # (read by the plan only)
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
    walked = classify(k, p, addrs[:stop], tg[:stop], move_all, modern)
    if stop == n:
        status, pfn, node_now, queue, repeats, entries = walked
    else:  # the entries after a bad node are not walked
        status = np.full(n, UNWRITTEN, np.int64)
        pfn = np.full(n, -1, np.int64)
        node_now = np.full(n, -1, np.int64)
        queue = np.zeros(n, bool)
        status[:stop], pfn[:stop], node_now[:stop], queue[:stop], repeats, e = walked
        entries = tuple(np.zeros(n, x.dtype) for x in e)
        entries[0][:stop], entries[1][:stop] = e
    plan = MovePlan(p, tg, status, pfn, node_now, queue, stop, stop_error, modern,
                    repeats=repeats, entries=entries)
    if not modern and not queue.any() and k.era.move_pages_empty_enoent:
        plan.error = oserror(ENOENT, "move_pages: no page needed moving (2.6.18 answers "
                                     "ENOENT)")
    return plan


def classify(k: Kernel, p: Process, addrs: np.ndarray, tg: np.ndarray, move_all: bool,
             modern: bool):
    """add_folio_for_migration() for every entry: (status, pfn, node when looked up,
    queued, whether a page is listed twice, frame entries). A page already on its node gives
    its node; a shared page without MOVE_ALL -EACCES; a page that cannot be isolated
    -EBUSY."""
    status, pfn = page_status(k, p, addrs, query=False)
    real = pfn >= 0
    if k.large_folios:
        # add_folio_for_migration(): an address inside a large folio isolates the
        # whole folio (named by its head); another entry of it in the same batch finds
        # it isolated (-EBUSY), a later one finds it where it went
        pfn = np.where(real, folio_heads(k, np.maximum(pfn, 0)), pfn)
    allreal = bool(real.all())
    node0 = status.copy()
    found = pfn if allreal else np.maximum(pfn, 0)
    # every field the call looks at, and the migration copies, in one read of each
    # frame's entry (the entries of entries with no page are frame 0's: never used)
    kf, rec = k.f.take(found)
    multi = rec["mapcount"] > 1
    shared = (multi if allreal else real & multi) if not move_all \
        else np.zeros(pfn.size, bool)
    iso_ok = isolatable(k, found, True, kf["flags"])
    if not allreal:
        iso_ok &= real
    # a page's status is its node until decided otherwise: node0 (the status holds it)
    queue = _decide(real, node0, tg, shared, iso_ok, status, status_is_node=True)
    node_now = node0 if allreal else np.where(real, node0, -1)
    repeats = _frames_repeat(k, addrs, pfn, real, allreal, multi)
    if modern and repeats:
        _resolve_repeats(pfn, real, node0, tg, shared, iso_ok, status, queue, node_now)
    return status, pfn, node_now, queue, repeats, (kf, rec)


def _frames_repeat(k: Kernel, addrs, pfn, real, allreal: bool, multi) -> bool:
    """Whether a frame is found twice. A frame mapped once (mapcount 1) has one
    address, so unless some frame is mapped more than once, frames repeat exactly when
    page addresses do: checked over the (smaller, denser) range of page numbers."""
    if not real.any():
        return False
    if k.large_folios or (multi if allreal else multi & real).any():
        return has_duplicates(pfn if allreal else pfn[real], k.nr_frames)
    vpn = (addrs if allreal else addrs[real]) >> k.page_shift
    lo, hi = int(vpn.min()), int(vpn.max())
    vpn -= lo
    if hi - lo < 8 * vpn.size:
        # a mask over the range of pages, its set entries counted: 7.7 ms for 1 Mi
        # random pages of 4 Mi, where the sort took 10.2 (cold caches, both)
        seen = np.zeros(hi - lo + 1, bool)
        seen[vpn] = True
        return int(np.count_nonzero(seen)) != vpn.size
    return has_duplicates(vpn, hi - lo + 1)


def _decide(real, node_now, tg, shared, iso_ok, status, pending=None,
            status_is_node: bool = False) -> np.ndarray:
    """The order of add_folio_for_migration(): already there (status = node), shared
    (-EACCES), not isolatable or pending in this batch (-EBUSY), else queued.
    status_is_node: the status of each page found holds node_now already."""
    q = node_now != tg
    if not real.all():
        q &= real
    if not status_is_node:
        already = real & ~q
        status[already] = tg[already]
    if shared.any():
        acc = q & shared
        status[acc] = -EACCES
        q &= ~acc
    busy = ~iso_ok if pending is None else (~iso_ok | pending)
    if busy.any():
        busy &= q
        status[busy] = -EBUSY
        q &= ~busy
    return q


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
    order = stable_argsort(key)
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
    qi = plan.qi
    if plan.error is not None:
        return MoveResult(np.full(n, UNWRITTEN, np.int64), 0, plan.error)
    if not plan.modern:
        out = plan.status.copy()
        out[qi] = result
        return MoveResult(out, 0, None)
    if not result.size or result.min() >= 0 or not ((result < 0) & (result != UNTRIED)).any():
        # every queued page moved: its target; the rest walked: their status (the
        # entries never walked hold UNWRITTEN in the plan)
        out = plan.targets if plan.queue.all() else \
            np.where(plan.queue, plan.targets, plan.status)
        return MoveResult(out, 0, plan.stop_error, n - plan.stop)
    out = np.full(n, UNWRITTEN, np.int64)
    res = np.full(n, UNWRITTEN, np.int64)
    res[qi] = result
    failed = plan.queue & (res < 0) & (res != UNTRIED)
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
    status, _ = page_status(k, p, as_int_array(pages, "pages", copy=False), query=True)
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
    # a job yielded since the plan read the frames: run_pairs reads them again
    taken = None if job is not None else (plan.entries[0][qi], plan.entries[1][qi])
    out = yield from run_pairs(k, Execute(k, hold=bool(chunk)), plan.pfn[qi],
                               plan.targets[qi], plan.control(k), plan.pair_run(chunk), job,
                               taken)
    r = finish(plan, out.result)
    if r.error is not None:
        raise r.error
    return MoveStatus.of(r.status, r.ret)
