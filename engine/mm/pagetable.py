"""Sparse page tables: a map from a page number to a PFN and to the content last
written there (the integrity oracle), allocated in chunks on first store.

Linux allocates a page-table page the first time something faults in its 2 MiB
range, so mapping a terabyte costs nothing until it is touched. Here an mm's table
is keyed by absolute virtual page number (one table per address space, as
mm->pgd: splitting or merging VMAs never moves an entry), and a page-cache object's
table by page index. A chunk holds CHUNK consecutive entries; chunks live as rows
of one pool per field, so a lookup is a gather through a small directory and a
range whose chunks sit in consecutive rows is a plain slice of the pool.

The oracle of a chunk written whole by one write is not stored: the contents the
engine writes are tokens, the page number times TOKEN_MUL plus a seed per write
(tokens()), so such a chunk is "seeded": its row keeps the seed, and its values are
computed when read. Memory written once in bulk (what a machine's description
maps) then costs 4 bytes a page for its table, not 8: on the 64 GiB reference
machine, 3 bytes a frame. A write that does not follow the formula, or covers
part of a seeded chunk, stores the chunk's values (the row becomes dense).

Contract: `get` never allocates; `set` allocates the chunks it writes to; `clear`
frees chunks left empty. Views returned by `span` are valid until the next `set`
or `clear` (a pool may be reallocated when it grows); `span` of the oracle is None
where a chunk is seeded."""

from __future__ import annotations

import numpy as np

from ..vec import distinct, is_run

# a chunk of 4096 entries (16 MiB of 4 KiB pages): large enough that a 1 TiB
# mapping needs only 65536 directory entries, small enough that a scattered touch
# costs 32 KiB a chunk
CHUNK_SHIFT = 12
CHUNK = 1 << CHUNK_SHIFT
MASK = CHUNK - 1
NO_PAGE = -1
PTE_DTYPE = np.int32  # PFNs: int32 covers 8 TiB of 4 KiB frames
TOKEN_MUL = np.uint32(2654435761)  # Knuth's multiplicative hash: odd, so a bijection


def tokens(keys, seed) -> np.ndarray:
    """Content tokens of pages: uint32(key) * TOKEN_MUL + seed (mod 2**32), never 0
    (0 means never written: a 0 becomes 1). seed: one value or one per key."""
    t = np.asarray(keys).astype(np.uint32)
    t *= TOKEN_MUL
    t += np.asarray(seed, np.uint32)
    t[t == 0] = 1
    return t


