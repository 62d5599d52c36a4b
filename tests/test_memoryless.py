"""Memoryless and CPU-less nodes (issue 14 item 2): the top cpuset's mems are
node_states[N_MEMORY]; cpusets, policies and migration targets are checked against
N_MEMORY, move_pages' ENODEV too; a memoryless node's CPUs allocate from the nearest
node with memory."""

import errno

import pytest
from conftest import err

import engine
from engine import (
    MPOL_BIND,
    MPOL_F_ADDR,
    MPOL_F_MEMS_ALLOWED,
    MPOL_F_RELATIVE_NODES,
    MPOL_F_STATIC_NODES,
    MPOL_INTERLEAVE,
    MPOL_MF_MOVE,
    MPOL_PREFERRED,
)
from engine.machines.description import DescriptionError

PS = 4096
# node 0: CPUs + memory; 1: CPUs, no memory; 2: CPUs + memory; 3: memory, no CPUs
DESC = {
    "machine": {"name": "ml", "block_size": "4M", "kernel": "2%"},
    "nodes": [{"id": 0, "cpus": "0-1", "zones": {"DMA": "4M", "Normal": "32M"}},
              {"id": 1, "cpus": "2-3"},
              {"id": 2, "cpus": "4-5", "zones": {"Normal": "32M"}},
              {"id": 3, "cpus": "", "zones": {"Movable": "32M"}}],
    "distances": {"matrix": [[10, 12, 21, 24], [12, 10, 21, 24], [21, 21, 10, 28],
                             [24, 24, 28, 10]]},
}


def machine() -> engine.Machine:
    return engine.Machine.from_description(DESC)


def test_top_cpuset_is_the_nodes_with_memory():
    """cpuset_init_smp(): top_cpuset.mems_allowed = node_states[N_MEMORY]; a process's
    default mems and get_mempolicy(MPOL_F_MEMS_ALLOWED) never hold node 1."""
    m = machine()
    pid = m.spawn("p")
    assert m.process(pid).mems_allowed == {0, 2, 3}
    assert m.get_mempolicy(pid, flags=MPOL_F_MEMS_ALLOWED) == (0, (0, 2, 3))
    assert m.credentials(None).mems_allowed == {0, 2, 3}


def test_a_cpuset_with_a_memoryless_node_is_EINVAL():
    """update_nodemask(): mems not a subset of the top cpuset's -> EINVAL."""
    m = machine()
    assert err(lambda: m.spawn("p", mems_allowed={1})) == errno.EINVAL
    assert err(lambda: m.spawn("p", mems_allowed={0, 1})) == errno.EINVAL
    assert m.process(m.spawn("p", mems_allowed={0, 3})).mems_allowed == {0, 3}
    d = dict(DESC, processes=[{"name": "x", "cpuset": "1"}])
    with pytest.raises(DescriptionError, match="without memory"):
        engine.Machine.from_description(d)


def test_memoryless_cpus_run_and_allocate_from_the_nearest_memory():
    """numa_mem_id(): a CPU of a memoryless node allocates from the first node with
    memory in its zonelist; a CPU-less node runs nothing."""
    m = machine()
    pid = m.spawn("p", node=1)
    a = m.mmap(pid, 4 * PS)
    m.touch(pid, a, 4 * PS)
    assert set(m.move_pages(pid, [a + i * PS for i in range(4)])) == {0}
    assert err(lambda: m.spawn("q", node=3)) == errno.EINVAL


def test_policies_never_hold_a_memoryless_node():
    """mpol_set_nodemask(): the mask is intersected with cpuset mems & N_MEMORY; nothing
    left -> EINVAL (set_mempolicy(2), mbind(2) ERRORS)."""
    m = machine()
    pid = m.spawn("p")
    for mode in (MPOL_BIND, MPOL_INTERLEAVE, MPOL_PREFERRED):
        assert err(lambda mode=mode: m.set_mempolicy(pid, mode, [1])) == errno.EINVAL
    m.set_mempolicy(pid, MPOL_BIND, [0, 1])
    assert m.get_mempolicy(pid) == (MPOL_BIND, (0,))
    m.set_mempolicy(pid, MPOL_PREFERRED, [1, 3])
    assert m.get_mempolicy(pid) == (MPOL_PREFERRED, (3,))
    a = m.mmap(pid, PS)
    assert err(lambda: m.mbind(pid, a, PS, MPOL_BIND, [1])) == errno.EINVAL


