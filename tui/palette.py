"""The command palette's providers: every engine command, and every key action of the
console (zoom, views, the clock, undo, panels...). Commands that need no arguments
run at once (through engine.commands.execute); the others are put on the command line
to finish. A query with arguments is offered as is, to run."""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

from engine.commands import COMMANDS, command_names


def needs_args(name: str) -> bool:
    """True when the usage has a required (upper-case, unbracketed) argument."""
    usage = COMMANDS[name].usage
    rest = re.sub(r"\[[^\]]*\]", "", usage.split(" ", 1)[1] if " " in usage else "")
    return bool(re.search(r"[A-Z]", rest))


class EngineCommands(Provider):
    """Engine commands in the ctrl+p palette."""

    def _action(self, name: str) -> Any:
        app: Any = self.app
        if needs_args(name):
            return partial(app.prefill_command, f"{name} ")
        return partial(app.run_command, name)

    async def discover(self) -> Hits:
        for name in command_names():
            c = COMMANDS[name]
            yield DiscoveryHit(Content(c.usage), self._action(name), text=c.usage, help=c.help)

    async def search(self, query: str) -> Hits:
        app: Any = self.app
        q = query.strip()
        if " " in q and q.split()[0] in COMMANDS:
            yield Hit(1.0, Content(f"run: {q}"), partial(app.run_command, q), text=q,
                      help="run this line")
        matcher = self.matcher(q.split()[0] if q else q)
        for name in command_names():
            c = COMMANDS[name]
            score = matcher.match(name)
            if score > 0:
                rest = c.usage[len(name):] if c.usage.startswith(name) else ""
                display = matcher.highlight(name) + Content(rest)
                yield Hit(score, display, self._action(name), text=c.usage, help=c.help)


class KeyActions(Provider):
    """The console's key actions in the palette: `zoom in (+)`, `clock faster (>)`..."""

    def _actions(self) -> list[tuple[str, str, str]]:
        """(title, help, action) of every key binding of the app and its main screen."""
        app: Any = self.app
        return app.key_actions()

    async def discover(self) -> Hits:
        app: Any = self.app
        for title, help_text, action in self._actions():
            yield DiscoveryHit(Content(title), partial(app.run_action, action), text=title,
                               help=help_text)

    async def search(self, query: str) -> Hits:
        app: Any = self.app
        matcher = self.matcher(query)
        for title, help_text, action in self._actions():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(app.run_action, action),
                          text=title, help=help_text)
