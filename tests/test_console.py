"""The console, round 2 (issue 13): numbers you can trust, a command line that behaves,
results that say why, undo, every screen size (80x24, 220x60, 36 nodes), drivers and
daemons you can see. Each test drives the app under Textual's pilot and checks what is
on screen against the engine: the numbers the tables show against numa_maps, the
result lines against the pages' nodes."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import numpy as np
import pytest
from rich.text import Text

import engine
from engine.commands import execute
from engine.views import MachineView, fmt_count
from tui.app import WATCH_SPEED, NumaConsoleApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.process import ProcessScreen
from tui.widgets.cmdline import CommandLine, candidates, split_line
from tui.widgets.pagemap import M_HOOK, M_ISOLATED, NCLASS, NMARK, PageMap
from tui.widgets.processes import ProcessTable
from tui.widgets.vmas import VmaTable

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
SMALL, LARGE = (80, 24), (220, 60)


# ---------------------------------------------------------------- helpers

def log_text(app) -> str:
    return app.console_log.plain()


def last_log(app) -> str:
    return app.console_log.entries[-1]


def table(app) -> ProcessTable:
    return app.main_screen.query_one("#processes", ProcessTable)


def pagemap(app) -> PageMap:
    return app.main_screen.query_one("#pagemap", PageMap)


def screen_text(app) -> str:
    svg = app.export_screenshot()
    return svg.replace("&#160;", " ").replace("&amp;", "&").replace("&lt;", "<") \
        .replace("&gt;", ">").replace("&#x27;", "'").replace("&quot;", '"')


def numa_maps_per_node(m, pid: int) -> dict[int, int]:
    """Pages per node of a process as /proc/PID/numa_maps says (the engine's own
    view of it, independent of the console's counting)."""
    out = {n: 0 for n in m.nodes}
    for line in m.numa_maps(pid).splitlines():
        for n, c in re.findall(r" N(\d+)=(\d+)", line):
            out[int(n)] += int(c)
    return out


def cell_text(t, row: str, col: str) -> str:
    v = t.get_cell(row, col)
    return getattr(v, "text", None) or getattr(v, "plain", None) or str(v)


async def run(pilot, line: str) -> None:
    """`:` then the line and Enter (the text put in the Input: typing key by key costs
    ~70 ms a key under the pilot)."""
    await pilot.press("colon")
    pilot.app.command_input().value = line
    await pilot.press("enter")


async def settle(pilot, app, timeout: float = 20.0) -> None:
    """Let running jobs finish, then redraw everything."""
    t0 = time.monotonic()
    while app.view.job_ids() and time.monotonic() - t0 < timeout:
        await asyncio.sleep(0.01)
    assert not app.view.job_ids(), app.view.jobs()
    await pilot.pause()
    app._check_jobs()
    app.redraw_now()
    await pilot.pause()


def check_table_numbers(app) -> None:
    """Every process's per-node cell shows the engine's count: exactly, or formatted
    to fit (131k) but never cut."""
    t = table(app)
    m = app.machine
    uid, mode = t.mode
    for pid in m.pids:
        want = numa_maps_per_node(m, pid)
        if mode in ("bar", "top"):
            top = max(want, key=lambda n: (want[n], -n))
            total = sum(want.values())
            if total:
                assert cell_text(t, str(pid), "top") == \
                    f"N{top} {100 * want[top] / total:.0f}%"
            continue
        fmt = str if mode == "exact" else fmt_count
        got = {n: cell_text(t, str(pid), f"N{n}") for n in m.nodes}
        assert got == {n: fmt(c) for n, c in want.items()}, pid
        # the column is as wide as what it shows
        for n in m.nodes:
            col = t.columns[next(k for k in t.columns if k.value == f"N{n}")]
            assert col.get_render_width(t) - 2 * t.cell_padding >= len(got[n])


# ---------------------------------------------------------------- 80x24

async def test_small_screen_command_line_results_undo_and_markup():
    """80x24: map, processes with node columns, command line; `:` empty; Tab completes
    (flags too) without leaving; keys go to the line while typing; foreground results
    with reasons; undo; a process named `[/]`; the panels one key away."""
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        main = app.main_screen
        m = app.machine
        assert main.narrow and pagemap(app).display and table(app).display
        assert pagemap(app).region.height >= 6 and table(app).region.height >= 6
        assert app.command_input().region.height == 1
        keys = main.query_one("#keys").plain()
        assert len(keys) <= 80 and keys.rstrip().endswith("? help")
        # node columns, exact, on screen
        assert table(app).mode[1] == "exact"
        check_table_numbers(app)
        text = screen_text(app)
        for n in m.nodes:
            assert f"N{n}" in text
        assert "LOCAL" in text and "POLICY" in text

        # a process named as markup: text, not markup
        await run(pilot, "spawn [/]")
        await run(pilot, "spawn '[bold]x[/bold]'")
        app.redraw_now()
        await pilot.pause()
        names = {cell_text(table(app), str(p), "name") for p in m.pids}
        assert {"[/]", "[bold]x[/bold]"} <= names and app.is_running
        odd = max(m.pids)
        app.open_process(odd)  # its screen, title and detail: text too
        await pilot.pause()
        assert "[bold]x[/bold]" in str(app.screen.query_one("#pinfo").render())
        await pilot.press("b")

        # the filter takes every key as text too
        main.action_filter()
        await pilot.press("m", "u", "q", "w")
        assert main.query_one("#filter").value == "muqw" and app.is_running
        assert not main.has_class("-panels") and app.view.last_migration() is None
        await pilot.press("escape")

        # m prefills, escape leaves it, `:` opens an empty line
        table(app).focus()
        table(app).select_pid(103)
        await pilot.press("m")
        assert app.command_input().value == "migratepages 103 0,2 "
        await pilot.press("escape")
        await pilot.press("colon")
        inp = app.command_input()
        assert inp.value == "" and app.focused is inp

        # while typing, keys are text: no binding acts
        z0 = pagemap(app).zoom
        await pilot.press("m", "q", "space", "plus", "u", "w", "d")
        assert inp.value == "mq +uwd" and app.is_running and not app.paused
        assert pagemap(app).zoom == z0 and app.focused is inp and not main.has_class("-panels")

        # Tab: commands, flags and keywords; several candidates are listed; focus stays
        inp.value = ""
        await pilot.press(*"move_p", "tab")
        assert inp.value == "move_pages " and app.focused is inp
        inp.value, inp.cursor_position = "move_pages 103 all 1 --d", 24
        await pilot.press("tab")
        assert inp.value == "move_pages 103 all 1 --dry-run "
        v = m.process(103).vmas[0]
        line = f"mbind 103 {v.start:x}..{v.end:x} bind:1 mo"
        inp.value, inp.cursor_position = line, len(line)
        await pilot.press("tab")
        await pilot.pause()
        bar = main.query_one("#candidates")
        assert bar.display and "move" in str(bar.render()) and "move_all" in str(bar.render())
        assert inp.value == line[:-2] + "move" and app.focused is inp
        await pilot.press("tab")  # again: cycles through them
        assert inp.value in (line[:-2] + "move_all", line[:-2] + "move")
        inp.value, inp.cursor_position = "mbind 103 ", 10
        await pilot.press("tab", "tab")  # the only range, then the policies
        assert inp.value == f"mbind 103 {v.start:x}..{v.end:x} " and app.focused is inp
        assert "bind:1" in str(bar.render())
        await pilot.press("escape")
        assert not bar.display and app.focused is pagemap(app)

        # a migration without & runs in the foreground: the line waits for its result
        assert execute(m, "clock speed 0.05").ok  # watchable: it lasts a while
        await run(pilot, "migratepages 103 2 0")
        job = app.foreground
        assert job is not None and app.command_input().disabled
        app.action_command_line()  # `:` (a pilot key press would wait for the job)
        assert "runs in the foreground" in last_log(app) and app.focused is not inp
        app.action_clock_fast()  # F: fast, one key away
        await settle(pilot, app)
        assert app.foreground is None and not app.command_input().disabled
        want = "migrate_pages: 73728 of 73728 pages moved (2→0: 73728)"
        assert last_log(app).endswith(want)
        assert want in str(main.query_one("#status").render())  # the narrow status line
        check_table_numbers(app)
        assert numa_maps_per_node(m, 103) == {0: 81920, 1: 0, 2: 0, 3: 0}

        # undo (a key): the pages go back where they came from
        await pilot.press("u")
        await settle(pilot, app)
        assert last_log(app).endswith("undo: 73728 of 73728 pages moved back (0→2: 73728)")
        assert numa_maps_per_node(m, 103) == {0: 8192, 1: 0, 2: 73728, 3: 0}
        check_table_numbers(app)
        m.check()

        # the panels, one key away, and back
        await pilot.press("w")
        await pilot.pause()
        assert main.query_one("#side").display and main.query_one("#inspector").region.width
        assert main.query_one("#log").region.height > 2 and not pagemap(app).region.width
        await pilot.press("w")
        await pilot.pause()
        assert pagemap(app).region.width > 60


async def test_small_screen_help_and_process_screen_are_not_cut():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        # the "does" column wraps at 80 columns, it is not cut
        assert "the command line (empty; tab" in text and "completes" in text
        await pilot.press("escape")
        app.open_process(100)
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, ProcessScreen)
        vt = app.screen.query_one("#vmas", VmaTable)
        m = app.machine
        for v in m.process(100).vmas:
            pages = np.zeros(len(m.nodes), np.int64)
            offs, pfns = v.present()
            pfns = pfns[pfns != m.zero_pfn]
            for i, n in enumerate(m.nodes):
                pages[i] = int((m.node_of(pfns) == n).sum())
            fmt = str if vt.mode[1] == "exact" else fmt_count
            got = [cell_text(vt, f"{v.start:x}", f"N{n}") for n in m.nodes]
            assert got == [fmt(int(c)) for c in pages]
        assert vt.virtual_size.width <= vt.size.width  # all on screen
        keys = app.screen.query_one("#keys").plain()
        assert len(keys) <= 80 and keys.rstrip().endswith("? help")


