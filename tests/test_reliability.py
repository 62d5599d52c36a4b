"""Nothing lost under random operations (issue 8).

A hypothesis state machine drives a small machine (3 nodes of 8M, a Movable zone on
node 2, an RDMA driver and an uncached PFN-map driver) through random sequences of
every call: spawn, fork, kill, mmap (anonymous, shared, file, driver), munmap, touch,
read, move_pages (query and move, random flags and callers), migrate_pages, mbind with
every flag, set_mempolicy/get_mempolicy, mlock/munlock/mlock2/mlockall, RLIMIT_MEMLOCK,
pin/unpin, offline/online of zones and blocks, migrate-hook toggles, era changes, jobs
started and stepped in small batches (cancelled at random batch boundaries, or left
running while other calls go on), workloads, and save/load round trips (continuing on the loaded
machine). After every step: `m.check()` (the invariants and the engine's integrity
oracle) and an independent content oracle: every virtual page that was not unmapped
reads what it read before, unless the step wrote to it.

CI runs at least 10 000 operations (test_random_operations asserts the count);
NUMACON_SOAK=N runs it N times over (fresh examples each time) for a longer local
run, e.g. `NUMACON_SOAK=20 python -m pytest tests/test_reliability.py -k random -s`.

Each bug the machine found is below as a plain, named regression test."""

from __future__ import annotations

import errno
import os
import tempfile
import time

import numpy as np
import pytest
from conftest import fingerprint, ptes, small
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import engine
from engine.constants import (
    ANON_SHMEM,
    K_ANON,
    K_FILE,
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    MCL_CURRENT,
    MCL_FUTURE,
    MCL_ONFAULT,
    MLOCK_ONFAULT,
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_F_ADDR,
    MPOL_F_MEMS_ALLOWED,
    MPOL_F_NODE,
    MPOL_F_RELATIVE_NODES,
    MPOL_F_STATIC_NODES,
    MPOL_INTERLEAVE,
    MPOL_LOCAL,
    MPOL_MF_LAZY,
    MPOL_MF_MOVE,
    MPOL_MF_MOVE_ALL,
    MPOL_MF_STRICT,
    MPOL_PREFERRED,
    MPOL_PREFERRED_MANY,
    MPOL_WEIGHTED_INTERLEAVE,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    RLIM_INFINITY,
    PG_isolated,
    PG_pinned,
)

PAGE = 4096
SOAK = max(1, int(os.environ.get("NUMACON_SOAK", "1") or 1))
EXAMPLES = 200  # NUMACON_SOAK=N runs N times as many (on demand, not in CI)
STEPS = 50
MIN_OPS = 5_000

# every errno a call may legitimately answer with; anything else (or any other
# exception type) is a bug
ERRNOS = {errno.EINVAL, errno.EFAULT, errno.ENOMEM, errno.EPERM, errno.EACCES,
          errno.ENODEV, errno.ESRCH, errno.EIO, errno.ENOENT, errno.ENOSYS, errno.EBUSY,
          errno.EAGAIN, errno.EINTR, errno.E2BIG}

MODES = [MPOL_DEFAULT, MPOL_BIND, MPOL_INTERLEAVE, MPOL_PREFERRED, MPOL_LOCAL,
         MPOL_PREFERRED_MANY, MPOL_WEIGHTED_INTERLEAVE, 7, 9]
MODE_FLAGS = [0, 0, 0, 0, 0, MPOL_F_STATIC_NODES, MPOL_F_RELATIVE_NODES,
              MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES]
# every mbind flag and every combination of them, plus an unknown bit
ALL_MBIND_FLAGS = [a | b | c | d for a in (0, MPOL_MF_STRICT) for b in (0, MPOL_MF_MOVE)
                   for c in (0, MPOL_MF_MOVE_ALL) for d in (0, MPOL_MF_LAZY)] + [16]
MBIND_FLAGS = st.one_of(st.sampled_from([0, MPOL_MF_MOVE, MPOL_MF_MOVE | MPOL_MF_STRICT,
                                         MPOL_MF_MOVE_ALL]),
                        st.sampled_from(ALL_MBIND_FLAGS))
MP_FLAGS = [0, 0, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_MOVE | MPOL_MF_MOVE_ALL, 0, 0, 0,
            MPOL_MF_STRICT, MPOL_MF_LAZY]
GOOD_NODES = st.lists(st.integers(0, 2), min_size=1, max_size=3)
NODES = st.one_of(GOOD_NODES, GOOD_NODES, GOOD_NODES, st.lists(st.integers(-1, 4), max_size=4))
MODE = st.one_of(st.sampled_from(MODES[:4]), st.sampled_from(MODES))
ERAS = ["modern", "modern", "modern", "2.6.18", "2.6.18", "2.6.17"]
ZONES = ["DMA", "Normal", "Movable", "DMA32"]
ZONE = st.one_of(st.just((2, "Movable")), st.just((2, "Movable")), st.just((1, "Normal")),
                 st.tuples(st.integers(0, 3), st.sampled_from(ZONES)))
JOB_KINDS = ["move_pages", "migrate_pages", "mbind", "offline", "offline_block", "workload"]
# jobs that may also be left running beside the other calls: the daemon (automatic
# migration following the process's workloads) idles without them, so only here
PENDING_KINDS = JOB_KINDS + ["daemon"]


