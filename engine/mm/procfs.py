"""Linux-format views: /proc/PID/numa_maps, numastat, /proc/zoneinfo, /proc/vmstat,
nodeN/meminfo and `numactl -H` (fs/proc/task_mmu.c, mm/vmstat.c, drivers/base/node.c)."""

from __future__ import annotations

import numpy as np

from ..constants import (
    K_ANON,
    K_FILE,
    K_KERNEL,
    KUSE_PAGETABLE,
    KUSE_SLAB,
    PG_dirty,
    PG_isolated,
    PG_mlocked,
    PG_writeback,
)
from ..nodemask import nodes_str
from .page_alloc import NUMASTAT_NAMES
from .policy import effective_policy
from .state import Backing, Kernel, Process


def numa_maps(m: Kernel, p: Process) -> str:
    """show_numa_map(): one line per VMA."""
    modern = m.era.proc_formats == "modern"
    f = m.f
    lines = []
    for v in p.vmas:
        # show_numa_map(): the VMA's own policy, else the task's (task_mempolicy);
        # the kernel's per-node default (MPOL_F_MORON) prints as "default"
        pol = effective_policy(p, v)
        pstr = "default" if pol is None else pol.describe(m.era.proc_formats)
        parts = [f"{v.start:08x}", pstr]
        if v.backing is not None and not v.pfnmap:
            parts.append(f"file={file_path(v.backing)}")
        if v.pfnmap:
            pfn = np.zeros(0, np.int64)  # no struct page behind a PFN map: nothing counted
        else:
            _offs, pfn = v.present()
            pfn = pfn[pfn != m.zero_pfn]
        total = pfn.size
        if total:
            k = f.kind[pfn]
            anon = int((k == K_ANON).sum())
            dirty = int(((f.flags[pfn] & PG_dirty) != 0).sum())
            mapmax = int(f.mapcount[pfn].max())
            if anon:
                parts.append(f"anon={anon}")
            if dirty:
                parts.append(f"dirty={dirty}")
            if total != anon and total != dirty:
                parts.append(f"mapped={total}")
            if mapmax > 1:
                parts.append(f"mapmax={mapmax}")
            wb = int(((f.flags[pfn] & PG_writeback) != 0).sum())
            if wb:
                parts.append(f"writeback={wb}")
            nodes = np.bincount(m.node_of(pfn), minlength=m.nr_node_ids)
            for n in np.flatnonzero(nodes):
                parts.append(f"N{n}={int(nodes[n])}")
            if modern:
                parts.append(f"kernelpagesize_kB={m.page_size // 1024}")
        lines.append(" ".join(parts))
    return "\n".join(lines) + ("\n" if lines else "")


def file_path(b: Backing) -> str:
    """The path show_numa_map() prints (seq_path() escapes blanks as \\040): shared
    anonymous memory is "/dev/zero (deleted)" (the engine numbers its objects)."""
    name = b.name.split(" #", 1)[0] if b.name.startswith("/dev/zero (deleted)") else b.name
    return name.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011") \
        .replace("\n", "\\012").replace("=", "\\075")


def numastat(m: Kernel) -> str:
    """The numastat tool's default table (pages), from nodeN/numastat: a 16-column
    label, then a 16-column field per node (numactl's numastat, compatible with the
    original perl script)."""
    nodes = m.nodes
    rows = [" " * 16 + "".join(f"{'node' + str(n):>16}" for n in nodes)]
    for i, name in enumerate(NUMASTAT_NAMES):
        rows.append(f"{name:<16}" + "".join(f"{int(m.numastat_arr[i, n]):>16}" for n in nodes))
    return "\n".join(rows) + "\n"


