"""Jobs: long operations as asyncio tasks that work in batches and yield between them
(the console's own; the synchronous calls run the same generator to completion).

A job's generator does one batch per `next()`; the machine is consistent at every
yield. `Job.run` (the asyncio task) obeys the machine's ClockController: no step
while paused, and at a chosen speed it sleeps so that simulated time tracks real
time. Without an event loop, `run_jobs(jobs)` steps jobs round-robin: the same
interleaving every time, which is what experiments with a fixed seed need.

A job belongs to a host (the Machine), which names the operations that can run as
jobs and hears when one finishes."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from .clock import ClockController

IDLE = object()  # yielded by a job with nothing to do until other jobs move the clock


class JobHost(Protocol):
    """What a job needs from the machine it runs on."""

    clockctl: ClockController

    @property
    def clock(self) -> int: ...

    def job_finished(self, job: Job) -> None: ...

    def job_stepped(self, job: Job) -> None: ...

    def cancel_error(self, job: Job) -> OSError: ...


class JobCancelled(Exception):
    pass


class Job:
    """`job.done`/`job.total` (pages), `job.state` ("running" | "done" | "cancelled" |
    "failed"), `job.cancel()`, `await job.wait()`."""

    _ids = 0

    def __init__(self, host: JobHost, name: str, gen, total: int = 0):
        Job._ids += 1
        self.id = Job._ids
        self.machine = host
        self.name = name
        self.gen = gen
        self.total = total
        self.done = 0
        self.rounds = 0  # hot-remove: passes over the range so far
        self.state = "running"
        self.result: Any = None
        self.error: BaseException | None = None
        self.started_ns = host.clock
        self.finished_ns: int | None = None
        self.steps = 0
        self.idle = False  # the last step had nothing to do (it yielded IDLE)
        self.owner: Any = None  # the object a job drives (a Workload, a Daemon), if any
        self._cancel = False
        self._task: asyncio.Task | None = None
        self._event = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.name} {self.state} {self.done}/{self.total}>"

    def cancel(self) -> None:
        self._cancel = True

    @property
    def finished(self) -> bool:
        return self.state != "running"

    def step(self) -> bool:
        """Run one batch; False when finished."""
        if self.finished:
            return False
        if self._cancel:
            self.gen.close()  # GeneratorExit at the batch boundary: cleanup runs
            self._finish("cancelled", error=self.machine.cancel_error(self))
            return False
        try:
            self.idle = next(self.gen) is IDLE
            self.steps += 1
            self.machine.job_stepped(self)
            return True
        except StopIteration as e:
            if self.total and self.done < self.total:
                self.done = self.total
            self._finish("done", result=e.value)
        except Exception as e:  # noqa: BLE001 - the job's error is its result
            self._finish("failed", error=e)
        return False

    def _finish(self, state: str, result=None, error=None) -> None:
        self.state = state
        self.result = result
        self.error = error
        self.finished_ns = self.machine.clock
        self.machine.job_finished(self)
        self._event.set()

    async def run(self) -> None:
        ctl = self.machine.clockctl
        while True:
            await ctl.gate(self)
            if not self.step():
                break
            if self.idle:
                await asyncio.sleep(ctl.POLL_S)  # nothing to do: do not spin the loop
            else:
                await ctl.pace(self.machine.clock)

    async def wait(self):
        if not self.finished:
            await self._event.wait()
        if self.error is not None and self.state != "cancelled":
            raise self.error
        if self.state == "cancelled":
            raise self.error if self.error is not None else JobCancelled(self.name)
        return self.result

    @property
    def progress(self) -> float:
        return (self.done / self.total) if self.total else (1.0 if self.finished else 0.0)


def run_jobs(jobs: list[Job], *, max_steps: int | None = None) -> int:
    """Step jobs round-robin, without an event loop, until all are finished, all are
    idle (nothing can move the clock any more), or max_steps rounds. Jobs with an
    asyncio task are left to their task. Returns the number of rounds.
    Deterministic: same jobs in the same order, same interleaving."""
    rounds = 0
    while True:
        live = [j for j in jobs if not j.finished and j._task is None]
        if not live:
            return rounds
        if max_steps is not None and rounds >= max_steps:
            return rounds
        progress = False
        for j in live:
            alive = j.step()
            # a job that finished this round counts as progress: others may react
            progress |= not alive or not j.idle
        rounds += 1
        if not progress:
            return rounds
