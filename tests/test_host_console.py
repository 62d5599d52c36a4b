"""`numacon host`: the console on the live host (issue 16, phase 2). Driven headless at
160x50 under Textual's pilot, on this host (one node; /proc/kpageflags readable when
the tests run as root) and on the synthetic two-node host of tests/test_host.py (a
fake root, exact numbers): the map from kpageflags or the sentence that says why not,
the refresh policy told what the table shows, the refresh keys, the simulator's keys
that mean nothing here, and actions: rehearsed in the simulator and shown in a
dialog, refused without --allow-actions, applied only on their own key, predicted
against actual."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
from test_host import LINUX, Clock, fake_root, kpf, stat_line, status
from test_host_actions import NR, Pages

from engine.constants import K_ANON
from engine.host import Host, host_execute
from engine.host import views as host_views
from engine.host.kpage import C_ANON as C_ANON_
from engine.host.kpage import C_FREE as C_FREE_
from engine.host.kpage import KPF
from engine.nodemask import nodes_str
from tui import cli
from tui.app import NOT_ON_HOST
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.rehearsal import RehearsalScreen
from tui.widgets import cmdline
from tui.widgets.pagemap import C_ANON, C_FILE, C_FREE, C_KERNEL, C_OFFLINE, M_MLOCK, NCLASS, NMARK

SIZE = (160, 50)
KPAGEFLAGS_READABLE = os.access("/proc/kpageflags", os.R_OK)
needs_linux = pytest.mark.skipif(not LINUX, reason="needs Linux with NUMA sysfs")
needs_calls = pytest.mark.skipif(
    NR is None or not LINUX, reason="needs Linux with NUMA support on x86_64 or aarch64")


async def settle(app, pilot) -> None:
    """Let the threads the console started (host reading, commands, the inspector)
    finish, and their results reach the screen."""
    # a worker's result may start another (a refresh, then the inspector's read):
    # settled when a pass finds none running, bounded by passes, not by time
    for _ in range(20):
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not any(w.is_running for w in app.workers):
            break


def text_of(app, wid: str) -> str:
    return app.screen.query_one(wid).render().plain


def cell(t, row: str, col: str) -> str:
    c = t.get_cell(row, col)
    return c.plain if hasattr(c, "plain") else c.text


def map_codes(pm) -> set[int]:
    return {int(c) for y in pm._visible_cell_rows() for c in pm._row_codes(y)}


@pytest.fixture
def fake(tmp_path):
    return fake_root(tmp_path)


@pytest.fixture
def pages():
    p = Pages()
    yield p
    p.close()


# ------------------------------------------------------------------ engine side

def test_host_counts_stale_reads_the_watched_only_once(fake):
    """stale() (the console ran a command) makes the system files and the watched
    processes due; the host's own report that a step read them (its listeners, which
    call stale() from inside the step) is not news; the frame map's pass counts as
    due work (busy)."""
    c = Clock()
    h = Host(fake, clock=c)
    counts = host_views.NodeCounts(h)
    h.listeners.append(lambda m: counts.stale())  # as the console's listener does
    assert counts.busy
    counts.run()
    assert not counts.busy and h.procs[100].vmas_read == 100.0
    host_views.view_for(h).watch([200], 200)
    assert (h.refresh.visible, h.refresh.selected) == ({200}, 200)
    c.t = 101.0
    counts.stale()
    assert counts.busy
    assert counts.step(10)
    assert h.procs[200].vmas_read == 101.0 and h.procs[100].vmas_read == 100.0
    assert h.refresh.last["system"] == 101.0
    assert not counts.busy  # the step's own listener call did not poke it again
    c.t = 100.0 + h.refresh.rates.frames
    assert counts.busy  # the frame map's next pass is due


def test_frame_map_readers_never_wait_for_a_re_read(fake):
    """The map and the inspector read the cache whatever its age; the counting pass
    re-reads chunks older than the frame period (so a reader never waits for a
    re-read, and the pass keeps the cache fresh)."""
    c = Clock()
    h = Host(fake, clock=c)
    fm = h.frames
    assert fm.kinds(4096, 4097).tolist() == [K_ANON]
    words = np.fromfile(os.path.join(fake, "proc/kpageflags"), np.uint64)
    words[4096] = kpf("buddy")
    words.tofile(os.path.join(fake, "proc/kpageflags"))
    c.t += 10 * fm.max_age
    assert host_views.frame_classes(h, 4096, 4097).tolist() == [C_ANON_]  # cached
    fm.run()
    assert host_views.frame_classes(h, 4096, 4097).tolist() == [C_FREE_]  # the pass re-read
    assert fm.gather(np.array([[4096, 4097], [-1, 1 << 30]]), 0, 99).tolist() == \
        [[C_FREE_, C_ANON_], [99, 99]]


def test_refresh_faster_slower_and_one_row(fake):
    h = Host(fake)
    assert host_execute(h, "refresh faster").text.startswith(
        "refresh: watched processes (0) every 1s, others (3) every 15s, system every 1s, "
        "frame map every 5s")
    assert h.frames.max_age == 5.0
    host_execute(h, "refresh slower")
    host_execute(h, "refresh slower")
    assert (h.refresh.rates.watched, h.refresh.rates.others, h.frames.max_age) == (4, 60, 20)
    r = host_execute(h, "refresh faster watched=1")
    assert not r.ok and r.text == ("error: refresh: say faster, slower, or the periods, one "
                                   "of them")
    assert h.refresh.rates.watched == 4
    v = host_views.view_for(h)
    rows = {r.pid: r for r in v.processes()}
    one = v.process(200)
    assert (one.rss, one.per_node.tolist(), one.policy) == \
        (rows[200].rss, rows[200].per_node.tolist(), rows[200].policy) == (7168, [0, 7168],
                                                                             "default")
    assert v.process(4242) is None
    assert v.refresh_info().watched == 4 and v.status().live and v.status().read_only


# ------------------------------------------------------------------ the synthetic host

async def test_console_on_the_fake_host_at_160x50(fake):
    """The fake host's numbers exactly: the table from numa_maps, the map from its
    kpageflags (free, anon, page cache, kernel, offline, the mlocked mark), the
    inspector's class, flags, map count and (hidden) owner; the refresh keys halve and
    double the periods the title shows; the simulator's keys say in one line that
    they mean nothing here; help lists the host's commands."""
    app = cli.host_app(False, root=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        t = app.main_screen.query_one("#processes")
        assert [cell(t, "100", c) for c in ("N0", "N1", "policy")] == \
            ["8448", "8192", "interleave:0-1"]
        assert cell(t, "200", "N1") == "7168"
        title = text_of(app, "#titlebar")
        assert "live host (Linux " in title and "read-only" in title
        assert "refresh 2s shown, 30s others: " in title
        pm = app.main_screen.query_one("#pagemap")
        assert pm.unavailable is None
        codes = map_codes(pm)
        assert {C_FREE, C_ANON, C_FILE, C_KERNEL, C_OFFLINE} <= {c % NCLASS for c in codes}
        assert M_MLOCK in {(c // NCLASS) % NMARK for c in codes}
        assert "anon" in text_of(app, "#legend")
        pm.move_to(65700)
        await settle(app, pilot)
        ins = text_of(app, "#inspector")
        for want in ("PFN 0x100a4 (65700)", "node 1", "zone Normal", "block memory2 online",
                     "class huge", "flags anon,compound_head,thp", "mapcount 1",
                     "owner hidden (pagemap shows PFNs to CAP_SYS_ADMIN only)"):
            assert want in ins, want
        # the table's rows are what the refresh policy reads often
        app.redraw_now()
        assert app.machine.refresh.visible == {100, 200, 300}
        t.focus()
        t.select_pid(200)
        await settle(app, pilot)
        assert app.machine.refresh.selected == 200
        # ] and [: every period halved, doubled (the refresh command in a thread)
        await pilot.press("right_square_bracket")
        await settle(app, pilot)
        r = app.machine.refresh.rates
        assert (r.watched, r.others, r.system, r.frames) == (1, 15, 1, 5)
        assert app.console_log.entries[-2:][0] == "> refresh faster"
        await pilot.press("left_square_bracket", "left_square_bracket")
        await settle(app, pilot)
        assert (r.watched, r.others) == (4, 60)
        app.redraw_now()
        assert "refresh 4s shown, 60s others: " in text_of(app, "#titlebar")
        # keys of the simulator: one line each, nothing else happens
        t.select_pid(100)
        for key, what in (("u", "undo"), ("t", "clock"), ("F", "clock"),
                          ("greater_than_sign", "clock"), ("o", "offline"), ("d", "daemon"),
                          ("h", "hook"), ("ctrl+s", "save")):
            await pilot.press(key)
            await settle(app, pilot)
            assert app.console_log.entries[-1] == NOT_ON_HOST[what], key
            assert isinstance(app.screen, MainScreen)
        # m: the simulator's migrate key, the host's command line
        await pilot.press("m")
        assert app.command_input().value == f"migratepages 100 {nodes_str([0, 1])} "
        await pilot.press("escape")
        # Tab completes the host's commands, not the simulator's
        await pilot.press("colon")
        app.command_input().value = "re"
        await pilot.press("tab")
        assert app.command_input().value in ("refresh ", "rehearse ", "re")
        assert "spawn" not in cmdline.candidates(app.view, [""], 0, app.command_registry)
        assert {"rehearse", "apply", "frames"} <= set(
            cmdline.candidates(app.view, [""], 0, app.command_registry))
        await pilot.press("escape")
        await pilot.press("question_mark")
        await settle(app, pilot)
        assert isinstance(app.screen, HelpScreen)
        helptext = app.screen.query_one("#help-commands Static").render().plain
        assert "apply N" in helptext and "rehearse move_pages" in helptext
        assert "mmap PID" not in helptext.split("not on the host")[0]


async def test_unreadable_process_shows_no_wrong_node_count(fake):
    """A process whose numa_maps cannot be read (another user's, without
    CAP_SYS_PTRACE; here: no maps files at all) shows its VmRSS and "-" in the node
    columns and LOCAL, never a count of 0 pages (issue 13: a table never shows a
    wrong number), at 160x50 and at 80x24 (the top-node column)."""
    d = os.path.join(fake, "proc/400")
    os.makedirs(d)
    with open(os.path.join(d, "status"), "w") as fh:
        fh.write(status("secret", 0, rss_kb=2048))
    with open(os.path.join(d, "stat"), "w") as fh:
        fh.write(stat_line(400, "secret", 1))
    for size, cols in ((SIZE, ("N0", "N1")), ((80, 24), ("N0", "N1"))):
        app = cli.host_app(False, root=fake)
        async with app.run_test(size=size) as pilot:
            await settle(app, pilot)
            assert app.machine.procs[400].vmas_error
            t = app.main_screen.query_one("#processes")
            if t.mode[1] in ("bar", "top"):
                cols = ("top",)
            assert [cell(t, "400", c) for c in (*cols, "local")] == ["-"] * (len(cols) + 1)
            assert cell(t, "400", "rss") == "2.0M"
            assert cell(t, "100", "N0") == "8448"  # a readable one keeps its numbers


async def test_map_says_why_without_kpageflags(fake, tmp_path):
    """An unreadable kpageflags (here a path that does not exist): the map's place
    shows the one sentence that says why, the legend too; the table, the inspector's
    node, zone and block, and the commands work."""
    bad = str(tmp_path / "no" / "kpageflags")
    app = cli.host_app(False, root=fake, kpageflags=bad)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        why = app.view.frames_unavailable()
        assert why.startswith(f"cannot read {bad}: No such file or directory")
        pm = app.main_screen.query_one("#pagemap")
        assert pm.unavailable == why and pm.border_title == "page frames · not available here"
        shown = " ".join(pm.render_line(y).text.strip() for y in range(pm.size.height))
        assert " ".join(shown.split()) == why
        assert text_of(app, "#legend") == why
        assert cell(app.main_screen.query_one("#processes"), "100", "N0") == "8448"
        pm.move_to(4100)
        await settle(app, pilot)
        ins = text_of(app, "#inspector")
        assert "node 0" in ins and "zone Normal" in ins and f"flags {why}" in ins
        app.run_command("numastat")
        await settle(app, pilot)
        assert app.console_log.entries[-1].split()[:2] == ["node0", "node1"]


# ------------------------------------------------------------------ this host

@needs_linux
async def test_numacon_host_on_this_host_at_160x50():
    """The real host: the title, this process in the table, the map from
    /proc/kpageflags (root) or the sentence why not, the inspector's kpageflags word
    as the file has it."""
    app = cli.host_app(False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert "refresh 2s shown, 30s others" in text_of(app, "#titlebar")
        t = app.main_screen.query_one("#processes")
        pid = os.getpid()
        comm = open("/proc/self/comm").read().strip()
        assert cell(t, str(pid), "name") == comm
        assert app.view.process(pid).name == comm
        app.redraw_now()
        assert app.machine.refresh.visible == set(t.visible_pids()) != set()
        pm = app.main_screen.query_one("#pagemap")
        if not KPAGEFLAGS_READABLE:
            assert pm.unavailable is not None and "kpageflags" in pm.unavailable
            return
        assert pm.unavailable is None
        assert C_FREE in {c % NCLASS for c in map_codes(pm)}
        # a reserved frame's word does not change: the inspector shows the file's
        z = next(z for z in app.machine.zones if z.spanned)
        pfn = z.start_pfn
        fd = os.open("/proc/kpageflags", os.O_RDONLY)
        try:
            word = int(np.frombuffer(os.pread(fd, 8, pfn * 8), np.uint64)[0])
        finally:
            os.close(fd)
        pm.move_to(pfn)
        await settle(app, pilot)
        ins = text_of(app, "#inspector")
        assert f"PFN {pfn:#x} ({pfn})" in ins
        if word & (1 << KPF["reserved"]):
            assert f"kpageflags {word:#018x}" in ins and "class reserved" in ins


@needs_calls
async def test_host_action_read_only_is_refused_after_the_rehearsal(pages):
    """Without --allow-actions: the migrate key's line and a typed move_pages are
    rehearsed and shown; the dialog says actions are off and offers nothing to
    confirm (y does nothing); the pages stay where they were."""
    pid = os.getpid()
    before = pages.kernel(None, 0)
    app = cli.host_app(False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        t = app.main_screen.query_one("#processes")
        t.focus()
        t.select_pid(pid)
        await pilot.press("m")
        line = app.command_input().value
        assert line.startswith(f"migratepages {pid} ")
        await pilot.press("0", "enter")
        await settle(app, pilot)
        scr = app.screen
        assert isinstance(scr, RehearsalScreen) and scr.confirm is None
        assert scr.title_text.startswith(f"rehearsal 1: migrate_pages on pid {pid} (")
        assert scr.prompt().plain.startswith("actions are off: the host is open read-only")
        body = scr.query_one("#rehearsal-text").render().plain.splitlines()
        assert body[0].startswith(f"rehearse migrate_pages on pid {pid} (")
        assert body[-1] == ("actual: not run (refused: the host is open read-only; pass "
                            "--allow-actions to let numacon change it)")
        await pilot.press("y", "enter")
        await settle(app, pilot)
        assert scr.state == "rehearsed" and app.screen is scr
        await pilot.press("escape")
        await settle(app, pilot)
        assert isinstance(app.screen, MainScreen)
        assert app.console_log.entries[-1] == "rehearsal closed: nothing was applied to the host"
        r = host_execute(app.machine, f"move_pages {pid} {pages.range} 0")
        assert not r.ok and r.review.startswith("rehearsal 2: move_pages") and r.confirm is None
        r = host_execute(app.machine, "apply 2")
        assert not r.ok and r.text.startswith("error: apply 2: no rehearsal 2 is waiting")
    assert pages.kernel(None, 0) == before


@needs_calls
async def test_host_move_pages_rehearsed_confirmed_and_compared(pages):
    """With --allow-actions: move_pages of this test's own pages to node 0 is rehearsed
    and shown; Enter does not confirm it; y makes the real call in a thread, and the
    dialog shows predicted against actual with the kernel's own statuses; the log keeps
    both; a rehearsal applies once."""
    pid = os.getpid()
    app = cli.host_app(True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert "actions allowed" in text_of(app, "#titlebar")
        app.run_command(f"move_pages {pid} {pages.range} 0")
        await settle(app, pilot)
        scr = app.screen
        assert isinstance(scr, RehearsalScreen) and scr.confirm == "apply 1"
        body = scr.query_one("#rehearsal-text").render().plain.splitlines()
        comm = open("/proc/self/comm").read().strip()
        assert body[0] == (f"rehearse move_pages on pid {pid} ({comm}): 4 pages -> node(s) "
                           f"0, MPOL_MF_MOVE")
        assert body[-1] == "actual: not run (waiting for confirmation: apply 1)"
        assert app.console_log.entries[-1].endswith(
            "shown in the dialog; y applies it, escape cancels")
        await pilot.press("enter")  # the key that submitted the line: not a confirmation
        await settle(app, pilot)
        assert scr.state == "rehearsed" and app.machine.pending[0] == 1
        await pilot.press("y")
        await settle(app, pilot)
        assert scr.state == "applied" and app.machine.pending is None
        r = scr.applied
        assert r.ok and r.review.startswith("applied 1: move_pages on pid ")
        st = r.value.actual.call
        assert (st.ret, st.status.tolist()) == pages.kernel([0] * 4, 2)  # Linux's answer
        text = scr.query_one("#rehearsal-text").render().plain.splitlines()
        assert text[0] == body[0]
        assert any(ln.split() == ["predicted", "actual"] for ln in text)
        assert text[-1].startswith("time: the call took ")
        assert any(ln.startswith(("matched:", "differs:")) for ln in text)
        assert app.console_log.entries[-2] == "> apply 1"
        assert app.console_log.entries[-1].splitlines() == text
        await pilot.press("escape")
        await settle(app, pilot)
        assert isinstance(app.screen, MainScreen)
        assert host_execute(app.machine, "apply 1").text.startswith(
            "error: apply 1: no rehearsal 1 is waiting")
    if st.status.tolist()[1] == -errno.ENOENT:  # never touched: still not present
        assert pages.kernel(None, 0)[1][1] == -errno.ENOENT
