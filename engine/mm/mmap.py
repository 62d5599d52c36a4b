"""The mmap and munmap system calls (mm/mmap.c do_mmap(), mm/util.c vm_mmap_pgoff()):
argument checks, overcommit accounting, the new VMA (anonymous, shmem, a page-cache
file or a driver's PFN map), and the populate that VM_LOCKED asks for."""

from __future__ import annotations

from ..constants import (
    ANON_HUGEPAGE,
    ANON_SHMEM,
    EAGAIN,
    EINVAL,
    ENOMEM,
    MAP_ANONYMOUS,
    MAP_HUGE_MASK,
    MAP_HUGE_SHIFT,
    MAP_HUGETLB,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_SHARED,
    VM_HUGETLB,
    VM_LOCKED,
    VM_LOCKED_MASK,
    VM_NORESERVE,
    VM_SHARED,
    VM_WRITE,
    oserror,
)
from .drivers import map_into
from .hugetlb import hstate_orders, hugetlb_reserve, return_unused_surplus
from .memory import (
    TASK_SIZE,
    get_unmapped_area,
    insert_vma,
    merge_vmas,
    new_vma,
    prot_to_vmflags,
    remove_vma,
    vmas_in_range,
)
from .mlock import limit_text, mlock_future_ok, mm_populate
from .mm_types import Process
from .state import Kernel


def overcommit_ok(k: Kernel, vmflags: int, shared_anon: bool, npages: int) -> bool:
    """__vm_enough_memory() with vm.overcommit_memory=0 (OVERCOMMIT_GUESS): an
    accountable mapping (private writable, or shared anonymous memory, and not
    MAP_NORESERVE) larger than RAM + swap fails; swap is 0 here."""
    if vmflags & VM_NORESERVE:
        return True
    accountable = shared_anon or (vmflags & (VM_SHARED | VM_WRITE)) == VM_WRITE
    return not accountable or npages <= k.totalram_pages()