def zone_counts(m: Kernel, z) -> dict:
    f = m.f
    s, e = z.start_pfn, z.end_pfn
    k = f.kind[s:e]
    fl = f.flags[s:e]
    return {
        "nr_free_pages": z.free,
        "nr_zone_anon": int((k == K_ANON).sum()),
        "nr_zone_file": int((k == K_FILE).sum()),
        "nr_zone_unevictable": int(((fl & PG_mlocked) != 0).sum()),
        "nr_zone_write_pending": int(((fl & (PG_dirty | PG_writeback)) != 0).sum()),
        "nr_mlock": int(((fl & PG_mlocked) != 0).sum()),
        "nr_slab_unreclaimable": int(((k == K_KERNEL) & (f.mapping[s:e] == KUSE_SLAB)).sum()),
        "nr_page_table_pages": int(((k == K_KERNEL) & (f.mapping[s:e] == KUSE_PAGETABLE)).sum()),
    }


def zoneinfo(m: Kernel) -> str:
    """/proc/zoneinfo: modern lists every zone (empty ones stop after protection:);
    2006 lists populated zones only, in the old layout."""
    out = []
    modern = m.era.proc_formats == "modern"
    for n in m.nodes_list:
        zones = m.node_zones(n.id)
        first_pop = next((z for z in zones if z.present), None)
        for z in zones:
            if not modern and not z.present:
                continue
            out.append(f"Node {n.id}, zone {z.name:>8}")
            if modern and z is first_pop:
                out.append("  per-node stats")
                ns = node_numastat(m, n.id)
                for key in ("numa_hit", "numa_miss", "numa_foreign", "numa_interleave",
                            "numa_local", "numa_other"):
                    src = {"numa_interleave": "interleave_hit", "numa_local": "local_node",
                           "numa_other": "other_node"}.get(key, key)
                    out.append(f"      {key:<12} {ns[src]}")
            if modern:
                out.append(f"  pages free     {z.free}")
                out.append("        boost    0")
                out.append(f"        min      {z.wmark_min}")
                out.append(f"        low      {z.wmark_low}")
                out.append(f"        high     {z.wmark_high}")
                out.append(f"        spanned  {z.spanned}")
                out.append(f"        present  {z.present}")
                out.append(f"        managed  {z.managed}")
                out.append("        cma      0")
                out.append("        protection: (" + ", ".join("0" for _ in zones) + ")")
                if not z.present:
                    continue
                for k, v in zone_counts(m, z).items():
                    out.append(f"      {k} {v}")
                out.append("  pagesets")
                for cpu in n.cpus[:1]:
                    out.append(f"    cpu: {cpu}")
                    out.append("              count: 0")
                    out.append("              high:  0")
                    out.append("              batch: 63")
                out.append("  vm stats threshold: 0")
                out.append("  node_unreclaimable:  0")
                out.append(f"  start_pfn:           {z.start_pfn}")
            else:
                c = zone_counts(m, z)
                out.append(f"  pages free     {z.free}")
                out.append(f"        min      {z.wmark_min}")
                out.append(f"        low      {z.wmark_low}")
                out.append(f"        high     {z.wmark_high}")
                out.append(f"        active   {c['nr_zone_anon'] + c['nr_zone_file']}")
                out.append("        inactive 0")
                out.append("        scanned  0 (a: 0 i: 0)")
                out.append(f"        spanned  {z.spanned}")
                out.append(f"        present  {z.present}")
                out.append("        protection: (" + ", ".join("0" for _ in zones) + ")")
    return "\n".join(out) + "\n"


def vmstat(m: Kernel) -> dict:
    """/proc/vmstat counters (2006 had no pgmigrate_*)."""
    f = m.f
    st = m.numastat_arr
    iso = (f.flags & PG_isolated) != 0
    d = {
        "nr_free_pages": int(sum(z.free for z in m.zones)),
        "nr_anon_pages": int((f.kind == K_ANON).sum()),
        "nr_file_pages": int((f.kind == K_FILE).sum()),
        "nr_mlock": int(((f.flags & PG_mlocked) != 0).sum()),
        "nr_isolated_anon": int((iso & (f.kind == K_ANON)).sum()),
        "nr_isolated_file": int((iso & (f.kind == K_FILE)).sum()),
        "numa_hit": int(st[0].sum()),
        "numa_miss": int(st[1].sum()),
        "numa_foreign": int(st[2].sum()),
        "numa_interleave": int(st[3].sum()),
        "numa_local": int(st[4].sum()),
        "numa_other": int(st[5].sum()),
    }
    if m.era.proc_formats == "modern":
        for k in ("pgmigrate_success", "pgmigrate_fail", "thp_migration_success",
                  "thp_migration_fail", "numa_hint_faults", "numa_hint_faults_local",
                  "numa_pages_migrated", "pgpromote_success"):
            d[k] = int(m.vmstat_counts.get(k, 0))
    for k, v in m.vmstat_extra.items():
        d[k] = int(v)
    return d


