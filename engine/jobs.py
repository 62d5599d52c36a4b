"""Jobs: long operations as asyncio tasks that work in batches and yield between them
(the console's own; the synchronous calls run the same generator to completion)."""

from __future__ import annotations

import asyncio
from typing import Any


class JobCancelled(Exception):
    pass


class Job:
    """`job.done`/`job.total` (pages), `job.state` ("running" | "done" | "cancelled" |
    "failed"), `job.cancel()`, `await job.wait()`."""

    _ids = 0

    def __init__(self, machine, name: str, gen, total: int = 0):
        Job._ids += 1
        self.id = Job._ids
        self.machine = machine
        self.name = name
        self.gen = gen
        self.total = total
        self.done = 0
        self.state = "running"
        self.result: Any = None
        self.error: BaseException | None = None
        self.started_ns = machine.clock
        self.finished_ns: int | None = None
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
            next(self.gen)
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
        self.machine._job_finished(self)
        self._event.set()

    async def run(self) -> None:
        while self.step():
            await asyncio.sleep(0)

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
