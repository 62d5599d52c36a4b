"""A scrolling text panel for the Linux-format views (numa_maps, numastat, zoneinfo,
vmstat), whose text comes from engine.commands.execute."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import ScrollableContainer
from textual.widgets import Static


class ViewPanel(ScrollableContainer, can_focus=True):
    """Shows one view's text; `title` names it."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.view_name = ""
        self.text = ""

    def compose(self) -> ComposeResult:
        yield Static("", classes="view-text")

    def show(self, name: str, text: str, ok: bool = True, hint: str = "") -> None:
        self.view_name = name
        self.border_title = Text(f"{name}   {hint}" if hint else name)  # plain text
        if text == self.text:
            return
        self.text = text
        self.query_one(".view-text", Static).update(
            Text(text, style="" if ok else "bold #e5484d", no_wrap=True))
