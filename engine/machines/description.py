"""Machine descriptions (the dict form of a TOML file written by people) -> Machine.

Schema (sizes take K/M/G/T suffixes, node lists "0-3,5"):

    [machine]   name, page_size ("4K"), era ("modern" | "2.6.18" | "2006" | "2.6.17"),
                seed, block_size ("128M"), kernel ("2%": slab and page tables),
                description (free text), thp ("always" | "madvise" | "never":
                transparent_hugepage/enabled), hugepages ({ "0" = 64 }: each node's
                hugetlb pool, in huge pages), hugepages_1g ({ "0" = 2 }: each node's
                pool of 1 GiB pages, the PUD-order hstate), overcommit_hugepages (N:
                surplus huge pages faults may take beyond the pools)
    [[nodes]]   id, cpus ("0-7" or ""), zones = { DMA = "16M", DMA32 = "2G", Normal = ..,
                Movable = .. }, kernel (overrides machine.kernel)
    [distances] matrix = [[10, 21], [21, 10]]   or   local = 10, remote = 20
    [weights]   "0" = 3, "1" = 1                 (weighted interleave, default 1)
    [[drivers]] name, kind (uncached | framebuffer | rdma), node, size, hook (has a
                vm_ops->migrate), hook_enabled
    [[processes]] name, pid, uid, node, cpuset (default: the nodes with memory), policy
                ("interleave:0-3", "bind:1", ...), mlockall, memlock (RLIMIT_MEMLOCK:
                "64M", "unlimited"), kthread
      [[processes.vmas]] size, kind (anon | file | driver), file, shared, driver, policy,
                touch ("100%"), touch_node, touch_pages ({ "0" = 512, "1" = 128 }: pages
                touched from a CPU on each node, in order; instead of touch/touch_node),
                write, mlock (true, or "onfault": mlock2(MLOCK_ONFAULT)), pin (an rdma
                driver name), name (a label), huge (anon: true = MADV_HUGEPAGE, false =
                MADV_NOHUGEPAGE, "hugetlb" = MAP_HUGETLB from the pools, "hugetlb-1g"
                = MAP_HUGETLB|MAP_HUGE_1GB from the 1 GiB pools)
    [host]      anything: what `numacon capture` recorded about the host (not used)
    workloads   checked as engine/runtime/workload.py will start them

Errors name the source, the key and the problem; load_description() adds the line
of the key in the TOML text: "saves/x.toml:12: nodes[1].zones.Normal: ...".
"""

from __future__ import annotations

import math

import numpy as np

from ..constants import (
    INVALID_UID,
    K_KERNEL,
    KUSE_MEMMAP,
    KUSE_SLAB,
    KUSE_ZERO,
    MADV_HUGEPAGE,
    MADV_NOHUGEPAGE,
    MAP_ANONYMOUS,
    MAP_HUGE_1GB,
    MAP_HUGETLB,
    MAP_PRIVATE,
    MAP_SHARED,
    MAX_NUMNODES,
    MLOCK_ONFAULT,
    MODE_NAMES,
    PID_MAX_LIMIT,
    PROT_READ,
    PROT_WRITE,
    RLIM_INFINITY,
    ZONE_MOVABLE,
    ZONE_NAMES,
    PG_reserved,
)
from ..mm import fault, mempolicy, mlock, mmap, task
from ..mm.check import bytes_needed
from ..mm.drivers import DRIVER_KINDS, pin_range, setup
from ..mm.era import get_era
from ..mm.huge_memory import pmd_order, pud_order, set_thp
from ..mm.hugetlb import set_nr_hugepages, set_nr_overcommit_hugepages
from ..mm.madvise import madvise
from ..mm.page_alloc import alloc_frames
from ..mm.state import Driver, Kernel, drive
from ..mm.zones import compute_watermarks
from ..nodemask import nodes_str, parse_nodes, parse_policy_string
from ..runtime.workload import described_one, error_text
from ..units import parse_fraction, parse_size
from .container import memory_budget, one_line


