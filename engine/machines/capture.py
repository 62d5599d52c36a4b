"""`numacon capture`: a machine description of the host it runs on.

Read from the host (all paths under `root`, "/" normally):

- /sys/devices/system/node/nodeN: cpulist, distance, meminfo (nodes, CPUs, SLIT)
- /proc/zoneinfo: zones with spanned/present/managed/free and watermarks
- /sys/devices/system/memory: block_size_bytes and each block's state
- /proc/PID/status, stat, maps and numa_maps: processes (name, uid, the node of the
  CPU they last ran on, cpuset mems), their VMAs (size, anon or file, shared, policy)
  and how many pages of each VMA sit on each node. A process whose files cannot be
  read (permissions, or it exited meanwhile) is skipped and counted.

A large host is scaled down (memory, block size and process sizes alike) so that the
captured machine stays interactive: by default to at most 4 GiB. Pages touched per
node are kept in proportion; unmapped reservations (a JVM's or Go's address space) are
capped so that page tables stay small. What the engine cannot take as input (free
counts, host watermarks, block states, the scale) goes to the [host] table.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field

from ..constants import ZONE_NAMES
from ..nodemask import nodes_str, parse_nodes

DEFAULT_MAX_BYTES = 4 << 30
VMA_CAP_BYTES = 256 << 20  # untouched address space kept per VMA (after scaling)
MAX_KERNEL_SHARE = 0.95
PF_KTHREAD = 0x00200000
ZONE_MAP = {"DMA": "DMA", "DMA32": "DMA32", "Normal": "Normal", "HighMem": "Normal",
            "Movable": "Movable"}  # ZONE_DEVICE has no present pages: left out
POLICY_CANON = {"default": "default", "prefer": "prefer", "bind": "bind",
                "interleave": "interleave", "local": "local",
                "prefer (many)": "preferred-many", "weighted interleave": "weighted-interleave"}


# ------------------------------------------------------------------ host data

@dataclass
class HostZone:
    node: int
    name: str
    spanned: int = 0
    present: int = 0
    managed: int = 0
    free: int = 0
    min: int = 0
    low: int = 0
    high: int = 0
    start_pfn: int = 0  # reported for populated zones only


@dataclass
class HostVMA:
    start: int
    end: int
    perms: str
    path: str
    policy: str = "default"
    pages: dict[int, int] = field(default_factory=dict)  # node -> host pages
    anon: int = 0
    dirty: int = 0
    kpage: int = 0  # kernelpagesize_kB * 1024 (0: not reported)


@dataclass
class HostProc:
    pid: int
    name: str
    uid: int
    node: int
    mems: tuple[int, ...]
    kthread: bool
    vmas: list[HostVMA] = field(default_factory=list)


def _read(root: str, *parts: str) -> str | None:
    try:
        with open(os.path.join(root, *parts), encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _cpulist(s: str) -> list[int]:
    out: list[int] = []
    for part in s.strip().split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def read_nodes(root: str) -> list[dict]:
    """Online nodes: id, cpus (list), distance row (in online-node order), MemTotal."""
    base = os.path.join(root, "sys/devices/system/node")
    try:
        names = os.listdir(base)
    except OSError:
        names = []
    ids = sorted(int(n[4:]) for n in names if re.fullmatch(r"node\d+", n))
    online = _read(root, "sys/devices/system/node/online")
    if online:
        ids = [i for i in ids if i in set(_cpulist(online))] or ids
    nodes = []
    for i in ids:
        d = f"sys/devices/system/node/node{i}"
        mem = _read(root, d, "meminfo") or ""
        mt = re.search(r"MemTotal:\s+(\d+) kB", mem)
        dist = (_read(root, d, "distance") or "").split()
        nodes.append({"id": i, "cpus": _cpulist(_read(root, d, "cpulist") or ""),
                      "distance": [int(x) for x in dist],
                      "memtotal": int(mt.group(1)) * 1024 if mt else 0})
    if nodes:
        return nodes
    # a kernel without NUMA: one node with every CPU and all memory
    mem = _read(root, "proc/meminfo") or ""
    mt = re.search(r"MemTotal:\s+(\d+) kB", mem)
    cpus = _cpulist(_read(root, "sys/devices/system/cpu/online") or f"0-{os.cpu_count() - 1}")
    return [{"id": 0, "cpus": cpus, "distance": [10],
             "memtotal": int(mt.group(1)) * 1024 if mt else 0}]


def read_zoneinfo(root: str) -> list[HostZone]:
    text = _read(root, "proc/zoneinfo") or ""
    zones: list[HostZone] = []
    z = None
    for line in text.splitlines():
        mt = re.match(r"Node (\d+), zone\s+(\S+)", line)
        if mt:
            z = HostZone(int(mt.group(1)), mt.group(2))
            zones.append(z)
            continue
        if z is None:
            continue
        words = line.split()
        if len(words) == 3 and words[:2] == ["pages", "free"]:
            z.free = int(words[2])
        elif len(words) == 2 and words[0] in ("spanned", "present", "managed", "min",
                                               "low", "high") and words[1].isdigit():
            setattr(z, words[0], int(words[1]))
        elif len(words) == 2 and words[0] == "start_pfn:" and words[1].isdigit():
            z.start_pfn = int(words[1])
    return zones


def read_blocks(root: str) -> dict:
    """Memory block size and how many blocks are in each state."""
    base = "sys/devices/system/memory"
    bs = _read(root, base, "block_size_bytes")
    states: Counter = Counter()
    try:
        names = os.listdir(os.path.join(root, base))
    except OSError:
        names = []
    for n in names:
        if re.fullmatch(r"memory\d+", n):
            states[(_read(root, base, n, "state") or "unknown").strip()] += 1
    return {"block_size": int(bs.strip(), 16) if bs else 0, "states": dict(states)}


# ------------------------------------------------------------------ processes

def parse_maps(text: str) -> list[tuple[int, int, str, str]]:
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        a, _, b = parts[0].partition("-")
        out.append((int(a, 16), int(b, 16), parts[1], parts[5].strip() if len(parts) > 5
                    else ""))
    return out


NM_COUNT = re.compile(r" N(\d+)=(\d+)")
NM_FIELD = re.compile(r" (anon|dirty|kernelpagesize_kB)=(\d+)")


def parse_numa_maps_line(line: str) -> tuple[int, str, dict, dict]:
    """(start, canonical policy, {node: pages}, {anon, dirty, kernelpagesize_kB})."""
    addr, _, rest = line.partition(" ")
    # policy names with a space: "prefer (many):0-1", "weighted interleave:0-3"
    mt = re.match(r"(prefer \(many\)|weighted interleave|[a-z]+)(=[a-z|]+)?(:[\d,-]+)?",
                  rest)
    name = mt.group(1) if mt else "default"
    pol = POLICY_CANON.get(name, "default")
    if mt and mt.group(3):
        pol += mt.group(3)
    counts = {int(n): int(c) for n, c in NM_COUNT.findall(line)}
    fields = {k: int(v) for k, v in NM_FIELD.findall(line)}
    return int(addr, 16), pol, counts, fields


def _vmas(maps_text: str, nm_text: str) -> list[HostVMA]:
    info = {}
    for line in nm_text.splitlines():
        if line.strip():
            start, pol, counts, fields = parse_numa_maps_line(line)
            info[start] = (pol, counts, fields)
    out = []
    for start, end, perms, path in parse_maps(maps_text):
        if path.startswith("[v"):  # [vdso], [vvar], [vsyscall]: the kernel's own pages
            continue
        v = HostVMA(start, end, perms, path)
        if start in info:
            pol, counts, fields = info[start]
            v.policy, v.pages = pol, counts
            v.anon, v.dirty = fields.get("anon", 0), fields.get("dirty", 0)
            v.kpage = fields.get("kernelpagesize_kB", 0) * 1024
        out.append(v)
    return out


def _status_fields(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def read_process(root: str, pid: int, cpu_node: dict[int, int], first: int) -> HostProc:
    """One process; OSError (EACCES, ENOENT, ESRCH) when it cannot be read."""
    d = os.path.join(root, "proc", str(pid))

    def rd(name: str) -> str:
        with open(os.path.join(d, name), encoding="utf-8", errors="replace") as fh:
            return fh.read()

    st = _status_fields(rd("status"))
    stat = rd("stat")
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": field 3 on
    flags = int(fields[6])  # field 9
    cpu = int(fields[36]) if len(fields) > 36 else -1  # field 39: processor
    kthread = bool(flags & PF_KTHREAD) or "VmSize" not in st  # kthreads, zombies: no mm
    p = HostProc(pid=pid, name=st.get("Name", str(pid)), uid=int(st.get("Uid", "0").split()[0]),
                 node=cpu_node.get(cpu, first), kthread=kthread,
                 mems=tuple(_cpulist(st.get("Mems_allowed_list", ""))))
    if not kthread:
        p.vmas = _vmas(rd("maps"), rd("numa_maps"))
    return p


def read_processes(root: str, cpu_node: dict[int, int], first: int
                   ) -> tuple[list[HostProc], Counter, int]:
    """(processes, skipped by reason, PIDs seen)."""
    try:
        pids = sorted(int(n) for n in os.listdir(os.path.join(root, "proc")) if n.isdigit())
    except OSError:
        pids = []
    procs, skipped = [], Counter()
    for pid in pids:
        try:
            procs.append(read_process(root, pid, cpu_node, first))
        except (PermissionError, IsADirectoryError):
            skipped["unreadable"] += 1
        except (FileNotFoundError, ProcessLookupError):
            skipped["exited"] += 1
        except OSError:
            skipped["unreadable"] += 1
        except (ValueError, IndexError):
            skipped["unparsable"] += 1
    return procs, skipped, len(pids)


# ------------------------------------------------------------------ description

def _fmt_bytes(n: int) -> str:
    for suf, mul in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= mul and n % mul == 0:
            return f"{n // mul}{suf}"
    return str(n)


def _choose_scale(total: int, scale: float | None) -> float:
    if scale is not None:
        if not 0 < scale <= 1:
            raise ValueError(f"scale {scale} must be in (0, 1]")
        return float(scale)
    return min(1.0, DEFAULT_MAX_BYTES / total) if total else 1.0


def _zones_by_node(nodes: list[dict], zones: list[HostZone], page: int) -> dict:
    """{node: {engine zone name: host pages}} from zoneinfo, else MemTotal as Normal."""
    out: dict[int, dict[str, int]] = {n["id"]: {} for n in nodes}
    for z in zones:
        name = ZONE_MAP.get(z.name)
        if name and z.node in out and z.present:
            out[z.node][name] = out[z.node].get(name, 0) + z.present
    for n in nodes:
        if not any(out[n["id"]].values()) and n["memtotal"] and not zones:
            out[n["id"]]["Normal"] = n["memtotal"] // page
    return out


def _distances(nodes: list[dict]) -> list[list[int]]:
    k = len(nodes)
    rows = []
    for n in nodes:
        row = n["distance"]
        if len(row) != k:  # unreadable or inconsistent: a plain local/remote guess
            row = [10 if m is n else 20 for m in nodes]
        rows.append([max(10, min(255, x)) for x in row])
    return rows


def _scaled(n: float, scale: float) -> int:
    return int(round(n * scale))


def _vma_desc(v: HostVMA, page: int, scale: float, fit: float, ids: set) -> dict | None:
    """A VMA's description entry; None for one not worth keeping."""
    host_pages = (v.end - v.start) // page
    factor = (v.kpage or page) / page  # hugetlb counts are in huge pages
    touch = {n: _scaled(c * factor, scale * fit) for n, c in sorted(v.pages.items())
             if n in ids}
    touch = {n: c for n, c in touch.items() if c > 0}
    touched = sum(touch.values())
    npages = max(1, _scaled(host_pages, scale), touched)
    npages = max(touched, min(npages, VMA_CAP_BYTES // page))
    is_file = bool(v.path) and not v.path.startswith("[")
    shared = v.perms[3:4] == "s"
    d: dict = {"size": _fmt_bytes(npages * page)}
    if is_file:
        d.update(kind="file", file=v.path, shared=shared)
        total = sum(v.pages.values())
        write = (shared and "w" in v.perms and v.dirty > 0) or \
                (not shared and v.anon * 2 > total > 0)
        d["write"] = write
    elif shared:
        d["shared"] = True
    if v.path.startswith("[") and v.path[1:2] != "v":
        d["name"] = v.path
    if touch:
        d["touch_pages"] = {str(n): c for n, c in touch.items()}
    else:
        d["touch"] = 0
    return d


def _policy_ok(pol: str, mems: list[int], mem_nodes: set) -> bool:
    _, _, nodes = pol.partition(":")
    if not nodes:
        return pol in ("default", "local")
    try:
        ns = parse_nodes(nodes)
    except (OSError, ValueError):
        return False
    return bool(set(ns) & set(mems) & mem_nodes) and set(ns) <= set(mems)


def _task_policy(p: HostProc) -> str:
    """numa_maps shows a VMA's own policy, or the task's when it has none: a VMA
    showing "default" means the task policy is default; if every VMA shows the same
    policy, that is most likely the task's."""
    pols = Counter(v.policy for v in p.vmas if v.policy)
    if not pols or "default" in pols:
        return "default"
    return pols.most_common(1)[0][0]


def _proc_desc(p: HostProc, page: int, scale: float, fit: float, ids: list[int],
               mem_nodes: set, stats: Counter) -> dict:
    d: dict = {"name": p.name, "pid": p.pid, "uid": p.uid, "node": p.node}
    # a cpuset holds only nodes with memory (the top cpuset is N_MEMORY)
    mems = [n for n in p.mems if n in mem_nodes] or sorted(mem_nodes)
    if sorted(mems) != sorted(mem_nodes):
        d["cpuset"] = nodes_str(mems)
    if p.kthread:
        d["kthread"] = True
        return d
    task = _task_policy(p)
    if task != "default":
        if _policy_ok(task, mems, mem_nodes):
            d["policy"] = task
        else:
            stats["policies_dropped"] += 1
    vmas = []
    for v in p.vmas:
        vd = _vma_desc(v, page, scale, fit, set(ids))
        if vd is None:
            continue
        if v.policy not in ("default", task):
            if _policy_ok(v.policy, mems, mem_nodes):
                vd["policy"] = v.policy
            else:
                stats["policies_dropped"] += 1
        vmas.append(vd)
    if vmas:
        d["vmas"] = vmas
    return d


def _user_pages(procs: list[HostProc], page: int) -> Counter:
    """Pages the processes hold per node; a file's pages count once (the most any
    process maps of it), as the page cache holds them once."""
    anon: Counter = Counter()
    files: dict[tuple[str, int], int] = {}
    for p in procs:
        for v in p.vmas:
            factor = (v.kpage or page) / page
            for n, c in v.pages.items():
                if v.path and not v.path.startswith("["):
                    key = (v.path, n)
                    files[key] = max(files.get(key, 0), int(c * factor))
                else:
                    anon[n] += int(c * factor)
    for (_, n), c in files.items():
        anon[n] += c
    return anon


def _kernel_share(zsizes: dict[str, int], free: int, user: int, page: int) -> float:
    """The engine reserves memmap (64 bytes a frame) in a node's kernel zones, then
    `kernel` of what is left for slab and the like: pick it so that kernel + user +
    free adds up to the host's present memory."""
    present = sum(zsizes.values())
    kz = sum(v for k, v in zsizes.items() if k != "Movable")
    memmap = math.ceil(present * 64 / page)
    if kz <= memmap:
        return 0.0
    target = present - free - user - memmap
    return round(min(MAX_KERNEL_SHARE, max(0.0, target / (kz - memmap))), 4)


def capture(scale: float | None = None, root: str = "/") -> dict:
    """A description of the host under `root`. scale: memory and process sizes are
    multiplied by it (None: whatever brings the machine to at most 4 GiB)."""
    page = os.sysconf("SC_PAGE_SIZE")
    nodes = read_nodes(root)
    ids = [n["id"] for n in nodes]
    zones = read_zoneinfo(root)
    zsizes = _zones_by_node(nodes, zones, page)
    total = sum(sum(z.values()) for z in zsizes.values()) * page
    sc = _choose_scale(total, scale)
    cpu_node = {c: n["id"] for n in nodes for c in n["cpus"]}
    first = next((n["id"] for n in nodes if n["cpus"]), ids[0])
    procs, skipped, seen = read_processes(root, cpu_node, first)
    user = _user_pages(procs, page)
    free = Counter()
    for z in zones:
        free[z.node] += z.free
    # processes that share anonymous memory (fork) are counted once per process: shrink
    # them all if they would not fit in what the host has beside the kernel
    present = {n: sum(zsizes[n].values()) for n in ids}
    fit = min([1.0] + [0.85 * present[n] / user[n] for n in ids if user[n] > present[n] * 0.85])
    blocks = read_blocks(root)
    stats: Counter = Counter()
    mem_nodes = {n for n in ids if sum(zsizes[n].values())}
    desc = {
        "machine": {"name": os.uname().nodename if root == "/" else "captured",
                    "page_size": _fmt_bytes(page), "era": "modern", "seed": 0,
                    "block_size": _fmt_bytes(_block_size(blocks["block_size"], sc, page)),
                    "description": f"captured from {os.uname().nodename} "
                                   f"({os.uname().release}), memory x{sc:.4g}"},
        "nodes": [_node_desc(n, zsizes[n["id"]], sc, page,
                             _kernel_share(zsizes[n["id"]], free[n["id"]],
                                           int(user[n["id"]] * fit), page))
                  for n in nodes],
        "distances": {"matrix": _distances(nodes)},
        "processes": [_proc_desc(p, page, sc, fit, ids, mem_nodes, stats) for p in procs],
    }
    desc["host"] = _host_info(root, page, sc, fit, total, seen, skipped, blocks, zones,
                              stats)
    return desc


def _block_size(host_bs: int, sc: float, page: int) -> int:
    """The host block size scaled, as a power of two (at least a page)."""
    bs = (host_bs or 128 << 20) * sc
    return max(page, 1 << max(0, int(math.floor(math.log2(max(bs, 1))))))


def _node_desc(n: dict, zs: dict[str, int], sc: float, page: int, kshare: float) -> dict:
    zones = {}
    for name in ZONE_NAMES:
        if zs.get(name):
            zones[name] = _fmt_bytes(max(1, _scaled(zs[name], sc)) * page)
    return {"id": n["id"], "cpus": nodes_str(n["cpus"]), "zones": zones, "kernel": kshare}


def _host_info(root, page, sc, fit, total, seen, skipped, blocks, zones, stats) -> dict:
    u = os.uname()
    return {
        "hostname": u.nodename, "kernel": u.release, "root": root,
        "captured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "page_size": page, "scale": sc, "process_fit": round(fit, 4),
        "memory_bytes": total, "pids_seen": seen, "skipped": sum(skipped.values()),
        "skipped_why": dict(skipped), "policies_dropped": stats["policies_dropped"],
        "block_size_bytes": blocks["block_size"], "block_states": blocks["states"],
        "zones": [{"node": z.node, "zone": z.name, "spanned": z.spanned,
                   "present": z.present, "managed": z.managed, "free": z.free,
                   "min": z.min, "low": z.low, "high": z.high} for z in zones],
    }
