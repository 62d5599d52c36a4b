"""The log of commands, their results and errors (a RichLog with max_lines)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import RichLog


class ConsoleLog(RichLog):
    """Commands in dim, results plain, errors in red. `entries` keeps the plain text."""

    def __init__(self, max_lines: int = 2000, **kw: Any) -> None:
        super().__init__(max_lines=max_lines, wrap=True, markup=False, highlight=False,
                         min_width=20, **kw)
        self.entries: list[str] = []

    def _keep(self, s: str) -> None:
        self.entries.append(s)
        if len(self.entries) > (self.max_lines or 2000):
            del self.entries[: len(self.entries) - (self.max_lines or 2000)]

    def command(self, line: str) -> None:
        self._keep(f"> {line}")
        self.write(Text(f"> {line}", style="bold #6fa8dc"))

    def result(self, text: str, ok: bool = True) -> None:
        if not text:
            return
        self._keep(text)
        self.write(Text(text, style="" if ok else "bold #e5484d"))

    def info(self, text: str) -> None:
        self._keep(text)
        self.write(Text(text, style="#8b93a1"))

    def plain(self) -> str:
        return "\n".join(self.entries)
