"""Per-node meters: used/free against the zone watermarks, a free-memory sparkline and
migration traffic in and out of each node."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from rich.text import Text
from textual.widgets import Static

from engine.views import fmt_bytes

from .quiet import quiet_update

SPARK = "▁▂▃▄▅▆▇█"
BAR = 10


def node_totals(m: Any, nid: int) -> dict[str, int]:
    zs = [z for z in m.zones if z.node == nid]
    return {
        "managed": sum(z.managed for z in zs),
        "free": sum(z.free for z in zs),
        "min": sum(z.wmark_min for z in zs),
        "low": sum(z.wmark_low for z in zs),
        "high": sum(z.wmark_high for z in zs),
    }


def sparkline(values: list[float], lo: float = 0.0, hi: float = 1.0) -> str:
    if not values:
        return ""
    span = (hi - lo) or 1.0
    return "".join(SPARK[min(7, max(0, int((v - lo) / span * 7.999)))] for v in values)


class NodeMeters(Static):
    """One line per node: a used bar coloured by watermark state, free history, traffic."""

    def __init__(self, *args: Any, history: int = 10, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._hist: dict[int, deque] = {}
        self._len = history

    def reset(self) -> None:
        self._hist.clear()

    def show(self, m: Any) -> None:
        hist = timeline_history(m, self._len)
        if hist is None:  # no engine timeline: sample at our own redraws
            for nid in m.nodes:
                t = node_totals(m, nid)
                h = self._hist.setdefault(nid, deque(maxlen=self._len))
                h.append(t["free"] / t["managed"] if t["managed"] else 0.0)
            hist = self._hist
        quiet_update(self, meters_text(m, hist))


def timeline_history(m: Any, n: int) -> dict[int, deque] | None:
    """Free memory per node over simulated time from the engine's timeline (its last
    samples, as fractions of the node's managed pages), or None without one."""
    get = getattr(m, "timeline", None)
    if not callable(get):
        return None
    try:
        tl = get()
        _, free = tl.series("free")
    except Exception:  # noqa: BLE001 - an older or newer timeline: fall back
        return None
    if len(free) == 0:
        return None
    out = {}
    for i, nid in enumerate(m.nodes):
        if nid >= free.shape[1]:
            continue
        managed = node_totals(m, nid)["managed"] or 1
        vals = free[-n * 8:, nid] / managed
        if vals.size > n:  # keep spikes: max per bucket
            edges = np.linspace(0, vals.size, n + 1).astype(int)
            vals = np.maximum.reduceat(vals, edges[:-1])
        out[i] = deque(vals.tolist(), maxlen=n)
    return {nid: out[i] for i, nid in enumerate(m.nodes) if i in out}


def meters_text(m: Any, hist: dict[int, deque] | None = None) -> Text:
    hist = hist or {}
    tr = getattr(m, "traffic", None)
    out_t = in_t = None
    if tr is not None and np.size(tr):
        out_t, in_t = np.asarray(tr).sum(1), np.asarray(tr).sum(0)
    t = Text()
    for nid in m.nodes:
        tot = node_totals(m, nid)
        managed, free = tot["managed"], tot["free"]
        t.append(f"N{nid:<3}", style="bold")
        if managed <= 0:
            t.append("no memory\n", style="#6b7280")
            continue
        used = managed - free
        fill = round(BAR * used / managed)
        if free <= tot["min"]:
            color, state = "#e5484d", "min"
        elif free <= tot["low"]:
            color, state = "#f08c3a", "low"
        elif free <= tot["high"]:
            color, state = "#e8c46a", "high"
        else:
            color, state = "#3fb37f", "ok"
        t.append("█" * fill, style=color)
        t.append("░" * (BAR - fill), style="#3a3f47")
        t.append(f" {fmt_bytes(free * m.page_size):>5}", style="#c8ccd4")
        t.append(f" {state:<4}", style=color)
        h = hist.get(nid)
        if h:
            vals = list(h)
            lo, hi = min(vals), max(vals)
            if hi - lo < 0.01:  # flat within 1%: no drama
                lo, hi = hi - 0.01, hi
            t.append(" " + sparkline(vals, lo, hi), style="#6fa8dc")
        if out_t is not None and nid < len(out_t) and (out_t[nid] or in_t[nid]):
            t.append(f" ↑{fmt_bytes(int(out_t[nid]) * m.page_size)}"
                     f" ↓{fmt_bytes(int(in_t[nid]) * m.page_size)}", style="#b48ead")
        t.append("\n")
    t.rstrip()
    return t
