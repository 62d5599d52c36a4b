"""The console's figures for `numacon bench` (engine/bench.py): engine/ never imports
tui/, so tui/cli.py hands this module to tools.bench.main as `ui`.

redraw_ms: the page-frame map alone on a 200x60 screen (headless), every line of it
rendered with its row and strip caches (and the style table) cleared, as the first
paint after a change of zoom or machine does.

key_latency_ms: the whole console on a 200x60 screen under Textual's pilot, a
migration job of about 1 Mi pages running (`move_pages ... &`, restarted when it
ends): from the moment a key (+ or -, the zoom) is pressed until the screen's next
compositor update that shows the new zoom (App._display is where a terminal would
get the bytes; headless it writes nothing, but the update has been rendered).

help_ms, view_ms: the whole console on the reference machine (200x60, pilot): from
`?` to the update that shows the help screen, and from `v` to the update that
shows the next view (numa_maps of the selected process, numastat, zoneinfo,
vmstat, then the map again), each press timed as key_latency_ms times one."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from textual import events
from textual.app import App, ComposeResult

import engine
from engine.commands import execute
from engine.views import MachineView

from .app import VIEWS, NumaConsoleApp
from .screens.help import HelpScreen
from .widgets import pagemap as pagemap_mod
from .widgets.pagemap import PageMap
from .widgets.viewpanel import ViewPanel

SIZE = (200, 60)


class MapOnlyApp(App):
    """The page-frame map filling the screen, nothing else."""

    CSS_PATH = [Path(pagemap_mod.__file__).with_name("pagemap.tcss")]
    CSS = "PageMap { width: 1fr; height: 1fr; }"

    def __init__(self, machine: Any) -> None:
        super().__init__()
        self.machine = machine

    def compose(self) -> ComposeResult:
        yield PageMap(MachineView(self.machine), id="pagemap")


def _clear_caches(pm: PageMap) -> None:
    pm.clear_caches()
    pagemap_mod._STYLE_CACHE.clear()


def full_redraw_s(pm: PageMap) -> float:
    """Seconds to render every line of the map from cold caches."""
    _clear_caches(pm)
    h = pm.size.height
    t0 = time.perf_counter()
    for y in range(h):
        pm.render_line(y)
    return time.perf_counter() - t0


async def _redraw(m: Any, size: tuple[int, int], runs: int) -> dict:
    app = MapOnlyApp(m)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        pm = app.query_one(PageMap)
        full_redraw_s(pm)  # warm up imports and layouts
        times = [full_redraw_s(pm) * 1e3 for _ in range(runs)]
        return {"median_ms": statistics.median(times), "max_ms": max(times), "runs": runs,
                "lines": pm.size.height, "width": pm.size.width, "zoom": pm.zoom,
                "screen": f"{size[0]}x{size[1]}"}


def redraw_ms(m: Any, *, size: tuple[int, int] = SIZE, runs: int = 20,
              default_machine: bool = True) -> dict:
    """Median ms of a full map redraw of m (and of the default machine, for context)."""
    r = asyncio.run(_redraw(m, size, runs))
    if default_machine:
        r["default_machine_ms"] = asyncio.run(
            _redraw(engine.Machine.default(), size, runs))["median_ms"]
    return r


async def _key_latency(m: Any, jobs: list[str], size: tuple[int, int], presses: int,
                       idle_presses: int, timeout: float) -> dict:
    app = NumaConsoleApp(m, pace="fast")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        pm = app.main_screen.query_one("#pagemap", PageMap)
        pm.focus()
        await pilot.pause()
        seen: dict[str, Any] = {"done": None, "t": None, "event": asyncio.Event()}
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            original(screen, renderable)
            done = seen["done"]
            if renderable is not None and done is not None and seen["t"] is None and done():
                seen["t"] = time.perf_counter()
                seen["event"].set()

        app._display = display  # type: ignore[method-assign]

        async def press_once() -> float:
            """One key as a terminal sends it (the driver posts the event; no pilot
            waits), timed until the update that shows its effect has been rendered."""
            zoom, cursor = pm.zoom, pm.cursor
            if pm.zoom > 1 and pm.auto_fit:  # zoom in
                key, char = "plus", "+"
                seen["done"] = lambda: pm.zoom == zoom // 2
            elif not pm.auto_fit:  # zoom back out to the whole machine
                key, char = "minus", "-"
                seen["done"] = lambda: pm.zoom > zoom
            else:  # a machine small enough for one frame a cell: move the cursor
                key, char = ("right", None) if cursor == 0 else ("home", None)
                seen["done"] = lambda: pm.cursor != cursor
            seen["t"] = None
            seen["event"] = asyncio.Event()
            ev = events.Key(key, char)
            ev.set_sender(app)
            t0 = time.perf_counter()
            app._driver.send_message(ev)
            await asyncio.wait_for(seen["event"].wait(), timeout)
            seen["done"] = None
            return (seen["t"] - t0) * 1e3

        idle = []
        for _ in range(idle_presses):
            idle.append(await press_once())
            await asyncio.sleep(0.05)
        lat: list[float] = []
        during = 0  # presses whose update came while the job was still running
        started = 0
        job = None
        for _ in range(presses * 20):
            if len(lat) >= presses:
                break
            running = [j for j in app.view.jobs()]
            if not running:
                line = jobs[started % len(jobs)]
                r = app.run_command(line)
                if not r.ok or r.job is None:
                    raise RuntimeError(f"{line}: {r.text}")
                started += 1
                job = r.job  # the key comes at once: on a small machine a job is short
            else:
                job = running[0]
            lat.append(await press_once())  # the job was running when the key came
            during += job.id in app.view.job_ids()
            await asyncio.sleep(0.07)
        for jid in app.view.job_ids():
            execute(m, f"cancel {jid}")
        t_end = time.monotonic()
        while app.view.job_ids() and time.monotonic() - t_end < timeout:
            await asyncio.sleep(0.01)
        if not lat:
            raise RuntimeError("no key press could be timed while a job ran")
        return {"median_ms": statistics.median(lat), "max_ms": max(lat),
                "presses": len(lat), "during": during,
                "idle_ms": statistics.median(idle) if idle else None,
                "jobs_started": started, "job_pages": getattr(job, "total", 0),
                "screen": f"{size[0]}x{size[1]}"}


def key_latency_ms(m: Any, jobs: list[str], *, size: tuple[int, int] = SIZE,
                   presses: int = 9, idle_presses: int = 3, timeout: float = 30.0) -> dict:
    """Median ms from a zoom key to the screen update showing it, while one of the
    `jobs` (command lines ending in `&`, taken in turn) runs."""
    return asyncio.run(_key_latency(m, jobs, size, presses, idle_presses, timeout))


async def _press_timed(app: Any, key: str, char: str | None, done: Any, timeout: float
                       ) -> float:
    """ms from a key (as a terminal sends it) to the first screen update after which
    done() holds."""
    seen: dict[str, Any] = {"t": None, "event": asyncio.Event()}
    original = app._display

    def display(screen: Any, renderable: Any) -> None:
        original(screen, renderable)
        if renderable is not None and seen["t"] is None and done():
            seen["t"] = time.perf_counter()
            seen["event"].set()

    app._display = display
    try:
        ev = events.Key(key, char)
        ev.set_sender(app)
        t0 = time.perf_counter()
        app._driver.send_message(ev)
        await asyncio.wait_for(seen["event"].wait(), timeout)
        return (seen["t"] - t0) * 1e3
    finally:
        app._display = original


async def _help_and_views(m: Any, size: tuple[int, int], rounds: int, timeout: float
                          ) -> dict:
    app = NumaConsoleApp(m)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await asyncio.sleep(0.2)  # let the first page counts settle
        helps, closes, views = [], [], []
        for _ in range(rounds):
            helps.append(await _press_timed(
                app, "question_mark", "?", lambda: isinstance(app.screen, HelpScreen),
                timeout))
            await asyncio.sleep(0.05)
            closes.append(await _press_timed(
                app, "question_mark", "?", lambda: not isinstance(app.screen, HelpScreen),
                timeout))
            await asyncio.sleep(0.05)
        panel = app.main_screen.query_one("#view", ViewPanel)
        names = []
        for _ in range(rounds):
            for i in range(len(VIEWS) + 1):  # every view, then the map again
                want = i if i < len(VIEWS) else -1
                views.append(await _press_timed(
                    app, "v", "v", lambda w=want: app.view_index == w and
                    (panel.display if w >= 0 else not panel.display), timeout))
                names.append(VIEWS[want] if want >= 0 else "map")
                await asyncio.sleep(0.05)
        return {"help_ms": statistics.median(helps), "help_max_ms": max(helps),
                "help_close_ms": statistics.median(closes),
                "view_ms": statistics.median(views), "view_max_ms": max(views),
                "views": dict(zip(names[:len(VIEWS) + 1], views[:len(VIEWS) + 1])),
                "presses": len(helps) + len(views), "screen": f"{size[0]}x{size[1]}"}


def help_view_ms(m: Any, *, size: tuple[int, int] = SIZE, rounds: int = 3,
                 timeout: float = 30.0) -> dict:
    """Medians of `?` (open help) and `v` (next view) to the update that shows them."""
    return asyncio.run(_help_and_views(m, size, rounds, timeout))
