"""The live host (engine/host, issue 16): reading it. This host's nodes, zones, blocks
and this test's own process against /proc and /sys; a synthetic two-node host (a fake
root) for exact outputs; the frame map against kpageflags words (a snapshot of the
real file, and synthetic words), and without it; the view API's parity with
engine/views/; the refresh policy on a fake clock."""

from __future__ import annotations

import ctypes
import glob
import inspect
import os
import re

import numpy as np
import pytest

import engine
import engine.views as sim_views
from engine.constants import K_ANON, K_FILE, K_FREE, K_KERNEL, K_OFFLINE, PG_lru, PG_mlocked
from engine.host import Host, host_execute
from engine.host import views as host_views
from engine.host.commands import REFUSED
from engine.host.kpage import (
    CLASSES,
    KPF,
    PM_PRESENT,
    FrameMap,
    classify,
    classify_words,
    present,
    why_unreadable,
)
from engine.host.readers import HostVma
from engine.host.refresh import Rates, RefreshPolicy
from engine.host.rehearse import _page_nodes, _zero_pages

PAGE = os.sysconf("SC_PAGE_SIZE")
LINUX = os.path.exists("/proc/self/numa_maps") and os.path.isdir("/sys/devices/system/node")
needs_linux = pytest.mark.skipif(not LINUX, reason="needs Linux with NUMA sysfs")
KPAGEFLAGS_READABLE = os.access("/proc/kpageflags", os.R_OK)


def zoneinfo_fields(text: str) -> list[dict]:
    """The test's own reading of /proc/zoneinfo's static fields."""
    out, z = [], None
    for line in text.splitlines():
        mt = re.match(r"Node (\d+), zone\s+(\S+)", line)
        if mt:
            z = {"node": int(mt.group(1)), "name": mt.group(2), "start_pfn": 0}
            out.append(z)
            continue
        w = line.split()
        if z is not None and len(w) == 2 and w[0] in ("spanned", "present", "managed"):
            z[w[0]] = int(w[1])
        elif z is not None and len(w) == 2 and w[0] == "start_pfn:":
            z["start_pfn"] = int(w[1])
    return out


@pytest.fixture(scope="module")
def host():
    return Host()


# ------------------------------------------------------------------ this host

@needs_linux
def test_nodes_cpus_distances_match_sys(host):
    ids = sorted(int(p.rsplit("node", 1)[1]) for p in glob.glob("/sys/devices/system/node/node*"))
    assert host.nodes == ids
    for n in host.nodes_list:
        base = f"/sys/devices/system/node/node{n.id}"
        cpus = open(f"{base}/cpulist").read().strip()
        assert ",".join(map(str, n.cpus)) == ",".join(
            str(c) for part in cpus.split(",") if part
            for c in range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1))
        row = [int(x) for x in open(f"{base}/distance").read().split()]
        assert [host.distance(n.id, b) for b in host.nodes] == row


@needs_linux
def test_zones_match_zoneinfo(host):
    want = zoneinfo_fields(open("/proc/zoneinfo").read())
    got = [{"node": z.node, "name": z.name, "start_pfn": z.start_pfn if z.spanned else 0,
            "spanned": z.spanned, "present": z.present, "managed": z.managed}
           for z in host.zones]
    assert got == want
    # a node spans its zones; every PFN of a populated zone belongs to it
    for z in host.zones:
        if z.spanned:
            pf = np.array([z.start_pfn, z.end_pfn - 1])
            assert host.node_of(pf).tolist() == [z.node, z.node]
            assert host.zone_of(pf).tolist() == [z.zid, z.zid]
    assert host.node_of([-5, host.nr_frames + 10]).tolist() == [-1, -1]


@needs_linux
def test_blocks_match_sys(host):
    base = "/sys/devices/system/memory"
    names = sorted(int(n[6:]) for n in os.listdir(base) if re.fullmatch(r"memory\d+", n))
    blocks = host.blocks()
    assert [b["index"] for b in blocks] == names
    bs = int(open(f"{base}/block_size_bytes").read(), 16)
    assert host.block_size == bs
    for b in blocks[:8] + blocks[-8:]:
        d = f"{base}/memory{b['index']}"
        assert b["state"] == open(f"{d}/state").read().strip()
        assert b["start_pfn"] == b["index"] * bs // PAGE and b["pages"] == bs // PAGE
        nodes = [int(e[4:]) for e in os.listdir(d) if re.fullmatch(r"node\d+", e)]
        assert [b["node"]] == nodes


