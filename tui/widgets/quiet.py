"""Static updates that cost nothing when nothing changed.

Static.update() re-renders the widget and, by default, lays the whole screen out
again; the console calls it many times a second while a job runs, mostly with the
same text. quiet_update() keeps the last content, skips an update equal to it, and
asks for a layout only when the widget's height may change."""

from __future__ import annotations

from typing import Any

from rich.text import Text


def _shape(content: Any) -> tuple[int, int]:
    """(lines, longest line) of a Text or str."""
    plain = content.plain if isinstance(content, Text) else str(content)
    lines = plain.split("\n")
    return len(lines), max((len(s) for s in lines), default=0)


def quiet_update(widget: Any, content: Text | str, *, fixed_height: bool = False) -> bool:
    """widget.update(content) unless it shows that already. A layout is asked for only
    when the height can change: never with fixed_height, else when the number of lines
    changes or a line is (or was) wider than the widget. True when it updated."""
    old = getattr(widget, "_quiet_content", None)
    if old is not None and type(old) is type(content) and old == content:
        return False
    layout = not fixed_height
    if layout and old is not None:
        width = widget.content_size.width
        (n0, w0), (n1, w1) = _shape(old), _shape(content)
        layout = n0 != n1 or width <= 0 or max(w0, w1) > width
    widget._quiet_content = content
    widget.update(content, layout=layout)
    return True
