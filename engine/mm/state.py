"""The machine's state: what Linux keeps in mmzone.h, mm_types.h and sched.h.

Every mm/ and runtime/ module takes a `Kernel` (the state below plus lookups that
only read it) as its first argument; the public facade `engine.Machine` subclasses
it and sits on top. This module imports nothing from the rest of mm/, so the
engine's import graph points down to it and has no cycle.

Page frames are numpy arrays indexed by PFN (`Frames`); nodes, zones and memory
blocks are PFN ranges; an address space (`Process`) has VMAs over one sparse page
table (`PageTable`), as mm->pgd; page-cache objects and driver regions
(`Backing`) index their pages in the same kind of table."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..constants import (
    EINVAL,
    ENODEV,
    EPERM,
    ESRCH,
    K_ANON,
    K_FILE,
    K_KERNEL,
    K_PFNMAP,
    MIGRATE_BATCH,
    MODE_NAMES,
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_F_NUMA_BALANCING,
    MPOL_F_RELATIVE_NODES,
    MPOL_F_STATIC_NODES,
    MPOL_INTERLEAVE,
    MPOL_LOCAL,
    MPOL_PREFERRED,
    VM_EXEC,
    VM_IO,
    VM_LOCKED,
    VM_LOCKONFAULT,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    ZONE_MOVABLE,
    ZONE_NAMES,
    PG_isolated,
    PG_pinned,
    oserror,
)
from ..heap import small_pages
from ..nodemask import nodes_str
from ..vec import counts
from .era import MODERN, Era
from .pagetable import NO_PAGE, PTE_DTYPE, TOKEN_MUL, PageTable, tokens

__all__ = ["NO_PAGE", "PTE_DTYPE", "Node", "Zone", "Frames", "Policy", "Backing", "AnonVMA",
           "VMA", "Process", "Driver", "Cred", "SimClock", "CostModel", "Kernel",
           "compute_watermarks", "drive"]


# ================================================================ nodes and zones

@dataclass
class Node:
    id: int
    cpus: tuple[int, ...]
    start_pfn: int
    spanned: int  # frames from start_pfn to the end of the node's last zone

    @property
    def end_pfn(self) -> int:
        return self.start_pfn + self.spanned


@dataclass
class Zone:
    node: int
    name: str
    zone_type: int  # index into ZONE_NAMES
    start_pfn: int
    spanned: int
    present: int = 0
    managed: int = 0
    free: int = 0
    wmark_min: int = 0
    wmark_low: int = 0
    wmark_high: int = 0
    zid: int = 0  # index in Kernel.zones
    cursor: int = 0  # next-fit allocation cursor (relative to start_pfn)
    isolated: int = 0  # isolated pageblocks (memory blocks) in this zone
    isolated_free: int = 0  # free frames inside isolated blocks (not allocatable)

    @property
    def end_pfn(self) -> int:
        return self.start_pfn + self.spanned

    @property
    def online(self) -> bool:
        return self.present > 0

    @property
    def movable(self) -> bool:
        return self.zone_type == ZONE_MOVABLE

    @property
    def label(self) -> str:
        return f"node{self.node}/{self.name}"

    def available(self, wmark: str) -> int:
        """Free pages above the watermark (`none`: all free pages)."""
        mark = {"low": self.wmark_low, "min": self.wmark_min, "high": self.wmark_high,
                "none": 0}[wmark]
        return max(0, self.free - mark)


def compute_watermarks(zones: list[Zone], page_size: int, modern: bool) -> None:
    """__setup_per_zone_wmarks(): min_free_kbytes = clamp(sqrt(lowmem_kB * 16), 128, 262144)
    (2006 capped at 65536); each lowmem zone gets its share of pages_min; ZONE_MOVABLE (like
    highmem) gets managed/1024 clamped to [32, 128]. Modern: delta = max(min/4,
    managed * watermark_scale_factor(10) / 10000); 2006: low = 5/4 min, high = 3/2 min."""
    page_kb = page_size // 1024
    lowmem_pages = sum(z.managed for z in zones if not z.movable)
    lowmem_kb = lowmem_pages * page_kb
    min_free_kbytes = int(math.isqrt(lowmem_kb * 16)) if lowmem_kb else 128
    min_free_kbytes = max(128, min(min_free_kbytes, 262144 if modern else 65536))
    pages_min = min_free_kbytes // page_kb
    for z in zones:
        if z.managed == 0:
            z.wmark_min = z.wmark_low = z.wmark_high = 0
            continue
        if z.movable:
            zmin = max(32, min(z.managed // 1024, 128))
        else:
            zmin = pages_min * z.managed // lowmem_pages if lowmem_pages else 0
        z.wmark_min = zmin
        if modern:
            delta = max(zmin // 4, z.managed * 10 // 10000)
            z.wmark_low = zmin + delta
            z.wmark_high = zmin + 2 * delta
        else:
            z.wmark_low = zmin + (zmin >> 2)
            z.wmark_high = zmin + (zmin >> 1)


# ================================================================ page frames

# what a frame's layout is: measured on the 2-CPU VM of README "Speed and scale"
# (numpy 2.4, 16 Mi frames, 1 Mi distinct random frames; minimum or median of 9):
#
#   layout                                  copy src->dst  clear  scan kind  OR per cell
#   7 arrays (18 B, engine v1)                    127 ms   82 ms     1.1 ms      1.2 ms
#   one 16 B record of every field                 20 ms  6.5 ms      21 ms       17 ms
#   kind|flags 2 B + 16 B record (this one)        37 ms   11 ms     2.3 ms      1.1 ms
#   4 + 8 + 4 B arrays                             71 ms   25 ms       5 ms      2.3 ms
#   12, 14 or 15 B records                    210-240 ms       -         -           -
#
# (scan kind: count the free frames, a slice of 256 Ki frames at a time; OR per cell:
# kind and flags ORed over every cell of the console's map of a 64 GiB machine.)
# A random access costs a cache and TLB miss per array touched, so the migration
# path wants few arrays; numpy copies records of 1, 2, 4, 8 and 16 bytes with fast
# loops and any other size with a generic one ten times slower, so records are a
# power of two. The one-record layout copies fastest, but the console's map, check()
# and the views scan kind and flags over every frame, and a strided scan of a 16 B
# record reads 16 times the bytes: its OR per map cell alone (17 ms at 64 GiB) is
# more than a whole redraw may take (10 ms). So kind and flags sit together in a
# 2-byte array (`kf`, read as one uint16 word: kind | flags << 8) that scans at
# memory speed and holds what isolation and the planner read and write, and the
# rest in a 16-byte record (`rec`): 18 bytes a frame, two random accesses to copy
# one. What it costs: the map's sampled look-up of each sample's mapping reads two
# cache lines of records per run of 8 samples, where a 4-byte array needed one
# (3.7 ms a redraw against 1.2). refcount is not stored: it is what Linux's rule
# makes it (refcount_rule). Resident on the reference machine, frames and page
# tables together: 17.7 bytes a frame (free frames' records are never touched; see
# also Frames.release and PageTable's seeded chunks).

KF_DTYPE = np.dtype([("kind", "u1"), ("flags", "u1")])
REC_DTYPE = np.dtype([("mapping", "<i4"), ("index", "<i4"), ("content", "<u4"),
                      ("mapcount", "<i2"), ("spare", "<u2")])

# a reference the frame's holder keeps: the page cache's, the driver's, the kernel's
_HOLDER_REF = np.zeros(256, np.int16)
_HOLDER_REF[[K_KERNEL, K_FILE, K_PFNMAP]] = 1
# the kinds of frames something holds (their record is theirs; free and offline
# frames keep a stale one)
HELD = np.zeros(256, bool)
HELD[[K_KERNEL, K_ANON, K_FILE, K_PFNMAP]] = True


def refcount_rule(kind, flags, mapcount) -> np.ndarray:
    """page_count() as Linux keeps it, derived: one reference per page-table entry,
    one for the page cache, a driver or the kernel holding the frame, one while a
    migration has it isolated, one for a long-term pin; 0 for a frame nothing holds."""
    fl = np.asarray(flags)
    kind = np.asarray(kind)
    mc = np.where(HELD[kind], mapcount, 0).astype(np.int16)
    return (mc + _HOLDER_REF[kind] + ((fl & PG_isolated) != 0)
            + ((fl & PG_pinned) != 0)).astype(np.int16)


class Refcounts:
    """`Frames.refcount`: the derived reference counts, read like an array
    (`f.refcount[pfns]` computes the rule for those frames only). Writing raises: a
    reference is taken by changing what it derives from (a mapping, the holder, the
    isolation or pin flag)."""

    dtype = np.dtype(np.int16)

    def __init__(self, f: Frames) -> None:
        self._f = f

    def __getitem__(self, idx) -> np.ndarray:
        f = self._f
        return refcount_rule(f.kind[idx], f.flags[idx], f.mapcount[idx])

    def __setitem__(self, idx, value) -> None:
        raise TypeError("refcount is derived (mapcount, holder, isolation, pin): change "
                        "those, not the count")

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        a = self[:]
        return a if dtype is None else a.astype(dtype)

    def __len__(self) -> int:
        return self._f.n

    @property
    def shape(self) -> tuple[int]:
        return (self._f.n,)

    def copy(self) -> np.ndarray:
        return self[:]

    def tobytes(self) -> bytes:
        return self[:].tobytes()


class Frames:
    """One entry per PFN, in two arrays (see the measurements above): `kf`, kind and
    flags (2 bytes), and `rec`, mapping, index, content and mapcount (16 bytes).
    `kind`, `flags`, `mapping`, `index`, `content` and `mapcount` are numpy views of
    their fields (read and written like arrays); `refcount` is derived (Refcounts).
    A frame nothing holds (free or offline: not HELD) has no flags, and a record
    that means nothing (what it held last: `release`); read a record only for a
    frame that is held.
    Scans over many frames read `words()` or `kinds()`, contiguous, not the strided
    field views (5 times slower); a migration moves whole entries (`take`, `put`)."""

    # the snapshot's blobs (frames.NAME), one per field with its dtype: the file
    # format, unchanged since engine v1; refcount is written derived and checked on load
    FIELDS = ("kind", "flags", "mapping", "index", "mapcount", "refcount", "content")
    DTYPES = (np.uint8, np.uint8, np.int32, np.int32, np.int16, np.int16, np.uint32)
    STORED = ("kind", "flags", "mapping", "index", "mapcount", "content")

    def __init__(self, n: int):
        self.n = n
        # np.zeros: calloc'd, so the frames nothing writes (free memory) cost no RSS
        self.kf = np.zeros(n, KF_DTYPE)
        self.rec = np.zeros(n, REC_DTYPE)
        small_pages(self.kf)  # (what is touched, a little at a time: see heap.py)
        small_pages(self.rec)
        self._bind()

    def _bind(self) -> None:
        self.kind = self.kf["kind"]  # K_*: what holds the frame
        self.flags = self.kf["flags"]  # PG_* bits
        self.mapping = self.rec["mapping"]  # anon_vma / backing id (kernel use for K_KERNEL)
        self.index = self.rec["index"]  # page index in its mapping object
        self.content = self.rec["content"]  # what the page holds (0: never written)
        self.mapcount = self.rec["mapcount"]  # page-table entries mapping it
        self.refcount = Refcounts(self)

    def nbytes(self) -> int:
        return self.kf.nbytes + self.rec.nbytes

    # a copy (Machine.clone's deepcopy, pickle) copies the two arrays and binds new views
    def __getstate__(self) -> dict:
        return {"n": self.n, "kf": self.kf, "rec": self.rec}

    def __setstate__(self, state: dict) -> None:
        self.n, self.kf, self.rec = state["n"], state["kf"], state["rec"]
        self._bind()

    # ------------------------------------------------------------ whole entries
    def clear(self, pfns) -> None:
        """Every field 0 (a free frame with a clean record: K_FREE is 0)."""
        self.release(pfns)
        self.clear_records(pfns)

    def release(self, pfns) -> None:
        """Free frames: kind K_FREE, no flags; the record stays as it was (a freed
        page keeps its bytes), so freeing writes 2 bytes a frame, not 18. Whoever
        hands a frame out again writes its record (alloc_frames clears it, a
        migration copies a whole entry over it)."""
        # (numpy writes a scalar into a structured array field by field: through a
        # plain view of the same bytes it is a memset, 50 times faster for a range)
        self.kf.view(np.uint16)[pfns] = 0

    def clear_records(self, pfns) -> None:
        """Zero the records of frames (a slice, or PFNs)."""
        if isinstance(pfns, slice):
            s, e, _ = pfns.indices(self.n)
            self.rec.view(np.uint64)[2 * s:2 * e] = 0
        else:
            self.rec[pfns] = 0

    def take(self, pfns) -> tuple[np.ndarray, np.ndarray]:
        """The entries of these frames (copies): (kf, rec)."""
        return self.kf[pfns], self.rec[pfns]

    def put(self, pfns, kf: np.ndarray, rec: np.ndarray) -> None:
        self.kf[pfns] = kf
        self.rec[pfns] = rec

    # ------------------------------------------------------------ scans
    def words(self, a: int = 0, b: int | None = None) -> np.ndarray:
        """kind | flags << 8 of frames [a, b) as uint16 (a view: read only)."""
        return self.kf[a:b].view(np.uint16)

    def kinds(self, a: int = 0, b: int | None = None) -> np.ndarray:
        """The kinds of frames [a, b), contiguous (a copy: the low byte of each word)."""
        return self.words(a, b).astype(np.uint8)

    def flags_of(self, a: int = 0, b: int | None = None) -> np.ndarray:
        """The flags of frames [a, b), contiguous (a copy)."""
        return (self.words(a, b) >> 8).astype(np.uint8)

    # ------------------------------------------------------------ snapshots
    def blobs(self) -> dict[str, np.ndarray]:
        """The snapshot's arrays, one per FIELDS entry (refcount derived). Each array
        is read a slice at a time, through a copy small enough for the cache: a
        strided field read straight from 16M records is several times slower."""
        out = {name: np.empty(self.n, dt) for name, dt in zip(self.FIELDS, self.DTYPES)}
        for s in range(0, self.n, COPY_SLICE):
            e = min(self.n, s + COPY_SLICE)
            for name in self.STORED:  # (the slice's records: read once, then in cache)
                out[name][s:e] = getattr(self, name)[s:e]
            out["refcount"][s:e] = refcount_rule(out["kind"][s:e], out["flags"][s:e],
                                                 out["mapcount"][s:e])
        return out

    @classmethod
    def from_blobs(cls, n: int, arrays: dict[str, np.ndarray]) -> Frames:
        """Frames from the snapshot's arrays (checked: shape, dtype, and refcount equal
        to the rule). Raises ValueError naming what does not fit."""
        for name, dt in zip(cls.FIELDS, cls.DTYPES):
            a = arrays[name]
            if a.shape != (n,) or a.dtype != dt:
                raise ValueError(f"frames.{name} is {a.shape} {a.dtype}, expected ({n},) "
                                 f"{np.dtype(dt)}")
        f = cls(n)
        stored = arrays["refcount"]
        # assembled a slice at a time in a cache-sized buffer, then copied whole
        kf = np.empty(min(n, COPY_SLICE), KF_DTYPE)
        rec = np.zeros(min(n, COPY_SLICE), REC_DTYPE)
        for s in range(0, n, COPY_SLICE):
            e = min(n, s + COPY_SLICE)
            a, b = kf[:e - s], rec[:e - s]
            for name in ("kind", "flags"):
                a[name] = arrays[name][s:e]
            for name in ("mapping", "index", "content", "mapcount"):
                b[name] = arrays[name][s:e]
            bad = np.flatnonzero(refcount_rule(arrays["kind"][s:e], arrays["flags"][s:e],
                                               arrays["mapcount"][s:e]) != stored[s:e])
            if bad.size:
                pf = s + int(bad[0])
                f.kf[pf], f.rec[pf] = a[bad[0]], b[bad[0]]
                raise ValueError(f"frames.refcount of frame {pf} is {int(stored[pf])}, but "
                                 f"its mappings, holder, isolation and pin make "
                                 f"{int(f.refcount[pf])}")
            # (calloc'd: zero slices are left untouched; plain views copy as memcpy)
            if a.view(np.uint16).any():
                f.kf.view(np.uint16)[s:e] = a.view(np.uint16)
            if b.view(np.uint64).any():
                f.rec.view(np.uint64)[2 * s:2 * e] = b.view(np.uint64)
        return f


SCAN_SLICE = 1 << 20  # frames a scan reads at a time: its temporaries stay in cache
COPY_SLICE = 1 << 16  # frames copied field by field through one buffer (1 MiB: in L2)


# ================================================================ policies

@dataclass(frozen=True)
class Policy:
    """struct mempolicy: a mode, its effective nodes, mode flags, and the nodes the
    user gave (STATIC/RELATIVE remember them). MPOL_DEFAULT is None, not a Policy."""

    mode: int
    nodes: tuple[int, ...] = ()
    flags: int = 0  # MPOL_F_STATIC_NODES / RELATIVE_NODES / NUMA_BALANCING
    user_nodes: tuple[int, ...] = ()

    def describe(self, era_formats: str = "modern") -> str:
        """The policy string of /proc/PID/numa_maps (mpol_to_str)."""
        if self.mode == MPOL_DEFAULT:
            return "default"
        if era_formats == "2006":
            name = {MPOL_PREFERRED: "prefer", MPOL_BIND: "bind", MPOL_INTERLEAVE: "interleave"}
            return f"{name.get(self.mode, MODE_NAMES[self.mode])}={nodes_str(self.nodes)}"
        if self.mode == MPOL_LOCAL:
            return "local"
        s = MODE_NAMES[self.mode]
        fl = []
        if self.flags & MPOL_F_STATIC_NODES:
            fl.append("static")
        if self.flags & MPOL_F_RELATIVE_NODES:
            fl.append("relative")
        if self.flags & MPOL_F_NUMA_BALANCING:
            fl.append("balancing")
        if fl:
            s += "=" + "|".join(fl)
        return f"{s}:{nodes_str(self.nodes)}"


# ================================================================ address spaces

@dataclass(eq=False)
class Backing:
    """A shared object pages are indexed in: a page-cache file or a driver's
    PFN-mapped region (its address_space / i_mmap). Its table maps page index to
    PFN and to the content last written (the integrity oracle)."""

    id: int
    name: str
    kind: str  # "file" | "driver"
    npages: int = 0  # the object's size in pages
    pt: PageTable = field(default_factory=PageTable)
    vmas: list = field(default_factory=list)
    # shmem/tmpfs (shared anonymous memory, /dev/shm files): pages are allocated by the
    # object's shared policy (struct shared_policy: [start, end) page-index ranges ->
    # Policy, sorted, disjoint), not by a VMA's
    shmem: bool = False
    shared_policy: list = field(default_factory=list)

    def grow(self, n: int) -> None:
        self.npages = max(self.npages, int(n))

    def pages(self, idx) -> np.ndarray:
        """PFN of each page index (NO_PAGE when not cached)."""
        return self.pt.get(idx, "pfn", 0, self.npages)

    def set_pages(self, idx, pfns) -> None:
        self.pt.set(idx, pfns, "pfn", 0, self.npages)

    def expects(self, idx) -> np.ndarray:
        return self.pt.get(idx, "expect", 0, self.npages)

    def set_expects(self, idx, vals) -> None:
        self.pt.set(idx, vals, "expect", 0, self.npages)

    def present(self) -> tuple[np.ndarray, np.ndarray]:
        """(page indexes, PFNs) of the cached pages."""
        return self.pt.present(0, self.npages)


@dataclass(eq=False)
class AnonVMA:
    """anon_vma: the reverse-map root of a process's anonymous pages. page->index is
    stored relative to `base_vpn`. `inflight` counts isolated pages whose migration
    holds it alive after its VMAs are gone (the modern anon_vma refcount rule)."""

    id: int
    pid: int
    base_vpn: int
    vmas: list = field(default_factory=list)  # every VMA linked to it (its anon_vma_chains)
    inflight: int = 0


@dataclass(eq=False)
class VMA:
    """vm_area_struct: [start, end) of an address space, its flags, policy and the
    objects its pages belong to. Its page-table entries live in the owner's table."""

    start: int
    end: int
    flags: int
    policy: Policy | None = None
    anon: AnonVMA | None = None  # its own anon_vma: where its new anonymous pages go
    backing: Backing | None = None
    pgoff: int = 0  # index of the first page in its backing (file/driver)
    mm: Process | None = None
    # anon_vma_chain: every anon_vma the VMA is linked into -- its own, and after fork()
    # its parent's, whose COW-shared pages it maps (an rmap walk of those finds it)
    chain: list = field(default_factory=list)

    @property
    def shift(self) -> int:
        return self.mm.page_shift

    @property
    def vpn(self) -> int:
        return self.start >> self.mm.page_shift

    @property
    def npages(self) -> int:
        return (self.end - self.start) >> self.mm.page_shift

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def shared(self) -> bool:
        return bool(self.flags & VM_SHARED)

    @property
    def locked(self) -> bool:
        return bool(self.flags & VM_LOCKED)

    @property
    def pfnmap(self) -> bool:
        return bool(self.flags & VM_PFNMAP)

    @property
    def private(self) -> bool:
        """Private pages whose content the VMA's own oracle (expect) records."""
        return not self.flags & (VM_SHARED | VM_PFNMAP)

    @property
    def kind(self) -> str:
        if self.pfnmap:
            return "driver"
        if self.backing is not None:
            return "file"
        return "anon"

    def flag_string(self) -> str:
        s = "".join(c if self.flags & b else "-" for c, b in
                    (("r", VM_READ), ("w", VM_WRITE), ("x", VM_EXEC)))
        s += "s" if self.shared else "p"
        extra = [n for n, b in (("locked", VM_LOCKED), ("onfault", VM_LOCKONFAULT),
                                ("io", VM_IO), ("pfnmap", VM_PFNMAP)) if self.flags & b]
        return s + (" " + ",".join(extra) if extra else "")

    # page-table access: offsets are page offsets inside the VMA; a VMA whose table is
    # one run of chunks (touched in one go) is read and written as a slice of it
    def ptes(self, offs) -> np.ndarray:
        v0 = self.vpn
        sp = self.mm.pt.span(v0, v0 + self.npages)
        if sp is not None:
            return sp[offs].astype(np.int64)
        return self.mm.pt.get(np.asarray(offs, np.int64) + v0, "pfn", v0, v0 + self.npages)

    def pte_range(self, o0: int, o1: int) -> np.ndarray:
        """Entries [o0, o1) as a new array (a copy)."""
        v0 = self.vpn
        return self.mm.pt.dense(v0 + o0, v0 + o1)

    def set_ptes(self, offs, pfns) -> None:
        v0 = self.vpn
        sp = self.mm.pt.span(v0, v0 + self.npages)
        if sp is not None:
            sp[offs] = pfns
            return
        self.mm.pt.set(np.asarray(offs, np.int64) + v0, pfns, "pfn", v0, v0 + self.npages)

    def expects(self, offs) -> np.ndarray:
        v0 = self.vpn
        return self.mm.pt.get(np.asarray(offs, np.int64) + v0, "expect", v0,
                              v0 + self.npages)

    def set_expects(self, offs, vals) -> None:
        v0 = self.vpn
        self.mm.pt.set(np.asarray(offs, np.int64) + v0, vals, "expect", v0,
                       v0 + self.npages)

    def present(self, o0: int = 0, o1: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, PFNs) of the entries of [o0, o1) that map a frame (the zero page
        included), ascending."""
        v0 = self.vpn
        keys, pfns = self.mm.pt.present(v0 + o0, v0 + (self.npages if o1 is None else o1))
        return keys - v0, pfns

    def frames(self, o0: int = 0, o1: int | None = None) -> np.ndarray:
        """The PFNs mapped in [o0, o1) (the zero page included), by offset."""
        v0 = self.vpn
        return self.mm.pt.frames(v0 + o0, v0 + (self.npages if o1 is None else o1))

    def written(self) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, expected contents) of the private pages written so far."""
        v0 = self.vpn
        keys, vals = self.mm.pt.written(v0, v0 + self.npages)
        return keys - v0, vals


