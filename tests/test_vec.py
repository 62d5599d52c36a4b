"""The array helpers the hot paths lean on give what their plain versions give."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import small

from engine.mm.state import in_nodes
from engine.vec import unique_frames, unique_parts


@pytest.mark.parametrize("seed", range(3))
def test_unique_parts_is_the_sorted_distinct_frames_of_its_parts(seed):
    """Ascending runs, rotated runs (pages allocated from mid-zone, wrapped round),
    overlapping and random parts: unique_parts() gives unique_frames() of them all."""
    rng = np.random.default_rng(seed)
    for _ in range(200):
        parts = []
        for _ in range(int(rng.integers(0, 5))):
            n = int(rng.integers(0, 50))
            a = np.sort(rng.choice(1000, n, replace=False))
            kind = int(rng.integers(0, 3))
            if kind == 1:
                a = np.roll(a, int(rng.integers(0, n + 1)))
            elif kind == 2:
                a = rng.integers(0, 1000, n)
            parts.append(a.astype(np.int64))
        want = unique_frames(np.concatenate(parts), 1000) if parts else np.zeros(0, np.int64)
        got = unique_parts(parts, 1000, max_runs=int(rng.integers(0, 10)))
        assert np.array_equal(want, got)


def test_in_nodes_is_node_of_in_the_set():
    """state.in_nodes(): the zones' ranges say what node_of() says, for any node set."""
    m = small(nodes=4, movable="16M")
    pfns = np.random.default_rng(0).integers(0, m.nr_frames, 5000)
    for nodes in [(0,), (3,), (1, 2), (0, 1, 2, 3), ()]:
        assert np.array_equal(in_nodes(m, pfns, nodes), np.isin(m.node_of(pfns), nodes))
