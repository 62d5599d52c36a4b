"""The map legend: holder colours, marks, the drivers' regions with their migrate hook,
and the processes' colours."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from .pagemap import (
    C_ANON,
    C_FILE,
    C_FREE,
    C_KERNEL,
    C_OFFLINE,
    C_PFNMAP,
    CLASS_COLORS,
    MARK_GLYPHS,
    OFFLINE_GLYPH,
    PARTIAL_FREE,
    PidColors,
)
from .quiet import quiet_update

MARK_SHORT = ("", "mlocked", "pinned", "in flight", "VMA", "hook on")
DIM = "#8b93a1"


class Legend(Static):
    """Colour key of the page-frame map."""

    def show(self, view: Any, colors: PidColors | None = None, top: int = 9,
             counts: Any = None, note: str = "") -> None:
        quiet_update(self, legend_text(view, colors, top, counts, note))


def legend_text(view: Any, colors: PidColors | None = None, top: int = 9,
                counts: Any = None, note: str = "") -> Text:
    """counts: a NodeCounts to take the processes' anonymous pages from (else they
    are counted now). note: how the map samples its cells (PageMap.sampling_note), a
    line of its own. Names are plain text."""
    if colors is None:
        colors = PidColors()
        colors.learn(view.pids())
    if view.status().live:
        return host_legend_text(view, note)
    t = Text()
    kinds = [(CLASS_COLORS[C_FREE], " ", "free"), (PARTIAL_FREE, " ", "mostly free"),
             (CLASS_COLORS[C_KERNEL], " ", "kernel"), (CLASS_COLORS[C_FILE], " ", "page cache"),
             (CLASS_COLORS[C_PFNMAP], " ", "PFN-map"),
             (CLASS_COLORS[C_OFFLINE], OFFLINE_GLYPH, "offline")]
    for n, (color, glyph, name) in enumerate(kinds):
        t.append(glyph, style=f"#ffffff on {color}")
        t.append(f" {name:<12}" if n % 3 != 2 else f" {name}\n")
    for i, (g, name) in enumerate(zip(MARK_GLYPHS[1:], MARK_SHORT[1:])):
        t.append(g, style="bold #ffffff on #404650")
        t.append(f" {name:<10}" if i % 3 != 2 else f" {name}\n")
    t.rstrip()
    if view.has_huge_pages():
        t.append("\n")
        t.append(MARK_GLYPHS[6], style="bold #ffffff on #404650")
        t.append(" huge page (THP or hugetlb folio: its cells are one object)")
    for d in view.drivers():
        if d.kind == "rdma":
            continue
        t.append("\n")
        t.append(MARK_GLYPHS[5] if d.hook else " ",
                 style=f"bold #ffffff on {CLASS_COLORS[C_PFNMAP]}")
        users = ", ".join(f"{pid} {name}" for pid, name in d.users) or "no process"
        kind = "" if d.kind == d.name else f"{d.kind}, "
        t.append(f" {d.name} ({kind}node {d.node}): ")
        t.append(d.hook_text, style="bold #c9a227" if d.hook else DIM)
        t.append(f"; mapped by {users}", style=DIM)
    if note:
        t.append(f"\n{note}", style=DIM)
    rss = []
    for pid in view.pids():
        if counts is not None:
            n = int(counts.process(pid, anon_only=True).sum())
        else:
            n = sum(int(r.rss) for r in view.vmas(pid) if r.kind == "anon")
        if n:
            row = view.process(pid, counts)
            rss.append((n, pid, row.name if row is not None else "?"))
    rss.sort(reverse=True)
    for i, (_, pid, name) in enumerate(rss[:top]):
        t.append("\n" if i % 3 == 0 else "")
        t.append(" ", style=f"on {colors.color(pid)}")
        t.append(f" {pid} {name[:8]:<9}")
    if len(rss) > top:
        t.append(f"\n(+{len(rss) - top} more processes)", style=DIM)
    t.rstrip()
    return t


def host_legend_text(view: Any, note: str = "") -> Text:
    """The live host's key: its frames are coloured by their kpageflags (anonymous
    memory in one colour: a frame's owner is not in its flags), or the sentence that
    says why the map cannot be shown."""
    t = Text()
    why = view.frames_unavailable()
    if why is not None:
        t.append(why, style=DIM)
        return t
    kinds = [(CLASS_COLORS[C_FREE], " ", "free (buddy)"), (PARTIAL_FREE, " ", "mostly free"),
             (CLASS_COLORS[C_ANON], " ", "anon"), (CLASS_COLORS[C_FILE], " ", "page cache"),
             (CLASS_COLORS[C_KERNEL], " ", "kernel"),
             (CLASS_COLORS[C_OFFLINE], OFFLINE_GLYPH, "offline, hole")]
    for n, (color, glyph, name) in enumerate(kinds):
        t.append(glyph, style=f"#ffffff on {color}")
        t.append(f" {name:<13}" if n % 3 != 2 else f" {name}\n")
    t.append(MARK_GLYPHS[1], style="bold #ffffff on #404650")
    t.append(" mlocked or unevictable\n")
    t.append("kernel: slab, page tables, reserved, the zero page and unflagged frames; "
             "huge pages as anon or page cache; the inspector names a frame's class",
             style=DIM)
    if note:
        t.append(f"\n{note}", style=DIM)
    return t