class PageTable:
    """Sparse table of (pfn, expect) entries keyed by a non-negative page number.
    Unset entries read pfn NO_PAGE and expect 0."""

    __slots__ = ("keys", "rows", "pfn", "expect", "seeded", "seed", "nrows", "free_rows",
                 "version")

    def __init__(self) -> None:
        self.keys = np.zeros(0, np.int64)  # sorted chunk numbers
        self.rows = np.zeros(0, np.int64)  # pool row of each chunk
        self.pfn = np.full((0, CHUNK), NO_PAGE, PTE_DTYPE)
        self.expect = np.zeros((0, CHUNK), np.uint32)
        self.seeded = np.zeros(0, bool)  # per row: the oracle is tokens(key, seed)
        self.seed = np.zeros(0, np.uint32)  # per row: its seed (when seeded)
        self.nrows = 0  # rows handed out so far (some may be on free_rows)
        self.free_rows: list[int] = []
        self.version = 0  # bumped whenever chunks come or go

    def __eq__(self, other: object) -> bool:
        """Same entries (how they are laid out in chunks does not matter)."""
        if not isinstance(other, PageTable):
            return NotImplemented
        hi = 1 << 62
        a, b = self.present(0, hi), other.present(0, hi)
        c, d = self.written(0, hi), other.written(0, hi)
        return all(np.array_equal(x, y) for x, y in zip(a + c, b + d))

    __hash__ = None  # mutable

    # ---------------------------------------------------------------- sizes
    @property
    def nchunks(self) -> int:
        return int(self.keys.size)

    def nbytes(self) -> int:
        return int(self.pfn.nbytes + self.expect.nbytes + self.keys.nbytes
                   + self.rows.nbytes)

    def copy(self) -> PageTable:
        """A deep copy, compacted (fork(), clone)."""
        t = PageTable()
        t.keys = self.keys.copy()
        t.rows = np.arange(self.keys.size, dtype=np.int64)
        t.pfn = self.pfn[self.rows].copy()
        t.expect = self.expect[self.rows].copy()
        t.seeded = self.seeded[self.rows].copy()
        t.seed = self.seed[self.rows].copy()
        t.nrows = int(self.keys.size)
        return t

    # ---------------------------------------------------------------- rows
    def _rows_of(self, chunks: np.ndarray) -> np.ndarray:
        """Pool row of each chunk number (-1 where the chunk is not allocated)."""
        if self.keys.size == 0:
            return np.full(chunks.shape, -1, np.int64)
        pos = np.searchsorted(self.keys, chunks)
        pos = np.minimum(pos, self.keys.size - 1)
        return np.where(self.keys[pos] == chunks, self.rows[pos], -1)

    def _row_lookup(self, keys: np.ndarray, lo: int | None, hi: int | None) -> np.ndarray:
        """Pool row of each key's chunk. With the range [lo, hi) the keys fall in, a
        dense directory of the range's chunks is cheaper than a binary search per key
        when there are more keys than chunks."""
        c = keys >> CHUNK_SHIFT
        if lo is not None and hi is not None and hi > lo:
            c0, c1 = lo >> CHUNK_SHIFT, (hi - 1) >> CHUNK_SHIFT
            if c1 - c0 + 1 <= keys.size:
                ldir = self._rows_of(np.arange(c0, c1 + 1, dtype=np.int64))
                return ldir[c - c0]
        return self._rows_of(c)

    def _alloc(self, chunks: np.ndarray) -> None:
        """Allocate rows for these chunk numbers (sorted, distinct, not allocated)."""
        k = int(chunks.size)
        if k == 0:
            return
        reuse = [self.free_rows.pop() for _ in range(min(k, len(self.free_rows)))]
        fresh = k - len(reuse)
        new_rows = np.concatenate([np.asarray(sorted(reuse), np.int64),
                                   np.arange(self.nrows, self.nrows + fresh, dtype=np.int64)])
        self.nrows += fresh
        if self.nrows > self.pfn.shape[0]:
            cap = max(self.nrows, 2 * self.pfn.shape[0], 4)
            old = self.pfn.shape[0]
            pfn = np.full((cap, CHUNK), NO_PAGE, PTE_DTYPE)
            exp = np.zeros((cap, CHUNK), np.uint32)  # calloc'd: rows never written are free
            pfn[:old] = self.pfn
            dense = np.flatnonzero(~self.seeded[:old])  # a seeded row holds nothing
            exp[dense] = self.expect[dense]
            seeded = np.zeros(cap, bool)
            seed = np.zeros(cap, np.uint32)
            seeded[:old], seed[:old] = self.seeded, self.seed
            self.pfn, self.expect, self.seeded, self.seed = pfn, exp, seeded, seed
        pos = np.searchsorted(self.keys, chunks)
        self.keys = np.insert(self.keys, pos, chunks)
        self.rows = np.insert(self.rows, pos, new_rows)
        self.version += 1

    # ---------------------------------------------------------------- access
    def get(self, keys, field: str = "pfn", lo: int | None = None,
            hi: int | None = None) -> np.ndarray:
        """Values at `keys` (an int array); lo/hi: a range the keys lie in (a hint)."""
        keys = np.asarray(keys, np.int64)
        fill = NO_PAGE if field == "pfn" else 0
        pool = self.pfn if field == "pfn" else self.expect
        out_dtype = np.int64 if field == "pfn" else np.uint32
        if keys.size == 0:
            return np.zeros(0, out_dtype)
        if lo is not None and hi is not None:
            sp = self.span(lo, hi, field)
            if sp is not None:
                return sp[keys - lo].astype(out_dtype, copy=False)
            if self._empty(lo, hi):  # nothing there yet (a first touch)
                return np.full(keys.size, fill, out_dtype)
        r = self._row_lookup(keys, lo, hi)
        ok = r >= 0
        flat = pool.reshape(-1)
        idx = r * CHUNK + (keys & MASK)
        if field != "pfn" and self.seeded.any():
            sd = self.seeded[np.maximum(r, 0)] & ok
            if sd.any():
                out = np.full(keys.size, fill, out_dtype)
                dn = ok & ~sd
                out[dn] = flat[idx[dn]]
                out[sd] = tokens(keys[sd], self.seed[r[sd]])
                return out
        if ok.all():
            return flat[idx].astype(out_dtype, copy=False)
        out = np.full(keys.size, fill, out_dtype)
        out[ok] = flat[idx[ok]]
        return out

    def set(self, keys, values, field: str = "pfn", lo: int | None = None,
            hi: int | None = None) -> None:
        """Store values at keys, allocating chunks as needed."""
        keys = np.asarray(keys, np.int64)
        if keys.size == 0:
            return
        if field != "pfn":
            self._set_expect(keys, np.asarray(values, np.uint32), lo, hi)
            return
        if lo is not None and hi is not None:
            sp = self.span(lo, hi, field)
            if sp is not None:
                sp[keys - lo] = values
                return
            if keys.size == hi - lo and self._empty(lo, hi):
                # every entry of a range with no chunk yet (a range touched whole): its
                # chunks, in consecutive rows, make it a slice (written as one when
                # the keys come in order: a copy, not a scatter)
                self._alloc(np.arange(lo >> CHUNK_SHIFT, ((hi - 1) >> CHUNK_SHIFT) + 1))
                sp = self.span(lo, hi, field)
                if int(keys[0]) == lo and is_run(keys):
                    sp[:] = values
                else:
                    sp[keys - lo] = values
                return
        r = self._row_lookup(keys, lo, hi)
        missing = r < 0
        if missing.any():
            self._alloc(distinct((keys if missing.all() else keys[missing]) >> CHUNK_SHIFT))
            if lo is not None and hi is not None:
                sp = self.span(lo, hi, field)  # a range touched in one go: now a slice
                if sp is not None:
                    sp[keys - lo] = values
                    return
            r = self._row_lookup(keys, lo, hi)
        pool = self.pfn if field == "pfn" else self.expect
        pool.reshape(-1)[r * CHUNK + (keys & MASK)] = values

    def _set_expect(self, keys: np.ndarray, values: np.ndarray, lo, hi) -> None:
        """set() of the oracle. A run of consecutive keys whose values are tokens of
        one seed seeds the chunks it covers whole; any other write stores values,
        after giving the seeded chunks it touches their values."""
        values = np.broadcast_to(values, keys.shape)
        n = keys.size
        a, b = int(keys[0]), int(keys[-1]) + 1
        seed = None
        if n >= CHUNK and b - a == n and is_run(keys):
            s = np.uint32((int(values[0]) - a * int(TOKEN_MUL)) & 0xFFFFFFFF)
            if np.array_equal(tokens(keys, s), values):
                seed = s
        c_all = np.arange(a >> CHUNK_SHIFT, ((b - 1) >> CHUNK_SHIFT) + 1, dtype=np.int64) \
            if seed is not None else distinct(keys >> CHUNK_SHIFT)
        r = self._rows_of(c_all)
        if (r < 0).any():
            self._alloc(c_all[r < 0])
            r = self._rows_of(c_all)
        whole = np.zeros(c_all.size, bool)
        if seed is not None:  # the chunks the run covers whole
            whole = (c_all * CHUNK >= a) & ((c_all + 1) * CHUNK <= b)
            self.seeded[r[whole]] = True
            self.seed[r[whole]] = seed
        part = r[~whole]
        self._materialize(part)
        if part.size:
            rk = self._row_lookup(keys, lo, hi)
            sel = ~self.seeded[rk] if seed is not None else slice(None)
            self.expect.reshape(-1)[(rk * CHUNK + (keys & MASK))[sel]] = values[sel]

    def _materialize(self, rows: np.ndarray) -> None:
        """Give seeded rows their values (they become dense)."""
        rows = rows[self.seeded[rows]] if rows.size else rows
        if rows.size == 0:
            return
        key_of = np.full(self.pfn.shape[0], -1, np.int64)
        key_of[self.rows] = self.keys
        for row in rows.tolist():  # a row a time: a chunk of 4096 entries
            base = int(key_of[row]) * CHUNK
            self.expect[row] = tokens(np.arange(base, base + CHUNK), self.seed[row])
        self.seeded[rows] = False

    def _empty(self, lo: int, hi: int) -> bool:
        """No chunk of [lo, hi) is allocated."""
        c0, c1 = lo >> CHUNK_SHIFT, (hi - 1) >> CHUNK_SHIFT
        return int(np.searchsorted(self.keys, c0)) == \
            int(np.searchsorted(self.keys, c1, side="right"))

    def span(self, lo: int, hi: int, field: str = "pfn") -> np.ndarray | None:
        """The entries [lo, hi) as a view of the pool when every chunk of the range
        is allocated in consecutive rows (a range touched in one go), else None."""
        if hi <= lo or self.keys.size == 0:
            return None if hi > lo else np.zeros(0, PTE_DTYPE if field == "pfn"
                                                  else np.uint32)
        c0, c1 = lo >> CHUNK_SHIFT, (hi - 1) >> CHUNK_SHIFT
        i0 = int(np.searchsorted(self.keys, c0))
        n = c1 - c0 + 1
        if i0 + n > self.keys.size or self.keys[i0] != c0 or self.keys[i0 + n - 1] != c1:
            return None  # some chunk of the range is missing (keys are distinct, sorted)
        r0 = int(self.rows[i0])
        if n > 1 and not (self.rows[i0 + n - 1] - r0 == n - 1 and
                          (np.diff(self.rows[i0:i0 + n]) == 1).all()):
            return None
        if field != "pfn" and self.seeded[r0:r0 + n].any():
            return None  # a seeded chunk's values are computed, not stored
        pool = self.pfn if field == "pfn" else self.expect
        base = r0 * CHUNK + (lo & MASK)
        return pool.reshape(-1)[base: base + (hi - lo)]

    def present(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, pfns) of the entries in [lo, hi) that hold a frame, ascending;
        work in proportion to the allocated chunks of the range."""
        if hi <= lo or self.keys.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        sp = self.span(lo, hi)
        if sp is not None:
            there = sp >= 0
            if there.all():  # a range mapped whole (the usual VMA): no look-up
                return np.arange(lo, hi, dtype=np.int64), sp.astype(np.int64)
            k = np.flatnonzero(there)
            return k + lo, sp[k].astype(np.int64)
        c0, c1 = lo >> CHUNK_SHIFT, (hi - 1) >> CHUNK_SHIFT
        i0 = int(np.searchsorted(self.keys, c0))
        i1 = int(np.searchsorted(self.keys, c1, side="right"))
        if i1 <= i0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        block = self.pfn[self.rows[i0:i1]]
        ci, col = np.nonzero(block >= 0)
        keys = self.keys[i0:i1][ci] * CHUNK + col
        vals = block[ci, col].astype(np.int64)
        sel = (keys >= lo) & (keys < hi)
        if not sel.all():
            keys, vals = keys[sel], vals[sel]
        return keys, vals

    def frames(self, lo: int, hi: int) -> np.ndarray:
        """The PFNs of the entries in [lo, hi) that hold a frame, in key order: what
        present() gives without the keys (half the passes over a slice)."""
        sp = self.span(lo, hi)
        if sp is not None:
            return sp[sp >= 0].astype(np.int64)
        return self.present(lo, hi)[1]

    def written(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, expect) of the entries in [lo, hi) whose expected content is not 0."""
        if hi <= lo or self.keys.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.uint32)
        c0, c1 = lo >> CHUNK_SHIFT, (hi - 1) >> CHUNK_SHIFT
        i0 = int(np.searchsorted(self.keys, c0))
        i1 = int(np.searchsorted(self.keys, c1, side="right"))
        if i1 <= i0:
            return np.zeros(0, np.int64), np.zeros(0, np.uint32)
        rows = self.rows[i0:i1]
        block = self.expect[rows]
        sd = self.seeded[rows]
        if sd.any():  # (a seeded chunk was written whole)
            ck = self.keys[i0:i1][sd]
            block[sd] = tokens(ck[:, None] * CHUNK + np.arange(CHUNK), self.seed[rows[sd]][:, None])
        ci, col = np.nonzero(block)
        keys = self.keys[i0:i1][ci] * CHUNK + col
        vals = block[ci, col]
        sel = (keys >= lo) & (keys < hi)
        return keys[sel], vals[sel]

    def first_lost(self, lo: int, hi: int, zero: int) -> int | None:
        """The first key of [lo, hi) whose content was written (expect not 0) but that
        maps no frame (or the zero page), or None: a chunk at a time, a seeded chunk
        written whole."""
        c0, c1 = lo >> CHUNK_SHIFT, (hi - 1) >> CHUNK_SHIFT
        i0 = int(np.searchsorted(self.keys, c0))
        i1 = int(np.searchsorted(self.keys, c1, side="right"))
        for i in range(i0, i1):
            r = int(self.rows[i])
            pfn = self.pfn[r]
            gone = (pfn < 0) | (pfn == zero)
            if not self.seeded[r]:
                gone &= self.expect[r] != 0
            base = int(self.keys[i]) * CHUNK
            a, b = max(lo - base, 0), min(hi - base, CHUNK)
            hit = np.flatnonzero(gone[a:b])
            if hit.size:
                return base + a + int(hit[0])
        return None

    def dense(self, lo: int, hi: int, field: str = "pfn") -> np.ndarray:
        """A copy of the entries [lo, hi) (for small ranges: views, messages)."""
        sp = self.span(lo, hi, field)
        if sp is not None:
            return sp.astype(np.int64 if field == "pfn" else np.uint32)
        return self.get(np.arange(lo, hi, dtype=np.int64), field, lo, hi)

    def clear(self, lo: int, hi: int) -> None:
        """Reset entries [lo, hi) and free the chunks left empty (munmap's
        free_pgtables())."""
        if hi <= lo or self.keys.size == 0:
            return
        c0, c1 = lo >> CHUNK_SHIFT, (hi - 1) >> CHUNK_SHIFT
        i0 = int(np.searchsorted(self.keys, c0))
        i1 = int(np.searchsorted(self.keys, c1, side="right"))
        if i1 <= i0:
            return
        chunks = self.keys[i0:i1]
        rows = self.rows[i0:i1]
        a = np.maximum(lo - chunks * CHUNK, 0)
        b = np.minimum(hi - chunks * CHUNK, CHUNK)
        whole = (a == 0) & (b == CHUNK)
        self._materialize(rows[~whole])
        for r, x, y in zip(rows[~whole].tolist(), a[~whole].tolist(), b[~whole].tolist()):
            self.pfn[r, x:y] = NO_PAGE  # at most the two edge chunks of the range
            self.expect[r, x:y] = 0
        empty = whole.copy()
        if (~whole).any():
            empty[~whole] = ((self.pfn[rows[~whole]] == NO_PAGE).all(axis=1)
                             & (self.expect[rows[~whole]] == 0).all(axis=1))
        if empty.any():
            gone = rows[empty]
            self.pfn[gone] = NO_PAGE
            self.expect[gone] = 0
            self.seeded[gone] = False
            self.free_rows.extend(gone.tolist())
            keep = np.ones(self.keys.size, bool)
            keep[i0:i1] = ~empty
            self.keys = self.keys[keep]
            self.rows = self.rows[keep]
            self.version += 1

    # ---------------------------------------------------------------- snapshots
    def export(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(chunk numbers, pfn rows, expect rows) in key order."""
        exp = self.expect[self.rows]
        sd = self.seeded[self.rows]
        if sd.any():
            ck = self.keys[sd]
            exp[sd] = tokens(ck[:, None] * CHUNK + np.arange(CHUNK), self.seed[self.rows[sd]][:, None])
        return self.keys.copy(), self.pfn[self.rows].copy(), exp

    @classmethod
    def from_export(cls, keys: np.ndarray, pfn: np.ndarray, expect: np.ndarray) -> PageTable:
        keys = np.asarray(keys, np.int64)
        if keys.ndim != 1 or pfn.shape != (keys.size, CHUNK) or expect.shape != pfn.shape:
            raise ValueError("page table arrays do not match")
        if keys.size and ((keys < 0).any() or (np.diff(keys) <= 0).any()):
            raise ValueError("page table chunk numbers are not sorted and distinct")
        t = cls()
        t.keys = keys.copy()
        t.rows = np.arange(keys.size, dtype=np.int64)
        t.pfn = np.ascontiguousarray(pfn, dtype=PTE_DTYPE)
        t.expect = np.ascontiguousarray(expect, dtype=np.uint32)
        t.seeded = np.zeros(keys.size, bool)
        t.seed = np.zeros(keys.size, np.uint32)
        t.nrows = int(keys.size)
        return t
