"""The map legend: holder colours, marks and the processes' colours."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from engine.views import vma_frames

from .pagemap import (
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

MARK_SHORT = ("", "mlocked", "pinned", "in flight", "VMA")


class Legend(Static):
    """Colour key of the page-frame map."""

    def show(self, m: Any, colors: PidColors | None = None, top: int = 9,
             counts: Any = None, note: str = "") -> None:
        quiet_update(self, legend_text(m, colors, top, counts, note))


def legend_text(m: Any, colors: PidColors | None = None, top: int = 9,
                counts: Any = None, note: str = "") -> Text:
    """counts: a model.NodeCounts to take the processes' anonymous pages from (else
    they are counted now). note: how the map samples its cells (PageMap.sampling_note),
    a line of its own."""
    if colors is None:
        colors = PidColors()
        colors.learn(list(m.pids))
    t = Text()
    kinds = [(CLASS_COLORS[C_FREE], " ", "free"), (PARTIAL_FREE, " ", "mostly free"),
             (CLASS_COLORS[C_KERNEL], " ", "kernel"), (CLASS_COLORS[C_FILE], " ", "page cache"),
             (CLASS_COLORS[C_PFNMAP], " ", "PFN-map"),
             (CLASS_COLORS[C_OFFLINE], OFFLINE_GLYPH, "offline")]
    for n, (color, glyph, name) in enumerate(kinds):
        t.append(glyph, style=f"#ffffff on {color}")
        t.append(f" {name:<12}" if n % 3 != 2 else f" {name}\n")
    for g, name in zip(MARK_GLYPHS[1:], MARK_SHORT[1:]):
        t.append(g, style="bold #ffffff on #404650")
        t.append(f" {name}  ")
    t.rstrip()
    if note:
        t.append(f"\n{note}", style="#8b93a1")
    rss = []
    for pid in m.pids:
        p = m.process(pid)
        if counts is not None:
            n = int(counts.process(pid, anon_only=True).sum())
        else:
            n = sum(int((vma_frames(v) != m.zero_pfn).sum()) for v in p.vmas
                    if v.kind == "anon")
        if n:
            rss.append((n, pid, p.name))
    rss.sort(reverse=True)
    for i, (_, pid, name) in enumerate(rss[:top]):
        t.append("\n" if i % 3 == 0 else "")
        t.append(" ", style=f"on {colors.color(pid)}")
        t.append(f" {pid} {name[:8]:<9}")
    if len(rss) > top:
        t.append(f"\n(+{len(rss) - top} more processes)", style="#8b93a1")
    t.rstrip()
    return t
