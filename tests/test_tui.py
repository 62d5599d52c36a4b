"""Headless tests of the console (Textual pilot), its widgets and the `numacon`
command. Every path a user takes goes through engine.commands.execute."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import engine
from engine.views import MachineView, vma_frames
from tui import cli
from tui.app import NumaConsoleApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.process import ProcessScreen
from tui.widgets.cmdline import complete
from tui.widgets.distance import distance_text
from tui.widgets.pagemap import C_FREE, NCLASS, PageMap
from tui.widgets.processes import ProcessTable
from tui.widgets.vmas import VmaTable

ROOT = Path(__file__).resolve().parent.parent
PRESETS = sorted((ROOT / "saves").glob("*.toml"))
SIZE = (160, 50)


# ---------------------------------------------------------------- helpers

async def wait_jobs(pilot, app, timeout: float = 20.0) -> None:
    """Let running engine jobs finish, then redraw everything."""
    t0 = time.monotonic()
    while app.machine.jobs and time.monotonic() - t0 < timeout:
        await asyncio.sleep(0.01)
    assert not app.machine.jobs, f"jobs still running: {app.machine.jobs}"
    await pilot.pause()
    app._check_jobs()
    app.redraw_now()
    await pilot.pause()


def table(app) -> ProcessTable:
    return app.main_screen.query_one("#processes", ProcessTable)


def pagemap(app) -> PageMap:
    return app.main_screen.query_one("#pagemap", PageMap)


def node_pages(app, pid: int, node: int) -> int:
    return int(table(app).get_cell(str(pid), f"N{node}").value)


def map_codes(app) -> list[tuple[int, ...]]:
    pm = pagemap(app)
    return [tuple(pm._row_codes(int(y)).tolist()) for y in pm._layout.cell_y]


def log_text(app) -> str:
    return app.console_log.plain()


async def command(pilot, line: str, *, type_it: bool = False) -> None:
    """`:` then the line, then Enter. Typing key by key costs ~70 ms a key under the
    pilot, so most tests put the text in the Input and press Enter."""
    await pilot.press("colon")
    if type_it:
        await pilot.press(*line)
    else:
        pilot.app.command_input().value = line
    await pilot.press("enter")


# ---------------------------------------------------------------- launching

async def test_launch_default_machine_shows_map_table_and_labels():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert app.machine.nr_frames == 2 * 1024 * 1024
        t = table(app)
        assert t.row_count == len(app.machine.pids)
        assert node_pages(app, 103, 2) == 73728
        svg = app.export_screenshot()
        for s in ("node 0", "node 3", "java", "memcached", "inspector", "distances"):
            assert s in svg.replace("&#160;", " "), s
        pm = pagemap(app)
        assert pm.zoom >= 1 and len(pm._layout.kind) <= pm.size.height  # whole machine fits


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
async def test_launch_on_each_preset(preset):
    if not PRESETS:
        pytest.skip("no presets in saves/")
    m = engine.load(preset)
    app = NumaConsoleApp(m)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.machine is m
        assert table(app).row_count == len(m.pids)
        text = app.export_screenshot().replace("&#160;", " ")
        assert f"node {m.nodes[0]}" in text or f"N{m.nodes[0]} " in text
        assert m.name in text
        # the map renders every visible line without error
        pm = pagemap(app)
        for y in range(pm.size.height):
            pm.render_line(y)


# ---------------------------------------------------------------- migration

async def test_migrate_from_command_line_changes_table_and_map():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        before = map_codes(app)
        assert node_pages(app, 103, 2) == 73728
        await command(pilot, "migratepages 103 2 0", type_it=True)
        await wait_jobs(pilot, app)
        assert node_pages(app, 103, 2) == 0
        assert node_pages(app, 103, 0) == 81920
        assert map_codes(app) != before
        assert "migrate_pages: 73728 of 73728 pages moved (2→0: 73728)" in log_text(app)
        # after Enter the focus returns to where it was (the map)
        assert app.focused is pagemap(app)


async def test_migrate_selected_process_from_key():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        t = table(app)
        t.focus()
        t.select_pid(103)
        await pilot.pause()
        await pilot.press("m")
        inp = app.command_input()
        assert app.focused is inp
        assert inp.value == "migratepages 103 0,2 "
        await pilot.press("1", "enter")
        await wait_jobs(pilot, app)
        assert node_pages(app, 103, 1) == 81920
        assert node_pages(app, 103, 0) == node_pages(app, 103, 2) == 0


async def test_cancel_job_with_key():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.machine.job_batch = 8  # a big job in small batches
        await pilot.press("colon")
        inp = app.command_input()
        inp.value = "move_pages 100 all 3 &"
        await inp.action_submit()  # Enter, without the pilot's wait for idle
        await asyncio.sleep(0.05)
        assert app.machine.jobs, "the job should still be running"
        await pilot.press("c")
        await wait_jobs(pilot, app)
        job = app.machine.finished_jobs[-1]
        assert job.state == "cancelled"
        assert 0 < job.done < job.total
        assert "> cancel" in log_text(app)
        assert "cancelled" in log_text(app)
        app.machine.check()


# ---------------------------------------------------------------- process screen, mlock, hook

async def test_process_screen_mlock_toggle_and_back():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        t = table(app)
        t.focus()
        t.select_pid(104)  # trader (uid 0): its 64M VMA is mlocked
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ProcessScreen) and app.screen.pid == 104
        m = app.machine
        vt = app.screen.query_one("#vmas", VmaTable)
        assert vt.row_count == len(m.process(104).vmas)
        v = next(v for v in m.process(104).vmas if v.locked)
        vt.select_start(v.start)
        await pilot.press("l")
        await pilot.pause()
        assert not m.process(104).vmas[-1].locked
        assert "munlock done" in log_text(app)
        app.redraw_now()
        await pilot.pause()
        assert "locked" not in str(vt.get_cell(f"{v.start:x}", "flags"))
        await pilot.press("l")
        await pilot.pause()
        assert m.process(104).vmas[-1].locked
        assert log_text(app).endswith("mlock done")
        # an ordinary user hits RLIMIT_MEMLOCK: the error is shown, nothing breaks
        await pilot.press("b")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        app.open_process(103)
        await pilot.pause()
        await pilot.press("l")
        assert "ENOMEM" in log_text(app).splitlines()[-1]
        assert "ENOMEM" in str(app.screen.query_one("#pstatus").render())
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_move_vma_from_process_screen_and_show_on_map():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_process(104)
        await pilot.pause()
        vt = app.screen.query_one("#vmas", VmaTable)
        vt.focus()
        await pilot.press("m")
        inp = app.command_input()
        v = app.machine.process(104).vmas[0]
        head = f"mbind 104 {v.start:x}..{v.end:x} bind:"
        assert inp.value == f"{head} move" and inp.cursor_position == len(head)
        await pilot.press("3", "enter")
        await wait_jobs(pilot, app)
        per = [int(vt.get_cell(f"{v.start:x}", f"N{n}").value) for n in app.machine.nodes]
        assert per[3] == sum(per) > 0
        vt.focus()
        await pilot.press("enter")  # the VMA's pages on the map
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        pm = pagemap(app)
        assert pm.hilite is not None and pm.hilite.sum() == sum(per)
        assert int(app.machine.node_of([pm.cursor])[0]) == 3
        await pilot.press("b")
        assert pm.hilite is None


async def test_hook_toggle_key():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        d = app.machine.drivers_map["uncached"]
        was = d.hook_enabled
        await pilot.press("h")  # the cursor is on frame 0: no driver there
        assert d.hook_enabled is was
        assert "no driver region under the cursor (PFN 0x0)" in log_text(app)
        pagemap(app).move_to(int(d.backing.present()[1][0]))
        await pilot.press("h")
        assert d.hook_enabled is not was
        assert f"uncached: migrate hook {'off' if was else 'on'}" in log_text(app)
        await pilot.press("h")
        assert d.hook_enabled is was
        # on a frame of the framebuffer, h switches that driver's hook
        fb = app.machine.drivers_map["fb0"]
        pagemap(app).move_to(int(fb.backing.present()[1][0]))
        was = fb.hook_enabled
        await pilot.press("h")
        assert fb.hook_enabled is not was


async def test_mlock_from_map_cursor():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        m = app.machine
        v = m.process(104).vmas[0]
        assert not v.locked
        pfn = int(vma_frames(v)[0])
        pagemap(app).move_to(pfn)
        await pilot.press("l")
        assert m.process(104).vmas[0].locked
        # enter on the map opens the frame's owner with its VMA selected
        pagemap(app).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ProcessScreen) and app.screen.pid == 104
        assert app.screen.query_one("#vmas", VmaTable).selected_start() == v.start
        await pilot.press("b")
        app.redraw_now()
        assert "mlocked" in app.main_screen.query_one("#inspector").render().plain


# ---------------------------------------------------------------- offline / online

async def test_offline_shows_rehearsal_then_offlines_and_onlines():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        m = app.machine
        await command(pilot, "kill 107")  # its pinned pages would block the offline
        z = m.zone(3, "Movable")
        pagemap(app).move_to(z.start_pfn + 10)
        await pilot.press("o")
        await pilot.pause()
        assert "offline 3 Movable --dry-run" in log_text(app)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert "offline cancelled" in log_text(app)
        assert z.present > 0
        await pilot.press("o")
        await pilot.pause()
        await pilot.press("o")  # the second o confirms
        await wait_jobs(pilot, app)
        assert z.present == 0 or not z.online, log_text(app)
        assert "error" not in log_text(app).split("> offline 3 Movable\n")[-1]
        codes = np.array(pagemap(app)._row_codes(pagemap(app).cell_of(z.start_pfn)[0]))
        assert (codes % NCLASS == 4).any()  # offline cells
        await pilot.press("O")
        await wait_jobs(pilot, app)
        assert z.present > 0
        m.check()


async def test_offline_refused_shows_error_and_no_prompt():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        pagemap(app).move_to(0)  # node 0 DMA shares its block: EINVAL
        await pilot.press("o")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert "error" in log_text(app)


# ---------------------------------------------------------------- errors, help, views, keys

async def test_bad_input_leaves_app_running_with_error():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await command(pilot, "bogus")
        await pilot.pause()
        assert app.is_running
        assert "error: unknown command 'bogus'" in log_text(app)
        await command(pilot, "migratepages 999 0 1")
        assert "error" in log_text(app).splitlines()[-1]
        assert app.is_running


async def test_help_opens_and_closes():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = app.export_screenshot().replace("&#160;", " ")
        assert "app.migrate" in text and "access PID" in text
        from tui.screens.help import commands_renderable
        assert "hook DRIVER on|off" in commands_renderable().plain
        await pilot.press("m")  # keys of the console do nothing under help
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_views_cycle_and_return_to_map():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table(app).select_pid(103)
        view = app.main_screen.query_one("#view")
        await pilot.press("v")
        assert view.display and view.view_name == "/proc/103/numa_maps (java)"
        assert "N0=8192 N2=73728" in view.text
        await pilot.press("v")
        assert view.view_name == "numastat" and "numa_hit" in view.text
        await pilot.press("v")
        assert view.view_name == "zoneinfo" and "Node 0" in view.text
        await pilot.press("v")
        assert view.view_name == "vmstat"
        await pilot.press("v")
        assert not view.display and pagemap(app).display
        await pilot.press("v", "escape")  # escape (or b) goes back to the map
        assert not view.display
        await pilot.press("v", "b")
        assert not view.display and app.focused is pagemap(app)


async def test_zoom_cursor_keys_and_click():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        pm = pagemap(app)
        z0 = pm.zoom
        await pilot.press("plus")
        assert pm.zoom == z0 // 2 and not pm.auto_fit
        await pilot.press("minus")
        assert pm.zoom == z0
        pm.focus()
        await pilot.press("down", "right", "right")
        y, col = pm.cursor_cell()
        assert col == 2 and pm.cursor == int(pm._layout.start[y]) + 2 * pm.zoom
        # click a cell of the first row of node 1
        y1 = int(np.flatnonzero(pm._layout.node == 1)[1])
        await pilot.click("#pagemap", offset=(1 + 8 + 5, 1 + y1))
        await pilot.pause()
        assert pm.cursor_cell() == (y1, 5)
        assert int(app.machine.node_of([pm.cursor])[0]) == 1
        text = app.main_screen.query_one("#inspector").render().plain
        assert f"PFN {pm.cursor:#x}" in text and "node 1" in text
        for _ in range(6):
            await pilot.press("plus")
        assert pm.zoom < z0
        await pilot.press("space")
        assert app.paused
        assert "PAUSED" in app.export_screenshot()
        await pilot.press("space")
        assert not app.paused


async def test_process_table_sort_and_filter():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        t = table(app)
        t.sort_by("rss")
        order = [int(r.key.value) for r in t.ordered_rows]
        rss = {r.pid: r.rss for r in app.view.processes()}
        assert order == sorted(rss, key=lambda p: -rss[p])
        # clicking a header sorts too
        await pilot.click("#processes", offset=(2, 0))
        await pilot.pause()
        assert t.sort_column == "pid"
        assert [int(r.key.value) for r in t.ordered_rows] == sorted(rss)
        await pilot.press("slash", *"java")
        await pilot.pause()
        assert [r.key.value for r in t.ordered_rows] == ["103"]
        app.main_screen.query_one("#filter").value = ""
        await pilot.pause()
        assert t.row_count == len(app.machine.pids)


async def test_command_history_completion_and_load(tmp_path):
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await command(pilot, "numastat")
        await pilot.press("colon", "up")
        assert app.command_input().value == "numastat"
        await pilot.press("down")
        assert app.command_input().value == ""
        await pilot.press(*"migr", "tab")
        assert app.command_input().value == "migratepages "  # a word completed, a space
        await pilot.press("escape")
        preset = ROOT / "saves" / "hotremove-rehearsal.toml"
        if not preset.exists():
            return
        old = app.machine
        await command(pilot, f"load {preset}")
        await pilot.pause()
        assert app.machine is not old and app.machine.name == "hotremove-rehearsal"
        assert app._on_change in app.machine.listeners and app._on_change not in old.listeners
        assert table(app).row_count == len(app.machine.pids)
        assert "hotremove-rehearsal" in app.export_screenshot()


async def test_command_palette_runs_engine_command():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"numastat")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert "> numastat" in log_text(app)
        assert "numa_hit" in log_text(app)


async def test_frame_timer_after_the_screens_are_gone():
    """Regression (a flaky failure of the palette test on a loaded host): the frame
    timer fired once more after exit had popped every screen, and `self.screen` raised
    ScreenStackError out of the app. A tick with no screen left does nothing."""
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
    assert not app.screen_stack
    app._dirty = True
    app._tick()  # raised ScreenStackError


async def test_clock_and_save_keys():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        m = app.machine
        ctl = getattr(m, "clockctl", None)
        if ctl is not None:
            await pilot.press("t")
            assert ctl.paused and "> clock pause" in log_text(app)
            await pilot.press("t")
            assert not ctl.paused
            await pilot.press("less_than_sign")
            assert ctl.mode == "speed" and ctl.speed == 1000
            await pilot.press("less_than_sign", "greater_than_sign", "greater_than_sign")
            assert ctl.mode == "fast"
        # the daemon key: tests/test_console.py
        await pilot.press("ctrl+s")
        assert app.command_input().value == "save snapshots/default.numacon"
        await pilot.press("escape", "ctrl+o")
        assert app.command_input().value == "load saves/"
        assert app.is_running


# ---------------------------------------------------------------- widgets without an app

def test_dominant_matches_counting_every_cell():
    from tui.widgets.pagemap import dominant, frame_classes, pid_table

    m = engine.Machine.default()
    view = MachineView(m)
    lut = pid_table(view)
    for a, b, zoom in [(0, m.nr_frames, 512), (5, m.nr_frames - 7, 4096), (100, 1000, 7),
                       (0, 3, 8)]:
        cls = frame_classes(view, np.arange(a, b), lut)
        n = cls.size
        ncells = -(-n // zoom)
        cell = np.arange(n) // zoom
        counts = np.bincount(cell * NCLASS + cls, minlength=ncells * NCLASS)
        counts = counts.reshape(ncells, NCLASS)
        want = counts.argmax(1)
        sizes = np.minimum(zoom, n - np.arange(0, n, zoom))
        dom, partial = dominant(cls, zoom)
        assert (dom == want).all()
        assert (partial == ((want == C_FREE) & (counts[:, C_FREE] < sizes))).all()


def test_meters_and_legend_text():
    from engine.commands import execute
    from tui.widgets.legend import legend_text
    from tui.widgets.meters import meters_text

    m = engine.Machine.default()
    view = MachineView(m)
    assert execute(m, "migratepages 103 2 0").ok
    hist = view.free_history(10)
    text = meters_text(view.node_stats(), m.page_size, hist).plain
    assert text.count("\n") == len(m.nodes) - 1
    assert "N0" in text and "↓288M" in text  # java's 73728 pages came to node 0
    leg = legend_text(view).plain
    assert "103 java" in leg and "page cache" in leg and "pinned" in leg


# ---------------------------------------------------------------- widgets without an app (map)

def test_pagemap_render_line_without_app():
    m = engine.Machine.default()
    pm = PageMap(MachineView(m))
    pm.relayout(width=80, height=40)
    lines = [pm.render_line(y).text for y in range(len(pm._layout.kind))]
    assert all(len(s) == 80 for s in lines)
    assert lines[0].startswith(" node 0 ")
    assert lines[1].startswith("DMA ")
    assert any(s.startswith(" node 3 ") for s in lines)
    assert any(s.startswith("Movable") for s in lines)
    assert any("•" in s for s in lines)  # trader's mlocked pages
    assert any("◆" in s for s in lines)  # ib_send_bw's pinned pages
    assert len(lines) <= 40
    # one frame per cell: the cursor cell, and a free frame's code
    pm.zoom, pm.auto_fit = 1, False
    pm.relayout(width=80, height=40)
    y, col = pm.cursor_cell()
    assert (y, col) == (1, 0)
    assert pm.render_line(1).text[8] == "+"
    last = m.nr_frames - 1
    assert m.f.kind[last] == 0
    y, col = pm.cell_of(last)
    assert pm._row_codes(y)[col] % NCLASS == C_FREE


def test_distance_grid_readable_at_40_nodes():
    class Fake:  # a topology of 40 nodes
        node_ids = list(range(40))
        a = np.arange(40)
        distances = np.where(a[:, None] == a[None, :], 10,
                             np.where(a[:, None] // 8 == a[None, :] // 8, 16, 32))

    t = distance_text(Fake())
    lines = t.plain.splitlines()
    assert max(len(s) for s in lines) <= 50
    assert len(lines) <= 23
    assert "■10" in t.plain and "■32" in t.plain


def test_completion():
    m = engine.Machine.default()
    view = MachineView(m)
    assert complete(view, "migr") == "migratepages"
    assert complete(view, "migratepages 10") == "migratepages 100"
    assert complete(view, "hook unc") == "hook uncached"
    assert complete(view, "offline 3 Mov") == "offline 3 Movable"
    v = m.process(103).vmas[0]
    assert complete(view, "mlock 103 ") == f"mlock 103 {v.start:x}..{v.end:x}"
    assert complete(view, "zzz") is None


# ---------------------------------------------------------------- the numacon command

def test_cli_run_stops_at_first_error(capsys):
    rc = cli.main(["run", "-c", "ps; bogus; numastat"])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "java" in out and "numa_hit" not in out
    assert "unknown command 'bogus'" in err and "Traceback" not in err


def test_cli_run_script_and_jobs(tmp_path, capsys):
    script = tmp_path / "s.txt"
    script.write_text("# move java home\nmigratepages 103 2 0\nmove_pages 100 all 3 &\n"
                      "wait\nnuma_maps 103\n")
    rc = cli.main(["run", "--script", str(script)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "N0=81920" in out and "done: move_pages: " in out and err == ""


def test_cli_bad_machine_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("this is [not toml")
    assert cli.main([str(bad)]) == 1
    assert cli.main(["run", str(bad), "-c", "ps"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "Traceback" not in err and "bad.toml" in err


def test_cli_hardware_and_missing_subsystems(capsys):
    assert cli.main(["hardware"]) == 0
    assert "available: 4 nodes" in capsys.readouterr().out
    # the benchmark itself runs in tests/test_bench.py (a full run takes minutes)
    assert cli.main(["bench", "--help"]) == 0
    assert "--quick" in capsys.readouterr().out


def test_cli_subprocess_exit_status():
    p = subprocess.run([sys.executable, "-m", "tui.cli", "run", "-c", "ps; bogus"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "PID" in p.stdout
    assert p.stderr.strip().startswith("error: unknown command")
