"""The host kernel as a reference: the real move_pages(2) on this test's own pages
answers single-node cases; the engine (era modern, one node) must answer the same."""

import ctypes
import errno
import json
import os
import platform
import subprocess
import sys

import pytest
from conftest import OwnPages, err, kernel_at_least, small

import engine
from engine.constants import VM_LOCKED, VM_LOCKONFAULT
from engine.host.syscalls import SYSCALL_NR

pytestmark = pytest.mark.skipif(
    platform.machine() not in SYSCALL_NR
    or not os.path.exists("/sys/devices/system/node/node0"),
    reason="needs Linux with NUMA support on x86_64 or aarch64")


class Host(OwnPages):
    """Four private anonymous pages (OwnPages), and an unmapped address."""

    def __init__(self):
        super().__init__()
        self.addrs = self.addrs + [0x10 * self.ps]

    def move_pages(self, pid, addrs, nodes, flags):
        got = self.syscall_move_pages(pid, addrs, nodes, flags)
        if got[0] == "errno":
            return got
        return ("ok", got[0], [None if s == -123 else s for s in got[1]])


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


@pytest.mark.skipif(not kernel_at_least(6, 12), reason="host kernel older than 6.12 "
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


# ---------------------------------------------------------------- round 2: maxnode, mlock

SYS_NR = {"x86_64": {"set_mempolicy": 238, "get_mempolicy": 239, "migrate_pages": 256,
                     "mlockall": 151, "mlock2": 325, "mbind": 237},
          "aarch64": {"set_mempolicy": 237, "get_mempolicy": 236, "migrate_pages": 238,
                      "mlockall": 230, "mlock2": 284, "mbind": 235}}.get(platform.machine(), {})


def _sys(name, *args):
    libc = ctypes.CDLL(None, use_errno=True)
    ctypes.set_errno(0)
    r = libc.syscall(SYS_NR[name], *args)
    return 0 if r >= 0 else ctypes.get_errno()


def _single_node() -> bool:
    try:
        with open("/sys/devices/system/node/online") as fh:
            return fh.read().strip() == "0"
    except OSError:
        return False


def _mask(bits):
    m = (ctypes.c_ulong * 1024)()
    for b in bits:
        m[b // 64] |= 1 << (b % 64)
    return m


# bits chosen above both MAX_NUMNODES the host may have (64 or 1024)
MAXNODE_CASES = [([0], 1), ([0], 2), ([0], 0), ([0, 2000], 2002), ([0, 2010], 2002),
                 ([0, 2050], 2002), ([1], 3), ([0], 32769), ([0], 32770)]


@pytest.mark.skipif(os.sysconf("SC_PAGE_SIZE") != 4096 or not _single_node() or not SYS_NR,
                    reason="needs a single-node host with 4 KiB pages")
@pytest.mark.parametrize("bits,maxnode", MAXNODE_CASES,
                         ids=[f"{b}-{n}" for b, n in MAXNODE_CASES])
def test_set_mempolicy_maxnode_like_the_host(bits, maxnode):
    """get_nodes() (off-by-one, PAGE_SIZE*8 limit, whole words above MAX_NUMNODES) and
    mpol_new() (an empty BIND mask): set_mempolicy(MPOL_BIND) on this process, reset to
    MPOL_DEFAULT after."""
    try:
        host = _sys("set_mempolicy", 2, _mask(bits), ctypes.c_ulong(maxnode))
    finally:
        _sys("set_mempolicy", 0, None, ctypes.c_ulong(0))
    m = small(nodes=1, size="16M")
    pid = m.spawn("t")
    try:
        m.set_mempolicy(pid, 2, bits, maxnode=maxnode)
        eng = 0
    except OSError as e:
        eng = e.errno
    assert eng == host


@pytest.mark.skipif(not _single_node() or not SYS_NR, reason="needs a single-node host")
@pytest.mark.parametrize("maxnode", [0, 1, 64, 32769, 32770])
def test_get_mempolicy_maxnode_like_the_host(maxnode):
    """kernel_get_mempolicy(): maxnode < nr_node_ids, copy_nodes_to_user() > a page."""
    pol = ctypes.c_int()
    host = _sys("get_mempolicy", ctypes.byref(pol), _mask([]), ctypes.c_ulong(maxnode), None,
                ctypes.c_ulong(0))
    m = small(nodes=1, size="16M")
    pid = m.spawn("t")
    try:
        m.get_mempolicy(pid, maxnode=maxnode)
        eng = 0
    except OSError as e:
        eng = e.errno
    assert eng == host


@pytest.mark.skipif(not SYS_NR, reason="syscall numbers known for x86_64 and aarch64")
def test_mlock_family_flag_checks_like_the_host():
    """mlock2(): flags other than MLOCK_ONFAULT -> EINVAL; mlockall(): 0, MCL_ONFAULT
    alone, unknown bits -> EINVAL; migrate_pages to a node that is not in the caller's
    cpuset -> EINVAL."""
    m = small(nodes=1, size="16M")
    pid = m.spawn("t")
    a = m.mmap(pid, m.page_size)

    def eng(fn):
        try:
            fn()
        except OSError as e:
            return e.errno
        return 0

    assert _sys("mlock2", None, ctypes.c_size_t(0), 2) == eng(lambda: m.mlock2(pid, a, 0, 2)) \
        == errno.EINVAL
    for flags in (0, 4, 8):
        assert _sys("mlockall", flags) == eng(lambda f=flags: m.mlockall(pid, f)) == errno.EINVAL
    host = _sys("migrate_pages", 0, ctypes.c_ulong(64), _mask([0]), _mask([5]))
    assert host == eng(lambda: m.migrate_pages(pid, [0], [5])) == errno.EINVAL


def test_default_memlock_limit_is_the_hosts():
    """RLIMIT_MEMLOCK defaults to 8 MiB since 5.16 (MLOCK_LIMIT); the host's limit is
    what its login set, so only an 8 MiB host is compared."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if (soft, hard) != (8 << 20, 8 << 20):
        pytest.skip(f"host RLIMIT_MEMLOCK is {soft}/{hard}, not the kernel default")
    m = small(nodes=1, size="16M")
    assert m.getrlimit(m.spawn("t", uid=1000), "memlock") == (soft, hard)


def _smaps_entry(addr: int) -> dict:
    with open("/proc/self/smaps") as fh:
        text = fh.read()
    i = text.find(f"{addr:x}-")
    assert i >= 0
    out = {}
    for line in text[i:].splitlines()[1:]:
        if ":" not in line or "-" in line.split()[0]:
            break
        k, v = line.split(":", 1)
        out[k] = v.strip()
    return out


@pytest.mark.skipif(os.sysconf("SC_PAGE_SIZE") != 4096, reason="4 KiB pages")
def test_mlock_hole_and_prot_none_like_the_host():
    """apply_vma_lock_flags(): mlock over a VMA followed by a hole locks the VMA
    (VmFlags lo), populates nothing (Rss 0) and returns ENOMEM; a PROT_NONE VMA is locked
    and not faulted in (populate_vma_page_range(): EFAULT -> ENOMEM)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    ps = 4096
    b = libc.mmap(None, 2 * ps, 3, 0x22, -1, 0)
    c = libc.mmap(None, ps, 0, 0x22, -1, 0)
    try:
        libc.munmap(ctypes.c_void_p(b + ps), ctypes.c_size_t(ps))
        ctypes.set_errno(0)
        assert libc.mlock(ctypes.c_void_p(b), ctypes.c_size_t(2 * ps)) == -1
        hole_errno = ctypes.get_errno()
        hole = _smaps_entry(b)
        ctypes.set_errno(0)
        assert libc.mlock(ctypes.c_void_p(c), ctypes.c_size_t(ps)) == -1
        none_errno = ctypes.get_errno()
        pnone = _smaps_entry(c)
    finally:
        libc.munmap(ctypes.c_void_p(b), ctypes.c_size_t(ps))
        libc.munmap(ctypes.c_void_p(c), ctypes.c_size_t(ps))
    m = small(nodes=1, size="16M")
    pid = m.spawn("t")
    eb = m.mmap(pid, 2 * ps)
    ec = m.mmap(pid, ps, 0)
    m.munmap(pid, eb + ps, ps)
    for host_errno, smaps, addr, length in ((hole_errno, hole, eb, 2 * ps),
                                           (none_errno, pnone, ec, ps)):
        with pytest.raises(OSError) as e:
            m.mlock(pid, addr, length)
        assert e.value.errno == host_errno == errno.ENOMEM
        v = m.process(pid).find_vma(addr)
        assert ("lo" in smaps["VmFlags"].split()) == bool(v.flags & VM_LOCKED)
        assert smaps["Rss"] == "0 kB" and v.present()[0].size == 0


HOST_MLOCK_SCRIPT = r'''
import ctypes, json, os, resource
if os.geteuid() == 0:
    os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
resource.setrlimit(resource.RLIMIT_MEMLOCK, (8 << 20, 8 << 20))
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
def call(f, *a):
    ctypes.set_errno(0)
    return 0 if f(*a) == 0 else ctypes.get_errno()
def flags(addr):
    sm = open("/proc/self/smaps").read()
    i = sm.find("%x-" % addr)
    return sm[i:].split("VmFlags:")[1].split("\n")[0].split()
def rss(addr):
    sm = open("/proc/self/smaps").read()
    i = sm.find("%x-" % addr)
    return sm[i:].split("\nRss:")[1].split("\n")[0].strip()
out = {}
a = libc.mmap(None, 6 << 20, 3, 0x22, -1, 0)
out["mlock_5M"] = call(libc.mlock, ctypes.c_void_p(a), ctypes.c_size_t(5 << 20))
out["mlock_5M_again"] = call(libc.mlock, ctypes.c_void_p(a), ctypes.c_size_t(5 << 20))
libc.munlockall()
out["mlockall_current_future"] = call(libc.mlockall, 3)
b = libc.mmap(None, 4096, 3, 0x22, -1, 0)
out["after_failed_mlockall_new_mapping_locked"] = "lo" in flags(b)
out["mlockall_future"] = call(libc.mlockall, 2)
c = libc.mmap(None, 16 << 20, 3, 0x22, -1, 0)
out["mmap_past_limit_after_future"] = ctypes.get_errno() if c in (None, 2**64 - 1) else 0
libc.munlockall()
d = libc.mmap(None, 1 << 20, 3, 0x22, -1, 0)
out["mlock2_onfault"] = call(libc.syscall, 325, ctypes.c_void_p(d), ctypes.c_size_t(1 << 20), 1)
out["onfault_flags"] = [f for f in flags(d) if f in ("lo", "lf")]
out["onfault_rss"] = rss(d)
resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 8 << 20))
out["mlock_limit_0"] = call(libc.mlock, ctypes.c_void_p(d), ctypes.c_size_t(4096))
out["munlock_limit_0"] = call(libc.munlock, ctypes.c_void_p(d), ctypes.c_size_t(4096))
print(json.dumps(out))
'''


@pytest.mark.skipif(platform.machine() != "x86_64" or os.sysconf("SC_PAGE_SIZE") != 4096,
                    reason="mlock2 syscall number and 4 KiB pages of x86_64")
def test_rlimit_memlock_rules_like_the_host():
    """An unprivileged process with RLIMIT_MEMLOCK 8 MiB, on the host (a child process
    that drops root) and in the engine: count_mm_mlocked_page_nr() (mlock twice),
    mlockall(MCL_CURRENT) against total_vm with nothing left behind, mlock_future_ok()
    EAGAIN, MLOCK_ONFAULT (VmFlags lo lf, nothing resident), can_do_mlock() EPERM."""
    r = subprocess.run([sys.executable, "-c", HOST_MLOCK_SCRIPT], capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        pytest.skip(f"the host script could not run: {r.stderr.strip()[-200:]}")
    host = json.loads(r.stdout)
    m = small(nodes=1, size="64M")
    pid = m.spawn("t", uid=1000)
    m.mmap(pid, 32 << 20)  # the rest of the process: total_vm past the limit, as Python's

    def call(fn):
        try:
            fn()
        except OSError as e:
            return e.errno
        return 0

    eng = {}
    a = m.mmap(pid, 6 << 20)
    eng["mlock_5M"] = call(lambda: m.mlock(pid, a, 5 << 20))
    eng["mlock_5M_again"] = call(lambda: m.mlock(pid, a, 5 << 20))
    m.munlockall(pid)
    eng["mlockall_current_future"] = call(lambda: m.mlockall(pid, 3))
    b = m.mmap(pid, 4096)
    eng["after_failed_mlockall_new_mapping_locked"] = \
        bool(m.process(pid).find_vma(b).flags & VM_LOCKED)
    eng["mlockall_future"] = call(lambda: m.mlockall(pid, 2))
    eng["mmap_past_limit_after_future"] = call(lambda: m.mmap(pid, 16 << 20))
    m.munlockall(pid)
    d = m.mmap(pid, 1 << 20)
    eng["mlock2_onfault"] = call(lambda: m.mlock2(pid, d, 1 << 20, 1))
    v = m.process(pid).find_vma(d)
    eng["onfault_flags"] = [f for f, bit in (("lo", VM_LOCKED), ("lf", VM_LOCKONFAULT))
                            if v.flags & bit]
    eng["onfault_rss"] = f"{v.present()[0].size * 4} kB"
    m.setrlimit(pid, "memlock", 0)
    eng["mlock_limit_0"] = call(lambda: m.mlock(pid, d, 4096))
    eng["munlock_limit_0"] = call(lambda: m.munlock(pid, d, 4096))
    assert eng == host


def _numa_maps_fields(pid, addr: int) -> list[str]:
    """The numa_maps fields of the VMA at addr, without active= (the engine has no
    active/inactive LRU lists; since 5.9 new anonymous pages start inactive)."""
    path = "/proc/self/numa_maps" if pid is None else f"/proc/{pid}/numa_maps"
    with open(path) as fh:
        for line in fh:
            if line.startswith(f"{addr:x} "):
                return [f for f in line.split()[1:] if not f.startswith("active=")]
    raise AssertionError(f"{addr:#x} not in {path}")


@pytest.mark.skipif(not _single_node() or os.sysconf("SC_PAGE_SIZE") != 4096,
                    reason="needs a single-node host with 4 KiB pages")
def test_fork_copy_on_write_in_numa_maps_like_the_host():
    """After fork() both processes map the written private pages (numa_maps mapmax=2);
    a write by the child copies its pages (copy-on-write): the parent's count drops."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    ps = 4096
    base = libc.mmap(None, 6 * ps, 3, 0x22, -1, 0)
    # PROT_NONE guard pages: the four pages between them are a VMA of their own
    libc.mprotect(base, ps, 0)
    libc.mprotect(base + 5 * ps, ps, 0)
    a = base + ps
    ctypes.memset(a, 1, 4 * ps)
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    child = os.fork()
    if child == 0:  # the child: wait, write all four pages, report, wait to be reaped
        try:
            os.read(go_r, 1)
            ctypes.memset(a, 2, 4 * ps)
            os.write(done_w, b"x")
            os.read(go_r, 1)
        finally:
            os._exit(0)
    try:
        host = [_numa_maps_fields(None, a), _numa_maps_fields(child, a)]
        os.write(go_w, b"x")
        os.read(done_r, 1)
        host += [_numa_maps_fields(None, a), _numa_maps_fields(child, a)]
    finally:
        os.write(go_w, b"x")
        os.waitpid(child, 0)
        libc.munmap(ctypes.c_void_p(base), ctypes.c_size_t(6 * ps))
    m = small(nodes=1, size="16M")
    pid = m.spawn("t")
    ea = m.mmap(pid, 4 * ps)
    m.touch(pid, ea, 4 * ps)
    c = m.fork(pid)

    def line(p):
        return next(x.split()[1:] for x in m.numa_maps(p).splitlines()
                    if x.startswith(f"{ea:x} "))

    eng = [line(pid), line(c)]
    m.touch(c, ea, 4 * ps)
    eng += [line(pid), line(c)]
    assert eng == host


@pytest.mark.skipif(not _single_node() or not SYS_NR or platform.machine() != "x86_64",
                    reason="needs a single-node x86_64 host")
def test_shared_anonymous_policy_like_the_host():
    """mbind(BIND, {0}) on MAP_SHARED|MAP_ANONYMOUS memory: numa_maps names the policy
    and /dev/zero\\040(deleted); get_mempolicy(MPOL_F_ADDR) reports the shared policy;
    a fork() child sees it on its own VMA, with nothing mapped until it faults."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    ps = 4096
    a = libc.mmap(None, 4 * ps, 3, 0x21, -1, 0)  # RW, MAP_SHARED|MAP_ANONYMOUS
    rd, wr = os.pipe()
    try:
        assert libc.syscall(237, ctypes.c_void_p(a), ctypes.c_ulong(4 * ps), 2, _mask([0]),
                            ctypes.c_ulong(2), 0) == 0
        ctypes.memset(a, 1, 4 * ps)
        pol, nm = ctypes.c_int(), _mask([])
        libc.syscall(239, ctypes.byref(pol), nm, ctypes.c_ulong(64), ctypes.c_void_p(a),
                     ctypes.c_ulong(2))
        host = [(pol.value, nm[0]), _numa_maps_fields(None, a)]
        child = os.fork()
        if child == 0:
            try:
                os.write(wr, json.dumps(_numa_maps_fields(None, a)).encode())
            finally:
                os._exit(0)
        os.waitpid(child, 0)
        host.append(json.loads(os.read(rd, 4096)))
    finally:
        libc.munmap(ctypes.c_void_p(a), ctypes.c_size_t(4 * ps))
    m = small(nodes=1, size="16M")
    pid = m.spawn("t")
    ea = m.mmap(pid, 4 * ps, 3, 0x21)
    m.mbind(pid, ea, 4 * ps, 2, [0])
    m.touch(pid, ea, 4 * ps)
    mode, nodes = m.get_mempolicy(pid, ea, 2)
    c = m.fork(pid)
    eng = [(mode, sum(1 << n for n in nodes)), m.numa_maps(pid).split()[1:],
           m.numa_maps(c).split()[1:]]
    assert eng == [tuple(host[0]), host[1], host[2]]


def _host_hugetlb_empty() -> bool:
    """2 MiB and 1 GiB hstates, both pools empty and no overcommit: the host answers
    mmap(MAP_HUGETLB) as an engine machine with empty pools must."""
    base = "/sys/kernel/mm/hugepages"
    try:
        sizes = set(os.listdir(base))
        pools = [int(open(f"{base}/{d}/{f}").read()) for d in sizes
                 for f in ("nr_hugepages", "nr_overcommit_hugepages")]
    except OSError:
        return False
    return os.sysconf("SC_PAGE_SIZE") == 4096 and \
        sizes == {"hugepages-2048kB", "hugepages-1048576kB"} and not any(pools)


HUGE_CASES = {  # name: (MAP_HUGE_* size bits, MAP_SHARED, MAP_NORESERVE)
    "default size, private": (0, False, False),
    "default size, shared": (0, True, False),
    "MAP_HUGE_2MB": (21 << 26, False, False),
    "MAP_HUGE_1GB": (30 << 26, False, False),
    "MAP_HUGE_1GB, shared": (30 << 26, True, False),
    "MAP_HUGE_16MB (no such hstate)": (24 << 26, False, False),
    "MAP_HUGE_16MB, MAP_NORESERVE": (24 << 26, False, True),
    "MAP_NORESERVE (no reservation, no check)": (0, False, True),
    "MAP_HUGE_1GB, MAP_NORESERVE": (30 << 26, True, True),
}


@pytest.mark.skipif(not _host_hugetlb_empty(), reason="needs a host with empty 2 MiB "
                                                      "and 1 GiB hugetlb pools")
@pytest.mark.parametrize("case", sorted(HUGE_CASES))
def test_map_hugetlb_errors_like_the_host(case):
    """mmap(2) ERRORS with MAP_HUGETLB, as the host kernel answers them with empty
    pools: ENOMEM when hugetlb_reserve_pages() finds too few free huge pages, EINVAL
    for a MAP_HUGE_* size with no hstate (before any reservation), success with
    MAP_NORESERVE (nothing reserved; a fault would be SIGBUS). The mapping is never
    touched on the host."""
    bits, shared, noreserve = HUGE_CASES[case]
    flags = (engine.MAP_SHARED if shared else engine.MAP_PRIVATE) | engine.MAP_ANONYMOUS \
        | engine.MAP_HUGETLB | bits | (engine.MAP_NORESERVE if noreserve else 0)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    ctypes.set_errno(0)
    addr = libc.mmap(None, 2 << 20, 3, flags, -1, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        host = ctypes.get_errno()
    else:
        host = 0
        libc.munmap(addr, 1 << 30 if bits == 30 << 26 else 2 << 20)
    m = small(nodes=1, size="2G", block_size="128M")
    assert err(lambda: m.mmap(m.spawn("t"), 2 << 20, flags=flags)) == host


@pytest.mark.skipif(not _host_hugetlb_empty() or not SYS_NR,
                    reason="needs a host with empty hugetlb pools and known syscalls")
def test_hugetlb_vma_cuts_and_mlock_like_the_host():
    """On a MAP_HUGETLB|MAP_NORESERVE mapping of two huge pages with the pools empty
    (never touched on the host): munmap, mbind and madvise that would cut a huge page
    are EINVAL (hugetlb_vm_op_split()); madvise over whole huge pages works; mlock and
    mlock2(MLOCK_ONFAULT) cut nothing (mlock_fixup() leaves a hugetlb VMA alone) but
    populate it, which finds no huge page: ENOMEM (SIGBUS -> EFAULT -> ENOMEM);
    munlock has nothing to do."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    for f in ("munmap", "mlock", "munlock"):
        getattr(libc, f).argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    flags = engine.MAP_PRIVATE | engine.MAP_ANONYMOUS | engine.MAP_HUGETLB | \
        engine.MAP_NORESERVE
    mb, k4 = 1 << 20, 4096
    mask = ctypes.c_ulong(1)

    def host_calls(a):
        def c(fn, *args):
            ctypes.set_errno(0)
            return 0 if fn(*args) == 0 else ctypes.get_errno()
        return [
            c(libc.munmap, a + k4, k4),
            _sys("mbind", ctypes.c_void_p(a), ctypes.c_ulong(mb), 2, ctypes.byref(mask),
                 ctypes.c_ulong(64), 0),
            c(libc.madvise, a, mb, engine.MADV_HUGEPAGE),
            c(libc.madvise, a, 4 * mb, engine.MADV_NOHUGEPAGE),
            c(libc.mlock, a, mb),
            _sys("mlock2", ctypes.c_void_p(a + mb), ctypes.c_ulong(mb), 1),
            c(libc.munlock, a, mb),
        ]

    a = libc.mmap(None, 4 * mb, 3, flags, -1, 0)
    assert a not in (None, ctypes.c_void_p(-1).value)
    try:
        host = host_calls(a)
    finally:
        libc.munmap(a, 4 * mb)
    m = small(nodes=1, size="64M", block_size="2M")
    pid = m.spawn("t")
    b = m.mmap(pid, 4 * mb, flags=flags)
    eng = [err(lambda: m.munmap(pid, b + k4, k4)),
           err(lambda: m.mbind(pid, b, mb, engine.MPOL_BIND, [0])),
           err(lambda: m.madvise(pid, b, mb, engine.MADV_HUGEPAGE)),
           err(lambda: m.madvise(pid, b, 4 * mb, engine.MADV_NOHUGEPAGE)),
           err(lambda: m.mlock(pid, b, mb)),
           err(lambda: m.mlock2(pid, b + mb, mb, engine.MLOCK_ONFAULT)),
           err(lambda: m.munlock(pid, b, mb))]
    assert eng == host == [errno.EINVAL, errno.EINVAL, errno.EINVAL, 0, errno.ENOMEM,
                           errno.ENOMEM, 0]
    assert len(m.process(pid).vmas) == 1
    m.check()
