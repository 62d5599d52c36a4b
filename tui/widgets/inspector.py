"""The inspector: what the frame (and cell) under the map cursor holds."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from ..model import cell_summary, describe_frame

LABEL = "#8b93a1"


class Inspector(Static):
    """Shows the frame under the map cursor: PFN, node, zone, kind, owner, flags, counts."""

    def show(self, m: Any, pfn: int, cell: tuple[int, int] | None = None) -> None:
        self.update(inspector_text(m, pfn, cell))


def inspector_text(m: Any, pfn: int, cell: tuple[int, int] | None = None) -> Text:
    d = dict(describe_frame(m, pfn))
    t = Text()

    def kv(label: str, sep: str = "  ") -> None:
        if label in d:
            t.append(f"{label} ", style=LABEL)
            t.append(d[label] + sep)

    kv("PFN")
    kv("phys", "\n")
    kv("node")
    kv("zone")
    kv("kind")
    kv("use")
    t.rstrip()
    t.append("\n")
    if "owner" in d:
        t.append("owner ", style=LABEL)
        t.append(f"{d['owner']} @ {d.get('address', '?')}\n", style="bold")
    for extra in ("file", "driver", "accesses"):
        if extra in d:
            kv(extra, "\n")
    kv("flags", "\n")
    kv("mapcount")
    kv("refcount")
    kv("content", "")
    if cell is not None and cell[1] - cell[0] > 1:
        a, b = cell
        t.append(f"\ncell {a:#x}..{b - 1:#x} ({b - a} frames): ", style=LABEL)
        t.append(cell_summary(m, a, b))
    return t
