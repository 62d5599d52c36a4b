"""Failed calls change nothing (issue 11, item 9): every public Machine call given an
argument of the wrong type raises TypeError, one outside what a C caller could pass
raises OSError(EINVAL), a node that does not exist is ENODEV, and none of them acts
on a coerced value (kill(1.9) killed init; munmap(pid, -4096, 2**64) succeeded;
meminfo(9) printed zeros; distance(-1, 0) wrapped). A workload that fails leaves no
mapping behind."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from conftest import fingerprint, small

import engine
from engine.constants import MAP_SHARED, MPOL_BIND, MPOL_F_ADDR

PAGE = 4096
NAN, INF = float("nan"), float("inf")
# never an integer: floats (even integral ones), bools, strings, containers, None
NOT_INT = [1.9, 1.0, np.float64(1.0), True, np.bool_(True), "1", b"1", [1], (1,), 1 + 0j,
           NAN, INF, None]
NOT_OPT_INT = [v for v in NOT_INT if v is not None]
NOT_BOOL = [1, 0, "yes", "", None, 1.9, np.int64(1), [True]]
NOT_STR = [1, 1.9, True, b"Normal", ["Normal"], None]
NOT_OPT_STR = [v for v in NOT_STR if v is not None]
TOO_WIDE = [2**64, -(2**63) - 1, 2**100]


def machine():
    m = small(nodes=3, size="8M", movable="8M",
              drivers=[{"name": "rdma0", "kind": "rdma", "node": 0},
                       {"name": "unc", "kind": "uncached", "node": 1, "size": "64K"}])
    p = m.spawn("a", pid=10)
    x = m.mmap(p, 16 * PAGE)
    m.touch(p, x, 16 * PAGE)
    return m, p, x


M, P, X = machine()

# name -> (call taking the bad value, values it must refuse)
CALLS = {
    "kill(pid)": (lambda m, v: m.kill(v), NOT_INT),
    "spawn(name)": (lambda m, v: m.spawn(v), NOT_STR),
    "spawn(uid)": (lambda m, v: m.spawn("z", uid=v), NOT_INT),
    "spawn(node)": (lambda m, v: m.spawn("z", node=v), NOT_INT),
    "spawn(pid)": (lambda m, v: m.spawn("z", pid=v), NOT_OPT_INT),
    "spawn(kthread)": (lambda m, v: m.spawn("z", kthread=v), NOT_BOOL),
    "mmap(length)": (lambda m, v: m.mmap(P, v), NOT_INT),
    "mmap(prot)": (lambda m, v: m.mmap(P, PAGE, v), NOT_INT),
    "mmap(flags)": (lambda m, v: m.mmap(P, PAGE, 3, v), NOT_INT),
    "mmap(file)": (lambda m, v: m.mmap(P, PAGE, 3, MAP_SHARED, file=v), NOT_OPT_STR),
    "mmap(driver)": (lambda m, v: m.mmap(P, PAGE, 3, MAP_SHARED, driver=v), NOT_OPT_STR),
    "munmap(addr)": (lambda m, v: m.munmap(P, v, PAGE), NOT_INT),
    "munmap(length)": (lambda m, v: m.munmap(P, X, v), NOT_INT),
    "touch(addr)": (lambda m, v: m.touch(P, v, PAGE), NOT_INT),
    "touch(length)": (lambda m, v: m.touch(P, X, v), NOT_INT),
    "touch(write)": (lambda m, v: m.touch(P, X, PAGE, write=v), NOT_BOOL),
    "touch(node)": (lambda m, v: m.touch(P, X, PAGE, node=v), NOT_OPT_INT),
    "read(addr)": (lambda m, v: m.read(P, v), NOT_INT),
    "move_pages(flags)": (lambda m, v: m.move_pages(P, [X], [1], v), NOT_INT),
    "mbind(addr)": (lambda m, v: m.mbind(P, v, PAGE, MPOL_BIND, [1]), NOT_INT),
    "mbind(length)": (lambda m, v: m.mbind(P, X, v, MPOL_BIND, [1]), NOT_INT),
    "mbind(mode)": (lambda m, v: m.mbind(P, X, PAGE, v, [1]), NOT_INT),
    "mbind(flags)": (lambda m, v: m.mbind(P, X, PAGE, MPOL_BIND, [1], v), NOT_INT),
    "set_mempolicy(mode)": (lambda m, v: m.set_mempolicy(P, v, [1]), NOT_INT),
    "get_mempolicy(addr)": (lambda m, v: m.get_mempolicy(P, v, MPOL_F_ADDR), NOT_OPT_INT),
    "get_mempolicy(flags)": (lambda m, v: m.get_mempolicy(P, None, v), NOT_INT),
    "mlock(addr)": (lambda m, v: m.mlock(P, v, PAGE), NOT_INT),
    "mlock(length)": (lambda m, v: m.mlock(P, X, v), NOT_INT),
    "munlock(length)": (lambda m, v: m.munlock(P, X, v), NOT_INT),
    "mlockall(flags)": (lambda m, v: m.mlockall(P, v), NOT_INT),
    "munlockall(pid)": (lambda m, v: m.munlockall(v), NOT_INT),
    "mlock2(flags)": (lambda m, v: m.mlock2(P, X, PAGE, v), NOT_INT),
    "madvise(addr)": (lambda m, v: m.madvise(P, v, PAGE, 14), NOT_INT),
    "madvise(length)": (lambda m, v: m.madvise(P, X, v, 14), NOT_INT),
    "madvise(advice)": (lambda m, v: m.madvise(P, X, PAGE, v), NOT_INT),
    "thp": (lambda m, v: setattr(m, "thp", v), NOT_STR),
    "set_nr_hugepages(node)": (lambda m, v: m.set_nr_hugepages(v, 1), NOT_INT),
    "set_nr_hugepages(n)": (lambda m, v: m.set_nr_hugepages(0, v), NOT_INT + [-1, 10**6]),
    "set_nr_hugepages(caller)": (lambda m, v: m.set_nr_hugepages(0, 1, caller=v),
                                 NOT_OPT_INT),
    "hugepages(node)": (lambda m, v: m.hugepages(v), NOT_INT + [9, -1]),
    "hugepages_surplus(node)": (lambda m, v: m.hugepages_surplus(v), NOT_INT + [9, -1]),
    "set_nr_hugepages(size_kb)": (lambda m, v: m.set_nr_hugepages(0, 1, size_kb=v),
                                  NOT_OPT_INT + [4096, -1, 1 << 70]),
    "hugepages(size_kb)": (lambda m, v: m.hugepages(0, v), NOT_OPT_INT + [0, 3]),
    "hugepages_surplus(size_kb)": (lambda m, v: m.hugepages_surplus(0, v),
                                   NOT_OPT_INT + [0, 3]),
    "hugepages_reserved(size_kb)": (lambda m, v: m.hugepages_reserved(v),
                                    NOT_OPT_INT + [0, 3]),
    "sysfs_hugepages(node)": (lambda m, v: m.sysfs_hugepages(v), NOT_INT + [9, -1]),
    "set_nr_overcommit_hugepages(n)": (lambda m, v: m.set_nr_overcommit_hugepages(v),
                                       NOT_INT + [-1, 1 << 41]),
    "fork(pid)": (lambda m, v: m.fork(v), NOT_INT),
    "fork(caller)": (lambda m, v: m.fork(P, caller=v), NOT_OPT_INT),
    "setrlimit(soft)": (lambda m, v: m.setrlimit(P, "memlock", v), NOT_INT),
    "setrlimit(hard)": (lambda m, v: m.setrlimit(P, "memlock", 0, v), NOT_OPT_INT),
    "setrlimit(resource)": (lambda m, v: m.setrlimit(P, v, 0), NOT_STR),
    "getrlimit(resource)": (lambda m, v: m.getrlimit(P, v), NOT_STR),
    "set_era(name)": (lambda m, v: m.set_era(v), [2006, 2.6, None, b"modern"]),
    "set_era(caller)": (lambda m, v: m.set_era("2.6.18", caller=v), NOT_OPT_INT),
    "mbind(maxnode)": (lambda m, v: m.mbind(P, X, PAGE, MPOL_BIND, [1], maxnode=v),
                       NOT_OPT_INT),
    "mbind(caller)": (lambda m, v: m.mbind(P, X, PAGE, MPOL_BIND, [1], caller=v),
                      NOT_OPT_INT),
    "set_mempolicy(maxnode)": (lambda m, v: m.set_mempolicy(P, MPOL_BIND, [1], maxnode=v),
                               NOT_OPT_INT),
    "get_mempolicy(maxnode)": (lambda m, v: m.get_mempolicy(P, maxnode=v), NOT_OPT_INT),
    "migrate_pages(maxnode)": (lambda m, v: m.migrate_pages(P, [0], [1], maxnode=v),
                               NOT_OPT_INT),
    "move_pages(caller)": (lambda m, v: m.move_pages(P, [X], [1], caller=v), NOT_OPT_INT),
    "offline(caller)": (lambda m, v: m.offline(2, "Movable", caller=v), NOT_OPT_INT),
    "move_pages(pid)": (lambda m, v: m.move_pages(v, [X], [1]), NOT_INT),
    "migrate_pages(old_nodes)": (lambda m, v: m.migrate_pages(P, v, [1]),
                                 [1.9, "x", [1.5], [True], 1 + 0j]),
    "process(pid)": (lambda m, v: m.process(v), NOT_INT),
    "pin(addr)": (lambda m, v: m.pin(P, v, PAGE), NOT_INT),
    "pin(length)": (lambda m, v: m.pin(P, X, v), NOT_INT),
    "pin(driver)": (lambda m, v: m.pin(P, X, PAGE, v), NOT_OPT_STR),
    "unpin(driver)": (lambda m, v: m.unpin(P, X, PAGE, v), NOT_OPT_STR),
    "unpin(addr)": (lambda m, v: m.unpin(P, v, PAGE), NOT_INT),
    "set_migrate_hook(driver)": (lambda m, v: m.set_migrate_hook(v, True), NOT_STR),
    "set_migrate_hook(enabled)": (lambda m, v: m.set_migrate_hook("unc", v), NOT_BOOL),
    "offline(node)": (lambda m, v: m.offline(v, "Movable"), NOT_INT),
    "offline(zone)": (lambda m, v: m.offline(2, v), NOT_STR),
    "offline(dry_run)": (lambda m, v: m.offline(2, "Movable", dry_run=v), NOT_BOOL),
    "offline_plan(chunk)": (lambda m, v: m.offline_plan(2, "Movable", chunk=v),
                            NOT_OPT_INT + [0, -1]),
    "online(node)": (lambda m, v: m.online(v, "Movable"), NOT_INT),
    "offline_block(index)": (lambda m, v: m.offline_block(v), NOT_INT),
    "online_block(index)": (lambda m, v: m.online_block(v), NOT_INT),
    "online_block(how)": (lambda m, v: m.online_block(0, v), NOT_STR),
    "numa_maps(pid)": (lambda m, v: m.numa_maps(v), NOT_INT),
    "meminfo(node)": (lambda m, v: m.meminfo(v), NOT_INT + [9, -1]),
    "node_numastat(node)": (lambda m, v: m.node_numastat(v), NOT_INT + [9, -1]),
    "distance(a)": (lambda m, v: m.distance(v, 0), NOT_INT + [9, -1]),
    "distance(b)": (lambda m, v: m.distance(0, v), NOT_INT + [9, -1]),
    "node(nid)": (lambda m, v: m.node(v), NOT_INT + [9, -1]),
    "zone(name)": (lambda m, v: m.zone(0, v), NOT_STR),
    "node_available(nid)": (lambda m, v: m.node_available(v), NOT_INT),
    "il_weight(nid)": (lambda m, v: m.il_weight(v), NOT_INT),
    "driver(name)": (lambda m, v: m.driver(v), NOT_STR),
    "file(name)": (lambda m, v: m.file(v), NOT_STR),
    "page_align(n)": (lambda m, v: m.page_align(v), NOT_INT),
    "era": (lambda m, v: setattr(m, "era", v), [2006, 2.6, None, b"modern"]),
    "start(name)": (lambda m, v: m.start_sync(v, P, [0], [1]), NOT_STR),
    "start(batch)": (lambda m, v: m.start_sync("migrate_pages", P, [0], [1], batch=v),
                     NOT_OPT_INT + [0, -5]),
    "run_jobs(max_steps)": (lambda m, v: m.run_jobs(max_steps=v), NOT_OPT_INT),
    "workload(pid)": (lambda m, v: m.start_sync("workload", v, X, PAGE), NOT_INT),
    "workload(addr)": (lambda m, v: m.start_sync("workload", P, v, PAGE), NOT_OPT_INT),
    "workload(size)": (lambda m, v: m.start_sync("workload", P, size=v), NOT_OPT_INT),
    "workload(rate)": (lambda m, v: m.start_sync("workload", P, X, PAGE, rate=v),
                       NOT_INT + [0, 2 * 10**9]),
    "workload(ticks)": (lambda m, v: m.start_sync("workload", P, X, PAGE, ticks=v), NOT_INT),
    "workload(threads)": (lambda m, v: m.start_sync("workload", P, X, PAGE, threads=v),
                          [1.9, [1.5], {1}, None, 9]),
    "workload(write)": (lambda m, v: m.start_sync("workload", P, X, PAGE, write=v),
                        [True, "0.5", None, NAN, INF, 2.0]),
    "workload(init)": (lambda m, v: m.start_sync("workload", P, size=8 * PAGE, init=v),
                       [1.9, True, "node1", 9]),
    "workload(loop)": (lambda m, v: m.start_sync("workload", P, X, PAGE, loop=v),
                       NOT_BOOL),
    "workload(watch)": (lambda m, v: m.start_sync("workload", P, size=8 * PAGE, watch=v),
                        ["numastat", "hint,bogus", 1]),
    "daemon(pid)": (lambda m, v: m.start_sync("daemon", v), NOT_INT),
    "daemon(period_ns)": (lambda m, v: m.start_sync("daemon", P, period_ns=v), NOT_INT),
    "daemon(rate_mbps)": (lambda m, v: m.start_sync("daemon", P, rate_mbps=v),
                          [True, "1", None, NAN, INF]),
}
WIDE = {name: (fn, TOO_WIDE) for name, fn_vals in CALLS.items()
        for fn in [fn_vals[0]]
        if name in ("kill(pid)", "munmap(addr)", "munmap(length)", "mmap(length)",
                    "touch(addr)", "touch(length)", "mbind(addr)", "mbind(length)",
                    "spawn(uid)", "spawn(pid)", "pin(addr)", "mlock(length)",
                    "workload(pid)", "workload(rate)")}
CASES = [(name, v) for name, (_fn, vals) in CALLS.items() for v in vals] + \
    [(f"{name} wide", v) for name, (_fn, vals) in WIDE.items() for v in vals]
FNS = {**{n: f for n, (f, _v) in CALLS.items()}, **{f"{n} wide": f for n, (f, _v) in WIDE.items()}}
# (ENOENT: a huge page size with no hstate has no hugepages-NNNkB directory)
OK_ERRNOS = {errno.EINVAL, errno.ENODEV, errno.ESRCH, errno.ENOMEM, errno.ENOENT}


@pytest.fixture
def fresh():
    """A fresh machine per call (a call that wrongly succeeded must not leak into the
    next), compared with a fingerprint taken before."""
    m, _p, _x = machine()
    return m


def test_every_public_call_is_in_the_table():
    """Every public method of Machine that takes an argument is exercised here (a new
    call must be added to the table)."""
    import inspect

    from engine import Machine

    # the kernel's internal helpers (mm/ calls them with values it computed), the job
    # host's hooks, and calls whose arguments are objects, not numbers or names
    exempt = {"check_access", "credentials", "driver_of", "layout", "lookup", "task",
              "user", "node_of", "zone_of", "new_backing", "new_tokens", "record_traffic",
              "record_traffic_pairs", "node_pairs",
              "vma_migratable", "cancel_error", "job_finished", "job_stepped", "run",
              "run_bill", "migration_bill", "from_description", "node_zones",
              "node_has_memory", "clone", "check", "note_moved", "note_failed", "own_task",
              "require_admin", "undo"}
    covered = {n.split("(")[0] for n in CALLS} | {"start_sync"}
    missing = []
    for name, fn in inspect.getmembers(Machine, inspect.isfunction):
        if name.startswith("_") or name in exempt:
            continue
        if len(inspect.signature(fn).parameters) > 1 and name not in covered:
            missing.append(name)
    assert not missing, missing


@pytest.mark.parametrize("name,value", CASES, ids=[f"{n}={v!r}" for n, v in CASES])
def test_bad_argument_refused_and_nothing_changes(fresh, name, value):
    m = fresh
    before = fingerprint(m)
    with pytest.raises((TypeError, OSError)) as e:
        FNS[name](m, value)
    if isinstance(e.value, OSError):
        assert e.value.errno in OK_ERRNOS, e.value
    msg = str(e.value)
    assert msg and "\n" not in msg
    assert fingerprint(m) == before, f"{name}({value!r}) changed the machine"
    assert not m.jobs
    m.check()


def test_kill_of_a_float_pid_does_not_kill_init():
    """Regression: kill(1.9) killed pid 1."""
    m, _p, _x = machine()
    init = m.spawn("init", pid=1)
    with pytest.raises(TypeError, match="pid must be an integer, not float"):
        m.kill(1.9)
    assert init in m.pids


def test_uid_and_pid_beyond_linux_ranges_are_einval():
    """A uid is a 32-bit uid_t whose all-ones value is INVALID_UID (setuid(-1) is
    EINVAL, never a coerced uid); a pid is at most PID_MAX_LIMIT (include/linux/
    threads.h, 4M on 64-bit). Found by the audit of issue 11: spawn(uid=2**40) and
    spawn(pid=2**40) made processes Linux cannot have. Descriptions say so too."""
    m, _p, _x = machine()
    before = fingerprint(m)
    for kw in ({"uid": 2**32 - 1}, {"uid": 2**40}, {"pid": 2**22 + 1}, {"pid": 2**40}):
        with pytest.raises(OSError) as e:
            m.spawn("z", **kw)
        assert e.value.errno == errno.EINVAL and "\n" not in str(e.value)
    assert fingerprint(m) == before
    assert m.process(m.spawn("z", uid=2**32 - 2, pid=2**22)).uid == 2**32 - 2
    with pytest.raises(engine.DescriptionError, match=r"processes\[0\]\.uid: 4294967295 "
                       r"is out of range \(0\.\.4294967294\)"):
        engine.Machine.from_description({
            "machine": {"name": "u"}, "nodes": [{"id": 0, "cpus": "0", "zones": {"Normal": "16M"}}],
            "processes": [{"name": "x", "uid": 2**32 - 1}]})


def test_move_pages_arrays_of_non_integers_are_efault():
    """move_pages(2)'s pages, nodes and status are C arrays the kernel reads with
    get_user()/copy_from_user(): an entry that is no integer (a float, a bool, a
    string, None, a nested list) cannot be read as one, so the call is EFAULT as for
    an unreadable array, before anything moves; never a coerced node or address."""
    m, p, x = machine()
    before = fingerprint(m)
    for pages, nodes in (([float(x)], [1]), ([x], [1.0]), ([x], np.array([1.0])),
                         ([x], [True]), ([x], ["1"]), ([x], [None]), ([[x]], [1]),
                         ([x, x + PAGE], [1, 1.5]), (None, [1]), ([x], 7)):
        with pytest.raises(OSError) as e:
            m.move_pages(p, pages, nodes)
        assert e.value.errno == errno.EFAULT and "\n" not in str(e.value), (pages, nodes)
    assert fingerprint(m) == before
    assert list(m.move_pages(p, np.array([x], np.uint64), np.array([1], np.int32))) == [1]


def test_munmap_of_a_wrapping_range_fails():
    """Regression: munmap(pid, -4096, 2**64) succeeded."""
    m, p, x = machine()
    before = fingerprint(m)
    for addr, length in ((-4096, 2**64), (x, 2**64), (x, -PAGE), (x + 1, PAGE)):
        with pytest.raises(OSError) as e:
            m.munmap(p, addr, length)
        assert e.value.errno == errno.EINVAL
    assert fingerprint(m) == before


def test_missing_node_is_enodev_and_distance_never_wraps():
    """Regression: meminfo(9) printed zeros for a missing node and distance(-1, 0)
    read the SLIT's last row (numpy's negative index)."""
    m, _p, _x = machine()
    for call in (lambda: m.meminfo(9), lambda: m.node_numastat(9),
                 lambda: m.distance(-1, 0), lambda: m.distance(0, 3)):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.ENODEV and "no node" in str(e.value)
    assert m.distance(0, 2) == 30 and m.distance(2, 2) == 10


def test_failed_workload_leaves_no_mapping():
    """A workload that maps its own region and then fails (its init touch runs out of
    memory) unmaps what it mapped; one whose options are wrong maps nothing."""
    m = small(nodes=2, size="8M")
    p = m.spawn("a", node=0)
    m.set_mempolicy(p, MPOL_BIND, [0])
    n = m.node_available(0) - 64
    hog = m.mmap(p, n * PAGE)
    m.touch(p, hog, n * PAGE)  # node 0 nearly full, node 1 free
    vmas = [(v.start, v.end) for v in m.process(p).vmas]
    used = sum(z.free for z in m.zones)
    with pytest.raises(OSError) as e:
        m.start_sync("workload", p, size=1 << 20)  # bound to node 0: ENOMEM at init
    assert e.value.errno == errno.ENOMEM
    assert [(v.start, v.end) for v in m.process(p).vmas] == vmas
    assert sum(z.free for z in m.zones) == used and not m.workloads
    m.check()
    before = fingerprint(m)
    for bad in ({"watch": "bogus"}, {"init": 7}, {"rate": 1 << 30}, {"pattern": "x"},
                {"threads": [5]}, {"size": 1 << 40}):
        with pytest.raises(OSError):
            m.start_sync("workload", p, **{"size": 64 * PAGE, **bad})
        assert fingerprint(m) == before, bad
    assert not m.workloads and not m.jobs