class Buffer:
    """64 pages of our own between two PROT_NONE guard pages (a VMA of its own), the
    first 10 written."""

    def __init__(self):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self.libc = libc
        self.raw = libc.mmap(None, 66 * PAGE, 3, 0x22, -1, 0)
        libc.mprotect(self.raw, PAGE, 0)
        libc.mprotect(self.raw + 65 * PAGE, PAGE, 0)
        self.base = self.raw + PAGE
        for i in range(10):
            ctypes.memset(self.base + i * PAGE, 7, 1)

    def close(self):
        self.libc.munmap(self.raw, 66 * PAGE)


@pytest.fixture
def buf():
    b = Buffer()
    yield b
    b.close()


@needs_linux
def test_own_process_and_vmas_match_proc(host, buf):
    pid = os.getpid()
    st = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    p = host.read_vmas(pid)
    assert p.name == st["Name"].strip() and p.uid == int(st["Uid"].split()[0])
    assert not p.kthread and p.vmas_error is None
    v = host_views.find_vma(host, pid, buf.base)
    assert (v.start, v.end, v.perms, v.kind) == (buf.base, buf.base + 64 * PAGE, "rw-p", "anon")
    line = next(x for x in open("/proc/self/numa_maps") if x.startswith(f"{buf.base:x} "))
    assert "anon=10 " in line and int(v.per_node.sum()) == 10 and v.anon == 10
    # every VMA of maps, in order (read until two readings of maps agree around ours)
    for _ in range(5):
        before = open("/proc/self/maps").read()
        p = host.read_vmas(pid)
        if open("/proc/self/maps").read() == before:
            break
    want = [tuple(int(x, 16) for x in ln.split()[0].split("-")) for ln in before.splitlines()]
    assert [(v.start, v.end) for v in p.vmas] == want
    rows = host_views.vma_rows(host, pid)
    assert [(r.start, r.end) for r in rows] == want
    row = next(r for r in host_views.process_rows(host) if r.pid == pid)
    assert row.name == p.name and row.rss == int(host.per_node(pid).sum()) > 10


@needs_linux
def test_linux_views_are_the_files(host):
    pid = os.getpid()
    r = host_execute(host, f"numa_maps {pid}")
    assert r.ok and r.text.splitlines()[0] == open("/proc/self/numa_maps").readline().rstrip()
    r = host_execute(host, "meminfo 0")
    assert r.ok and r.text.splitlines()[0].startswith("Node 0 MemTotal:")
    r = host_execute(host, "zoneinfo")
    assert [ln for ln in r.text.splitlines() if ln.startswith("Node ")] == \
        [ln for ln in open("/proc/zoneinfo").read().splitlines() if ln.startswith("Node ")]
    assert set(host.vmstat()) >= {"nr_free_pages", "pgmigrate_success", "numa_hit"}


# ------------------------------------------------------------------ a synthetic host

ZONEINFO = """\
Node 0, zone      DMA
  pages free     3000
        min      10
        low      12
        high     14
        spanned  4095
        present  3998
        managed  3840
  start_pfn:           1
Node 0, zone   Normal
  pages free     40000
        min      100
        low      120
        high     140
        spanned  61440
        present  61440
        managed  60000
  start_pfn:           4096
Node 1, zone   Normal
  pages free     50000
        min      100
        low      120
        high     140
        spanned  65536
        present  65536
        managed  64000
  start_pfn:           65536
Node 1, zone  Movable
  pages free     0
        spanned  0
        present  0
        managed  0
"""


def write(root, rel, text):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as fh:
        fh.write(text)


def status(name, uid, mems="0-1", mm=True, rss_kb=0):
    return (f"Name:\t{name}\nState:\tS (sleeping)\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"
            f"Threads:\t1\n" + (f"VmSize:\t 1000 kB\nVmLck:\t0 kB\nVmRSS:\t{rss_kb} kB\n"
                                 if mm else "") + f"Mems_allowed_list:\t{mems}\n")


