"""The live host's rehearsal, before anything acts on it: what the simulator predicts
for the call (the host captured, the call run there with its bill), then, only on an
explicit confirmation, the real call and its result beside the prediction.

Enter submitted the line that opened this dialog, so Enter does nothing here: `y` (or
a click on the button, which takes no focus) applies; escape, `n` or `b` closes
without acting. The call runs in a thread (the console keeps drawing); its text then
replaces the prediction, `differs:` lines in red. Without --allow-actions there is
nothing to confirm: the dialog says that actions are off."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from engine.commands import Result

WARN, GOOD, BAD, DIM = "bold #e8c46a", "bold #3fb37f", "bold #e5484d", "#8b93a1"


def rehearsal_text(text: str) -> Text:
    """The rehearsal's (or the act's) lines, plain text, the verdicts coloured."""
    t = Text()
    for line in text.splitlines():
        style = BAD if line.startswith("differs:") else GOOD if line.startswith("matched:") \
            else WARN if line.startswith("actual: not run") else \
            "bold" if line.startswith("rehearse ") else ""
        t.append(line + "\n", style=style)
    t.rstrip()
    return t


class RehearsalScreen(ModalScreen[Result | None]):
    """Dismisses with the applied call's Result, or None when nothing was applied."""

    BINDINGS = [
        Binding("y", "apply", "Apply to the host", id="rehearsal.apply"),
        Binding("escape,n,b", "close", "Close", id="rehearsal.close"),
    ]

    def __init__(self, title: str, text: str, confirm: str | None, read_only: bool,
                 ok: bool = True) -> None:
        super().__init__(id="rehearsal")
        self.title_text = title
        self.body = text
        self.confirm = confirm  # the line that carries it out ("apply N")
        self.read_only = read_only
        self.ok = ok
        self.state = "rehearsed"  # -> applying -> applied
        self.applied: Result | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="rehearsal-body"):
            yield Static(rehearsal_text(self.body), id="rehearsal-text")
        with Horizontal(id="rehearsal-bar"):
            yield Static(self.prompt(), id="rehearsal-prompt")
            if self.confirm is not None:
                btn = Button(Text("apply to the host (y)"), id="rehearsal-apply",
                             variant="warning", compact=True)
                btn.can_focus = False  # no key reaches it: only y or a click
                yield btn

    def on_mount(self) -> None:
        body = self.query_one("#rehearsal-body")
        body.border_title = Text(self.title_text)
        body.focus()

    def prompt(self) -> Text:
        if self.state == "applying":
            return Text(f"{self.confirm}: the call runs on the host...", style=WARN)
        if self.state == "applied":
            return Text("escape / n / b: close", style=DIM)
        if self.confirm is not None:
            return Text(f"y: apply it to the host ({self.confirm})    escape / n / b: "
                        f"cancel (nothing is changed)", style=WARN)
        if self.read_only:
            return Text("actions are off: the host is open read-only (numacon host "
                        "--allow-actions lets numacon act on it)    escape / n / b: close",
                        style=BAD)
        return Text("the prediction only: nothing to apply    escape / n / b: close",
                    style=DIM)

    def _show(self, title: str, text: str) -> None:
        self.query_one("#rehearsal-text", Static).update(rehearsal_text(text))
        self.query_one("#rehearsal-body").border_title = Text(title)
        self.query_one("#rehearsal-prompt", Static).update(self.prompt())
        for b in self.query("#rehearsal-apply"):
            b.display = self.state == "rehearsed"

    def action_apply(self) -> None:
        if self.confirm is None or self.state != "rehearsed":
            return
        self.state = "applying"
        self._show(self.title_text, self.body)
        app: Any = self.app
        app.run_live_line(self.confirm, self._applied)

    def _applied(self, r: Result) -> None:
        self.state = "applied"
        self.applied = r
        self._show(r.review or self.title_text, r.text)
        app: Any = self.app
        app.log_applied(self.confirm, r)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "rehearsal-apply":
            self.action_apply()

    def action_close(self) -> None:
        if self.state == "applying":
            return  # the call is running: its result is shown when it ends
        self.dismiss(self.applied)