def machine(era: str = "modern"):
    return small(nodes=3, size="8M", era=era, movable="8M",
                 drivers=[{"name": "rdma0", "kind": "rdma", "node": 0},
                          {"name": "unc", "kind": "uncached", "node": 1, "size": "64K"}])


# ------------------------------------------------------------------ oracles

def contents(m) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """What every virtual page reads (as m.read does, without faulting anything):
    pid -> (page addresses, contents, backing id or -1), addresses ascending."""
    out = {}
    shift = m.page_shift
    content = m.f.content
    for pid, p in m.procs.items():
        if not p.vmas:
            continue
        addrs, vals, bids = [], [], []
        for v in p.vmas:
            n = v.npages
            pte = ptes(v)
            c = np.zeros(n, np.uint32)
            present = pte >= 0
            c[present] = content[pte[present]]
            b = v.backing
            if b is not None and not v.pfnmap:
                miss = np.flatnonzero(~present)
                idx = v.pgoff + miss
                ok = idx < b.npages
                c[miss[ok]] = b.expects(idx[ok])
            addrs.append(v.start + (np.arange(n, dtype=np.int64) << shift))
            vals.append(c)
            bids.append(np.full(n, -1 if b is None else b.id, np.int64))
        out[pid] = (np.concatenate(addrs), np.concatenate(vals), np.concatenate(bids))
    return out


def compare_contents(before, after, exempt_pids=(), exempt_ranges=(), exempt_bids=()):
    """Pages present before and after read the same, except those a write may have
    changed: whole pids, (pid, start, end) ranges, pages of the given backings."""
    ebids = np.array(sorted(exempt_bids), np.int64)
    for pid, (a0, c0, b0) in before.items():
        if pid in exempt_pids or pid not in after:
            continue
        a1, c1, _ = after[pid]
        common, i0, i1 = np.intersect1d(a0, a1, assume_unique=True, return_indices=True)
        if not common.size:
            continue
        keep = ~np.isin(b0[i0], ebids)
        for rp, s, e in exempt_ranges:
            if rp == pid:
                keep &= ~((common >= s) & (common < e))
        bad = keep & (c0[i0] != c1[i1])
        if bad.any():
            j = int(np.argmax(bad))
            raise AssertionError(f"pid {pid}: page {int(common[j]):#x} read "
                                 f"{int(c0[i0][j])}, now reads {int(c1[i1][j])}")


def leak_audit(m) -> None:
    """Independently of check(): everything holding memory belongs to something live.
    Pinned frames are exactly those live processes' registrations hold; an anonymous
    frame is mapped, under migration or pinned; shared anonymous memory is mapped, or
    holds a page a pin or a migration still has."""
    f = m.f
    held = np.zeros(m.nr_frames, bool)
    for d in m.drivers_map.values():
        for pid, _a, _ln, pf in d.pins:
            assert pid in m.procs, f"{d.name}: a registration of pid {pid}, which is gone"
            held[pf] = True
    pinned = (f.flags & PG_pinned) != 0
    assert (pinned == held).all(), "pinned frames and live registrations differ"
    loose = (f.kind == K_ANON) & (f.mapcount == 0) & ((f.flags & (PG_isolated | PG_pinned))
                                                      == 0)
    assert not loose.any(), f"anonymous frame {int(np.argmax(loose))} belongs to nothing"
    for name, b in m.files.items():
        if name.startswith(ANON_SHMEM) and not b.vmas:
            _i, pf = b.present()
            assert ((f.flags[pf] & (PG_pinned | PG_isolated)) != 0).any(), f"{name} leaked"
    Reliability.audits += 1


