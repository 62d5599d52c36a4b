"""`numacon bench`'s huge-page figure (issue 18): migrate_pages of 16 GiB of
transparent huge pages between two nodes against 16 GiB of small pages, wall time.

A machine of its own (two nodes of 20 GiB, 4 KiB pages, scaled with --scale/--quick):
a process whose 16 GiB is THP (MADV_HUGEPAGE, THP "madvise": 8192 folios of 512
pages) and one whose 16 GiB is small pages (MADV_NOHUGEPAGE), both on node 0; each
is migrated to node 1 and back in turn (runs times), timed. The huge pages must be no
slower: 512 times fewer objects to isolate, plan and allocate, as many frames to
copy and redirect."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from engine.constants import MADV_HUGEPAGE, MADV_NOHUGEPAGE
from engine.machine import Machine

__all__ = ["thp_description", "thp_figures"]


def thp_description(scale: float = 1.0) -> dict:
    g = max(1, int(round(20 * 1024 * scale)))
    return {"machine": {"name": "bench-thp", "block_size": "128M", "kernel": "1%",
                        "thp": "madvise"},
            "nodes": [{"id": 0, "cpus": "0-7", "zones": {"Normal": f"{g}M"}},
                      {"id": 1, "cpus": "8-15", "zones": {"Normal": f"{g}M"}}],
            "distances": {"matrix": [[10, 21], [21, 10]]}}


def thp_figures(scale: float, runs: int, fig: dict, det: dict,
                log: Callable[[str], None]) -> None:
    size = max(2 << 20, int(16 * 2**30 * scale) // (2 << 20) * (2 << 20))
    times: dict[str, list[float]] = {"thp": [], "small": []}
    for kind, advice in (("thp", MADV_HUGEPAGE), ("small", MADV_NOHUGEPAGE)):
        m = Machine.from_description(thp_description(scale))
        pid = m.spawn(kind, node=0)
        a = m.mmap(pid, size)
        m.madvise(pid, a, size, advice)
        m.touch(pid, a, size, node=0)
        det[f"{kind}_folios"] = int(m.large_folios)
        src, dst = 0, 1
        for i in range(runs):
            gc.collect()
            before = m.vmstat().get("pgmigrate_success", 0)
            t0 = time.perf_counter()
            ret = m.migrate_pages(pid, [src], [dst])
            t = time.perf_counter() - t0
            moved = m.vmstat().get("pgmigrate_success", 0) - before
            if ret != 0 or moved != size // m.page_size:
                raise RuntimeError(f"{kind} migrate_pages run {i}: ret {ret}, {moved} moved")
            times[kind].append(t)
            log(f"{kind}: migrate_pages of {size >> 20} MiB {i + 1}/{runs}: {t:.3f} s")
            src, dst = dst, src
        if kind == "thp":
            det["thp_migration_success"] = int(m.vmstat()["thp_migration_success"])
        del m
        gc.collect()
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    fig["thp_migrate_s"], fig["small_migrate_s"] = med["thp"], med["small"]
    fig["thp_vs_small"] = med["thp"] / med["small"] if med["small"] else None
    det["thp_bytes"] = size


def label(key: str, det: dict) -> Any:
    size = det.get("thp_bytes")
    if not size:
        return None
    g = f"{size / 2**30:g} GiB"
    return {"thp_migrate_s": f"migrate_pages, {g} of THP between nodes (wall time)",
            "small_migrate_s": f"migrate_pages, {g} of small pages between nodes",
            "thp_vs_small": "THP time / small-page time"}.get(key)
