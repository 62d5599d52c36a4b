"""The footer: the keys of the screen that fit its width, in order of importance, and
`? help` (which lists them all) always last. Nothing is cut: a key that does not fit is
left out whole. A click on a key runs its action."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import events
from textual.widgets import Static

KEY_STYLE = "bold #14161a on #6fa8dc"
LABEL_STYLE = "#c8ccd4"


class KeyBar(Static):
    """keys: (key shown, label, action) in order of importance."""

    DEFAULT_CSS = "KeyBar { height: 1; background: $panel; }"

    def __init__(self, keys: list[tuple[str, str, str]], **kw: Any) -> None:
        super().__init__(**kw)
        self.keys = keys
        self._spans: list[tuple[int, int, str]] = []
        self._width = -1

    def layout_keys(self, width: int) -> tuple[Text, list[tuple[int, int, str]]]:
        last = ("?", "help", "app.help")
        items = [k for k in self.keys if k[2] != "app.help"]

        def cell(k: tuple[str, str, str]) -> int:
            return len(k[0]) + 2 + len(k[1]) + 1

        budget = width - cell(last)
        chosen = []
        for k in items:
            if cell(k) <= budget:
                chosen.append(k)
                budget -= cell(k)
        chosen.append(last)
        t = Text(no_wrap=True)
        spans = []
        for key, label, action in chosen:
            x0 = t.cell_len
            t.append(f" {key} ", style=KEY_STYLE)
            t.append(f"{label} ", style=LABEL_STYLE)
            spans.append((x0, t.cell_len, action))
        return t, spans

    def on_resize(self, event: events.Resize) -> None:
        self.redraw()

    def redraw(self) -> None:
        width = self.size.width
        if width <= 0 or width == self._width:
            return
        self._width = width
        t, self._spans = self.layout_keys(width)
        self.update(t)

    def plain(self) -> str:
        return self.layout_keys(self.size.width or 80)[0].plain

    async def on_click(self, event: events.Click) -> None:
        for x0, x1, action in self._spans:
            if x0 <= event.x < x1:
                await self.run_action(action)
                return


class CompletionBar(Static):
    """The candidates Tab found, as many as fit on two lines, the current one marked."""

    DEFAULT_CSS = "CompletionBar { height: auto; max-height: 2; background: $boost; " \
                  "color: $text-muted; padding: 0 1; }"

    def show(self, items: list[str], current: int = -1) -> None:
        if not items:
            self.display = False
            return
        width = max(20, (self.size.width or self.app.size.width) - 2) * 2
        t = Text(f"tab: {len(items)} candidates: ", style="#8b93a1")
        used = t.cell_len
        for i, s in enumerate(items):
            more = f"(+{len(items) - i} more)"
            if used + len(s) + 2 + len(more) > width and i < len(items) - 1:
                t.append(more, style="#8b93a1")
                break
            t.append(s, style="bold reverse" if i == current else "bold #6fa8dc")
            t.append("  ")
            used += len(s) + 2
        self.update(t)
        self.display = True