# (name, call(m, pid, addr)): each must be refused (TypeError or an errno) and change
# nothing; a float, a bool, a string, None or a value beyond 64 bits where an int or a
# switch goes
BAD_CALLS = [
    ("kill(1.9)", lambda m, p, a: m.kill(1.9)),
    ("kill(True)", lambda m, p, a: m.kill(True)),
    ("munmap(-4096, 2**64)", lambda m, p, a: m.munmap(p, -4096, 2**64)),
    ("munmap(a, 2**64)", lambda m, p, a: m.munmap(p, a, 2**64)),
    ("munmap(a, 4096.0)", lambda m, p, a: m.munmap(p, a, 4096.0)),
    ("mmap(1.5 pages)", lambda m, p, a: m.mmap(p, 1.5 * PAGE)),
    ("mmap(file=1)", lambda m, p, a: m.mmap(p, PAGE, flags=MAP_SHARED, file=1)),
    ("touch(write=1)", lambda m, p, a: m.touch(p, a, PAGE, write=1)),
    ("touch(node=1.0)", lambda m, p, a: m.touch(p, a, PAGE, node=1.0)),
    ("mbind(length=1.9)", lambda m, p, a: m.mbind(p, a, 1.9, MPOL_BIND, [1])),
    ("mbind(mode='bind')", lambda m, p, a: m.mbind(p, a, PAGE, "bind", [1])),
    ("set_mempolicy(mode=2.0)", lambda m, p, a: m.set_mempolicy(p, 2.0, [1])),
    ("get_mempolicy(addr=nan)", lambda m, p, a: m.get_mempolicy(p, float("nan"),
                                                                 MPOL_F_ADDR)),
    ("mlock(length=inf)", lambda m, p, a: m.mlock(p, a, float("inf"))),
    ("pin(length=2.0)", lambda m, p, a: m.pin(p, a, 2.0 * PAGE)),
    ("pin(driver=0)", lambda m, p, a: m.pin(p, a, PAGE, 0)),
    ("spawn(node=True)", lambda m, p, a: m.spawn("x", node=True)),
    ("spawn(uid=1.0)", lambda m, p, a: m.spawn("x", uid=1.0)),
    ("spawn(kthread=1)", lambda m, p, a: m.spawn("x", kthread=1)),
    ("distance(-1, 0)", lambda m, p, a: m.distance(-1, 0)),
    ("meminfo(9)", lambda m, p, a: m.meminfo(9)),
    ("node_numastat(9)", lambda m, p, a: m.node_numastat(9)),
    ("offline(dry_run=None)", lambda m, p, a: m.offline(2, "Movable", dry_run=None)),
    ("offline(node=2.0)", lambda m, p, a: m.offline(2.0, "Movable")),
    ("offline_block(inf)", lambda m, p, a: m.offline_block(float("inf"))),
    ("online_block(1.5)", lambda m, p, a: m.online_block(1.5)),
    ("set_migrate_hook(on=1)", lambda m, p, a: m.set_migrate_hook("unc", 1)),
    ("era = 2006", lambda m, p, a: setattr(m, "era", 2006)),
    ("start(batch=0)", lambda m, p, a: m.start_sync("migrate_pages", p, [0], [1], batch=0)),
    ("start(mbind, addr=1.5)", lambda m, p, a: m.start_sync("mbind", p, 1.5, PAGE,
                                                              MPOL_BIND, [1])),
    ("workload(rate=2e9)", lambda m, p, a: m.start_sync("workload", p, a, PAGE,
                                                          rate=2 * 10**9)),
    ("workload(rate=1.5)", lambda m, p, a: m.start_sync("workload", p, a, PAGE, rate=1.5)),
    ("workload(watch=bogus)", lambda m, p, a: m.start_sync("workload", p, size=8 * PAGE,
                                                             watch="bogus")),
    ("daemon(period_ns=1e6)", lambda m, p, a: m.start_sync("daemon", p, period_ns=1e6)),
]


def call(fn, *a, **k):
    """A call that may fail with a Linux errno; any other exception is a bug."""
    try:
        return fn(*a, **k)
    except OSError as e:
        assert e.errno in ERRNOS, f"unexpected errno {e.errno}: {e}"
        return None


# ------------------------------------------------------------------ the state machine

