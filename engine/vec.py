"""Small numpy helpers for the hot paths: distinct values of small non-negative ints
without sorting (a bincount), and a sort-based unique for wide ranges.

numpy 2.x's plain np.unique(x) takes a hash-table path that is ~15x slower than
sorting for millions of int64 values (3.6 s vs 0.25 s for 4 M values here), so the
engine never calls it on large arrays: use unique() below. Likewise a stable
np.argsort of 1 Mi int64 takes 90 ms where np.sort takes 6.5 ms (numpy sorts
with SIMD but argsorts stably with a scalar merge sort): stable_argsort() sorts
value-and-position keys instead."""

from __future__ import annotations

from collections import Counter

import numpy as np

_DENSE_LIMIT = 1 << 22


def distinct(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer array."""
    if a.size == 0:
        return a[:0].astype(np.int64)
    lo = int(a.min())
    hi = int(a.max())
    if lo == hi:  # one value (a call's one target, one zone): no count needed
        return np.array([lo], np.int64)
    if lo >= 0 and hi < _DENSE_LIMIT:
        return np.flatnonzero(np.bincount(a, minlength=hi + 1))
    return unique(a)


def counts(a: np.ndarray, minlength: int) -> np.ndarray:
    """np.bincount(a, minlength=minlength) of small non-negative ints (zone or node
    ids). A bincount costs several times a min and a max, and most arrays here hold
    one value (every page of a call from one zone, to one node): then those two
    passes are all."""
    out = np.zeros(minlength, np.int64)
    a = np.asarray(a)
    if a.size == 0:
        return out
    lo, hi = int(a.min()), int(a.max())
    if lo == hi:
        out[lo] = a.size
        return out
    c = np.bincount(a, minlength=minlength)
    out[:c.size] += c if c.size <= minlength else c[:minlength]
    return out


def stable_argsort(a: np.ndarray) -> np.ndarray:
    """np.argsort(a, kind="stable") for an integer array: one np.sort of keys that
    hold the value above the position (ties keep their order), when the values' range
    leaves room for the position bits; else the stable argsort itself."""
    a = np.asarray(a).reshape(-1)
    n = a.size
    if n < 2 or a.dtype.kind not in "iu":
        return np.argsort(a, kind="stable")
    lo, hi = int(a.min()), int(a.max())
    bits = (n - 1).bit_length()
    if hi - lo >= 1 << (62 - bits):
        return np.argsort(a, kind="stable")
    key = a.astype(np.int64)
    if lo:
        key -= lo
    key <<= bits
    key |= np.arange(n, dtype=np.int64)
    key.sort()
    key &= (1 << bits) - 1
    return key


def unique(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values (np.unique without its slow hash path)."""
    s = np.sort(np.asarray(a).reshape(-1))
    if s.size < 2:
        return s
    keep = np.empty(s.size, bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def distinct_counts(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, their counts)."""
    if a.size == 0:
        return a[:0].astype(np.int64), np.zeros(0, np.int64)
    lo = int(a.min())
    hi = int(a.max())
    if lo >= 0 and hi < _DENSE_LIMIT:
        c = np.bincount(a, minlength=hi + 1)
        v = np.flatnonzero(c)
        return v, c[v]
    return np.unique(a, return_counts=True)


def unique_frames(pfns: np.ndarray, nr_frames: int) -> np.ndarray:
    """Sorted distinct PFNs: a mask over the frames when the set is large (linear),
    a sort when it is small."""
    pfns = np.asarray(pfns).reshape(-1)
    if pfns.size > 1 and pfns[0] < pfns[-1] and (pfns[1:] > pfns[:-1]).all():
        return pfns  # ascending already (a walk of page tables mapped in order)
    if pfns.size * 128 < nr_frames:  # a sort costs ~50 ns an entry, the mask ~0.5 ns a frame
        return unique(pfns)
    mask = np.zeros(nr_frames, bool)
    mask[pfns] = True
    return np.flatnonzero(mask)


def join_runs(parts: list[np.ndarray], max_runs: int = 64) -> np.ndarray | None:
    """The parts' frames ascending and distinct, when the parts are a few ascending
    runs each (a VMA's pages, allocated in order from where the free area began and
    wrapped around) that do not overlap: the runs joined in the order of their first
    frames, with no sort or mask over the frames (4 Mi frames: 6 ms against 23). None
    when they are not (more runs, or runs that overlap: a frame may repeat)."""
    runs = []
    for p in parts:
        if p.size < 2:
            runs.append(p)
            continue
        cut = np.flatnonzero(p[1:] <= p[:-1]) + 1
        if cut.size > max_runs:
            return None
        runs.extend(np.split(p, cut) if cut.size else [p])
    runs = [r for r in runs if r.size]
    if not runs:
        return np.empty(0, np.int64)
    runs.sort(key=lambda r: int(r[0]))
    if all(int(a[-1]) < int(b[0]) for a, b in zip(runs, runs[1:])):
        return runs[0] if len(runs) == 1 else np.concatenate(runs)
    return None


def unique_parts(parts: list[np.ndarray], nr_frames: int, max_runs: int = 64
                 ) -> np.ndarray:
    """unique_frames() of the parts' concatenation: join_runs() when it can."""
    joined = join_runs(parts, max_runs)
    if joined is not None:
        return joined
    return unique_frames(np.concatenate(parts), nr_frames) if parts else \
        np.empty(0, np.int64)


def has_duplicates(pfns: np.ndarray, nr_frames: int) -> bool:
    """Whether any value (in [0, nr_frames)) repeats: one sort, of 32-bit values when
    they fit (numpy's SIMD sort takes 3 ms for 1 Mi of them, 15 ms as int64, and a
    mask over the range costs a scatter of cache misses)."""
    pfns = np.asarray(pfns).reshape(-1)
    if pfns.size < 2:
        return False
    s = np.sort(pfns.astype(np.int32) if nr_frames <= 1 << 31 else pfns)
    return bool((s[1:] == s[:-1]).any())


def value_counts(a) -> Counter:
    """Counter {value: occurrences} of an integer array, without a loop over it."""
    vals, counts = distinct_counts(np.asarray(a, np.int64))
    return Counter(dict(zip(vals.tolist(), counts.tolist())))


def pair_counts(src, dst) -> dict:
    """{(source, target): pages} without a Python loop over pages."""
    src = np.asarray(src, np.int64)
    dst = np.asarray(dst, np.int64)
    if src.size == 0:
        return {}
    k = int(max(src.max(), dst.max())) + 1
    vals, counts = distinct_counts(src * k + dst)
    return {(int(v) // k, int(v) % k): int(c) for v, c in zip(vals.tolist(), counts.tolist())}


RUN_SLICE = 1 << 20  # entries is_run() compares at a time


def is_run(a: np.ndarray) -> bool:
    """Whether a holds consecutive ascending integers (a[i + 1] == a[i] + 1). Compared
    a slice at a time: a whole-array np.diff of 4 Mi entries makes a temporary of 32
    MiB, mapped afresh by every allocation (its page faults cost more than the test)."""
    n = a.size
    if n < 2:
        return True
    if int(a[-1]) - int(a[0]) != n - 1:
        return False
    for s in range(0, n - 1, RUN_SLICE):
        e = min(n - 1, s + RUN_SLICE)
        if not (np.subtract(a[s + 1:e + 1], a[s:e]) == 1).all():
            return False
    return True


def as_slice(pfns: np.ndarray):
    """A slice for an ascending run of consecutive frames (what the allocator hands out
    from a fresh zone), so frame writes are block copies, not scatters; else pfns."""
    if pfns.size and int(pfns[-1]) - int(pfns[0]) == pfns.size - 1 and \
            (pfns.size < 3 or (np.diff(pfns[:: max(1, pfns.size // 64)]) > 0).all()):
        if is_run(pfns):
            return slice(int(pfns[0]), int(pfns[-1]) + 1)
    return pfns


def first_occurrence(a: np.ndarray) -> np.ndarray:
    """Mask of the entries whose value has not appeared earlier (one stable sort)."""
    a = np.asarray(a).reshape(-1)
    out = np.ones(a.size, bool)
    if a.size < 2:
        return out
    order = stable_argsort(a)
    s = a[order]
    out[order[1:][s[1:] == s[:-1]]] = False
    return out


def previous_occurrence(a: np.ndarray) -> np.ndarray:
    """Per entry: the index of the previous entry with the same value, or -1 (one
    stable sort)."""
    a = np.asarray(a).reshape(-1)
    out = np.full(a.size, -1, np.int64)
    if a.size < 2:
        return out
    order = stable_argsort(a)
    s = a[order]
    same = s[1:] == s[:-1]
    out[order[1:][same]] = order[:-1][same]
    return out
