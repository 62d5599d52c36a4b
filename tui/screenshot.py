"""Export an SVG screenshot of the console, for the README:

    python -m tui.screenshot docs/screenshot.svg [MACHINE] [--size 160x50]
        [--command 'CMD'] ... [--keys 'k1,k2']

Commands run through the console's own command line path (app.run_command)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any


async def shoot(path: str, machine: Any = None, size: tuple[int, int] = (160, 50),
                commands: Sequence[str] = (), keys: Sequence[str] = (),
                select_pid: int | None = None, cursor_pid: int | None = None,
                pace: str = "watch") -> str:
    """Run the app headless, apply commands and keys, save an SVG; returns its path."""
    from .app import NumaConsoleApp

    app = NumaConsoleApp(machine, pace=pace)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        if select_pid is not None:
            app.main_screen.query_one("#processes").select_pid(select_pid)
        for line in commands:
            app.run_command(line)
            while app.machine.jobs:
                await asyncio.sleep(0.01)
            await pilot.pause()
        if cursor_pid is not None:
            view = app.view
            pfns = [int(f[0]) for f in (view.vma_frames(cursor_pid, r.start)
                                        for r in view.vmas(cursor_pid) if r.kind == "anon")
                    if f.size]
            if pfns:
                app.main_screen.query_one("#pagemap").move_to(pfns[0])
        if keys:
            await pilot.press(*keys)
            await pilot.pause(0.1)  # screen switches take a moment
        app._check_jobs()
        app.redraw_now()
        await pilot.pause()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(filename=out.name, path=str(out.parent))
    return str(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tui.screenshot")
    ap.add_argument("output")
    ap.add_argument("machine", nargs="?")
    ap.add_argument("--size", default="160x50")
    ap.add_argument("--command", action="append", default=[])
    ap.add_argument("--keys", default="")
    ap.add_argument("--pace", default="watch", choices=("watch", "fast"),
                    help="the simulated clock (watch: the console's default)")
    ap.add_argument("--select", type=int, default=None, help="pid to select in the table")
    ap.add_argument("--cursor-pid", type=int, default=None,
                    help="put the map cursor on this process's first anonymous page")
    a = ap.parse_args(argv)
    import engine

    m = engine.load(a.machine) if a.machine else None
    w, h = (int(x) for x in a.size.lower().split("x"))
    keys = [k for k in a.keys.split(",") if k]
    print(asyncio.run(shoot(a.output, m, (w, h), a.command, keys, a.select,
                              a.cursor_pid, a.pace)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
