import ctypes
import os
import platform

import numpy as np
import pytest

import engine
from engine.host.syscalls import SYSCALL_NR


def err(fn) -> int:
    """The errno a call fails with, or 0 when it succeeds (for tables of cases)."""
    try:
        fn()
    except OSError as e:
        return e.errno
    return 0


def small(nodes: int = 4, size: str = "64M", cpus: int = 2, dist=None, era: str = "modern",
          procs=(), drivers=(), movable: str | None = None, **machine):
    """A small machine: `nodes` nodes of `size` Normal memory (node 0 also has DMA)."""
    nd = []
    for i in range(nodes):
        zones = {"Normal": size}
        if i == 0:
            zones = {"DMA": "4M", "Normal": size}
        if movable and i == nodes - 1:
            zones["Movable"] = movable
        nd.append({"id": i, "cpus": f"{i * cpus}-{i * cpus + cpus - 1}" if cpus else "",
                   "zones": zones})
    if dist is None:
        dist = {"matrix": [[10 if a == b else (20 if abs(a - b) == 1 else 30)
                            for b in range(nodes)] for a in range(nodes)]}
    d = {"machine": {"name": "test", "era": era, "block_size": "4M", "kernel": "2%",
                     **machine},
         "nodes": nd, "distances": dist, "drivers": list(drivers),
         "processes": list(procs)}
    return engine.Machine.from_description(d)


@pytest.fixture
def m():
    return small()


def pages_of(m, addr, n):
    return [addr + i * m.page_size for i in range(n)]


def nodes_of(m, pid, addr, n):
    st = m.move_pages(pid, pages_of(m, addr, n))
    return list(st)


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)


def ptes(v) -> np.ndarray:
    """A VMA's page-table entries as a dense int64 array (tests use small VMAs)."""
    return v.pte_range(0, v.npages)


def fingerprint(m) -> str:
    """A digest of everything a call could change: frames, zones, blocks, processes,
    VMAs and their page tables, page-cache and driver tables, drivers, counters,
    clock. Two machines with the same fingerprint are the same machine."""
    import hashlib

    h = hashlib.sha256()

    def put(x) -> None:
        h.update(repr(x).encode())

    for name in m.f.FIELDS:
        a = getattr(m.f, name)
        if name == "spare" and not a.any():
            continue  # (machines with small pages only: digests as before issue 18)
        h.update(a.tobytes())
    h.update(m.blk_state.tobytes())
    h.update(m.blk_isolated.tobytes())
    h.update(m.numastat_arr.tobytes())
    h.update(np.ascontiguousarray(m.distances).tobytes())
    put([(z.node, z.name, z.start_pfn, z.spanned, z.present, z.managed, z.free,
          z.isolated, z.isolated_free, z.cursor, z.wmark_min, z.wmark_low, z.wmark_high)
         for z in m.zones])
    put([(n.id, n.cpus, n.start_pfn, n.spanned) for n in m.nodes_list])
    for pid in m.pids:
        p = m.process(pid)
        put((pid, p.name, p.uid, p.node, sorted(p.mems_allowed), p.policy, p.def_flags,
             p.has_mm, p.il_next))
        for v in p.vmas:
            put((v.start, v.end, v.flags, v.policy, v.pgoff,
                 None if v.anon is None else (v.anon.id, v.anon.base_vpn),
                 None if v.backing is None else v.backing.id))
        keys, pfn, exp = p.pt.export()
        h.update(keys.tobytes() + pfn.tobytes() + exp.tobytes())
    for k in sorted(m.mappings):
        obj = m.mappings[k]
        put((k, type(obj).__name__, getattr(obj, "name", None),
             getattr(obj, "npages", None), getattr(obj, "inflight", None)))
        if hasattr(obj, "pt"):
            keys, pfn, exp = obj.pt.export()
            h.update(keys.tobytes() + pfn.tobytes() + exp.tobytes())
    put(sorted((name, b.id) for name, b in m.files.items()))
    put([(d.name, d.kind, d.node, d.has_hook, d.hook_enabled,
          [(r[:3], np.asarray(r[3]).tolist()) for r in d.pins])
         for d in m.drivers_map.values()])
    put((m.era.name, m.name, m.clock, m.zero_pfn, m.isolated_pages, m.next_id,
         m.write_seq, m.next_pid, m.seed, sorted(m.il_weights.items()),
         sorted(m.vmstat_counts.items()), sorted(m.vmstat_extra.items())))
    h.update(b"" if m.traffic is None else m.traffic.tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------ the host kernel

def kernel_at_least(major: int, minor: int) -> bool:
    """Whether the host kernel is at least major.minor (False when unreadable)."""
    rel = platform.release().split(".")
    try:
        return (int(rel[0]), int(rel[1].split("-")[0])) >= (major, minor)
    except (ValueError, IndexError):
        return False


class OwnPages:
    """Four private anonymous pages of this process: 0 written, 1 untouched, 2 read
    (the zero page), 3 untouched; and move_pages(2) called on them directly, without
    numacon (Linux on x86_64 or aarch64; tests using it skip elsewhere)."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.mmap.restype = ctypes.c_void_p
        self.libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                   ctypes.c_int, ctypes.c_int, ctypes.c_long]
        self.libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self.ps = os.sysconf("SC_PAGE_SIZE")
        self.base = self.libc.mmap(None, 4 * self.ps, 3, 0x22, -1, 0)  # RW, PRIVATE|ANON
        ctypes.c_char.from_address(self.base).value = b"x"
        _ = ctypes.c_char.from_address(self.base + 2 * self.ps).value
        self.addrs = [self.base + i * self.ps for i in range(4)]

    def syscall_move_pages(self, pid: int, addrs: list[int], nodes, flags: int) -> tuple:
        """The host kernel's answer: ("errno", e), or (ret, statuses) with -123 where
        the kernel left an entry unwritten."""
        n = len(addrs)
        pages = (ctypes.c_void_p * n)(*addrs)
        status = (ctypes.c_int * n)(*([-123] * n))
        cn = None if nodes is None else (ctypes.c_int * n)(*nodes)
        ctypes.set_errno(0)
        r = self.libc.syscall(SYSCALL_NR[platform.machine()]["move_pages"], pid, n, pages,
                              cn, status, flags)
        if r < 0:
            return ("errno", ctypes.get_errno())
        return (r, list(status))

    def close(self) -> None:
        self.libc.munmap(self.base, 4 * self.ps)
