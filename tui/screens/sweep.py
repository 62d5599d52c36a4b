"""Sweep results (`numacon sweep --show FILE.csv`, or `sweep FILE.csv` on the console's
command line): a sortable table of runs, a heat grid of daemon setting x workload
coloured by the runtime change the daemon made, and Enter on a run replays it as an
`experiment` (in a thread: the console keeps answering) and shows its table. Every
string from the file is shown as text, never as markup."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from tools.sweep import (
    SweepError,
    SweepTable,
    fmt_change,
    fmt_time,
    grid,
    latest,
    replay,
    setting_label,
)

from ..widgets.cells import Num, sort_value

FULL = 0.25  # a runtime change of 25 % or more takes the strongest colour
# (column key, header, default sort descending?)
SORTS = ("change", "run", "locality_on", "migrated", "pingpong", "runtime_on")


def heat_style(change: float | None) -> str:
    """Green when the daemon made the run faster, red when slower, grey about even."""
    if change is None:
        return "#8b93a1 on #23262b"
    x = min(1.0, abs(change) / FULL)
    if abs(change) < 0.005:
        return "#c8ccd4 on #2b2f36"
    base = (0x2b, 0x2f, 0x36)
    tip = (0x1f, 0x9d, 0x55) if change < 0 else (0xd1, 0x3b, 0x3b)
    r, g, b = (round(a + (t - a) * (0.35 + 0.65 * x)) for a, t in zip(base, tip))
    return f"bold #f4f5f7 on #{r:02x}{g:02x}{b:02x}"


class SweepScreen(Screen):
    """One sweep's results."""

    BINDINGS = [
        Binding("b,escape", "app.back", "Back", id="sweep.back"),
        Binding("enter", "replay", "Replay run", id="sweep.replay"),
        Binding("s", "sort", "Sort", id="sweep.sort"),
    ]
    # the console's own keys that mean something here (the rest act on the machine)
    APP_ACTIONS = frozenset({"quit", "help", "back"})

    def __init__(self, table: SweepTable) -> None:
        super().__init__(id="sweep")
        self.table = table
        self.keys = table.daemon_keys
        self.rows = latest(table.rows, self.keys)
        self.by_key = {str(r["run"]): r for r in self.rows}
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.replaying: dict | None = None

    def compose(self) -> ComposeResult:
        yield Static(self.title_text(), id="sweep-title")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="runs")
        with Horizontal(id="sweep-bottom"):
            with Vertical(id="heatbox"):
                yield DataTable(cursor_type="cell", id="heat")
                yield Static("", id="heat-legend")
            with VerticalScroll(id="replaybox"):
                yield Static(Text("enter on a run replays it here as an experiment",
                                  style="#8b93a1"), id="replay")
        yield Footer()

    def title_text(self) -> Text:
        ok = sum(1 for r in self.rows if r["status"] == "ok")
        t = Text()
        t.append(" sweep ", style="bold #14161a on #e8c46a")
        t.append(f" {self.table.path} ", style="bold")
        t.append(f"· {len(self.rows)} runs, {ok} ok, {len(self.rows) - ok} failed · "
                 f"enter: replay · s or a header click: sort · b: back", style="#c8ccd4")
        return t

    def on_mount(self) -> None:
        self.query_one("#runs").border_title = "runs"
        self.query_one("#heatbox").border_title = "runtime change, daemon on against off " \
                                                  "(mean over seeds)"
        self.query_one("#replaybox").border_title = "replay"
        self.fill_runs()
        self.fill_heat()
        self.query_one("#runs", DataTable).focus()

    # ------------------------------------------------------------ the runs
    def fill_runs(self) -> None:
        t = self.query_one("#runs", DataTable)
        t.add_column("RUN", key="run")
        t.add_column("MACHINE", key="machine")
        t.add_column("SEED", key="seed")
        t.add_column("WORKLOAD", key="experiment")
        for k in self.keys:
            t.add_column(Text(k.upper()), key=f"d:{k}")
        for key, head in (("status", "STATUS"), ("change", "RUNTIME Δ"),
                          ("locality_off", "LOCAL OFF"), ("locality_on", "LOCAL ON"),
                          ("latency_off", "LAT OFF"), ("latency_on", "LAT ON"),
                          ("runtime_off", "TIME OFF"), ("runtime_on", "TIME ON"),
                          ("migrated", "MIGRATED"), ("pingpong", "PING-PONG"),
                          ("migrate_ns", "MIGR TIME"), ("failures", "FAILURES / ERROR")):
            t.add_column(head, key=key)
        for r in self.rows:
            t.add_row(*self.row_cells(r), key=str(r["run"]))

    def row_cells(self, r: dict) -> list[Any]:
        ok = r["status"] == "ok"

        def num(v: Any, text: str) -> Num:
            return Num(float("-inf") if v is None else v, text)

        def pct(v: float | None) -> Num:
            return num(v, "-" if v is None else f"{v:.1%}")

        cells: list[Any] = [Num(r["run"]), Text(str(r["machine"])), Num(r["seed"]),
                            Text(str(r["experiment"]))]
        cells += [Text(str(r.get(k, ""))) for k in self.keys]
        ch = r["runtime_change"]
        cells += [Text(r["status"], style="" if ok else "bold #e5484d"),
                  Num(float("inf") if ch is None else ch, fmt_change(ch)),
                  pct(r["locality_off"]), pct(r["locality_on"]),
                  num(r["latency_off_ns"], "-" if r["latency_off_ns"] is None
                      else f"{r['latency_off_ns']:.0f}ns"),
                  num(r["latency_on_ns"], "-" if r["latency_on_ns"] is None
                      else f"{r['latency_on_ns']:.0f}ns"),
                  num(r["runtime_off_ns"], fmt_time(r["runtime_off_ns"])),
                  num(r["runtime_on_ns"], fmt_time(r["runtime_on_ns"])),
                  num(r["migrated"], "-" if r["migrated"] is None else str(r["migrated"])),
                  num(r["pingpong"], "-" if r["pingpong"] is None else str(r["pingpong"])),
                  num(r["migrate_ns"], fmt_time(r["migrate_ns"]))]
        if ok:
            fails = ", ".join(f"{k} {v}" for k, v in (r["failures"] or {}).items())
            cells.append(Text(fails or "none"))
        else:
            cells.append(Text(str(r["error"]), style="#e5484d"))
        return cells

    def sort_by(self, column: str) -> None:
        """Sort by a column; the same column again reverses."""
        if self.sort_column == column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False
        self.query_one("#runs", DataTable).sort(column, key=sort_value,
                                                reverse=self.sort_reverse)

    def action_sort(self) -> None:
        i = SORTS.index(self.sort_column) + 1 if self.sort_column in SORTS else 0
        self.sort_by(SORTS[i % len(SORTS)])

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        if event.data_table.id == "runs":
            self.sort_by(str(event.column_key.value))

    def selected_row(self) -> dict | None:
        t = self.query_one("#runs", DataTable)
        if not t.row_count:
            return None
        key = t.coordinate_to_cell_key(t.cursor_coordinate).row_key
        return self.by_key.get(str(key.value))

    # ------------------------------------------------------------ the heat grid
    def fill_heat(self) -> None:
        settings, workloads, cells = grid(self.rows, self.keys)
        t = self.query_one("#heat", DataTable)
        t.add_column("SETTING", key="setting")
        for i, _ in enumerate(workloads):
            t.add_column(f"W{i + 1}", key=f"W{i + 1}")
        for s in settings:
            row: list[Any] = [Text(s)]
            for wl in workloads:
                c = cells.get((s, wl))
                ch = None if c is None else c.change
                row.append(Text(f" {'failed' if c is None else fmt_change(ch)} ",
                                style=heat_style(ch), justify="right"))
            t.add_row(*row, key=s)
        legend = Text()
        for i, (machine, experiment) in enumerate(workloads):
            legend.append(f"W{i + 1}", style="bold #6fa8dc")
            legend.append(f" {machine} · {experiment}\n")
        legend.append("green: faster with the daemon · red: slower", style="#8b93a1")
        self.query_one("#heat-legend", Static).update(legend)

    # ------------------------------------------------------------ replay
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.data_table.id == "runs":
            self.action_replay()

    def action_replay(self) -> None:
        row = self.selected_row()
        if row is None:
            return
        self.replaying = row
        self.show_replay(Text(f"replaying run {row['run']} "
                              f"({setting_label(row, self.keys)}, seed {row['seed']}) ...",
                              style="#8b93a1"))
        keys = self.keys
        self.run_worker(lambda: replay(row, keys), thread=True, exclusive=True,
                        group="replay", exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        w, row = event.worker, self.replaying
        if w.group != "replay" or row is None:
            return
        head = Text(f"run {row['run']}: {row['machine']}\n", style="bold")
        if event.state == WorkerState.SUCCESS:
            line, text, same = w.result
            t = head + Text(f"$ {line}\n", style="#6fa8dc") + Text(text + "\n")
            t.append("the same figures as the recorded run" if same else
                     "differs from the recorded run",
                     style="#3fb37f" if same else "bold #e5484d")
            self.show_replay(t)
        elif event.state == WorkerState.ERROR:
            err = w.error
            msg = str(err) if isinstance(err, SweepError) else f"{type(err).__name__}: {err}"
            self.show_replay(head + Text(msg, style="bold #e5484d"))

    def show_replay(self, t: Text) -> None:
        self.query_one("#replay", Static).update(t)

    def replay_text(self) -> str:
        """What the replay panel shows (tests)."""
        content: Any = self.query_one("#replay", Static).content
        return content.plain if isinstance(content, Text) else str(content)
