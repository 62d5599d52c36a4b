"""Small numpy helpers for the hot paths: distinct values of small non-negative ints
without sorting (a bincount), falling back to np.unique for wide ranges."""

from __future__ import annotations

import numpy as np

_DENSE_LIMIT = 1 << 22


def distinct(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer array."""
    if a.size == 0:
        return a[:0].astype(np.int64)
    lo = int(a.min())
    hi = int(a.max())
    if lo >= 0 and hi < _DENSE_LIMIT:
        return np.flatnonzero(np.bincount(a, minlength=hi + 1))
    return np.unique(a)


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