async def test_vma_table_numbers_grow_without_being_cut():
    """80x24, java's screen open while its pages move: a VMA's N0 grows from 8192 to
    81920 (the issue's `81` for 81920) and the column widens with it."""
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.open_process(103)
        await pilot.pause()
        vt = app.screen.query_one("#vmas", VmaTable)
        m = app.machine
        heap = next(v for v in m.process(103).vmas if v.end - v.start == 352 << 20)
        key = f"{heap.start:x}"

        def shown() -> dict[str, str]:
            return {f"N{n}": cell_text(vt, key, f"N{n}") for n in m.nodes}

        fmt = str if vt.mode[1] == "exact" else fmt_count
        assert shown() == {"N0": fmt(8192), "N1": "0", "N2": fmt(73728), "N3": "0"}
        assert execute(m, "migratepages 103 2 0").ok
        app.redraw_now()
        await pilot.pause()
        fmt = str if vt.mode[1] == "exact" else fmt_count
        assert shown() == {"N0": fmt(81920), "N1": "0", "N2": "0", "N3": "0"}
        for n in m.nodes:
            col = vt.columns[next(k for k in vt.columns if k.value == f"N{n}")]
            assert col.get_render_width(vt) - 2 * vt.cell_padding >= len(shown()[f"N{n}"])
        assert fmt(81920) in screen_text(app)
        assert vt.virtual_size.width <= vt.size.width


