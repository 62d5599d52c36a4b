"""Diff-update a DataTable: remove stale rows, update changed cells, add new rows;
never clear and refill (memray's and dolphie's pattern). A changed cell widens its
column when it needs to: a number is never cut."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from textual.widgets import DataTable


def sync_rows(table: DataTable, keyed_cells: Iterable[tuple[str, Sequence]]) -> bool:
    """Make the table hold exactly these (key, cells) rows. Returns True if any row was
    added (the caller re-sorts)."""
    keyed_cells = list(keyed_cells)
    existing = {k.value for k in table.rows}
    for k in existing - {k for k, _ in keyed_cells}:
        table.remove_row(k)
    col_keys = [c.key for c in table.ordered_columns]
    added = False
    for k, cells in keyed_cells:
        if k in existing:
            for ck, v in zip(col_keys, cells):
                if table.get_cell(k, ck) != v:
                    table.update_cell(k, ck, v, update_width=True)
        else:
            table.add_row(*cells, key=k)
            added = True
    return added