def stat_line(pid, comm, cpu, flags=0x400100):
    f = ["S", "1", str(pid), str(pid), "0", "-1", str(flags)] + ["0"] * 12 + ["4242"] + \
        ["0"] * 16 + [str(cpu)] + ["0"] * 12
    return f"{pid} ({comm}) " + " ".join(f) + "\n"


def vma_line(start, size, perms="rw-p", path="", inode=0):
    return f"{start:x}-{start + size:x} {perms} 00000000 00:00 {inode} {path}\n"


MB = 1 << 20
A, B = 0x7f0000000000, 0x7f0010000000
C, E, G = 0x55550000000, 0x7f2000000000, 0x7f4000000000


def kpf(*names):
    return sum(1 << KPF[n] for n in names)


@pytest.fixture
def fake(tmp_path):
    return fake_root(tmp_path)


def fake_root(tmp_path) -> str:
    """A synthetic two-node host under tmp_path (its /sys and /proc files)."""
    r = str(tmp_path)
    write(r, "sys/devices/system/node/online", "0-1\n")
    for n, cpus, dist in ((0, "0-1", "10 21"), (1, "2-3", "21 10")):
        d = f"sys/devices/system/node/node{n}"
        write(r, f"{d}/cpulist", cpus + "\n")
        write(r, f"{d}/distance", dist + "\n")
        write(r, f"{d}/meminfo", f"Node {n} MemTotal:       {256 * 1024} kB\n"
                                 f"Node {n} MemFree:        {100 * 1024} kB\n")
        write(r, f"{d}/numastat", f"numa_hit {1000 + n}\nnuma_miss {n}\nnuma_foreign 0\n"
                                  f"interleave_hit 7\nlocal_node {990 + n}\nother_node 10\n")
    write(r, "sys/devices/system/memory/block_size_bytes", "8000000\n")
    for i, (state, node) in enumerate((("online", 0), ("online", 0), ("online", 1),
                                       ("offline", 1))):
        d = f"sys/devices/system/memory/memory{i}"
        write(r, f"{d}/state", state + "\n")
        write(r, f"{d}/valid_zones", ("Normal" if state == "online" else "Normal Movable") + "\n")
        write(r, f"{d}/removable", "1\n")
        os.makedirs(os.path.join(r, d, f"node{node}"))
    write(r, "proc/zoneinfo", ZONEINFO)
    write(r, "proc/vmstat", "nr_free_pages 93000\npgmigrate_success 12\nnuma_hit 2001\n")
    # 100: interleaved over both nodes
    write(r, "proc/100/status", status("db", 1000, rss_kb=64 * 1024))
    write(r, "proc/100/stat", stat_line(100, "db", 2))
    write(r, "proc/100/maps", vma_line(A, 64 * MB) +
          vma_line(B, 4 * MB, "r--p", "/usr/lib/libc.so.6", inode=77))
    write(r, "proc/100/numa_maps",
          f"{A:x} interleave:0-1 anon=16384 dirty=16384 N0=8192 N1=8192 kernelpagesize_kB=4\n"
          f"{B:x} interleave:0-1 file=/usr/lib/libc.so.6 mapped=256 N0=256 "
          f"kernelpagesize_kB=4\n")
    # 200: the heap on node 1, a VMA bound to node 1, huge pages, the vdso
    write(r, "proc/200/status", status("web (worker)", 33, mems="1", rss_kb=4096))
    write(r, "proc/200/stat", stat_line(200, "web (worker)", 3))
    write(r, "proc/200/maps", vma_line(C, 8 * MB, path="[heap]") + vma_line(E, 32 * MB) +
          vma_line(G, 16 * MB) + vma_line(0x7ffff000, 8192, "r-xp", "[vdso]"))
    write(r, "proc/200/numa_maps",
          f"{C:x} default heap anon=1024 dirty=1024 N1=1024 kernelpagesize_kB=4\n"
          f"{E:x} bind:1 anon=4096 dirty=4096 N1=4096 kernelpagesize_kB=4\n"
          f"{G:x} default huge anon=4 dirty=4 N1=4 kernelpagesize_kB=2048\n"
          f"7ffff000 default\n")
    # 300: a kernel thread
    write(r, "proc/300/status", status("kworker/0:1", 0, mm=False))
    write(r, "proc/300/stat", stat_line(300, "kworker/0:1", 1, flags=0x04208040))
    # kpageflags: node 0 DMA free; node 0 Normal: anon, page cache, slab, free;
    # node 1: mlocked anon, huge anon, reserved, unflagged (kernel), buddy
    flags = np.zeros(131072, np.uint64)
    flags[1:4096] = kpf("buddy")
    flags[4096:5096] = kpf("anon", "lru", "mmap", "swapbacked", "uptodate")
    flags[5096:6096] = kpf("lru", "uptodate", "mmap", "dirty")
    flags[6096:6196] = kpf("slab")
    flags[6196:65536] = kpf("buddy")
    flags[65536:65636] = kpf("anon", "lru", "unevictable", "mlocked")
    flags[65636:66148] = kpf("anon", "thp", "compound_head")
    flags[66148:66200] = kpf("reserved")
    flags[66200:66300] = 0
    flags[66300:] = kpf("buddy")
    flags.tofile(os.path.join(r, "proc/kpageflags"))
    np.full(131072, 1, np.uint64).tofile(os.path.join(r, "proc/kpagecount"))
    return r


