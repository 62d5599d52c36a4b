"""A process's VMAs as numa_maps shows them: range, size, kind, flags, policy, RSS and
pages per node (engine.views: vmas). Diff-updated; the row key is the VMA start in hex.
Columns follow their content: node counts exact when they fit, else formatted to fit
(81.9k); on a narrow screen the range becomes its start (SIZE says the rest) and KIND
and FLAGS go to the detail panel; then a bar of one character per node. Never cut."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from engine.views import VmaRow, fmt_bytes, fmt_count

from .cells import Num, sort_value
from .nodetable import NodeCountTable
from .processes import node_bar, top_node


class VmaTable(NodeCountTable):
    """One row per VMA of one process; the row key is its start in hex. Its mode: (full
    columns, exact | short | bar)."""

    def __init__(self, pid: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.pid = pid

    def widths(self, rows: list[VmaRow], mode: tuple[bool, str]) -> int:
        def w(label: str, vals: list[str]) -> int:
            return max([len(label)] + [len(v) for v in vals]) + 2 * self.cell_padding

        full, nodes = mode
        ps = self._page_size
        if full:
            total = w("RANGE", [f"{r.start:x}-{r.end:x}" for r in rows])
            total += w("KIND", [r.kind for r in rows]) + w("FLAGS", [r.flags for r in rows])
        else:
            total = w("START", [f"{r.start:x}" for r in rows])
        total += w("SIZE", [fmt_bytes(r.end - r.start) for r in rows])
        total += w("POLICY", [r.policy for r in rows])
        total += w("RSS", [fmt_bytes(r.rss * ps) for r in rows])
        if nodes == "bar":
            total += w("NODES", ["x" * len(self._node_ids)]) + w("TOP", ["N00 100%"])
        else:
            fmt = str if nodes == "exact" else fmt_count
            for i, n in enumerate(self._node_ids):
                total += w(f"N{n}", [fmt(int(r.per_node[i])) for r in rows])
        return total + 1

    MODES = ((True, "exact"), (True, "short"), (False, "exact"), (False, "short"),
             (False, "bar"))

    def choose_mode(self, rows: list[VmaRow]) -> tuple[bool, str]:
        width = self.size.width
        if not width:  # hidden (the panels in front): keep what it shows
            return self.mode or self.MODES[0]
        for mode in self.MODES:
            if self.widths(rows, mode) <= width:
                return mode
        return self.MODES[-1]

    def setup_columns(self, mode: tuple[bool, str]) -> None:
        self.clear(columns=True)
        self.mode = mode
        full, nodes = mode
        cols = [("RANGE", "range"), ("SIZE", "size"), ("KIND", "kind"), ("FLAGS", "flags"),
                ("POLICY", "policy"), ("RSS", "rss")] if full else \
            [("START", "range"), ("SIZE", "size"), ("POLICY", "policy"), ("RSS", "rss")]
        if self._huge:  # (a process with huge pages: how many each VMA maps)
            cols.append(("HUGE", "huge"))
        for label, key in cols:
            self.add_column(label, key=key)
        if nodes == "bar":
            self.add_column("NODES", key="nodes")
            self.add_column("TOP", key="top")
        else:
            for n in self._node_ids:
                self.add_column(f"N{n}", key=f"N{n}")

    def row_cells(self, r: VmaRow) -> list[object]:
        full, nodes = self.mode
        size = Num(r.end - r.start, fmt_bytes(r.end - r.start))
        rss = Num(r.rss, fmt_bytes(r.rss * self._page_size))
        if full:
            cells: list[object] = [Text(f"{r.start:x}-{r.end:x}"), size, Text(r.kind),
                                   Text(r.flags), Text(r.policy), rss]
        else:
            cells = [Text(f"{r.start:x}"), size, Text(r.policy), rss]
        if self._huge:
            cells.append(Num(r.huge_pages, str(r.huge_pages) if r.huge_pages else ""))
        if nodes == "bar":
            cells += [node_bar(r.per_node, r.rss), top_node(self._node_ids, r.per_node,
                                                            r.rss)]
        else:
            fmt = str if nodes == "exact" else fmt_count
            cells += [Num(int(c), fmt(int(c))) for c in r.per_node]
        return cells

    def update_from(self, view: Any, counts: Any = None) -> list[VmaRow]:
        """Show the process's VMAs; pages per node from counts (a NodeCounts) when
        given."""
        rows = view.vmas(self.pid, counts)
        self.show_rows(view, rows)
        return rows

    def row_key(self, r: VmaRow) -> str:
        return f"{r.start:x}"

    def resort(self) -> None:
        self.sort(self.sort_column or "range", key=sort_value, reverse=self.sort_reverse)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        col = str(event.column_key.value)
        if self.sort_column == col:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = col, False
        self.sort(col, key=sort_value, reverse=self.sort_reverse)

    def selected_start(self) -> int | None:
        key = self.selected_key()
        return None if key is None else int(key, 16)

    def select_start(self, start: int) -> None:
        """Put the cursor on the VMA starting at `start`."""
        self.select_key(f"{start:x}")
