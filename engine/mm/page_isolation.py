"""What keeps a range of frames from being offlined (mm/page_isolation.c's
has_unmovable_pages()), with the owner of each blocker: the kernel's use of a frame,
the process and driver holding a long-term pin, a PFN-mapped region without a
migrate hook."""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from ..constants import (
    EBUSY,
    K_ANON,
    K_FILE,
    K_KERNEL,
    K_PFNMAP,
    KUSE_HUGETLB,
    KUSE_MEMMAP,
    KUSE_PAGETABLE,
    KUSE_SLAB,
    KUSE_ZERO,
    PG_pinned,
    oserror,
)
from ..vec import value_counts
from .huge_memory import FOLIO_HUGETLB, FOLIO_TAIL, ORDER_MASK, free_blocks, pmd_order
from .hugetlb import available_huge_pages, pool_counts, size_kb
from .rmap import for_each_mapping
from .state import Kernel

OfflineGen = Generator[int, None, dict]  # yields between batches, returns the result
BLOCK_ONLINE, BLOCK_OFFLINE, BLOCK_GOING_OFFLINE = 0, 1, 2
STATE_NAMES = ("online", "offline", "going-offline")
ONLINE_TYPES = ("online", "online_kernel", "online_movable")
OFFLINE_TIMEOUT_NS = 120 * 10**9  # 2.6.24-4.14: offline_pages(..., 120 * HZ)
OFFLINE_RETRY_MAX = 5  # 2.6.24-4.14: retry_max for rounds failing with an error
RETRY_NS = 1_000_000  # a round that moved nothing: lru_add_drain_all() + cond_resched()
KUSE_NAMES = {KUSE_MEMMAP: "memmap", KUSE_SLAB: "slab", KUSE_PAGETABLE: "page tables",
              KUSE_ZERO: "zero page", KUSE_HUGETLB: "hugetlb pool"}

__all__ = ["find_blockers", "blockers_text", "ebusy"]


def find_blockers(k: Kernel, pfns: np.ndarray) -> list[dict]:
    """has_unmovable_pages() with owners: kernel frames, long-term pinned pages and
    PFN-mapped frames whose driver has no enabled migrate hook. Each entry:
    {kind, what, pages, detail}."""
    f = k.f
    kind = f.kind[pfns]
    out = []
    kern = pfns[kind == K_KERNEL]
    if k.large_folios:
        out.extend(_hugetlb_blockers(k, pfns, kern))
        kern = kern[f.mapping[kern] != KUSE_HUGETLB]
    if kern.size:
        uses = value_counts(f.mapping[kern])
        detail = ", ".join(f"{KUSE_NAMES.get(u, 'kernel')} {n}" for u, n in sorted(uses.items()))
        out.append({"kind": "kernel", "what": "kernel", "pages": int(kern.size),
                    "detail": detail})
    user = (kind == K_ANON) | (kind == K_FILE)
    pinned = pfns[user & ((f.flags[pfns] & PG_pinned) != 0)]
    if pinned.size:
        out.extend(_pin_owners(k, pinned))
    out.extend(_driver_blockers(k, pfns[kind == K_PFNMAP]))
    return out


