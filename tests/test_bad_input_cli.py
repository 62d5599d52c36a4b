"""Bad input through the two other front ends (issue 8): the malformed-command corpus
of tests/test_bad_input.py through `numacon run -c` (exit status 1, one line on
stderr, no traceback) and through the console's command line (the app keeps running
and shows the error; the machine is unchanged)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from test_bad_input import CORPUS, fingerprint

import engine
from engine.commands import execute
from tui import cli
from tui.app import NumaConsoleApp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = (160, 50)

# The corpus itself runs once, in tests/test_bad_input.py, against execute(); the
# front ends add only how they report a failed line, so a sample of every sort
# suffices here: unknown, missing and extra arguments, wrong types, huge and negative
# numbers, bad ranges, unknown nodes and pids, unicode, long lines
SAMPLE = ["bogus", "\x00", "🙂 1 2", "move_pages", "kill 1 2", "kill x",
          "mmap 100 1e400", "move_pages 100 ffffffffffffffffffff 1",
          "mbind 100 7efff0000000+4K bind:5-2", "migratepages 100 0 70",
          "migratepages 4242 0 1", "offline 9 Normal", "hook nosuch on",
          'spawn "unterminated', "x" * 5000, "load /nonexistent/file.toml"]
assert all(line in CORPUS for line in SAMPLE)


@pytest.mark.parametrize("line", SAMPLE, ids=[repr(x)[:40] for x in SAMPLE])
def test_numacon_run_malformed_line(line, capsys):
    rc = cli.main(["run", "-c", line])
    out, err = capsys.readouterr()
    assert rc == 1, f"{line!r} was accepted: {out}"
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err and "internal" not in err


def test_numacon_run_malformed_line_real_process():
    line = "move_pages 100 ffffffffffffffffffff 1"
    p = subprocess.run([sys.executable, "-m", "tui.cli", "run", "-c", f"ps; {line}; ps"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert p.stdout.count("PID") == 1  # the first ps ran, the one after the error did not
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("error: address: ")
    assert "Traceback" not in p.stderr


def test_numacon_run_script_stops_at_the_malformed_line(tmp_path, capsys):
    script = tmp_path / "s.txt"
    script.write_text("ps\nkill 99999999999999999999999\nkill 100\n")
    assert cli.main(["run", "--script", str(script)]) == 1
    out, err = capsys.readouterr()
    assert "memcached" in out and err.count("\n") == 1 and "Traceback" not in err


async def test_tui_malformed_lines_keep_app_running_with_error():
    app = NumaConsoleApp(engine.Machine.default())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        m = app.machine
        before = fingerprint(m)
        for line in SAMPLE:
            await pilot.press("colon")
            app.command_input().value = line
            await pilot.press("enter")
            await pilot.pause()
            assert app.is_running, line
            r = app.last_result
            assert not r.ok and r.text.startswith("error: ") and "\n" not in r.text, line
            assert "internal" not in r.text and "Traceback" not in r.text, line
            assert r.text in app.console_log.plain(), line  # the error is shown
        assert app.machine is m and fingerprint(m) == before
        m.check()


# ------------------------------------------------------------------ regressions

def test_console_offline_of_a_missing_zone_is_refused_at_once():
    """Regression (found here): in the console (background=True) `offline 9 Normal`
    answered "job 1 started: offline" and the job failed at its first step; now the
    line is refused at once, as in a script."""
    m = engine.Machine.default()
    for line in ("offline 9 Normal", "offline 0 Nowhere"):
        r = execute(m, line, background=True)
        assert not r.ok and r.text.startswith("error: EINVAL: ") and r.job is None, line
        assert not m.jobs


@pytest.mark.parametrize("line", ["migratepages 100 0 ''", "move_pages 2 all 1",
                                  "move_pages 100 7efff0000000 9", "offline 0 Movable"])
def test_console_background_lines_are_validated_before_the_job_starts(line):
    """Regression (found here): the console checked only the pid before starting a
    job; other argument errors surfaced at the job's first step, after "job N
    started" (fixed in 55368c2: Machine.start runs the call's checks)."""
    m = engine.Machine.default()
    assert not execute(m, line).ok  # a script refuses the line
    r = execute(m, line, background=True)
    try:
        assert not r.ok and r.job is None, r.text  # the console should, too
    finally:
        for j in list(m.jobs):
            j.cancel()
            j.step()
