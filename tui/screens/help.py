"""Help: every key binding (read from the bindings themselves, with their ids for
remapping) beside every engine command (from engine.commands)."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from engine.commands import COMMANDS, command_names

LONG = {
    "app.command": "the command line (empty; tab completes, up/down history)",
    "app.migrate": "migrate the selected process (or move the selected VMA) to a node",
    "app.undo": "undo the last migration: its pages go back to their nodes",
    "app.mlock": "mlock / munlock the selected VMA (or the one under the map cursor)",
    "app.hook": "toggle the migrate hook of the driver whose region is under the cursor",
    "app.offline": "offline the zone under the cursor (rehearsal first, o again confirms)",
    "app.online": "online the zone under the cursor",
    "app.cancel": "cancel the newest job",
    "app.view": "cycle numa_maps / numastat / zoneinfo / vmstat / map",
    "app.panels": "panels: the inspector, legend, nodes, jobs and log (narrow screens), "
                  "or a wider map (wide screens)",
    "app.pause": "pause / resume redrawing (the engine keeps running)",
    "app.clock_pause": "pause / resume the simulated clock (jobs wait)",
    "app.clock_faster": "simulated clock faster (1/1000 .. 1000x real time, then fast)",
    "app.clock_slower": "simulated clock slower, to watch a migration happen",
    "app.clock_fast": "simulated clock: as fast as possible, or back to a watchable pace",
    "app.daemon": "start the auto-migration daemon on the selected process, or stop it",
    "app.refresh_faster": "live host: read it more often (every refresh period halved)",
    "app.refresh_slower": "live host: read it less often (every refresh period doubled)",
    "rehearsal.apply": "live host: apply the rehearsed call to the host (enter never does)",
    "rehearsal.close": "close the rehearsal; before y, nothing was changed",
    "app.back": "back: leave a process, a view, or clear VMA marks",
    "app.save": "save a snapshot (puts `save snapshots/NAME.numacon` on the command line)",
    "app.load": "load a machine (puts `load PATH` on the command line)",
    "main.filter": "filter the processes table",
    "main.focus_map": "focus the map",
    "main.focus_processes": "focus the processes table",
    "map.open": "open the process that maps the frame under the cursor",
    "process.show_on_map": "mark the selected VMA's pages on the map",
    "sweep.replay": "replay the selected run as an experiment, on screen",
    "sweep.sort": "sort the runs by the next column (runtime change, run, locality...)",
    "command.complete": "complete; several candidates are listed, tab again cycles",
}


def binding_rows(groups: list[tuple[str, list[Binding]]]) -> list[tuple[str, str, str, str]]:
    rows = []
    for where, bindings in groups:
        for b in bindings:
            if not isinstance(b, Binding):
                continue
            key = b.key_display or b.key
            does = LONG.get(b.id or "", b.description or b.action)
            rows.append((where, key, does, b.id or ""))
    return rows


def keys_renderable(groups: list[tuple[str, list[Binding]]], ids: bool = True) -> Table:
    keys = Table(title="keys", title_style="bold #e8c46a", box=None, show_header=True,
                 header_style="bold #8b93a1", expand=True)
    keys.add_column("where", style="#8b93a1", no_wrap=True)
    keys.add_column("key", style="bold #6fa8dc", no_wrap=True)
    keys.add_column("does", ratio=1, overflow="fold")
    if ids:
        keys.add_column("id", style="#6b7280", no_wrap=True)
    for row in binding_rows(groups):
        keys.add_row(*(row if ids else row[:3]))
    return keys


def commands_renderable(host_help: str | None = None) -> Text:
    """The engine's commands; host_help: the live host's own list (its `help`)."""
    t = Text()
    if host_help is not None:
        t.append("commands on the live host", style="bold #e8c46a")
        t.append("   (: then type; an action is rehearsed in the simulator and shown "
                 "before anything acts: y in its dialog applies it)\n", style="#8b93a1")
        t.append(host_help)
        return t
    t.append("commands", style="bold #e8c46a")
    t.append("   (: then type; tab completes; up/down history; a line ending in & runs "
             "in the background, else the console waits for its result)\n",
             style="#8b93a1")
    for n in command_names():
        c = COMMANDS[n]
        t.append(c.usage + "\n", style="bold #6fa8dc")
        t.append(f"    {c.help}\n")
    # the console's own (not an engine command: it opens a screen)
    t.append("sweep FILE.csv\n", style="bold #6fa8dc")
    t.append("    open the results of `numacon sweep` (runs, heat grid, enter replays)\n")
    t.rstrip()
    return t


def help_renderable(groups: list[tuple[str, list[Binding]]]) -> Table:
    outer = Table.grid(padding=(0, 2))
    outer.add_row(keys_renderable(groups))
    outer.add_row(commands_renderable())
    return outer


class HelpScreen(ModalScreen[None]):
    """Keys and commands side by side (stacked on a narrow screen, without the binding
    ids). Escape, ? or q closes it."""

    BINDINGS = [
        Binding("escape,question_mark,q", "close", "Close", id="help.close"),
    ]

    def __init__(self, groups: list[tuple[str, list[Binding]]],
                 host_help: str | None = None) -> None:
        super().__init__(id="help")
        self.groups = groups
        self.host_help = host_help  # the live host's `help` (None: the engine's commands)

    def compose(self) -> ComposeResult:
        narrow = self.app.size.width < 120
        with (VerticalScroll if narrow else Horizontal)(id="help-body"):
            if narrow:
                yield Static(keys_renderable(self.groups, ids=False), id="help-keys")
                yield Static(commands_renderable(self.host_help), id="help-commands")
            else:
                with VerticalScroll(id="help-keys"):
                    yield Static(keys_renderable(self.groups))
                with VerticalScroll(id="help-commands"):
                    yield Static(commands_renderable(self.host_help))

    def on_mount(self) -> None:
        body: Any = self.query_one("#help-body")
        body.border_title = "numacon help   (escape closes)"
        if self.app.size.width < 120:
            self.add_class("-narrow")
            body.focus()
        else:
            self.query_one("#help-keys").focus()

    def action_close(self) -> None:
        self.dismiss(None)