async def test_vma_m_key_offers_mbind_move_with_the_cursor_at_the_node():
    """A private VMA: `m` offers `mbind ... bind: move` with the cursor after `bind:`,
    names move_pages as the alternative; typing the node and Enter moves it."""
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        m = app.machine
        v = m.process(103).vmas[0]
        app.open_process(103)
        await pilot.pause()
        app.screen.query_one("#vmas", VmaTable).select_start(v.start)
        await pilot.press("m")
        inp = app.command_input()
        rng = f"{v.start:x}..{v.end:x}"
        assert inp.value == f"mbind 103 {rng} bind: move"
        assert inp.cursor_position == len(f"mbind 103 {rng} bind:") and app.focused is inp
        assert f"or move_pages 103 {rng} NODE" in last_log(app)
        await pilot.press("1", "enter")
        await settle(pilot, app)
        assert last_log(app).endswith("mbind: 81920 of 81920 pages moved (2→1: 73728, "
                                      "0→1: 8192)")
        assert numa_maps_per_node(m, 103) == {0: 0, 1: 81920, 2: 0, 3: 0}


# ---------------------------------------------------------------- 220x60

async def test_large_screen_vma_prompt_drivers_daemon_and_background(tmp_path, monkeypatch):
    """220x60: exact numbers; the VMA m key offers the call that fits; h acts on the
    driver under the cursor (inspector, legend and map show its hook); the daemon asks
    for a workload; & runs in the background; ctrl+s, load, the palette's key actions,
    the numa_maps title, the rehearsal under the map."""
    monkeypatch.chdir(tmp_path)
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=LARGE) as pilot:
        await pilot.pause()
        main = app.main_screen
        m = app.machine
        assert not main.narrow and table(app).mode == (True, "exact")
        check_table_numbers(app)
        text = screen_text(app)
        for title in ("jobs (c cancels the newest)", "nodes: used · free · history · ↑out ↓in",
                      "processes (enter opens, / filters)"):
            assert title in text

        # the VMA m key: mbind with move_all for a shared mapping, the era's calls
        app.open_process(100)
        await pilot.pause()
        vt = app.screen.query_one("#vmas", VmaTable)
        libc = m.process(100).vmas[0]
        vt.select_start(libc.start)
        await pilot.press("m")
        head = f"mbind 100 {libc.start:x}..{libc.end:x} bind:"
        assert app.command_input().value == f"{head} move_all"
        assert "512 shared pages: move_all moves them too" in last_log(app)
        assert f"or move_pages 100 {libc.start:x}..{libc.end:x} NODE --all" in last_log(app)
        await pilot.press("escape", "b")
        assert execute(m, "era 2.6.17").ok
        app.open_process(104)
        await pilot.pause()
        await pilot.press("m")
        assert "era 2.6.17 has no move_pages" in last_log(app)
        await pilot.press("escape", "b")
        assert execute(m, "era modern").ok
        app.open_process(105)  # Xorg: its second VMA maps fb0's region
        await pilot.pause()
        fbv = m.process(105).vmas[1]
        app.screen.query_one("#vmas", VmaTable).select_start(fbv.start)
        await pilot.press("m")
        assert "no call moves a PFN-mapped VMA (fb0)" in last_log(app)
        await pilot.press("b")
        await pilot.pause()

        # h: the driver under the cursor, or a sentence when there is none
        fb = MachineView(m).driver_at
        await pilot.press("h")
        assert "no driver region under the cursor (PFN 0x0)" in last_log(app)
        region = next(d for d in app.view.drivers() if d.name == "fb0").runs
        pagemap(app).move_to(int(region[0, 0]))
        await pilot.press("h")
        assert last_log(app) == "fb0: migrate hook on"
        assert fb(int(region[0, 0])).hook is True
        app.redraw_now()
        await pilot.pause()
        ins = main.query_one("#inspector").render().plain
        assert "driver fb0 (framebuffer, node 0), migrate hook on" in ins
        leg = main.query_one("#legend").render().plain
        assert "fb0 (framebuffer, node 0): migrate hook on; mapped by 105 Xorg" in leg
        pm = pagemap(app)
        y, col = pm.cell_of(int(region[0, 0]))
        mark = (int(pm._row_codes(y)[col]) // NCLASS) % NMARK
        assert mark == M_HOOK or pm.cursor_cell() == (y, col)
        assert "⇄" in screen_text(app)

        # the daemon needs a workload: it says so and offers one (while jobs run, the
        # actions are called directly: a pilot key waits for an idle app, seconds)
        table(app).select_pid(103)
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "runs no workload" in str(app.screen.query_one("#confirm-text").render())
        app.screen.action_answer(True)  # y
        await asyncio.sleep(0.05)
        assert "> workload 103 --loop &" in log_text(app) and "> daemon start 103" in log_text(app)
        assert app.foreground is None  # services never hold the line
        app.action_daemon()  # d again: stops it, with a sentence
        assert "> daemon stop" in log_text(app)
        app.run_command("workload stop all")
        await settle(pilot, app)
        assert re.search(r"daemon 1 on pid 103 stopped: it migrated \d+ of \d+ pages",
                         log_text(app)) and "{" not in log_text(app)

        # `&`: in the background, the line stays free
        await run(pilot, "migratepages 103 2 1 &")
        assert app.foreground is None and not app.command_input().disabled
        assert re.search(r"job \d+ started: migrate_pages$", log_text(app), re.M)
        await settle(pilot, app)
        assert "migrate_pages: 73728 of 73728 pages moved (2→1: 73728)" in last_log(app)
        check_table_numbers(app)

        # ctrl+s proposes snapshots/NAME.numacon, and saving there works
        pagemap(app).focus()
        await pilot.press("ctrl+s")
        assert app.command_input().value == "save snapshots/default.numacon"
        await pilot.press("enter")
        assert (tmp_path / "snapshots" / "default.numacon").is_file()
        await run(pilot, f"load {ROOT / 'saves' / 'default.toml'}")
        assert last_log(app).endswith("default.toml: machine default (4 nodes, 8G, era modern)")
        m = app.machine

        # the command palette has the key actions
        z0 = pagemap(app).zoom
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"zoom in")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert pagemap(app).zoom == z0 // 2

        # the numa_maps view names its process
        table(app).select_pid(103)
        await pilot.press("v")
        assert main.query_one("#view").view_name == "/proc/103/numa_maps (java)"
        assert "/proc/103/numa_maps (java)" in screen_text(app)
        await pilot.press("b")

        # the rehearsal dialog leaves the map in sight
        await run(pilot, "kill 107")
        pagemap(app).move_to(m.zone(3, "Movable").start_pfn)
        await pilot.press("o")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        text = screen_text(app)
        assert "rehearsal: offline 3 Movable --dry-run" in text
        assert "node 0" in text and "page frames" in text  # the map, above it
        await pilot.press("n")