def test_migration_targets_must_have_memory():
    """kernel_migrate_pages(): new &= the caller's cpuset mems (only nodes with memory):
    {1} leaves nothing -> EINVAL; for a caller without CAP_SYS_NICE, new outside the
    target's cpuset is EPERM first. do_pages_move(): !node_state(node, N_MEMORY) ->
    ENODEV."""
    m = machine()
    pid = m.spawn("p", uid=1000)
    a = m.mmap(pid, 4 * PS)
    m.touch(pid, a, 4 * PS)
    assert err(lambda: m.migrate_pages(pid, [0], [1])) == errno.EINVAL
    assert err(lambda: m.migrate_pages(pid, [0], [1], caller=pid)) == errno.EPERM
    assert m.migrate_pages(pid, [0], [1, 3]) == 0  # node 1 dropped: all to node 3
    assert set(m.move_pages(pid, [a + i * PS for i in range(4)])) == {3}
    assert err(lambda: m.move_pages(pid, [a], [1], MPOL_MF_MOVE)) == errno.ENODEV
    assert m.move_pages(pid, [a], [2], MPOL_MF_MOVE) == [2]


def test_a_node_that_loses_its_memory_leaves_every_cpuset():
    """Offlining node 3's memory drops it from N_MEMORY: new processes' cpusets, the
    cpuset mems get_mempolicy reports and migration targets lose it."""
    m = machine()
    pid = m.spawn("p")
    m.offline(3, "Movable")
    assert m.get_mempolicy(pid, flags=MPOL_F_MEMS_ALLOWED) == (0, (0, 2))
    assert m.process(m.spawn("q")).mems_allowed == {0, 2}
    a = m.mmap(pid, PS)
    m.touch(pid, a, PS)
    assert err(lambda: m.migrate_pages(pid, [0], [3])) == errno.EINVAL
    assert err(lambda: m.move_pages(pid, [a], [3], MPOL_MF_MOVE)) == errno.ENODEV
    m.check()


def test_a_task_of_the_top_cpuset_regains_a_node_that_comes_online():
    """The top cpuset's mems are N_MEMORY (cpuset_hotplug_update_tasks() of
    top_cpuset): a process spawned while node 3 had no memory gets it when node 3 comes
    back online (get_mempolicy MPOL_F_MEMS_ALLOWED, a bind to it, its pages there), and
    so does its fork() child; a process in a cpuset of its own does not."""
    m = machine()
    m.offline(3, "Movable")
    pid, own = m.spawn("p"), m.spawn("q", mems_allowed="0,2")
    assert m.process(pid).mems_allowed == {0, 2}
    c = m.fork(pid)
    m.online(3, "Movable")
    for x in (pid, c):
        assert m.get_mempolicy(x, flags=MPOL_F_MEMS_ALLOWED) == (0, (0, 2, 3))
    assert m.get_mempolicy(own, flags=MPOL_F_MEMS_ALLOWED) == (0, (0, 2))
    m.set_mempolicy(pid, MPOL_BIND, [3])
    a = m.mmap(pid, PS)
    m.touch(pid, a, PS)
    assert m.move_pages(pid, [a]) == [3]
    m.check()


