"""Page frames as arrays indexed by PFN, the zone allocator with watermarks and
distance fallback, and numastat accounting (mm/page_alloc.c)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..constants import K_FREE, PG_lru

if TYPE_CHECKING:  # pragma: no cover
    from ..machine import Machine

# numastat rows, in nodeN/numastat order (kernel-semantics.md 8.4)
NUMA_HIT, NUMA_MISS, NUMA_FOREIGN, INTERLEAVE_HIT, LOCAL_NODE, OTHER_NODE = range(6)
NUMASTAT_NAMES = ("numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node",
                  "other_node")


class Frames:
    """Struct of arrays, one entry per PFN: 18 bytes a frame."""

    FIELDS = ("kind", "flags", "mapping", "index", "mapcount", "refcount", "content")
    DTYPES = (np.uint8, np.uint8, np.int32, np.int32, np.int16, np.int16, np.uint32)

    def __init__(self, n: int):
        self.n = n
        for name, dt in zip(self.FIELDS, self.DTYPES):
            setattr(self, name, np.zeros(n, dtype=dt))

    def nbytes(self) -> int:
        return sum(getattr(self, f).nbytes for f in self.FIELDS)

    def clear(self, pfns) -> None:
        for f in self.FIELDS:
            getattr(self, f)[pfns] = 0


def zonelist(m: Machine, preferred: int, allowed=None) -> list[int]:
    """Nodes with memory ordered by SLIT distance from `preferred` (then id), as
    build_zonelists() orders fallback nodes; `allowed` restricts them (cpuset, BIND)."""
    nodes = [n for n in m.memory_nodes() if allowed is None or n in allowed]
    return sorted(nodes, key=lambda n: (m.distance(preferred, n), n))


def _take_free(m: Machine, z, k: int) -> np.ndarray:
    """Up to k free frames of zone z, next-fit from the zone's cursor, skipping
    isolated pageblocks (MIGRATE_ISOLATE). Scans in windows a little larger than
    what is still needed, so a bulk allocation from a mostly free zone reads about
    k entries, not the whole zone."""
    if k <= 0:
        return np.empty(0, np.int64)
    kind = m.f.kind
    s, e = z.start_pfn, z.end_pfn
    c = s + z.cursor
    if not z.isolated and c + k <= e and (kind[c:c + k] == K_FREE).all():
        res = np.arange(c, c + k, dtype=np.int64)  # the free run at the cursor
        z.cursor = (c + k - s) % max(z.spanned, 1)
        return res
    out = []
    got = 0
    for a, b in ((c, e), (s, c)):
        pos = a
        while pos < b and got < k:
            end = min(b, pos + max(2 * (k - got), 1 << 16))
            free = kind[pos:end] == K_FREE
            if z.isolated:
                free &= ~m.blk_isolated[np.arange(pos, end) // m.block_pages]
            idx = np.flatnonzero(free)[: k - got]
            if idx.size:
                out.append(idx + pos)
                got += idx.size
            pos = end
    if not out:
        return np.empty(0, np.int64)
    res = np.concatenate(out).astype(np.int64, copy=False)
    z.cursor = int(res[-1] + 1 - s) % max(z.spanned, 1)
    return res


def zone_available(z, wmark: str) -> int:
    mark = {"low": z.wmark_low, "min": z.wmark_min, "high": z.wmark_high, "none": 0}[wmark]
    return max(0, z.free - mark)


def alloc_frames(m: Machine, k: int, nodes: list[int], *, movable: bool = True,
                 wmark: str = "low") -> np.ndarray:
    """alloc_frames_runs() without the per-node runs."""
    return alloc_frames_runs(m, k, nodes, movable=movable, wmark=wmark)[0]


def alloc_frames_runs(m: Machine, k: int, nodes: list[int], *, movable: bool = True,
                      wmark: str = "low") -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Take k frames walking `nodes` in order, each node's zones highest first
    (Movable, Normal, DMA32, DMA), a zone only while its free pages stay above the
    watermark. Returns the PFNs found (fewer than k when memory runs out); the
    caller fills in the frames. Also returns (node, frames) runs in order, so the
    caller knows each frame's node without looking it up."""
    got: list[np.ndarray] = []
    runs: list[tuple[int, int]] = []
    need = k
    passes = ("low", "min") if wmark == "low" else (wmark,)
    for mark in passes:
        for n in nodes:
            for z in reversed(m.node_zones(n)):
                if need <= 0:
                    break
                if z.movable and not movable:
                    continue
                take = min(need, zone_available(z, mark) - z.isolated_free)
                if take <= 0:
                    continue
                pfns = _take_free(m, z, take)
                if pfns.size:
                    z.free -= pfns.size
                    got.append(pfns)
                    runs.append((n, pfns.size))
                    need -= pfns.size
        if need <= 0:
            break
    if not got:
        return np.empty(0, np.int64), runs
    res = np.concatenate(got) if len(got) > 1 else got[0]
    if res.size and int(res[-1]) - int(res[0]) == res.size - 1 and len(got) == 1:
        m.f.flags[int(res[0]):int(res[-1]) + 1] = PG_lru if movable else 0  # one run
    else:
        m.f.flags[res] = PG_lru if movable else 0
    return res, runs