async def test_watchable_pace_named_in_the_title_and_fast_one_key_away():
    """The default clock: a whole-process migration runs visibly (the jobs panel with
    its rate and ETA, the map's in-flight marks); F is fast and back; the speed labels
    read the right way round."""
    app = NumaConsoleApp()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        st = app.view.status()
        assert st.clock.mode == "speed" and st.clock.speed == WATCH_SPEED
        assert "clock 0.000000s 1/20 real time (F: fast)" in screen_text(app)
        app.machine.job_batch = 4096  # 18 batches, each ~0.1 s real time at this pace
        await run(pilot, "migratepages 103 2 0 &")
        pm = pagemap(app)

        def marks() -> set[int]:
            return {(int(c) // NCLASS) % NMARK for y in pm._visible_cell_rows()
                    for c in pm._row_codes(y)}

        # until a batch has moved and pages in flight are on the map (polled, not a
        # fixed sleep: a loaded host may take its time; bounded, not asserted)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20:
            app.redraw_now()
            await pilot.pause()
            jobs = app.view.jobs()
            if not jobs or (jobs[0].done and M_ISOLATED in marks()):
                break
            await asyncio.sleep(0.02)
        assert jobs and 0 < jobs[0].done < jobs[0].total  # still running: watchable
        assert M_ISOLATED in marks()  # pages in flight are marked on the map
        label = app.main_screen.query_one(".job-label")
        shown = str(label.render())
        assert "ETA" in shown and shown.startswith(f"#{jobs[0].id} migrate_pages ")
        text = screen_text(app)
        assert label.size.width >= len(shown) and shown in text  # not cut
        for w in app.main_screen.query("#pagemap, #inspector, #legend, #meters, #distances, "
                                       "#jobs, #log, #procbox"):
            title = Text.from_markup(w.border_title).plain
            assert len(title) + 4 <= w.size.width and title in text, title
        await pilot.press("F")
        assert app.view.status().clock.label == "fast"
        await settle(pilot, app)
        assert "(F: watchable)" in screen_text(app)
        await pilot.press("F")
        assert app.view.status().clock.label == "1/20 real time"
        assert execute(app.machine, "clock").text.endswith(", 1/20 real time")
        await pilot.press("less_than_sign")
        assert app.view.status().clock.label == "1/100 real time"
        await pilot.press("greater_than_sign", "greater_than_sign", "greater_than_sign")
        assert app.view.status().clock.label == "real time"
        await pilot.press("greater_than_sign")
        assert app.view.status().clock.label == "10x real time"


# ---------------------------------------------------------------- 36 nodes

@pytest.mark.parametrize("preset,size", [("large-36", LARGE), ("large-36", SMALL),
                                         ("altix-2006", LARGE)])
async def test_many_nodes_readable(preset, size):
    """36 nodes: the map folds into columns side by side, every zone keeps rows; the
    table keeps LOCAL and POLICY on screen with a per-node bar and the top node; the
    meters and the distance grid are all there (the side panel scrolls)."""
    m = engine.load(ROOT / "saves" / f"{preset}.toml")
    app = NumaConsoleApp(m, pace="fast")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        main = app.main_screen
        pm = pagemap(app)
        t = table(app)
        zones = {int(z) for z in pm._layout.zone[pm._layout.kind == 1]}
        assert zones == {i for i, z in enumerate(m.zones) if z.spanned}
        if size == LARGE and len(m.nodes) == 36:
            assert pm.fold > 1 and pm._rows <= pm.size.height  # no scrolling
        check_table_numbers(app)
        assert t.virtual_size.width <= t.size.width  # no horizontal scrolling
        text = screen_text(app)
        assert "LOCAL" in text and "POLICY" in text
        if size == SMALL:
            await pilot.press("w")
            await pilot.pause()
        meters = main.query_one("#meters").render().plain
        assert all(f"N{n} " in meters for n in m.nodes)
        dist = main.query_one("#distances").render().plain
        assert f"■{int(m.distances.max())}" in dist
        side = main.query_one("#side")
        if side.max_scroll_y:
            side.focus()
            await pilot.press("end")
            await pilot.pause()
            assert side.scroll_y > 0
        if size == SMALL:
            await pilot.press("w")  # back to the map and the processes
            await pilot.pause()
        # the result of a migration and its undo on this machine
        pid = next(r.pid for r in app.view.processes() if r.rss and r.pid != 1)
        src = max(numa_maps_per_node(m, pid).items(), key=lambda kv: kv[1])[0]
        dst = max((st for st in app.view.node_stats() if st.id != src),
                  key=lambda st: st.free).id
        r = execute(m, f"migratepages {pid} {src} {dst}")
        assert r.ok and re.match(rf"migrate_pages: (\d+) of \1 pages moved \({src}→{dst}", r.text)
        app.redraw_now()
        await pilot.pause()
        check_table_numbers(app)
        assert execute(m, "undo").text.startswith("undo: ")
        m.check()


# ---------------------------------------------------------------- results and completion

def test_results_say_why_by_reason():
    """The one-line results of the issue, from the engine's MoveRecord."""
    m = engine.Machine.default()
    v = next(v for v in m.process(104).vmas if v.locked)
    rng = f"{v.start:x}..{v.end:x}"
    assert execute(m, "era 2.6.17").ok
    assert execute(m, f"mbind 104 {rng} bind:1 move").text == \
        "mbind: 0 of 16384 pages moved: 16384 -EPERM (mlocked, era 2.6.17)"
    assert execute(m, f"mbind 104 {rng} bind:2 move").text == \
        "mbind: 0 of 16384 pages moved: already in place"
    assert execute(m, "undo").text.startswith("error: nothing to undo: the last migration")
    a = engine.load(ROOT / "saves" / "altix-2006.toml")
    assert execute(a, "hook uncached on").ok
    assert execute(a, "migratepages 4101 1 3").text == \
        "migrate_pages: 2048 of 2048 pages moved (1→3: 2048), of them 2048 by uncached's " \
        "migrate hook"
    assert execute(a, "undo").text == "undo: 0 of 2048 pages moved back: 2048 PFN-mapped " \
        "frames of uncached (only its migrate hook moves them)"
    d = engine.Machine.default()
    assert execute(d, "move_pages 107 all 2").text == \
        "move_pages: 16384 of 32768 pages moved (3→2: 16384): 16384 -EAGAIN (pinned); ret 16384"
    assert execute(d, "move_pages 103 all 3 &").ok and execute(d, "wait").ok
    assert execute(d, "move_pages 103 all 3").text == "move_pages: 0 of 90112 pages moved: " \
        "81920 already in place; 8192 -ENOENT (not present); ret 0"


def test_undo_restores_what_it_can_and_says_why_not():
    m = engine.Machine.default()
    assert execute(m, "migratepages 103 2 0").ok
    assert execute(m, "kill 103").ok  # its pages are gone: nothing to move back
    r = execute(m, "undo")
    assert r.ok and r.text == \
        "undo: 0 of 73728 pages moved back: 73728 gone since (freed, reused, or moved again)"
    assert execute(m, "migratepages 101 1 3").ok
    b = m.migration_bill("undo", m.moves.last)
    assert b.pages == 53248 and b.error is None
    r = execute(m, "undo")
    assert r.text == "undo: 53248 of 53248 pages moved back (3→1: 53248)"
    assert execute(m, "undo").text.startswith("undo: 53248 of 53248 pages moved back (1→3")
    m.check()


def test_tab_candidates_cover_words_flags_and_options():
    view = MachineView(engine.Machine.default())

    def cands(line: str) -> list[str]:
        words, pos = split_line(line)
        return [c for c in candidates(view, words, pos) if c.startswith(words[-1])]

    assert cands("daemon ") [:3] == ["start", "stop", "report"]
    assert "mode=" in cands("daemon start 103 ") and "--dry-run" in cands("undo ")
    assert cands("move_pages 103 all 1 --") == ["--all", "--dry-run"]
    assert cands("mbind 103 1000..2000 bind:1 ") == ["strict", "move", "move_all",
                                                     "--dry-run"]
    assert cands("offline 3 ") == ["Movable", "Normal"]
    assert "all" in cands("move_pages 103 ") and "103" in cands("numa_maps 10")
    assert cands("workload stop ") == ["all"]
    assert isinstance(CommandLine(lambda: view), CommandLine)


# ---------------------------------------------------------------- snapshot pictures

def normalise(svg: str) -> str:
    """An export_screenshot SVG without its run-dependent ids."""
    return re.sub(r"terminal-\d+", "terminal", svg)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "220x60"])
