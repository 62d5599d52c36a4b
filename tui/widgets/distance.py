"""The SLIT distance grid, coloured by distance. Up to 6 nodes it prints numbers;
beyond that it is a heat grid: two node rows per line with half blocks, two columns per
node (one above 22 nodes: one character is one distance), so 64 nodes still fit in 70
columns and 33 lines."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

RAMP = ("#3fb37f", "#8fc95a", "#d8cf4a", "#f0a13a", "#e5684d", "#c2417f", "#8e44ad")


def distance_colors(values: list[int]) -> dict[int, str]:
    """Distinct distances -> colours from near (green) to far (red/purple)."""
    ds = sorted(set(values))
    if len(ds) == 1:
        return {ds[0]: RAMP[0]}
    return {d: RAMP[round(i * (len(RAMP) - 1) / (len(ds) - 1))] for i, d in enumerate(ds)}


def distance_text(topo: Any, compact_above: int = 6) -> Text:
    nodes = topo.node_ids
    dist = topo.distances
    n = len(nodes)
    colors = distance_colors([int(x) for x in dist.ravel()])
    t = Text()
    if n <= compact_above:
        t.append("    " + "".join(f"{b:>4}" for b in nodes) + "\n", style="#8b93a1")
        for i, a in enumerate(nodes):
            t.append(f"{a:>3} ", style="#8b93a1")
            for j in range(n):
                d = int(dist[i, j])
                t.append(f"{d:>4}", style=f"bold {colors[d]}")
            t.append("\n")
    else:
        w = 2 if n <= 22 else 1  # columns per node
        t.append("     " + "".join(f"{b % 10:<{w}}" for b in nodes) + "\n", style="#8b93a1")
        for i in range(0, n, 2):
            a = nodes[i]
            b2 = nodes[i + 1] if i + 1 < n else None
            label = f"{a}-{b2}" if b2 is not None else f"{a}"
            t.append(f"{label:>5}", style="#8b93a1")
            for j in range(n):
                top = colors[int(dist[i, j])]
                if b2 is None:
                    t.append("▀" * w, style=f"{top} on #14161a")
                else:
                    t.append("▀" * w, style=f"{top} on {colors[int(dist[i + 1, j])]}")
            t.append("\n")
    for d, c in colors.items():
        t.append("■", style=c)
        t.append(f"{d} ")
    return t


class DistanceGrid(Static):
    """numactl -H's node distances as a coloured grid."""

    def show(self, view: Any) -> None:
        self.update(distance_text(view.topology()))