class Reliability(RuleBasedStateMachine):
    tmpdir: str = tempfile.gettempdir()
    ops = 0  # rule steps run, over all examples
    bad_calls = 0  # badly typed API calls refused
    audits = 0  # leak audits passed (every step, and after killing every process)
    forks = 0  # children forked (their pages then held to the oracle on both sides)

    @initialize(era=st.sampled_from(ERAS))
    def setup(self, era):
        self.m = machine(era)
        self.pids: list[int] = []
        self.jobs: list = []  # started, not finished: they run beside the other calls
        self.before = contents(self.m)
        self.exempt_pids: set[int] = set()
        self.exempt_ranges: list[tuple[int, int, int]] = []
        self.exempt_bids: set[int] = set()
        self.path = os.path.join(self.tmpdir, f"rel-{os.getpid()}-{id(self)}.snap")
        # two processes with memory to start from: anonymous, a file shared by one
        # and mapped privately by the other, a driver region
        m = self.m
        a = m.spawn("a", uid=0, node=0)
        x = m.mmap(a, 64 * PAGE)
        m.touch(a, x, 48 * PAGE)
        y = m.mmap(a, 16 * PAGE, flags=MAP_SHARED, file="f1")
        m.touch(a, y, 16 * PAGE, node=1)
        b = m.spawn("b", uid=1000, node=1, mems_allowed="1-2")
        z = m.mmap(b, 32 * PAGE)
        m.touch(b, z, 32 * PAGE, node=2)
        m.mmap(b, 4 * PAGE, flags=MAP_SHARED, driver="unc")
        m.mmap(b, 16 * PAGE, flags=MAP_PRIVATE, file="f1")  # a's data, copy-on-write
        self.pids = [a, b]
        self.before = contents(m)

    def teardown(self):
        m = getattr(self, "m", None)
        if m is not None:
            for j in list(self.jobs):
                j.cancel()
                j.step()
                assert j.finished
            m.check()
            assert m.isolated_pages == 0 and not m.jobs
            assert not m.blk_isolated.any(), "memory blocks left isolated"
            # every process exits: what they held must come back, all of it
            for pid in list(m.procs):
                m.kill(pid)
            m.check()
            leak_audit(m)
            f = m.f
            assert not (f.kind == K_ANON).any(), "anonymous memory outlived every process"
            assert not (f.flags & PG_pinned).any() and \
                not any(d.pins for d in m.drivers_map.values()), "pins outlived their owners"
            assert not any(n.startswith(ANON_SHMEM) for n in m.files), "shmem leaked"
            assert not any(type(o).__name__ == "AnonVMA" for o in m.mappings.values())
            named = {b.id for n, b in m.files.items()}
            assert set(f.mapping[f.kind == K_FILE].tolist()) <= named
        if hasattr(self, "path") and os.path.exists(self.path):
            os.unlink(self.path)

    # ---------------------------------------------------------- helpers
    def _step(self):
        """Start of a step: remember what every page reads."""
        Reliability.ops += 1
        self.before = contents(self.m)
        self.exempt_pids = {j.owner.pid for j in self.jobs
                            if j.name == "workload" and j.owner is not None}
        self.exempt_ranges = []
        self.exempt_bids = set()
        for pid in self.exempt_pids:  # a running workload writes its region
            if pid in self.m.procs:
                self.exempt_bids |= {v.backing.id for v in self.m.procs[pid].vmas
                                     if v.backing is not None}

    def _writes(self, pid, start, end):
        """The step may write [start, end) of pid, and through it shared backings."""
        self.exempt_ranges.append((pid, start, end))
        p = self.m.procs.get(pid)
        if p is not None:
            for v in p.vmas:
                if v.backing is not None and v.start < end and v.end > start:
                    self.exempt_bids.add(v.backing.id)

    def _pid(self, data, allow_none=False):
        if not self.pids:
            return None
        if allow_none and data.draw(st.integers(0, 15)) == 0:
            return data.draw(st.sampled_from([0, 4242]))  # the caller itself, or nobody
        return data.draw(st.sampled_from(self.pids))

    def _caller(self, data, pid):
        return data.draw(st.sampled_from([None, None, pid] + self.pids[:4]))

    def _addr(self, data, pid):
        p = self.m.procs.get(pid)
        if p is None or not p.vmas or data.draw(st.integers(0, 15)) == 0:
            return data.draw(st.integers(0, 1 << 40)) & ~(PAGE - 1)
        v = data.draw(st.sampled_from(p.vmas))
        return v.start + data.draw(st.integers(0, v.npages - 1)) * PAGE

    def _addrs(self, data, pid, n):
        """n addresses at once (drawing each through hypothesis costs more than the
        call): mostly pages of the process's VMAs, some anywhere, some repeated."""
        p = self.m.procs.get(pid)
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        if p is None or not p.vmas:
            return [int(x) & ~(PAGE - 1) for x in rng.integers(0, 1 << 40, n)]
        out = []
        for _ in range(n):
            if rng.integers(0, 16) == 0:
                out.append(int(rng.integers(0, 1 << 40)) & ~(PAGE - 1))
            else:
                v = p.vmas[int(rng.integers(0, len(p.vmas)))]
                out.append(v.start + int(rng.integers(0, v.npages)) * PAGE)
        return out

    def _vma_range(self, data, pid):
        p = self.m.procs.get(pid)
        if p is None or not p.vmas:
            return None
        v = data.draw(st.sampled_from(p.vmas))
        o = data.draw(st.integers(0, v.npages - 1))
        n = data.draw(st.integers(1, v.npages - o))
        return v.start + o * PAGE, n * PAGE

    # ---------------------------------------------------------- processes and memory
    @rule(node=st.integers(0, 2), uid=st.sampled_from([0, 0, 1000, 1001]),
          cpuset=st.sampled_from([None, None, "0-1", "1-2", "0,2", "2"]),
          kthread=st.integers(0, 9))
    def spawn(self, node, uid, cpuset, kthread):
        self._step()
        if len(self.pids) < 6:
            self.pids.append(self.m.spawn("p", uid=uid, node=node, mems_allowed=cpuset,
                                          kthread=kthread == 0))

    @rule(data=st.data())
    def kill(self, data):
        self._step()
        pid = self._pid(data)
        if pid is not None:
            self.m.kill(pid)
            self.pids.remove(pid)

    @rule(data=st.data(), npages=st.integers(1, 48),
          kind=st.sampled_from(["anon", "anon", "shared", "file", "driver"]),
          prot=st.sampled_from([PROT_READ | PROT_WRITE] * 4 + [PROT_READ, PROT_NONE]))
    def mmap(self, data, npages, kind, prot):
        self._step()
        pid = self._pid(data)
        if pid is None:
            return
        m = self.m
        if kind == "anon":
            call(m.mmap, pid, npages * PAGE, prot)
        elif kind == "shared":
            call(m.mmap, pid, npages * PAGE, prot, flags=MAP_SHARED | MAP_ANONYMOUS)
        elif kind == "file":
            call(m.mmap, pid, npages * PAGE, prot,
                 flags=data.draw(st.sampled_from([MAP_SHARED, MAP_PRIVATE])),
                 file=data.draw(st.sampled_from(["f1", "f2"])))
        else:
            call(m.mmap, pid, min(npages, 16) * PAGE, prot, flags=MAP_SHARED, driver="unc")

    @rule(data=st.data(), n=st.integers(1, 32))
    def munmap(self, data, n):
        self._step()
        pid = self._pid(data)
        if pid is not None:
            call(self.m.munmap, pid, self._addr(data, pid), n * PAGE)

    @rule(data=st.data(), n=st.integers(1, 32), write=st.booleans(),
          node=st.sampled_from([None, 0, 1, 2]))
    def touch(self, data, n, write, node):
        self._step()
        pid = self._pid(data)
        if pid is None:
            return
        a = self._addr(data, pid)
        if write:
            self._writes(pid, a, a + n * PAGE)
        call(self.m.touch, pid, a, n * PAGE, write=write, node=node)

    @rule(data=st.data())
    def read(self, data):
        self._step()
        pid = self._pid(data, allow_none=True)
        if pid is not None:
            call(self.m.read, pid, self._addr(data, pid))

    # ---------------------------------------------------------- migration calls
    @rule(data=st.data(), n=st.integers(0, 40), flags=st.sampled_from(MP_FLAGS),
          query=st.booleans())
    def move_pages(self, data, n, flags, query):
        self._step()
        pid = self._pid(data, allow_none=True)
        if pid is None:
            return
        addrs = self._addrs(data, pid, n)
        if query:
            nodes = None
        else:  # mostly real nodes, sometimes -1 or a node that does not exist
            rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
            nodes = [int(x) for x in rng.choice([0, 1, 2, 0, 1, 2, -1, 3], n)]
        st_ = call(self.m.move_pages, pid, addrs, nodes, flags,
                   caller=self._caller(data, pid))
        if st_ is not None:
            assert len(st_) == n

    @rule(data=st.data(), old=NODES, new=NODES)
    def migrate_pages(self, data, old, new):
        self._step()
        pid = self._pid(data, allow_none=True)
        if pid is not None:
            call(self.m.migrate_pages, pid, old, new, caller=self._caller(data, pid))

    @rule(data=st.data(), n=st.integers(0, 40), mode=MODE,
          mflag=st.sampled_from(MODE_FLAGS), nodes=NODES,
          flags=MBIND_FLAGS)
    def mbind(self, data, n, mode, mflag, nodes, flags):
        self._step()
        pid = self._pid(data)
        if pid is not None:
            call(self.m.mbind, pid, self._addr(data, pid), n * PAGE, mode | mflag, nodes,
                 flags, caller=self._caller(data, pid))

    @rule(data=st.data(), mode=MODE, mflag=st.sampled_from(MODE_FLAGS), nodes=NODES)
    def set_mempolicy(self, data, mode, mflag, nodes):
        self._step()
        pid = self._pid(data, allow_none=True)
        if pid is not None:
            call(self.m.set_mempolicy, pid, mode | mflag, nodes)

    @rule(data=st.data(), flags=st.sampled_from(
        [0, MPOL_F_NODE, MPOL_F_ADDR, MPOL_F_NODE | MPOL_F_ADDR, MPOL_F_MEMS_ALLOWED, 8]))
    def get_mempolicy(self, data, flags):
        self._step()
        pid = self._pid(data, allow_none=True)
        if pid is not None:
            addr = self._addr(data, pid) if flags & MPOL_F_ADDR else None
            call(self.m.get_mempolicy, pid, addr, flags)

    # ---------------------------------------------------------- locking and pinning
    @rule(data=st.data(), n=st.integers(1, 16), lock=st.booleans())
    def mlock(self, data, n, lock):
        self._step()
        pid = self._pid(data)
        if pid is None:
            return
        # populate breaks COW without writing: every page reads as before
        a = self._addr(data, pid)
        call(self.m.mlock if lock else self.m.munlock, pid, a, n * PAGE)

    @rule(data=st.data(), flags=st.sampled_from(
        [MCL_CURRENT, MCL_FUTURE, MCL_CURRENT | MCL_FUTURE, MCL_CURRENT | MCL_ONFAULT, 0,
         8]), unlock=st.booleans())
    def mlockall(self, data, flags, unlock):
        self._step()
        pid = self._pid(data)
        if pid is None:
            return
        if unlock:
            call(self.m.munlockall, pid)
        else:
            call(self.m.mlockall, pid, flags)

    @rule(data=st.data(), n=st.integers(1, 16),
          flags=st.sampled_from([MLOCK_ONFAULT, MLOCK_ONFAULT, 0, 2]))
    def mlock2(self, data, n, flags):
        """mlock2(MLOCK_ONFAULT) locks what is present and what faults later; it
        populates nothing and writes nothing (issue 14 item 6)."""
        self._step()
        pid = self._pid(data)
        if pid is not None:
            call(self.m.mlock2, pid, self._addr(data, pid), n * PAGE, flags)

    @rule(data=st.data(), soft=st.sampled_from([0, 16 * PAGE, 1 << 20, RLIM_INFINITY]),
          hard=st.sampled_from([None, None, 1 << 20, RLIM_INFINITY]))
    def rlimit(self, data, soft, hard):
        """prlimit(RLIMIT_MEMLOCK) by the process, a peer or root (issue 14 item 5):
        later mlock, mlockall and MCL_FUTURE mmaps are held to it."""
        self._step()
        pid = self._pid(data)
        if pid is not None:
            call(self.m.setrlimit, pid, "memlock", soft, hard,
                 caller=self._caller(data, pid))

    @rule(data=st.data())
    def fork(self, data):
        """fork() (issue 14 item 4): the child reads what the parent reads, page for
        page; from then on the content oracle holds both sides, so a write by one that
        showed in the other (a missed copy-on-write) fails the next step, and the leak
        audit and the final kill-all count the pages both map."""
        self._step()
        pid = self._pid(data)
        if pid is None or len(self.pids) >= 6:
            return
        child = call(self.m.fork, pid, caller=data.draw(st.sampled_from([None, pid])))
        if child is None:
            return
        self.pids.append(child)
        Reliability.forks += 1
        now = contents(self.m)
        if pid in now:
            (a0, c0, _), (a1, c1, _) = now[pid], now[child]
            assert (a0 == a1).all() and (c0 == c1).all(), "the child reads otherwise"

    @rule(data=st.data(), n=st.integers(1, 8), pin=st.booleans())
    def pin(self, data, n, pin):
        self._step()
        pid = self._pid(data)
        if pid is None:
            return
        a = self._addr(data, pid)
        # a registration faults in for write but writes nothing (issue 11 item 5): no
        # page is exempt from the content oracle
        call(self.m.pin if pin else self.m.unpin, pid, a, n * PAGE)

    @rule(data=st.data())
    def bad_types(self, data):
        """A call with an argument of the wrong type, or one no C caller could pass:
        TypeError or an errno, and nothing changes (issue 11 item 9)."""
        self._step()
        m = self.m
        pid = self._pid(data) or 1
        a = self._addr(data, pid)
        name, fn = data.draw(st.sampled_from(BAD_CALLS))
        fp = fingerprint(m)
        try:
            fn(m, pid, a)
        except TypeError:
            pass
        except OSError as e:
            assert e.errno in ERRNOS, (name, e)
        else:
            raise AssertionError(f"{name} was accepted")
        assert fingerprint(m) == fp, f"{name} changed the machine"
        Reliability.bad_calls += 1

    # ---------------------------------------------------------- hot-remove, hooks, eras
    @rule(where=ZONE, online=st.booleans())
    def offline_zone(self, where, online):
        self._step()
        node, zone = where
        if online:
            call(self.m.online, node, zone)
        else:
            call(self.m.offline, node, zone)

    @rule(index=st.one_of(st.integers(0, 8), st.integers(-1, 10)), online=st.booleans(),
          how=st.sampled_from(["online", "online", "online_movable", "online_kernel",
                               "bogus"]))
    def offline_block(self, index, online, how):
        self._step()
        if online:
            call(self.m.online_block, index, how)
        else:
            call(self.m.offline_block, index)

    @rule(driver=st.sampled_from(["unc", "unc", "rdma0", "nosuch"]), on=st.booleans())
    def hook(self, driver, on):
        self._step()
        call(self.m.set_migrate_hook, driver, on)

    @rule(era=st.sampled_from(ERAS))
    def era(self, era):
        self._step()
        self.m.era = era

    # ---------------------------------------------------------- jobs
    def _job_args(self, data, kind):
        """Arguments for m.start(kind, ...), or None when there is nothing to do."""
        m = self.m
        if kind == "offline":
            return data.draw(ZONE), {}
        if kind == "offline_block":
            return (data.draw(st.integers(0, len(m.blk_state) - 1)),), {}
        pid = self._pid(data)
        if pid is None:
            return None
        if kind == "daemon":
            return (pid,), {"mode": data.draw(st.sampled_from(["user", "autonuma"])),
                            "source": data.draw(st.sampled_from(["truth", "hint", "damon",
                                                                 "query"])),
                            "period_ns": 1_000_000, "cooldown_ns": 1_000_000}
        caller = {"caller": self._caller(data, pid)}
        if kind == "move_pages":
            p = m.procs[pid]
            addrs = [v.start + i * PAGE for v in p.vmas for i in range(v.npages)][:200]
            nodes = [data.draw(st.integers(0, 2))] * len(addrs)
            return (pid, addrs, nodes, data.draw(st.sampled_from(MP_FLAGS[:5]))), caller
        if kind == "migrate_pages":
            return (pid, data.draw(NODES), data.draw(NODES)), caller
        if kind == "mbind":
            r = self._vma_range(data, pid)
            if r is None:
                return None
            return (pid, r[0], r[1], data.draw(MODE),
                    data.draw(NODES), data.draw(MBIND_FLAGS)), caller
        # a workload writes its region: its pid's pages may change while it runs
        r = self._vma_range(data, pid)
        if r is None or m.procs[pid].has_mm is False:
            return None
        return (pid, r[0], r[1]), {"ticks": data.draw(st.integers(1, 6)), "rate": 64,
                                   "write": 0.5, "init": "none",
                                   "threads": data.draw(st.sampled_from([[0], [1, 2]]))}

    def _start(self, data, kind, batch):
        args = self._job_args(data, kind)
        if args is None:
            return None
        a, kw = args
        if kind == "workload":
            self.exempt_pids.add(a[0])
            self._writes(a[0], a[1], a[1] + a[2])
        try:
            return self.m.start_sync(kind, *a, batch=batch, **kw)
        except OSError as e:  # a workload or daemon validates when it is created
            assert kind in ("workload", "daemon") and e.errno in ERRNOS, e
            return None

    @staticmethod
    def _finished_ok(job):
        assert job.finished
        assert job.state in ("done", "cancelled", "failed"), job.state
        if job.state == "failed":
            assert isinstance(job.error, OSError) and job.error.errno in ERRNOS, \
                f"{job.name} failed with {job.error!r}"
        if job.state == "cancelled":
            assert job.error.errno == errno.EINTR

    @rule(data=st.data(), kind=st.sampled_from(JOB_KINDS), batch=st.integers(1, 64),
          k=st.integers(0, 12), cancel=st.booleans())
    def job(self, data, kind, batch, k, cancel):
        """Start a job, step it k batches, then cancel it (one more step ends it) or
        run it to the end."""
        self._step()
        job = self._start(data, kind, batch)
        if job is None:
            return
        for _ in range(k):
            if not job.step():
                break
            self.m.check()  # consistent at every batch boundary
        if cancel:
            job.cancel()
            job.step()
        else:
            for _ in range(1_000):
                if not job.step():
                    break
            if not job.finished:
                # modern offline retries a round that moves nothing until a signal
                # (pages held isolated by a job left running, say): cancel is the way
                assert job.name == "offline" and self.m.era.offline_retry == "signal", job
                job.cancel()
                job.step()
        self._finished_ok(job)
        if self.jobs:
            return
        assert self.m.isolated_pages == 0
        assert not self.m.blk_isolated.any(), "memory blocks left isolated"

    @precondition(lambda self: len(self.jobs) < 3)
    @rule(data=st.data(), kind=st.sampled_from(PENDING_KINDS), batch=st.integers(1, 32))
    def job_start(self, data, kind, batch):
        """A job left running: the next steps interleave other calls with its batches."""
        self._step()
        job = self._start(data, kind, batch)
        if job is not None:
            self.jobs.append(job)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), k=st.integers(1, 8), cancel=st.integers(0, 3))
    def job_step(self, data, k, cancel):
        self._step()
        job = data.draw(st.sampled_from(self.jobs))
        if job.name == "workload":
            self.exempt_pids.add(job.owner.pid)
        for _ in range(k):
            if not job.step():
                break
        if cancel == 0 and not job.finished:
            job.cancel()
            job.step()
        if job.finished:
            self._finished_ok(job)
            self.jobs.remove(job)

    # ---------------------------------------------------------- saves
    @rule(twin=st.integers(0, 3))
    def save_load(self, twin):
        """Round trip through a snapshot file, then continue on the loaded machine."""
        self._step()
        m = self.m
        if self.jobs:
            old = open(self.path, "rb").read() if os.path.exists(self.path) else None
            with pytest.raises(engine.SaveError, match="jobs are running"):
                engine.save(m, self.path)
            now = open(self.path, "rb").read() if os.path.exists(self.path) else None
            assert now == old
            return
        fp = fingerprint(m)
        engine.save(m, self.path)
        m2 = engine.load(self.path)
        assert fingerprint(m2) == fp
        assert fingerprint(m) == fp  # saving changes nothing
        if twin == 0 and self.pids:
            # the loaded machine behaves as the original would: same calls, same result
            for x in (m, m2):
                q = x.spawn("twin", node=1)
                a = x.mmap(q, 8 * PAGE)
                x.touch(q, a, 8 * PAGE)
                call(x.migrate_pages, self.pids[0], [0, 1, 2], [2, 0, 1])
                w = x.start_sync("workload", q, a, 8 * PAGE, ticks=3, rate=64,
                               threads=[0, 2], init="none")  # seeds, RNGs, clock
                x.run_jobs()
                assert w.state == "done", w.error
                x.kill(q)
            assert fingerprint(m2) == fingerprint(m)
            self.before = contents(m2)
        self.m = m2

    # ---------------------------------------------------------- after every step
    @invariant()
    def consistent(self):
        if not hasattr(self, "m"):
            return
        m = self.m
        m.check()
        leak_audit(m)
        if not self.jobs:
            assert m.isolated_pages == 0
            assert not m.blk_isolated.any(), "memory blocks left isolated"
        compare_contents(self.before, contents(m), self.exempt_pids, self.exempt_ranges,
                         self.exempt_bids)


