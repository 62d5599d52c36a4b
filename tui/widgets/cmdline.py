"""The command line: an Input that takes the engine's command language, with history
(up/down) and completion (Tab) of command names, sub-command words, pids, address
ranges, nodes, zones, drivers, policies, flags (--dry-run, --all), keywords (move,
move_all) and options (key=) from the live machine (engine.views) and from each
command's argument spec (engine/commands/spec.py). Tab never leaves the line: one
candidate completes the word, several complete what they share and are listed
(CommandLine.Candidates), and Tab again cycles through them."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from typing import Any

from textual.binding import Binding
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Input

from engine.commands import COMMANDS, command_names

CONSOLE_COMMANDS = ("sweep",)  # the console's own (tui/app.py), not the engine's


def _hint_values(view: Any, hint: str, cmd: str, positional: list[str],
                 hints: list[str], registry: dict) -> list[str]:
    def positional_of(h: str) -> str | None:
        for w, hh in zip(positional, hints):
            if hh == h:
                return w
        return None

    if hint == "pid":
        return [str(p) for p in view.pids()]
    if hint in ("node", "nodes"):
        return [str(n) for n in view.nodes()]
    if hint == "zone":
        node = positional_of("node")
        try:
            return view.zone_names(int(node) if node is not None else None)
        except ValueError:
            return view.zone_names()
    if hint == "driver":
        return view.driver_names()
    if hint in ("range", "addr"):
        pid = positional_of("pid")
        try:
            ranges = view.vma_ranges(int(pid)) if pid is not None else []
        except ValueError:
            ranges = []
        out = ["all"] if cmd == "move_pages" and hint == "range" else []
        return out + [f"{a:x}..{b:x}" if hint == "range" else f"{a:x}" for a, b in ranges]
    if hint == "policy":
        return ["default", "local"] + [f"{k}:{n}" for k in ("bind", "prefer", "interleave")
                                       for n in view.nodes()]
    if hint == "job":
        return [str(j) for j in view.job_ids()]
    if hint == "command":
        return command_names(registry)
    if hint == "workload":
        return ["all"] + [str(w[0]) for w in view.workloads()]
    if hint == "path":
        return _paths()
    return []


def _paths() -> list[str]:
    """Machine files near the working directory: saves/*.toml, snapshots/*.numacon."""
    out = []
    for d, suffixes in (("saves", (".toml",)), ("snapshots", (".numacon", ".toml"))):
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        out += [f"{d}/{n}" for n in names if n.endswith(suffixes)]
    return out


def candidates(view: Any, words: list[str], position: int,
               registry: dict | None = None) -> list[str]:
    """Completions for word number `position` (0 = the command name) of a line, from
    the command registry of the machine drawn (None: the simulator's)."""
    registry = COMMANDS if registry is None else registry
    if position == 0:
        return command_names(registry) + list(CONSOLE_COMMANDS)
    cmd = registry.get(words[0])
    if cmd is None or view is None:
        return []
    cur = words[position] if position < len(words) else ""
    prev = words[1:position]
    subs = [f.word for f in cmd.forms if f.word is not None]
    form = cmd.forms[0]
    out: list[str] = []
    if subs:
        if prev and prev[0] in subs:
            form = next(f for f in cmd.forms if f.word == prev[0])
            prev = prev[1:]
        else:
            form = next((f for f in cmd.forms if f.word == cmd.default), cmd.forms[0])
            if not prev:
                out += subs
    spec = form.spec
    flags = [f"--{f}" for f in spec.flags]
    if cur.startswith("-"):
        return [f for f in flags if f not in prev]
    positional = [w for w in prev if not w.startswith("--") and w not in spec.words and
                  not ("=" in w and w.split("=", 1)[0] in spec.opts)]
    hints = [a.hint for a in spec.args]
    i = len(positional)
    if i < len(spec.args):
        out += _hint_values(view, spec.args[i].hint, cmd.name, positional, hints, registry)
    required = sum(1 for a in spec.args if not a.optional)
    if i >= required:
        given = {w.split("=", 1)[0] for w in prev if "=" in w}
        out += [w for w in spec.words if w not in prev]
        out += [f"{k}=" for k in spec.opts if k not in given]
        out += [f for f in flags if f not in prev]
    return list(dict.fromkeys(out))


def split_line(value: str) -> tuple[list[str], int] | None:
    """(words, index of the word being typed) of a line, or None when it does not
    split (an open quote)."""
    try:
        words = shlex.split(value)
    except ValueError:
        return None
    if not words or value.endswith(" "):
        words.append("")
    return words, len(words) - 1


def matches(view: Any, value: str, registry: dict | None = None) -> list[str]:
    """The candidates for the last word of a line that start with what it holds."""
    sp = split_line(value)
    if sp is None:
        return []
    words, pos = sp
    last = words[-1]
    return [c for c in candidates(view, words, pos, registry) if c.startswith(last)]


def complete(view: Any, value: str, registry: dict | None = None) -> str | None:
    """The whole line with its last word completed by the first candidate, or None."""
    if not value.strip():
        return None
    sp = split_line(value)
    if sp is None:
        return None
    last = sp[0][-1]
    for c in matches(view, value, registry):
        if c != last:
            return value + c[len(last):]
    return None


def _common(items: list[str]) -> str:
    return os.path.commonprefix(items) if items else ""


class CommandSuggester(Suggester):
    """Ghost-text completion of the last word from the live machine."""

    def __init__(self, get_view: Callable[[], Any],
                 get_registry: Callable[[], dict | None]) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self._get_view = get_view
        self._get_registry = get_registry

    async def get_suggestion(self, value: str) -> str | None:
        return complete(self._get_view(), value, self._get_registry())


class CommandLine(Input):
    """`:` focuses it (empty); Enter runs the line through engine.commands.execute."""

    BINDINGS = [
        Binding("up", "history(-1)", "Previous", show=False, id="command.history_prev"),
        Binding("down", "history(1)", "Next", show=False, id="command.history_next"),
        Binding("escape", "leave", "Leave", show=False, id="command.leave"),
        Binding("tab", "complete", "Complete", show=False, id="command.complete"),
    ]

    class Left(Message):
        """The user left the command line (escape)."""

    class Candidates(Message):
        """Completions to show (an empty list hides them)."""

        def __init__(self, items: list[str], current: int = -1) -> None:
            super().__init__()
            self.items = items
            self.current = current

    def __init__(self, get_view: Callable[[], Any], history: list[str] | None = None,
                 get_registry: Callable[[], dict | None] = lambda: None, **kw: Any) -> None:
        """get_view: the view API of the machine drawn; get_registry: its command
        registry (None: the simulator's), which completion offers."""
        kw.setdefault("placeholder", ": command (help lists them; tab completes)")
        kw.setdefault("select_on_focus", False)
        super().__init__(suggester=CommandSuggester(get_view, get_registry), **kw)
        self._get_view = get_view
        self._get_registry = get_registry
        self.history: list[str] = history if history is not None else []
        self._pos = len(self.history)
        self._cycle: tuple[str, list[str], int] | None = None  # (stem, items, index)

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
        """Complete the word being typed; never moves focus."""
        value = self.value[: self.cursor_position]
        rest = self.value[self.cursor_position:]
        cyc = self._cycle
        if cyc is not None and value == cyc[0] + cyc[1][cyc[2]]:
            stem, items, i = cyc
            i = (i + 1) % len(items)
            self._cycle = (stem, items, i)
            self._set(stem + items[i], rest)
            self.post_message(self.Candidates(items, i))
            return
        items = matches(self._get_view(), value, self._get_registry())
        if not items:
            self._cycle = None
            self.post_message(self.Candidates([]))
            return
        sp = split_line(value)
        last = sp[0][-1] if sp else ""
        stem = value[: len(value) - len(last)]
        if len(items) == 1:
            word = items[0]
            tail = "" if word.endswith(("=", ":")) else " "
            self._cycle = None
            self._set(stem + word + tail, rest)
            self.post_message(self.Candidates([]))
            return
        common = _common(items)
        self._cycle = (stem, items, -1)
        if len(common) > len(last):
            self._set(stem + common, rest)
            self._cycle = None if common not in items else (stem, items, items.index(common))
        self.post_message(self.Candidates(items))

    def _set(self, head: str, rest: str) -> None:
        self.value = head + rest
        self.cursor_position = len(head)

    def clear_line(self) -> None:
        self.value = ""
        self._cycle = None
        self.post_message(self.Candidates([]))

    def action_leave(self) -> None:
        self.clear_line()
        self.post_message(self.Left())