async def test_main_screen_picture(size, request):
    """The main screen at both sizes, compared with the stored picture
    (tests/snapshots/main_WxH.svg; NUMACON_SNAPSHOT_UPDATE=1 rewrites them)."""
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        for inp in app.main_screen.query(CommandLine):
            inp.cursor_blink = False
        app.redraw_now()
        await pilot.pause()
        svg = normalise(app.export_screenshot(title="numacon"))
    path = SNAPSHOTS / f"main_{size[0]}x{size[1]}.svg"
    import os

    if os.environ.get("NUMACON_SNAPSHOT_UPDATE") or not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(svg)
    assert svg == path.read_text(), f"{path} differs (NUMACON_SNAPSHOT_UPDATE=1 rewrites it)"


async def test_readme_first_session():
    """README's first session, key by key: p, down to java, m, 0, Enter; then u."""
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        row = next(r for r in app.view.processes() if r.pid == 103)
        assert f"{row.locality:.0f}" == "10"
        assert cell_text(table(app), "103", "local") == "10%"
        await pilot.press("p", *["down"] * 5)
        assert table(app).selected_pid() == 103
        await pilot.press("m")
        assert app.command_input().value == "migratepages 103 0,2 "
        await pilot.press("0", "enter")
        await settle(pilot, app)
        assert log_text(app).splitlines()[-3:] == [
            "> migratepages 103 0,2 0",
            "job 1 (migrate_pages) runs in the foreground: c cancels; a line ending in & "
            "runs in the background".replace("job 1", f"job {app.machine.finished_jobs[-1].id}"),
            f"job {app.machine.finished_jobs[-1].id} done: migrate_pages: 73728 of 81920 "
            f"pages moved (2→0: 73728): 8192 already in place"]
        assert cell_text(table(app), "103", "local") == "100%"
        await pilot.press("u")
        await settle(pilot, app)
        assert last_log(app).endswith("undo: 73728 of 73728 pages moved back (0→2: 73728)")
        assert cell_text(table(app), "103", "local") == "10%"


