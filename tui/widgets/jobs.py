"""Running jobs: one row per job with a progress bar, rate and ETA in simulated time
(engine.views: jobs()). A line that does not fit wraps; nothing is cut."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Label, ProgressBar, Static

from .quiet import quiet_update


class JobRow(Horizontal):
    """A job's line: a progress bar and its description."""

    def __init__(self, job: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.job = job
        self._bar = ProgressBar(total=max(1, job.total or 1), show_eta=False,
                                show_percentage=False)
        self._label = Label("", classes="job-label")

    def compose(self) -> ComposeResult:
        yield self._bar
        yield self._label

    def show(self, job: Any) -> None:
        self.job = job
        if not (self._bar.is_mounted and self._label.is_mounted):
            return  # not composed yet; the next frame shows it
        total = max(1, int(job.total or 0))
        if self._bar.total != total:
            self._bar.total = total
        self._bar.progress = min(total, int(job.done))
        quiet_update(self._label, Text(job.line))


class JobsPanel(VerticalScroll, can_focus=False):
    """Every running job of the machine; rows are added and removed as jobs come and go."""

    def compose(self) -> ComposeResult:
        yield Static("no running jobs", classes="jobs-empty")

    def show(self, view: Any) -> None:
        jobs = {f"job-{j.id}": j for j in view.jobs()}
        rows = {r.id: r for r in self.query(JobRow)}
        for rid, row in rows.items():
            if rid not in jobs:
                row.remove()
        for rid, job in jobs.items():
            row = rows.get(rid)
            if row is None:
                row = JobRow(job, id=rid)
                self.mount(row)
                self.call_after_refresh(row.show, job)
            else:
                row.show(job)
        self.query_one(".jobs-empty", Static).display = not jobs
