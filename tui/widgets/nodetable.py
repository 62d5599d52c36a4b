"""The base of the tables with pages per node (processes, a process's VMAs): rows
diff-updated by key, columns chosen by the rows and the width (a subclass's modes),
a HUGE column while any row maps a huge page, and on a resize the columns chosen
again with the cursor kept on its row."""

from __future__ import annotations

from typing import Any

from textual import events
from textual.widgets import DataTable

from .tablediff import sync_rows


class NodeCountTable(DataTable):
    """Subclasses give choose_mode(rows), setup_columns(mode), row_cells(row),
    row_key(row) and resort()."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.mode: tuple[bool, str] | None = None
        self._node_ids: list[int] = []
        self._page_size = 4096
        self._rows: list = []
        self._huge = False  # a HUGE column (huge pages per row) while any row maps one

    def choose_mode(self, rows: list) -> tuple[bool, str]:
        raise NotImplementedError

    def setup_columns(self, mode: tuple[bool, str]) -> None:
        raise NotImplementedError

    def row_cells(self, r: Any) -> list[object]:
        raise NotImplementedError

    def row_key(self, r: Any) -> str:
        raise NotImplementedError

    def resort(self) -> None:
        raise NotImplementedError

    def show_rows(self, view: Any, rows: list) -> None:
        """Make the table show these rows of the view's machine."""
        self._node_ids = view.nodes()
        self._page_size = view.topology().page_size
        self._rows = rows
        mode = self.choose_mode(rows)
        huge = any(r.huge_pages for r in rows)
        if mode != self.mode or not self.columns or huge != self._huge:
            self._huge = huge
            self.setup_columns(mode)
        if self._sync() or self.sort_column is not None:
            self.resort()

    def _sync(self) -> bool:
        return sync_rows(self, ((self.row_key(r), self.row_cells(r)) for r in self._rows))

    def on_resize(self, event: events.Resize) -> None:
        if self.mode is None or not self._rows:
            return
        mode = self.choose_mode(self._rows)
        if mode != self.mode:
            key = self.selected_key()
            self.setup_columns(mode)
            self._sync()
            self.resort()
            if key is not None:
                self.select_key(key)

    def selected_key(self) -> str | None:
        """The key of the row under the cursor."""
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001 - no row under the cursor
            return None
        return key.value or None

    def select_key(self, key: str) -> None:
        """Put the cursor on the row with this key (nothing when it is filtered out)."""
        try:
            self.move_cursor(row=self.get_row_index(key))
        except Exception:  # noqa: BLE001 - no such row
            pass
