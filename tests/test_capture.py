"""Host capture: this host, a synthetic two-node host, and the command line."""

from __future__ import annotations

import glob
import os
import tomllib

import pytest

import engine
from engine.constants import MPOL_BIND, MPOL_INTERLEAVE
from engine.machines import capture as cap
from engine.views import resident_pages
from tui import cli

PAGE = os.sysconf("SC_PAGE_SIZE")


def host_present_pages() -> int:
    """Present pages of the zones the engine models, straight from /proc/zoneinfo."""
    total, zone = 0, None
    with open("/proc/zoneinfo") as fh:
        for line in fh:
            if line.startswith("Node "):
                zone = line.split()[-1]
            elif line.split()[:1] == ["present"] and zone in cap.ZONE_MAP:
                total += int(line.split()[1])
    return total


def readable_pids() -> set[int]:
    out = set()
    for d in glob.glob("/proc/[0-9]*"):
        pid = int(os.path.basename(d))
        try:
            st = open(f"{d}/status").read()
            if "VmSize" in st:
                open(f"{d}/numa_maps").read()
                open(f"{d}/maps").read()
            out.add(pid)
        except OSError:
            pass
    return out


# ------------------------------------------------------------------ this host

@pytest.fixture(scope="module")
def captured():
    before = readable_pids()
    d = cap.capture()
    after = readable_pids()
    return d, engine.Machine.from_description(d, source="<capture>"), before, after


def test_capture_loads_and_checks(captured):
    d, m, *_ = captured
    m.check()
    assert d["host"]["scale"] <= 1


def test_capture_nodes_match_sys(captured):
    _, m, *_ = captured
    nodes = glob.glob("/sys/devices/system/node/node[0-9]*")
    assert len(m.nodes) == (len(nodes) or 1)
    for n in m.nodes:
        cpus = open(f"/sys/devices/system/node/node{n}/cpulist").read().strip()
        assert set(m.node(n).cpus) == set(cap._cpulist(cpus))


def test_capture_memory_matches_zoneinfo(captured):
    d, m, *_ = captured
    want = host_present_pages() * d["host"]["scale"]
    assert abs(m.nr_frames - want) <= 0.01 * want + 8 * len(m.zones)
    assert m.nr_frames * m.page_size <= 4.1 * 2**30  # the default scale keeps it small


def test_capture_processes_match_proc(captured):
    """Process count against the readable /proc PIDs (readable: status, and maps and
    numa_maps for a process with an address space), taken just before and after."""
    d, m, *_ = captured
    h = d["host"]
    assert len(m.pids) == len(d["processes"])
    assert len(d["processes"]) + h["skipped"] == h["pids_seen"]
    got = {p["pid"] for p in d["processes"]}
    before, after = captured[2:]  # the host is shared: processes come and go
    lived = before & after
    assert lived <= got, sorted(lived - got)  # every readable process that lived through
    assert got <= before | after | {os.getpid()}, sorted(got - before - after)
    assert len(got) >= len(lived) and len(got - lived) <= 10


def test_capture_vmas_and_policies(captured):
    _, m, *_ = captured
    me = m.procs.get(os.getpid())
    assert me is not None and me.vmas, "the test's own process is captured"
    assert resident_pages(m, me) > 0


