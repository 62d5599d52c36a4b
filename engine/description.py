"""Machine descriptions (the dict form of a TOML file written by people) -> Machine.

Schema (sizes take K/M/G/T suffixes, node lists "0-3,5"):

    [machine]   name, page_size ("4K"), era ("modern" | "2.6.18" | "2006" | "2.6.17"),
                seed, block_size ("128M"), kernel ("2%": slab and page tables)
    [[nodes]]   id, cpus ("0-7" or ""), zones = { DMA = "16M", DMA32 = "2G", Normal = ..,
                Movable = .. }, kernel (overrides machine.kernel)
    [distances] matrix = [[10, 21], [21, 10]]   or   local = 10, remote = 20
    [weights]   "0" = 3, "1" = 1                 (weighted interleave, default 1)
    [[drivers]] name, kind (uncached | framebuffer | rdma), node, size, hook (has a
                vm_ops->migrate), hook_enabled
    [[processes]] name, pid, uid, node, cpuset, policy ("interleave:0-3", "bind:1", ...),
                mlockall
      [[processes.vmas]] size, kind (anon | file | driver), file, shared, driver, policy,
                touch ("100%"), touch_node, write, mlock, pin (an rdma driver name)
"""

from __future__ import annotations

import math

import numpy as np

from .constants import (
    K_KERNEL,
    KUSE_MEMMAP,
    KUSE_SLAB,
    KUSE_ZERO,
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    MAX_NUMNODES,
    PROT_READ,
    PROT_WRITE,
    ZONE_MOVABLE,
    ZONE_NAMES,
    PG_reserved,
)
from .topology import compute_watermarks
from .units import parse_fraction, parse_size


class DescriptionError(ValueError):
    """A description that cannot be built: names the source, the key and the problem."""


def _err(source: str, key: str, msg: str) -> DescriptionError:
    return DescriptionError(f"{source}: {key}: {msg}")


MACHINE_KEYS = {"name", "page_size", "era", "seed", "block_size", "kernel", "description"}
NODE_KEYS = {"id", "cpus", "zones", "kernel"}
DRIVER_KEYS = {"name", "kind", "node", "size", "hook", "hook_enabled"}
PROC_KEYS = {"name", "pid", "uid", "node", "cpuset", "policy", "vmas", "mlockall", "kthread"}
VMA_KEYS = {"size", "kind", "file", "shared", "driver", "policy", "touch", "touch_node",
            "write", "mlock", "pin", "name"}


def _unknown(source, where, d, allowed):
    for k in d:
        if k not in allowed:
            raise _err(source, f"{where}.{k}", f"unknown key (expected one of "
                                               f"{', '.join(sorted(allowed))})")


