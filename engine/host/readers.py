"""Readers of what Linux exposes about the host, each one file (or one directory) at a
time, every path under `root` ("/" normally; tests point it elsewhere):

- /sys/devices/system/node/nodeN: CPUs, distances, meminfo, numastat
- /proc/zoneinfo: zones (start_pfn, spanned, present, managed, free, watermarks)
- /sys/devices/system/memory/memoryN: memory blocks and their states
- /proc/iomem: which physical ranges are RAM (root only: others see zeros)
- /proc/vmstat: the kernel's counters
- /proc/PID/{status,stat}: cheap, for every process; /proc/PID/{maps,numa_maps}: a
  page-table walk, read per process when the refresh policy says so
  (engine/host/refresh.py); /proc/PID/smaps only for processes with locked memory.

Nodes and zones come back as the simulator's own types (engine.mm.state.Node, Zone)
so that anything drawing a machine's layout draws the host's the same way. The
parsers of numa_maps, maps and zoneinfo are the capture's (engine/machines/capture.py):
one reading of each format."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..constants import ZONE_NAMES
from ..machines.capture import (
    PF_KTHREAD,
    HostProc,
    HostVMA,
    parse_maps,
    parse_numa_maps_line,
    read_nodes,
    read_zoneinfo,
)
from ..mm.zones import Node, Zone

SPECIAL_VMAS = ("[vdso]", "[vvar]", "[vvar_vclock]", "[vsyscall]", "[uprobes]")


def read_text(root: str, rel: str) -> str:
    """A file's text; OSError when it cannot be read."""
    with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as fh:
        return fh.read()


def try_text(root: str, rel: str) -> str | None:
    try:
        return read_text(root, rel)
    except OSError:
        return None


def parse_list(s: str) -> list[int]:
    """A kernel list such as "0-3,8,10-11" (cpulist, Mems_allowed_list)."""
    out: list[int] = []
    for part in s.strip().split(","):
        if part:
            a, _, b = part.partition("-")
            out.extend(range(int(a), int(b or a) + 1))
    return out


# ------------------------------------------------------------------ topology

@dataclass
class Topology:
    nodes: list[Node]
    zones: list[Zone]  # every zone zoneinfo lists, in its order
    distances: dict[tuple[int, int], int]
    memtotal: dict[int, int]  # node -> bytes (nodeN/meminfo MemTotal)


def zone_type(name: str) -> int:
    """ZONE_NAMES index; zones the engine does not model (Device, HighMem) after them."""
    return ZONE_NAMES.index(name) if name in ZONE_NAMES else len(ZONE_NAMES)


def read_topology(root: str) -> Topology:
    """Nodes (CPUs, span), zones and the SLIT, from sysfs and /proc/zoneinfo."""
    raw = read_nodes(root)
    hz = read_zoneinfo(root)
    zones = []
    for i, z in enumerate(hz):
        zones.append(Zone(node=z.node, name=z.name, zone_type=zone_type(z.name),
                          start_pfn=z.start_pfn if z.spanned else 0, spanned=z.spanned,
                          present=z.present, managed=z.managed, free=z.free,
                          wmark_min=z.min, wmark_low=z.low, wmark_high=z.high, zid=i))
    nodes = []
    for n in raw:
        zs = [z for z in zones if z.node == n["id"] and z.spanned]
        start = min((z.start_pfn for z in zs), default=0)
        end = max((z.end_pfn for z in zs), default=0)
        nodes.append(Node(id=n["id"], cpus=tuple(n["cpus"]), start_pfn=start,
                          spanned=end - start))
    ids = [n["id"] for n in raw]
    dist = {}
    for n in raw:
        row = n["distance"]
        for j, b in enumerate(ids):
            dist[(n["id"], b)] = row[j] if len(row) == len(ids) else (10 if b == n["id"]
                                                                     else 20)
    return Topology(nodes, zones, dist, {n["id"]: n["memtotal"] for n in raw})