def test_cli_writes_a_loadable_file(tmp_path, capsys):
    out = tmp_path / "host.toml"
    assert cli.cmd_capture(["-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "skipped" in err and "node" in err
    text = out.read_text()
    assert text.startswith("# Captured from ")
    m = engine.load(out)
    m.check()


def test_cli_stdout_and_scale(capsys):
    assert cli.cmd_capture(["--scale", "0.02"]) == 0
    out = capsys.readouterr().out
    d = tomllib.loads(out)
    assert d["host"]["scale"] == 0.02
    m = engine.Machine.from_description(d)
    want = host_present_pages() * 0.02
    assert abs(m.nr_frames - want) <= 0.01 * want + 8 * len(m.zones)


def test_cli_bad_scale(capsys):
    assert cli.cmd_capture(["--scale", "3"]) == 2
    assert "scale" in capsys.readouterr().err


# ------------------------------------------------------------------ a synthetic host

def write(root, rel, text):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def stat_line(pid, comm, cpu, flags=0x400100):
    vals = ["0"] * 50
    vals[5] = str(flags)  # field 9
    vals[35] = str(cpu)  # field 39
    return f"{pid} ({comm}) S " + " ".join(vals) + "\n"


def status(name, uid, mems="0-1", mm=True):
    return (f"Name:\t{name}\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t{uid}\t{uid}\t{uid}\t"
            f"{uid}\n" + ("VmSize:\t  10000 kB\n" if mm else "") +
            f"Mems_allowed_list:\t{mems}\n")


ZONEINFO = """\
Node 0, zone      DMA
  pages free     3000
        min      10
        low      12
        high     14
        spanned  4095
        present  3998
        managed  3840
Node 0, zone    DMA32
  pages free     200000
        min      100
        low      120
        high     140
        spanned  258048
        present  258048
        managed  250000
Node 0, zone   Normal
  pages free     200000
        spanned  262144
        present  262144
        managed  260000
Node 1, zone   Normal
  pages free     300000
        min      100
        spanned  524288
        present  524288
        managed  520000
Node 1, zone  Movable
  pages free     0
        spanned  0
        present  0
        managed  0
Node 1, zone   Device
  pages free     0
        spanned  0
        present  0
        managed  0
"""

MB = 1 << 20


def vma_line(start, size, perms="rw-p", path=""):
    return f"{start:012x}-{start + size:012x} {perms} 00000000 00:00 0          {path}\n"


@pytest.fixture
def fake_host(tmp_path):
    r = tmp_path
    write(r, "sys/devices/system/node/online", "0-1\n")
    write(r, "sys/devices/system/node/node0/cpulist", "0-1\n")
    write(r, "sys/devices/system/node/node0/distance", "10 21\n")
    write(r, "sys/devices/system/node/node0/meminfo", "Node 0 MemTotal: 2097152 kB\n")
    write(r, "sys/devices/system/node/node1/cpulist", "2-3\n")
    write(r, "sys/devices/system/node/node1/distance", "21 10\n")
    write(r, "sys/devices/system/node/node1/meminfo", "Node 1 MemTotal: 2097152 kB\n")
    write(r, "sys/devices/system/memory/block_size_bytes", "8000000\n")
    write(r, "sys/devices/system/memory/memory0/state", "online\n")
    write(r, "sys/devices/system/memory/memory1/state", "offline\n")
    write(r, "proc/zoneinfo", ZONEINFO)
    # 100: a database under `numactl --interleave=0-1` (every VMA shows the task policy)
    a, b = 0x7f0000000000, 0x7f0010000000
    write(r, "proc/100/status", status("db", 1000))
    write(r, "proc/100/stat", stat_line(100, "db", 2))
    write(r, "proc/100/maps", vma_line(a, 64 * MB) + vma_line(b, 4 * MB, "r--p", "/usr/lib/libc.so.6"))
    write(r, "proc/100/numa_maps",
          f"{a:x} interleave:0-1 anon=16384 dirty=16384 N0=8192 N1=8192 kernelpagesize_kB=4\n"
          f"{b:x} interleave:0-1 file=/usr/lib/libc.so.6 mapped=256 N0=256 "
          f"kernelpagesize_kB=4\n")
    # 200: default task policy, one VMA bound to node 1, a shared file, the heap, huge pages
    c, e, f, g = 0x55550000000, 0x7f2000000000, 0x7f3000000000, 0x7f4000000000
    write(r, "proc/200/status", status("web", 33, mems="1"))
    write(r, "proc/200/stat", stat_line(200, "web (worker)", 3))
    write(r, "proc/200/maps", vma_line(c, 8 * MB, path="[heap]") +
          vma_line(e, 32 * MB) + vma_line(f, 16 * MB, "rw-s", "/dev/shm/cache") +
          vma_line(g, 16 * MB) + vma_line(0x7ffff000, 8192, "r-xp", "[vdso]"))
    write(r, "proc/200/numa_maps",
          f"{c:x} default heap anon=1024 dirty=1024 N1=1024 kernelpagesize_kB=4\n"
          f"{e:x} bind:1 anon=4096 dirty=4096 N1=4096 kernelpagesize_kB=4\n"
          f"{f:x} default file=/dev/shm/cache dirty=2048 N1=2048 kernelpagesize_kB=4\n"
          f"{g:x} default huge anon=4 dirty=4 N1=4 kernelpagesize_kB=2048\n"
          f"7ffff000 default\n")
    # 300: a kernel thread
    write(r, "proc/300/status", status("kworker/0:1", 0, mm=False))
    write(r, "proc/300/stat", stat_line(300, "kworker/0:1", 1, flags=0x04208040))
    # 400: exited between the directory listing and reading its maps
    write(r, "proc/400/status", status("gone", 0))
    write(r, "proc/400/stat", stat_line(400, "gone", 0))
    # 500: unreadable (another user's process; simulated, the tests may run as root)
    write(r, "proc/500/status", status("secret", 0))
    write(r, "proc/500/stat", stat_line(500, "secret", 0))
    write(r, "proc/500/maps", "")
    write(r, "proc/500/numa_maps", "")
    # 600: a policy that names a node outside its cpuset: dropped, not an error
    write(r, "proc/600/status", status("odd", 0, mems="0"))
    write(r, "proc/600/stat", stat_line(600, "odd", 0))
    write(r, "proc/600/maps", vma_line(a, 4 * MB))
    write(r, "proc/600/numa_maps", f"{a:x} prefer (many):1 anon=10 N0=10 kernelpagesize_kB=4\n")
    return r


@pytest.fixture
def unreadable_500(monkeypatch):
    real = cap.read_process

    def rp(root, pid, *a):
        if pid == 500:
            raise PermissionError(13, "Permission denied")
        return real(root, pid, *a)

    monkeypatch.setattr(cap, "read_process", rp)


def test_fake_host(fake_host, unreadable_500):
    d = cap.capture(scale=0.5, root=str(fake_host))
    h = d["host"]
    assert h["pids_seen"] == 6 and h["skipped"] == 2
    assert h["skipped_why"] == {"exited": 1, "unreadable": 1}
    assert h["block_states"] == {"online": 1, "offline": 1} and h["block_size_bytes"] == 128 * MB
    assert d["distances"]["matrix"] == [[10, 21], [21, 10]]
    assert [n["cpus"] for n in d["nodes"]] == ["0-1", "2-3"]
    # zone sizes are halved page multiples; Device and empty zones are left out
    assert d["nodes"][1]["zones"] == {"Normal": "1G"}
    assert d["machine"]["block_size"] == "64M"
    procs = {p["pid"]: p for p in d["processes"]}
    assert set(procs) == {100, 200, 300, 600}
    db, web, kt = procs[100], procs[200], procs[300]
    assert db["policy"] == "interleave:0-1" and db["node"] == 1 and db["uid"] == 1000
    assert "policy" not in db["vmas"][0]  # the task policy, not repeated per VMA
    assert db["vmas"][0]["touch_pages"] == {"0": 4096, "1": 4096}
    assert db["vmas"][1]["kind"] == "file" and db["vmas"][1]["write"] is False
    assert web["name"] == "web" and web["cpuset"] == "1" and "policy" not in web
    assert web["vmas"][0]["name"] == "[heap]"
    assert web["vmas"][1]["policy"] == "bind:1"
    assert web["vmas"][2]["shared"] is True and web["vmas"][2]["write"] is True
    assert web["vmas"][3]["touch_pages"] == {"1": 1024}  # 4 huge pages, halved, in 4K pages
    assert len(web["vmas"]) == 4  # [vdso] left out
    assert kt["kthread"] is True and "vmas" not in kt
    assert "policy" not in procs[600]["vmas"][0] and h["policies_dropped"] == 1
    m = engine.Machine.from_description(d)
    m.check()
    assert m.process(100).policy.mode == MPOL_INTERLEAVE
    assert [v.policy.mode for v in m.process(200).vmas if v.policy] == [MPOL_BIND]
    assert m.nr_frames == pytest.approx((3998 + 258048 + 262144 + 524288) * 0.5, abs=4)


def test_fake_host_cli(fake_host, unreadable_500, tmp_path, capsys):
    out = tmp_path / "fake.toml"
    assert cli.cmd_capture(["-o", str(out), "--root", str(fake_host)]) == 0
    err = capsys.readouterr().err
    assert "skipped 2 (1 exited, 1 unreadable)" in err or \
        "skipped 2 (1 unreadable, 1 exited)" in err
    engine.load(out).check()


def test_host_without_numa_sysfs(tmp_path):
    write(tmp_path, "proc/meminfo", "MemTotal:  1048576 kB\n")
    write(tmp_path, "sys/devices/system/cpu/online", "0-3\n")
    d = cap.capture(root=str(tmp_path))
    assert [n["id"] for n in d["nodes"]] == [0] and d["nodes"][0]["cpus"] == "0-3"
    m = engine.Machine.from_description(d)
    assert m.nr_frames * m.page_size == pytest.approx(1 << 30, rel=0.01)


@pytest.mark.parametrize("line,pol,counts", [
    ("7f00 default anon=3 N0=3 kernelpagesize_kB=4", "default", {0: 3}),
    ("7f00 interleave=static|relative:0-3 N2=5 N3=6", "interleave:0-3", {2: 5, 3: 6}),
    ("7f00 prefer (many):0,2 anon=1 N0=1", "preferred-many:0,2", {0: 1}),
    ("7f00 weighted interleave:0-1 N1=7", "weighted-interleave:0-1", {1: 7}),
    ("7f00 local", "local", {}),
    ("7f00 bind:1 file=/a/N0=9 mapped=2 N1=2", "bind:1", {1: 2}),
])
def test_parse_numa_maps_line(line, pol, counts):
    start, p, c, _ = cap.parse_numa_maps_line(line)
    assert start == 0x7F00 and p == pol and c == counts
