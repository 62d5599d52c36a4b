"""Processes: creation and exit (kernel/fork.c, kernel/exit.c's exit_mm())."""

from __future__ import annotations

from ..constants import EINVAL, oserror
from ..nodemask import nodes_str, parse_nodes
from .drivers import unpin_range
from .memory import remove_vma
from .state import Kernel, Process


def spawn(k: Kernel, name: str, uid: int = 0, node: int = 0, mems_allowed=None, *,
          pid: int | None = None, kthread: bool = False) -> int:
    """A new process running on `node` with cpuset mems `mems_allowed` (None: every
    node); kthread: a kernel thread (no address space). Returns its pid."""
    if node not in k.nodes:
        raise oserror(EINVAL, f"spawn: no node {node} (nodes {nodes_str(k.nodes)})")
    if not k.node(node).cpus and not kthread:
        raise oserror(EINVAL, f"spawn: node {node} has no CPUs to run on")
    if int(uid) < 0:
        raise oserror(EINVAL, f"spawn: uid {uid} is negative")
    mems = frozenset(k.nodes) if mems_allowed is None else frozenset(
        parse_nodes(mems_allowed, "mems_allowed"))
    bad = [n for n in mems if n not in k.nodes]
    if bad or not mems:
        raise oserror(EINVAL, f"spawn: cpuset mems {nodes_str(mems) or '(empty)'} "
                              f"names nodes that do not exist")
    if pid is None:
        pid = max(k.next_pid, max(k.procs, default=0) + 1)
    elif pid in k.procs or pid <= 0:
        raise oserror(EINVAL, f"spawn: pid {pid} is taken or invalid")
    k.next_pid = pid + 1
    k.procs[pid] = Process(pid=pid, name=str(name), uid=int(uid), node=int(node),
                           mems_allowed=mems, page_shift=k.page_shift, has_mm=not kthread)
    return pid


def exit_task(k: Kernel, p: Process) -> None:
    """exit_mm(): drop the long-term pins the process took, unmap everything (frees
    what only it maps), and remove it."""
    for d in k.drivers_map.values():
        for (ppid, a, ln) in list(d.pins):
            if ppid == p.pid:
                unpin_range(k, p, a, ln, d)
    for v in list(p.vmas):
        remove_vma(k, p, v)
    del k.procs[p.pid]
