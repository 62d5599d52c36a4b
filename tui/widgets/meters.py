"""Per-node meters: used/free against the zone watermarks, a free-memory sparkline and
migration traffic in and out of each node (engine.views: node_stats, free_history).
Beyond COMPACT_ABOVE nodes each node takes a short cell, several to a line, so 64
nodes fit in a few lines."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from engine.views import NodeStat, fmt_bytes

from .quiet import quiet_update

SPARK = "▁▂▃▄▅▆▇█"
BAR = 10
COMPACT_ABOVE = 12
CELL = 17  # columns of a compact node cell


def sparkline(values: list[float], lo: float = 0.0, hi: float = 1.0) -> str:
    if not values:
        return ""
    span = (hi - lo) or 1.0
    return "".join(SPARK[min(7, max(0, int((v - lo) / span * 7.999)))] for v in values)


def state_of(st: NodeStat) -> tuple[str, str]:
    """(colour, word) of a node's free memory against its watermarks."""
    if st.free <= st.wmark_min:
        return "#e5484d", "min"
    if st.free <= st.wmark_low:
        return "#f08c3a", "low"
    if st.free <= st.wmark_high:
        return "#e8c46a", "high"
    return "#3fb37f", "ok"


class NodeMeters(Static):
    """One line per node (or a compact cell per node when there are many)."""

    def __init__(self, *args: Any, history: int = 10, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._len = history

    def reset(self) -> None:
        pass

    def show(self, view: Any) -> None:
        """The history is the engine's timeline, in simulated time (none yet: now)."""
        stats = view.node_stats()
        hist = view.free_history(self._len)
        if hist is None:
            hist = {st.id: [st.free / st.managed if st.managed else 0.0] for st in stats}
        width = self.content_size.width or 52
        quiet_update(self, meters_text(stats, view.topology().page_size, hist, width))


def meters_text(stats: list[NodeStat], page_size: int,
                hist: dict[int, list[float]] | None = None, width: int = 52) -> Text:
    hist = hist or {}
    t = Text()
    if len(stats) > COMPACT_ABOVE:
        per_line = max(1, width // CELL)
        for i, st in enumerate(stats):
            if i and i % per_line == 0:
                t.append("\n")
            t.append(f"N{st.id:<3}", style="bold")
            if st.managed <= 0:
                t.append(f"{'-':<{CELL - 4}}", style="#6b7280")
                continue
            color, _ = state_of(st)
            fill = round(6 * (st.managed - st.free) / st.managed)
            t.append("█" * fill, style=color)
            t.append("░" * (6 - fill), style="#3a3f47")
            t.append(f" {fmt_bytes(st.free * page_size):>5} ", style="#c8ccd4")
        return t
    for st in stats:
        t.append(f"N{st.id:<3}", style="bold")
        if st.managed <= 0:
            t.append("no memory\n", style="#6b7280")
            continue
        color, state = state_of(st)
        fill = round(BAR * (st.managed - st.free) / st.managed)
        t.append("█" * fill, style=color)
        t.append("░" * (BAR - fill), style="#3a3f47")
        t.append(f" {fmt_bytes(st.free * page_size):>5}", style="#c8ccd4")
        t.append(f" {state:<4}", style=color)
        vals = hist.get(st.id)
        if vals:
            lo, hi = min(vals), max(vals)
            if hi - lo < 0.01:  # flat within 1%: no drama
                lo, hi = hi - 0.01, hi
            t.append(" " + sparkline(vals, lo, hi), style="#6fa8dc")
        if st.moved_out or st.moved_in:
            t.append(f" ↑{fmt_bytes(st.moved_out * page_size)}"
                     f" ↓{fmt_bytes(st.moved_in * page_size)}", style="#b48ead")
        t.append("\n")
    t.rstrip()
    return t
