"""Page frames: one entry per PFN, as Linux's struct page array (mem_map), in the
layout the migration path wants (see the measurements below). Imports nothing from
the rest of mm/."""

from __future__ import annotations

import numpy as np

from ..constants import K_ANON, K_FILE, K_KERNEL, K_PFNMAP, PG_isolated, PG_pinned
from ..heap import small_pages

__all__ = ["Frames", "Refcounts", "refcount_rule", "KF_DTYPE", "REC_DTYPE", "HELD",
           "SCAN_SLICE", "COPY_SLICE"]


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
    # (spare, the folio bits of huge_memory.py, came with issue 18: a snapshot
    # without it has small pages only; OPTIONAL blobs may be missing)
    FIELDS = ("kind", "flags", "mapping", "index", "mapcount", "refcount", "content",
              "spare")
    DTYPES = (np.uint8, np.uint8, np.int32, np.int32, np.int16, np.int16, np.uint32,
              np.uint16)
    STORED = ("kind", "flags", "mapping", "index", "mapcount", "content", "spare")
    OPTIONAL = ("spare",)

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
        self.spare = self.rec["spare"]  # folio order and tail bit (huge_memory.py)
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

    def write_entries(self, pfns, kind: int, flags: int, mapping: int, index: np.ndarray,
                      content: np.ndarray, mapcount: int) -> None:
        """Whole entries of frames a caller has just taken (a run as a slice, or
        PFNs): kind and flags as one word, and records (spare 0) assembled
        COPY_SLICE at a time in a buffer in cache, each slice then copied as one
        block. (Four strided field writes into the records of 4 Mi frames took 170 ms
        building the reference machine; index and content: one value per frame.)"""
        run = isinstance(pfns, slice)
        s, e, _ = pfns.indices(self.n) if run else (0, pfns.size, 1)
        if e <= s:
            return
        word = int(kind) | int(flags) << 8  # (Python ints: a uint8 shifted is 0)
        self.kf.view(np.uint16)[pfns] = word
        buf = np.zeros(min(e - s, COPY_SLICE), REC_DTYPE)
        out = self.rec.view(np.complex128)
        for a in range(0, e - s, COPY_SLICE):
            b = min(e - s, a + COPY_SLICE)
            r = buf[:b - a]
            r["mapping"] = mapping
            r["index"] = index[a:b]
            r["content"] = content[a:b]
            r["mapcount"] = mapcount
            out[slice(s + a, s + b) if run else pfns[a:b]] = r.view(np.complex128)

    def take(self, pfns) -> tuple[np.ndarray, np.ndarray]:
        """The entries of these frames (copies): (kf, rec)."""
        # gathered through plain views of the same bytes (a 2-byte and a 16-byte
        # scalar; numpy copies both bit for bit), then seen as the records again
        return (self.kf.view(np.uint16)[pfns].view(KF_DTYPE),
                self.rec.view(np.complex128)[pfns].view(REC_DTYPE))

    def put(self, pfns, kf: np.ndarray, rec: np.ndarray) -> None:
        # (numpy scatters a structured array field by field: 1 Mi random records
        # took 33 ms, through the plain views 12 ms)
        self.kf.view(np.uint16)[pfns] = np.ascontiguousarray(kf).view(np.uint16)
        self.rec.view(np.complex128)[pfns] = np.ascontiguousarray(rec).view(np.complex128)

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
        arrays = dict(arrays)
        for name, dt in zip(cls.FIELDS, cls.DTYPES):
            if name in cls.OPTIONAL and arrays.get(name) is None:
                arrays[name] = np.zeros(n, dt)
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
            for name in ("mapping", "index", "content", "mapcount", "spare"):
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
