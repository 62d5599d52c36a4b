"""Processes: creation, fork and exit (kernel/fork.c, kernel/exit.c's exit_mm()), and
their resource limits (kernel/sys.c: getrlimit, setrlimit, prlimit)."""

from __future__ import annotations

import numpy as np

from ..constants import (
    EINVAL,
    ENOMEM,
    EPERM,
    INVALID_UID,
    K_ANON,
    PID_MAX_LIMIT,
    RLIM_INFINITY,
    VM_HUGETLB,
    VM_LOCKED_MASK,
    VM_PFNMAP,
    PG_lru,
    PG_pinned,
    oserror,
)
from ..nodemask import nodes_str, parse_nodes
from .drivers import release_pins
from .hugetlb import return_unused_surplus
from .memory import insert_vma, new_vma, remove_vma
from .mm_types import VMA, AnonVMA, Process
from .page_alloc import free_frames
from .policy import alloc_by_target, fault_targets, vma_policy_groups
from .state import Kernel

RESOURCES = ("memlock",)  # the limits the engine models (RLIMIT_MEMLOCK)


def spawn(k: Kernel, name: str, uid: int = 0, node: int = 0, mems_allowed=None, *,
          pid: int | None = None, kthread: bool = False) -> int:
    """A new process running on `node` with cpuset mems `mems_allowed` (None: the top
    cpuset, every node with memory); kthread: a kernel thread (no address space).
    Returns its pid."""
    if node not in k.nodes:
        raise oserror(EINVAL, f"spawn: no node {node} (nodes {nodes_str(k.nodes)})")
    if not k.node(node).cpus and not kthread:
        raise oserror(EINVAL, f"spawn: node {node} has no CPUs to run on")
    if int(uid) < 0:
        raise oserror(EINVAL, f"spawn: uid {uid} is negative")
    if int(uid) >= INVALID_UID:  # a 32-bit uid_t, never coerced; -1 is INVALID_UID
        raise oserror(EINVAL, f"spawn: uid {uid} is not a uid (at most {INVALID_UID - 1})")
    top = frozenset(k.memory_nodes())
    mems = top if mems_allowed is None else frozenset(
        parse_nodes(mems_allowed, "mems_allowed"))
    bad = [n for n in mems if n not in k.nodes]
    if bad or not mems:
        raise oserror(EINVAL, f"spawn: cpuset mems {nodes_str(mems) or '(empty)'} "
                              f"names nodes that do not exist")
    if not mems <= top:
        # update_nodemask(): a cpuset's mems must be a subset of the top cpuset's,
        # node_states[N_MEMORY]
        raise oserror(EINVAL, f"spawn: cpuset mems {nodes_str(mems)} name node(s) "
                              f"{nodes_str(mems - top)} without memory (nodes with memory: "
                              f"{nodes_str(top)})")
    if pid is None:
        pid = max(k.next_pid, max(k.procs, default=0) + 1)
    elif pid in k.procs or not 0 < pid <= PID_MAX_LIMIT:
        raise oserror(EINVAL, f"spawn: pid {pid} is taken or invalid (1..{PID_MAX_LIMIT})")
    k.next_pid = pid + 1
    lim = k.era.memlock_default(k.page_size)
    k.procs[pid] = Process(pid=pid, name=str(name), uid=int(uid), node=int(node),
                           mems_allowed=mems, top_cpuset=mems_allowed is None,
                           page_shift=k.page_shift, has_mm=not kthread,
                           memlock_cur=lim, memlock_max=lim)
    return pid


def exit_task(k: Kernel, p: Process) -> None:
    """do_exit(): exit_mm() unmaps everything (frees what only it maps), then
    exit_files() closes the RDMA device, which deregisters the process's memory
    registrations: the pages they pinned, even those unmapped earlier, are released
    (and freed when that was their last reference). Then the task goes."""
    hugetlb = any(v.flags & VM_HUGETLB for v in p.vmas)
    for v in list(p.vmas):
        remove_vma(k, p, v)
    if hugetlb:  # their reservations went (hugetlb_vm_op_close())
        return_unused_surplus(k)
    for d in k.drivers_map.values():
        release_pins(k, d, [r for r in d.pins if r[0] == p.pid])
    del k.procs[p.pid]


# ---------------------------------------------------------------- fork