def run_nodes(runs: list[tuple[int, int]]) -> np.ndarray:
    """The supplying node of every frame of the last alloc_frames() call."""
    if not runs:
        return np.empty(0, np.int64)
    nodes, counts = zip(*runs)
    return np.repeat(np.asarray(nodes, np.int64), counts)


def free_frames(m: Machine, pfns: np.ndarray) -> None:
    """Return frames to the buddy allocator: clear them and credit their zones."""
    if len(pfns) == 0:
        return
    pfns = np.asarray(pfns, dtype=np.int64)
    m.f.clear(pfns)  # K_FREE is 0: clearing the kind frees the frame
    zids = m.zone_of(pfns)
    counts = np.bincount(zids, minlength=len(m.zones))
    for zi in np.flatnonzero(counts):
        m.zones[zi].free += int(counts[zi])
    if m.blk_isolated.any():
        iso = m.blk_isolated[pfns // m.block_pages]
        if iso.any():
            ic = np.bincount(zids[iso], minlength=len(m.zones))
            for zi in np.flatnonzero(ic):
                m.zones[zi].isolated_free += int(ic[zi])


def account_alloc(m: Machine, z_nodes: np.ndarray, p_nodes, c_node: int,
                  interleave: np.ndarray | None = None) -> None:
    """zone_statistics(): z supplied the page, p was preferred, c is the CPU's node.
    z==p: hit[z]++ else miss[z]++, foreign[p]++; z==c: local[z]++ else other[z]++;
    an interleave page that landed on its intended node: interleave_hit[z]++."""
    if len(z_nodes) == 0:
        return
    nn = m.nr_node_ids
    st = m.numastat_arr
    z = np.asarray(z_nodes, dtype=np.int64)
    p = np.broadcast_to(np.asarray(p_nodes, dtype=np.int64), z.shape)
    hit = z == p
    st[NUMA_HIT] += np.bincount(z[hit], minlength=nn)
    st[NUMA_MISS] += np.bincount(z[~hit], minlength=nn)
    st[NUMA_FOREIGN] += np.bincount(p[~hit], minlength=nn)
    local = z == c_node
    st[LOCAL_NODE] += np.bincount(z[local], minlength=nn)
    st[OTHER_NODE] += np.bincount(z[~local], minlength=nn)
    if interleave is not None:
        il = np.broadcast_to(np.asarray(interleave, dtype=bool), z.shape) & hit
        st[INTERLEAVE_HIT] += np.bincount(z[il], minlength=nn)
