"""The host's physical memory, frame by frame: /proc/kpageflags (64 flag bits per PFN),
/proc/kpagecount (how many times each frame is mapped) and /proc/PID/pagemap (a
process's virtual pages -> PFN). Linux: fs/proc/page.c, fs/proc/task_mmu.c;
include/uapi/linux/kernel-page-flags.h; Documentation/admin-guide/mm/pagemap.rst.

kpageflags and kpagecount are root's (mode 0400, CAP_SYS_ADMIN); pagemap is readable
with ptrace read access to the process but shows PFNs only to CAP_SYS_ADMIN.

Frames are read in large chunks with pread and classified with numpy, a chunk at a
time (no Python work per frame): each frame gets a class (free buddy, anonymous,
page cache, slab, page table, mlocked, huge, reserved, kernel, zero page, offline,
hole), the simulator's kind (engine.constants K_*) and the simulator's flag bits
(PG_*), so the simulated map's colours and marks apply to the host unchanged."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from ..budget import advance
from ..constants import (
    K_ANON,
    K_FILE,
    K_FREE,
    K_KERNEL,
    K_OFFLINE,
    PG_dirty,
    PG_locked,
    PG_lru,
    PG_mlocked,
    PG_reserved,
    PG_writeback,
)

# include/uapi/linux/kernel-page-flags.h (0-26) and include/linux/kernel-page-flags.h
# (32-42, "kernel hacking assistances": exported, not promised stable)
KPF = {
    "locked": 0, "error": 1, "referenced": 2, "uptodate": 3, "dirty": 4, "lru": 5,
    "active": 6, "slab": 7, "writeback": 8, "reclaim": 9, "buddy": 10, "mmap": 11,
    "anon": 12, "swapcache": 13, "swapbacked": 14, "compound_head": 15,
    "compound_tail": 16, "huge": 17, "unevictable": 18, "hwpoison": 19, "nopage": 20,
    "ksm": 21, "thp": 22, "offline": 23, "zero_page": 24, "idle": 25, "pgtable": 26,
    "reserved": 32, "mlocked": 33, "mappedtodisk": 34, "private": 35, "private_2": 36,
    "owner_private": 37, "arch": 38, "uncached": 39, "softdirty": 40, "arch_2": 41,
    "arch_3": 42,
}

# frame classes (classify() says which wins when several apply)
CLASSES = ("free", "anon", "page cache", "slab", "page table", "mlocked", "huge",
           "reserved", "kernel", "zero page", "offline", "hole")
(C_FREE, C_ANON, C_FILE, C_SLAB, C_PGTABLE, C_MLOCKED, C_HUGE, C_RESERVED, C_KERNEL,
 C_ZERO, C_OFFLINE, C_HOLE) = range(len(CLASSES))
NCLASS = len(CLASSES)

# /proc/PID/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst)
PM_PRESENT = np.uint64(1 << 63)
PM_SWAP = np.uint64(1 << 62)
PM_FILE = np.uint64(1 << 61)  # file page or shared anonymous
PM_EXCLUSIVE = np.uint64(1 << 56)  # mapped exactly once
PM_PFN = np.uint64((1 << 55) - 1)

ENTRY = 8  # bytes per entry in all three files
CHUNK = 1 << 18  # frames per read (2 MiB of kpageflags)


def _bit(name: str) -> np.uint64:
    return np.uint64(1 << KPF[name])


def flag_names(raw: int) -> list[str]:
    """The KPF names of one frame's flags word, as page-types prints them."""
    return [n for n, b in KPF.items() if raw >> b & 1]


