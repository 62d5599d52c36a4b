"""How simulated time relates to real time: the ClockController that paces jobs.

The simulated time itself is the machine's SimClock (`m.clock`, ns), advanced by
the cost model (engine/mm/cost.py) and by workloads. The controller decides how jobs
pace themselves against real time: paused (no job steps), a speed relative to real
time, or as fast as possible (tests and scripts use it)."""

from __future__ import annotations

import asyncio
import time

# ----------------------------------------------------------------- real-time pacing

class ClockController:
    """How jobs pace simulated time against real time.

    mode "fast": jobs step as fast as the event loop lets them (yielding between
    batches); "speed": after each step a job sleeps until real time has caught up
    with simulated time / speed; "paused": no job steps (a cancel still ends a
    paused job). Pacing is measured against one anchor (real, simulated) for the
    whole machine, so several jobs together track real time, not each one alone."""

    MODES = ("fast", "speed", "paused")
    MAX_LAG_S = 0.25  # behind real time by more than this: re-anchor, no burst to catch up
    POLL_S = 0.02  # how often a paused job looks again

    def __init__(self) -> None:
        self.mode = "fast"
        self.speed = 1.0
        self._resume_mode = "fast"
        self._anchor_real = 0.0
        self._anchor_sim = 0
        self._anchored = False

    def __repr__(self) -> str:
        return f"<ClockController {self.describe()}>"

    def describe(self) -> str:
        if self.mode == "speed":
            return f"speed x{self.speed:g}"
        if self.mode == "paused":
            return f"paused (resumes {self._resume_mode})"
        return "fast"

    @property
    def paused(self) -> bool:
        return self.mode == "paused"

    def pause(self) -> None:
        if self.mode != "paused":
            self._resume_mode = self.mode
            self.mode = "paused"

    def resume(self) -> None:
        if self.mode == "paused":
            self.mode = self._resume_mode
        self._anchored = False

    def set_speed(self, x: float) -> None:
        """Simulated ns per real ns: 1.0 = real time, 1e-3 = a thousand times slower."""
        x = float(x)
        if not (x > 0) or x == float("inf"):
            raise ValueError(f"clock speed {x!r} must be a positive number")
        self.speed = x
        self.mode = "speed"
        self._anchored = False

    def set_fast(self) -> None:
        self.mode = "fast"
        self._anchored = False

    async def gate(self, job) -> None:
        """Wait while the clock is paused (a cancelled job goes on, to finish)."""
        while self.mode == "paused" and not job._cancel:
            await asyncio.sleep(self.POLL_S)

    def delay_s(self, sim_ns: int, now: float | None = None) -> float:
        """Real seconds to sleep so that simulated time tracks real time x speed."""
        if self.mode != "speed":
            return 0.0
        now = time.monotonic() if now is None else now
        if not self._anchored:
            self._anchor_real, self._anchor_sim, self._anchored = now, sim_ns, True
            return 0.0
        target = self._anchor_real + (sim_ns - self._anchor_sim) / (self.speed * 1e9)
        lag = now - target
        if lag > self.MAX_LAG_S:
            # the simulation cannot keep up: re-anchor rather than race to catch up
            self._anchor_real, self._anchor_sim = now, sim_ns
            return 0.0
        return max(0.0, target - now)

    async def pace(self, now_ns: int) -> None:
        await asyncio.sleep(self.delay_s(now_ns))