def _hugetlb_blockers(k: Kernel, pfns: np.ndarray, kern: np.ndarray) -> list[dict]:
    """hugetlb pages in the range in use beyond what the other nodes can give them
    (alloc_hugetlb_folio_nodemask() would fail: they cannot move): free pages of the
    other nodes' pools of their size, and for 2 MiB pages wholly free aligned blocks
    there too (alloc_migrate_hugetlb_folio()'s temporary pages; never for gigantic
    ones). Free huge pages of a pool are no blockers: offline_pages() dissolves them
    (dissolve_free_hugetlb_folios(), hugetlb.dissolve_free)."""
    f = k.f
    sp = f.spare[pfns]
    heads = pfns[((sp & FOLIO_HUGETLB) != 0) & ((sp & FOLIO_TAIL) == 0)
                 & ((sp & ORDER_MASK) != 0)]
    if heads.size == 0:
        return []
    free = f.kind[heads] == K_KERNEL
    used = heads[~free]
    out = []
    fo = (f.spare[heads[free]] & ORDER_MASK).astype(np.int64)
    for o in np.unique(fo).tolist():
        stuck = int((fo == o).sum()) - available_huge_pages(k, o)
        if stuck > 0:  # dissolve_free_hugetlb_folio(): reserved free pages stay (-EBUSY)
            out.append({"kind": "hugetlb", "what": f"{stuck} free huge page(s) of "
                        f"{size_kb(k, o)} kB reserved by MAP_HUGETLB mappings (failure to "
                        f"dissolve huge pages)", "pages": stuck << o,
                        "detail": "hugetlb reserved"})
    if used.size:
        src = set(k.node_of(used).tolist())
        others = [n for n in k.memory_nodes() if n not in src]
        orders = (f.spare[used] & ORDER_MASK).astype(np.int64)
        for o in np.unique(orders).tolist():
            cnt = int((orders == o).sum())
            room = sum(pool_counts(k, n, o)[1] for n in others)
            # alloc_hugetlb_folio_nodemask(): no page a reservation holds; then a
            # temporary page (alloc_migrate_hugetlb_folio(), never a gigantic one)
            room = min(room, available_huge_pages(k, o))
            if o == pmd_order(k) and cnt > room:
                blocks = free_blocks(k, 1 << o)
                room += int(sum(blocks[z.zid] for n in others for z in k.node_zones(n)))
            if cnt > room:
                out.append({"kind": "hugetlb", "what": f"{cnt - room} huge page(s) of "
                            f"{size_kb(k, o)} kB in use with no free huge page on another "
                            f"node to take them", "pages": int((cnt - room) << o),
                            "detail": "hugetlb"})
    return out


def _pin_owners(k: Kernel, pinned: np.ndarray) -> list[dict]:
    """Name the process, VMA and pinning driver of long-term pinned pages."""
    per_vma: dict = {}
    seen = np.zeros(pinned.size, bool)
    for v, pos, _offs in for_each_mapping(k, pinned):
        seen[pos] = True
        key = (v.mm.pid if v.mm is not None else -1, v.start, v.end)
        per_vma[key] = per_vma.get(key, 0) + int(pos.size)
    out = []
    for (pid, start, end), n in sorted(per_vma.items()):
        p = k.procs.get(pid)
        name = p.name if p is not None else "?"
        drv = _pinning_driver(k, pid, start, end)
        out.append({"kind": "pin", "what": f"pid {pid} ({name}) VMA {start:#x}-{end:#x} "
                                           f"pinned by {drv}",
                    "pages": n, "detail": "long-term pin", "pid": pid})
    rest = pinned[~seen]
    for d in k.drivers_map.values():  # unmapped: the registration still holds them
        for ppid, a, ln, pf in d.pins:
            held = np.isin(rest, pf)
            if held.any():
                p = k.procs.get(ppid)
                out.append({"kind": "pin", "what": f"pid {ppid} ({p.name if p else '?'}) "
                                                   f"unmapped {a:#x}-{a + ln:#x}, still "
                                                   f"registered with {d.name}",
                            "pages": int(held.sum()), "detail": "pin outlived its mapping",
                            "pid": ppid})
                rest = rest[~held]
    if rest.size:
        out.append({"kind": "pin", "what": "unmapped pages with a long-term pin",
                    "pages": int(rest.size), "detail": "pin outlived its mapping"})
    return out


def _pinning_driver(k: Kernel, pid: int, start: int, end: int) -> str:
    for d in k.drivers_map.values():
        for (ppid, a, ln, _pfns) in d.pins:
            if ppid == pid and a < end and a + ln > start:
                return d.name
    return "a long-term pin"


def _driver_blockers(k: Kernel, pf: np.ndarray) -> list[dict]:
    out = []
    if pf.size == 0:
        return out
    ids, counts = np.unique(k.f.mapping[pf], return_counts=True)
    by_backing = {d.backing.id: d for d in k.drivers_map.values() if d.backing is not None}
    for mid, n in zip(ids.tolist(), counts.tolist()):
        d = by_backing.get(mid)
        if d is not None and d.has_hook and d.hook_enabled:
            continue  # the driver relocates these frames itself
        name = d.name if d is not None else f"mapping {mid}"
        why = "migrate hook off" if d is not None and d.has_hook else "no vm_ops->migrate"
        out.append({"kind": "driver", "what": f"driver {name}", "pages": n, "detail": why})
    return out


def blockers_text(blockers: list[dict]) -> str:
    return "; ".join(f"{b['what']} ({b['pages']} pages: {b['detail']})" for b in blockers)


def ebusy(label: str, blockers: list[dict]) -> OSError:
    return oserror(EBUSY, f"offline {label}: unmovable pages: {blockers_text(blockers)}")