class DescriptionError(ValueError):
    """A description that cannot be built: names the source, the key (a path such as
    processes[2].vmas[0].size), the line when known, and the problem."""

    def __init__(self, source: str, key: str, msg: str, line: int | None = None):
        super().__init__(source, key, msg)
        self.source, self.key, self.msg, self.line = source, key, msg, line

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return one_line(f"{where}: {self.key}: {self.msg}")


def _err(source: str, key: str, msg: str) -> DescriptionError:
    return DescriptionError(source, key or "(top level)", msg)


TOP_KEYS = {"machine", "nodes", "distances", "weights", "drivers", "processes", "workloads",
            "host"}
MACHINE_KEYS = {"name", "page_size", "era", "seed", "block_size", "kernel", "description",
                "thp", "hugepages", "hugepages_1g", "overcommit_hugepages"}
NODE_KEYS = {"id", "cpus", "zones", "kernel"}
DRIVER_KEYS = {"name", "kind", "node", "size", "hook", "hook_enabled"}
PROC_KEYS = {"name", "pid", "uid", "node", "cpuset", "policy", "vmas", "mlockall", "kthread",
             "memlock"}
VMA_KEYS = {"size", "kind", "file", "shared", "driver", "policy", "touch", "touch_node",
            "touch_pages", "write", "mlock", "pin", "name", "huge"}
MAX_ZONE = 1 << 44  # 16 TiB a zone
NR_CPUS = 8192  # x86-64 CONFIG_NR_CPUS with MAXSMP: CPU ids are below it
POLICY_NAMES = {0: "default", 1: "prefer", 2: "bind", 3: "interleave", 4: "local",
                5: "preferred-many", 6: "weighted-interleave"}


# ---------------------------------------------------------------- reading and writing

def dumps(d: dict, header: str = "") -> str:
    """A description as TOML (tomli_w), after `header` turned into # comments."""
    import tomli_w

    lines = [f"# {ln}".rstrip() for ln in header.strip("\n").splitlines()] if header else []
    body = tomli_w.dumps(d)
    return ("\n".join(lines) + "\n\n" if lines else "") + body


# ---------------------------------------------------------------- building

def _table(source: str, key: str, x, what: str = "a table") -> dict:
    if not isinstance(x, dict):
        raise _err(source, key, f"must be {what}, not {type(x).__name__} {x!r}"[:120])
    return x


def _list_of_tables(source: str, key: str, x) -> list:
    if not isinstance(x, list) or not all(isinstance(i, dict) for i in x):
        raise _err(source, key, "must be a list of tables ([[...]] sections)")
    return x


def _unknown(source: str, where: str, d: dict, allowed: set) -> None:
    for k in d:
        if k not in allowed:
            raise _err(source, f"{where}.{k}" if where else k,
                       f"unknown key (expected one of {', '.join(sorted(allowed))})")