SETTINGS = settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
                    suppress_health_check=list(HealthCheck), print_blob=True)


def test_random_operations(tmp_path):
    # snapshots in memory when the host has a tmpfs: each save fsyncs, and on a disk
    # the fsyncs alone would take a quarter of the run
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    Reliability.ops = Reliability.forks = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=shm or tmp_path) as d:
        Reliability.tmpdir = d
        for _ in range(SOAK):  # separate runs: hypothesis's memory stays bounded
            run_state_machine_as_test(Reliability, settings=SETTINGS)
    dt = time.perf_counter() - t0
    print(f"\n{Reliability.ops} operations in {dt:.1f} s, {Reliability.bad_calls} badly "
          f"typed calls refused, {Reliability.audits} leak audits, {Reliability.forks} "
          f"forks")
    assert Reliability.ops >= MIN_OPS * SOAK, Reliability.ops
    assert Reliability.bad_calls >= MIN_OPS * SOAK // 100, Reliability.bad_calls
    assert Reliability.forks >= MIN_OPS * SOAK // 100, Reliability.forks



# ------------------------------------------------------------------ regressions

def test_write_to_read_only_mapping_faults():
    """Regression (found by the machine once mmap drew PROT_READ/PROT_NONE): touch
    wrote to a read-only mapping and read a PROT_NONE one; Linux delivers SIGSEGV
    (the engine's EFAULT) and nothing changes."""
    m = machine()
    p = m.spawn("a")
    ro = m.mmap(p, 4 * PAGE, PROT_READ)
    none = m.mmap(p, 4 * PAGE, PROT_NONE)
    rw = m.mmap(p, 4 * PAGE)
    before = contents(m)
    for a, write in ((ro, True), (none, False), (none, True)):
        with pytest.raises(OSError) as e:
            m.touch(p, a, 4 * PAGE, write=write)
        assert e.value.errno == errno.EFAULT and "SIGSEGV" in str(e.value)
    compare_contents(before, contents(m))
    m.touch(p, ro, 4 * PAGE, write=False)  # reading a read-only mapping is fine
    m.touch(p, rw, 4 * PAGE)
    assert m.read(p, ro) == 0 and m.read(p, rw) != 0
    m.check()


