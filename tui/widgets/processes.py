"""The processes table: pid, name, uid, RSS, pages per node, locality, policy.
Diff-updated (update_cell, add_row, remove_row), sortable by clicking a header,
filterable by a substring.

Columns follow their content and the table's width, never cutting a number: node
columns hold exact page counts when they fit, else counts formatted to fit (131k),
else (many nodes) one NODES column, a bar of one character per node, beside TOP, the
node holding most of the process, else TOP alone. UID goes first when room is short;
LOCAL and POLICY always stay."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from engine.views import ProcRow, fmt_bytes, fmt_count

from .cells import Num, sort_value
from .nodetable import NodeCountTable

BARS = " ▁▂▃▄▅▆▇█"
MODES = ((True, "exact"), (False, "exact"), (False, "short"), (False, "bar"),
         (False, "top"))


def node_bar(per: Any, rss: int) -> Text:
    """One character per node: its share of the process's pages (blank: none)."""
    t = Text()
    for c in per:
        c = int(c)
        frac = c / rss if rss else 0.0
        i = 0 if c == 0 else max(1, min(8, round(frac * 8)))
        t.append(BARS[i], style="#3fb37f on #262a30")
    return t


def top_node(nodes: list[int], per: Any, rss: int) -> Num:
    if not rss or not per.any():  # no pages, or (the live host) no per-node split known
        return Num(-1, "-")
    i = int(per.argmax())
    share = 100.0 * int(per[i]) / rss
    return Num(share, f"N{nodes[i]} {share:.0f}%")


class ProcessTable(NodeCountTable):
    """One row per process; the row key is the pid as a string. Its mode: (UID shown,
    node columns)."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Open", show=True, id="processes.open"),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.filter_text = ""

    # -------------------------------------------------------------- columns
    def widths(self, rows: list[ProcRow], mode: tuple[bool, str]) -> int:
        """Cells the table needs in a mode (each column padded by one on each side)."""
        uid, nodes = mode
        ps = self._page_size

        def w(label: str, vals: list[str]) -> int:
            return max([len(label)] + [len(v) for v in vals]) + 2 * self.cell_padding

        total = w("PID", [str(r.pid) for r in rows]) + w("NAME", [r.name for r in rows])
        if uid:
            total += w("UID", [str(r.uid) for r in rows])
        total += w("RSS", [fmt_bytes(r.rss * ps) for r in rows])
        if nodes in ("bar", "top"):
            if nodes == "bar":
                total += w("NODES", ["x" * len(self._node_ids)])
            total += w("TOP", [f"N{max(self._node_ids, default=0)} 100%"])
        else:
            fmt = str if nodes == "exact" else fmt_count
            for i, n in enumerate(self._node_ids):
                total += w(f"N{n}", [fmt(int(r.per_node[i])) for r in rows])
        total += w("LOCAL", ["100%"]) + w("POLICY", [r.policy for r in rows])
        return total + 1  # the vertical scrollbar

    def choose_mode(self, rows: list[ProcRow]) -> tuple[bool, str]:
        width = self.size.width
        if not width:  # hidden (the panels in front): keep what it shows
            return self.mode or MODES[0]
        for mode in MODES:
            if self.widths(rows, mode) <= width:
                return mode
        return MODES[-1]

    def setup_columns(self, mode: tuple[bool, str]) -> None:
        """(Re)create the columns for a mode; drops all rows."""
        self.clear(columns=True)
        self.mode = mode
        uid, nodes = mode
        self.add_column("PID", key="pid")
        self.add_column("NAME", key="name")
        if uid:
            self.add_column("UID", key="uid")
        self.add_column("RSS", key="rss")
        if self._huge:
            self.add_column("HUGE", key="huge")
        if nodes == "bar":
            self.add_column("NODES", key="nodes")
        if nodes in ("bar", "top"):
            self.add_column("TOP", key="top")
        else:
            for n in self._node_ids:
                self.add_column(f"N{n}", key=f"N{n}")
        self.add_column("LOCAL", key="local")
        self.add_column("POLICY", key="policy")

    def row_cells(self, r: ProcRow) -> list[object]:
        uid, nodes = self.mode
        cells: list[object] = [Num(r.pid), Text(r.name)]
        if uid:
            cells.append(Num(r.uid))
        cells.append(Num(r.rss, fmt_bytes(r.rss * self._page_size)))
        if self._huge:
            cells.append(Num(r.huge_pages, str(r.huge_pages) if r.huge_pages else ""))
        # resident pages but no split (the live host: numa_maps unreadable or not read
        # yet): the node columns say "-", unknown, never a wrong 0
        split = not r.rss or bool(r.per_node.any())
        if nodes == "bar":
            cells.append(node_bar(r.per_node, r.rss))
        if nodes in ("bar", "top"):
            cells.append(top_node(self._node_ids, r.per_node, r.rss))
        else:
            fmt = str if nodes == "exact" else fmt_count
            cells += [Num(int(c), fmt(int(c))) if split else Num(-1, "-")
                      for c in r.per_node]
        cells.append(Num(-1, "-") if r.locality is None else
                     Num(r.locality, f"{r.locality:.0f}%"))
        cells.append(Text(r.policy))
        return cells

    # -------------------------------------------------------------- rows
    def matches(self, r: ProcRow) -> bool:
        f = self.filter_text.strip().lower()
        if not f:
            return True
        return f in r.name.lower() or f == str(r.pid) or f in f"uid={r.uid}" or \
            f in r.policy.lower()

    def update_from(self, view: Any, counts: Any = None) -> None:
        """Show the processes; pages per node from counts (its last pass) when given."""
        self.show_rows(view, [r for r in view.processes(counts) if self.matches(r)])

    def row_key(self, r: ProcRow) -> str:
        return str(r.pid)

    def resort(self) -> None:
        self.apply_sort()

    def apply_sort(self) -> None:
        col = self.sort_column or "pid"
        if col not in {str(c.value) for c in self.columns}:
            col = "pid"
        self.sort(col, key=sort_value, reverse=self.sort_reverse)

    def sort_by(self, column: str) -> None:
        if self.sort_column == column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, column not in ("pid", "name", "uid",
                                                                         "policy")
        self.apply_sort()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(str(event.column_key.value))

    def selected_pid(self) -> int | None:
        key = self.selected_key()
        return None if key is None else int(key)

    def visible_pids(self) -> list[int]:
        """The pids of the rows on screen (the live host reads these more often)."""
        if not self.row_count:
            return []
        top = int(self.scroll_offset.y)
        h = max(1, self.scrollable_content_region.height - self.header_height)
        rows = self.ordered_rows[top:top + h]
        return [int(r.key.value) for r in rows if r.key.value is not None]

    def select_pid(self, pid: int) -> None:
        self.select_key(str(pid))
