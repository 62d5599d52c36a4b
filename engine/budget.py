"""Work done in time slices: a pass written as a generator (it yields between
pieces) is advanced for about a time budget, so a caller on the console's event loop
(the node counts, the host's frame map) never holds it longer than that."""

from __future__ import annotations

import time
from collections.abc import Generator

__all__ = ["advance"]


def advance(gen: Generator, budget_s: float) -> bool:
    """Run gen for about budget_s seconds (at least one piece). True when it ended."""
    t_end = time.perf_counter() + budget_s
    while True:
        try:
            next(gen)
        except StopIteration:
            return True
        if time.perf_counter() >= t_end:
            return False
