"""Running jobs: one row per job with a progress bar, rate and ETA in simulated time."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Label, ProgressBar, Static

from engine.views import job_line

from .quiet import quiet_update


class JobRow(Horizontal):
    """A job's line: its description and a progress bar."""

    def __init__(self, job: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.job = job
        self._bar = ProgressBar(total=max(1, job.total or 1), show_eta=False,
                                show_percentage=False)
        self._label = Label("", classes="job-label")

    def compose(self) -> ComposeResult:
        yield self._bar
        yield self._label

    def show(self, m: Any) -> None:
        if not (self._bar.is_mounted and self._label.is_mounted):
            return  # not composed yet; the next frame shows it
        total = max(1, int(self.job.total or 0))
        if self._bar.total != total:
            self._bar.total = total
        self._bar.progress = min(total, int(self.job.done))
        quiet_update(self._label, job_line(m, self.job), fixed_height=True)


class JobsPanel(VerticalScroll, can_focus=False):
    """Every running job of the machine; rows are added and removed as jobs come and go."""

    def compose(self) -> ComposeResult:
        yield Static("no running jobs", classes="jobs-empty")

    def show(self, m: Any) -> None:
        jobs = {f"job-{j.id}": j for j in list(getattr(m, "jobs", []))}
        rows = {r.id: r for r in self.query(JobRow)}
        for rid, row in rows.items():
            if rid not in jobs:
                row.remove()
        for rid, job in jobs.items():
            row = rows.get(rid)
            if row is None:
                row = JobRow(job, id=rid)
                self.mount(row)
                self.call_after_refresh(row.show, m)
            else:
                row.show(m)
        self.query_one(".jobs-empty", Static).display = not jobs
