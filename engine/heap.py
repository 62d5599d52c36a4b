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

try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
    _malloc_trim = _libc.malloc_trim
    _malloc_trim.argtypes = [ctypes.c_size_t]
    _malloc_trim.restype = ctypes.c_int
except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
    _malloc_trim = None


def trim() -> bool:
    """Return the heap's free pages to the system; False where malloc_trim is missing."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
