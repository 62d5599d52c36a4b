"""The memory-policy system calls (mm/mempolicy.c): set_mempolicy, get_mempolicy,
mbind and migrate_pages. Policies themselves and placement are in policy.py.

mbind and migrate_pages plan, then execute: the page walk (queue_pages_range())
decides what is queued and what counts as a failure; the call and its rehearsal run
the queued pairs through the migration core with `Execute` or `Rehearse` and share
everything else, so a dry run answers what the call then does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..constants import (
    EFAULT,
    EINVAL,
    EIO,
    ENOMEM,
    EPERM,
    ESRCH,
    K_ANON,
    K_FILE,
    MAX_NUMNODES,
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_F_ADDR,
    MPOL_F_MEMS_ALLOWED,
    MPOL_F_NODE,
    MPOL_MF_MOVE,
    MPOL_MF_MOVE_ALL,
    MPOL_MF_STRICT,
    MPOL_MF_VALID,
    MPOL_MODE_FLAGS,
    oserror,
)
from ..nodemask import get_nodes, node_mask, node_remap, nodes_str
from ..vec import unique_parts
from .drivers import hook_target
from .fault import fault
from .huge_memory import queue_folios_once
from .memory import hugetlb_cut, merge_vmas, range_holes, vmas_in_range
from .migrate import UNTRIED, Execute, MigrateControl, Outcome, PairRun, Rehearse, run_pairs
from .mm_types import VMA, Policy, Process
from .move_pages import vma_migratable
from .policy import (
    INTERLEAVE_MODES,
    fault_targets,
    interleave_nodes,
    mpol_new,
    sanitize_mode,
    set_shared_policy,
    vma_policy,
)
from .state import Kernel, drive, in_nodes

# ---------------------------------------------------------------- the page walker

def walk_pages(k: Kernel, p: Process, start: int, end: int, path: str
               ) -> Iterator[tuple[VMA, bool, np.ndarray, np.ndarray]]:
    """queue_pages_range()'s walk: for every VMA overlapping [start, end), (vma,
    migratable, offsets, PFNs) of its present pages that have a struct page on an
    LRU list (anonymous and page cache; the zero page and driver frames are not)."""
    f = k.f
    for v in vmas_in_range(k, p, start, end, split=False):
        o0 = (max(v.start, start) - v.start) >> k.page_shift
        o1 = (min(v.end, end) - v.start) >> k.page_shift
        offs, pfn = v.present(o0, o1)
        keep = pfn != k.zero_pfn
        if not v.pfnmap:
            kinds = f.kind[pfn]
            keep &= (kinds == K_ANON) | (kinds == K_FILE)
        if not keep.all():
            offs, pfn = offs[keep], pfn[keep]
        yield v, vma_migratable(k, v, path), offs, pfn


# ---------------------------------------------------------------- set/get_mempolicy

def user_nodes(k: Kernel, nodemask, maxnode, what: str = "nodemask") -> tuple[int, ...]:
    """get_nodes() with the machine's page size and the era's word rule."""
    return get_nodes(nodemask, maxnode, page_size=k.page_size,
                     whole_words=k.era.get_nodes_whole_words, what=what)


def set_mempolicy(k: Kernel, pid, mode: int, nodemask=(), *, caller=None,
                  maxnode=None) -> None:
    """set_mempolicy(2) of the calling process (another pid as caller: EPERM):
    sanitize_mpol_flags(), get_nodes(), then do_set_mempolicy()."""
    lmode, flags = sanitize_mode(k, mode)
    nodes = user_nodes(k, nodemask, maxnode)
    p = k.own_task(pid, caller, "set_mempolicy")
    if not p.has_mm:
        raise oserror(EINVAL, f"pid {p.pid} is a kernel thread with no address space")
    if not k.era.policy_mask_intersects and not set(nodes) <= set(p.mems_allowed):
        # 2.6.18 contextualize_policy(): the mask must lie inside the task's cpuset
        out = tuple(n for n in nodes if n not in p.mems_allowed)
        raise oserror(EINVAL, f"set_mempolicy: nodes {nodes_str(out)} are outside the "
                              f"cpuset ({nodes_str(p.mems_allowed)})")
    p.policy = mpol_new(k, p, lmode, flags, nodes)
    p.il_next = 0  # set_mempolicy(INTERLEAVE) restarts the task's round-robin cursor


def cpuset_mems(k: Kernel, p: Process) -> tuple[int, ...]:
    """cpuset_current_mems_allowed / cpuset_mems_allowed(): the task's cpuset mems that
    have memory (a node that lost its memory drops out, as the cpuset hotplug update
    does)."""
    return tuple(sorted(set(p.mems_allowed) & set(k.memory_nodes())))


def get_mempolicy(k: Kernel, pid, addr: int | None = None, flags: int = 0, *,
                  caller=None, maxnode=None):
    """get_mempolicy(2) of the calling process (another pid as caller: EPERM).
    maxnode (None: large enough) is the nodemask's size in bits: less than nr_node_ids
    (MAX_NUMNODES in 2.6.18) is EINVAL before anything else; a mask of more than a page
    is EINVAL when copy_nodes_to_user() writes it, after the lookup."""
    if maxnode is not None:
        if isinstance(maxnode, bool) or not isinstance(maxnode, (int, np.integer)):
            raise TypeError(f"maxnode must be an integer, not {type(maxnode).__name__}")
        least = k.nr_node_ids if k.era.get_mempolicy_min_maxnode == "nr_node_ids" \
            else MAX_NUMNODES
        if maxnode < least:
            raise oserror(EINVAL, f"get_mempolicy: maxnode {maxnode} is less than "
                                  f"{k.era.get_mempolicy_min_maxnode} ({least})")
    out = _do_get_mempolicy(k, pid, addr, flags, caller)
    if maxnode is not None and -(-(int(maxnode) - 1) // 64) * 8 > k.page_size:
        raise oserror(EINVAL, f"get_mempolicy: maxnode {maxnode} asks for more than a page "
                              f"of nodemask")
    return out


def _do_get_mempolicy(k: Kernel, pid, addr, flags, caller):
    """do_get_mempolicy()."""
    valid = MPOL_F_NODE | MPOL_F_ADDR | (MPOL_F_MEMS_ALLOWED if k.era.has_mems_allowed_query
                                         else 0)
    if isinstance(flags, bool) or not isinstance(flags, (int, np.integer)) or flags & ~valid:
        raise oserror(EINVAL, f"get_mempolicy: unknown flags {flags!r}")
    p = k.own_task(pid, caller, "get_mempolicy")
    if flags & MPOL_F_MEMS_ALLOWED:
        if flags & (MPOL_F_NODE | MPOL_F_ADDR):
            raise oserror(EINVAL, "MPOL_F_MEMS_ALLOWED cannot be combined with NODE or ADDR")
        return 0, cpuset_mems(k, p)
    v = None
    if flags & MPOL_F_ADDR:
        if addr is None:
            raise oserror(EFAULT, "get_mempolicy: MPOL_F_ADDR with a NULL address")
        v = p.find_vma(int(addr))
        if v is None:
            raise oserror(EFAULT, f"get_mempolicy: {int(addr):#x} is not in any VMA")
        # __get_vma_policy(): the VMA's own policy (a shmem object's shared policy at
        # that page), no fallback to the task policy
        pol = vma_policy(v, (int(addr) - v.start) >> k.page_shift)
    else:
        if addr not in (None, 0):
            raise oserror(EINVAL, "get_mempolicy: an address needs MPOL_F_ADDR")
        pol = p.policy
    if flags & MPOL_F_NODE:
        if v is not None:
            # the node of the page at addr, faulted in as a read (GUP): an untouched
            # anonymous page gives the zero page's node
            off = np.array([(int(addr) - v.start) >> k.page_shift])
            if v.ptes(off)[0] < 0:
                fault(k, p, v, off, write=False)
            return int(k.node_of(v.ptes(off))[0])
        if pol is not None and pol.mode in INTERLEAVE_MODES:
            return int(pol.nodes[p.il_next % len(pol.nodes)])
        raise oserror(EINVAL, "MPOL_F_NODE without MPOL_F_ADDR needs an interleave task "
                              "policy")
    if pol is None:
        return MPOL_DEFAULT, ()
    mode = pol.mode | (pol.flags & MPOL_MODE_FLAGS)
    nodes = pol.user_nodes if pol.user_nodes else pol.nodes
    return mode, tuple(nodes)


# ---------------------------------------------------------------- mbind

@dataclass
class MbindPlan:
    """What mbind will do: the policy to apply over [addr, end), the pages queued with
    their targets, and the pages that count as failures without moving."""

    p: Process
    addr: int
    end: int
    flags: int
    new: Policy | None
    pfns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    targets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    unmovable: int = 0  # misplaced pages that cannot move (no MOVE flag, VMA not migratable)
    shared_skipped: int = 0  # shared pages MPOL_MF_MOVE skips without counting them
    already: int = 0  # pages already on a node of the mask
    noop: bool = False  # len 0: success before the per-mode checks

    @property
    def strict(self) -> bool:
        return bool(self.flags & MPOL_MF_STRICT)

    def control(self) -> MigrateControl:
        allowed = (frozenset(self.new.nodes) if self.new is not None and
                   self.new.mode == MPOL_BIND else None)
        return MigrateControl("mbind", thisnode=False, cpu=self.p.node, allowed=allowed)


def check_mbind(k: Kernel, pid, addr, length, mode, nodemask, flags, caller, maxnode=None
                ) -> tuple[Process | None, int, int, int, int, tuple, Policy | None]:
    """do_mbind()'s checks, in its order. Returns (process or None for len 0, addr,
    end, flags, mode, nodes, new policy). mbind acts on the caller's own address
    space: a caller naming another process is EPERM."""
    lmode, mflags = sanitize_mode(k, mode)
    nodes = user_nodes(k, nodemask, maxnode)
    if isinstance(flags, bool) or not isinstance(flags, (int, np.integer)) or \
            flags & ~MPOL_MF_VALID:
        raise oserror(EINVAL, f"mbind: flags {flags!r} outside STRICT|MOVE|MOVE_ALL")
    cred = k.credentials(caller)
    if flags & MPOL_MF_MOVE_ALL and not cred.cap_sys_nice:
        raise oserror(EPERM, "mbind: MPOL_MF_MOVE_ALL needs CAP_SYS_NICE")
    addr = int(addr)
    if addr < 0 or addr & (k.page_size - 1):
        raise oserror(EINVAL, f"mbind: address {addr:#x} is not page aligned")
    if lmode == MPOL_DEFAULT:
        flags &= ~MPOL_MF_STRICT
    length = int(length)
    end = addr + k.page_align(length) if length >= 0 else addr + length
    if end < addr:
        raise oserror(EINVAL, "mbind: range wraps around")
    if end == addr:
        return None, addr, end, flags, lmode, nodes, None
    p = k.own_task(pid, caller, "mbind")
    if not p.has_mm:
        raise oserror(EINVAL, f"pid {p.pid} is a kernel thread with no address space")
    new = mpol_new(k, p, lmode, mflags, nodes)
    # queue_pages_range(): holes are EFAULT (except for MPOL_DEFAULT)
    if lmode != MPOL_DEFAULT and range_holes(p, addr, end):
        raise oserror(EFAULT, f"mbind: [{addr:#x}, {end:#x}) has unmapped holes")
    hugetlb_cut(k, p, addr, end, "mbind")  # (mbind_range()'s split would fail)
    return p, addr, end, flags, lmode, nodes, new


def plan_mbind(k: Kernel, pid, addr, length, mode, nodemask=(), flags=0, *, caller=None,
               maxnode=None) -> MbindPlan:
    """The checks and queue_pages_range() of mbind: misplaced pages (not on a node of
    the mask; every page for MPOL_DEFAULT) are queued with the node the new policy
    gives their address, or counted as failures when they cannot move."""
    p, addr, end, flags, _mode, nodes, new = check_mbind(k, pid, addr, length, mode,
                                                         nodemask, flags, caller, maxnode)
    if p is None:
        return MbindPlan(None, addr, end, flags, None, noop=True)
    plan = MbindPlan(p, addr, end, flags, new)
    mask = node_mask(nodes)
    move = bool(flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL))
    f = k.f
    pfns, tgts = [], []
    first_vma = None
    for v, migratable, offs, pfn in walk_pages(k, p, addr, end, "mbind"):
        first_vma = v if first_vma is None else first_vma
        if not migratable and not plan.strict:
            continue  # queue_pages_test_walk() skips it
        mis = ~mask[k.node_of(pfn)] if nodes else np.ones(pfn.size, bool)
        plan.already += int(pfn.size - mis.sum())
        offs, pfn = offs[mis], pfn[mis]
        if pfn.size == 0:
            continue
        if not move or not migratable:
            if plan.strict and not move:
                # the first misplaced page: EIO, and the policy is not applied
                raise oserror(EIO, f"mbind: MPOL_MF_STRICT and {pfn.size} page(s) of "
                                   f"[{addr:#x}, {end:#x}) are on other nodes")
            plan.unmovable += pfn.size
            continue
        if not flags & MPOL_MF_MOVE_ALL:
            shared = f.mapcount[pfn] > 1  # skipped, not counted as failures
            plan.shared_skipped += int(shared.sum())
            offs, pfn = offs[~shared], pfn[~shared]
        if pfn.size == 0:
            continue
        # the new policy at each page's own address: the exact interleave slot a
        # fault would use
        t, _ = fault_targets(k, p, v, offs, p.node, new)
        if k.era.mbind_first_vma_only and v is not first_vma:
            t = _first_vma_only_targets(k, max(first_vma.start, addr), new, t)
        pfns.append(pfn)
        tgts.append(t)
    if pfns:
        plan.pfns, plan.targets = queue_folios_once(k, np.concatenate(pfns),
                                                    np.concatenate(tgts))
        if k.large_folios and not flags & MPOL_MF_MOVE_ALL:
            # folio_likely_mapped_shared(): a large folio whose first page is mapped
            # twice is skipped (silently, as a shared page is)
            keep = f.mapcount[plan.pfns] <= 1
            plan.shared_skipped += int((~keep).sum())
            plan.pfns, plan.targets = plan.pfns[keep], plan.targets[keep]
    return plan


def _first_vma_only_targets(k: Kernel, v0_start: int, new: Policy | None, t: np.ndarray
                            ) -> np.ndarray:
    """2.6.18's new_vma_page() asked page_address_in_vma() of the range's first VMA
    only (split to start at the range, vm_pgoff = vm_start >> PAGE_SHIFT): for a page
    of a later VMA that is -EFAULT, and alloc_page_vma() computed the interleave slot
    from that bogus address, so every such page lands on one node."""
    if new is None or new.mode not in INTERLEAVE_MODES:
        return t  # other policies do not depend on the address
    bogus = (1 << 64) - EFAULT  # (unsigned long)-EFAULT
    ilx = (v0_start >> k.page_shift) + (((bogus - v0_start) % (1 << 64)) >> k.page_shift)
    node = interleave_nodes(k, new, np.array([ilx % (1 << 62)], dtype=np.int64))[0]
    return np.full(t.size, node, np.int64)


def apply_mbind_policy(k: Kernel, plan: MbindPlan) -> None:
    """mbind_range(): the policy on every VMA of the range (split at the bounds, merged
    after, as vma_merge() does; 2.6.18's mbind_range() only split). vma_replace_policy():
    a shmem/tmpfs VMA also sets its object's shared policy over the VMA's page range
    (vm_ops->set_policy = shmem_set_policy()), which every mapping of it then sees."""
    for v in vmas_in_range(k, plan.p, plan.addr, plan.end, split=True):
        if v.backing is not None and v.backing.shmem:
            set_shared_policy(v.backing, v.pgoff, v.pgoff + v.npages, plan.new)
        v.policy = plan.new
    if k.era.is_modern:
        merge_vmas(plan.p, plan.addr, plan.end)


def mbind_result(plan: MbindPlan, out: Outcome) -> OSError | None:
    """MPOL_MF_STRICT and anything that could not move: EIO (the other pages moved and
    the policy is applied); without STRICT, mbind succeeds whatever failed."""
    failed = plan.unmovable + int((out.result < 0).sum())
    if failed and plan.strict:
        return oserror(EIO, f"mbind: MPOL_MF_STRICT and {failed} page(s) could not be moved")
    return None


def mbind_gen(k: Kernel, pid, addr, length, mode, nodemask=(), flags=0, *, caller=None,
              maxnode=None, chunk=None, job=None):
    """mbind(2) (modern do_mbind) as a batch generator; returns None as mbind returns
    0 (errors as OSError)."""
    plan = plan_mbind(k, pid, addr, length, mode, nodemask, flags, caller=caller,
                      maxnode=maxnode)
    if job is not None:
        job.total = int(plan.pfns.size)
        yield 0  # every error before the policy is applied has been raised
    if plan.noop:
        return None
    apply_mbind_policy(k, plan)
    out = yield from run_pairs(k, Execute(k, hold=bool(chunk)), plan.pfns, plan.targets,
                               plan.control(), PairRun(chunk=chunk), job)
    err = mbind_result(plan, out)
    if err is not None:
        raise err
    return None


def rehearse_mbind(k: Kernel, plan: MbindPlan, chunk: int | None = None) -> Outcome:
    gen = run_pairs(k, Rehearse(k), plan.pfns, plan.targets, plan.control(),
                    PairRun(chunk=chunk))
    return drive(gen)


# ---------------------------------------------------------------- migrate_pages(2)

def migrate_pages_pairs(k: Kernel, old: tuple, new: tuple) -> list[tuple[int, int]]:
    """do_migrate_pages()'s pair order: vacate before fill; the modern rule skips a
    source that is also a destination when the weights differ."""
    tmp = list(old)
    pairs = []
    while tmp:
        s_found = d_found = None
        for s in sorted(tmp):
            if k.era.remap_skip_dest_in_new and len(old) != len(new) and s in new:
                continue
            d = node_remap(old, new, s)
            if d == s:
                continue
            s_found, d_found = s, d
            if d not in tmp:
                break
        if s_found is None:
            break
        tmp.remove(s_found)
        pairs.append((s_found, d_found))
    return pairs


@dataclass
class MigratePagesPlan:
    p: Process
    old: tuple
    new: tuple
    move_all: bool
    pairs: list

    def control(self, k: Kernel) -> MigrateControl:
        return MigrateControl("syscall", thisnode=k.era.strict_target_node, cpu=self.p.node,
                              stop_on_enomem=True)


def plan_migrate_pages(k: Kernel, pid, old_nodes, new_nodes, *, caller=None,
                       maxnode=None) -> MigratePagesPlan:
    """kernel_migrate_pages()'s checks, in its order: masks (get_nodes(): EINVAL), the
    task (ESRCH), ptrace access (EPERM), new nodes outside the target's cpuset (its
    mems with memory) without CAP_SYS_NICE (EPERM), new & the caller's cpuset empty
    (EINVAL: a memoryless node is in no cpuset; not in 2.6.18), no mm (EINVAL); then
    the node pairs."""
    old = user_nodes(k, old_nodes, maxnode, "old_nodes")
    new = user_nodes(k, new_nodes, maxnode, "new_nodes")
    p = k.lookup(pid, caller)
    if p is None:
        raise oserror(ESRCH, f"migrate_pages: no process {pid}")
    cred = k.credentials(caller)
    k.check_access(cred, p, "migrate_pages")
    task_nodes = cpuset_mems(k, p)
    if not set(new) <= set(task_nodes) and not cred.cap_sys_nice:
        raise oserror(EPERM, f"migrate_pages: nodes {nodes_str(new)} are outside pid "
                             f"{p.pid}'s cpuset ({nodes_str(task_nodes)})")
    if k.era.migrate_pages_caller_mems:
        mine = set(cred.mems_allowed) & set(k.memory_nodes())
        new = tuple(n for n in new if n in mine)
        if not new:
            raise oserror(EINVAL, f"migrate_pages: no destination node with memory left in "
                                  f"the caller's cpuset ({nodes_str(mine)})")
    else:
        # 2.6.18 took the mask as given: a node that is not online reached
        # alloc_pages_node() (an oops); the engine keeps the online ones
        new = tuple(n for n in new if n in k.nodes)
        if not new:
            raise oserror(EINVAL, "migrate_pages: no destination node is online")
    if not p.has_mm:
        raise oserror(EINVAL, f"migrate_pages: pid {p.pid} has no mm (kernel thread)")
    return MigratePagesPlan(p, old, new, cred.cap_sys_nice, migrate_pages_pairs(k, old, new))


def queue_node_pages(k: Kernel, p: Process, nodes, move_all: bool) -> np.ndarray:
    """migrate_to_node()'s walk: every page of the address space on `nodes` in a
    migratable VMA (others skipped, not counted); shared pages only with MOVE_ALL."""
    out = []
    f = k.f
    for v, migratable, _offs, pfn in walk_pages(k, p, 0, 1 << 62, "migrate_pages"):
        if not migratable or v.pfnmap:
            continue
        pfn = pfn[in_nodes(k, pfn, nodes)]
        if not move_all:
            pfn = pfn[f.mapcount[pfn] <= 1]  # shared pages skipped silently
        out.append(pfn)
    pfns = unique_parts(out, k.nr_frames)
    if not k.large_folios:
        return pfns
    pfns = queue_folios_once(k, pfns)[0]
    # folio_likely_mapped_shared(): a large folio whose first page is mapped twice
    return pfns if move_all else pfns[k.f.mapcount[pfns] <= 1]


class _LivePages:
    """The call: a fresh walk for every node pair, as Linux walks per pair."""

    def __init__(self, k: Kernel, plan: MigratePagesPlan):
        self.k, self.plan = k, plan

    def on(self, s: int) -> np.ndarray:
        return queue_node_pages(self.k, self.plan.p, (s,), self.plan.move_all)

    def moved(self, sel: np.ndarray, out: Outcome) -> None:
        pass


class _TrackedPages:
    """The rehearsal: the walk once, then every page's node as the call would leave
    it after each pair (the Rehearse executor remembers the rest)."""

    def __init__(self, k: Kernel, plan: MigratePagesPlan):
        self.pfn = queue_node_pages(k, plan.p, plan.old, plan.move_all)
        self.node = k.node_of(self.pfn)
        self.cur = np.zeros(0, np.int64)

    def on(self, s: int) -> np.ndarray:
        self.cur = np.flatnonzero(self.node == s)
        return self.pfn[self.cur]

    def moved(self, sel: np.ndarray, out: Outcome) -> None:
        ok = out.result >= 0
        self.node[self.cur[ok]] = out.result[ok]


def do_migrate_pages(k: Kernel, plan: MigratePagesPlan, ex, pages, chunk=None, job=None):
    """The pair loop: one node pair at a time, every page on the source to the
    destination. Returns (pages not moved, per-pair outcomes, error): -ENOMEM stops
    the loop and is the call's error, the pairs before it (and the pages of that pair
    that did move) stay moved."""
    failed = 0
    outs = []
    if k.era.vm_ops_migrate_hook:
        # 2.6.18 migrate_vmas(): vm_ops->migrate of every VMA first; an error ends the
        # call. A driver mapped twice has nothing left to move the second time.
        hooked = {id(d): d for v in plan.p.vmas if v.pfnmap
                  for d in [k.driver_of(v)] if d is not None and d.hook_enabled}
        for drv in hooked.values():
            try:
                ex.relocate(drv, hook_target(plan.old, plan.new))
            except OSError as e:
                return None, outs, e
    ctl = plan.control(k)
    for s, d in plan.pairs:
        pfns = pages.on(s)
        if pfns.size == 0:
            continue
        out = yield from run_pairs(k, ex, pfns, np.full(pfns.size, d, np.int64), ctl,
                                   PairRun(chunk=chunk, unique=True), job)
        pages.moved(pfns, out)
        outs.append((s, d, out))
        if (out.result == -ENOMEM).any():
            # migrate_to_node() < 0 aborts do_migrate_pages() with that error
            return None, outs, oserror(ENOMEM, f"migrate_pages: node {d} has no free "
                                               f"page left")
        failed += int(((out.result < 0) & (out.result != UNTRIED)).sum())
    return min(failed, 2**31 - 1), outs, None


def migrate_pages_gen(k: Kernel, pid, old_nodes, new_nodes, *, caller=None, maxnode=None,
                      chunk=None, job=None):
    """migrate_pages(2). Returns the number of pages not moved."""
    plan = plan_migrate_pages(k, pid, old_nodes, new_nodes, caller=caller, maxnode=maxnode)
    if job is not None:
        job.total = int(queue_node_pages(k, plan.p, plan.old, plan.move_all).size)
        yield 0  # the call's checks are done: Machine.start() returns here
    left, _outs, err = yield from do_migrate_pages(k, plan, Execute(k, hold=bool(chunk)),
                                                   _LivePages(k, plan), chunk, job)
    if err is not None:
        raise err
    return left


def rehearse_migrate_pages(k: Kernel, plan: MigratePagesPlan, chunk: int | None = None):
    """The rehearsal of migrate_pages: (pages not moved, per-pair outcomes, the error
    the call would raise or None, the drivers' relocation time)."""
    ex = Rehearse(k)
    left, outs, err = drive(do_migrate_pages(k, plan, ex, _TrackedPages(k, plan), chunk))
    return left, outs, err, ex.time_ns