def _int(source: str, key: str, x, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise _err(source, key, f"{x!r} is not an integer")
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise _err(source, key, f"{x} is out of range ({rng})")
    return x


def _str(source: str, key: str, x, default: str | None = None) -> str | None:
    if x is None:
        return default
    if not isinstance(x, str):
        raise _err(source, key, f"{x!r} is not a string"[:100])
    return x


def _bool(source: str, key: str, x, default: bool = False) -> bool:
    if x is None:
        return default
    if not isinstance(x, bool):
        raise _err(source, key, f"{x!r} is not true or false"[:100])
    return x


def _size(source: str, key: str, x) -> int:
    try:
        return parse_size(x, key.rsplit(".", 1)[-1])
    except ValueError as e:
        raise _err(source, key, str(e).split(": ", 1)[-1]) from None


def _frac(source: str, key: str, x) -> float:
    try:
        return parse_fraction(x, key)
    except (TypeError, ValueError) as e:
        raise _err(source, key, str(e).split(": ", 1)[-1]) from None


def build_machine(m: Kernel, d: dict, *, source: str = "<description>") -> Kernel:
    """Lay out and boot the empty machine `m` as the description says; returns it."""
    _table(source, "", d, "a table")
    _unknown(source, "", d, TOP_KEYS)
    mach = _table(source, "machine", d.get("machine", {}))
    _unknown(source, "machine", mach, MACHINE_KEYS)
    page_size = _size(source, "machine.page_size", mach.get("page_size", "4K"))
    if page_size < 4096 or page_size & (page_size - 1) or page_size > 1 << 21:
        raise _err(source, "machine.page_size", f"{page_size} is not a power of two "
                                               f"between 4K and 2M")
    era_name = _str(source, "machine.era", mach.get("era"), "modern")
    try:
        era = get_era(era_name)
    except ValueError as e:
        raise _err(source, "machine.era", str(e)) from None
    m.name = _str(source, "machine.name", mach.get("name"), "machine")
    _str(source, "machine.description", mach.get("description"))
    m.seed = _int(source, "machine.seed", mach.get("seed", 0), 0)
    block_size = _size(source, "machine.block_size", mach.get("block_size", "128M"))
    kshare = _frac(source, "machine.kernel", mach.get("kernel", "2%"))
    if block_size < page_size or block_size % page_size:
        raise _err(source, "machine.block_size", f"{block_size} is not a multiple of the "
                                                 f"page size ({page_size})")
    layout, kshares = _nodes(source, d.get("nodes"), page_size, kshare)
    ids = [n for n, _, _ in layout]
    dist = _distances(source, _table(source, "distances", d.get("distances", {})), ids,
                      max(ids) + 1)
    m.layout(page_size, layout, dist, block_size)
    m._era = era
    _weights(m, source, _table(source, "weights", d.get("weights", {})))
    _boot_kernel(m, kshares, source)
    compute_watermarks(m.zones, m.page_size, era.is_modern)
    m.description = d
    _huge_settings(m, source, mach)
    for i, dd in enumerate(_list_of_tables(source, "drivers", d.get("drivers", []))):
        _add_driver(m, source, i, dd)
    rng = np.random.default_rng(m.seed)
    for i, pd in enumerate(_list_of_tables(source, "processes", d.get("processes", []))):
        _add_process(m, source, i, pd, rng)
    # the workloads start later (`workloads start`): checked now, as they will be then
    for i, wd in enumerate(_list_of_tables(source, "workloads", d.get("workloads", []))):
        try:
            described_one(m, wd)
        except (TypeError, ValueError, OSError) as e:
            raise _err(source, f"workloads[{i}]", error_text(e)) from None
    m.vmstat_counts.clear()
    return m


def _huge_settings(m, source: str, mach: dict) -> None:
    """machine.thp, machine.hugepages and machine.overcommit_hugepages (set as the
    sysfs and sysctl files would be)."""
    if "thp" in mach:
        mode = _str(source, "machine.thp", mach["thp"])
        if mode != "never" or m.era.has_thp:
            try:
                set_thp(m, mode)
            except OSError as e:
                raise _err(source, "machine.thp", e.strerror) from None
    for name, order in (("hugepages", pmd_order(m)), ("hugepages_1g", pud_order(m))):
        if name not in mach:
            continue
        tp = _table(source, f"machine.{name}", mach[name])
        for key, n in tp.items():
            where = f"machine.{name}.{key}"
            node = _node_ref(m, source, where, key if not str(key).isdigit() else int(key))
            count = _int(source, where, n, 0)
            try:  # (set_nr_hugepages() bounds the count before it allocates anything)
                got = set_nr_hugepages(m, node, count, order)
            except OSError as e:
                raise _err(source, where, e.strerror) from None
            if got < count:
                raise _err(source, where, f"node {node} has room for {got} huge pages, "
                                          f"not {count}")
    if "overcommit_hugepages" in mach:
        where = "machine.overcommit_hugepages"
        try:
            set_nr_overcommit_hugepages(m, _int(source, where, mach["overcommit_hugepages"], 0))
        except OSError as e:
            raise _err(source, where, e.strerror) from None


def _nodes(source: str, nodes, page_size: int, kshare: float):
    """[(id, cpus, [pages per zone type])] and {node: kernel share}."""
    if not nodes:
        raise _err(source, "nodes", "at least one [[nodes]] table is required")
    nodes = _list_of_tables(source, "nodes", nodes)
    layout, kshares, seen, cpu_owner = [], {}, set(), {}
    for i, nd in enumerate(nodes):
        where = f"nodes[{i}]"
        _unknown(source, where, nd, NODE_KEYS)
        nid = nd.get("id", i)
        if isinstance(nid, bool) or not isinstance(nid, int) or not 0 <= nid < MAX_NUMNODES \
                or nid in seen:
            raise _err(source, f"{where}.id", f"{nid!r} is not a new node id below "
                                              f"MAX_NUMNODES ({MAX_NUMNODES})")
        seen.add(nid)
        try:
            cpus = _parse_cpus(nd.get("cpus", ""))
        except ValueError as e:
            raise _err(source, f"{where}.cpus", str(e)) from None
        for c in cpus:
            if c in cpu_owner:
                raise _err(source, f"{where}.cpus", f"cpu {c} is already on node "
                                                    f"{cpu_owner[c]}")
            cpu_owner[c] = nid
        zones = _table(source, f"{where}.zones", nd.get("zones", {}), "a table of zone sizes")
        sizes = [0, 0, 0, 0]
        for zname, zsize in zones.items():
            key = f"{where}.zones.{zname}"
            if zname not in ZONE_NAMES:
                raise _err(source, key, f"unknown zone (zones: {', '.join(ZONE_NAMES)})")
            b = _size(source, key, zsize)
            if b % page_size:
                raise _err(source, key, f"{zsize} is not a multiple of the page size "
                                        f"({page_size})")
            if b > MAX_ZONE:
                raise _err(source, key, f"{zsize} is impossibly large (a zone holds at "
                                        f"most 16T)")
            sizes[ZONE_NAMES.index(zname)] = b // page_size
        kshares[nid] = _frac(source, f"{where}.kernel", nd.get("kernel", kshare))
        layout.append((nid, cpus, sizes))
    total = sum(sum(s) for _, _, s in layout)
    if total == 0:
        raise _err(source, "nodes", "the machine has no memory")
    if total > 1 << 31:
        raise _err(source, "nodes", f"{total} frames is more than the engine holds (2^31)")
    problem = too_big(total)
    if problem:
        raise _err(source, "nodes", problem)
    return layout, kshares


def too_big(nr_frames: int) -> str | None:
    """Why this process cannot hold and check a machine of nr_frames frames (None: it
    can). Descriptions and snapshots are refused by it before anything is allocated."""
    need = bytes_needed(nr_frames)
    budget, why = memory_budget()
    if need <= budget:
        return None
    return (f"{nr_frames} frames need {need / 2**30:.1f} GiB to hold and check: more "
            f"memory than this host can give the process ({why})")


def _parse_cpus(s) -> tuple[int, ...]:
    """A node's CPUs: "0-7,16" or a list. Every CPU is below NR_CPUS and a node has at
    most NR_CPUS of them, checked before a range is expanded (200 ranges of 65536
    CPUs cost 1.5 GiB when they were expanded first)."""
    if isinstance(s, list):
        if len(s) > NR_CPUS or not all(isinstance(x, int) and not isinstance(x, bool) and
                                       0 <= x < NR_CPUS for x in s):
            raise ValueError(f"{str(s)[:60]} is not a list of CPU numbers below NR_CPUS "
                             f"({NR_CPUS})")
        return tuple(s)
    if not isinstance(s, str):
        raise ValueError(f"{s!r} is not a CPU list like 0-7,16"[:100])
    s = s.strip()
    if not s:
        return ()
    out: list[int] = []
    try:
        for part in s.split(","):
            a, _, b = part.partition("-")
            lo, hi = int(a), int(b) if b else int(a)
            if not 0 <= lo <= hi:
                raise ValueError
            if hi >= NR_CPUS or len(out) + hi - lo + 1 > NR_CPUS:
                raise OverflowError
            out.extend(range(lo, hi + 1))
    except ValueError:
        raise ValueError(f"{s[:60]!r} is not a CPU list like 0-7,16") from None
    except OverflowError:
        raise ValueError(f"{s[:60]!r}: a CPU list names CPUs below NR_CPUS ({NR_CPUS}), "
                         f"at most {NR_CPUS} of them") from None
    return tuple(out)


def slit_problem(dist: np.ndarray, ids: list[int]) -> tuple[int, int, str] | None:
    """The first entry of a SLIT (indexed by node id) that breaks its rules, over the
    nodes `ids`: (row, column) in `ids` order and the problem; None when it is sound.
    Descriptions and snapshots are checked by this one rule."""
    sub = np.asarray(dist, np.int64)[np.ix_(ids, ids)]
    local = np.eye(len(ids), dtype=bool)
    bad = (sub < 10) | (sub > 255) | (local & (sub != 10)) | (~local & (sub == 10))
    if not bad.any():
        return None
    i, j = divmod(int(np.argmax(bad)), len(ids))
    return i, j, f"{int(sub[i, j])}: the local distance is 10, remote ones 11..255"


def _distances(source: str, dd: dict, ids: list[int], nr: int) -> np.ndarray:
    _unknown(source, "distances", dd, {"matrix", "local", "remote"})
    dist = np.full((nr, nr), 255, np.uint8)
    if "matrix" in dd:
        mat = dd["matrix"]
        if not isinstance(mat, list) or len(mat) != len(ids) or \
                any(not isinstance(r, list) or len(r) != len(ids) for r in mat):
            raise _err(source, "distances.matrix", f"must be {len(ids)}x{len(ids)} (one row "
                                                   f"and column per node, in [[nodes]] order)")
        full = np.zeros((nr, nr), np.int64)
        for i, a in enumerate(ids):
            for j, b in enumerate(ids):
                v = _int(source, f"distances.matrix[{i}][{j}]", mat[i][j])
                full[a, b] = min(max(v, -1), 256)  # out of range stays out of range
        bad = slit_problem(full, ids)
        if bad is not None:
            i, j, _why = bad
            raise _err(source, f"distances.matrix[{i}][{j}]", f"{mat[i][j]}: the local "
                                                               f"distance is 10, remote ones "
                                                               f"11..255")
        dist[:] = np.where(full > 0, full, 255)
    else:
        local = _int(source, "distances.local", dd.get("local", 10), 10, 10)
        remote = _int(source, "distances.remote", dd.get("remote", 20), 11, 255)
        for a in ids:
            for b in ids:
                dist[a, b] = local if a == b else remote
    return dist


def _weights(m: Kernel, source: str, w: dict) -> None:
    for k, v in w.items():
        key = f"weights.{k}"
        try:
            nid = int(k)
        except ValueError:
            raise _err(source, key, f"{k!r} is not a node number") from None
        if nid not in m.nodes:
            raise _err(source, key, f"node {nid} does not exist (nodes "
                                    f"{nodes_str(m.nodes)})")
        m.il_weights[nid] = _int(source, key, v, 1, 255)


def _boot_kernel(m, kshares, source: str) -> None:
    """memmap (64 bytes of struct page per frame) is reserved in each node's kernel
    zones (present - managed); slab and page tables take `kernel` of the rest; the
    zero page sits on the first node. ZONE_MOVABLE never holds kernel pages."""
    f = m.f
    for n in m.nodes_list:
        zones = [z for z in m.node_zones(n.id) if z.spanned > 0]
        kz = [z for z in zones if z.zone_type != ZONE_MOVABLE]
        present = sum(z.present for z in zones)
        if not kz or present == 0:
            continue
        memmap = math.ceil(present * 64 / m.page_size)
        share = kshares.get(n.id, 0.02)
        # reserve from the highest kernel zone down
        for z in reversed(kz):
            take = min(memmap, z.spanned // 2)
            if take <= 0:
                continue
            s = z.start_pfn
            f.kind[s:s + take] = K_KERNEL
            f.flags[s:s + take] = PG_reserved
            f.mapping[s:s + take] = KUSE_MEMMAP
            z.managed -= take
            z.free -= take
            z.cursor = take
            memmap -= take
            if memmap <= 0:
                break
        slab = int(sum(z.managed for z in kz) * share)
        got, _ = alloc_frames(m, slab, [n.id], movable=False, wmark="none")
        f.kind[got] = K_KERNEL
        f.flags[got] = 0
        f.mapping[got] = KUSE_SLAB
    z, _ = alloc_frames(m, 1, m.memory_nodes(), movable=False, wmark="none")
    if z.size == 0:
        raise _err(source, "machine.kernel", "the kernel's memmap and slab leave no page "
                                             "for the zero page in any kernel zone")
    zp = int(z[0])
    f.kind[zp] = K_KERNEL
    f.flags[zp] = PG_reserved
    f.mapping[zp] = KUSE_ZERO
    m.zero_pfn = zp


def _node_ref(m, source: str, key: str, x, *, memory: bool = False, cpus: bool = False
              ) -> int:
    """A node number that must exist (and have memory / CPUs)."""
    nid = _int(source, key, x)
    if nid not in m.nodes:
        raise _err(source, key, f"node {nid} does not exist (nodes {nodes_str(m.nodes)})")
    if memory and not m.node_has_memory(nid):
        raise _err(source, key, f"node {nid} has no memory")
    if cpus and not m.node(nid).cpus:
        raise _err(source, key, f"node {nid} has no CPUs to run on")
    return nid


def _node_list(m, source: str, key: str, x) -> tuple[int, ...]:
    try:
        nodes = parse_nodes(x, key)
    except (OSError, ValueError) as e:
        raise _err(source, key, getattr(e, "strerror", None) or str(e)) from None
    bad = [n for n in nodes if n not in m.nodes]
    if bad:
        raise _err(source, key, f"node {bad[0]} does not exist (nodes {nodes_str(m.nodes)})")
    return nodes


def _policy(m, source: str, key: str, s, mems) -> tuple[int, tuple[int, ...]]:
    """A policy string checked against the era and the nodes: (mode, nodes)."""
    if not isinstance(s, str):
        raise _err(source, key, f"{s!r} is not a policy string like \"interleave:0-3\"")
    try:
        mode, nodes = parse_policy_string(s)
    except (OSError, ValueError) as e:
        raise _err(source, key, getattr(e, "strerror", None) or str(e)) from None
    if mode not in m.era.policy_modes:
        have = ", ".join(POLICY_NAMES[i] for i in sorted(m.era.policy_modes))
        raise _err(source, key, f"{POLICY_NAMES.get(mode, MODE_NAMES.get(mode))} is not a "
                                f"policy mode in era {m.era.name} (it has {have})")
    for n in nodes:
        if n not in m.nodes:
            raise _err(source, key, f"node {n} does not exist (nodes {nodes_str(m.nodes)})")
    if nodes and not set(nodes) & set(mems) & set(m.memory_nodes()):
        raise _err(source, key, f"nodes {nodes_str(nodes)} have no memory the process may "
                                f"use (cpuset {nodes_str(mems)})")
    return mode, nodes


def _add_driver(m, source: str, i: int, dd: dict) -> None:
    where = f"drivers[{i}]"
    _unknown(source, where, dd, DRIVER_KEYS)
    name = _str(source, f"{where}.name", dd.get("name"), "")
    if not name or name in m.drivers_map:
        raise _err(source, f"{where}.name", "a new driver name is required")
    kind = _str(source, f"{where}.kind", dd.get("kind"), "uncached")
    if kind not in DRIVER_KINDS:
        raise _err(source, f"{where}.kind", f"{kind!r}: one of {', '.join(DRIVER_KINDS)}")
    node = _node_ref(m, source, f"{where}.node", dd.get("node", 0), memory=True)
    size = _size(source, f"{where}.size", dd.get("size", "8M"))
    npages = max(1, size // m.page_size) if kind != "rdma" else 0
    room = sum(z.managed for z in m.node_zones(node) if z.zone_type != ZONE_MOVABLE)
    if npages > room:  # checked before the region is allocated
        raise _err(source, f"{where}.size", f"{dd.get('size')} is more than node {node}'s "
                                            f"kernel zones hold ({room} pages)")
    drv = Driver(name=name, kind=kind, node=node, npages=npages,
                 has_hook=_bool(source, f"{where}.hook", dd.get("hook"), kind == "uncached"),
                 hook_enabled=_bool(source, f"{where}.hook_enabled", dd.get("hook_enabled")))
    try:
        setup(m, drv)
    except OSError as e:
        raise _err(source, f"{where}.size", e.strerror or str(e)) from None
    m.drivers_map[name] = drv


def _add_process(m, source: str, i: int, pd: dict, rng) -> None:
    where = f"processes[{i}]"
    _unknown(source, where, pd, PROC_KEYS)
    kthread = _bool(source, f"{where}.kthread", pd.get("kthread"))
    name = _str(source, f"{where}.name", pd.get("name"), f"proc{i}")
    mlockall = _bool(source, f"{where}.mlockall", pd.get("mlockall"))
    node = _node_ref(m, source, f"{where}.node", pd.get("node", 0), cpus=not kthread)
    uid = _int(source, f"{where}.uid", pd.get("uid", 0), 0, INVALID_UID - 1)
    pid = pd.get("pid")
    if pid is not None:
        pid = _int(source, f"{where}.pid", pid, 1, PID_MAX_LIMIT)
        if pid in m.procs:
            raise _err(source, f"{where}.pid", f"pid {pid} is taken")
    cpuset = pd.get("cpuset")
    mems = m.memory_nodes() if cpuset is None else _node_list(m, source, f"{where}.cpuset",
                                                               cpuset)
    if not mems:
        raise _err(source, f"{where}.cpuset", "an empty cpuset")
    try:
        pid = task.spawn(m, name, uid=uid, node=node,
                         mems_allowed=None if cpuset is None else mems, pid=pid,
                         kthread=kthread)
    except (OSError, ValueError) as e:
        raise _err(source, where, getattr(e, "strerror", None) or str(e)) from None
    if kthread:
        if pd.get("vmas") or "policy" in pd:
            raise _err(source, where, "a kernel thread has no address space (no vmas or "
                                      "policy)")
        return
    if "memlock" in pd:
        lim = _memlock(source, f"{where}.memlock", pd["memlock"])
        m.procs[pid].memlock_cur = m.procs[pid].memlock_max = lim
    if "policy" in pd:
        mode, nodes = _policy(m, source, f"{where}.policy", pd["policy"], mems)
        try:
            mempolicy.set_mempolicy(m, pid, mode, nodes)
        except OSError as e:
            raise _err(source, f"{where}.policy", e.strerror or str(e)) from None
    vmas = _list_of_tables(source, f"{where}.vmas", pd.get("vmas", []))
    for j, vd in enumerate(vmas):
        _add_vma(m, source, f"{where}.vmas[{j}]", pid, vd, mems)
    if mlockall:
        try:
            mlock.do_mlockall(m, m.user(pid), 3)
        except OSError as e:
            raise _err(source, f"{where}.mlockall", e.strerror or str(e)) from None


def _memlock(source: str, key: str, x) -> int:
    """An RLIMIT_MEMLOCK (soft = hard): a size, or "unlimited"."""
    if isinstance(x, str) and x.strip().lower() in ("unlimited", "infinity"):
        return RLIM_INFINITY
    v = _size(source, key, x)
    if v >= RLIM_INFINITY:
        raise _err(source, key, f"{x!r} is too large (use \"unlimited\")")
    return v


def _touch_plan(m, source: str, where: str, vd: dict, npages: int) -> list[tuple[int, int]]:
    """[(pages, node or None)] to touch from the start of the VMA, in order."""
    if "touch_pages" in vd:
        if "touch" in vd or "touch_node" in vd:
            raise _err(source, f"{where}.touch_pages", "give touch_pages or touch and "
                                                       "touch_node, not both")
        tp = _table(source, f"{where}.touch_pages", vd["touch_pages"])
        plan = []
        for k, v in tp.items():
            key = f"{where}.touch_pages.{k}"
            try:
                nid = int(k)
            except ValueError:
                raise _err(source, key, f"{k!r} is not a node number") from None
            _node_ref(m, source, key, nid)
            plan.append((_int(source, key, v, 0), nid))
        if sum(n for n, _ in plan) > npages:
            raise _err(source, f"{where}.touch_pages", f"touches {sum(n for n, _ in plan)} "
                                                       f"pages of a {npages}-page VMA")
        return plan
    touch = _frac(source, f"{where}.touch", vd.get("touch", 1.0))
    node = vd.get("touch_node")
    if node is not None:
        node = _node_ref(m, source, f"{where}.touch_node", node)
    return [(int(round(npages * touch)), node)]


def _add_vma(m, source: str, where: str, pid: int, vd: dict, mems) -> None:
    _unknown(source, where, vd, VMA_KEYS)
    size = _size(source, f"{where}.size", vd.get("size", "4M"))
    if size <= 0:
        raise _err(source, f"{where}.size", "must be positive")
    if size > m.nr_frames * m.page_size * 4:
        raise _err(source, f"{where}.size", f"{vd.get('size')} is larger than anything "
                                            f"this machine can map")
    kind = _str(source, f"{where}.kind", vd.get("kind"), "anon")
    if kind not in ("anon", "file", "driver"):
        raise _err(source, f"{where}.kind", f"{kind!r}: one of anon, file, driver")
    driver = _str(source, f"{where}.driver", vd.get("driver"))
    if kind == "driver" and driver not in m.drivers_map:
        raise _err(source, f"{where}.driver", f"{driver!r} is not a driver of this "
                                              f"machine ({', '.join(m.drivers) or 'none'})")
    fname = _str(source, f"{where}.file", vd.get("file"), "file")
    _str(source, f"{where}.name", vd.get("name"))
    shared = _bool(source, f"{where}.shared", vd.get("shared"), kind == "file")
    lock = vd.get("mlock")
    onfault = lock == "onfault"
    if not onfault and lock is not None and not isinstance(lock, bool):
        raise _err(source, f"{where}.mlock", f"{lock!r} is not true, false or \"onfault\""[:100])
    lock = onfault or bool(lock)
    huge = vd.get("huge")
    if huge is not None and (kind != "anon" or huge not in (True, False, "hugetlb",
                                                            "hugetlb-1g")):
        raise _err(source, f"{where}.huge", f"{huge!r}"[:60] + ": true, false or \"hugetlb\" "
                                            "(\"hugetlb-1g\": 1 GiB pages), for an anon VMA")
    pin = _str(source, f"{where}.pin", vd.get("pin"))
    if pin is not None and (pin not in m.drivers_map or m.drivers_map[pin].pfnmap):
        rdma = [d.name for d in m.drivers_map.values() if not d.pfnmap]
        raise _err(source, f"{where}.pin", f"{pin!r} is not a pinning (rdma) driver "
                                           f"({', '.join(rdma) or 'none'})")
    pol = _policy(m, source, f"{where}.policy", vd["policy"], mems) if "policy" in vd else None
    npages = m.page_align(size) // m.page_size
    plan = _touch_plan(m, source, where, vd, npages)
    write = _bool(source, f"{where}.write", vd.get("write"), True)
    key = where
    p = m.user(pid)
    try:
        if kind == "anon":
            flags = (MAP_SHARED if shared else MAP_PRIVATE) | MAP_ANONYMOUS
            if huge in ("hugetlb", "hugetlb-1g"):
                flags |= MAP_HUGETLB | (MAP_HUGE_1GB if huge == "hugetlb-1g" else 0)
            addr = mmap.do_mmap(m, p, size, PROT_READ | PROT_WRITE, flags, None, None)
            if isinstance(huge, bool):
                key = f"{where}.huge"
                madvise(m, p, addr, size, MADV_HUGEPAGE if huge else MADV_NOHUGEPAGE)
        elif kind == "file":
            flags = MAP_SHARED if shared else MAP_PRIVATE
            addr = mmap.do_mmap(m, p, size, PROT_READ | PROT_WRITE, flags, fname, None)
        else:
            key = f"{where}.size"
            addr = mmap.do_mmap(m, p, size, PROT_READ | PROT_WRITE, MAP_SHARED, None, driver)
        if pol is not None:
            key = f"{where}.policy"
            drive(mempolicy.mbind_gen(m, pid, addr, size, *pol))
        key = where
        off = 0
        for n, node in plan:
            # a driver region is mapped at mmap time: touching it only writes to it
            if n and (kind != "driver" or write):
                fault.touch(m, p, addr + off * m.page_size, n * m.page_size, write=write,
                            node=node)
            off += n
        if onfault:
            mlock.do_mlock2(m, p, addr, size, MLOCK_ONFAULT)
        elif lock:
            mlock.do_mlock(m, p, addr, size, lock=True)
        if pin is not None:
            pin_range(m, p, addr, off * m.page_size or size, m.driver(pin))
    except OSError as e:
        raise _err(source, key, e.strerror or str(e)) from None