def fork(k: Kernel, pid, *, caller=None) -> int:
    """fork() of the process (the caller itself: another process cannot fork it):
    copy_process() + dup_mmap(). The child has the parent's credentials, cpuset, CPU
    node, resource limits, task policy and every VMA with its policy; VM_LOCKED and
    VM_LOCKONFAULT are cleared in its VMAs and mm->def_flags starts empty (mlockall's
    MCL_FUTURE is not inherited); long-term pins are not inherited.

    Page tables are copied only where a fault could not refill them (vma_needs_copy():
    PFN maps and VMAs with an anon_vma); private anonymous pages become shared
    copy-on-write (mapcount 2; the first write on either side copies), file and shmem
    pages are shared; a pinned anonymous page is copied for the child at once (since
    5.9: the pin stays with the parent's page). Returns the child's pid."""
    p = k.own_task(pid, caller, "fork")
    if not p.has_mm:
        raise oserror(EINVAL, f"fork: pid {p.pid} is a kernel thread")
    copies = _pinned_copies(k, p)  # the one allocation fork makes: before anything else
    cpid = max(k.next_pid, max(k.procs, default=0) + 1)
    k.next_pid = cpid + 1
    c = Process(pid=cpid, name=p.name, uid=p.uid, node=p.node, mems_allowed=p.mems_allowed,
                top_cpuset=p.top_cpuset,
                page_shift=p.page_shift, policy=p.policy, has_mm=True, def_flags=0,
                memlock_cur=p.memlock_cur, memlock_max=p.memlock_max, il_next=p.il_next)
    k.procs[cpid] = c
    f = k.f
    for v in p.vmas:
        cv = new_vma(c, v.start, v.length, v.flags & ~VM_LOCKED_MASK, v.backing, v.pgoff)
        cv.policy = v.policy
        cv.hpage_order = v.hpage_order
        insert_vma(c, cv)
        if v.anon is not None:
            _anon_vma_fork(k, c, v, cv)
        if not (v.flags & VM_PFNMAP or v.anon is not None):
            continue  # shared file/shmem pages: the child's faults find them
        offs, pfns = v.present()
        written, vals = v.written()
        cv.set_expects(written, vals)  # the child reads what the parent wrote
        new = copies.get(id(v))
        if new is not None:
            po, pp, npf = new
            pos = np.searchsorted(offs, po)
            pfns = pfns.copy()
            pfns[pos] = npf
            f.mapping[npf] = cv.anon.id
            f.index[npf] = cv.vpn + po - cv.anon.base_vpn
        cv.set_ptes(offs, pfns)
        real = pfns[pfns != k.zero_pfn]
        if new is not None:
            real = real[~np.isin(real, new[2])]
        f.mapcount[real] += 1  # page_dup_rmap(): the COW share (refcount derives)
    return cpid


def _anon_vma_fork(k: Kernel, c: Process, v: VMA, cv: VMA) -> None:
    """anon_vma_fork(): the child's VMA is linked to every anon_vma of the parent's
    (anon_vma_clone(): rmap walks of the COW-shared pages find it) and gets one of its
    own for the pages it will copy; 2.6.18 linked it into the parent's one anon_vma."""
    if not k.era.anon_vma_chains:
        cv.anon = v.anon
        cv.chain = list(v.chain)
        for a in cv.chain:
            a.vmas.append(cv)
        return
    av = AnonVMA(id=k.next_mapping_id(), pid=c.pid, base_vpn=v.anon.base_vpn)
    k.mappings[av.id] = av
    cv.anon = av
    cv.chain = list(v.chain) + [av]
    for a in cv.chain:
        a.vmas.append(cv)


