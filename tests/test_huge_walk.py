"""A random walk over the huge-page calls (issue 18): THP and MAP_HUGETLB mappings,
faults, fork, move_pages, migrate_pages, mbind, munmap, madvise, mlock, pool sizes
and kills on a 3-node machine with THP always (and 0-2 overcommitted hugetlb pages;
private and shared MAP_HUGETLB mappings, reserved or MAP_NORESERVE),
`check()` after every step (content
oracle included). Fixed seeds; each failure it finds becomes a named test (e.g.
test_huge_pages.py::test_a_hugetlb_page_back_from_its_pool_is_zeroed_at_the_next_fault).
"""

from __future__ import annotations

import errno
import random

import pytest
from conftest import small

import engine

MB2 = 2 << 20
PG = 4096
OPS = ("mmap", "mmap", "touch", "touch", "fork", "move", "migrate", "mbind", "munmap",
       "madvise", "pool", "hmmap", "kill", "mlock")
# what the calls may answer on this walk: Linux's errnos for these cases
ALLOWED = {errno.EINVAL, errno.ENOMEM, errno.EFAULT, errno.EACCES, errno.EBUSY,
           errno.EAGAIN, errno.ENOENT, errno.EPERM}


def _range(rnd: random.Random, regs: list) -> tuple[int, int]:
    a, ln = rnd.choice(regs)
    o = rnd.randrange(ln // PG)
    return a + o * PG, rnd.randrange(1, ln // PG - o + 1) * PG


G = 1 << 30
# the walk over 1 GiB pages: their pools and MAP_HUGE_1GB mappings among the rest
OPS_1G = ("gmmap", "gmmap", "gpool", "touch", "touch", "fork", "move", "migrate",
          "mbind", "munmap", "kill", "mlock", "hmmap", "pool")


def step(m, rnd: random.Random, pids: list, maps: dict, ops: tuple = OPS) -> None:
    op = rnd.choice(ops)
    pid = rnd.choice(pids)
    regs = maps.setdefault(pid, [])
    if op == "mmap":
        n = rnd.choice([1, 3, 512, 700, 1024, 1536]) * PG
        regs.append((m.mmap(pid, n), n))
    elif op == "hmmap":
        flags = engine.MAP_ANONYMOUS | engine.MAP_HUGETLB | rnd.choice(
            [engine.MAP_PRIVATE, engine.MAP_SHARED]) | rnd.choice([0, 0, engine.MAP_NORESERVE])
        regs.append((m.mmap(pid, MB2, flags=flags), MB2))
    elif op == "pool":
        m.set_nr_hugepages(rnd.randrange(3), rnd.randrange(4))
    elif op == "gmmap":
        flags = engine.MAP_ANONYMOUS | engine.MAP_HUGETLB | engine.MAP_HUGE_1GB | \
            rnd.choice([engine.MAP_PRIVATE, engine.MAP_SHARED])
        regs.append((m.mmap(pid, G, flags=flags), G))
    elif op == "gpool":
        m.set_nr_hugepages(rnd.randrange(3), rnd.randrange(3), size_kb=G >> 10)
    elif op == "fork":
        c = m.fork(pid)
        pids.append(c)
        maps[c] = list(regs)
    elif op == "kill":
        if len(pids) > 1:
            m.kill(pid)
            pids.remove(pid)
            maps.pop(pid, None)
    elif op == "migrate":
        m.migrate_pages(pid, [rnd.randrange(3)], [rnd.randrange(3)])
    elif not regs:
        return
    elif op == "touch":
        m.touch(pid, *_range(rnd, regs), write=rnd.random() < 0.8)
    elif op == "move":
        a, ln = rnd.choice(regs)
        addrs = [a + rnd.randrange(ln // PG) * PG for _ in range(rnd.randrange(1, 8))]
        m.move_pages(pid, addrs, [rnd.randrange(3) for _ in addrs],
                     rnd.choice([0, engine.MPOL_MF_MOVE_ALL]))
    elif op == "mbind":
        m.mbind(pid, *_range(rnd, regs), engine.MPOL_BIND, [rnd.randrange(3)],
                rnd.choice([0, engine.MPOL_MF_MOVE, engine.MPOL_MF_MOVE_ALL]))
    elif op == "munmap":
        m.munmap(pid, *_range(rnd, regs))
    elif op == "madvise":
        a, ln = rnd.choice(regs)
        m.madvise(pid, a, ln, rnd.choice([engine.MADV_HUGEPAGE, engine.MADV_NOHUGEPAGE]))
    elif op == "mlock":
        m.mlock(pid, *rnd.choice(regs))


@pytest.mark.parametrize("seed", range(6))
def test_random_walk_over_huge_pages_keeps_the_machine_consistent(seed):
    rnd = random.Random(seed)
    m = small(nodes=3, size="48M", block_size="2M")
    m.thp = "always"
    m.set_nr_overcommit_hugepages(seed % 3)  # surplus pages beyond the pools, or none
    pids, maps = [m.spawn("a", node=0)], {}
    for _ in range(250):
        try:
            step(m, rnd, pids, maps)
        except OSError as e:
            assert e.errno in ALLOWED, e
        m.check()
    assert m.vmstat()["thp_fault_alloc"] > 0


@pytest.mark.parametrize("seed", (101, 102))
def test_random_walk_with_1g_pages_keeps_the_machine_consistent(seed):
    """The walk with 1 GiB pools and mappings on 3 nodes of 3 GiB: a mapping cut
    inside a 1 GiB page is EINVAL, its folio moves whole or not at all. check() (a
    scan of 2.4 million frames) every third step and at the end; seeds whose walks
    move 1 GiB folios (seeds 100-115 were all run with check() after every step)."""
    rnd = random.Random(seed)
    m = small(nodes=3, size="3G", block_size="128M")
    m.thp = "always"
    m.set_nr_overcommit_hugepages(seed)
    pids, maps = [m.spawn("a", node=0)], {}
    for i in range(3):
        m.set_nr_hugepages(i, 1, size_kb=G >> 10)
    for i in range(60):
        try:
            step(m, rnd, pids, maps, OPS_1G)
        except OSError as e:
            assert e.errno in ALLOWED, e
        if i % 3 == 2:
            m.check()
    m.check()
    assert m.vmstat()["pgmigrate_success"] >= 1 << 18  # (a 1 GiB folio moved)
