"""The top line: machine, size, era, simulated clock and its pace, jobs, live/paused;
on the live host, how often it is read and what that costs ([ ] change it), and
whether numacon may act on it."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from engine.views import fmt_bytes

from .quiet import quiet_update


def title_text(view: Any, paused: bool = False, extra: str = "", width: int = 200) -> Text:
    """Everything fits `width`: the less important parts go first when it is narrow."""
    st = view.status()
    # (text, priority): the lowest priorities go first when the line is too narrow
    parts = [(f"{st.nodes} nodes", 3), (fmt_bytes(st.memory_bytes), 2),
             (f"{st.nr_frames} frames of {fmt_bytes(st.page_size)}", 1)]
    if st.live:
        ri = view.refresh_info()
        parts += [(f"live {st.era}", 4),
                  ("read-only" if st.read_only else "actions allowed", 8)]
        if ri is not None:
            parts.append((f"refresh {ri.watched:g}s shown, {ri.others:g}s others: "
                          f"{100 * ri.cpu_share:.2f}% CPU ([ ])", 9))
    else:
        clock = f"clock {st.clock_ns / 1e9:.6f}s {st.clock.label}"
        hint = " (F: fast)" if st.clock.mode == "speed" else " (F: watchable)" \
            if st.clock.mode == "fast" else ""
        parts += [(f"era {st.era}", 4), (clock + hint, 9), (f"jobs {st.jobs}", 8)]
    if extra:
        parts.append((extra, 7))
    tag = " PAUSED (space) " if paused else " live "
    fixed = len(" numacon ") + len(st.name) + 2 + len(tag) + 1

    def length() -> int:
        return fixed + len(" · ".join(p for p, _ in parts))

    while length() > width and len(parts) > 1:
        parts.remove(min(parts, key=lambda p: p[1]))
    parts = [p for p, _ in parts]
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(" numacon ", style="bold #14161a on #e8c46a")
    t.append(f" {st.name} ", style="bold")
    t.append(" · ".join(parts) + " ", style="#c8ccd4")
    if paused:
        t.append(tag, style="bold #14161a on #f08c3a")
    else:
        t.append(tag, style="bold #14161a on #3fb37f")
    return t


class TitleBar(Static):
    """One line about the machine, fitted to its width."""

    _args: tuple | None = None

    def show(self, view: Any, paused: bool = False, extra: str = "") -> None:
        self._args = (view, paused, extra)
        width = self.size.width or self.app.size.width
        quiet_update(self, title_text(view, paused, extra, width), fixed_height=True)

    def on_resize(self) -> None:
        if self._args is not None:
            self.show(*self._args)
