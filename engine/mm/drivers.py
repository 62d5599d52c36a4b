"""Simulated drivers: PFN-mapped regions (VM_PFNMAP|VM_IO VMAs whose frames are not
on the LRU) with an optional vm_ops->migrate hook, and an RDMA-style driver that pins
ordinary pages long-term (FOLL_LONGTERM).

vm_ops->migrate existed from 2.6.18 until its removal in the 3.17-3.19 window and
never had an in-tree user; the console lets you switch it on to see what it was for."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np

from ..constants import (
    EFAULT,
    EINVAL,
    ENOMEM,
    K_ANON,
    K_FILE,
    K_PFNMAP,
    VM_IO,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    PG_pinned,
    PG_reserved,
    oserror,
)
from ..nodemask import node_remap
from ..vec import distinct, value_counts
from .cost import migrate_cost_ns
from .fault import touch
from .memory import (
    get_unmapped_area,
    insert_vma,
    new_vma,
    prot_to_vmflags,
    range_holes,
    release_shmem,
    vmas_in_range,
)
from .mm_types import Backing, Process
from .page_alloc import ZoneBooks, alloc_frames, free_frames, zone_takes, zonelist
from .rmap import redirect
from .state import Driver, Kernel

DRIVER_KINDS = ("uncached", "framebuffer", "rdma")


def setup(k: Kernel, d: Driver) -> None:
    """Allocate the region's frames on the driver's node (kernel zones: a driver
    allocation is not movable)."""
    if not d.pfnmap:
        return
    b = k.new_backing(f"driver:{d.name}", "driver", d.npages)
    pfns, _ = alloc_frames(k, d.npages, [d.node], movable=False, wmark="min")
    if pfns.size < d.npages:
        free_frames(k, pfns)
        raise oserror(ENOMEM, f"driver {d.name}: node {d.node} cannot hold {d.npages} pages")
    f = k.f
    f.kind[pfns] = K_PFNMAP
    f.flags[pfns] = PG_reserved
    f.mapping[pfns] = b.id
    f.index[pfns] = np.arange(d.npages)  # K_PFNMAP: the driver holds a reference
    b.set_pages(np.arange(d.npages), pfns)
    d.backing = b


def map_into(k: Kernel, d: Driver, p: Process, length: int, prot: int) -> int:
    """remap_pfn_range(): a VM_PFNMAP|VM_IO mapping of the region, mapped at once."""
    if not d.pfnmap:
        raise oserror(EINVAL, f"driver {d.name} ({d.kind}) has no region to map")
    npages = length >> k.page_shift
    if npages > d.npages:
        raise oserror(EINVAL, f"driver {d.name}: region holds {d.npages} pages, "
                              f"asked for {npages}")
    vf = prot_to_vmflags(prot, 0) | VM_SHARED | VM_PFNMAP | VM_IO
    vf &= VM_READ | VM_WRITE | VM_SHARED | VM_PFNMAP | VM_IO
    addr = get_unmapped_area(p, length)
    if addr is None:
        raise oserror(ENOMEM, f"mmap: no room for {length} bytes in pid {p.pid}")
    v = new_vma(p, addr, length, vf, d.backing, 0)
    insert_vma(p, v)
    pfns = d.backing.pages(np.arange(npages))
    v.set_ptes(np.arange(npages), pfns)
    k.f.mapcount[pfns] += 1
    return addr


def hook_target(old_nodes, new_nodes) -> Callable[[int], int]:
    """vm_ops->migrate(vma, from, to, flags): a frame on a node of `from` goes to the
    matching node of `to` (the driver relocates it itself, keeping its content)."""
    old, new = tuple(old_nodes), tuple(new_nodes)
    return lambda n: node_remap(old, new, n)


def relocation_moves(k: Kernel, d: Driver, where: Callable[[int], int],
                     avoid_blocks: np.ndarray | None = None) -> list[tuple[int, np.ndarray]]:
    """The region frames a relocation moves, as [(target node, source frames)] in the
    order it moves them: where(node) -> target node (same node = stay); frames in
    blocks marked in avoid_blocks move too (hot-remove)."""
    if not d.pfnmap:
        return []
    _idx, pfns = d.backing.present()
    nodes = k.node_of(pfns)
    # where() per distinct node, then a gather: no Python loop over frames
    uniq, inv = np.unique(nodes, return_inverse=True)
    tgt = np.array([where(int(n)) for n in uniq], dtype=np.int64)[inv]
    move = tgt != nodes
    if avoid_blocks is not None:
        move |= avoid_blocks[pfns // k.block_pages]
    return [(int(t), pfns[move & (tgt == t)]) for t in distinct(tgt[move])]


def _no_room(d: Driver, node: int) -> OSError:
    return oserror(ENOMEM, f"driver {d.name}: no room on node {node}")


def relocate(k: Kernel, d: Driver, where: Callable[[int], int],
             avoid_blocks: np.ndarray | None = None) -> Counter:
    """Move the frames relocation_moves() names, each target's frames from its
    zonelist (not movable, down to the min watermark). Returns frames per node they
    landed on; raises ENOMEM when a target has no room (the earlier targets' frames
    stay moved)."""
    f = k.f
    to: Counter = Counter()
    for t, src in relocation_moves(k, d, where, avoid_blocks):
        dst, dnodes = alloc_frames(k, src.size, zonelist(k, t), movable=False, wmark="min")
        if dst.size < src.size:
            free_frames(k, dst)
            raise _no_room(d, t)
        f.put(dst, *f.take(src))
        redirect(k, src, dst)
        k.note_moved(src, dst, d.name)
        k.time.advance(migrate_cost_ns(k, k.node_of(src), dnodes))
        free_frames(k, src)
        to.update(value_counts(dnodes))
    return to


def rehearse_relocate(k: Kernel, books: ZoneBooks, d: Driver, where: Callable[[int], int],
                      avoid_blocks: np.ndarray | None = None,
                      isolated_blocks: np.ndarray | None = None) -> tuple[Counter, int]:
    """relocate() on a copy of the allocator's books (the same walk, debited by the
    new frames, credited by the freed ones): (frames per node they would land on,
    simulated ns). Raises relocate()'s ENOMEM."""
    to: Counter = Counter()
    ns = 0
    for t, src in relocation_moves(k, d, where, avoid_blocks):
        takes = zone_takes(k, books, src.size, zonelist(k, t), movable=False, wmark="min")
        if sum(c for _z, c in takes) < src.size:
            raise _no_room(d, t)
        dnodes = np.concatenate([np.full(c, k.zones[z].node, np.int64) for z, c in takes])
        ns += migrate_cost_ns(k, k.node_of(src), dnodes)
        books.credit(k, src, isolated_blocks)
        to.update(value_counts(dnodes))
    return to, ns