def test_fake_host_topology_and_blocks(fake):
    h = Host(fake)
    assert h.nodes == [0, 1] and [n.cpus for n in h.nodes_list] == [(0, 1), (2, 3)]
    assert [(n.start_pfn, n.spanned) for n in h.nodes_list] == [(1, 65535), (65536, 65536)]
    assert h.nr_frames == 131072 and h.distance(0, 1) == 21
    assert [(z.node, z.name, z.start_pfn, z.free) for z in h.zones if z.spanned] == \
        [(0, "DMA", 1, 3000), (0, "Normal", 4096, 40000), (1, "Normal", 65536, 50000)]
    assert h.node_of([0, 1, 4096, 65535, 65536, 131071, 131072]).tolist() == \
        [-1, 0, 0, 0, 1, 1, -1]
    assert [(b["index"], b["state"], b["node"], b["zone"]) for b in h.blocks()] == \
        [(0, "online", 0, "Normal"), (1, "online", 0, "Normal"), (2, "online", 1, "Normal"),
         (3, "offline", 1, None)]
    assert sorted(h.pids) == [100, 200, 300] and h.procs[300].kthread


def test_fake_host_processes_and_views(fake):
    h = Host(fake)
    rows = {r.pid: r for r in host_views.process_rows(h)}
    db, web, kt = rows[100], rows[200], rows[300]
    assert db.per_node.tolist() == [8448, 8192] and db.policy == "interleave:0-1"
    assert db.node == 1 and db.uid == 1000 and db.locality == pytest.approx(100 * 8192 / 16640)
    # huge pages count in base pages (4 x 2 MiB = 2048 pages)
    assert web.per_node.tolist() == [0, 1024 + 4096 + 2048] and web.policy == "default"
    assert kt.rss == 0 and kt.per_node.tolist() == [0, 0]
    vr = host_views.vma_rows(h, 200)
    assert [(r.kind, r.flags, r.policy, r.rss) for r in vr] == [
        ("anon", "rw-p", "default", 1024), ("anon", "rw-p", "bind:1", 4096),
        ("anon", "rw-p", "default", 2048), ("special", "r-xp", "default", 0)]
    assert host_views.vma_rows(h, 100)[1].kind == "file"
    counts = host_views.NodeCounts(h)
    counts.run()
    assert counts.process(100).tolist() == [8448, 8192]
    assert counts.process(100, anon_only=True).tolist() == [8192, 8192]
    assert counts.passes == 1 and not counts.busy
    assert host_views.resident_pages(h, h.process(200)) == 7168
    assert host_views.find_vma(h, 200, E + 5) is not None
    assert host_views.find_vma(h, 999999, 0) is None


