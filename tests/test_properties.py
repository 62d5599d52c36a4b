"""Random sequences of engine calls: check() and the integrity oracle hold after every
step, and a failing call changes nothing it should not."""

import errno

from conftest import small
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import engine

MODES = [engine.MPOL_DEFAULT, engine.MPOL_BIND, engine.MPOL_INTERLEAVE,
         engine.MPOL_PREFERRED, engine.MPOL_LOCAL, engine.MPOL_PREFERRED_MANY,
         engine.MPOL_WEIGHTED_INTERLEAVE, 9]
NODES = st.lists(st.integers(-1, 5), max_size=4)


class EngineMachine(RuleBasedStateMachine):
    @initialize(era=st.sampled_from(["modern", "modern", "2.6.18", "2.6.17"]))
    def setup(self, era):
        self.m = small(nodes=3, size="8M", era=era,
                       drivers=[{"name": "rdma0", "kind": "rdma", "node": 0},
                                {"name": "unc", "kind": "uncached", "node": 1,
                                 "size": "64K"}])
        self.pids = []

    def _pid(self, data):
        if not self.pids:
            return None
        return data.draw(st.sampled_from(self.pids))

    def _addr(self, data, pid):
        vmas = self.m.process(pid).vmas
        if not vmas or data.draw(st.integers(0, 15)) == 0:
            return data.draw(st.integers(0, 1 << 40)) & ~0xFFF
        v = data.draw(st.sampled_from(vmas))
        return v.start + (data.draw(st.integers(0, v.npages - 1)) << 12)

    @rule(node=st.integers(0, 2), uid=st.sampled_from([0, 1000]),
          cpuset=st.sampled_from([None, "0-1", "1-2", "0,2"]))
    def spawn(self, node, uid, cpuset):
        self.pids.append(self.m.spawn("p", uid=uid, node=node, mems_allowed=cpuset))

    @rule(data=st.data())
    def kill(self, data):
        pid = self._pid(data)
        if pid is not None:
            self.m.kill(pid)
            self.pids.remove(pid)

    @rule(data=st.data(), npages=st.integers(1, 64),
          kind=st.sampled_from(["anon", "anon", "shared", "file", "driver"]))
    def mmap(self, data, npages, kind):
        pid = self._pid(data)
        if pid is None:
            return
        m = self.m
        if kind == "anon":
            m.mmap(pid, npages * 4096)
        elif kind == "shared":
            m.mmap(pid, npages * 4096, flags=engine.MAP_SHARED | engine.MAP_ANONYMOUS)
        elif kind == "file":
            m.mmap(pid, npages * 4096, flags=data.draw(
                st.sampled_from([engine.MAP_SHARED, engine.MAP_PRIVATE])),
                file=data.draw(st.sampled_from(["f1", "f2"])))
        else:
            m.mmap(pid, min(npages, 16) * 4096, flags=engine.MAP_SHARED, driver="unc")

    def _call(self, fn, *a, **k):
        try:
            return fn(*a, **k)
        except OSError as e:
            assert e.errno in (errno.EINVAL, errno.EFAULT, errno.ENOMEM, errno.EPERM,
                               errno.EACCES, errno.ENODEV, errno.ESRCH, errno.EIO,
                               errno.ENOENT, errno.ENOSYS, errno.EBUSY), e
            return None

    @rule(data=st.data(), n=st.integers(1, 32), write=st.booleans(),
          node=st.sampled_from([None, 0, 1, 2]))
    def touch(self, data, n, write, node):
        pid = self._pid(data)
        if pid is not None:
            self._call(self.m.touch, pid, self._addr(data, pid), n * 4096, write=write,
                       node=node)

    @rule(data=st.data(), n=st.integers(1, 32))
    def munmap(self, data, n):
        pid = self._pid(data)
        if pid is not None:
            self._call(self.m.munmap, pid, self._addr(data, pid), n * 4096)

    @rule(data=st.data(), n=st.integers(0, 40), flags=st.sampled_from([0, 2, 4, 1]),
          query=st.booleans())
    def move_pages(self, data, n, flags, query):
        pid = self._pid(data)
        if pid is None:
            return
        addrs = [self._addr(data, pid) for _ in range(n)]
        nodes = None if query else [data.draw(st.integers(-1, 3)) for _ in range(n)]
        caller = data.draw(st.sampled_from([None, pid]))
        before = [self._read(pid, a) for a in addrs]
        st_ = self._call(self.m.move_pages, pid, addrs, nodes, flags, caller=caller)
        if st_ is not None:
            assert len(st_) == n
        assert [self._read(pid, a) for a in addrs] == before  # content preserved

    def _read(self, pid, a):
        try:
            return self.m.read(pid, a)
        except OSError:
            return None

    @rule(data=st.data(), old=NODES, new=NODES)
    def migrate_pages(self, data, old, new):
        pid = self._pid(data)
        if pid is not None:
            self._call(self.m.migrate_pages, pid, old, new,
                       caller=data.draw(st.sampled_from([None, pid])))

    @rule(data=st.data(), n=st.integers(0, 40), mode=st.sampled_from(MODES), nodes=NODES,
          flags=st.sampled_from([0, 1, 2, 3, 4, 5, 6, 8]))
    def mbind(self, data, n, mode, nodes, flags):
        pid = self._pid(data)
        if pid is not None:
            self._call(self.m.mbind, pid, self._addr(data, pid), n * 4096, mode, nodes, flags)

    @rule(data=st.data(), mode=st.sampled_from(MODES), nodes=NODES)
    def set_mempolicy(self, data, mode, nodes):
        pid = self._pid(data)
        if pid is not None:
            self._call(self.m.set_mempolicy, pid, mode, nodes)

    @rule(data=st.data(), n=st.integers(1, 16), lock=st.booleans())
    def mlock(self, data, n, lock):
        pid = self._pid(data)
        if pid is not None:
            fn = self.m.mlock if lock else self.m.munlock
            self._call(fn, pid, self._addr(data, pid), n * 4096)

    @rule(data=st.data(), n=st.integers(1, 8), pin=st.booleans())
    def pin(self, data, n, pin):
        pid = self._pid(data)
        if pid is not None:
            fn = self.m.pin if pin else self.m.unpin
            self._call(fn, pid, self._addr(data, pid), n * 4096)

    @rule(era=st.sampled_from(["modern", "2.6.18", "2.6.17"]))
    def era(self, era):
        self.m.era = era

    @invariant()
    def consistent(self):
        if hasattr(self, "m"):
            self.m.check()
            assert self.m.isolated_pages == 0


TestEngineStateMachine = EngineMachine.TestCase
TestEngineStateMachine.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

