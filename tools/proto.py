"""The yardstick of `numacon bench`: the naive numpy prototype of move_pages from
the design notes (shared/design/move_pages_prototype.py), copied here so the
benchmark does not depend on a file outside the project. 5 arrays (16 B a frame),
no reverse map, no counters, on a machine of 4 KiB frames over 4 nodes; it moves
M random pages, median of `runs`. Timed in the same run as the engine, it turns
the engine's rates into ratios that hold across machines and days.

Only the sizes are parameters (frames and moves: the design's 64 GiB machine and
1 Mi moves by default; the mapped pages in proportion); the algorithm is the
design's, line for line."""

from __future__ import annotations

import time

import numpy as np


def proto_move_pages_pps(runs: int = 3, frames: int = 16_777_216, moves: int = 1 << 20
                         ) -> float:
    """Pages a second the prototype moves: `moves` random pages of 8 M mapped (at 16 Mi
    frames; in proportion on other machines: half on node 0, half on node 1), each
    to a random node, median of `runs`."""
    N = frames
    nodes = 4
    per = N // nodes
    rng = np.random.default_rng(1)
    owner = np.full(N, -1, np.int32)
    vidx = np.zeros(N, np.uint32)
    flags = np.zeros(N, np.uint16)
    content = np.zeros(N, np.uint32)
    V = 8_000_000 * N // 16_777_216 // 2 * 2
    pt = np.empty(V, np.int64)
    pt[:V // 2] = np.arange(V // 2)
    pt[V // 2:] = per + np.arange(V // 2)
    owner[pt] = 0
    vidx[pt] = np.arange(V, dtype=np.uint32)
    content[pt] = rng.integers(0, 2**32, V, dtype=np.uint32)
    used = np.zeros(N, bool)
    used[pt] = True
    free, top = [], []
    for i in range(nodes):
        f = np.flatnonzero(~used[i * per:(i + 1) * per]) + i * per
        a = np.empty(per, np.int64)
        a[:len(f)] = f
        free.append(a)
        top.append(len(f))

    def move(idx, tgt):
        src = pt[idx]
        bad = (flags[src] & 0x3) != 0
        mv = ~bad & ((src // per) != tgt)
        idx_m, src_m, tgt_m = idx[mv], src[mv], tgt[mv]
        order = np.argsort(tgt_m, kind="stable")
        counts = np.bincount(tgt_m, minlength=nodes)
        dst = np.empty(len(tgt_m), np.int64)
        s = 0
        for n in range(nodes):
            c = counts[n]
            if c:
                top[n] -= c
                dst[order[s:s + c]] = free[n][top[n]:top[n] + c]
                s += c
        content[dst] = content[src_m]
        flags[dst] = flags[src_m]
        owner[dst] = owner[src_m]
        vidx[dst] = vidx[src_m]
        pt[idx_m] = dst
        owner[src_m] = -1
        sn = src_m // per
        for n in range(nodes):
            f = src_m[sn == n]
            free[n][top[n]:top[n] + len(f)] = f
            top[n] += len(f)
        return np.where(bad, -16, tgt)

    M = min(moves, V)
    ts = []
    for _ in range(runs):
        idx = rng.choice(V, M, replace=False)
        tgt = rng.integers(0, nodes, M)
        t = time.perf_counter()
        move(idx, tgt)
        ts.append(time.perf_counter() - t)
    return M / sorted(ts)[len(ts) // 2]