def test_fake_host_commands_print_the_files(fake):
    h = Host(fake)
    for line, path in (("zoneinfo", "proc/zoneinfo"), ("numa_maps 200", "proc/200/numa_maps"),
                       ("meminfo 1", "sys/devices/system/node/node1/meminfo")):
        r = host_execute(h, line)
        assert r.ok and r.text == open(os.path.join(fake, path)).read().rstrip("\n"), line
    assert host_execute(h, "vmstat").text == "nr_free_pages 93000\npgmigrate_success 12\n" \
                                             "numa_hit 2001"
    # numactl -H and numastat in numactl 2.0.16's columns (checked against the real tools)
    assert host_execute(h, "hardware").text == (
        "available: 2 nodes (0-1)\n"
        "node 0 cpus: 0 1\nnode 0 size: 249 MB\nnode 0 free: 167 MB\n"
        "node 1 cpus: 2 3\nnode 1 size: 250 MB\nnode 1 free: 195 MB\n"
        "node distances:\nnode   0   1 \n  0:  10  21 \n  1:  21  10 ")
    assert host_execute(h, "numastat").text == (
        "                           node0           node1\n"
        "numa_hit                    1000            1001\n"
        "numa_miss                      0               1\n"
        "numa_foreign                   0               0\n"
        "interleave_hit                 7               7\n"
        "local_node                   990             991\n"
        "other_node                    10              10")
    assert host_execute(h, "ps").text.splitlines() == [
        "   PID   UID NODE      RSS  NAME", "   100  1000    1      64M  db",
        "   200    33    1     4.0M  web (worker)", "   300     0    0       0B  kworker/0:1"]
    assert host_execute(h, "meminfo 5").text == "error: no node 5"  # the same body
    assert host_execute(h, "numa_maps 4242").text == "error: ESRCH: no process 4242"


def test_simulator_only_commands_are_refused_in_one_line(fake):
    h = Host(fake)
    for line in ("mmap 100 4K", "spawn x", "offline 0 Normal", "bill", "kill 100",
                 "workload start 100", "save /tmp/x"):
        r = host_execute(h, line)
        assert not r.ok and len(r.text.splitlines()) == 1, line
        assert "not on the live host" in r.text
    assert "rehearse" in host_execute(h, "bill").text
    assert {"mmap", "spawn", "offline", "bill", "touch", "mbind"} <= set(REFUSED)
    r = host_execute(h, "help")
    assert r.ok and "rehearse move_pages PID RANGE|all [NODES]" in r.text
    assert r.text.splitlines()[-1].startswith("not on the host")
    # the same specs: the same argument errors as the simulator's
    assert host_execute(h, "move_pages x all").text == "error: pid: 'x' is not a number"
    assert host_execute(h, "move_pages 100 zz 0").text == "error: address: 'zz' is not a hex address"
    assert host_execute(h, "nonsense").text.startswith("error: unknown command 'nonsense'")


def test_fake_host_frame_map(fake):
    h = Host(fake)
    assert host_views.frames_unavailable(h) is None
    h.frames.run()
    assert host_views.zone_class_counts(h) == {
        0: {"free": 4095},
        1: {"anon": 1000, "page cache": 1000, "slab": 100, "free": 59340},
        2: {"mlocked": 100, "huge": 512, "reserved": 52, "kernel": 100, "free": 32004,
            "offline": 32768}}  # memory3 is offline
    assert host_views.frame_kinds(h, 4094, 4098).tolist() == [K_FREE, K_FREE, K_ANON, K_ANON]
    assert host_views.frame_kinds(h, 5096, 5097).tolist() == [K_FILE]
    assert host_views.frame_flags(h, 65536, 65537).tolist() == [int(PG_lru | PG_mlocked)]
    assert host_views.cell_summary(h, 6090, 6200) == "free 4, page cache 6, slab 100"
    lines = dict(host_views.describe_frame(h, 65700))
    assert lines["class"] == "huge" and lines["node"] == "1" and lines["zone"] == "Normal"
    assert lines["flags"] == "anon,compound_head,thp" and lines["mapcount"] == "1"
    assert lines["block"] == "memory2 online"
    out = host_execute(h, "frames").text.splitlines()
    assert out[0].split()[:4] == ["node", "zone", "free", "anon"]
    assert out[2].split()[:4] == ["0", "Normal", "59340", "1000"]
    # an offline block is shown offline whatever its flags say
    assert host_views.frame_kinds(h, 3 * 32768, 3 * 32768 + 2).tolist() == [K_OFFLINE] * 2