def read_blocks(root: str, page_size: int) -> tuple[int, list[dict]]:
    """(block size in bytes, one dict per /sys/devices/system/memory/memoryN) with the
    keys the simulator's Machine.blocks() gives: index, state, node, zone, valid_zones,
    removable, start_pfn, pages, isolated."""
    base = "sys/devices/system/memory"
    bs_text = try_text(root, f"{base}/block_size_bytes")
    bs = int(bs_text.strip(), 16) if bs_text else 0
    try:
        names = os.listdir(os.path.join(root, base))
    except OSError:
        return bs, []
    idx = sorted(int(n[6:]) for n in names if re.fullmatch(r"memory\d+", n))
    bpages = bs // page_size if bs else 0
    out = []
    for i in idx:
        d = f"{base}/memory{i}"
        try:
            entries = os.listdir(os.path.join(root, d))
        except OSError:
            continue
        node = next((int(e[4:]) for e in entries if re.fullmatch(r"node\d+", e)), -1)
        state = (try_text(root, f"{d}/state") or "unknown").strip()
        valid = (try_text(root, f"{d}/valid_zones") or "").strip()
        removable = (try_text(root, f"{d}/removable") or "0").strip()
        start = i * bpages
        # an online block's valid_zones is the zone it is in ("none" across zones)
        zone = valid if state == "online" and valid and " " not in valid and \
            valid != "none" else None
        out.append({"index": i, "state": state, "node": node, "zone": zone,
                    "valid_zones": valid or "none",
                    "removable": int(removable) if removable.isdigit() else 0,
                    "start_pfn": start, "pages": bpages, "isolated": False})
    return bs, out


