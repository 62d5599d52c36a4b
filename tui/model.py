"""Read-only views of engine state for the console: process and VMA rows, frame
descriptions, owner look-ups. Pure functions over a Machine; nothing here changes it
(every change goes through engine.commands.execute)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.constants import FLAG_NAMES, K_ANON, K_FILE, K_KERNEL, K_PFNMAP, KIND_NAMES

KUSE_NAMES = {0: "memmap", 1: "slab", 2: "page tables", 3: "zero page"}


def fmt_bytes(n: float) -> str:
    """1536 -> '1.5K', 3*2**30 -> '3.0G' (binary units, short)."""
    n = float(n)
    for unit in ("B", "K", "M", "G", "T", "P"):
        if abs(n) < 1024 or unit == "P":
            if unit == "B":
                return f"{int(n)}B"
            return f"{n:.1f}{unit}" if abs(n) < 10 else f"{n:.0f}{unit}"
        n /= 1024
    return f"{n:.0f}P"  # pragma: no cover


def fmt_pages(m: Any, pages: int) -> str:
    return fmt_bytes(int(pages) * m.page_size)


def nodes_str(nodes) -> str:
    """[0, 1, 2, 5] -> '0-2,5' (numactl style)."""
    ns = sorted({int(n) for n in nodes})
    out: list[str] = []
    i = 0
    while i < len(ns):
        j = i
        while j + 1 < len(ns) and ns[j + 1] == ns[j] + 1:
            j += 1
        out.append(str(ns[i]) if i == j else f"{ns[i]}-{ns[j]}")
        i = j + 1
    return ",".join(out)


def policy_str(policy: Any) -> str:
    if policy is None:
        return "default"
    describe = getattr(policy, "describe", None)
    return describe() if describe else str(policy)


def node_index(m: Any) -> dict[int, int]:
    """node id -> column position (node ids may be sparse)."""
    return {n: i for i, n in enumerate(m.nodes)}


def pages_per_node(m: Any, pfns: np.ndarray) -> np.ndarray:
    """Counts of present pages (not the zero page) per node, in m.nodes order."""
    nodes = m.nodes
    pfns = pfns[(pfns >= 0) & (pfns != m.zero_pfn)]
    if pfns.size == 0:
        return np.zeros(len(nodes), np.int64)
    counts = np.bincount(m.node_of(pfns), minlength=max(nodes) + 1)
    return counts[np.asarray(nodes, np.int64)]


@dataclass
class ProcRow:
    pid: int
    name: str
    uid: int
    node: int
    rss: int  # pages
    per_node: np.ndarray  # pages per node, m.nodes order
    locality: float | None  # percent of RSS on the process's own node
    policy: str


def process_rows(m: Any) -> list[ProcRow]:
    rows = []
    idx = node_index(m)
    for pid in m.pids:
        p = m.process(pid)
        ptes = [v.pte for v in p.vmas if v.pte is not None and len(v.pte)]
        pfns = np.concatenate(ptes) if ptes else np.zeros(0, np.int64)
        per = pages_per_node(m, pfns)
        rss = int(per.sum())
        loc = None
        if rss and p.node in idx:
            loc = 100.0 * float(per[idx[p.node]]) / rss
        rows.append(ProcRow(pid, p.name, p.uid, p.node, rss, per, loc, policy_str(p.policy)))
    return rows


@dataclass
class VmaRow:
    start: int
    end: int
    kind: str
    flags: str
    policy: str
    locked: bool
    rss: int
    per_node: np.ndarray


def vma_rows(m: Any, pid: int) -> list[VmaRow]:
    p = m.process(pid)
    out = []
    for v in p.vmas:
        per = pages_per_node(m, v.pte)
        out.append(VmaRow(v.start, v.end, v.kind, v.flag_string(), policy_str(v.policy),
                          bool(getattr(v, "locked", False)), int(per.sum()), per))
    return out


def find_vma(m: Any, pid: int, start: int) -> Any:
    try:
        p = m.process(pid)
    except OSError:
        return None
    for v in p.vmas:
        if v.start <= start < v.end:
            return v
    return None


def frame_owner(m: Any, pfn: int) -> tuple[int, int] | None:
    """(pid, address) of the first mapping of a frame, or None."""
    from engine.rmap import mappers

    try:
        ms = mappers(m, int(pfn))
    except Exception:  # noqa: BLE001 - an inspector never fails
        return None
    return ms[0] if ms else None


def zone_at(m: Any, pfn: int) -> Any:
    for z in m.zones:
        if z.spanned and z.start_pfn <= pfn < z.start_pfn + z.spanned:
            return z
    return None


def driver_of_frame(m: Any, pfn: int) -> str | None:
    """The PFN-map driver owning a frame (via its backing), if any."""
    if int(m.f.kind[pfn]) != K_PFNMAP:
        return None
    mid = int(m.f.mapping[pfn])
    for name, d in getattr(m, "drivers_map", {}).items():
        b = getattr(d, "backing", None)
        if b is not None and getattr(b, "id", None) == mid:
            return name
    return None


def hook_drivers(m: Any) -> list[tuple[str, bool]]:
    """(driver, hook enabled) for drivers that can have a migrate hook."""
    out = []
    for name, d in getattr(m, "drivers_map", {}).items():
        if getattr(d, "pfnmap", False):
            out.append((name, bool(getattr(d, "hook_enabled", False))))
    return out


def flag_names(flags: int) -> list[str]:
    return [n for bit, n in FLAG_NAMES if flags & int(bit)]


def describe_frame(m: Any, pfn: int) -> list[tuple[str, str]]:
    """(label, value) lines for the inspector."""
    f = m.f
    pfn = int(pfn)
    if not 0 <= pfn < m.nr_frames:
        return [("PFN", f"{pfn} (outside the machine)")]
    kind = int(f.kind[pfn])
    z = zone_at(m, pfn)
    out = [
        ("PFN", f"{pfn:#x} ({pfn})"),
        ("phys", f"{pfn * m.page_size:#x}"),
        ("node", str(int(m.node_of([pfn])[0]))),
        ("zone", z.name if z is not None else "?"),
        ("kind", KIND_NAMES[kind] if kind < len(KIND_NAMES) else str(kind)),
    ]
    if kind == K_KERNEL:
        out.append(("use", KUSE_NAMES.get(int(f.mapping[pfn]), "kernel")))
    owner = None
    if kind in (K_ANON, K_FILE, K_PFNMAP):
        owner = frame_owner(m, pfn)
    if owner is not None:
        pid, addr = owner
        name = m.procs[pid].name if pid in m.procs else "?"
        out.append(("owner", f"pid {pid} {name}"))
        out.append(("address", f"{addr:#x}"))
    if kind == K_FILE:
        obj = getattr(m, "mappings", {}).get(int(f.mapping[pfn]))
        if obj is not None and getattr(obj, "name", None):
            out.append(("file", f"{obj.name} [{int(f.index[pfn])}]"))
    drv = driver_of_frame(m, pfn)
    if drv:
        out.append(("driver", drv))
    fl = flag_names(int(f.flags[pfn]))
    out.append(("flags", ",".join(fl) if fl else "-"))
    out.append(("mapcount", str(int(f.mapcount[pfn]))))
    out.append(("refcount", str(int(f.refcount[pfn]))))
    out.append(("content", f"{int(f.content[pfn]):#010x}"))
    acc = _accesses(m, owner) if owner is not None else ""
    if acc:
        out.append(("accesses", acc))
    return out


def _accesses(m: Any, owner: tuple[int, int]) -> str:
    """Sampled accesses by node to the page at (pid, addr), when a workload covers it
    (engine.workload; counts since the last access-statistics reset)."""
    try:
        from engine.workload import workloads
    except ImportError:
        return ""
    pid, addr = owner
    for wl in reversed(workloads(m)):
        if getattr(wl, "pid", None) != pid or getattr(wl, "counts", None) is None:
            continue
        i = (addr - wl.start) >> m.page_shift
        if 0 <= i < wl.npages:
            row = wl.counts[i].astype(np.int64)
            if getattr(wl, "mark", None) is not None:
                row = row - wl.mark[i]
            parts = [f"N{n}={int(c)}" for n, c in zip(m.nodes, row) if c]
            return " ".join(parts) if parts else "none sampled"
    return ""


def cell_summary(m: Any, a: int, b: int) -> str:
    """What a map cell covering frames [a, b) holds: counts by kind."""
    kinds = np.bincount(m.f.kind[a:b], minlength=len(KIND_NAMES))
    parts = [f"{KIND_NAMES[k]} {int(c)}" for k, c in enumerate(kinds) if c]
    return ", ".join(parts)


def fmt_count(n: float) -> str:
    """66048 -> '66k', 1500000 -> '1.5M'."""
    n = float(n)
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            v = n / div
            return f"{v:.1f}{unit}" if v < 10 else f"{v:.0f}{unit}"
    return str(int(n))


def job_line(m: Any, job: Any) -> str:
    """'#3 migrate_pages 1.0k/4.1k 25% 204k pg/s ETA 0.25s' (rate and ETA in simulated
    time)."""
    done, total = int(getattr(job, "done", 0)), int(getattr(job, "total", 0))
    s = f"#{job.id} {job.name} {fmt_count(done)}/{fmt_count(total)}"
    if total:
        s += f" {100 * done // total}%"
    started = getattr(job, "started_ns", None)
    if started is not None and done:
        dt = (m.clock - started) / 1e9
        if dt > 0:
            rate = done / dt
            s += f" {fmt_count(rate)} pg/s"
            if total > done and rate > 0:
                s += f" ETA {(total - done) / rate:.2g}s"
    return s


def summarize_result(result: Any) -> str:
    """A job's result in one line: a move_pages status list as counts per node or
    errno, a count of pages not moved, or the result's own text."""
    import errno

    if isinstance(result, list):
        counts: dict[str, int] = {}
        for s in result:
            if s is None:
                k = "unwritten"
            elif s >= 0:
                k = f"N{s}"
            else:
                k = "-" + errno.errorcode.get(-s, str(-s))
            counts[k] = counts.get(k, 0) + 1
        return f"{len(result)} pages: " + " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    if isinstance(result, bool):
        return str(result)
    if isinstance(result, int):
        return f"{result} page(s) not moved"
    if isinstance(result, dict) and "text" in result:
        return str(result["text"]).splitlines()[0]
    text = getattr(result, "text", None)
    if isinstance(text, str):
        return text.splitlines()[0] if text else ""
    return str(result)
