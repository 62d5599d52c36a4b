"""Linux constants (values from include/uapi/linux/mempolicy.h, mman.h, errno.h)
and the engine's page-frame encodings."""

from __future__ import annotations

import errno as _errno

import numpy as _np

# --- memory policy modes (include/uapi/linux/mempolicy.h) ---
MPOL_DEFAULT = 0
MPOL_PREFERRED = 1
MPOL_BIND = 2
MPOL_INTERLEAVE = 3
MPOL_LOCAL = 4
MPOL_PREFERRED_MANY = 5
MPOL_WEIGHTED_INTERLEAVE = 6
MPOL_MAX = 7

MPOL_F_STATIC_NODES = 1 << 15
MPOL_F_RELATIVE_NODES = 1 << 14
MPOL_F_NUMA_BALANCING = 1 << 13
MPOL_MODE_FLAGS = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING

# get_mempolicy flags
MPOL_F_NODE = 1 << 0
MPOL_F_ADDR = 1 << 1
MPOL_F_MEMS_ALLOWED = 1 << 2

# mbind / move_pages flags
MPOL_MF_STRICT = 1 << 0
MPOL_MF_MOVE = 1 << 1
MPOL_MF_MOVE_ALL = 1 << 2
MPOL_MF_LAZY = 1 << 3
MPOL_MF_VALID = MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL

MODE_NAMES = {
    MPOL_DEFAULT: "default",
    MPOL_PREFERRED: "prefer",
    MPOL_BIND: "bind",
    MPOL_INTERLEAVE: "interleave",
    MPOL_LOCAL: "local",
    MPOL_PREFERRED_MANY: "prefer (many)",
    MPOL_WEIGHTED_INTERLEAVE: "weighted interleave",
}

# --- mmap ---
PROT_NONE = 0x0
PROT_READ = 0x1
PROT_WRITE = 0x2
PROT_EXEC = 0x4
MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_ANONYMOUS = 0x20
MAP_NORESERVE = 0x4000
MAP_HUGETLB = 0x40000
MAP_HUGE_SHIFT = 26  # with MAP_HUGETLB: log2 of the huge page size in these 6 bits
MAP_HUGE_MASK = 0x3F
MAP_HUGE_2MB = 21 << MAP_HUGE_SHIFT
MAP_HUGE_1GB = 30 << MAP_HUGE_SHIFT
MCL_CURRENT = 1
MCL_FUTURE = 2
MCL_ONFAULT = 4
MLOCK_ONFAULT = 0x01  # mlock2() flag (4.4)
RLIM_INFINITY = (1 << 64) - 1  # an unlimited resource limit (unsigned long ~0)

# --- VMA flags (include/linux/mm.h values) ---
VM_READ = 0x1
VM_WRITE = 0x2
VM_EXEC = 0x4
VM_SHARED = 0x8
VM_IO = 0x4000
VM_LOCKED = 0x2000
VM_LOCKONFAULT = 0x80000  # mlock2(MLOCK_ONFAULT) / mlockall(MCL_ONFAULT): lock pages as they fault
VM_LOCKED_MASK = VM_LOCKED | VM_LOCKONFAULT
VM_PFNMAP = 0x400
VM_DONTEXPAND = 0x40000
VM_NORESERVE = 0x200000
VM_SPECIAL = VM_IO | VM_PFNMAP | VM_DONTEXPAND
VM_HUGEPAGE = 0x20000000  # madvise(MADV_HUGEPAGE)
VM_NOHUGEPAGE = 0x40000000  # madvise(MADV_NOHUGEPAGE)
VM_HUGETLB = 0x00400000  # a hugetlbfs / MAP_HUGETLB mapping

# madvise(2) advice (include/uapi/asm-generic/mman-common.h)
MADV_HUGEPAGE = 14
MADV_NOHUGEPAGE = 15

# --- page-frame kinds (engine encoding; what holds the frame) ---
K_FREE = 0
K_KERNEL = 1  # memmap, slab, page tables, the zero page: unmovable
K_ANON = 2
K_FILE = 3  # page cache
K_PFNMAP = 4  # frames owned by a driver, mapped with VM_PFNMAP (no LRU)
K_OFFLINE = 5  # in an offline memory block
KIND_NAMES = ("free", "kernel", "anon", "file", "pfnmap", "offline")