def test_fake_host_limits(fake):
    h = Host(fake)
    lim = "\n".join(h.limits())
    assert "pagemap hides PFNs" in lim and "/proc/iomem shows no addresses" in lim
    assert "read-only" in lim and "kpageflags" not in lim
    assert host_views.process_frames(h, 100).size == 0
    assert host_views.frame_owner(h, 4100) is None
    assert "read-only" in host_views.status_line(h)


# ------------------------------------------------------------------ the frame map

def test_classify_synthetic_words():
    words = np.array([kpf("buddy"), kpf("anon", "lru"), kpf("lru", "mmap"), kpf("slab"),
                      kpf("pgtable"), kpf("anon", "lru", "mlocked", "unevictable"),
                      kpf("anon", "thp"), kpf("reserved"), 0, kpf("zero_page", "reserved"),
                      kpf("offline"), kpf("nopage"), kpf("buddy", "offline"),
                      kpf("lru", "huge", "compound_tail")], np.uint64)
    cls, kind, fl = classify(words)
    assert [CLASSES[c] for c in cls] == [
        "free", "anon", "page cache", "slab", "page table", "mlocked", "huge", "reserved",
        "kernel", "zero page", "offline", "hole", "offline", "huge"]
    assert kind.tolist() == [K_FREE, K_ANON, K_FILE, K_KERNEL, K_KERNEL, K_ANON, K_ANON,
                             K_KERNEL, K_KERNEL, K_KERNEL, K_OFFLINE, K_OFFLINE, K_OFFLINE,
                             K_FILE]
    assert fl[5] == PG_lru | PG_mlocked and fl[0] == 0
    # long runs of one word are classified once per run: the same answer
    rng = np.random.default_rng(0)
    long = np.repeat(words, rng.integers(1, 5000, words.size))
    for got, want in zip(classify(long), classify_words(long)):
        assert np.array_equal(got, want)


def test_replay_without_pfns_uses_numa_maps_order(fake):
    """Without PFNs (no CAP_SYS_ADMIN) a replayed page's node comes from numa_maps'
    counts in address order, and present pages numa_maps does not count are the zero
    page (it never counts it)."""
    h = Host(fake)
    assert not h.pfns_visible
    v = HostVma(A, A + 10 * PAGE, "rw-p", "", per_node=np.array([3, 2]))
    e = np.zeros(10, np.uint64)
    e[[0, 1, 2, 4, 5, 7, 9]] = PM_PRESENT
    pres = present(e)
    zero = _zero_pages(h, v, e, pres)
    assert np.flatnonzero(zero).tolist() == [7, 9]
    node = _page_nodes(h, v, e, pres, zero)
    assert node[[0, 1, 2, 4, 5]].tolist() == [0, 0, 0, 1, 1]


@pytest.mark.skipif(not KPAGEFLAGS_READABLE, reason="/proc/kpageflags needs root")
def test_frame_map_counts_match_kpageflags(tmp_path):
    """A window of the real /proc/kpageflags, copied at its own offset into a sparse
    file (the real one changes while we read it): the map's class counts are the
    counts of the flag bits, rule by rule."""
    h = Host(processes=False)
    z = max((z for z in h.zones if z.spanned), key=lambda z: z.spanned)
    a, n = z.start_pfn, 1 << 16
    fd = os.open("/proc/kpageflags", os.O_RDONLY)
    try:
        raw = os.pread(fd, n * 8, a * 8)
    finally:
        os.close(fd)
    words = np.frombuffer(raw, np.uint64)
    snap = tmp_path / "kpageflags"
    with open(snap, "wb") as fh:
        fh.seek(a * 8)
        fh.write(raw)
    zone = type(z)(node=z.node, name=z.name, zone_type=z.zone_type, start_pfn=a, spanned=n,
                   zid=z.zid)
    fm = FrameMap(str(snap), "/nonexistent", a + n, [zone])
    assert fm.available
    fm.run()
    counts = dict(zip(CLASSES, fm.counts[z.zid].tolist()))

    def bit(name):
        return (words >> np.uint64(KPF[name])) & np.uint64(1) == 1

    gone = bit("nopage") | bit("offline")
    free = bit("buddy") & ~gone
    assert counts["free"] == int(free.sum())
    assert counts["slab"] == int((bit("slab") & ~gone & ~free).sum())
    user = (bit("anon") | bit("lru") | bit("mmap") | bit("swapcache") | bit("mappedtodisk"))
    kernel_rule = gone | free | bit("slab") | bit("pgtable") | bit("zero_page") | bit("reserved")
    anon_like = bit("anon") & ~kernel_rule
    assert counts["anon"] + counts["mlocked"] + counts["huge"] >= int(
        (anon_like & ~bit("mlocked") & ~bit("unevictable") & ~bit("thp") & ~bit("huge")).sum())
    assert counts["kernel"] == int((~kernel_rule & ~user).sum())
    assert sum(counts.values()) == n
    # the same frames through the view API
    assert np.bincount(fm.classes(a, a + n), minlength=len(CLASSES)).tolist() == \
        fm.counts[z.zid].tolist()