def test_undo_follows_a_page_moved_twice_in_one_call():
    """move_pages with a page listed again in a later batch moves it twice: the record
    follows it to its last frame and undo sends it to the node it started on."""
    m = engine.Machine.default()
    v = m.process(103).vmas[0]
    a, b = v.start, v.start + m.page_size
    before = m.move_pages(103, [a, b], None)
    with m.moves.recording(m, "move_pages", (103, [a, b, a], [1, 1, 3], 2)) as rec:
        st = m.move_pages(103, [a, b, a], [1, 1, 3], 2)
    assert list(st) == [1, 1, 3] and rec.moved == 2
    assert rec.summary(st).startswith("move_pages: 2 of 3 pages moved (") and \
        rec.summary(st).endswith("; ret 0") and "not attempted" not in rec.summary(st)
    assert rec.pairs == {(int(before[0]), 3): 1, (int(before[1]), 1): 1}
    r = m.undo()
    assert r["pages"] == 2 and list(m.move_pages(103, [a, b], None)) == list(before)
    m.check()


def test_the_console_reads_only_the_view_api():
    """tui/ never touches frame arrays, page tables or the machine's private books:
    every name it reads of a machine goes through engine.views (issue 12, item 7)."""
    from engine.views import VIEW_API

    view = MachineView(engine.Machine.default())
    assert all(callable(getattr(view, name)) for name in VIEW_API)
    forbidden = re.compile(r"\.f\.|\bm\.f\b|\.pte|\bmappings\b|drivers_map|\bprocs\b|"
                           r"zero_pfn|nodes_list|\.traffic\b|\.clockctl|\.moves\b|"
                           r"\bfind_vma\b|\.vmas\b(?!\()|\.pt\b")
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
            for p in sorted((ROOT / "tui").rglob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if forbidden.search(line) and not line.lstrip().startswith(("#", "from "))]
    assert hits == []


