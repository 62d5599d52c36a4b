"""Cpusets and memory hotplug (kernel/cgroup/cpuset.c, mm/mempolicy.c): a task's
effective mems are its cpuset's mems that have memory (N_MEMORY). When memory hotplug
changes N_MEMORY, cpuset_handle_hotplug() -> update_tasks_nodemask() rebinds every
task whose effective mems changed: its own policy (mpol_rebind_task()) and its VMAs'
policies (mpol_rebind_mm() -> mpol_rebind_policy()). Shared (shmem) policies live on
the object, not in a VMA, and are not rebound. Imports nothing from the rest of mm/
but the address-space types."""

from __future__ import annotations

from dataclasses import replace

from ..constants import (
    MPOL_BIND,
    MPOL_F_RELATIVE_NODES,
    MPOL_F_STATIC_NODES,
    MPOL_INTERLEAVE,
    MPOL_WEIGHTED_INTERLEAVE,
)
from ..nodemask import node_remap
from .mm_types import Policy
from .state import Kernel

# the modes whose .rebind is mpol_rebind_nodemask(); MPOL_PREFERRED and
# MPOL_PREFERRED_MANY have mpol_rebind_preferred(), which only records the new mems,
# and MPOL_LOCAL is never rebound
NODEMASK_MODES = (MPOL_BIND, MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE)


def effective_mems(mems_allowed, memory_nodes) -> tuple[int, ...]:
    """A cpuset's effective mems: its mems that have memory."""
    return tuple(sorted(set(mems_allowed) & set(memory_nodes)))


def rebind_policy(pol: Policy | None, old: tuple[int, ...], new: tuple[int, ...]
                  ) -> Policy | None:
    """mpol_rebind_policy() -> mpol_rebind_nodemask(): STATIC keeps the user's nodes
    that are in the new mems, RELATIVE folds the user's nodes onto them
    (mpol_relative_nodemask()), any other mask is remapped position by position
    (nodes_remap() from the old mems to the new); an empty result becomes the new
    mems."""
    if pol is None or pol.mode not in NODEMASK_MODES or not new:
        return pol
    if pol.flags & MPOL_F_STATIC_NODES:
        tmp = {n for n in pol.user_nodes if n in new}
    elif pol.flags & MPOL_F_RELATIVE_NODES:
        tmp = {new[n % len(new)] for n in pol.user_nodes}
    elif old == new:
        return pol
    else:
        tmp = {node_remap(old, new, n) for n in pol.nodes}
    nodes = tuple(sorted(tmp)) or new
    return pol if nodes == pol.nodes else replace(pol, nodes=nodes)


def rebind_after_hotplug(k: Kernel, before: tuple[int, ...]) -> None:
    """N_MEMORY went from `before` to what k.memory_nodes() says now: rebind every
    task whose effective mems changed (the eras whose policies are intersected with
    the cpuset; 2.6.18 had no memory hot-remove)."""
    after = tuple(k.memory_nodes())
    if after == tuple(before) or not k.era.policy_mask_intersects:
        return
    for p in k.procs.values():
        old = effective_mems(p.mems_allowed, before)
        if p.top_cpuset:  # top_cpuset.mems_allowed is N_MEMORY: a new node joins it
            p.mems_allowed = p.mems_allowed | frozenset(after)
        new = effective_mems(p.mems_allowed, after)
        if not new:
            continue  # the cpuset has no memory left: nothing to bind to
        p.policy = rebind_policy(p.policy, old, new)
        for v in p.vmas:
            v.policy = rebind_policy(v.policy, old, new)