@needs_linux
def test_without_kpageflags_the_rest_works(tmp_path):
    """An unreadable kpageflags (here: a path that does not exist) leaves the frame map
    out with one sentence saying why, and everything else as it was."""
    bad = str(tmp_path / "no" / "kpageflags")
    h = Host(kpageflags=bad)
    why = host_views.frames_unavailable(h)
    assert why.startswith(f"cannot read {bad}: No such file or directory")
    assert why.endswith("the page-frame map (each frame's flags) is not shown")
    assert why in h.limits()
    assert host_views.frame_kinds(h, 0, 16).tolist() == [K_OFFLINE] * 16
    assert host_views.cell_summary(h, 0, 16) == "unknown (no frame map)"
    assert dict(host_views.describe_frame(h, 4096))["flags"] == why
    r = host_execute(h, "frames")
    assert not r.ok and r.text == f"error: {why}"
    assert host_execute(h, "hardware").ok and host_execute(h, "ps").ok
    assert any(r.pid == os.getpid() for r in host_views.process_rows(h))
    h.frames.step()  # nothing to count, nothing raised
    assert "needs root: CAP_SYS_ADMIN" in why_unreadable("/proc/kpageflags",
                                                        PermissionError(13, "Permission denied"))


# ------------------------------------------------------------------ the view API

def test_host_views_offer_every_view_of_the_simulator():
    """The console draws either: HostView has every method of the view API
    (engine.views.VIEW_API) with MachineView's parameters, and the module keeps the
    simulator's helpers under the same names and parameters."""
    for name in sim_views.VIEW_API:
        ours, theirs = getattr(sim_views.MachineView, name), getattr(host_views.HostView, name)
        assert list(inspect.signature(theirs).parameters) == \
            list(inspect.signature(ours).parameters), name
    for name in ("pages_per_node", "resident_pages", "vma_frames", "vma_pages_per_node",
                 "summarize_result", "status_counts", "status_counts_text"):
        assert list(inspect.signature(getattr(host_views, name)).parameters) == \
            list(inspect.signature(getattr(sim_views, name)).parameters), name
    for attr in ("step", "run", "stale", "vma", "process", "busy", "passes"):
        assert hasattr(host_views.NodeCounts, attr) or attr == "passes"
    assert host_views.ProcRow is sim_views.ProcRow and host_views.VmaRow is sim_views.VmaRow
    assert host_views.views_for(Host.__new__(Host)) is host_views
    assert host_views.views_for(object()) is sim_views
    assert type(host_views.view_for(Host.__new__(Host))) is host_views.HostView
    assert type(host_views.view_for(engine.Machine.default())) is sim_views.MachineView


# ------------------------------------------------------------------ refresh policy

