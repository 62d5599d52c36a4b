"""One process, numatop-style: its VMAs with pages per node, the selected VMA's
per-node breakdown, and its numa_maps. `b` goes back; Enter shows the VMA's pages on
the map; `m` offers the call that moves the VMA. Drawn from the view API."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Static

from engine.views import fmt_bytes

from ..widgets.cmdline import CommandLine
from ..widgets.keybar import CompletionBar, KeyBar
from ..widgets.quiet import quiet_update
from ..widgets.titlebar import TitleBar
from ..widgets.viewpanel import ViewPanel
from ..widgets.vmas import VmaTable
from .main import NARROW_H, NARROW_W, SLOW_PERIOD, VIEW_PERIOD, Selection

PROCESS_KEYS = [("b", "back", "app.back"), ("m", "move VMA", "app.migrate"),
                ("enter", "on map", "screen.show_on_map"), ("l", "mlock", "app.mlock"),
                ("H", "THP", "app.hugepage"),
                (":", "command", "app.command_line"), ("u", "undo", "app.undo"),
                ("q", "quit", "app.quit")]
HOST_PROCESS_KEYS = [("b", "back", "app.back"), ("m", "move VMA", "app.migrate"),
                     ("enter", "on map", "screen.show_on_map"),
                     (":", "command", "app.command_line"), ("]", "read faster",
                                                            "app.refresh_rate(1)"),
                     ("q", "quit", "app.quit")]


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
        yield CompletionBar("", id="candidates")
        yield CommandLine(lambda: app.view, history=app.history,
                          get_registry=lambda: app.command_registry, id="command")
        yield KeyBar(HOST_PROCESS_KEYS if app.live else PROCESS_KEYS, id="keys")

    def on_mount(self) -> None:
        self.query_one("#vma-detail").border_title = "selected VMA"
        self.query_one("#candidates").display = False
        self.refresh_from_machine(slow=True)
        table = self.query_one("#vmas", VmaTable)
        if self.addr is not None:
            v = self.app.view.vma_at(self.pid, self.addr)  # type: ignore[attr-defined]
            if v is not None:
                table.select_start(v.start)
        table.focus()
        self.set_class(self.app.size.width < NARROW_W or self.app.size.height < NARROW_H,
                       "-narrow")

    def on_resize(self, event: Any) -> None:
        self.set_class(event.size.width < NARROW_W or event.size.height < NARROW_H,
                       "-narrow")

    def refresh_from_machine(self, slow: bool = False) -> None:
        """The title every frame; the rest at most every SLOW_PERIOD (pages per node
        from app.node_counts). slow: everything now, pages counted afresh."""
        app: Any = self.app
        view = app.view
        self.query_one("#ptitle", TitleBar).show(view, app.paused, f"pid {self.pid}")
        info = self.query_one("#pinfo", Static)
        row = view.process(self.pid)
        if row is None:
            quiet_update(info, Text(f" process {self.pid} is gone (b: back)",
                                    style="bold #e5484d"))
            return
        now = time.monotonic()
        if not slow and now < self._slow_due:
            app.mark_dirty()  # come back for the rest
            return
        self._slow_due = now + SLOW_PERIOD
        view.watch([self.pid], self.pid)  # the live host reads this process often
        if slow:
            app.node_counts.run()
        rows = self.query_one("#vmas", VmaTable).update_from(view, app.node_counts)
        rss = sum(r.rss for r in rows)
        t = Text()
        t.append(f" pid {row.pid} ", style="bold #14161a on #e8c46a")
        t.append(f" {row.name}  uid {row.uid}  runs on node {row.node}  "
                 f"policy {row.policy}  RSS {fmt_bytes(rss * view.topology().page_size)}  "
                 f"{len(rows)} VMAs", style="bold")
        quiet_update(info, t)
        self.update_detail()
        if slow or now >= self._view_due:
            self._view_due = now + VIEW_PERIOD
            title = f"/proc/{self.pid}/numa_maps ({row.name})"
            app.execute_view(f"numa_maps {self.pid}", lambda r: self._show_numa_maps(
                title, r) if self.is_attached else None)
        else:
            app.mark_dirty()  # come back for numa_maps

    def _show_numa_maps(self, title: str, r: Any) -> None:
        self.query_one("#pnuma", ViewPanel).show(title, r.text, r.ok)

    def update_detail(self) -> None:
        app: Any = self.app
        view = app.view
        table = self.query_one("#vmas", VmaTable)
        start = table.selected_start()
        detail = self.query_one("#vma-detail", Static)
        v = view.vma_at(self.pid, start, app.node_counts) if start is not None else None
        if v is None:
            detail.update("no VMA selected")
            return
        per = v.per_node
        total = int(per.sum())
        t = Text()
        t.append(f"{v.start:x}-{v.end:x}  {v.kind}  {v.flags}\n", style="bold")
        t.append(f"policy {v.policy}  present {total}/{v.npages} pages")
        if v.shared_pages:
            t.append(f"  shared {v.shared_pages}")
        if v.driver:
            t.append(f"  driver {v.driver}")
        t.append("\n")
        width = 30
        nodes = view.nodes()
        shown = [(n, int(c)) for n, c in zip(nodes, per) if c] if len(nodes) > 8 else \
            [(n, int(c)) for n, c in zip(nodes, per)]
        for n, c in shown:
            frac = (c / total) if total else 0.0
            t.append(f"N{n:<3}")
            t.append("█" * round(frac * width), style="#3fb37f")
            t.append("░" * (width - round(frac * width)), style="#3a3f47")
            t.append(f" {c:>8} {100 * frac:5.1f}%\n")
        if len(shown) < len(nodes):
            t.append(f"(other {len(nodes) - len(shown)} nodes: no pages)\n", style="#8b93a1")
        t.append("m: move to a node (rehearsed first) · enter: pages on the map" if
                 view.status().live else
                 "m: move to a node · l: mlock/munlock · enter: pages on the map",
                 style="#8b93a1")
        detail.update(t)

    def selection(self) -> Selection:
        app: Any = self.app
        start = self.query_one("#vmas", VmaTable).selected_start()
        sel = Selection(pid=self.pid)
        if start is not None:
            v = app.view.vma_at(self.pid, start)
            if v is not None:
                sel.vma = (v.start, v.end)
                sel.vma_pid = self.pid
        return sel

    def show_result(self, ok: bool, text: str) -> None:
        self.query_one("#pstatus", Static).update(
            Text(text, style="" if ok else "bold #e5484d"))

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

    def on_command_line_candidates(self, event: CommandLine.Candidates) -> None:
        self.query_one("#candidates", CompletionBar).show(event.items, event.current)
