"""The processes table: pid, name, uid, RSS, pages per node, locality, policy.
Diff-updated (update_cell, add_row, remove_row), sortable by clicking a header,
filterable by a substring."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.widgets import DataTable

from engine.views import NodeCounts, ProcRow, fmt_pages, process_rows

from .cells import Num, sort_value
from .tablediff import sync_rows


class ProcessTable(DataTable):
    """One row per process; the row key is the pid as a string."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Open", show=True, id="processes.open"),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self.filter_text = ""
        self.sort_column: str | None = None
        self.sort_reverse = False
        self._node_ids: list[int] = []

    def setup_columns(self, m: Any) -> None:
        """(Re)create columns for a machine's nodes; drops all rows."""
        self.clear(columns=True)
        self._node_ids = list(m.nodes)
        self.add_column("PID", key="pid", width=6)
        self.add_column("NAME", key="name", width=12)
        self.add_column("UID", key="uid", width=5)
        self.add_column("RSS", key="rss", width=7)
        for n in self._node_ids:
            self.add_column(f"N{n}", key=f"N{n}")
        self.add_column("LOCAL", key="local", width=6)
        self.add_column("POLICY", key="policy")

    def row_cells(self, m: Any, r: ProcRow) -> list[object]:
        cells: list[object] = [Num(r.pid), r.name, Num(r.uid),
                               Num(r.rss, fmt_pages(m, r.rss))]
        cells += [Num(int(c)) for c in r.per_node]
        cells.append(Num(-1, "-") if r.locality is None else Num(r.locality, f"{r.locality:.0f}%"))
        cells.append(r.policy)
        return cells

    def matches(self, r: ProcRow) -> bool:
        f = self.filter_text.strip().lower()
        if not f:
            return True
        return f in r.name.lower() or f == str(r.pid) or f in f"uid={r.uid}" or \
            f in r.policy.lower()

    def update_from(self, m: Any, counts: NodeCounts | None = None) -> None:
        """Show m's processes; pages per node from counts (its last pass) when given."""
        if list(m.nodes) != self._node_ids or not self.columns:
            self.setup_columns(m)
        rows = [r for r in process_rows(m, counts) if self.matches(r)]
        added = sync_rows(self, ((str(r.pid), self.row_cells(m, r)) for r in rows))
        if self.sort_column is not None or added:
            self.apply_sort()

    def apply_sort(self) -> None:
        col = self.sort_column or "pid"
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
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001 - no row under the cursor
            return None
        return int(key.value) if key.value is not None else None

    def select_pid(self, pid: int) -> None:
        try:
            self.move_cursor(row=self.get_row_index(str(pid)))
        except Exception:  # noqa: BLE001 - filtered out
            pass