@dataclass(eq=False)
class Process:
    pid: int
    name: str
    uid: int
    node: int
    mems_allowed: frozenset
    page_shift: int = 12
    policy: Policy | None = None
    vmas: list = field(default_factory=list)  # sorted by start
    pt: PageTable = field(default_factory=PageTable)  # the address space's page table
    has_mm: bool = True
    def_flags: int = 0  # mlockall(MCL_FUTURE) sets VM_LOCKED (| VM_LOCKONFAULT) here
    memlock_cur: int = 8 << 20  # RLIMIT_MEMLOCK soft limit in bytes (RLIM_INFINITY: none)
    memlock_max: int = 8 << 20  # RLIMIT_MEMLOCK hard limit
    il_next: int = 0  # interleave cursor for task-policy allocations without a VMA
    stalls: int = 0  # accesses that waited on a page under migration
    # (starts, ends) of `vmas` as arrays, built on demand and kept in step by memory.py's
    # VMA book-keeping (insert, unlink, set_end): derived, never saved
    bounds: tuple | None = field(default=None, repr=False, compare=False)

    def find_vma(self, addr: int) -> VMA | None:
        """vma_lookup(): the VMA containing addr."""
        i = self._index_above(addr)
        if i < len(self.vmas) and self.vmas[i].start <= addr:
            return self.vmas[i]
        return None

    def find_vma_above(self, addr: int) -> VMA | None:
        """find_vma(): first VMA with end > addr (no containment check; 2.6.18 used this)."""
        i = self._index_above(addr)
        return self.vmas[i] if i < len(self.vmas) else None

    def _index_above(self, addr: int) -> int:
        lo, hi = 0, len(self.vmas)
        while lo < hi:  # binary search: VMAs are sorted and disjoint
            mid = (lo + hi) // 2
            if self.vmas[mid].end <= addr:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def vma_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) of the VMAs as arrays (for vectorised lookups; read only)."""
        if self.bounds is None:
            n = len(self.vmas)
            self.bounds = (np.fromiter((v.start for v in self.vmas), np.int64, n),
                           np.fromiter((v.end for v in self.vmas), np.int64, n))
        return self.bounds

    def __getstate__(self) -> dict:
        # a copy (clone, pickle) rebuilds the derived bounds on demand
        return {**self.__dict__, "bounds": None}



# ================================================================ drivers

@dataclass(eq=False)
class Driver:
    """A simulated driver: a PFN-mapped region (uncached, framebuffer) with an
    optional vm_ops->migrate hook, or an RDMA driver that pins pages long-term."""

    name: str
    kind: str  # uncached | framebuffer (PFN-mapped region) | rdma (long-term pins)
    node: int
    npages: int
    has_hook: bool = False
    hook_enabled: bool = False
    backing: Backing | None = None  # its region (PFN-mapped kinds)
    # rdma: memory registrations (pid, addr, length, PFNs pinned), each alive until
    # deregistered or its process exits
    pins: list = field(default_factory=list)

    @property
    def pfnmap(self) -> bool:
        return self.kind != "rdma"


# ================================================================ credentials, time, cost

@dataclass(frozen=True)
class Cred:
    """The credentials a call runs with (struct cred, plus the caller's cpuset)."""

    uid: int
    cap_sys_nice: bool
    mems_allowed: frozenset
    node: int
    pid: int | None = None

    @property
    def cap_sys_admin(self) -> bool:
        return self.uid == 0


class SimClock:
    """Simulated time in ns. Everything that takes time goes through advance()."""

    __slots__ = ("ns",)

    def __init__(self, ns: int = 0) -> None:
        self.ns = int(ns)

    def advance(self, ns: float) -> None:
        self.ns += int(ns)

    def advance_to(self, t: int) -> None:
        """Catch up with a point in time (a workload that ran ahead); never back."""
        self.ns = max(self.ns, int(t))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SimClock) and other.ns == self.ns

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"SimClock({self.ns})"