def read_ram_ranges(root: str, page_size: int) -> list[tuple[int, int]] | None:
    """[start_pfn, end_pfn) ranges that /proc/iomem calls System RAM; None when the
    file cannot be read or shows only zeros (it does to anyone but root)."""
    text = try_text(root, "proc/iomem")
    if not text:
        return None
    out = []
    for line in text.splitlines():
        if line.startswith(" ") or ": System RAM" not in line:
            continue
        span = line.split(":", 1)[0].strip()
        a, _, b = span.partition("-")
        try:
            lo, hi = int(a, 16), int(b, 16) + 1
        except ValueError:
            continue
        out.append(((lo + page_size - 1) // page_size, hi // page_size))
    if not out or all(a == 0 and b <= 1 for a, b in out):
        return None
    return out


def read_vmstat(root: str) -> dict[str, int]:
    out = {}
    for line in (try_text(root, "proc/vmstat") or "").splitlines():
        k, _, v = line.partition(" ")
        if v.strip().lstrip("-").isdigit():
            out[k] = int(v)
    return out


def read_node_numastat(root: str, node: int) -> dict[str, int]:
    out = {}
    for line in (try_text(root, f"sys/devices/system/node/node{node}/numastat") or
                 "").splitlines():
        k, _, v = line.partition(" ")
        if v.strip().isdigit():
            out[k] = int(v)
    return out


# ------------------------------------------------------------------ processes

@dataclass
class HostVma(HostVMA):
    """A VMA of /proc/PID/maps with its numa_maps line (the capture's HostVMA plus what
    the console shows). `per_node` is pages per node in the host's node order (base
    pages: hugetlb counts are multiplied out)."""

    pid: int = 0
    inode: int = 0
    per_node: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    locked: bool = False  # VmFlags "lo" (read from smaps when the process locks memory)
    counted: bool = False  # numa_maps had a line for it
    host: Any = field(default=None, repr=False, compare=False)  # reads its pagemap

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def shared(self) -> bool:
        return self.perms[3:4] == "s"

    @property
    def special(self) -> bool:
        return self.path in SPECIAL_VMAS

    @property
    def kind(self) -> str:
        """anon, file, or special (the kernel's vdso/vvar/vsyscall mappings)."""
        if self.special:
            return "special"
        if self.path.startswith("/") and self.inode:
            return "file"
        return "anon"

    def flag_string(self) -> str:
        return self.perms + (" locked" if self.locked else "")

    def npages(self, page_size: int) -> int:
        return self.length // page_size


@dataclass
class HostProcess(HostProc):
    """A process: status/stat (cheap, every refresh) and its VMAs (a page-table walk,
    per the refresh policy). `vmas_error` says why the VMAs could not be read."""

    rss: int = 0  # VmRSS in pages
    locked_kb: int = 0  # VmLck
    threads: int = 0
    state: str = ""
    starttime: int = 0  # stat field 22: tells a reused PID from the process it was
    policy: str = "default"  # what numa_maps shows for most of it (see task_policy)
    vmas_read: float | None = None  # when maps+numa_maps were last read (clock seconds)
    vmas_error: str | None = None

    @property
    def has_mm(self) -> bool:
        return not self.kthread

    def find_vma(self, addr: int) -> HostVma | None:
        for v in self.vmas:
            if v.start <= addr < v.end:
                return v
        return None


def status_fields(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def _kb(s: str) -> int:
    w = s.split()
    return int(w[0]) if w and w[0].isdigit() else 0


def read_process(root: str, pid: int, cpu_node: dict[int, int], first: int,
                 page_size: int) -> HostProcess:
    """status and stat of one process; OSError when it cannot be read (it exited, or
    the files are hidden from us)."""
    st = status_fields(read_text(root, f"proc/{pid}/status"))
    stat = read_text(root, f"proc/{pid}/stat")
    try:
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": field 3 on
        flags = int(fields[6])  # field 9
        cpu = int(fields[36]) if len(fields) > 36 else -1  # field 39: processor
        starttime = int(fields[19])  # field 22
    except (ValueError, IndexError):
        raise OSError(0, f"/proc/{pid}/stat: cannot parse") from None
    kthread = bool(flags & PF_KTHREAD) or "VmSize" not in st
    return HostProcess(
        pid=pid, name=st.get("Name", str(pid)), uid=int(st.get("Uid", "0").split()[0]),
        node=cpu_node.get(cpu, first), kthread=kthread,
        mems=tuple(parse_list(st.get("Mems_allowed_list", ""))),
        rss=_kb(st.get("VmRSS", "")) * 1024 // page_size, locked_kb=_kb(st.get("VmLck", "")),
        threads=int(st.get("Threads", "1") or 1), state=st.get("State", "")[:1],
        starttime=starttime)


def read_vmas(root: str, pid: int, node_ids: list[int], page_size: int,
              locked: bool = False) -> list[HostVma]:
    """maps joined with numa_maps (and smaps' VmFlags when `locked`): every VMA of the
    process, its policy and pages per node. OSError when unreadable."""
    maps = read_text(root, f"proc/{pid}/maps")
    nm = read_text(root, f"proc/{pid}/numa_maps")
    info = {}
    for line in nm.splitlines():
        if line.strip():
            start, pol, counts, flds = parse_numa_maps_line(line)
            info[start] = (pol, counts, flds)
    col = {n: i for i, n in enumerate(node_ids)}
    inodes = _inodes(maps)
    lockset = _locked_starts(root, pid) if locked else set()
    out = []
    for start, end, perms, path in parse_maps(maps):
        v = HostVma(start, end, perms, path, pid=pid, inode=inodes.get(start, 0),
                    locked=start in lockset)
        per = np.zeros(len(node_ids), np.int64)
        if start in info:
            pol, counts, flds = info[start]
            v.policy, v.pages, v.counted = pol, counts, True
            v.anon, v.dirty = flds.get("anon", 0), flds.get("dirty", 0)
            v.kpage = flds.get("kernelpagesize_kB", 0) * 1024
            factor = max(1, (v.kpage or page_size) // page_size)
            for n, c in counts.items():
                if n in col:
                    per[col[n]] += c * factor
        v.per_node = per
        out.append(v)
    return out


def _inodes(maps: str) -> dict[int, int]:
    out = {}
    for line in maps.splitlines():
        w = line.split(None, 5)
        if len(w) >= 5 and w[4].isdigit():
            out[int(w[0].partition("-")[0], 16)] = int(w[4])
    return out


def _locked_starts(root: str, pid: int) -> set[int]:
    """Starts of VMAs whose smaps VmFlags include "lo" (VM_LOCKED)."""
    try:
        text = read_text(root, f"proc/{pid}/smaps")
    except OSError:
        return set()
    out, cur = set(), None
    for line in text.splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
            cur = int(line.split("-", 1)[0], 16)
        elif line.startswith("VmFlags:") and cur is not None and "lo" in line.split()[1:]:
            out.add(cur)
    return out


def list_pids(root: str) -> list[int]:
    try:
        return sorted(int(n) for n in os.listdir(os.path.join(root, "proc")) if n.isdigit())
    except OSError:
        return []
