"""The inspector: what the frame (and cell) under the map cursor holds, from the view
API (engine.views.MachineView.describe_frame): PFN, node, zone, kind, owner, the driver
whose region it is (and its migrate hook), flags, counts."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from .pagemap import SAMPLE
from .quiet import quiet_update

LABEL = "#8b93a1"


class Inspector(Static):
    """Shows the frame under the map cursor."""

    def show(self, view: Any, pfn: int, cell: tuple[int, int] | None = None,
             sampled: bool = False) -> None:
        quiet_update(self, inspector_text(view, pfn, cell, sampled))


def inspector_text(view: Any, pfn: int, cell: tuple[int, int] | None = None,
                   sampled: bool = False) -> Text:
    """sampled: the map colours this cell from SAMPLE of its frames (the counts here
    are of all of them; said when the cell has more). Every value is plain text."""
    d = dict(view.describe_frame(pfn))
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
    if "driver" in d:
        t.append("driver ", style=LABEL)
        hook_on = d["driver"].endswith("hook on")
        t.append(d["driver"] + "\n", style="bold #c9a227" if hook_on else "")
    for extra in ("file", "accesses"):
        if extra in d:
            kv(extra, "\n")
    kv("flags", "\n")
    kv("mapcount")
    kv("refcount")
    kv("content", "")
    if cell is not None and cell[1] - cell[0] > 1:
        a, b = cell
        t.append(f"\ncell {a:#x}..{b - 1:#x} ({b - a} frames): ", style=LABEL)
        t.append(view.cell_summary(a, b))
        if sampled and b - a > SAMPLE:
            t.append(f" (map colour: {SAMPLE} sampled)", style=LABEL)
    return t
