"""The main screen: the page-frame map with its inspector, legend, node meters and
distance grid; the processes table; jobs; the log; the command line.

It adapts to the terminal: from 120x34 up everything is on screen; below (80x24 and
up) the map and the processes table with its node columns stay, the last result shows
on a line above the command line, and `w` swaps them for the panels (inspector,
legend, nodes, distances, jobs, log). Everything it draws comes from the view API
(app.view, engine.views.MachineView); it tells the view which processes the table
shows (view.watch: the live host reads those more often)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from ..widgets.cmdline import CommandLine
from ..widgets.consolelog import ConsoleLog
from ..widgets.distance import DistanceGrid
from ..widgets.inspector import Inspector
from ..widgets.jobs import JobsPanel
from ..widgets.keybar import CompletionBar, KeyBar
from ..widgets.legend import Legend
from ..widgets.meters import NodeMeters
from ..widgets.pagemap import PageMap
from ..widgets.processes import ProcessTable
from ..widgets.titlebar import TitleBar
from ..widgets.viewpanel import ViewPanel

SLOW_PERIOD = 0.25  # seconds between table/meter refreshes while the machine changes
VIEW_PERIOD = 1.0  # seconds between refreshes of an engine view (numa_maps, zoneinfo,
#                    vmstat: the engine reads every frame for them, tens of ms on a large
#                    machine) while the machine changes
NARROW_W, NARROW_H = 120, 34  # below either, the narrow layout

MAIN_KEYS = [(":", "command", "app.command_line"), ("m", "migrate", "app.migrate"),
             ("u", "undo", "app.undo"), ("w", "panels", "app.panels"),
             ("v", "view", "app.view"), ("+/-", "zoom", "app.zoom(1)"),
             ("F", "fast", "app.clock_fast"), ("c", "cancel", "app.cancel_job"),
             ("o", "offline", "app.offline"), ("h", "hook", "app.hook"),
             ("l", "mlock", "app.mlock"), ("d", "daemon", "app.daemon"),
             ("space", "pause", "app.pause"), ("q", "quit", "app.quit")]
HOST_KEYS = [(":", "command", "app.command_line"), ("m", "migrate", "app.migrate"),
             ("]", "read faster", "app.refresh_rate(1)"),
             ("[", "read slower", "app.refresh_rate(-1)"), ("w", "panels", "app.panels"),
             ("v", "view", "app.view"), ("+/-", "zoom", "app.zoom(1)"),
             ("space", "pause", "app.pause"), ("q", "quit", "app.quit")]


@dataclass
class Selection:
    pid: int | None = None
    vma: tuple[int, int] | None = None  # (start, end)
    vma_pid: int | None = None  # the process the VMA belongs to
    pfn: int | None = None


class FilterInput(Input):
    """The processes filter: shown by `/`, hidden again when empty."""

    BINDINGS = [Binding("escape", "clear", "Clear filter", show=False, id="filter.clear")]

    def action_clear(self) -> None:
        self.value = ""
        self.screen.query_one("#processes").focus()

    def on_blur(self) -> None:
        if not self.value:
            self.display = False


class MainScreen(Screen):
    """The console's home."""

    BINDINGS = [
        Binding("slash", "filter", "Filter", show=False, id="main.filter", key_display="/"),
        Binding("f", "focus_map", "Map", show=False, id="main.focus_map"),
        Binding("p", "focus_processes", "Processes", show=False, id="main.focus_processes"),
    ]

    def __init__(self) -> None:
        super().__init__(id="main")
        self._slow_due = 0.0
        self._view_due = 0.0

    def compose(self) -> ComposeResult:
        app: Any = self.app
        yield TitleBar(id="titlebar")
        with Horizontal(id="top"):
            with Vertical(id="mapbox"):
                yield PageMap(app.view, id="pagemap")
                yield ViewPanel(id="view")
            with VerticalScroll(id="side"):
                yield Inspector(id="inspector")
                yield Legend(id="legend")
                yield NodeMeters(id="meters")
                yield DistanceGrid(id="distances")
        with Horizontal(id="bottom"):
            with Vertical(id="procbox"):
                yield ProcessTable(id="processes")
                yield FilterInput(placeholder="filter processes: name, pid, uid=N, policy "
                                  "(enter keeps it, escape clears)", id="filter", compact=True)
            with Vertical(id="rightbox"):
                yield JobsPanel(id="jobs")
                yield ConsoleLog(id="log")
        yield Static("", id="status")
        yield CompletionBar("", id="candidates")
        yield CommandLine(lambda: app.view, history=app.history,
                          get_registry=lambda: app.command_registry, id="command")
        yield KeyBar(HOST_KEYS if app.live else MAIN_KEYS, id="keys")

    def on_mount(self) -> None:
        titles = {"inspector": "inspector", "legend": "legend",
                  "meters": "nodes: used · free · history · ↑out ↓in",
                  "distances": "distances", "jobs": "jobs (c cancels the newest)",
                  "log": "log", "procbox": "processes (enter opens, / filters)"}
        for wid, title in titles.items():
            self.query_one(f"#{wid}").border_title = title
        self.query_one("#view", ViewPanel).display = False
        self.query_one("#filter").display = False
        self.query_one("#candidates").display = False
        self.set_machine()
        self.query_one("#pagemap").focus()
        log = self.query_one("#log", ConsoleLog)
        app: Any = self.app
        if app.live:
            log.info(app.view.status_line())
            for line in app.view.limits():
                log.info(f"  {line}")
            log.info("welcome to the live host: arrows move on the map · tab (or p) to the "
                     "processes, enter opens one · m migrates (rehearsed first, y in its "
                     "dialog applies) · ] [ read faster / slower · : types a command · "
                     "? help")
        else:
            log.info("welcome: arrows move on the map · tab (or p) to the processes, enter "
                     "opens one · m migrates · u undoes · : types a command · w panels · "
                     "? help")
        self.adapt(self.app.size.width, self.app.size.height)

    # ------------------------------------------------------------ layout
    def on_resize(self, event: events.Resize) -> None:
        self.adapt(event.size.width, event.size.height)

    def adapt(self, width: int, height: int) -> None:
        """The narrow layout below NARROW_W x NARROW_H."""
        narrow = width < NARROW_W or height < NARROW_H
        self.set_class(narrow, "-narrow")

    @property
    def narrow(self) -> bool:
        return self.has_class("-narrow")

    def toggle_panels(self) -> bool:
        """Swap the map and processes for the panels (narrow), or hide the panels to
        widen the map and processes (wide). True when the panels are in front."""
        self.toggle_class("-panels")
        front = self.has_class("-panels") == self.narrow
        if self.has_class("-panels") and self.narrow:
            self.query_one("#side").focus()
        else:
            self.query_one("#pagemap").focus()
        self.app.mark_dirty()  # type: ignore[attr-defined]
        return front

    # ------------------------------------------------------------ state in
    def set_machine(self) -> None:
        app: Any = self.app
        self.query_one("#pagemap", PageMap).set_view(app.view)
        self.query_one("#meters", NodeMeters).reset()
        self.query_one("#distances", DistanceGrid).show(app.view)
        self.refresh_from_machine(slow=True)

    def refresh_from_machine(self, slow: bool = False) -> None:
        """Redraw from the view: the map, title and jobs every frame; the rest at most
        every SLOW_PERIOD, the table's pages per node from the last count of them
        (app.node_counts, a few ms a frame), the engine views at most every VIEW_PERIOD.
        slow: everything now, pages counted afresh."""
        app: Any = self.app
        view = app.view
        counts = app.node_counts
        pm = self.query_one("#pagemap", PageMap)
        if pm.display:
            pm.refresh_from_machine()
        self.query_one("#titlebar", TitleBar).show(view, app.paused)
        self.query_one("#jobs", JobsPanel).show(view)
        if slow:
            counts.run()
        now = time.monotonic()
        if not slow and now < self._slow_due:
            app.mark_dirty()  # come back for the slow parts
            return
        self._slow_due = now + SLOW_PERIOD
        self.update_inspector()
        self.update_legend()
        self.query_one("#meters", NodeMeters).show(view)
        table = self.query_one("#processes", ProcessTable)
        table.update_from(view, counts)
        view.watch(table.visible_pids(), table.selected_pid())
        panel = self.query_one("#view", ViewPanel)
        if panel.display:
            if slow or now >= self._view_due:
                self._view_due = now + VIEW_PERIOD
                app.refresh_view()
            else:
                app.mark_dirty()  # come back for the view

    def update_legend(self) -> None:
        app: Any = self.app
        pm = self.query_one("#pagemap", PageMap)
        if pm.view is not None:
            self.query_one("#legend", Legend).show(pm.view, pm.pid_colors,
                                                   counts=app.node_counts,
                                                   note=pm.sampling_note())

    def update_inspector(self) -> None:
        pm = self.query_one("#pagemap", PageMap)
        if pm.view is None:
            return
        y, col = pm.cursor_cell()
        cell = pm.cell_range(y, col) if y >= 0 else None
        self.query_one("#inspector", Inspector).show(pm.view, pm.cursor, cell, pm.sampled)

    def show_view(self, name: str | None, text: str = "", ok: bool = True) -> None:
        panel = self.query_one("#view", ViewPanel)
        pm = self.query_one("#pagemap", PageMap)
        if name is None:
            panel.display = False
            pm.display = True
            pm.focus()
            self.app.mark_dirty()  # type: ignore[attr-defined]
            return
        panel.show(name, text, ok, "(v: next view, b: back to the map)")
        panel.display = True
        pm.display = False

    def show_result(self, ok: bool, text: str) -> None:
        """The last result on the status line (the narrow layout shows it)."""
        self.query_one("#status", Static).update(
            Text(text, style="" if ok else "bold #e5484d"))

    # ------------------------------------------------------------ selection
    def selection(self) -> Selection:
        app: Any = self.app
        view = app.view
        pm = self.query_one("#pagemap", PageMap)
        table = self.query_one("#processes", ProcessTable)
        sel = Selection(pid=table.selected_pid(), pfn=pm.cursor)
        owner = view.frame_owner(pm.cursor)
        if owner is not None:
            v = view.vma_at(owner[0], owner[1])
            if v is not None:
                sel.vma = (v.start, v.end)
                sel.vma_pid = owner[0]
        return sel

    def zone_under_cursor(self) -> Any:
        app: Any = self.app
        return app.view.zone_at(self.query_one("#pagemap", PageMap).cursor)

    # ------------------------------------------------------------ events
    def on_page_map_cursor_moved(self, event: PageMap.CursorMoved) -> None:
        self.update_inspector()

    def on_page_map_open_frame(self, event: PageMap.OpenFrame) -> None:
        app: Any = self.app
        owner = app.view.frame_owner(event.pfn)
        if owner is None:
            self.query_one("#log", ConsoleLog).info(
                "no process maps this frame (enter opens the owner of a mapped page)")
            return
        app.open_process(owner[0], owner[1])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The live host reads the selected process (and the rows shown) more often."""
        if event.data_table.id == "processes":
            app: Any = self.app
            table = self.query_one("#processes", ProcessTable)
            app.view.watch(table.visible_pids(), table.selected_pid())

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "processes" and event.row_key.value is not None:
            self.app.open_process(int(event.row_key.value))  # type: ignore[attr-defined]

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            app: Any = self.app
            table = self.query_one("#processes", ProcessTable)
            table.filter_text = event.value
            table.update_from(app.view, app.node_counts)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.stop()
            self.query_one("#processes").focus()

    def on_command_line_left(self, event: CommandLine.Left) -> None:
        self.query_one("#pagemap").focus()

    def on_command_line_candidates(self, event: CommandLine.Candidates) -> None:
        self.query_one("#candidates", CompletionBar).show(event.items, event.current)

    def on_screen_resume(self) -> None:
        self.app.mark_dirty()  # type: ignore[attr-defined]

    def action_filter(self) -> None:
        f = self.query_one("#filter")
        f.display = True
        self.set_focus(f)

    def action_focus_map(self) -> None:
        self.query_one("#pagemap").focus()

    def action_focus_processes(self) -> None:
        self.query_one("#processes").focus()
