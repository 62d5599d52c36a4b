"""The inspector: what the frame (and cell) under the map cursor holds, from the view
API (engine.views.MachineView.describe_frame): PFN, node, zone, kind, owner, the driver
whose region it is (and its migrate hook), flags, counts; on the live host its memory
block, class, kpageflags word, map count and a process mapping it."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static
from textual.worker import get_current_worker

from .pagemap import SAMPLE
from .quiet import quiet_update

LABEL = "#8b93a1"
KNOWN = {"PFN", "phys", "node", "zone", "block", "kind", "class", "use", "owner", "address",
         "driver", "file", "accesses", "flags", "kpageflags", "mapcount", "refcount",
         "content"}


class Inspector(Static):
    """Shows the frame under the map cursor. On the live host the description reads
    kpageflags, kpagecount and, to find who maps the frame, pagemaps: it is built in a
    thread (the newest cursor position wins) and shown when ready."""

    def show(self, view: Any, pfn: int, cell: tuple[int, int] | None = None,
             sampled: bool = False) -> None:
        if not view.status().live:
            quiet_update(self, inspector_text(view, pfn, cell, sampled))
            return

        def work() -> None:
            text = inspector_text(view, pfn, cell, sampled)
            if get_current_worker().is_cancelled:  # the cursor has moved on
                return
            try:
                self.app.call_from_thread(quiet_update, self, text)
            except RuntimeError:  # the console has ended
                pass

        self.run_worker(work, thread=True, group="inspector", exclusive=True,
                        exit_on_error=False)


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
    kv("block")
    kv("kind")
    kv("class")
    kv("use")
    t.rstrip()
    t.append("\n")
    if "owner" in d:
        t.append("owner ", style=LABEL)
        at = f" @ {d['address']}" if "address" in d else ""
        t.append(f"{d['owner']}{at}\n", style="bold")
    if "driver" in d:
        t.append("driver ", style=LABEL)
        hook_on = d["driver"].endswith("hook on")
        t.append(d["driver"] + "\n", style="bold #c9a227" if hook_on else "")
    for extra in ("file", "accesses"):
        if extra in d:
            kv(extra, "\n")
    kv("flags", "\n")
    kv("kpageflags", "\n")
    kv("mapcount")
    kv("refcount")
    kv("content", "")
    t.rstrip()
    for label, value in d.items():  # what a backend says beyond these (plain text)
        if label not in KNOWN:
            t.append(f"\n{label} ", style=LABEL)
            t.append(value)
    if cell is not None and cell[1] - cell[0] > 1:
        a, b = cell
        t.append(f"\ncell {a:#x}..{b - 1:#x} ({b - a} frames): ", style=LABEL)
        t.append(view.cell_summary(a, b))
        if sampled and b - a > SAMPLE:
            t.append(f" (map colour: {SAMPLE} sampled)", style=LABEL)
    return t