def build_machine(m, d: dict, *, source: str = "<description>"):
    from .era import get_era
    from .mempolicy import parse_nodes

    if not isinstance(d, dict):
        raise _err(source, "(top)", "a description is a table")
    top = {"machine", "nodes", "distances", "weights", "drivers", "processes", "workloads"}
    _unknown(source, "(top)", d, top)
    mach = d.get("machine", {})
    _unknown(source, "machine", mach, MACHINE_KEYS)
    try:
        page_size = parse_size(mach.get("page_size", "4K"), "page_size")
    except ValueError as e:
        raise _err(source, "machine.page_size", str(e)) from None
    if page_size < 4096 or page_size & (page_size - 1) or page_size > 1 << 21:
        raise _err(source, "machine.page_size", f"{page_size} is not a power of two "
                                               f"between 4K and 2M")
    try:
        era = get_era(mach.get("era", "modern"))
    except ValueError as e:
        raise _err(source, "machine.era", str(e)) from None
    m.name = str(mach.get("name", "machine"))
    m.seed = int(mach.get("seed", 0))
    try:
        block_size = parse_size(mach.get("block_size", "128M"), "block_size")
        kshare = parse_fraction(mach.get("kernel", "2%"), "kernel")
    except ValueError as e:
        raise _err(source, "machine", str(e)) from None
    if block_size < page_size or block_size % page_size:
        raise _err(source, "machine.block_size", "must be a multiple of the page size")
    nodes = d.get("nodes")
    if not nodes or not isinstance(nodes, list):
        raise _err(source, "nodes", "at least one [[nodes]] table is required")
    layout = []
    kshares = {}
    seen = set()
    for i, nd in enumerate(nodes):
        where = f"nodes[{i}]"
        _unknown(source, where, nd, NODE_KEYS)
        nid = nd.get("id", i)
        if not isinstance(nid, int) or not 0 <= nid < MAX_NUMNODES or nid in seen:
            raise _err(source, f"{where}.id", f"{nid!r} is not a new node id below "
                                              f"{MAX_NUMNODES}")
        seen.add(nid)
        try:
            cpus = _parse_cpus(nd.get("cpus", ""))
        except ValueError as e:
            raise _err(source, f"{where}.cpus", str(e)) from None
        zones = nd.get("zones", {})
        if not isinstance(zones, dict):
            raise _err(source, f"{where}.zones", "a table of zone sizes")
        sizes = [0, 0, 0, 0]
        for zname, zsize in zones.items():
            if zname not in ZONE_NAMES:
                raise _err(source, f"{where}.zones.{zname}", f"unknown zone (zones: "
                                                             f"{', '.join(ZONE_NAMES)})")
            try:
                b = parse_size(zsize, f"zone {zname}")
            except ValueError as e:
                raise _err(source, f"{where}.zones.{zname}", str(e)) from None
            if b % page_size:
                raise _err(source, f"{where}.zones.{zname}", "not a multiple of the page "
                                                             "size")
            if b > 1 << 44:
                raise _err(source, f"{where}.zones.{zname}", f"{zsize} is impossibly large")
            sizes[ZONE_NAMES.index(zname)] = b // page_size
        try:
            kshares[nid] = parse_fraction(nd.get("kernel", kshare), "kernel")
        except ValueError as e:
            raise _err(source, f"{where}.kernel", str(e)) from None
        layout.append((nid, cpus, sizes))
    total = sum(sum(s) for _, _, s in layout)
    if total == 0:
        raise _err(source, "nodes", "the machine has no memory")
    if total > 1 << 31:
        raise _err(source, "nodes", f"{total} frames is more than the engine holds (2^31)")
    nr = max(n for n, _, _ in layout) + 1
    dist = _distances(source, d.get("distances", {}), [n for n, _, _ in layout], nr)
    m._layout(page_size, layout, dist, block_size)
    m._era = era
    w = d.get("weights", {})
    for k, v in w.items():
        try:
            m.il_weights[int(k)] = int(v)
        except ValueError:
            raise _err(source, f"weights.{k}", "node ids and weights are integers") from None
        if int(v) < 1 or int(v) > 255:
            raise _err(source, f"weights.{k}", "a weight is 1..255")
    _boot_kernel(m, kshares)
    compute_watermarks(m.zones, m.page_size, era.is_modern)
    m.description = d
    for i, dd in enumerate(d.get("drivers", [])):
        _add_driver(m, source, i, dd)
    rng = np.random.default_rng(m.seed)
    for i, pd in enumerate(d.get("processes", [])):
        _add_process(m, source, i, pd, rng, parse_nodes)
    m.vmstat_counts.clear()
    return m


def _parse_cpus(s) -> tuple[int, ...]:
    if isinstance(s, list):
        return tuple(int(x) for x in s)
    s = str(s).strip()
    if not s:
        return ()
    out = []
    for part in s.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return tuple(out)


def _distances(source, dd, ids, nr) -> np.ndarray:
    dist = np.full((nr, nr), 255, np.uint8)
    if "matrix" in dd:
        mat = dd["matrix"]
        if len(mat) != len(ids) or any(len(r) != len(ids) for r in mat):
            raise _err(source, "distances.matrix", f"must be {len(ids)}x{len(ids)}")
        for i, a in enumerate(ids):
            for j, b in enumerate(ids):
                v = int(mat[i][j])
                if not 10 <= v <= 255 or (i == j and v != 10) or (i != j and v == 10):
                    raise _err(source, f"distances.matrix[{i}][{j}]",
                               f"{v}: local distance is 10, remote 11..255")
                dist[a, b] = v
    else:
        local = int(dd.get("local", 10))
        remote = int(dd.get("remote", 20))
        for a in ids:
            for b in ids:
                dist[a, b] = local if a == b else remote
    return dist


def _boot_kernel(m, kshares) -> None:
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
            f.refcount[s:s + take] = 1
            z.managed -= take
            z.free -= take
            z.cursor = take
            memmap -= take
            if memmap <= 0:
                break
        slab = int(sum(z.managed for z in kz) * share)
        from .page_alloc import alloc_frames

        got = alloc_frames(m, slab, [n.id], movable=False, wmark="none")
        f.kind[got] = K_KERNEL
        f.flags[got] = 0
        f.mapping[got] = KUSE_SLAB
        f.refcount[got] = 1
    first = m.memory_nodes()[0]
    from .page_alloc import alloc_frames

    z = alloc_frames(m, 1, [first], movable=False, wmark="none")
    zp = int(z[0])
    f.kind[zp] = K_KERNEL
    f.flags[zp] = PG_reserved
    f.mapping[zp] = KUSE_ZERO
    f.refcount[zp] = 1
    m.zero_pfn = zp


