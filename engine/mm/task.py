"""Processes: creation and exit (kernel/fork.c, kernel/exit.c's exit_mm())."""

from __future__ import annotations

from ..constants import EINVAL, oserror
from ..nodemask import nodes_str, parse_nodes
from .drivers import release_pins
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
    """do_exit(): exit_mm() unmaps everything (frees what only it maps), then
    exit_files() closes the RDMA device, which deregisters the process's memory
    registrations: the pages they pinned, even those unmapped earlier, are released
    (and freed when that was their last reference). Then the task goes."""
    for v in list(p.vmas):
        remove_vma(k, p, v)
    for d in k.drivers_map.values():
        release_pins(k, d, [r for r in d.pins if r[0] == p.pid])
    del k.procs[p.pid]