def _pinned_copies(k: Kernel, p: Process) -> dict:
    """copy_present_page(): every pinned anonymous page of a private mapping gets a copy
    for the child now (folio_try_dup_anon_rmap_pte() fails on a maybe-DMA-pinned page).
    Returns {id(parent VMA): (offsets, parent PFNs, child PFNs)}; all or nothing
    (ENOMEM: the fork fails and nothing changed)."""
    f = k.f
    out = {}
    got_all = []
    try:
        for v in p.vmas:
            if v.anon is None or not v.private:
                continue
            offs, pfns = v.present()
            keep = (pfns != k.zero_pfn)
            keep[keep] = (f.kind[pfns[keep]] == K_ANON) & \
                ((f.flags[pfns[keep]] & PG_pinned) != 0)
            if not keep.any():
                continue
            po, pp = offs[keep], pfns[keep]
            npf = np.full(po.size, -1, np.int64)
            for sel, pol in vma_policy_groups(p, v, po):
                o = po if sel is None else po[sel]
                targets, il = fault_targets(k, p, v, o, p.node, pol)
                g = alloc_by_target(k, p, pol, targets, p.node, il)
                got_all.append(g[g >= 0])
                if sel is None:
                    npf = g
                else:
                    npf[sel] = g
            if (npf < 0).any():
                raise oserror(ENOMEM, f"fork: no memory to copy the {po.size} pinned "
                                      f"page(s) of {v.start:#x} for the child")
            out[id(v)] = (po, pp, npf)
    except OSError:
        for g in got_all:
            if g.size:
                free_frames(k, g)
        raise
    for _po, pp, npf in out.values():
        f.kind[npf] = K_ANON
        f.mapcount[npf] = 1
        f.flags[npf] = PG_lru
        f.content[npf] = f.content[pp]
    return out


# ---------------------------------------------------------------- resource limits

def _resource(resource: str) -> str:
    r = str(resource).lower().removeprefix("rlimit_")
    if r not in RESOURCES:
        raise oserror(EINVAL, f"rlimit: resource {resource!r} is not modelled (only "
                              f"{', '.join(RESOURCES)})")
    return r


def _limit_target(k: Kernel, pid, caller, call: str) -> Process:
    """prlimit()'s target: the caller itself, or a process whose uids all equal the
    caller's (check_prlimit_permission()), or any process with CAP_SYS_RESOURCE; before
    prlimit() (2.6.36) only the caller itself."""
    p = k.task(pid, caller)
    verb = "read" if call == "getrlimit" else "change"
    if caller is not None:
        cred = k.credentials(caller)
        if cred.pid != p.pid and not k.era.has_prlimit:
            raise oserror(EPERM, f"{call}: kernel {k.era.name} has no prlimit(); only pid "
                                 f"{p.pid} itself can {verb} its limits")
        if cred.pid != p.pid and cred.uid != 0 and cred.uid != p.uid:
            raise oserror(EPERM, f"{call}: uid {cred.uid} may not {verb} the limits of pid "
                                 f"{p.pid} (uid {p.uid})")
    return p


def getrlimit(k: Kernel, pid, resource: str = "memlock", *, caller=None
              ) -> tuple[int, int]:
    """prlimit(pid, resource, NULL, &old): (soft, hard) in bytes; RLIM_INFINITY for no
    limit."""
    p = _limit_target(k, pid, caller, "getrlimit")
    _resource(resource)
    return p.memlock_cur, p.memlock_max


def setrlimit(k: Kernel, pid, resource: str, soft: int, hard: int | None = None, *,
              caller=None) -> None:
    """prlimit(pid, resource, &new, NULL) (setrlimit() for the caller itself), in
    do_prlimit()'s order: a soft limit above the hard one is EINVAL; raising the hard
    limit needs CAP_SYS_RESOURCE (EPERM). hard None keeps the current hard limit."""
    p = _limit_target(k, pid, caller, "setrlimit")
    _resource(resource)
    new_max = p.memlock_max if hard is None else _rlim(hard, "hard")
    new_cur = _rlim(soft, "soft")
    if new_cur > new_max:
        raise oserror(EINVAL, f"setrlimit: soft limit {new_cur} is above the hard limit "
                              f"{new_max}")
    if new_max > p.memlock_max and k.credentials(caller).uid != 0:
        raise oserror(EPERM, f"setrlimit: raising the hard limit of pid {p.pid} needs "
                             f"CAP_SYS_RESOURCE")
    p.memlock_cur, p.memlock_max = new_cur, new_max


def _rlim(x, what: str) -> int:
    """An rlim_t: 0 .. RLIM_INFINITY."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{what} limit must be an integer, not {type(x).__name__}")
    x = int(x)
    if x < 0 or x > RLIM_INFINITY:
        raise oserror(EINVAL, f"setrlimit: {what} limit {x} is outside 0..RLIM_INFINITY")
    return x
