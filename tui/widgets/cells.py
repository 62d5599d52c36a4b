"""Sortable DataTable cells: numbers that sort as numbers and print formatted."""

from __future__ import annotations

from rich.text import Text


class Num:
    """A number for sorting that renders as its text, right-aligned."""

    __slots__ = ("value", "text")

    def __init__(self, value: float, text: str | None = None) -> None:
        self.value = value
        self.text = str(int(value)) if text is None else text

    def __rich__(self) -> Text:
        return Text(self.text, justify="right")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Num) and other.value == self.value and other.text == self.text

    def __hash__(self) -> int:
        return hash((self.value, self.text))

    def __repr__(self) -> str:
        return f"Num({self.value!r}, {self.text!r})"

    def __int__(self) -> int:
        return int(self.value)

    def __float__(self) -> float:
        return float(self.value)


def sort_value(v: object) -> tuple[int, object]:
    """A key that orders numbers numerically and text alphabetically."""
    if isinstance(v, Num):
        return (0, float(v.value))
    if isinstance(v, (int, float)):
        return (0, float(v))
    return (1, str(v).lower())