class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_refresh_policy_watched_often_others_rarely():
    c = Clock()
    r = RefreshPolicy(c, Rates(watched=2, others=30, system=2, frames=10))
    r.set_visible([1, 2])
    r.select(9)
    assert r.watched == {1, 2, 9}
    read = {1: None, 2: 99.0, 3: None, 9: 90.0, 4: 95.0}
    # watched first (never read before read, then oldest), then the others; 2 (read a
    # second ago) and 4 (an other, read 5 s ago) are not due
    assert r.due_processes(read) == [1, 9, 3]
    read = {1: 100.0, 2: 100.0, 3: 100.0, 9: 100.0}
    c.t = 101.0
    assert r.due_processes(read) == []
    c.t = 102.0
    assert r.due_processes(read) == [1, 2, 9]
    c.t = 130.0
    assert r.due_processes(read) == [1, 2, 9, 3]
    assert r.due("system") and r.due("frames")
    r.done("system")
    assert not r.due("system")
    c.t = 132.0
    assert r.due("system")


def test_refresh_rates_shown_and_adjustable():
    c = Clock()
    r = RefreshPolicy(c)
    r.set_rates(watched=1, others=60)
    assert (r.rates.watched, r.rates.others) == (1, 60)
    r.faster()
    assert (r.rates.watched, r.rates.others, r.rates.system) == (0.5, 30, 1)
    r.slower()
    r.slower()
    assert (r.rates.watched, r.rates.others) == (2, 120)
    for bad in ({"watched": 0}, {"others": 1e9}, {"nope": 1}, {"system": 1, "frames": 0}):
        with pytest.raises(ValueError):
            r.set_rates(**bad)
    assert (r.rates.watched, r.rates.system) == (2, 4)  # unchanged
    r.spent(0.3)
    c.t += 10
    r.spent(0.3)
    assert r.cpu_share() == pytest.approx(0.6 / 30)
    assert r.text(50) == ("refresh: watched processes (0) every 2s, others (50) every 120s, "
                          "system every 4s, frame map every 20s; reading costs 2.00% of a CPU")
    c.t += 31
    assert r.cpu_share() == 0


def test_tick_reads_what_is_due(fake):
    c = Clock()
    h = Host(fake, clock=c)
    seen = []
    h.listeners.append(lambda m: seen.append(m))
    assert all(p.vmas_read is None for p in h.procs.values())
    assert h.tick(budget_s=10)  # system due? no: just read; every process's VMAs are due
    assert h.procs[100].vmas_read == 100.0 and h.procs[300].vmas_read is None  # kthread
    assert seen == [h]
    c.t = 101.0
    assert not h.tick(budget_s=10)
    c.t = 103.0
    h.refresh.set_visible([200])
    h.refresh.set_rates(frames=3600)
    h.refresh.done("frames")
    assert h.tick(budget_s=10)  # system and the watched process
    assert h.procs[200].vmas_read == 103.0 and h.procs[100].vmas_read == 100.0


async def test_console_draws_the_fake_host_through_the_view_api(fake):
    """The console on a Host, through HostView: the map from kpageflags, the process
    table from numa_maps, no simulated clock to pace."""
    from tui.app import NumaConsoleApp
    from tui.widgets.pagemap import C_ANON, C_FREE, NCLASS

    h = Host(fake)
    view = host_views.view_for(h)
    assert all(callable(getattr(view, n)) for n in sim_views.VIEW_API)
    kinds, owners = view.frame_sample(np.array([[4094, 4096], [5096, 65536]]))
    assert kinds.tolist() == [[K_FREE, K_ANON], [K_FILE, K_ANON]] and (owners == -1).all()
    assert view.frame_flags(np.array([65536])).tolist() == [int(PG_lru | PG_mlocked)]
    app = NumaConsoleApp(h, view_factory=host_views.view_for, executor=host_execute)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        t = app.main_screen.query_one("#processes")
        assert t.get_cell("100", "N0").text == "8448"  # numa_maps: 8192 anon + 256 file
        assert "live host" in app.export_screenshot().replace("&#160;", " ")
        pm = app.main_screen.query_one("#pagemap")
        codes = {int(c) % NCLASS for y in pm._visible_cell_rows() for c in pm._row_codes(y)}
        assert {C_FREE, C_ANON} <= codes
        t.select_pid(100)
        await pilot.press("v")  # numa_maps through the host's commands (in a thread)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.main_screen.query_one("#view").view_name == "/proc/100/numa_maps (db)"
        app.run_command("mmap 100 4K")  # the simulator's commands: refused in one line
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "not on the live host" in app.console_log.entries[-1]
