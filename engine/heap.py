"""Giving freed memory back to the system.

The engine's operations make temporaries of many MiB (a step over millions of
pages). glibc's malloc keeps what they free on its heap for the next ones, and
fragmentation keeps much of it resident: after building the 64 GiB reference
machine the process holds 34.7 bytes a frame of which 12.5 are freed temporaries.
`trim()` (malloc_trim(0)) returns every whole free page of the heap; the engine
calls it at the end of the operations that build a machine (a description, a
snapshot), after which the process holds what the machine is."""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap

import numpy as np

try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
    _malloc_trim = _libc.malloc_trim
    _malloc_trim.argtypes = [ctypes.c_size_t]
    _malloc_trim.restype = ctypes.c_int
except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
    _malloc_trim = None
try:
    _madvise = ctypes.CDLL(None, use_errno=True).madvise
    _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    _madvise.restype = ctypes.c_int
except (OSError, AttributeError):
    _madvise = None
MADV_NOHUGEPAGE = 15  # Linux


def small_pages(a: np.ndarray) -> bool:
    """Back a large array that is not touched yet with 4 KiB pages, not the huge
    pages numpy asks for: a huge page is zeroed, and memory compacted for it, at the
    first touch of any of its bytes. The frame arrays, touched a little at a time,
    then cost what is touched (the reference machine: 1 B a frame less, and builds
    that take 1.0-1.1 s where huge pages made them 0.85-1.8 s); the migration paths
    measure the same either way. False where madvise is missing."""
    if _madvise is None or a.nbytes < 1 << 22:
        return False
    page = mmap.PAGESIZE
    start = -(-a.ctypes.data // page) * page
    end = (a.ctypes.data + a.nbytes) // page * page
    if end <= start:
        return False
    return _madvise(start, end - start, MADV_NOHUGEPAGE) == 0


def trim() -> bool:
    """Return the heap's free pages to the system; False where malloc_trim is missing."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
