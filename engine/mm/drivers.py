"""Simulated drivers: PFN-mapped regions (VM_PFNMAP|VM_IO VMAs whose frames are not
on the LRU) with an optional vm_ops->migrate hook, and an RDMA-style driver that pins
ordinary pages long-term (FOLL_LONGTERM).

vm_ops->migrate existed from 2.6.18 until its removal in the 3.17-3.19 window and
never had an in-tree user; the console lets you switch it on to see what it was for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..constants import (
    EINVAL,
    ENOMEM,
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
from ..vec import distinct

if TYPE_CHECKING:  # pragma: no cover
    from ..machine import Machine

DRIVER_KINDS = ("uncached", "framebuffer", "rdma")


@dataclass(eq=False)
class Driver:
    name: str
    kind: str  # uncached | framebuffer (PFN-mapped region) | rdma (long-term pins)
    node: int
    npages: int
    has_hook: bool = False
    hook_enabled: bool = False
    backing: object = None  # Backing of its region (PFN-mapped kinds)
    pins: list = field(default_factory=list)  # (pid, addr, length) pinned by rdma

    @property
    def pfnmap(self) -> bool:
        return self.kind != "rdma"

    def setup(self, m: Machine) -> None:
        """Allocate the region's frames on the driver's node (kernel zones: a driver
        allocation is not movable)."""
        if not self.pfnmap:
            return
        from .page_alloc import alloc_frames

        b = m.new_backing(f"driver:{self.name}", "driver", self.npages)
        pfns = alloc_frames(m, self.npages, [self.node], movable=False, wmark="min")
        if pfns.size < self.npages:
            raise oserror(ENOMEM, f"driver {self.name}: node {self.node} cannot hold "
                                  f"{self.npages} pages")
        f = m.f
        f.kind[pfns] = K_PFNMAP
        f.flags[pfns] = PG_reserved
        f.mapping[pfns] = b.id
        f.index[pfns] = np.arange(self.npages)
        f.refcount[pfns] = 1  # the driver's own reference
        b.pages[:] = pfns
        self.backing = b

    def map_into(self, m: Machine, p, length: int, prot: int) -> int:
        """remap_pfn_range(): a VM_PFNMAP|VM_IO mapping of the region, mapped at once."""
        from .memory import get_unmapped_area, insert_vma, new_vma, prot_to_vmflags

        if not self.pfnmap:
            raise oserror(EINVAL, f"driver {self.name} ({self.kind}) has no region to map")
        npages = length >> m.page_shift
        if npages > self.npages:
            raise oserror(EINVAL, f"driver {self.name}: region holds {self.npages} pages, "
                                  f"asked for {npages}")
        vf = prot_to_vmflags(prot, 0) | VM_SHARED | VM_PFNMAP | VM_IO
        vf &= VM_READ | VM_WRITE | VM_SHARED | VM_PFNMAP | VM_IO
        addr = get_unmapped_area(p, length)
        v = new_vma(m, p, addr, length, vf, self.backing, 0)
        v.pte[:] = self.backing.pages[:npages]
        m.f.mapcount[v.pte] += 1
        m.f.refcount[v.pte] += 1
        insert_vma(p, v)
        return addr

    def migrate_hook(self, m: Machine, v, old_nodes, new_nodes) -> int:
        """vm_ops->migrate(vma, from, to, flags): the driver relocates the region's
        frames that sit on `old_nodes` to the matching node of `new_nodes` itself,
        keeping their content. Returns the number of frames moved."""
        from .mempolicy import node_remap

        return self.relocate(m, lambda n: node_remap(tuple(old_nodes), tuple(new_nodes), n))

    def relocate(self, m: Machine, where, avoid_blocks=None) -> int:
        """Move region frames: where(node) -> target node (same node = stay)."""
        from ..runtime.clock import migrate_cost_ns
        from . import rmap
        from .page_alloc import alloc_frames, zonelist

        if not self.pfnmap:
            return 0
        b = self.backing
        pfns = b.pages.copy()
        nodes = m.node_of(pfns)
        # where() per distinct node, then a gather: no Python loop over frames
        uniq, inv = np.unique(nodes, return_inverse=True)
        tgt = np.array([where(int(n)) for n in uniq], dtype=np.int64)[inv]
        move = tgt != nodes
        if avoid_blocks is not None:
            move |= avoid_blocks[pfns // m.block_pages]
        moved = 0
        f = m.f
        for t in distinct(tgt[move]):
            sel = np.flatnonzero(move & (tgt == t))
            src = pfns[sel]
            dst = alloc_frames(m, src.size, zonelist(m, int(t)), movable=False, wmark="min")
            if dst.size < src.size:
                m.free_frames(dst)  # give back what was taken (it leaked before)
                raise oserror(ENOMEM, f"driver {self.name}: no room on node {int(t)}")
            for name in ("kind", "flags", "mapping", "index", "mapcount", "refcount",
                         "content"):
                arr = getattr(f, name)
                arr[dst] = arr[src]
            rmap.redirect(m, src, dst)
            m.clock_ns += migrate_cost_ns(m, m.node_of(src), m.node_of(dst))
            f.refcount[src] = 0
            m.free_frames(src)
            moved += src.size
        return moved


def pin_range(m: Machine, p, addr: int, length: int, driver: Driver) -> int:
    """An RDMA registration: fault the range in for write and take a long-term pin on
    every page (refcount + PG_pinned), which makes the pages fail migration."""
    end = addr + m.page_align(length)
    m.touch(p.pid, addr, end - addr, write=True)
    n = 0
    for v in m.vmas_in_range(p, addr, end, split=False):
        o0 = (max(v.start, addr) - v.start) >> m.page_shift
        o1 = (min(v.end, end) - v.start) >> m.page_shift
        pfn = v.pte[o0:o1]
        pfn = pfn[(pfn >= 0) & ((m.f.flags[pfn] & PG_pinned) == 0)]
        m.f.flags[pfn] |= PG_pinned
        m.f.refcount[pfn] += 1
        n += pfn.size
    driver.pins.append((p.pid, addr, end - addr))
    return n


def unpin_range(m: Machine, p, addr: int, length: int, driver: Driver) -> int:
    end = addr + m.page_align(length)
    n = 0
    for v in m.vmas_in_range(p, addr, end, split=False):
        o0 = (max(v.start, addr) - v.start) >> m.page_shift
        o1 = (min(v.end, end) - v.start) >> m.page_shift
        pfn = v.pte[o0:o1]
        pfn = pfn[(pfn >= 0) & ((m.f.flags[pfn] & PG_pinned) != 0)]
        m.f.flags[pfn] &= ~PG_pinned
        m.f.refcount[pfn] -= 1
        n += pfn.size
    driver.pins = [x for x in driver.pins if not (x[0] == p.pid and x[1] >= addr
                                                   and x[1] < end)]
    return n


__all__ = ["Driver", "pin_range", "unpin_range", "DRIVER_KINDS", "VM_PFNMAP"]