def _add_driver(m, source, i, dd) -> None:
    from .drivers import DRIVER_KINDS, Driver

    where = f"drivers[{i}]"
    _unknown(source, where, dd, DRIVER_KEYS)
    name = str(dd.get("name", ""))
    if not name or name in m.drivers_map:
        raise _err(source, f"{where}.name", "a new driver name is required")
    kind = dd.get("kind", "uncached")
    if kind not in DRIVER_KINDS:
        raise _err(source, f"{where}.kind", f"{kind!r}: one of {', '.join(DRIVER_KINDS)}")
    node = dd.get("node", 0)
    if node not in m.nodes or not m.node_has_memory(node):
        raise _err(source, f"{where}.node", f"{node!r} is not a node with memory")
    try:
        size = parse_size(dd.get("size", "8M"), "size")
    except ValueError as e:
        raise _err(source, f"{where}.size", str(e)) from None
    npages = max(1, size // m.page_size) if kind != "rdma" else 0
    drv = Driver(name=name, kind=kind, node=node, npages=npages,
                 has_hook=bool(dd.get("hook", kind == "uncached")),
                 hook_enabled=bool(dd.get("hook_enabled", False)))
    try:
        drv.setup(m)
    except OSError as e:
        raise _err(source, where, e.strerror or str(e)) from None
    m.drivers_map[name] = drv


def _add_process(m, source, i, pd, rng, parse_nodes) -> None:
    from .mempolicy import parse_policy_string

    where = f"processes[{i}]"
    _unknown(source, where, pd, PROC_KEYS)
    try:
        pid = m.spawn(pd.get("name", f"proc{i}"), uid=int(pd.get("uid", 0)),
                      node=int(pd.get("node", 0)), mems_allowed=pd.get("cpuset"),
                      pid=pd.get("pid"), kthread=bool(pd.get("kthread", False)))
    except (OSError, ValueError) as e:
        raise _err(source, where, getattr(e, "strerror", None) or str(e)) from None
    if pd.get("kthread"):
        return
    if "policy" in pd:
        try:
            mode, nodes = parse_policy_string(str(pd["policy"]))
            m.set_mempolicy(pid, mode, nodes)
        except (OSError, ValueError) as e:
            raise _err(source, f"{where}.policy", getattr(e, "strerror", None) or str(e)) \
                from None
    for j, vd in enumerate(pd.get("vmas", [])):
        _add_vma(m, source, f"{where}.vmas[{j}]", pid, vd, rng)
    if pd.get("mlockall"):
        m.mlockall(pid, 3)


def _add_vma(m, source, where, pid, vd, rng) -> None:
    from .mempolicy import parse_policy_string

    _unknown(source, where, vd, VMA_KEYS)
    try:
        size = parse_size(vd.get("size", "4M"), "size")
        touch = parse_fraction(vd.get("touch", 1.0), "touch")
    except ValueError as e:
        raise _err(source, where, str(e)) from None
    if size <= 0:
        raise _err(source, f"{where}.size", "must be positive")
    if size > m.nr_frames * m.page_size * 4:
        raise _err(source, f"{where}.size", "larger than anything this machine can map")
    kind = vd.get("kind", "anon")
    try:
        if kind == "anon":
            flags = (MAP_SHARED if vd.get("shared") else MAP_PRIVATE) | MAP_ANONYMOUS
            addr = m.mmap(pid, size, PROT_READ | PROT_WRITE, flags)
        elif kind == "file":
            flags = MAP_SHARED if vd.get("shared", True) else MAP_PRIVATE
            addr = m.mmap(pid, size, PROT_READ | PROT_WRITE, flags,
                          file=str(vd.get("file", "file")))
        elif kind == "driver":
            addr = m.mmap(pid, size, PROT_READ | PROT_WRITE, MAP_SHARED,
                          driver=str(vd.get("driver")))
        else:
            raise _err(source, f"{where}.kind", f"{kind!r}: one of anon, file, driver")
        if "policy" in vd:
            mode, nodes = parse_policy_string(str(vd["policy"]))
            m.mbind(pid, addr, size, mode, nodes)
        npages = size // m.page_size
        ntouch = int(round(npages * touch))
        node = vd.get("touch_node")
        write = bool(vd.get("write", True))
        if ntouch and kind != "driver":
            m.touch(pid, addr, ntouch * m.page_size, write=write, node=node)
        elif ntouch and write:
            m.touch(pid, addr, ntouch * m.page_size, write=True, node=node)
        if vd.get("mlock"):
            m.mlock(pid, addr, size)
        if vd.get("pin"):
            m.pin(pid, addr, ntouch * m.page_size or size, str(vd["pin"]))
    except (OSError, ValueError) as e:
        if isinstance(e, DescriptionError):
            raise
        raise _err(source, where, getattr(e, "strerror", None) or str(e)) from None
