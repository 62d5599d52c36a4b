"""A process's VMAs as numa_maps shows them: range, size, kind, flags, policy, RSS and
pages per node. Diff-updated; the row key is the VMA start in hex."""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable

from engine.views import VmaRow, fmt_bytes, fmt_pages, vma_rows

from .cells import Num, sort_value
from .tablediff import sync_rows


class VmaTable(DataTable):
    """One row per VMA of one process."""

    def __init__(self, pid: int, **kw: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self.pid = pid
        self._node_ids: list[int] = []
        self.sort_column: str | None = None
        self.sort_reverse = False

    def setup_columns(self, m: Any) -> None:
        self.clear(columns=True)
        self._node_ids = list(m.nodes)
        self.add_column("RANGE", key="range", width=27)
        self.add_column("SIZE", key="size", width=7)
        self.add_column("KIND", key="kind", width=6)
        self.add_column("FLAGS", key="flags", width=16)
        self.add_column("POLICY", key="policy", width=16)
        self.add_column("RSS", key="rss", width=7)
        for n in self._node_ids:
            self.add_column(f"N{n}", key=f"N{n}")

    def row_cells(self, m: Any, r: VmaRow) -> list[object]:
        cells: list[object] = [f"{r.start:x}-{r.end:x}",
                               Num(r.end - r.start, fmt_bytes(r.end - r.start)),
                               r.kind, r.flags, r.policy, Num(r.rss, fmt_pages(m, r.rss))]
        cells += [Num(int(c)) for c in r.per_node]
        return cells

    def update_from(self, m: Any, counts: Any = None) -> list[VmaRow]:
        """Show the process's VMAs; pages per node from counts (a model.NodeCounts) when
        given."""
        if list(m.nodes) != self._node_ids or not self.columns:
            self.setup_columns(m)
        try:
            rows = vma_rows(m, self.pid, counts)
        except OSError:
            rows = []
        added = sync_rows(self, ((f"{r.start:x}", self.row_cells(m, r)) for r in rows))
        if added or self.sort_column:
            self.sort(self.sort_column or "range", key=sort_value, reverse=self.sort_reverse)
        return rows

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        col = str(event.column_key.value)
        if self.sort_column == col:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = col, False
        self.sort(col, key=sort_value, reverse=self.sort_reverse)

    def selected_start(self) -> int | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001
            return None
        return int(key.value, 16) if key.value else None

    def select_start(self, start: int) -> None:
        """Put the cursor on the VMA starting at `start`."""
        try:
            self.move_cursor(row=self.get_row_index(f"{start:x}"))
        except Exception:  # noqa: BLE001 - no such row
            pass