def test_smaller_points_ps_offline_bench_labels(capsys):
    """`ps` in numacon run has the per-node columns its help promises, in one unit;
    `offline` suggests a command that exists; bench labels say what ran."""
    from tools import bench
    from tui import cli

    assert cli.main(["run", "-c", "ps"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:9] == ["PID", "UID", "NODE", "NAME", "RSS", "N0", "N1", "N2", "N3"]
    assert "(memory in MiB)" in out[0]
    java = next(ln for ln in out if " java " in ln).split()
    assert java[4:9] == ["320.0", "32.0", "0.0", "288.0", "0.0"]  # 81920 pages, 4 KiB
    m = engine.Machine.default()
    r = execute(m, "offline 0 DMA")
    assert not r.ok and "offline_block INDEX; `blocks` lists them" in r.text
    assert execute(m, "blocks").text.splitlines()[2].split()[:4] == ["1", "online", "0",
                                                                     "DMA32"]
    assert execute(m, "offline_block 2").text.startswith("memory2 offline: migrated")
    assert execute(m, "online_block 2").text == "memory2 online: 32768 pages"
    det = {"page_size": 4096, "move_pages_n": 1 << 17, "migrate_pages_n": 1 << 19,
           "key_latency": {"job_pages": 1 << 17}}
    labels = {k: bench.figure_label(k, w, det, 0.125) for k, w, _, _ in bench.FIGURES}
    assert labels["move_pages_pps"] == \
        "move_pages, one call, 128 Ki random pages to random nodes"
    assert labels["migrate_pages_pps"] == \
        "migrate_pages, a whole 2 GiB process to another node"
    assert labels["offline_s"] == "offline the 2 GiB Movable zone, 75 % used"
    assert labels["key_latency_ms"] == \
        "key press to visible change while a 128 Ki-page job runs"
