"""The command line: an Input that takes the engine's command language, with
history (up/down) and completion of command names, pids, addresses, nodes, zones
and drivers (a Suggester completing the last word)."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from textual.binding import Binding
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Input

from engine.commands import COMMANDS, command_names


def candidates(m: Any, words: list[str], position: int) -> list[str]:
    """Completions for word number `position` (0 = the command name)."""
    if position == 0:
        return command_names()
    cmd = COMMANDS.get(words[0])
    if cmd is None or m is None:
        return []
    hints = list(cmd.args)
    hint = hints[position - 1] if position - 1 < len(hints) else ""
    if hint == "pid":
        return [str(p) for p in m.pids]
    if hint in ("node", "nodes"):
        return [str(n) for n in m.nodes] + (["all"] if words[0] == "move_pages" else [])
    if hint == "zone":
        node = None
        if position >= 2:
            try:
                node = int(words[position - 1])
            except ValueError:
                node = None
        return sorted({z.name for z in m.zones if z.spanned and (node is None or
                                                                  z.node == node)})
    if hint == "driver":
        return list(getattr(m, "drivers", []))
    if hint in ("range", "addr") and position >= 2:
        try:
            p = m.process(int(words[1]))
        except (ValueError, OSError):
            return []
        out = ["all"] if words[0] == "move_pages" else []
        for v in p.vmas:
            out.append(f"{v.start:x}..{v.end:x}" if hint == "range" else f"{v.start:x}")
        return out
    if hint == "policy":
        return ["default", "local"] + [f"{k}:{n}" for k in ("bind", "prefer", "interleave")
                                       for n in m.nodes]
    if hint == "job":
        return [str(j.id) for j in getattr(m, "jobs", [])]
    return []


def complete(m: Any, value: str) -> str | None:
    """The whole line with its last word completed, or None."""
    if not value or value.endswith(" ") and not value.strip():
        return None
    try:
        words = shlex.split(value)
    except ValueError:
        return None
    if value.endswith(" "):
        words.append("")
    if not words:
        return None
    pos = len(words) - 1
    last = words[-1]
    for c in candidates(m, words, pos):
        if c.startswith(last) and c != last:
            return value + c[len(last):]
    return None


class CommandSuggester(Suggester):
    """Ghost-text completion of the last word from the live machine."""

    def __init__(self, get_machine: Callable[[], Any]) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self._get_machine = get_machine

    async def get_suggestion(self, value: str) -> str | None:
        if not value.strip():
            return None
        return complete(self._get_machine(), value)


class CommandLine(Input):
    """`:` focuses it; Enter runs the line through engine.commands.execute."""

    BINDINGS = [
        Binding("up", "history(-1)", "Previous", show=False, id="command.history_prev"),
        Binding("down", "history(1)", "Next", show=False, id="command.history_next"),
        Binding("escape", "leave", "Leave", show=False, id="command.leave"),
        Binding("tab", "complete", "Complete", show=False, id="command.complete"),
    ]

    class Left(Message):
        """The user left the command line (escape)."""

    def __init__(self, get_machine: Callable[[], Any], history: list[str] | None = None,
                 **kw: Any) -> None:
        kw.setdefault("placeholder", ": command (help lists them; tab completes)")
        kw.setdefault("select_on_focus", False)
        super().__init__(suggester=CommandSuggester(get_machine), **kw)
        self.history: list[str] = history if history is not None else []
        self._pos = len(self.history)

    def remember(self, line: str) -> None:
        if line.strip() and (not self.history or self.history[-1] != line):
            self.history.append(line)
        self._pos = len(self.history)

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        self._pos = min(max(0, self._pos + step), len(self.history))
        self.value = self.history[self._pos] if self._pos < len(self.history) else ""
        self.cursor_position = len(self.value)

    def action_complete(self) -> None:
        if self._suggestion:
            self.value = self._suggestion
            self.cursor_position = len(self.value)
        else:
            self.screen.focus_next()

    def action_leave(self) -> None:
        self.post_message(self.Left())
