"""Per-node memory over simulated time: free and used pages and migration traffic,
kept in a bounded ring (numpy) for the UI's sparklines and the per-node memory
timeline that numactl users ask for.

A sample is taken at every job batch boundary and workload tick (Job.step) and on
every machine change (the Machine calls sample()). Samples at the same simulated time overwrite
each other, so the ring holds one point per instant; `min_interval_ns` thins it
further. Traffic is cumulative (pages migrated out of / into each node since boot);
`rate()` turns it into pages per simulated second."""

from __future__ import annotations

import numpy as np

from ..mm.state import Kernel
from ..units import fmt_ns

FIELDS = ("free", "used", "mig_out", "mig_in")
BARS = "▁▂▃▄▅▆▇█"


class Timeline:
    def __init__(self, nr_nodes: int = 0, capacity: int = 4096, min_interval_ns: int = 0):
        self.capacity = int(capacity)
        self.min_interval_ns = int(min_interval_ns)
        self.reset(nr_nodes)

    def reset(self, nr_nodes: int) -> None:
        """An empty ring for a machine of nr_nodes node ids."""
        self.nr_nodes = int(nr_nodes)
        self.t = np.zeros(self.capacity, np.int64)
        self.data = {f: np.zeros((self.capacity, self.nr_nodes), np.int64) for f in FIELDS}
        self.count = 0  # samples ever written (the ring holds the last `capacity`)

    def __len__(self) -> int:
        return min(self.count, self.capacity)

    def _state(self, m: Kernel) -> dict[str, np.ndarray]:
        nn = self.nr_nodes
        free = np.zeros(nn, np.int64)
        used = np.zeros(nn, np.int64)
        for z in m.zones:
            if z.node < nn:
                free[z.node] += z.free
                used[z.node] += max(0, z.managed - z.free)
        tr = m.traffic
        if tr is None or tr.shape[0] != nn:
            out = inn = np.zeros(nn, np.int64)
        else:
            out, inn = tr.sum(axis=1), tr.sum(axis=0)
        return {"free": free, "used": used, "mig_out": out, "mig_in": inn}

    def sample(self, m: Kernel) -> None:
        """Record the machine's state now (or overwrite the last point when it is
        at the same instant, or closer than min_interval_ns to the one before)."""
        if self.nr_nodes != m.nr_node_ids:
            self.reset(m.nr_node_ids)
        now = int(m.clock)
        st = self._state(m)
        if self.count:
            last = (self.count - 1) % self.capacity
            prev_t = self.t[(self.count - 2) % self.capacity] if self.count >= 2 else None
            same = now == self.t[last] or (
                prev_t is not None and self.min_interval_ns and
                now - prev_t < self.min_interval_ns)
            if same:
                self._write(last, now, st)
                return
        self._write(self.count % self.capacity, now, st)
        self.count += 1

    def _write(self, i: int, now: int, st: dict) -> None:
        self.t[i] = now
        for f in FIELDS:
            self.data[f][i] = st[f]

    def _order(self) -> np.ndarray:
        n = len(self)
        start = self.count - n
        return (start + np.arange(n)) % self.capacity

    def series(self, field: str, node: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(times ns, values) in time order; values are per node (2-D) without `node`."""
        if field not in FIELDS:
            raise ValueError(f"timeline field {field!r}: one of {', '.join(FIELDS)}")
        idx = self._order()
        vals = self.data[field][idx]
        return self.t[idx].copy(), (vals if node is None else vals[:, node])

    def rate(self, field: str, node: int) -> tuple[np.ndarray, np.ndarray]:
        """Traffic in pages per simulated second between consecutive samples."""
        t, v = self.series(field, node)
        if t.size < 2:
            return t[1:], np.zeros(0)
        dt = np.diff(t).astype(np.float64)
        dv = np.diff(v).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(dt > 0, dv / dt * 1e9, 0.0)
        return t[1:], r

    def clear(self) -> None:
        self.count = 0


def sparkline(values, width: int = 40, lo: float | None = None,
              hi: float | None = None) -> str:
    """Values -> a line of block characters, resampled to `width` (max per bucket,
    so a spike stays visible)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return ""
    if v.size > width:
        edges = np.linspace(0, v.size, width + 1).astype(int)
        v = np.maximum.reduceat(v, edges[:-1])
    lo = float(v.min()) if lo is None else lo
    hi = float(v.max()) if hi is None else hi
    if hi <= lo:
        return BARS[0] * v.size
    k = np.clip(((v - lo) / (hi - lo) * (len(BARS) - 1)).round().astype(int), 0, len(BARS) - 1)
    return "".join(BARS[i] for i in k)


def timeline_text(m: Kernel, tl: Timeline, width: int = 40) -> str:
    """Per node: used pages and migration traffic (in + out) as sparklines."""
    t, _ = tl.series("used")
    if t.size == 0:
        return "timeline: no samples yet"
    lines = [f"timeline: {len(tl)} samples, {fmt_ns(t[0])} .. {fmt_ns(t[-1])} "
             f"(ring of {tl.capacity})"]
    for n in m.nodes:
        _, used = tl.series("used", n)
        _, free = tl.series("free", n)
        total = max(1, int(used[-1] + free[-1]))
        _, tin = tl.series("mig_in", n)
        _, tout = tl.series("mig_out", n)
        moved = tin + tout
        traffic = np.diff(moved, prepend=moved[0])
        lines.append(f"node {n} used  {sparkline(used, width, 0, total)} "
                     f"{int(used[-1])}/{total} pages")
        lines.append(f"node {n} moved {sparkline(traffic, width)} "
                     f"in {int(tin[-1] - tin[0])} out {int(tout[-1] - tout[0])} pages")
    return "\n".join(lines)