def do_mmap(k: Kernel, p: Process, length: int, prot: int, flags: int, file: str | None,
            driver: str | None) -> int:
    """mmap(NULL, length, prot, flags, ...): returns the address."""
    if length <= 0:
        raise oserror(EINVAL, f"mmap: length {length} must be positive")
    if not (flags & (MAP_SHARED | MAP_PRIVATE)) or (flags & MAP_SHARED and flags & MAP_PRIVATE):
        raise oserror(EINVAL, "mmap: exactly one of MAP_SHARED and MAP_PRIVATE is required")
    if file is not None and driver is not None:
        raise oserror(EINVAL, "mmap: give a file or a driver, not both")
    if length > TASK_SIZE:
        raise oserror(ENOMEM, f"mmap: {length} bytes is more than the address space")
    length = k.page_align(length)
    npages = length >> k.page_shift
    vmflags = prot_to_vmflags(prot, flags) | p.def_flags
    if not mlock_future_ok(k, p, vmflags, length):
        # do_mmap(): after mlockall(MCL_FUTURE) a mapping that would take the locked
        # memory past RLIMIT_MEMLOCK is refused
        raise oserror(EAGAIN, f"mmap: {npages} more locked pages (mlockall(MCL_FUTURE)) "
                              f"exceed RLIMIT_MEMLOCK ({limit_text(p)}) of pid {p.pid}")
    if driver is not None:
        return map_into(k, k.driver(driver), p, length, prot)
    if file is None and not flags & MAP_ANONYMOUS:
        raise oserror(EINVAL, "mmap: a file mapping needs file=NAME")
    if flags & MAP_NORESERVE:
        vmflags |= VM_NORESERVE
    if flags & MAP_HUGETLB:
        return _mmap_hugetlb(k, p, length, vmflags, file,
                             (flags >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK)
    shared_anon = file is None and bool(flags & MAP_SHARED)
    if not overcommit_ok(k, vmflags, shared_anon, npages):
        raise oserror(ENOMEM, f"mmap: {npages} pages is more than the machine's "
                              f"{k.totalram_pages()} pages of RAM (vm.overcommit_memory=0; "
                              f"MAP_NORESERVE skips the check)")
    # thp_get_unmapped_area(): anonymous mappings of a PMD or more start PMD-aligned
    # (so that THP can map them; not before THP existed)
    pmd = k.page_size << (k.page_shift - 3)
    align = pmd if file is None and k.era.has_thp and length >= pmd else 0
    addr = get_unmapped_area(p, length, align)
    if addr is None:
        raise oserror(ENOMEM, f"mmap: no gap of {length} bytes left in pid {p.pid}")
    backing = None
    if file is not None:
        backing = k.file(file, create=True)
        backing.grow(npages)
    elif shared_anon:
        # MAP_SHARED|MAP_ANONYMOUS is shmem (shmem_zero_setup()): an object of its own,
        # whose pages follow its shared policy
        backing = k.file(f"{ANON_SHMEM} #{k.next_mapping_id()}", create=True)
        backing.shmem = True
        backing.grow(npages)
    v = new_vma(p, addr, length, vmflags, backing, 0)
    insert_vma(p, v)
    if vmflags & VM_LOCKED:
        # mlockall(MCL_FUTURE): vm_mmap_pgoff() populates the new mapping, errors ignored
        mm_populate(k, p, addr, addr + length, ignore_errors=True)
    merge_vmas(p, addr, addr + length)
    return addr


def hstate_sizelog(k: Kernel, log: int) -> int | None:
    """hstate_sizelog(): the hstate order of MAP_HUGE_* (log2 of the size; 0: the
    default hstate), None when there is no hstate of that size."""
    if not log:
        return hstate_orders(k)[0]
    for o in hstate_orders(k):
        if k.page_shift + o == log:
            return o
    return None


def _mmap_hugetlb(k: Kernel, p: Process, length: int, vmflags: int, file, log: int = 0
                  ) -> int:
    """mmap(MAP_HUGETLB): an anonymous mapping of huge pages from the hugetlb pools, on
    an unlinked hugetlbfs file (hugetlb_file_setup()). ksys_mmap_pgoff(): a file that
    is not on hugetlbfs is EINVAL; a size with no hstate is EINVAL (hstate_sizelog()
    NULL; log: MAP_HUGE_2MB / MAP_HUGE_1GB's log2 of the page size, 0: the default,
    2 MiB); the length is rounded up to the huge page size. hugetlb_reserve_pages()
    reserves its huge pages (not with MAP_NORESERVE; too few free ones: ENOMEM): a
    private mapping's reservation is its VMA's (HPAGE_RESV_OWNER), a shared one's its
    file's. A shared mapping's pages are the file's: every mapping of it, fork()'s
    children too, maps the same huge pages and writes them in place."""
    if file is not None:
        raise oserror(EINVAL, "mmap: MAP_HUGETLB with a file that is not on hugetlbfs")
    order = hstate_sizelog(k, log)
    if order is None:
        raise oserror(EINVAL, f"mmap: MAP_HUGETLB with a huge page size of 2^{log} bytes, "
                              f"which no hstate has")
    hp = k.page_size << order
    length = -(-length // hp) * hp
    reserve = not vmflags & VM_NORESERVE
    if reserve:
        hugetlb_reserve(k, p, length // hp, order)
    addr = get_unmapped_area(p, length, hp)
    if addr is None:
        raise oserror(ENOMEM, f"mmap: no gap of {length} bytes left in pid {p.pid}")
    backing = None
    if vmflags & VM_SHARED:
        backing = k.file(f"{ANON_HUGEPAGE} #{k.next_mapping_id()}", create=True)
        backing.hugetlb = True
        backing.resv = reserve
        backing.grow(length >> k.page_shift)
    # mmap_region(): a hugetlb VMA never keeps VM_LOCKED (mlockall(MCL_FUTURE)), but
    # vm_mmap_pgoff() still populates it
    v = new_vma(p, addr, length, (vmflags & ~VM_LOCKED_MASK) | VM_HUGETLB, backing, 0)
    v.hpage_order = order
    v.resv_owner = reserve and backing is None
    insert_vma(p, v)
    if vmflags & VM_LOCKED:
        mm_populate(k, p, addr, addr + length, ignore_errors=True)
    return addr


def do_munmap(k: Kernel, p: Process, addr: int, length: int) -> None:
    if addr < 0 or addr & (k.page_size - 1) or length <= 0:
        raise oserror(EINVAL, f"munmap: address {addr:#x} must be page aligned and "
                              f"length positive")
    end = addr + k.page_align(length)
    if end > TASK_SIZE:
        raise oserror(EINVAL, f"munmap: [{addr:#x}, {end:#x}) is outside the address space")
    for v in vmas_in_range(k, p, addr, end, split=False):
        # hugetlb_vm_op_split(): a hugetlb VMA is cut at its huge page boundaries only
        hp = k.page_size << v.hpage_order
        if v.flags & VM_HUGETLB and ((v.start < addr and addr % hp)
                                     or (v.end > end and end % hp)):
            raise oserror(EINVAL, f"munmap: [{addr:#x}, {end:#x}) cuts a huge page of "
                                  f"the hugetlb mapping {v.start:#x}-{v.end:#x}")
    hugetlb = False
    for v in vmas_in_range(k, p, addr, end, split=True):
        hugetlb |= bool(v.flags & VM_HUGETLB)
        remove_vma(k, p, v)
    if hugetlb:  # their reservations went (hugetlb_vm_op_close())
        return_unused_surplus(k)
