"""A rehearsal shown before an irreversible act (offlining a zone): the dry-run text
in a panel docked at the bottom, so the map above stays visible; `o`/`y`/enter
confirms and escape/`n` cancels."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True to go ahead."""

    BINDINGS = [
        Binding("o,y,enter", "answer(True)", "Go ahead", id="confirm.yes"),
        Binding("escape,n", "answer(False)", "Cancel", id="confirm.no"),
    ]

    def __init__(self, title: str, text: str, prompt: str) -> None:
        super().__init__(id="confirm")
        self.title_text = title
        self.body = text
        self.prompt = prompt

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="confirm-body"):
            yield Static(Text(self.body), id="confirm-text")
            yield Static(Text(self.prompt, style="bold #e8c46a"), id="confirm-prompt")

    def on_mount(self) -> None:
        body = self.query_one("#confirm-body")
        body.border_title = Text(self.title_text)
        body.focus()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