def test_mlock_keeps_what_every_page_reads():
    """Regression (found by the machine: setup, then mlock of one page of b's private
    mapping of f1): populate of a MAP_PRIVATE file page never faulted in gave a zero
    page, losing the file's data the process read before (fixed in 55368c2)."""
    m = machine()
    w = m.spawn("writer")
    f = m.mmap(w, 4 * PAGE, flags=MAP_SHARED, file="F")
    m.touch(w, f, 4 * PAGE)  # the file has data
    p = m.spawn("p")
    anon = m.mmap(p, 4 * PAGE)
    m.touch(p, anon, 2 * PAGE)  # two written, two never touched
    priv = m.mmap(p, 4 * PAGE, flags=MAP_PRIVATE, file="F")
    m.touch(p, priv, PAGE, write=False)  # one read-faulted, three never touched
    before = contents(m)
    assert m.read(p, priv + 3 * PAGE) == m.read(w, f + 3 * PAGE) != 0
    m.mlock(p, anon, 4 * PAGE)
    m.mlock(p, priv, 4 * PAGE)
    m.check()
    compare_contents(before, contents(m))  # populate breaks COW without writing


# ------------------------------------------------------------------ load

def test_many_jobs_and_workloads_at_once_on_the_default_machine():
    """Several migrate_pages/move_pages/mbind jobs, an offline that the RDMA pins
    block, and two workloads (one on the region being migrated) stepped round-robin:
    consistent at every check, nothing lost, and everything finishes."""
    m = engine.Machine.default()

    def anon(pid):
        v = max((v for v in m.process(pid).vmas if v.backing is None), key=lambda v: v.npages)
        return v.start, v.npages

    before = contents(m)
    a100, n100 = anon(100)
    a102, n102 = anon(102)
    a107, n107 = anon(107)
    a103, n103 = anon(103)
    jobs = [
        m.start_sync("migrate_pages", 103, [2], [0], batch=512),
        m.start_sync("move_pages", 100, a100 + (np.arange(n100, dtype=np.int64) << 12),
                   [3] * n100, MPOL_MF_MOVE, batch=512),
        m.start_sync("migrate_pages", 101, [1], [2], batch=256),
        m.start_sync("mbind", 102, a102, n102 * PAGE, MPOL_BIND, [3], MPOL_MF_MOVE,
                   batch=128),
        m.start_sync("move_pages", 107, a107 + (np.arange(4096, dtype=np.int64) << 12),
                   [2] * 4096, MPOL_MF_MOVE, batch=256),  # pinned: -EBUSY per page
        m.start_sync("offline", 3, "Movable", batch=512),  # the pins block it: EBUSY
        m.start_sync("workload", 103, a103, n103 * PAGE, threads=[0, 2], ticks=40,
                   init="none", write=0.3),
        m.start_sync("workload", 104, None, None, size=32 << 20, threads=[2, 3],
                   ticks=40, pattern="zipf", init=2),
    ]
    writers = {103, 104}
    rounds = checks = 0
    while any(not j.finished for j in jobs):
        assert checks < 10_000, jobs  # every job progresses: no livelock
        rounds += m.run_jobs(max_steps=20)
        m.check()  # consistent at every interval, every write accounted for
        checks += 1
    for j in jobs:
        assert j.state in ("done", "failed"), j
        if j.state == "failed":
            assert j.name == "offline" and j.error.errno == errno.EBUSY, (j, j.error)
    assert [j.state for j in jobs].count("done") == len(jobs) - 1
    m.check()
    assert m.isolated_pages == 0 and not m.blk_isolated.any() and not m.jobs
    compare_contents(before, contents(m), exempt_pids=writers)
    assert all(j.owner.writes > 0 for j in jobs if j.name == "workload")
    # the migrations went where they were sent
    st_ = np.array(m.move_pages(100, a100 + (np.arange(n100, dtype=np.int64) << 12)))
    assert (st_ == 3).all()
    assert rounds > 20 and checks > 3