# --- page flags (one byte; mirrors struct page flag bits we model) ---
PG_locked = _np.uint8(1 << 0)
PG_dirty = _np.uint8(1 << 1)
PG_writeback = _np.uint8(1 << 2)
PG_mlocked = _np.uint8(1 << 3)  # also PG_unevictable: mlocked pages sit on the unevictable LRU
PG_lru = _np.uint8(1 << 4)
PG_isolated = _np.uint8(1 << 5)
PG_reserved = _np.uint8(1 << 6)
PG_pinned = _np.uint8(1 << 7)  # long-term GUP pin (FOLL_LONGTERM), e.g. RDMA
FLAG_NAMES = (
    (PG_locked, "locked"),
    (PG_dirty, "dirty"),
    (PG_writeback, "writeback"),
    (PG_mlocked, "mlocked"),
    (PG_lru, "lru"),
    (PG_isolated, "isolated"),
    (PG_reserved, "reserved"),
    (PG_pinned, "pinned"),
)

# kernel frame uses (stored in `mapping` for K_KERNEL frames)
KUSE_MEMMAP = 0
KUSE_SLAB = 1
KUSE_PAGETABLE = 2
KUSE_ZERO = 3
KUSE_HUGETLB = 4  # a free huge page of a hugetlb pool (mm/hugetlb.c free lists)

# a frame's place in a large folio, in its record's `spare` field (engine/mm/
# huge_memory.py says how): the order on the head and on each tail, and these bits
ORDER_MASK = 0x001F
FOLIO_SURPLUS = 0x1000  # on a hugetlb head: a surplus huge page (freed to the buddy allocator)
FOLIO_HUGETLB = 0x2000  # every frame of a hugetlb folio (pool page, free or in use)
FOLIO_PTE_MAPPED = 0x4000  # on a head: its PMD mapping was split
FOLIO_TAIL = 0x8000
MAX_OVERCOMMIT_HUGEPAGES = 1 << 40  # nr_overcommit_hugepages above this: refused

# the page-cache name of a MAP_SHARED|MAP_ANONYMOUS object (shmem_zero_setup()), as
# /proc/PID/maps shows it; such an object lives as long as something maps or pins it
ANON_SHMEM = "/dev/zero (deleted)"
# the hugetlbfs file of a MAP_HUGETLB mapping (hugetlb_file_setup()): unlinked, so it
# too lives as long as something maps it
ANON_HUGEPAGE = "/anon_hugepage (deleted)"
UNLINKED = (ANON_SHMEM, ANON_HUGEPAGE)

ZONE_NAMES = ("DMA", "DMA32", "Normal", "Movable")
ZONE_MOVABLE = 3

# NR_MAX_BATCHED_MIGRATION: base pages unmapped per TLB flush (modern migrate_pages_batch)
MIGRATE_BATCH = 512

# x86-64 default CONFIG_NODES_SHIFT=6
MAX_NUMNODES = 64

# include/linux/threads.h: the largest pid on 64-bit; a uid is a 32-bit uid_t whose
# all-ones value is INVALID_UID (setuid(-1) is EINVAL)
PID_MAX_LIMIT = 4 * 1024 * 1024
INVALID_UID = (1 << 32) - 1

EPERM = _errno.EPERM
ENOENT = _errno.ENOENT
ESRCH = _errno.ESRCH
EINTR = _errno.EINTR
EIO = _errno.EIO
E2BIG = _errno.E2BIG
EAGAIN = _errno.EAGAIN
ENOMEM = _errno.ENOMEM
EACCES = _errno.EACCES
EFAULT = _errno.EFAULT
EBUSY = _errno.EBUSY
ENODEV = _errno.ENODEV
EINVAL = _errno.EINVAL
EOPNOTSUPP = _errno.EOPNOTSUPP
EEXIST = _errno.EEXIST
EOVERFLOW = _errno.EOVERFLOW
ENOSYS = _errno.ENOSYS


def oserror(err: int, msg: str) -> OSError:
    """An OSError carrying Linux's errno and a message a person understands."""
    return OSError(err, msg)
