"""The host kernel's own move_pages(2) and migrate_pages(2), through ctypes, with
their results exactly as Linux returns them: the return value, errno, and for
move_pages the status array (entries the kernel left unwritten are reported as the
simulator's UNWRITTEN). Linux decides who may do what (mm/migrate.c
kernel_move_pages/find_mm_struct, mm/mempolicy.c kernel_migrate_pages: ptrace read
access to the target, CAP_SYS_NICE for MPOL_MF_MOVE_ALL and for nodes outside the
target's cpuset); nothing here second-guesses it.

`Actions` guards every call that changes the host: it refuses unless the host was
opened with actions allowed (`numacon ... --allow-actions`). A move_pages query
(no nodes) changes nothing and is always allowed."""

from __future__ import annotations

import ctypes
import platform
import time
from dataclasses import dataclass

import numpy as np

from ..mm.move_pages import UNWRITTEN

# arch/x86/entry/syscalls/syscall_64.tbl, include/uapi/asm-generic/unistd.h
SYSCALL_NR = {"x86_64": {"move_pages": 279, "migrate_pages": 256},
              "aarch64": {"move_pages": 239, "migrate_pages": 238}}
SENTINEL = -(1 << 31)  # status entries pre-filled with this were left unwritten
BITS = 64


class ActionRefused(Exception):
    """The host is read-only (no --allow-actions): the call was not made."""


@dataclass
class CallResult:
    """What the kernel answered."""

    call: str
    ret: int  # the return value (-1 on error)
    errno: int  # 0 when the call succeeded
    ns: int  # wall-clock time of the call
    status: np.ndarray | None = None  # move_pages: one entry per page (int64)

    @property
    def ok(self) -> bool:
        return self.errno == 0


def nodemask_words(nodes, nbits: int) -> ctypes.Array:
    """A nodemask as an array of unsigned longs with room for nbits nodes."""
    words = (ctypes.c_ulong * max(1, (nbits + BITS - 1) // BITS))()
    for n in nodes:
        words[int(n) // BITS] |= 1 << (int(n) % BITS)
    return words


class Syscalls:
    """ctypes wrappers; OSError(ENOSYS) at construction on an architecture whose
    syscall numbers we do not know."""

    def __init__(self) -> None:
        nr = SYSCALL_NR.get(platform.machine())
        if nr is None:
            raise OSError(38, f"move_pages/migrate_pages: unknown syscall numbers for "
                              f"{platform.machine()}")
        self.nr = nr
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long

    def _call(self, name: str, *args) -> tuple[int, int, int]:
        ctypes.set_errno(0)
        t0 = time.perf_counter_ns()
        r = int(self.libc.syscall(ctypes.c_long(self.nr[name]), *args))
        ns = time.perf_counter_ns() - t0
        err = ctypes.get_errno() if r < 0 else 0
        return r, err, ns

    def move_pages(self, pid: int, pages: np.ndarray, nodes: np.ndarray | None,
                   flags: int) -> CallResult:
        """move_pages(pid, count, pages, nodes, status, flags); nodes None: a query."""
        pg = np.ascontiguousarray(np.asarray(pages, np.int64).astype(np.uint64))
        n = pg.size
        st = np.full(n, SENTINEL, np.int32)
        nd = None if nodes is None else np.ascontiguousarray(np.asarray(nodes, np.int32))
        if nd is not None and nd.size != n:
            raise ValueError(f"move_pages: {nd.size} nodes for {n} pages")
        r, err, ns = self._call(
            "move_pages", ctypes.c_long(pid), ctypes.c_ulong(n),
            ctypes.c_void_p(pg.ctypes.data if n else None),
            ctypes.c_void_p(None if nd is None or not n else nd.ctypes.data),
            ctypes.c_void_p(st.ctypes.data if n else None), ctypes.c_int(flags))
        status = st.astype(np.int64)
        status[st == SENTINEL] = UNWRITTEN
        return CallResult("move_pages", r, err, ns, status)

    def migrate_pages(self, pid: int, old_nodes, new_nodes) -> CallResult:
        """migrate_pages(pid, maxnode, old_nodes, new_nodes): ret is the number of
        pages that could not be moved."""
        top = max([*old_nodes, *new_nodes, 0]) + 1
        nbits = max(BITS, (top + BITS - 1) // BITS * BITS)
        old, new = nodemask_words(old_nodes, nbits), nodemask_words(new_nodes, nbits)
        # get_nodes() reads maxnode - 1 bits (the historical off-by-one numactl follows)
        r, err, ns = self._call("migrate_pages", ctypes.c_long(pid), ctypes.c_ulong(nbits + 1),
                                ctypes.byref(old), ctypes.byref(new))
        return CallResult("migrate_pages", r, err, ns)


class Actions:
    """The host's action backend: the real calls, refused in read-only mode."""

    def __init__(self, allow: bool = False, syscalls: Syscalls | None = None) -> None:
        self.allow = bool(allow)
        self._sys = syscalls

    @property
    def sys(self) -> Syscalls:
        if self._sys is None:
            self._sys = Syscalls()
        return self._sys

    def refuse(self, what: str) -> None:
        if not self.allow:
            raise ActionRefused(f"{what}: refused: the host is open read-only (pass "
                                f"--allow-actions to let numacon change it)")

    def query(self, pid: int, pages: np.ndarray) -> CallResult:
        """move_pages with no nodes: where each page is (changes nothing)."""
        return self.sys.move_pages(pid, pages, None, 0)

    def move_pages(self, pid: int, pages: np.ndarray, nodes: np.ndarray | None,
                   flags: int) -> CallResult:
        if nodes is not None:
            self.refuse("move_pages")
        return self.sys.move_pages(pid, pages, nodes, flags)

    def migrate_pages(self, pid: int, old_nodes, new_nodes) -> CallResult:
        self.refuse("migrate_pages")
        return self.sys.migrate_pages(pid, old_nodes, new_nodes)

