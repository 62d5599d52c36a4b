"""One process, numatop-style: its VMAs with pages per node, the selected VMA's
per-node breakdown, and its numa_maps. `b` goes back; Enter shows the VMA's pages on
the map."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from engine.commands import execute
from engine.views import find_vma, fmt_pages, policy_str

from ..widgets.cmdline import CommandLine
from ..widgets.quiet import quiet_update
from ..widgets.titlebar import TitleBar
from ..widgets.viewpanel import ViewPanel
from ..widgets.vmas import VmaTable
from .main import Selection


class ProcessScreen(Screen):
    """A process's memory areas."""

    BINDINGS = [
        Binding("b,escape", "app.back", "Back", id="process.back"),
        Binding("enter", "show_on_map", "Pages on map", id="process.show_on_map"),
    ]

    def __init__(self, pid: int, addr: int | None = None) -> None:
        super().__init__()
        self.pid = pid
        self.addr = addr
        self._slow_due = 0.0
        self._view_due = 0.0

    def compose(self) -> ComposeResult:
        app: Any = self.app
        yield TitleBar(id="ptitle")
        yield Static("", id="pinfo")
        yield VmaTable(self.pid, id="vmas")
        with Horizontal(id="pbottom"):
            yield Static("", id="vma-detail")
            yield ViewPanel(id="pnuma")
        yield Static("", id="pstatus")
        yield CommandLine(lambda: app.machine, history=app.history, id="command")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#vma-detail").border_title = "selected VMA"
        m: Any = self.app.machine  # type: ignore[attr-defined]
        self.refresh_from_machine(m, slow=True)
        table = self.query_one("#vmas", VmaTable)
        if self.addr is not None:
            v = find_vma(m, self.pid, self.addr)
            if v is not None:
                table.select_start(v.start)
        table.focus()

    def refresh_from_machine(self, m: Any, slow: bool = False) -> None:
        """The title every frame; the rest at most every SLOW_PERIOD (pages per node
        from app.node_counts). slow: everything now, pages counted afresh."""
        import time

        from .main import SLOW_PERIOD, VIEW_PERIOD

        app: Any = self.app
        self.query_one("#ptitle", TitleBar).show(m, app.paused, f"pid {self.pid}")
        info = self.query_one("#pinfo", Static)
        if self.pid not in m.procs:
            quiet_update(info, Text(f" process {self.pid} is gone (b: back)",
                                    style="bold #e5484d"))
            return
        now = time.monotonic()
        if not slow and now < self._slow_due:
            app.mark_dirty()  # come back for the rest
            return
        self._slow_due = now + SLOW_PERIOD
        if slow:
            app.node_counts.run()
        p = m.process(self.pid)
        rows = self.query_one("#vmas", VmaTable).update_from(m, app.node_counts)
        rss = sum(r.rss for r in rows)
        t = Text()
        t.append(f" pid {p.pid} ", style="bold #14161a on #e8c46a")
        t.append(f" {p.name}  uid {p.uid}  runs on node {p.node}  "
                 f"policy {policy_str(p.policy)}  RSS {fmt_pages(m, rss)}  "
                 f"{len(rows)} VMAs", style="bold")
        quiet_update(info, t)
        self.update_detail()
        if slow or now >= self._view_due:
            self._view_due = now + VIEW_PERIOD
            r = execute(m, f"numa_maps {self.pid}")
            self.query_one("#pnuma", ViewPanel).show(f"/proc/{self.pid}/numa_maps", r.text,
                                                     r.ok)
        else:
            app.mark_dirty()  # come back for numa_maps

    def update_detail(self) -> None:
        m: Any = self.app.machine  # type: ignore[attr-defined]
        table = self.query_one("#vmas", VmaTable)
        start = table.selected_start()
        detail = self.query_one("#vma-detail", Static)
        if start is None or self.pid not in m.procs:
            detail.update("no VMA selected")
            return
        v = find_vma(m, self.pid, start)
        if v is None:
            detail.update("no VMA selected")
            return
        per = self.app.node_counts.vma(self.pid, v)  # type: ignore[attr-defined]
        total = int(per.sum())
        t = Text()
        t.append(f"{v.start:x}-{v.end:x}  {v.kind}  {v.flag_string()}\n", style="bold")
        t.append(f"policy {policy_str(v.policy)}  present {total}/{v.npages} pages\n")
        width = 30
        for n, c in zip(m.nodes, per):
            frac = (int(c) / total) if total else 0.0
            t.append(f"N{n:<3}")
            t.append("█" * round(frac * width), style="#3fb37f")
            t.append("░" * (width - round(frac * width)), style="#3a3f47")
            t.append(f" {int(c):>8} {100 * frac:5.1f}%\n")
        t.append("m: move to a node · l: mlock/munlock · enter: pages on the map",
                 style="#8b93a1")
        detail.update(t)

    def selection(self) -> Selection:
        start = self.query_one("#vmas", VmaTable).selected_start()
        m: Any = self.app.machine  # type: ignore[attr-defined]
        sel = Selection(pid=self.pid)
        if start is not None:
            v = find_vma(m, self.pid, start)
            if v is not None:
                sel.vma = (v.start, v.end)
                sel.vma_pid = self.pid
        return sel

    def show_result(self, ok: bool, text: str) -> None:
        first = text.splitlines()[0] if text else ("ok" if ok else "")
        self.query_one("#pstatus", Static).update(
            Text(first, style="" if ok else "bold #e5484d"))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.update_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_show_on_map()

    def action_show_on_map(self) -> None:
        sel = self.selection()
        if sel.vma is not None:
            self.app.show_vma_on_map(self.pid, sel.vma[0])  # type: ignore[attr-defined]

    def on_command_line_left(self, event: CommandLine.Left) -> None:
        self.query_one("#vmas").focus()
