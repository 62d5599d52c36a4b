"""The zone allocator with watermarks and distance fallback, and numastat accounting
(mm/page_alloc.c).

One walk decides where frames come from: `zone_takes()` walks a node order, each
node's zones highest first, a zone only while its free pages stay above the
watermark (a "low" pass, then a "min" pass), over a set of books (`ZoneBooks`: free
and isolated-free counts per zone). The allocator walks the zones' own books and
then takes the frames; a plan (a dry run, hot-remove's rehearsal) walks a copy of
the books and credits the frames a migration would free, so both answer alike."""

from __future__ import annotations

import numpy as np

from ..constants import (
    FOLIO_HUGETLB,
    FOLIO_SURPLUS,
    FOLIO_TAIL,
    K_KERNEL,
    KUSE_HUGETLB,
    ORDER_MASK,
    PG_lru,
)
from ..vec import counts
from .frames import SCAN_SLICE
from .state import Kernel

# numastat rows, in nodeN/numastat order (kernel-semantics.md 8.4)
NUMA_HIT, NUMA_MISS, NUMA_FOREIGN, INTERLEAVE_HIT, LOCAL_NODE, OTHER_NODE = range(6)
NUMASTAT_NAMES = ("numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node",
                  "other_node")


def zonelist(k: Kernel, preferred: int, allowed=None) -> list[int]:
    """Nodes with memory ordered by SLIT distance from `preferred` (then id), as
    build_zonelists() orders fallback nodes; `allowed` restricts them (cpuset, BIND)."""
    nodes = [n for n in k.memory_nodes() if allowed is None or n in allowed]
    return sorted(nodes, key=lambda n: (k.distance(preferred, n), n))