def classify(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """classify_words() of each run of equal words once (free memory and large
    allocations are long runs of one flags word), expanded back with np.repeat."""
    raw = np.asarray(raw, np.uint64)
    if raw.size > 64:
        change = np.flatnonzero(raw[1:] != raw[:-1]) + 1
        if change.size < raw.size // 4:
            starts = np.concatenate([[0], change])
            lens = np.diff(np.append(starts, raw.size))
            return tuple(np.repeat(x, lens) for x in classify_words(raw[starts]))
    return classify_words(raw)


def classify_words(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """kpageflags words -> (class, simulator kind K_*, simulator flags PG_*) per frame.
    The first rule that matches wins, in this order: hole (KPF_NOPAGE: no struct
    page), offline, free (KPF_BUDDY), slab, page table, zero page, reserved, then
    for user pages mlocked (or unevictable), huge (hugetlb or THP), anon, page cache;
    anything else is the kernel's (a frame with no flag at all: vmalloc, stacks and
    the like set none)."""
    raw = np.asarray(raw, np.uint64)

    def has(name: str) -> np.ndarray:
        return (raw & _bit(name)) != 0

    anon = has("anon")
    huge = has("huge") | has("thp")
    mlocked = has("mlocked") | has("unevictable")
    cache = ~anon & (has("lru") | has("mmap") | has("swapcache") | has("mappedtodisk"))
    cls = np.full(raw.shape, C_KERNEL, np.uint8)
    # assigned from the last rule to the first, so the first that matches stays
    for mask, c in ((cache, C_FILE), (anon, C_ANON), (huge & (anon | cache), C_HUGE),
                    (mlocked & (anon | cache), C_MLOCKED), (has("reserved"), C_RESERVED),
                    (has("zero_page"), C_ZERO), (has("pgtable"), C_PGTABLE),
                    (has("slab"), C_SLAB), (has("buddy"), C_FREE),
                    (has("offline"), C_OFFLINE), (has("nopage"), C_HOLE)):
        cls[mask] = c
    kind = np.full(raw.shape, K_KERNEL, np.uint8)
    kind[cache] = K_FILE
    kind[anon] = K_ANON
    kind[cls == C_FREE] = K_FREE
    kind[(cls == C_OFFLINE) | (cls == C_HOLE)] = K_OFFLINE
    fl = np.zeros(raw.shape, np.uint8)
    for name, pg in (("locked", PG_locked), ("dirty", PG_dirty), ("writeback", PG_writeback),
                     ("lru", PG_lru), ("reserved", PG_reserved)):
        fl[has(name)] |= pg
    fl[mlocked] |= PG_mlocked
    return cls, kind, fl


def pread_array(fd: int, first: int, n: int) -> np.ndarray:
    """n 64-bit entries from entry `first` of an open kpageflags/kpagecount/pagemap
    (short reads at the end of the file come back shorter)."""
    parts, off, left = [], first * ENTRY, n * ENTRY
    while left > 0:
        b = os.pread(fd, min(left, CHUNK * ENTRY), off)
        if not b:
            break
        parts.append(np.frombuffer(b[: len(b) - len(b) % ENTRY], np.uint64))
        off += len(b)
        left -= len(b)
    return np.concatenate(parts) if parts else np.zeros(0, np.uint64)


def read_entries(path: str, first: int, n: int) -> np.ndarray:
    fd = os.open(path, os.O_RDONLY)
    try:
        return pread_array(fd, first, n)
    finally:
        os.close(fd)


def why_unreadable(path: str, e: OSError) -> str:
    """One sentence for the console: what cannot be shown and what it needs."""
    what = {"kpageflags": "the page-frame map (each frame's flags)",
            "kpagecount": "how many times a frame is mapped"}.get(os.path.basename(path),
                                                                   os.path.basename(path))
    need = " (it needs root: CAP_SYS_ADMIN)" if e.errno in (1, 13) else ""
    return f"cannot read {path}: {e.strerror or e}{need}; {what} is not shown"


class FrameMap:
    """The host's frames by class, read from kpageflags a chunk at a time and kept in
    an LRU cache of `cache_chunks` chunks. Readers (the map, the inspector) take a
    cached chunk whatever its age and read only chunks never read (or evicted); the
    counting pass re-reads each chunk older than `max_age` seconds as it goes, so the
    cache is refreshed by the pass, a budget at a time, and a reader never waits for a
    re-read. `overlay` ranges (holes from /proc/iomem, offline memory blocks) override
    the flags' class. A counting pass over every zone (class counts per zone) runs in
    steps of a time budget, as the simulator's NodeCounts does. The cache is shared by
    the console's thread and the thread that reads the host (a lock)."""

    def __init__(self, path: str, count_path: str, nr_frames: int,
                 zones: list, overlay: list[tuple[int, int, int]] | None = None, *,
                 clock: Callable[[], float] = time.monotonic, max_age: float = 5.0,
                 cache_chunks: int = 128, chunk: int = CHUNK) -> None:
        self.path, self.count_path = path, count_path
        self.nr_frames = nr_frames
        self.zones = [z for z in zones if z.spanned]
        self.overlay = sorted(overlay or [])
        self.clock, self.max_age = clock, max_age
        self.cache_chunks, self.chunk = cache_chunks, chunk
        self._cache: OrderedDict[int, tuple[float, tuple]] = OrderedDict()
        self._lock = threading.Lock()
        self.counts: dict[int, np.ndarray] = {}  # zid -> frames per class (last pass)
        self.passes = 0
        self.pass_seconds = 0.0  # wall time of the last complete pass
        self._gen = None
        self.why: str | None = None
        self.available = self._probe()

    def _probe(self) -> bool:
        try:
            read_entries(self.path, 0, 1)
        except OSError as e:
            self.why = why_unreadable(self.path, e)
            return False
        return True

    # ------------------------------------------------------------ frames
    def _chunk(self, c: int, fresh: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(classes, kinds, flags) of chunk c: from the cache (fresh: only when younger
        than max_age), else read now."""
        with self._lock:
            now = self.clock()
            hit = self._cache.get(c)
            if hit is not None and (not fresh or now - hit[0] <= self.max_age):
                self._cache.move_to_end(c)
                return hit[1]
            return self._read_chunk(c, now)

    def _read_chunk(self, c: int, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = c * self.chunk
        n = min(self.chunk, self.nr_frames - a)
        raw = read_entries(self.path, a, n)
        if raw.size < n:  # past the end of the file: frames without a struct page
            raw = np.concatenate([raw, np.full(n - raw.size, _bit("nopage"), np.uint64)])
        out = classify(raw)
        for lo, hi, cls in self.overlay:
            s, e = max(lo, a), min(hi, a + n)
            if s < e:
                out[0][s - a:e - a] = cls
                out[1][s - a:e - a] = K_OFFLINE
        self._cache[c] = (now, out)
        self._cache.move_to_end(c)
        while len(self._cache) > self.cache_chunks:
            self._cache.popitem(last=False)
        return out

    def _span(self, a: int, b: int, which: int, fresh: bool = False) -> np.ndarray:
        a, b = max(0, int(a)), min(self.nr_frames, int(b))
        if b <= a:
            return np.zeros(0, np.uint8)
        c0, c1 = a // self.chunk, (b - 1) // self.chunk
        if c0 == c1:
            base = c0 * self.chunk
            return self._chunk(c0, fresh)[which][a - base:b - base]
        parts = []
        for c in range(c0, c1 + 1):
            base = c * self.chunk
            arr = self._chunk(c, fresh)[which]
            parts.append(arr[max(a, base) - base:min(b, base + arr.size) - base])
        return np.concatenate(parts)

    def gather(self, pfns: np.ndarray, which: int, fill: int) -> np.ndarray:
        """Classes (0), kinds (1) or flags (2) of arbitrary frames (any shape), one
        cached chunk at a time (grouped by a sort: no pass over the frames per chunk);
        frames outside the map get `fill`."""
        pfns = np.asarray(pfns, np.int64)
        flat = pfns.ravel()
        out = np.full(flat.shape, fill, np.uint8)
        ok = np.flatnonzero((flat >= 0) & (flat < self.nr_frames))
        if ok.size:
            chunk = flat[ok] // self.chunk
            order = np.argsort(chunk, kind="stable")
            cs = chunk[order]
            cut = np.flatnonzero(np.diff(cs)) + 1
            for lo, hi in zip(np.concatenate(([0], cut)).tolist(),
                              np.concatenate((cut, [cs.size])).tolist()):
                c = int(cs[lo])
                idx = ok[order[lo:hi]]
                out[idx] = self._chunk(c)[which][flat[idx] - c * self.chunk]
        return out.reshape(pfns.shape)

    def classes(self, a: int, b: int) -> np.ndarray:
        """The class (CLASSES index) of frames [a, b)."""
        return self._span(a, b, 0)

    def kinds(self, a: int, b: int) -> np.ndarray:
        """The simulator's kind (K_*) of frames [a, b)."""
        return self._span(a, b, 1)

    def flags(self, a: int, b: int) -> np.ndarray:
        """The simulator's flag bits (PG_*) of frames [a, b)."""
        return self._span(a, b, 2)

    def raw(self, pfn: int) -> int:
        """One frame's kpageflags word (read now)."""
        return int(read_entries(self.path, int(pfn), 1)[0])

    def mapcount(self, pfn: int) -> int | None:
        """/proc/kpagecount of one frame; None when unreadable."""
        try:
            a = read_entries(self.count_path, int(pfn), 1)
        except OSError:
            return None
        return int(a[0]) if a.size else None

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    # ------------------------------------------------------------ counting
    def _pass(self):
        t0 = time.perf_counter()
        spent = 0.0
        out: dict[int, np.ndarray] = {}
        for z in self.zones:
            cnt = np.zeros(NCLASS, np.int64)
            for a in range(z.start_pfn, z.end_pfn, self.chunk):
                b = min(z.end_pfn, a + self.chunk)
                cnt += np.bincount(self._span(a, b, 0, fresh=True), minlength=NCLASS)[:NCLASS]
                spent = time.perf_counter() - t0
                yield
            out[z.zid] = cnt
        self.counts = out
        self.passes += 1
        self.pass_seconds = spent

    def step(self, budget_s: float = 0.004) -> bool:
        """Count for about budget_s seconds (at least one chunk). True when a pass ended."""
        if not self.available:
            return False
        if self._gen is None:
            self._gen = self._pass()
        if advance(self._gen, budget_s):
            self._gen = None
            return True
        return False

    def run(self) -> None:
        """A whole pass now."""
        if not self.available:
            return
        self._gen = None
        for _ in self._pass():
            pass

    def zone_counts(self, zid: int) -> dict[str, int]:
        cnt = self.counts.get(zid)
        if cnt is None:
            return {}
        return {CLASSES[i]: int(c) for i, c in enumerate(cnt) if c}


# ------------------------------------------------------------------ pagemap

def read_pagemap(root: str, pid: int, start: int, npages: int, page_size: int
                 ) -> np.ndarray:
    """pagemap entries of npages virtual pages from address `start` (OSError when the
    process cannot be read)."""
    return read_entries(os.path.join(root, "proc", str(pid), "pagemap"),
                        start // page_size, npages)


def pagemap_pfns(entries: np.ndarray) -> np.ndarray:
    """PFN per entry, -1 where the page is not present (or its PFN is hidden: 0)."""
    e = np.asarray(entries, np.uint64)
    pfn = (e & PM_PFN).astype(np.int64)
    present = (e & PM_PRESENT) != 0
    return np.where(present & ~((e & PM_SWAP) != 0) & (pfn != 0), pfn, -1)


def present(entries: np.ndarray) -> np.ndarray:
    e = np.asarray(entries, np.uint64)
    return ((e & PM_PRESENT) != 0) & ((e & PM_SWAP) == 0)