SHMEM_DIRS = ("/dev/shm/",)  # files there are on tmpfs: shmem objects with shared policies

REF_DISTANCE = 21  # the measured 2-socket machine's remote distance


@dataclass
class CostModel:
    """What simulated operations cost, from measured Linux (engine/mm/cost.py)."""

    page_ns_4k: float = 1200.0  # per 4 KiB page, remote (distance 21), flush amortised
    copy_share: float = 0.25  # the copy part, which scales with distance
    wait_ns: int = 20_000  # waiting for a page lock or writeback to clear
    tlb_flush_ns: float = 2500.0  # one TLB shootdown (IPIs to the mm's CPUs)
    local_access_ns: float = 80.0  # a local DRAM access; remote scales with distance
    hint_fault_ns: float = 1500.0  # a NUMA hint fault: trap, task_numa_fault(), return
    scan_ns_per_page: float = 15.0  # change_prot_numa(): arming one page for a hint fault
    damon_check_ns: float = 250.0  # DAMON: one sampled page's Accessed-bit check and reset
    query_ns_per_page: float = 60.0  # move_pages(nodes=NULL): one page-table lookup
    syscall_ns: float = 1000.0  # entering and leaving one system call

    def per_page_ns(self, page_size: int, distance: np.ndarray) -> np.ndarray:
        scale = page_size / 4096
        fixed = self.page_ns_4k * (1 - self.copy_share)
        copy = self.page_ns_4k * self.copy_share * (distance / REF_DISTANCE) * scale
        return fixed + copy

    def flushes(self, npages: int, modern: bool) -> int:
        """TLB shootdowns for migrating npages in one batch call: one per 512-page
        batch in modern kernels, one per page in the 2006 kernels."""
        if npages <= 0:
            return 0
        return -(-npages // MIGRATE_BATCH) if modern else npages

    def access_ns(self, distance) -> np.ndarray:
        """Latency of one access at SLIT distance d: 80 ns x d / 10."""
        return self.local_access_ns * np.asarray(distance, dtype=np.float64) / 10.0

    def stall_ns(self) -> float:
        """A task that hits a migration entry sleeps until the page's batch is done:
        on average half a batch of copies."""
        return self.page_ns_4k * MIGRATE_BATCH / 2


def drive(gen):
    """Run a batch generator to completion and return its value (the synchronous
    form of every long operation; a job steps the same generator)."""
    try:
        while True:
            next(gen)
    except StopIteration as e:
        return e.value


# ================================================================ the kernel state

class Kernel:
    """The state of a NUMA machine and its kernel, with read-only lookups. The
    operations live in the mm/ modules, which take a Kernel; `engine.Machine` adds
    the runtime subsystems and the public API."""

    def __init__(self) -> None:
        self.name = "machine"
        self.page_size = 4096
        self.page_shift = 12
        self._era: Era = MODERN
        self.nodes_list: list[Node] = []
        self.zones: list[Zone] = []
        self.distances = np.zeros((0, 0), np.uint8)
        self.f = Frames(0)
        self.block_pages = 32768
        self.blk_state = np.zeros(0, np.uint8)
        self.blk_isolated = np.zeros(0, bool)
        self.procs: dict[int, Process] = {}
        self.mappings: dict[int, AnonVMA | Backing] = {}  # rmap objects by id
        self.files: dict[str, Backing] = {}
        self.drivers_map: dict[str, Driver] = {}
        self.il_weights: dict[int, int] = {}
        self.numastat_arr = np.zeros((6, 0), np.int64)
        self.vmstat_counts: Counter = Counter()
        self.vmstat_extra: Counter = Counter()
        self.time = SimClock()
        self.cost = CostModel()
        self.seed = 0
        self.zero_pfn = -1
        self.isolated_pages = 0
        self.traffic: np.ndarray | None = None  # pages migrated, (source, target) node
        self.description: dict | None = None
        self.next_id = 1  # ids of rmap objects (anon_vmas, backings)
        self.write_seq = 0  # content tokens of writes
        self.next_pid = 1
        self._node_starts = np.zeros(0, np.int64)
        self._node_ids = np.zeros(0, np.int64)
        self._zone_starts = np.zeros(0, np.int64)
        self._zone_ids = np.zeros(0, np.int64)
        self._tabs: tuple | None = None

    # ------------------------------------------------------------ layout
    def layout(self, page_size: int, nodes: list[tuple[int, tuple, list[int]]],
               distances: np.ndarray, block_size: int) -> None:
        """nodes: (id, cpus, [pages per zone type]). Lays nodes out in PFN order."""
        self.page_size = page_size
        self.page_shift = page_size.bit_length() - 1
        self.block_pages = max(1, block_size // page_size)
        pfn = 0
        for nid, cpus, sizes in nodes:
            start = pfn
            for zt, npg in enumerate(sizes):
                z = Zone(node=nid, name=ZONE_NAMES[zt], zone_type=zt, start_pfn=pfn,
                         spanned=npg, present=npg, managed=npg, free=npg, zid=len(self.zones))
                self.zones.append(z)
                pfn += npg
            self.nodes_list.append(Node(id=nid, cpus=tuple(cpus), start_pfn=start,
                                        spanned=pfn - start))
        self.f = Frames(pfn)
        self.distances = distances
        nblk = (pfn + self.block_pages - 1) // self.block_pages
        self.blk_state = np.zeros(nblk, np.uint8)
        self.blk_isolated = np.zeros(nblk, bool)
        self.numastat_arr = np.zeros((6, self.nr_node_ids), np.int64)
        self.index_ranges()

    def index_ranges(self) -> None:
        """Rebuild the PFN -> node/zone lookup tables (after a layout or a load)."""
        ne = [n for n in self.nodes_list if n.spanned > 0]
        self._node_starts = np.array([n.start_pfn for n in ne], np.int64)
        self._node_ids = np.array([n.id for n in ne], np.int64)
        zs = [z for z in self.zones if z.spanned > 0]
        self._zone_starts = np.array([z.start_pfn for z in zs], np.int64)
        self._zone_ids = np.array([z.zid for z in zs], np.int64)
        # tables node/zone by (pfn >> shift): every node and zone boundary is a
        # multiple of 2**shift, so a gather replaces a binary search per frame
        bounds = [int(b) for b in np.concatenate([self._zone_starts, self._node_starts]) if b]
        bounds += [z.end_pfn for z in self.zones if z.spanned] + [self.nr_frames]
        shift = min((b & -b).bit_length() - 1 for b in bounds if b) if any(bounds) else 20
        shift = min(shift, 20)
        if shift < 6 or not self.nr_frames:
            self._tabs = None  # boundaries too fine: keep the binary search
            return
        base = np.arange(0, self.nr_frames, 1 << shift, dtype=np.int64)
        zt = self._zone_ids[np.searchsorted(self._zone_starts, base, side="right") - 1]
        nt = self._node_ids[np.searchsorted(self._node_starts, base, side="right") - 1]
        self._tabs = (shift, nt.astype(np.int64), zt.astype(np.int64))

    # ------------------------------------------------------------ topology
    @property
    def nodes(self) -> list[int]:
        return [n.id for n in self.nodes_list]

    @property
    def nr_node_ids(self) -> int:
        return max(self.nodes) + 1 if self.nodes_list else 0

    @property
    def nr_frames(self) -> int:
        return self.f.n

    @property
    def clock(self) -> int:
        """Simulated time in ns."""
        return self.time.ns

    @property
    def era(self) -> Era:
        return self._era

    @era.setter
    def era(self, era: Era) -> None:
        self._era = era
        compute_watermarks(self.zones, self.page_size, era.is_modern)

    def node(self, nid: int) -> Node:
        nid = int_arg(nid, "node")
        for n in self.nodes_list:
            if n.id == nid:
                return n
        raise oserror(ENODEV, f"no node {nid}")

    def zone_nodes(self) -> np.ndarray:
        """The node of each zone, by zone id."""
        return np.fromiter((z.node for z in self.zones), np.int64, len(self.zones))

    def distance(self, a: int, b: int) -> int:
        """node_distance(): the SLIT entry; a node that does not exist is ENODEV."""
        return int(self.distances[self.node(a).id, self.node(b).id])

    def node_zones(self, nid: int) -> list[Zone]:
        nid = int_arg(nid, "node")
        return [z for z in self.zones if z.node == nid]

    def zone(self, nid: int, name: str) -> Zone:
        if not isinstance(name, str):
            raise TypeError(f"zone must be a zone name, not {type(name).__name__}")
        for z in self.node_zones(nid):
            if z.name.lower() == str(name).lower():
                return z
        raise oserror(EINVAL, f"node {nid} has no zone {name!r}")

    def memory_nodes(self) -> list[int]:
        """Nodes in N_MEMORY: those with present memory."""
        return [n.id for n in self.nodes_list if self.node_has_memory(n.id)]

    def node_has_memory(self, nid: int) -> bool:
        nid = int_arg(nid, "node")
        return any(z.present > 0 for z in self.zones if z.node == nid)

    def node_available(self, nid: int, wmark: str = "min") -> int:
        nid = int_arg(nid, "node")
        return sum(max(0, z.available(wmark) - z.isolated_free) for z in self.node_zones(nid))

    def totalram_pages(self) -> int:
        return sum(z.managed for z in self.zones)

    def node_of(self, pfns) -> np.ndarray:
        pfns = np.asarray(pfns, dtype=np.int64)
        if self._tabs is not None:
            return self._tabs[1][pfns >> self._tabs[0]]
        i = np.searchsorted(self._node_starts, pfns, side="right") - 1
        return self._node_ids[i]

    def zone_of(self, pfns) -> np.ndarray:
        pfns = np.asarray(pfns, dtype=np.int64)
        if self._tabs is not None:
            return self._tabs[2][pfns >> self._tabs[0]]
        i = np.searchsorted(self._zone_starts, pfns, side="right") - 1
        return self._zone_ids[i]

    def page_align(self, n: int) -> int:
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"length must be an integer, not {type(n).__name__}")
        return (int(n) + self.page_size - 1) & ~(self.page_size - 1)

    def il_weight(self, nid: int) -> int:
        return int(self.il_weights.get(int_arg(nid, "node"), 1))

    # ------------------------------------------------------------ objects
    def driver(self, name: str) -> Driver:
        if not isinstance(name, str):
            raise TypeError(f"driver must be a driver name, not {type(name).__name__}")
        try:
            return self.drivers_map[name]
        except KeyError:
            raise oserror(EINVAL, f"no driver {name!r} (drivers: "
                                  f"{', '.join(self.drivers_map) or 'none'})") from None

    def driver_of(self, v: VMA) -> Driver | None:
        if v.backing is None:
            return None
        for d in self.drivers_map.values():
            if d.backing is v.backing:
                return d
        return None

    def next_mapping_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def new_backing(self, name: str, kind: str, npages: int) -> Backing:
        b = Backing(id=self.next_mapping_id(), name=name, kind=kind, npages=int(npages))
        self.mappings[b.id] = b
        return b

    def file(self, name: str, create: bool = False) -> Backing:
        if not isinstance(name, str):
            raise TypeError(f"file must be a file name, not {type(name).__name__}")
        b = self.files.get(name)
        if b is None:
            if not create:
                raise oserror(EINVAL, f"no file {name!r} in the page cache")
            b = self.new_backing(name, "file", 0)
            b.shmem = name.startswith(SHMEM_DIRS)  # tmpfs: POSIX shared memory
            self.files[name] = b
        return b

    def new_tokens(self, k: int, base_vpn: int, offs: np.ndarray) -> np.ndarray:
        """Content values for k page writes: distinct, never 0 (0 = never written).
        uint32 arithmetic wraps modulo 2**32, which is the hash we want."""
        self.write_seq += 1
        seed = np.uint32((self.write_seq * 0x9E3779B1 + base_vpn * int(TOKEN_MUL)) & 0xFFFFFFFF)
        return tokens(offs, seed)  # (the page table stores a chunk of them as its seed)

    def node_pairs(self, src, dst, size: int | None = None) -> np.ndarray:
        """Pages per (source, target) node: an nr_node_ids x nr_node_ids matrix. Either
        side may be one node for every page (size: the pages, when both are)."""
        nn = self.nr_node_ids
        src, dst = np.asarray(src), np.asarray(dst)
        out = np.zeros((nn, nn), np.int64)
        if src.ndim == 0 and dst.ndim == 0:
            out[int(src), int(dst)] = size or 0
            return out
        if src.ndim and src.size:
            lo, hi = int(src.min()), int(src.max())
            if lo == hi:  # one source node (a process that sits on one node): a row
                src, size = np.int64(lo), src.size
        if src.ndim == 0:
            out[int(src)] = counts(dst, nn) if dst.ndim else 0
            if dst.ndim == 0:
                out[int(src), int(dst)] = size or 0
            return out
        if dst.ndim == 0:
            out[:, int(dst)] = counts(src, nn)
            return out
        pair = src.astype(np.int64) * nn
        pair += dst
        return np.bincount(pair, minlength=nn * nn).reshape(nn, nn)

    def record_traffic(self, src: np.ndarray, dst: np.ndarray) -> None:
        self.record_traffic_pairs(self.node_pairs(src, dst))

    def record_traffic_pairs(self, pairs: np.ndarray) -> None:
        """Pages migrated per (source, target) node pair (node_pairs())."""
        nn = self.nr_node_ids
        if self.traffic is None or self.traffic.shape[0] != nn:
            self.traffic = np.zeros((nn, nn), np.int64)
        self.traffic += pairs

    # ------------------------------------------------------------ observers
    def note_moved(self, src: np.ndarray, dst: np.ndarray, driver: str | None = None) -> None:
        """Pages left frames src for frames dst (the migration core, or `driver`'s
        vm_ops->migrate hook). The kernel keeps nothing; the facade records them for
        the results and the undo of migration jobs (engine/runtime/moves.py)."""

    def note_failed(self, pfns: np.ndarray, codes: np.ndarray) -> None:
        """The migration of the pages on frames pfns failed with codes (-errno)."""

    # ------------------------------------------------------------ tasks and credentials
    def credentials(self, caller) -> Cred:
        """The console operator (None: uid 0, CAP_SYS_NICE, the top cpuset: every node
        with memory) or a process."""
        if caller is None:
            return Cred(uid=0, cap_sys_nice=True, mems_allowed=frozenset(self.memory_nodes()),
                        node=0)
        p = self.procs.get(int_arg(caller, "caller"))
        if p is None:
            raise oserror(ESRCH, f"caller pid {caller} does not exist")
        return Cred(uid=p.uid, cap_sys_nice=p.uid == 0, mems_allowed=p.mems_allowed,
                    node=p.node, pid=p.pid)

    def lookup(self, pid, caller=None) -> Process | None:
        """find_task_by_vpid(); pid 0 = the caller."""
        pid = int_arg(pid, "pid")
        if pid == 0:
            if caller is None:
                return None
            pid = int_arg(caller, "caller")
        return self.procs.get(pid)

    def task(self, pid, caller=None) -> Process:
        p = self.lookup(pid, caller)
        if p is None:
            raise oserror(ESRCH, f"no process {pid}")
        return p

    def user(self, pid, caller=None) -> Process:
        """A process with an address space (not a kernel thread)."""
        p = self.task(pid, caller)
        if not p.has_mm:
            raise oserror(EINVAL, f"pid {p.pid} is a kernel thread with no address space")
        return p

    def own_task(self, pid, caller, call: str) -> Process:
        """The process a call that acts on the caller's own address space acts on
        (mbind, set_mempolicy, get_mempolicy, mlock, fork): Linux has no pid argument for
        them, so a caller naming another process gets EPERM. The console operator
        (caller None) acts as the process itself."""
        p = self.task(pid, caller)
        if caller is not None:
            cp = self.credentials(caller).pid
            if cp != p.pid:
                raise oserror(EPERM, f"{call}: acts on the caller's own address space; pid "
                                     f"{cp} cannot make it for pid {p.pid}")
        return p

    def require_admin(self, caller, what: str) -> None:
        """An administrator act (hooks, hot-remove, the era, load, save): refused to a
        caller without CAP_SYS_ADMIN (uid != 0), as the sysfs files and the reboot into
        another kernel are."""
        cred = self.credentials(caller)
        if not cred.cap_sys_admin:
            raise oserror(EPERM, f"{what}: needs CAP_SYS_ADMIN (pid {cred.pid} runs as uid "
                                 f"{cred.uid})")

    def check_access(self, cred: Cred, p: Process, call: str) -> None:
        """ptrace_may_access(PTRACE_MODE_READ_REALCREDS) (modern), or the <= 4.12 rule:
        caller uid matches the target's uid, or CAP_SYS_NICE. Root passes both."""
        if cred.uid == 0 or cred.uid == p.uid:
            return
        if self.era.perm_model == "uid" and cred.cap_sys_nice:
            return
        raise oserror(EPERM, f"{call}: uid {cred.uid} may not act on pid {p.pid} "
                             f"(uid {p.uid})")


def int_arg(x, what: str) -> int:
    """An integer argument of the API: ints only (a float or a bool is a TypeError,
    never silently truncated), and one a C caller could pass: a value that does not
    fit in 64 bits is EINVAL."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, not {type(x).__name__}")
    x = int(x)
    if not -(1 << 63) <= x < 1 << 64:
        raise oserror(EINVAL, f"{what} {x} does not fit in 64 bits")
    return x