class ZoneBooks:
    """Free and isolated-free frame counts per zone (index = zone id): the numbers
    the allocator decides by. `ZoneBooks(k)` copies the zones' current books."""

    __slots__ = ("free", "iso", "huge", "pool")

    def __init__(self, k: Kernel) -> None:
        self.free = np.fromiter((z.free for z in k.zones), np.int64, len(k.zones))
        self.iso = np.fromiter((z.isolated_free for z in k.zones), np.int64, len(k.zones))
        # wholly free PMD-aligned blocks per zone, for a migration that moves huge
        # pages (migrate_folio.py): counted when first needed, then debited/credited
        self.huge: np.ndarray | None = None
        # free hugetlb pool pages per zone per hstate order (hugetlb.PoolBooks)
        self.pool = None

    def credit(self, k: Kernel, pfns: np.ndarray,
               isolated_blocks: np.ndarray | None = None) -> None:
        """Frames given back (a migration's sources) count as free again; those in
        isolated blocks (default: the machine's) as isolated free, as free_frames()
        books them."""
        if len(pfns):
            zids = k.zone_of(pfns)
            self.free += np.bincount(zids, minlength=self.free.size)
            iso = k.blk_isolated if isolated_blocks is None else isolated_blocks
            if iso.any():
                inside = iso[pfns // k.block_pages]
                if inside.any():
                    self.iso += np.bincount(zids[inside], minlength=self.iso.size)

    def node_free(self, k: Kernel, node: int, wmark: str = "min") -> int:
        return sum(max(0, max(0, int(self.free[z.zid]) - _mark(z, wmark)) -
                       int(self.iso[z.zid])) for z in k.node_zones(node))


def _mark(z, wmark: str) -> int:
    return {"low": z.wmark_low, "min": z.wmark_min, "high": z.wmark_high, "none": 0}[wmark]


def zone_takes(k: Kernel, books: ZoneBooks, n: int, nodes: list[int], *,
               movable: bool = True, wmark: str = "low") -> list[tuple[int, int]]:
    """How many of n frames each zone supplies, as [(zone id, count)] in allocation
    order; the books are debited. Fewer than n in total when memory runs out."""
    takes: list[tuple[int, int]] = []
    need = n
    passes = ("low", "min") if wmark == "low" else (wmark,)
    for mark in passes:
        for node in nodes:
            for z in reversed(k.node_zones(node)):
                if need <= 0:
                    break
                if z.movable and not movable:
                    continue
                avail = max(0, int(books.free[z.zid]) - _mark(z, mark)) - int(books.iso[z.zid])
                take = min(need, avail)
                if take <= 0:
                    continue
                books.free[z.zid] -= take
                takes.append((z.zid, take))
                need -= take
        if need <= 0:
            break
    return takes


def _take_free(k: Kernel, z, n: int, out: np.ndarray | None = None) -> np.ndarray:
    """n free frames of zone z (the walk guarantees there are), next-fit from the
    zone's cursor, skipping isolated pageblocks (MIGRATE_ISOLATE). Scans in windows
    a little larger than what is still needed, so a bulk allocation from a mostly
    free zone reads about n entries, not the whole zone."""
    f = k.f
    s, e = z.start_pfn, z.end_pfn
    c = s + z.cursor
    # a free frame's word (kind | flags << 8) is 0: K_FREE, no flags (check() holds it)
    if not z.isolated and c + n <= e and not f.words(c, c + n).any():
        z.cursor = (c + n - s) % max(z.spanned, 1)
        if out is None:
            return np.arange(c, c + n, dtype=np.int64)  # the free run at the cursor
        for a in range(0, n, SCAN_SLICE):  # (temporaries a cache's size, not 32 MiB)
            out[a:a + SCAN_SLICE] = np.arange(c + a, c + min(n, a + SCAN_SLICE),
                                              dtype=np.int64)
        return out
    res = np.empty(n, np.int64) if out is None else out  # (out: the caller's array)
    got = 0
    for a, b in ((c, e), (s, c)):
        pos = a
        while pos < b and got < n:
            # windows of at most SCAN_SLICE frames: small temporaries, kept in cache
            end = min(b, pos + min(max(2 * (n - got), 1 << 16), SCAN_SLICE))
            free = f.words(pos, end) == 0
            if z.isolated:  # skip isolated blocks: the window's blocks, expanded
                bp = k.block_pages
                b0 = pos // bp
                iso = np.repeat(k.blk_isolated[b0:(end - 1) // bp + 1], bp)
                free &= ~iso[pos - b0 * bp:end - b0 * bp]
            idx = np.flatnonzero(free)[: n - got]
            if idx.size:
                dst = res[got:got + idx.size]
                np.add(idx, pos, out=dst)
                got += idx.size
            pos = end
    if not got:
        return res[:0]
    res = res[:got]
    z.cursor = int(res[-1] + 1 - s) % max(z.spanned, 1)
    return res


def alloc_frames(k: Kernel, n: int, nodes: list[int], *, movable: bool = True,
                 wmark: str = "low", clean: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Take n frames walking `nodes` (zone_takes()). Returns (PFNs, the node that
    supplied each: read-only); fewer than n when memory runs out. The caller fills
    the frames in; they come with clean records, marked PG_lru when movable.
    clean=False: as they are (free, stale records), for a caller that writes every
    frame's whole entry (Frames.write_entries) or cleans them itself."""
    takes = zone_takes(k, ZoneBooks(k), n, nodes, movable=movable, wmark=wmark)
    if not takes:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    # the zones' frames go straight into one array (a concatenation of 32 MiB would
    # be mapped afresh: 20 ms of page faults building the reference machine)
    res = np.empty(sum(c for _, c in takes), np.int64)
    got = []
    pos = 0
    for zid, c in takes:
        z = k.zones[zid]
        pfns = _take_free(k, z, c, res[pos:pos + c])
        z.free -= pfns.size
        got.append(pfns)
        pos += c
    if sum(g.size for g in got) < res.size:  # a zone had fewer than its books said
        res = np.concatenate(got)
    supplied = [k.zones[zid].node for zid, _ in takes]
    if len(set(supplied)) == 1:  # one node supplied all (the usual): a read-only view
        nodes_of = np.broadcast_to(np.int64(supplied[0]), res.shape)
    else:
        nodes_of = np.repeat(np.asarray(supplied, np.int64), [g.size for g in got])
    flag = PG_lru if movable else 0
    # a free frame's record is stale (Frames.release): the caller gets it clean
    if len(got) == 1 and res.size and int(res[-1]) - int(res[0]) == res.size - 1:
        run = slice(int(res[0]), int(res[-1]) + 1)  # one run: block writes
        k.f.flags[run] = flag
        if clean:
            k.f.clear_records(run)
    else:
        k.f.flags[res] = flag
        if clean:
            k.f.clear_records(res)
    return res, nodes_of


def enqueue_huge_frames(k: Kernel, frames: np.ndarray) -> None:
    """enqueue_hugetlb_folio(): these frames (whole hugetlb folios) become free pages of
    their node's pool: the kernel's (KUSE_HUGETLB), not the buddy allocator's."""
    f = k.f
    f.kind[frames] = K_KERNEL
    f.flags[frames] = 0
    f.mapping[frames] = KUSE_HUGETLB
    f.mapcount[frames] = 0
    f.index[frames] = 0
    f.content[frames] = 0


def free_frames(k: Kernel, pfns: np.ndarray, zids: np.ndarray | None = None) -> None:
    """Return frames to the buddy allocator: clear them and credit their zones.
    zids: the frames' zones, if the caller has them."""
    if len(pfns) == 0:
        return
    pfns = np.asarray(pfns, dtype=np.int64)
    if k.large_folios:  # heads of large folios freed whole (huge_memory.count_heads)
        spare = k.f.rec["spare"]
        sp = spare[pfns]
        hug = (sp & FOLIO_HUGETLB) != 0
        if hug.any():
            # free_huge_folio(): a surplus huge page (its head marked) goes to the buddy
            # allocator, as any large folio does below, not back to a pool
            at = np.flatnonzero(hug)
            o = (sp[at] & ORDER_MASK).astype(np.int64)
            sur = (spare[pfns[at] & ~((np.int64(1) << o) - 1)] & FOLIO_SURPLUS) != 0
            hug[at[sur]] = False
        if hug.any():
            # free_huge_folio(): a hugetlb page goes back to its node's pool, not here
            enqueue_huge_frames(k, pfns[hug])
            pfns, sp = pfns[~hug], sp[~hug]
            zids = None if zids is None else zids[~hug]
            if pfns.size == 0:
                return
        k.large_folios -= int(((sp & ORDER_MASK) != 0).sum() - ((sp & FOLIO_TAIL) != 0).sum())
    k.f.release(pfns)  # K_FREE is 0: clearing the kind frees the frame
    if zids is None:
        zids = k.zone_of(pfns)
    per_zone = counts(zids, len(k.zones))
    for zi in np.flatnonzero(per_zone):
        k.zones[zi].free += int(per_zone[zi])
    if k.blk_isolated.any():
        iso = k.blk_isolated[pfns // k.block_pages]
        if iso.any():
            ic = np.bincount(zids[iso], minlength=len(k.zones))
            for zi in np.flatnonzero(ic):
                k.zones[zi].isolated_free += int(ic[zi])


def account_alloc(k: Kernel, z_nodes: np.ndarray, p_nodes, c_node: int,
                  interleave: np.ndarray | None = None) -> None:
    """zone_statistics(): z supplied the page, p was preferred, c is the CPU's node.
    z==p: hit[z]++ else miss[z]++, foreign[p]++; z==c: local[z]++ else other[z]++;
    an interleave page that landed on its intended node: interleave_hit[z]++."""
    if len(z_nodes) == 0:
        return
    z = np.asarray(z_nodes)
    p = np.asarray(p_nodes)
    # every row but interleave_hit follows from the pages counted per (supplying,
    # preferred) node pair
    account_pairs(k, k.node_pairs(z, p), c_node)
    if interleave is not None:
        il = np.broadcast_to(np.asarray(interleave, dtype=bool), z.shape) & (z == p)
        k.numastat_arr[INTERLEAVE_HIT] += np.bincount(z[il], minlength=k.nr_node_ids)


def account_pairs(k: Kernel, zp: np.ndarray, c_node: int) -> None:
    """account_alloc() of pages counted per (supplying, preferred) node pair: zp[z, p]."""
    st = k.numastat_arr
    hit = np.diagonal(zp)
    by_z = zp.sum(axis=1)
    st[NUMA_HIT] += hit
    st[NUMA_MISS] += by_z - hit
    st[NUMA_FOREIGN] += zp.sum(axis=0) - hit
    local = np.zeros_like(by_z)
    if 0 <= c_node < by_z.size:
        local[c_node] = by_z[c_node]
    st[LOCAL_NODE] += local
    st[OTHER_NODE] += by_z - local