def node_meminfo(m: Kernel, node: int) -> str:
    """/sys/devices/system/node/nodeN/meminfo."""
    f = m.f
    zones = m.node_zones(node)
    kb = m.page_size // 1024
    if not zones:
        s = e = 0
    else:
        s, e = zones[0].start_pfn, zones[-1].end_pfn
    k = f.kind[s:e]
    fl = f.flags[s:e]
    total = sum(z.managed for z in zones)
    free = sum(z.free for z in zones)
    anon = int((k == K_ANON).sum())
    file = int((k == K_FILE).sum())
    mlocked = int(((fl & PG_mlocked) != 0).sum())
    slab = int(((k == K_KERNEL) & (f.mapping[s:e] == KUSE_SLAB)).sum())
    shmem_ids = [b.id for b in m.files.values() if b.shmem]
    shmem = int(np.isin(f.mapping[s:e][k == K_FILE], shmem_ids).sum()) if shmem_ids else 0
    rows = [("MemTotal", total), ("MemFree", free), ("MemUsed", total - free),
            ("SwapCached", 0), ("Active", anon + file - mlocked), ("Inactive", 0),
            ("Active(anon)", anon), ("Inactive(anon)", 0), ("Active(file)", file),
            ("Inactive(file)", 0), ("Unevictable", mlocked), ("Mlocked", mlocked),
            ("Dirty", int(((fl & PG_dirty) != 0).sum())),
            ("Writeback", int(((fl & PG_writeback) != 0).sum())),
            ("FilePages", file), ("Mapped", int(((k == K_FILE) & (f.mapcount[s:e] > 0)).sum())),
            ("AnonPages", anon), ("Shmem", shmem), ("KernelStack", 0), ("PageTables", 0),
            ("Slab", slab), ("SReclaimable", 0), ("SUnreclaim", slab), ("AnonHugePages", 0)]
    out = [f"Node {node} {name + ':':<16}{v * kb:>8} kB" for name, v in rows]
    for name in ("HugePages_Total", "HugePages_Free", "HugePages_Surp"):
        out.append(f"Node {node} {name + ':':<16}{0:>5}")
    return "\n".join(out) + "\n"


def numactl_hardware(m: Kernel) -> str:
    """`numactl -H`."""
    mb = m.page_size / (1 << 20)
    mem = m.memory_nodes()
    out = [f"available: {len(m.nodes)} nodes ({_list(m.nodes)})"]
    for n in m.nodes_list:
        zones = m.node_zones(n.id)
        out.append(f"node {n.id} cpus:" + "".join(f" {c}" for c in n.cpus))
        out.append(f"node {n.id} size: {int(sum(z.managed for z in zones) * mb)} MB")
        out.append(f"node {n.id} free: {int(sum(z.free for z in zones) * mb)} MB")
    out.append("node distances:")
    # numactl's print_distances(): "% 3d " per column, "% 3d: " per row
    out.append("node " + "".join(f"{i:>3} " for i in m.nodes))
    for a in m.nodes:
        out.append(f"{a:>3}: " + "".join(f"{m.distance(a, b):>3} " for b in m.nodes))
    if len(mem) != len(m.nodes):
        out.append(f"(nodes with memory: {_list(mem)})")
    return "\n".join(out) + "\n"


def _list(ns) -> str:
    return nodes_str(ns)


def node_numastat(m: Kernel, node: int) -> dict:
    """/sys/devices/system/node/nodeN/numastat as a dict."""
    return {n: int(m.numastat_arr[i, node]) for i, n in enumerate(NUMASTAT_NAMES)}
