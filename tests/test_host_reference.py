"""The host kernel as a reference: the real move_pages(2) on this test's own pages
answers single-node cases; the engine (era modern, one node) must answer the same."""

import ctypes
import errno
import os
import platform

import pytest
from conftest import small

SYS_move_pages = {"x86_64": 279, "aarch64": 239}.get(platform.machine())

pytestmark = pytest.mark.skipif(
    SYS_move_pages is None or not os.path.exists("/sys/devices/system/node/node0"),
    reason="needs Linux with NUMA support on x86_64 or aarch64")


def _kernel_at_least(major, minor):
    rel = platform.release().split(".")
    try:
        return (int(rel[0]), int(rel[1].split("-")[0])) >= (major, minor)
    except (ValueError, IndexError):
        return False


class Host:
    """Four private anonymous pages: 0 written, 1 untouched, 2 read (zero page),
    3 untouched, and an unmapped address."""

    def __init__(self):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.mmap.restype = ctypes.c_void_p
        self.libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                   ctypes.c_int, ctypes.c_int, ctypes.c_long]
        self.libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self.ps = os.sysconf("SC_PAGE_SIZE")
        self.base = self.libc.mmap(None, 4 * self.ps, 3, 0x22, -1, 0)  # RW, PRIVATE|ANON
        ctypes.c_char.from_address(self.base).value = b"x"
        _ = ctypes.c_char.from_address(self.base + 2 * self.ps).value
        self.addrs = [self.base + i * self.ps for i in range(4)] + [0x10 * self.ps]

    def move_pages(self, pid, addrs, nodes, flags):
        n = len(addrs)
        pages = (ctypes.c_void_p * n)(*addrs)
        status = (ctypes.c_int * n)(*([-123] * n))
        cn = None if nodes is None else (ctypes.c_int * n)(*nodes)
        ctypes.set_errno(0)
        r = self.libc.syscall(SYS_move_pages, pid, n, pages, cn, status, flags)
        if r < 0:
            return ("errno", ctypes.get_errno())
        return ("ok", r, [None if s == -123 else s for s in status])

    def close(self):
        self.libc.munmap(self.base, 4 * self.ps)


class Engine:
    def __init__(self):
        self.m = small(nodes=1, size="16M")
        m = self.m
        self.pid = m.spawn("t")
        ps = m.page_size
        self.base = m.mmap(self.pid, 4 * ps)
        m.touch(self.pid, self.base, ps)
        m.touch(self.pid, self.base + 2 * ps, ps, write=False)
        self.addrs = [self.base + i * ps for i in range(4)] + [0x10 * ps]

    def move_pages(self, pid, addrs, nodes, flags):
        try:
            st = self.m.move_pages(self.pid if pid == 0 else pid, addrs, nodes, flags)
        except OSError as e:
            return ("errno", e.errno)
        return ("ok", st.ret, list(st))


@pytest.fixture
def both():
    h = Host()
    e = Engine()
    yield h, e
    h.close()


CASES = {
    "query_written_untouched_zeropage_unmapped": (0, None, 0),
    "move_to_same_node": (0, [0] * 5, 2),
    "move_all_as_root": (0, [0] * 5, 4),
    "bad_node_first_entry_ENODEV": (0, [1, 0, 0, 0, 0], 2),
    "bad_flags_EINVAL": (0, None, 1),
    "bad_flags_EINVAL_with_nodes": (0, [0] * 5, 8),
}


@pytest.mark.skipif(not _kernel_at_least(6, 12), reason="host kernel older than 6.12 "
                    "uses the 4.3-6.11 lookup rules")
@pytest.mark.parametrize("case", sorted(CASES))
def test_engine_answers_like_the_host_kernel(both, case):
    host, eng = both
    pid, nodes, flags = CASES[case]
    got_h = host.move_pages(pid, host.addrs, nodes, flags)
    got_e = eng.move_pages(pid, eng.addrs, nodes, flags)
    assert got_e == got_h, f"{case}: host {got_h}, engine {got_e}"


def test_missing_pid_is_ESRCH_on_both(both):
    host, eng = both
    assert host.move_pages(2 ** 22 + 12345, host.addrs, None, 0) == ("errno", errno.ESRCH)
    assert eng.move_pages(2 ** 22 + 12345, eng.addrs, None, 0) == ("errno", errno.ESRCH)


def test_node_beyond_max_numnodes_is_ENODEV_on_both(both):
    host, eng = both
    nodes = [0, 0, 0, 0, 5000]
    h = host.move_pages(0, host.addrs, nodes, 2)
    e = eng.move_pages(0, eng.addrs, nodes, 2)
    assert h == e == ("errno", errno.ENODEV)
