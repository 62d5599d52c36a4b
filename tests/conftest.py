import numpy as np
import pytest

import engine


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
