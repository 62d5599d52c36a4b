"""When to read what on the live host. numa_maps walks a process's page tables (it
costs the host CPU time in proportion to the process's size), so processes the user
looks at (visible rows, the selected one) are re-read often and the rest rarely; the
cheap system files (zoneinfo, vmstat, numastat, every process's status) have their
own period, and so has the frame map's counting pass. The console shows `text()` and
changes the rates with `set_rates()`, `faster()` and `slower()`; the host's `tick()`
asks `due_*` what to read and reports the time it spent with `spent()`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MIN_PERIOD, MAX_PERIOD = 0.1, 3600.0
RATE_KEYS = ("watched", "others", "system", "frames")


@dataclass
class Rates:
    """Seconds between readings."""

    watched: float = 2.0  # numa_maps of visible and selected processes
    others: float = 30.0  # numa_maps of every other process
    system: float = 2.0  # zoneinfo, vmstat, numastat, meminfo, every process's status
    frames: float = 10.0  # a counting pass over /proc/kpageflags


def _period(what: str, v: float) -> float:
    v = float(v)
    if not MIN_PERIOD <= v <= MAX_PERIOD:
        raise ValueError(f"refresh {what}: {v:g}s is outside {MIN_PERIOD:g}..{MAX_PERIOD:g}s")
    return v


class RefreshPolicy:
    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 rates: Rates | None = None) -> None:
        self.clock = clock
        self.rates = rates or Rates()
        self.visible: set[int] = set()
        self.selected: int | None = None
        self.last: dict[str, float] = {}  # "system", "frames" -> when last done
        self._cost: list[tuple[float, float]] = []  # (when, seconds spent) in the window
        self.window = 30.0

    # ------------------------------------------------------------ what is watched
    def set_visible(self, pids: Iterable[int]) -> None:
        self.visible = {int(p) for p in pids}

    def select(self, pid: int | None) -> None:
        self.selected = None if pid is None else int(pid)

    @property
    def watched(self) -> set[int]:
        return self.visible | ({self.selected} if self.selected is not None else set())

    # ------------------------------------------------------------ rates
    def set_rates(self, **periods: float) -> None:
        """set_rates(watched=1, others=60, system=2, frames=10): seconds between
        readings; ValueError (and nothing changes) for an unknown key or a period
        outside 0.1..3600 s."""
        new = {}
        for k, v in periods.items():
            if k not in RATE_KEYS:
                raise ValueError(f"refresh: no rate {k!r} (rates: {', '.join(RATE_KEYS)})")
            new[k] = _period(k, v)
        for k, v in new.items():
            setattr(self.rates, k, v)

    def _scale(self, f: float) -> None:
        for k in RATE_KEYS:
            setattr(self.rates, k, min(MAX_PERIOD, max(MIN_PERIOD, getattr(self.rates, k) * f)))

    def faster(self) -> None:
        self._scale(0.5)

    def slower(self) -> None:
        self._scale(2.0)

    # ------------------------------------------------------------ what is due
    def due(self, what: str, now: float | None = None) -> bool:
        """"system" or "frames": due when never done or its period has passed."""
        now = self.clock() if now is None else now
        t = self.last.get(what)
        return t is None or now - t >= getattr(self.rates, what)

    def done(self, what: str, now: float | None = None) -> None:
        self.last[what] = self.clock() if now is None else now

    def due_processes(self, read_at: dict[int, float | None], now: float | None = None
                      ) -> list[int]:
        """PIDs whose numa_maps is due (read_at: pid -> when last read, None: never):
        watched ones first, then never-read ones, each group oldest first."""
        now = self.clock() if now is None else now
        watched = self.watched
        due = []
        for pid, t in read_at.items():
            period = self.rates.watched if pid in watched else self.rates.others
            if t is None or now - t >= period:
                due.append((pid not in watched, t is not None, t or 0.0, pid))
        return [d[3] for d in sorted(due)]

    # ------------------------------------------------------------ cost
    def spent(self, seconds: float, now: float | None = None) -> None:
        """Record host reading time (counted against the host's CPU)."""
        now = self.clock() if now is None else now
        self._cost.append((now, float(seconds)))
        self._cost = [(t, s) for t, s in self._cost if now - t <= self.window]

    def cpu_share(self, now: float | None = None) -> float:
        """Fraction of one CPU spent reading the host over the last `window` seconds."""
        now = self.clock() if now is None else now
        recent = [s for t, s in self._cost if now - t <= self.window]
        return sum(recent) / self.window if recent else 0.0

    def text(self, nprocs: int | None = None) -> str:
        r = self.rates
        w = len(self.watched)
        others = "" if nprocs is None else f" ({max(0, nprocs - w)})"
        return (f"refresh: watched processes ({w}) every {r.watched:g}s, others{others} "
                f"every {r.others:g}s, system every {r.system:g}s, frame map every "
                f"{r.frames:g}s; reading costs {100 * self.cpu_share():.2f}% of a CPU")
