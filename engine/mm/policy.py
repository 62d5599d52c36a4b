"""Memory policies: validation (mpol_new) and placement, the part of mm/mempolicy.c
that faults and migrations allocate by (alloc_pages_mpol). The system calls that set
and use policies are in mempolicy.py.

Placement is a table per mode, as mempolicy.c's mpol_ops[]: each entry gives the
intended node of every page of a fault (`targets`), and the fallback order an
allocation for one target walks (`fallback`). Interleave computes its node from
the page's index (the exact formula of interleave_nid()/weighted_interleave_nid())."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from ..constants import (
    EINVAL,
    MODE_NAMES,
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_F_NUMA_BALANCING,
    MPOL_F_RELATIVE_NODES,
    MPOL_F_STATIC_NODES,
    MPOL_INTERLEAVE,
    MPOL_LOCAL,
    MPOL_MAX,
    MPOL_MODE_FLAGS,
    MPOL_PREFERRED,
    MPOL_PREFERRED_MANY,
    MPOL_WEIGHTED_INTERLEAVE,
    oserror,
)
from ..nodemask import nodes_str
from ..vec import distinct
from .mm_types import VMA, Backing, Policy, Process
from .page_alloc import account_alloc, alloc_frames, zonelist
from .state import Kernel

INTERLEAVE_MODES = (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE)


# ---------------------------------------------------------------- validation

def sanitize_mode(k: Kernel, mode: int) -> tuple[int, int]:
    """sanitize_mpol_flags(): split mode flags off and check them."""
    if not isinstance(mode, (int, np.integer)) or isinstance(mode, bool):
        raise oserror(EINVAL, f"mode {mode!r} is not a number")
    mode = int(mode)
    flags = mode & MPOL_MODE_FLAGS
    lmode = mode & ~MPOL_MODE_FLAGS
    if lmode < 0 or lmode >= MPOL_MAX or lmode not in k.era.policy_modes:
        raise oserror(EINVAL, f"mode {mode} is not a policy mode of kernel {k.era.name}")
    if (flags & MPOL_F_STATIC_NODES) and (flags & MPOL_F_RELATIVE_NODES):
        raise oserror(EINVAL, "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES together")
    if flags & MPOL_F_NUMA_BALANCING and lmode not in (MPOL_BIND, MPOL_PREFERRED_MANY):
        raise oserror(EINVAL, "MPOL_F_NUMA_BALANCING is only valid with MPOL_BIND or "
                              "MPOL_PREFERRED_MANY")
    return lmode, flags


def mpol_new(k: Kernel, p: Process, mode: int, flags: int, nodes: tuple[int, ...]
             ) -> Policy | None:
    """mpol_new() + mpol_set_nodemask(): None stands for MPOL_DEFAULT. The mask is
    intersected with the task's cpuset mems and N_MEMORY (a memoryless node is never a
    policy node); 2.6.18's mpol_check_policy() instead refused a mask with a node that
    is not online (EINVAL) and kept it as given."""
    if mode == MPOL_DEFAULT:
        if nodes:
            raise oserror(EINVAL, "MPOL_DEFAULT takes an empty nodemask")
        return None
    if mode == MPOL_PREFERRED and not nodes:
        if flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES):
            raise oserror(EINVAL, "MPOL_PREFERRED with an empty mask cannot take "
                                  "STATIC/RELATIVE flags")
        # an empty preferred mask means local allocation
        return Policy(MPOL_LOCAL if k.era.get_mempolicy_reports_local else MPOL_PREFERRED,
                      (), flags | (0 if k.era.get_mempolicy_reports_local else 1 << 16))
    if mode == MPOL_LOCAL:
        if nodes or flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES):
            raise oserror(EINVAL, "MPOL_LOCAL takes an empty nodemask and no mode flags")
        return Policy(MPOL_LOCAL)
    if not nodes:
        raise oserror(EINVAL, f"{MODE_NAMES[mode]} needs a non-empty nodemask")
    if not k.era.policy_mask_intersects:
        off = [n for n in nodes if n not in k.nodes]
        if off:
            raise oserror(EINVAL, f"node {off[0]} is not online (mpol_check_policy())")
        return Policy(mode, (nodes[0],) if mode == MPOL_PREFERRED else nodes, flags)
    allowed = sorted(set(p.mems_allowed) & set(k.memory_nodes()))
    if flags & MPOL_F_RELATIVE_NODES:
        # mpol_relative_nodemask(): fold onto the allowed set
        w = len(allowed)
        eff = tuple(sorted({allowed[n % w] for n in nodes})) if w else ()
    else:
        eff = tuple(n for n in nodes if n in allowed)
    if not eff:
        raise oserror(EINVAL, f"nodes {nodes_str(nodes)} have no memory in the cpuset "
                              f"(mems_allowed {nodes_str(allowed)})")
    user = nodes if flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) else ()
    if mode == MPOL_PREFERRED:
        eff = (eff[0],)  # only the first node of the mask is kept
    return Policy(mode, eff, flags, user)


def vma_policy(v: VMA, off: int = 0) -> Policy | None:
    """__get_vma_policy() at page offset `off` of the VMA: a shmem/tmpfs mapping asks
    its object (vm_ops->get_policy = shmem_get_policy(): the shared policy of that page
    index, whatever the VMA's own vm_policy); any other VMA answers its vm_policy."""
    b = v.backing
    if b is not None and b.shmem:
        return shared_policy_at(b, v.pgoff + off)
    return v.policy


def effective_policy(p: Process, v: VMA | None, off: int = 0) -> Policy | None:
    """get_vma_policy() falling back to the task policy (None: MPOL_DEFAULT)."""
    if v is not None:
        pol = vma_policy(v, off)
        if pol is not None:
            return pol
    return p.policy


# ---------------------------------------------------------------- shared policies

def shared_policy_at(b: Backing, idx: int) -> Policy | None:
    """mpol_shared_policy_lookup() of one page index."""
    for s0, s1, pol in b.shared_policy:
        if s0 <= idx < s1:
            return pol
    return None


def shared_policy_groups(b: Backing, idx: np.ndarray
                         ) -> Iterator[tuple[np.ndarray | None, Policy | None]]:
    """mpol_shared_policy_lookup() for many page indexes: (positions or None for all,
    policy or None) per range of the object's shared policy the indexes fall in."""
    sp = b.shared_policy
    if not sp:
        yield None, None
        return
    starts = np.fromiter((r[0] for r in sp), np.int64, len(sp))
    ends = np.fromiter((r[1] for r in sp), np.int64, len(sp))
    pos = np.searchsorted(starts, idx, side="right") - 1
    inside = (pos >= 0) & (idx < ends[np.maximum(pos, 0)])
    grp = np.where(inside, pos, -1)
    for g in distinct(grp).tolist():
        sel = np.flatnonzero(grp == g)
        yield (None if sel.size == idx.size else sel), (None if g < 0 else sp[g][2])


def set_shared_policy(b: Backing, start: int, end: int, pol: Policy | None) -> None:
    """mpol_set_shared_policy() -> shared_policy_replace(): the ranges overlapping
    [start, end) are cut back (or split) and, unless the policy is MPOL_DEFAULT, a new
    range holds the policy."""
    out = []
    for s0, s1, old in b.shared_policy:
        if s1 <= start or s0 >= end:
            out.append((s0, s1, old))
            continue
        if s0 < start:
            out.append((s0, start, old))
        if s1 > end:
            out.append((end, s1, old))
    if pol is not None:
        # sp_alloc() keeps its own copy (mpol_dup())
        out.append((start, end, replace(pol, nodes=tuple(list(pol.nodes)),
                                        user_nodes=tuple(list(pol.user_nodes)))))
    b.shared_policy = sorted(out, key=lambda r: r[0])


def vma_policy_groups(p: Process, v: VMA, offs: np.ndarray
                      ) -> Iterator[tuple[np.ndarray | None, Policy | None]]:
    """The effective policy of each page at VMA offsets `offs`: (positions or None for
    all, policy). One group except where a shmem object's shared policy has several
    ranges over the pages."""
    b = v.backing
    if b is None or not b.shmem or not b.shared_policy:
        yield None, effective_policy(p, v)
        return
    for sel, pol in shared_policy_groups(b, v.pgoff + offs):
        yield sel, (pol if pol is not None else p.policy)


# ---------------------------------------------------------------- placement

def local_node(k: Kernel, cpu: int) -> int:
    """numa_node_id() for allocation: the first node with memory in the zonelist of
    the CPU's node (a memoryless node's CPUs allocate from the nearest one)."""
    zl = zonelist(k, cpu)
    return zl[0] if zl else cpu


def bind_order(k: Kernel, pol: Policy, cpu: int, allowed) -> list[int]:
    mask = [n for n in pol.nodes if n in allowed]
    if k.era.bind_lowest_first:
        return sorted(mask)  # before 2.6.26: lowest node id first
    return zonelist(k, cpu, set(mask))  # since 2.6.26: nearest to the CPU first


def interleave_nodes(k: Kernel, pol: Policy, ilx: np.ndarray) -> np.ndarray:
    """The interleave formula: node = the (ilx mod w)-th node of the mask; weighted:
    t = ilx mod sum(weights), walk the nodes subtracting weights."""
    nodes = np.asarray(pol.nodes, dtype=np.int64)
    if pol.mode == MPOL_WEIGHTED_INTERLEAVE:
        w = np.asarray([k.il_weight(int(n)) for n in nodes], dtype=np.int64)
        cum = np.cumsum(w)
        t = ilx % int(cum[-1])
        return nodes[np.searchsorted(cum, t, side="right")]
    return nodes[ilx % len(nodes)]


def interleave_index(k: Kernel, v: VMA, offs: np.ndarray) -> np.ndarray:
    """ilx = vm_pgoff + (addr - vm_start) >> PAGE_SHIFT; an anonymous VMA's vm_pgoff is
    vm_start >> PAGE_SHIFT; a shmem object's pages add its inode bias."""
    if v.backing is None or v.pfnmap:
        return (v.vpn + offs).astype(np.int64)
    if v.backing.shmem:
        return shmem_index(k, v.backing, v.pgoff + offs)
    return (v.pgoff + offs).astype(np.int64)


def shmem_index(k: Kernel, b: Backing, idx: np.ndarray) -> np.ndarray:
    """shmem_get_pgoff_policy(): ilx = i_ino + index ("bias interleave by inode number
    to distribute better across nodes"; the object's id is its inode number here);
    2.6.18's shmem_alloc_page() used the index alone."""
    bias = b.id if k.era.shmem_ino_bias else 0
    return (np.asarray(idx, np.int64) + bias).astype(np.int64)


@dataclass(frozen=True)
class ModeOps:
    """One row of the per-mode table: the node a fault intends (one for the whole
    fault), or None when the node depends on each page (interleave)."""

    intended: Callable[[Kernel, Policy | None, Process, int], int] | None
    fallback: Callable[[Kernel, Policy, Process, int, int], list[int]]


def _default_fallback(k: Kernel, pol, p: Process, target: int, cpu: int) -> list[int]:
    return zonelist(k, target, set(p.mems_allowed))


def _bind_fallback(k: Kernel, pol: Policy, p: Process, target: int, cpu: int) -> list[int]:
    order = bind_order(k, pol, cpu, set(p.mems_allowed))
    if target in order:
        order = [target] + [n for n in order if n != target]
    return order


def _many_fallback(k: Kernel, pol: Policy, p: Process, target: int, cpu: int) -> list[int]:
    allowed = set(p.mems_allowed)
    first = zonelist(k, cpu, set(pol.nodes) & allowed)
    return first + [n for n in zonelist(k, target, allowed) if n not in first]


def _bind_intended(k: Kernel, pol: Policy, p: Process, cpu: int) -> int:
    order = bind_order(k, pol, cpu, p.mems_allowed)
    return order[0] if order else cpu


def _preferred_intended(k: Kernel, pol: Policy, p: Process, cpu: int) -> int:
    return pol.nodes[0] if pol.nodes else local_node(k, cpu)


def _many_intended(k: Kernel, pol: Policy, p: Process, cpu: int) -> int:
    zl = zonelist(k, cpu, set(pol.nodes) & set(p.mems_allowed))
    return zl[0] if zl else local_node(k, cpu)


def _local_intended(k: Kernel, pol, p: Process, cpu: int) -> int:
    return local_node(k, cpu)


MODE_OPS: dict[int, ModeOps] = {
    MPOL_DEFAULT: ModeOps(_local_intended, _default_fallback),
    MPOL_LOCAL: ModeOps(_local_intended, _default_fallback),
    MPOL_PREFERRED: ModeOps(_preferred_intended, _default_fallback),
    MPOL_BIND: ModeOps(_bind_intended, _bind_fallback),
    MPOL_PREFERRED_MANY: ModeOps(_many_intended, _many_fallback),
    MPOL_INTERLEAVE: ModeOps(None, _default_fallback),
    MPOL_WEIGHTED_INTERLEAVE: ModeOps(None, _default_fallback),
}


def _ops(pol: Policy | None) -> ModeOps:
    return MODE_OPS[MPOL_DEFAULT if pol is None else pol.mode]


def fault_targets(k: Kernel, p: Process, v: VMA, offs: np.ndarray, cpu: int,
                  pol: Policy | None = ...) -> tuple[np.ndarray, np.ndarray | None]:
    """Intended node per page for a fault at VMA offsets `offs` under `pol` (default:
    the VMA's effective policy): (targets, read-only, interleave flags or None). The
    intended node is also numastat's preferred node."""
    if pol is ...:
        pol = effective_policy(p, v)
    ops = _ops(pol)
    if ops.intended is None:
        t = interleave_nodes(k, pol, interleave_index(k, v, offs))
        return t, np.ones(offs.size, bool)
    # one node for every page: a read-only view of it (an array of 4 Mi copies of it
    # cost 20 ms of page faults building the reference machine)
    return np.broadcast_to(np.int64(ops.intended(k, pol, p, cpu)), offs.shape), None


def task_targets(k: Kernel, p: Process, n: int, cpu: int
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """Allocations with no VMA (page cache): the task policy; interleave uses the
    per-task cursor (next node after the previous one, wrapping)."""
    pol = p.policy
    if pol is not None and pol.mode in INTERLEAVE_MODES:
        nodes = np.asarray(pol.nodes, dtype=np.int64)
        start = p.il_next
        p.il_next = int((start + n) % len(nodes))
        return nodes[(start + np.arange(n)) % len(nodes)], np.ones(n, bool)
    return np.full(n, _ops(pol).intended(k, pol, p, cpu), np.int64), None


def fallback_nodes(k: Kernel, p: Process, pol: Policy | None, target: int, cpu: int
                   ) -> list[int]:
    """The node order an allocation for `target` walks: the target's zonelist within
    the cpuset (BIND: only mask nodes; PREFERRED_MANY: mask nodes first)."""
    return _ops(pol).fallback(k, pol, p, target, cpu)


def alloc_by_target(k: Kernel, p: Process, pol: Policy | None, targets: np.ndarray,
                    cpu: int, il: np.ndarray | None, clean: bool = True) -> np.ndarray:
    """alloc_pages_mpol(): one frame per entry of `targets` (intended node per page),
    walking that node's fallback order under the policy; numastat is charged with the
    intended node as preferred. Returns PFNs, -1 where memory ran out. clean=False:
    the caller writes the frames' whole entries (alloc_frames)."""
    if targets.size == 0:
        return np.full(0, -1, np.int64)
    t0 = int(targets[0])
    one = bool((targets == t0).all())
    if one:
        # one intended node (every policy but interleave): no grouping needed
        got, nodes = alloc_frames(k, targets.size, fallback_nodes(k, p, pol, t0, cpu),
                                  clean=clean)
        if got.size == targets.size:
            # every page got a frame: the frames are the answer (no arrays of -1 to
            # fill first: two of 32 MiB for a 16 GiB process, 70 ms of page faults)
            account_alloc(k, nodes, targets, cpu, il)
            return got
    out = np.full(targets.size, -1, np.int64)
    znodes = np.full(targets.size, -1, np.int64)
    if one:
        out[: got.size] = got
        znodes[: got.size] = nodes
    else:
        for t in distinct(targets):
            sel = np.flatnonzero(targets == t)
            got, nodes = alloc_frames(k, sel.size, fallback_nodes(k, p, pol, int(t), cpu),
                                      clean=clean)
            out[sel[: got.size]] = got
            znodes[sel[: got.size]] = nodes
    ok = out >= 0
    if ok.all():
        account_alloc(k, znodes, targets, cpu, il)
    elif ok.any():
        account_alloc(k, znodes[ok], targets[ok], cpu, None if il is None else il[ok])
    return out


def alloc_shmem(k: Kernel, p: Process, b: Backing, idx: np.ndarray, cpu: int) -> np.ndarray:
    """shmem_alloc_folio(): a page for each index of a shmem/tmpfs object, by the
    object's shared policy of that index, else the task policy (never a VMA's), with
    the interleave index of shmem_get_pgoff_policy(). Returns PFNs, -1 where memory
    ran out."""
    out = np.full(idx.size, -1, np.int64)
    for sel, sp in shared_policy_groups(b, idx):
        pol = sp if sp is not None else p.policy
        gi = idx if sel is None else idx[sel]
        ops = _ops(pol)
        if ops.intended is None:
            targets = interleave_nodes(k, pol, shmem_index(k, b, gi))
            il = np.ones(gi.size, bool)
        else:
            targets, il = np.full(gi.size, ops.intended(k, pol, p, cpu), np.int64), None
        got = alloc_by_target(k, p, pol, targets, cpu, il)
        if sel is None:
            out[:] = got
        else:
            out[sel] = got
    return out


def alloc_for_task(k: Kernel, p: Process, n: int, cpu: int) -> np.ndarray:
    """Page-cache allocation: the task policy, no VMA. Returns the PFNs obtained
    (fewer than n when memory runs out)."""
    targets, il = task_targets(k, p, n, cpu)
    pfns = alloc_by_target(k, p, p.policy, targets, cpu, il)
    return pfns[pfns >= 0]
