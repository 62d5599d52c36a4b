"""The top line: machine, size, era, simulated clock, jobs, live/paused."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from engine.views import fmt_bytes

from .quiet import quiet_update


def title_text(m: Any, paused: bool = False, extra: str = "") -> Text:
    t = Text()
    t.append(" numacon ", style="bold #14161a on #e8c46a")
    t.append(f" {getattr(m, 'name', 'machine')} ", style="bold")
    era = getattr(getattr(m, "era", None), "name", "?")
    t.append(f"{len(m.nodes)} nodes · {fmt_bytes(m.nr_frames * m.page_size)} · "
             f"{m.nr_frames} frames of {fmt_bytes(m.page_size)} · era {era} · "
             f"clock {m.clock / 1e9:.6f}s{_clock_mode(m)} · jobs {len(m.jobs)} ",
             style="#c8ccd4")
    if extra:
        t.append(f"· {extra} ", style="#c8ccd4")
    if paused:
        t.append(" PAUSED (space) ", style="bold #14161a on #f08c3a")
    else:
        t.append(" live ", style="bold #14161a on #3fb37f")
    return t


def _clock_mode(m: Any) -> str:
    ctl = getattr(m, "clockctl", None)
    describe = getattr(ctl, "describe", None)
    return f" ({describe()})" if describe else ""


class TitleBar(Static):
    """One line about the machine."""

    def show(self, m: Any, paused: bool = False, extra: str = "") -> None:
        quiet_update(self, title_text(m, paused, extra), fixed_height=True)
