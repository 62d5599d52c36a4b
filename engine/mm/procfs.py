"""Linux-format views: /proc/PID/numa_maps, numastat, /proc/zoneinfo, /proc/vmstat,
nodeN/meminfo and `numactl -H` (fs/proc/task_mmu.c, mm/vmstat.c, drivers/base/node.c)."""

from __future__ import annotations

import numpy as np

from ..constants import (
    FOLIO_HUGETLB,
    K_ANON,
    K_FILE,
    K_KERNEL,
    KUSE_PAGETABLE,
    KUSE_SLAB,
    VM_HUGETLB,
    PG_dirty,
    PG_isolated,
    PG_mlocked,
    PG_writeback,
)
from ..nodemask import nodes_str
from ..vec import counts
from .frames import SCAN_SLICE
from .huge_memory import THP_COUNTERS, thp_pages
from .hugetlb import hstate_orders, pool_counts, size_kb, surplus_count
from .mm_types import Backing, Process
from .page_alloc import NUMASTAT_NAMES
from .policy import effective_policy
from .state import Kernel


def numa_maps(m: Kernel, p: Process) -> str:
    """show_numa_map(): one line per VMA."""
    modern = m.era.proc_formats == "modern"
    lines = []
    for v in p.vmas:
        # show_numa_map(): the VMA's own policy, else the task's (task_mempolicy);
        # the kernel's per-node default (MPOL_F_MORON) prints as "default"
        pol = effective_policy(p, v)
        pstr = "default" if pol is None else pol.describe(m.era.proc_formats)
        parts = [f"{v.start:08x}", pstr]
        if v.backing is not None and not v.pfnmap:
            parts.append(f"file={file_path(v.backing)}")
        c = _vma_counts(m, v)
        hpage = m.page_size
        if v.flags & VM_HUGETLB:
            # a MAP_HUGETLB mapping is an unlinked hugetlbfs file; gather_hugetlb_stats()
            # counts each huge page once
            if v.backing is None:  # (a private one: the file is not kept here)
                parts.append(r"file=/anon_hugepage\040(deleted)")
            parts.append("huge")
            nb = 1 << v.hpage_order
            hpage *= nb
            c = {key: (val // nb if key != "mapmax" else val) for key, val in c.items()}
        total, anon = c["total"], c["anon"]
        if total:
            if anon:
                parts.append(f"anon={anon}")
            if c["dirty"]:
                parts.append(f"dirty={c['dirty']}")
            if total != anon and total != c["dirty"]:
                parts.append(f"mapped={total}")
            if c["mapmax"] > 1:
                parts.append(f"mapmax={c['mapmax']}")
            if c["writeback"]:
                parts.append(f"writeback={c['writeback']}")
            nodes = c["nodes"]
            for n in np.flatnonzero(nodes):
                parts.append(f"N{n}={int(nodes[n])}")
            if modern:
                parts.append(f"kernelpagesize_kB={hpage // 1024}")
        lines.append(" ".join(parts))
    return "\n".join(lines) + ("\n" if lines else "")


def _vma_counts(m: Kernel, v) -> dict:
    """What show_numa_map() counts of a VMA's pages (the zero page and PFN maps not
    counted: no struct page), a slice of the page table at a time (temporaries that
    stay in cache, whatever the VMA's size)."""
    f = m.f
    c = {"total": 0, "anon": 0, "dirty": 0, "writeback": 0, "mapmax": 0,
         "nodes": np.zeros(m.nr_node_ids, np.int64)}
    if v.pfnmap:  # no struct page behind a PFN map: nothing counted
        return c
    for o0 in range(0, v.npages, SCAN_SLICE):
        pfn = v.frames(o0, min(v.npages, o0 + SCAN_SLICE))
        zero = pfn == m.zero_pfn
        if zero.any():
            pfn = pfn[~zero]
        if pfn.size == 0:
            continue
        w = f.words()[pfn]
        kind = w.astype(np.uint8)
        fl = (w >> 8).astype(np.uint8)
        c["total"] += pfn.size
        c["anon"] += int(np.count_nonzero(kind == K_ANON))
        c["dirty"] += int(np.count_nonzero(fl & PG_dirty))
        c["writeback"] += int(np.count_nonzero(fl & PG_writeback))
        c["mapmax"] = max(c["mapmax"], int(f.mapcount[pfn].max()))
        c["nodes"] += counts(m.node_of(pfn), m.nr_node_ids)
    return c


def file_path(b: Backing) -> str:
    """The path show_numa_map() prints (seq_path() escapes blanks as \\040): shared
    anonymous memory is "/dev/zero (deleted)", a MAP_HUGETLB mapping's file
    "/anon_hugepage (deleted)" (the engine numbers its objects)."""
    name = b.name.split(" #", 1)[0] if b.unlinked else b.name
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


def frame_counts(m: Kernel, s: int, e: int, kernel_uses: bool = False,
                 file_mapped: bool = False) -> dict[str, int]:
    """Counts of frames [s, e) by what the vmstat counters ask: kinds, flags, and
    (on request) the kernel's uses, the page-cache pages mapped and those of shmem. A slice at a time
    over the 2-byte words (SCAN_SLICE: no temporary as large as the range, which
    on a 1 TiB machine is 268 M frames); the records are read only for the kernel's
    or the page cache's frames, when asked."""
    f = m.f
    c = dict.fromkeys(("anon", "file", "mlocked", "isolated_anon", "isolated_file",
                       "dirty", "writeback", "write_pending", "slab", "pagetable",
                       "file_mapped", "shmem"), 0)
    shmem_ids = np.array([b.id for b in m.files.values() if b.shmem], np.int64) \
        if file_mapped else np.zeros(0, np.int64)
    for a in range(s, e, SCAN_SLICE):
        b = min(e, a + SCAN_SLICE)
        w = f.words(a, b)
        kind = w.astype(np.uint8)
        fl = (w >> 8).astype(np.uint8)
        if m.large_folios:
            # hugetlb pages in use are in none of these counters (no LRU, no
            # NR_ANON_MAPPED, NR_FILE_MAPPED or dirty accounting: hugetlbfs's
            # noop_dirty_folio()); their pools' are the kernel's
            hug = (f.spare[a:b] & FOLIO_HUGETLB) != 0
            if hug.any():
                kind = np.where(hug & (kind != K_KERNEL), np.uint8(0), kind)
                fl = np.where(hug, np.uint8(0), fl)
        anon, file = kind == K_ANON, kind == K_FILE
        c["anon"] += int(np.count_nonzero(anon))
        c["file"] += int(np.count_nonzero(file))
        c["mlocked"] += int(np.count_nonzero(fl & PG_mlocked))
        iso = (fl & PG_isolated) != 0
        if iso.any():
            c["isolated_anon"] += int(np.count_nonzero(iso & anon))
            c["isolated_file"] += int(np.count_nonzero(iso & file))
        c["dirty"] += int(np.count_nonzero(fl & PG_dirty))
        c["writeback"] += int(np.count_nonzero(fl & PG_writeback))
        c["write_pending"] += int(np.count_nonzero(fl & (PG_dirty | PG_writeback)))
        if kernel_uses:
            kern = np.flatnonzero(kind == K_KERNEL)
            if kern.size:
                use = f.mapping[a + kern]
                c["slab"] += int(np.count_nonzero(use == KUSE_SLAB))
                c["pagetable"] += int(np.count_nonzero(use == KUSE_PAGETABLE))
        if file_mapped:
            fi = np.flatnonzero(file)
            if fi.size:
                c["file_mapped"] += int(np.count_nonzero(f.mapcount[a + fi] > 0))
                if shmem_ids.size:  # Shmem: page cache of shmem/tmpfs objects
                    c["shmem"] += int(np.count_nonzero(np.isin(f.mapping[a + fi],
                                                               shmem_ids)))
    return c


def zone_counts(m: Kernel, z) -> dict:
    c = frame_counts(m, z.start_pfn, z.end_pfn, kernel_uses=True)
    return {
        "nr_free_pages": z.free,
        "nr_zone_anon": c["anon"],
        "nr_zone_file": c["file"],
        "nr_zone_unevictable": c["mlocked"],
        "nr_zone_write_pending": c["write_pending"],
        "nr_mlock": c["mlocked"],
        "nr_slab_unreclaimable": c["slab"],
        "nr_page_table_pages": c["pagetable"],
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
    st = m.numastat_arr
    c = frame_counts(m, 0, m.nr_frames)
    d = {
        "nr_free_pages": int(sum(z.free for z in m.zones)),
        "nr_anon_pages": c["anon"],
        "nr_file_pages": c["file"],
        "nr_mlock": c["mlocked"],
        "nr_isolated_anon": c["isolated_anon"],
        "nr_isolated_file": c["isolated_file"],
        "numa_hit": int(st[0].sum()),
        "numa_miss": int(st[1].sum()),
        "numa_foreign": int(st[2].sum()),
        "numa_interleave": int(st[3].sum()),
        "numa_local": int(st[4].sum()),
        "numa_other": int(st[5].sum()),
    }
    if m.era.proc_formats == "modern":
        for k in ("pgmigrate_success", "pgmigrate_fail", *THP_COUNTERS, "numa_hint_faults", "numa_hint_faults_local",
                  "numa_pages_migrated", "pgpromote_success"):
            d[k] = int(m.vmstat_counts.get(k, 0))
    for k, v in m.vmstat_extra.items():
        d[k] = int(v)
    return d


def node_meminfo(m: Kernel, node: int) -> str:
    """/sys/devices/system/node/nodeN/meminfo."""
    zones = m.node_zones(node)
    kb = m.page_size // 1024
    if not zones:
        s = e = 0
    else:
        s, e = zones[0].start_pfn, zones[-1].end_pfn
    c = frame_counts(m, s, e, kernel_uses=True, file_mapped=True)
    total = sum(z.managed for z in zones)
    free = sum(z.free for z in zones)
    anon, file, mlocked, slab = c["anon"], c["file"], c["mlocked"], c["slab"]
    htotal, hfree = pool_counts(m, node) if zones else (0, 0)
    thp = thp_pages(m, s, e)
    rows = [("MemTotal", total), ("MemFree", free), ("MemUsed", total - free),
            ("SwapCached", 0), ("Active", anon + file - mlocked), ("Inactive", 0),
            ("Active(anon)", anon), ("Inactive(anon)", 0), ("Active(file)", file),
            ("Inactive(file)", 0), ("Unevictable", mlocked), ("Mlocked", mlocked),
            ("Dirty", c["dirty"]),
            ("Writeback", c["writeback"]),
            ("FilePages", file), ("Mapped", c["file_mapped"]),
            ("AnonPages", anon), ("Shmem", c["shmem"]), ("KernelStack", 0), ("PageTables", 0),
            ("Slab", slab), ("SReclaimable", 0), ("SUnreclaim", slab), ("AnonHugePages", thp)]
    out = [f"Node {node} {name + ':':<16}{v * kb:>8} kB" for name, v in rows]
    for name, v in (("HugePages_Total", htotal), ("HugePages_Free", hfree),
                    ("HugePages_Surp", surplus_count(m, node))):
        out.append(f"Node {node} {name + ':':<16}{v:>5}")
    return "\n".join(out) + "\n"


def node_hugepages(m: Kernel, node: int) -> dict[str, dict[str, int]]:
    """/sys/devices/system/node/nodeN/hugepages/: a directory per huge page size
    (hugepages-2048kB, hugepages-1048576kB), each with nr_hugepages, free_hugepages
    and surplus_hugepages (node_hstate_attrs). nr_hugepages counts the surplus
    pages too, as nr_hugepages_show() does."""
    out = {}
    for o in hstate_orders(m):
        total, free = pool_counts(m, node, o) if m.node_zones(node) else (0, 0)
        out[f"hugepages-{size_kb(m, o)}kB"] = {
            "nr_hugepages": total, "free_hugepages": free,
            "surplus_hugepages": surplus_count(m, node, o) if total else 0}
    return out


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