def pin_range(k: Kernel, p: Process, addr: int, length: int, d: Driver) -> int:
    """An RDMA memory registration (ib_umem_get(): pin_user_pages(FOLL_WRITE |
    FOLL_LONGTERM)): fault the range in as a write would, without writing (the fault
    path's populate mode breaks copy-on-write and never changes data), then take a
    long-term pin on every page (refcount + PG_pinned), which makes them fail
    migration. The registration keeps its frames, as an MR keeps its pages, until
    unpin_range() deregisters it or the process exits. Returns the number of pages
    that were not pinned before."""
    if length <= 0:
        raise oserror(EINVAL, "pin: length must be positive")
    start = addr & ~(k.page_size - 1)
    end = k.page_align(addr + length)
    if range_holes(p, start, end):  # __get_user_pages(): no VMA is -EFAULT
        raise oserror(EFAULT, f"pin: [{start:#x}, {end:#x}) is not fully mapped")
    for v in vmas_in_range(k, p, start, end, split=False):
        # check_vma_flags(): no struct pages behind VM_IO|VM_PFNMAP; FOLL_WRITE needs
        # VM_WRITE
        if v.flags & (VM_IO | VM_PFNMAP):
            raise oserror(EFAULT, f"pin: {v.start:#x}-{v.end:#x} maps driver memory "
                                  f"(VM_IO|VM_PFNMAP); it has no pages to pin")
        if not v.flags & VM_WRITE:
            raise oserror(EFAULT, f"pin: {v.start:#x}-{v.end:#x} is mapped without "
                                  f"PROT_WRITE")
    touch(k, p, start, end - start, write=True, populate=True)
    parts = []
    for v in vmas_in_range(k, p, start, end, split=False):
        o0 = (max(v.start, start) - v.start) >> k.page_shift
        o1 = (min(v.end, end) - v.start) >> k.page_shift
        parts.append(v.present(o0, o1)[1])
    pfns = distinct(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    new = pfns[(k.f.flags[pfns] & PG_pinned) == 0]
    k.f.flags[new] |= PG_pinned  # the pin's reference (refcount derives from it)
    d.pins.append((p.pid, start, end - start, pfns.astype(np.int64)))
    return int(new.size)


def unpin_range(k: Kernel, p: Process, addr: int, length: int, d: Driver) -> int:
    """Deregister the process's registrations with `d` that start in the range (an
    MR is deregistered whole); returns the number of pages no longer pinned."""
    start = addr & ~(k.page_size - 1)
    end = k.page_align(addr + length)
    gone = [r for r in d.pins if r[0] == p.pid and start <= r[1] < end]
    return release_pins(k, d, gone)


def release_pins(k: Kernel, d: Driver, regs: list) -> int:
    """Drop registrations of `d`: their frames that no other registration (of any
    driver) holds lose PG_pinned and the pin's reference; a page whose last
    reference that was is freed (put_page()), and an anonymous shared memory object
    that only the pins kept alive goes with it."""
    if not regs:
        return 0
    ids = {id(r) for r in regs}
    d.pins = [r for r in d.pins if id(r) not in ids]
    f = k.f
    mine = np.concatenate([r[3] for r in regs])
    held = [r[3] for dd in k.drivers_map.values() for r in dd.pins]
    # frames still held by a live registration keep their pin
    pfns = np.setdiff1d(mine, np.concatenate(held)) if held else distinct(mine)
    if pfns.size == 0:
        return 0
    f.flags[pfns] &= ~PG_pinned
    files = pfns[f.kind[pfns] == K_FILE]
    dead = pfns[(f.refcount[pfns] <= 0) & (f.kind[pfns] == K_ANON)]
    if dead.size:
        free_frames(k, dead)
    for mid in distinct(f.mapping[files]).tolist():
        b = k.mappings.get(int(mid))
        if isinstance(b, Backing):
            release_shmem(k, b)
    return int(pfns.size)