def test_policies_are_rebound_when_a_node_loses_or_regains_its_memory():
    """cpuset_handle_hotplug() -> update_tasks_nodemask(): when N_MEMORY changes, each
    task's policy and its VMAs' policies are rebound to its new effective mems
    (mpol_rebind_policy() -> mpol_rebind_nodemask()): a plain mask is remapped position
    by position (nodes_remap(): node 3, the 3rd of 0,2,3, becomes the 3rd mod 2 of 0,2:
    node 0), STATIC keeps the user's nodes that are left (none: the new mems), RELATIVE
    folds the user's nodes onto the new mems; PREFERRED only records them
    (mpol_rebind_preferred()). bind:3 then allocates on node 0, where it ran out of
    memory before the rebind was modelled. Onlining rebinds again: a remapped mask
    keeps what it became, STATIC and RELATIVE come back to node 3."""
    m = machine()
    a, b, c, d, e = (m.spawn(n) for n in "abcde")
    m.set_mempolicy(a, MPOL_BIND, [3])
    m.set_mempolicy(b, MPOL_BIND, [2, 3])
    m.set_mempolicy(c, MPOL_INTERLEAVE | MPOL_F_STATIC_NODES, [3])
    m.set_mempolicy(d, MPOL_BIND | MPOL_F_RELATIVE_NODES, [2])
    m.set_mempolicy(e, MPOL_PREFERRED, [3])
    x = m.mmap(a, 4 * PS)
    m.mbind(a, x, 4 * PS, MPOL_INTERLEAVE, [2, 3])
    assert m.get_mempolicy(d) == (MPOL_BIND | MPOL_F_RELATIVE_NODES, (2,))  # user mask
    assert m.process(d).policy.nodes == (3,)  # the 3rd node of 0,2,3
    m.offline(3, "Movable")
    assert m.get_mempolicy(a) == (MPOL_BIND, (0,))
    assert m.get_mempolicy(b) == (MPOL_BIND, (0, 2))
    assert m.process(c).policy.nodes == (0, 2)
    assert m.process(d).policy.nodes == (0,)
    assert m.get_mempolicy(e) == (MPOL_PREFERRED, (3,))
    assert m.get_mempolicy(a, x, MPOL_F_ADDR) == (MPOL_INTERLEAVE, (0, 2))
    y = m.mmap(a, 2 * PS)
    m.touch(a, y, 2 * PS)  # was ENOMEM: bind:3 with node 3 gone
    assert set(m.move_pages(a, [y, y + PS])) == {0}
    m.online(3, "Movable")
    assert m.get_mempolicy(a) == (MPOL_BIND, (0,))
    assert m.get_mempolicy(b) == (MPOL_BIND, (0, 2))
    assert m.process(c).policy.nodes == (3,)
    assert m.process(d).policy.nodes == (3,)
    m.check()


def test_memoryless_preset():
    """saves/memoryless.toml shows what its header says: N_MEMORY (0,2-3) against the
    online nodes in cpusets, policies and targets, and a shared tmpfs policy."""
    m = engine.load("saves/memoryless.toml")
    m.check()
    assert m.memory_nodes() == [0, 2, 3] and m.node(3).cpus == ()
    for pid in m.pids:
        assert 1 not in m.process(pid).mems_allowed
    assert "(nodes with memory: 0,2-3)" in m.hardware()


def test_2_6_18_refused_masks_instead_of_intersecting_them():
    """2.6.18 (before node_states): contextualize_policy() refused a set_mempolicy mask
    outside the cpuset and mpol_check_policy() one with a node that is not online
    (EINVAL) where today's mpol_set_nodemask() intersects; mbind checked only the
    online map; get_mempolicy had no MPOL_F_MEMS_ALLOWED (2.6.24); migrate_pages took
    its new nodes as given (a memoryless node's allocations fall back to the nearest
    memory)."""
    m = machine()
    pid = m.spawn("p", mems_allowed={0, 2})
    a = m.mmap(pid, 2 * PS)
    m.touch(pid, a, 2 * PS)
    m.set_mempolicy(pid, MPOL_BIND, [0, 3])  # today: intersected with the cpuset
    assert m.get_mempolicy(pid) == (MPOL_BIND, (0,))
    m.era = "2.6.18"
    with pytest.raises(OSError, match=r"nodes 3 are outside the cpuset \(0,2\)") as e:
        m.set_mempolicy(pid, MPOL_BIND, [0, 3])  # the message names only node 3
    assert e.value.errno == errno.EINVAL
    assert err(lambda: m.set_mempolicy(pid, MPOL_BIND, [0, 7])) == errno.EINVAL
    m.mbind(pid, a, PS, MPOL_BIND, [0, 3])  # mbind: the online map only
    assert m.get_mempolicy(pid, a, 2) == (MPOL_BIND, (0, 3))
    assert err(lambda: m.get_mempolicy(pid, flags=MPOL_F_MEMS_ALLOWED)) == errno.EINVAL
    assert m.migrate_pages(pid, [0], [1]) == 0  # to memoryless node 1: lands on node 0
    assert set(m.move_pages(pid, [a, a + PS])) == {0}
    m.check()
