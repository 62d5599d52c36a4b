"""NumaConsoleApp: the Textual console over a numacon Machine.

Every action (keys, the command line, the command palette) builds a command line and
runs it through engine.commands.execute, so they cannot disagree. Engine listeners
only set a dirty flag; a timer redraws from engine state at a capped rate (FPS), and
no frame of it reads every page: the map samples its cells, and the pages per node of
the processes (model.NodeCounts) are counted a few milliseconds a frame."""

from __future__ import annotations

import errno
import gc
import shlex
import time
from pathlib import Path
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import ModalScreen, Screen
from textual.widgets import Input

import engine
from engine.commands import Result, execute
from engine.nodemask import nodes_str
from engine.views import (
    NodeCounts,
    driver_of_frame,
    find_vma,
    hook_drivers,
    process_pages_per_node,
    summarize_result,
    vma_frames,
)
from tools.sweep import SweepError, read_results

from .palette import EngineCommands
from .screens.confirm import ConfirmScreen
from .screens.help import HelpScreen
from .screens.main import MainScreen, Selection
from .screens.process import ProcessScreen
from .screens.sweep import SweepScreen
from .widgets.consolelog import ConsoleLog
from .widgets.pagemap import PageMap

HERE = Path(__file__).parent
VIEWS = ("numa_maps", "numastat", "zoneinfo", "vmstat")
FPS = 15  # redraw cap (frames per second)
COUNT_BUDGET = 0.004  # seconds of page counting (NodeCounts) a frame may spend
COUNT_PERIOD = 0.5  # while jobs run, pages per node are counted afresh this often


def _css_paths() -> list[Path]:
    paths = [HERE / "app.tcss"]
    for sub in ("widgets", "screens"):
        paths += sorted((HERE / sub).glob("*.tcss"))
    return paths


class NumaConsoleApp(App):
    """The numacon console. `machine` is the engine Machine it shows."""

    TITLE = "numacon"
    CSS_PATH = _css_paths()
    COMMANDS = App.COMMANDS | {EngineCommands}
    BINDINGS = [
        Binding("colon", "command_line", "Command", id="app.command", key_display=":"),
        Binding("question_mark", "help", "Help", id="app.help", key_display="?"),
        Binding("m", "migrate", "Migrate", id="app.migrate"),
        Binding("l", "mlock", "mlock", id="app.mlock"),
        Binding("h", "hook", "Hook", id="app.hook"),
        Binding("o", "offline", "Offline", id="app.offline"),
        Binding("O", "online", "Online", id="app.online", show=False),
        Binding("c", "cancel_job", "Cancel job", id="app.cancel"),
        Binding("v", "view", "View", id="app.view"),
        # priority: the zoom acts as soon as the app reads the key, not after it has been
        # handed to the focused widget and back (each hand-over waits its turn behind the
        # frame timer and running jobs); check_action leaves the key to a focused Input
        Binding("plus,equals_sign", "zoom(1)", "Zoom in", id="app.zoom_in", key_display="+",
                priority=True),
        Binding("minus", "zoom(-1)", "Zoom out", id="app.zoom_out", key_display="-",
                priority=True),
        Binding("space", "pause", "Pause", id="app.pause"),
        Binding("t", "clock_pause", "Clock", id="app.clock_pause", show=False),
        Binding("greater_than_sign", "clock_speed(1)", "Faster", id="app.clock_faster",
                show=False, key_display=">"),
        Binding("less_than_sign", "clock_speed(-1)", "Slower", id="app.clock_slower",
                show=False, key_display="<"),
        Binding("d", "daemon", "Daemon", id="app.daemon", show=False),
        Binding("b,escape", "back", "Back", id="app.back", show=False, key_display="b"),
        Binding("ctrl+s", "save", "Save", id="app.save", show=False),
        Binding("ctrl+o", "load", "Load", id="app.load", show=False),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(self, machine: Any = None, *, sweep: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self._sweep_path = sweep  # results to open at start (numacon sweep --show FILE.csv)
        self.machine: Any = None
        self.paused = False
        self.history: list[str] = []
        self.view_index = -1  # -1: the map; else an index into VIEWS
        self.last_result: Result | None = None
        self.save_path: str | None = None
        self._dirty = True
        self._counted_at = 0.0  # when the last count of pages per node was asked for
        self.node_counts: NodeCounts  # the machine's pages per node, counted a bit a frame
        self._watch: dict[int, Any] = {}
        self._return_focus: Any = None
        self._adopt(machine if machine is not None else engine.Machine.default())

    # ------------------------------------------------------------ machine
    def _adopt(self, m: Any) -> None:
        old = self.machine
        if old is not None:
            if self._on_change in old.listeners:
                old.listeners.remove(self._on_change)
            for j in list(getattr(old, "jobs", [])):
                j.cancel()
        self.machine = m
        self.node_counts = NodeCounts(m)
        m.listeners.append(self._on_change)
        self._dirty = True

    def _on_change(self, m: Any = None) -> None:
        self._dirty = True
        self.node_counts.stale()

    def mark_dirty(self) -> None:
        self._dirty = True

    def set_machine(self, m: Any) -> None:
        """Adopt a new machine (after `load`): rebind listeners and every view."""
        self._thaw_gc()  # the old machine may be garbage now
        self.call_after_refresh(self._freeze_gc)
        self._adopt(m)
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.view_index = -1
        main = self.main_screen
        main.show_view(None)
        main.set_machine(m)

    @property
    def main_screen(self) -> MainScreen:
        return self.screen_stack[0]  # type: ignore[return-value]

    @property
    def console_log(self) -> ConsoleLog:
        return self.main_screen.query_one("#log", ConsoleLog)

    def get_default_screen(self) -> Screen:
        return MainScreen()

    def on_mount(self) -> None:
        self.set_interval(1 / FPS, self._tick, name="redraw")
        self.call_after_refresh(self._freeze_gc)
        if self._sweep_path is not None:
            r = self.open_sweep(self._sweep_path)
            if not r.ok:
                self.console_log.result(r.text, False)

    # ------------------------------------------------------------ the garbage collector
    # The objects of a started console (widgets, styles, the machine) live as long as it
    # does. The cyclic GC's full collections would walk them all (40-70 ms with a large
    # machine) at random moments, keys and frames waiting meanwhile: once the console
    # stands, they are frozen out of its reach (gc.freeze), and thawed when the console
    # ends or adopts another machine, so that they can still be collected then.
    _gc_frozen = False

    def _freeze_gc(self) -> None:
        gc.collect()  # what is garbage already goes first: frozen, it would stay
        gc.freeze()
        self._gc_frozen = True

    def _thaw_gc(self) -> None:
        if self._gc_frozen:
            gc.unfreeze()
            self._gc_frozen = False

    def on_unmount(self) -> None:
        self._thaw_gc()

    # ------------------------------------------------------------ the frame timer
    def _tick(self) -> None:
        try:
            self._check_jobs()
        except NoMatches:  # the screen is being torn down (exit)
            return
        if self.paused:
            return
        m = self.machine
        counts = self.node_counts
        if getattr(m, "jobs", None):
            self._dirty = True
            now = time.monotonic()
            if now - self._counted_at >= COUNT_PERIOD:
                self._counted_at = now
                counts.stale()
        if counts.busy and counts.step(COUNT_BUDGET):
            self._dirty = True  # a count ended: the slow parts show it
        if not self._dirty:
            return
        self._dirty = False
        scr = self.screen
        if hasattr(scr, "refresh_from_machine") and scr.is_attached:
            try:
                with self.batch_update():
                    scr.refresh_from_machine(m)
            except NoMatches:  # the screen is being torn down (exit)
                pass

    def redraw_now(self) -> None:
        """Redraw everything at once (tests, and after a pause)."""
        scr = self.screen
        if hasattr(scr, "refresh_from_machine"):
            scr.refresh_from_machine(self.machine, slow=True)

    def _check_jobs(self) -> None:
        """Log the outcome of jobs this console started, once they finish."""
        for jid, job in list(self._watch.items()):
            if not job.finished:
                continue
            del self._watch[jid]
            text, ok = job_outcome(job)
            self.console_log.result(text, ok)
            if hasattr(self.screen, "show_result"):
                self.screen.show_result(ok, text)
            self._dirty = True

    # ------------------------------------------------------------ commands
    def run_command(self, line: str) -> Result:
        """Run one command line through engine.commands.execute; log it and its result."""
        log = self.console_log
        log.command(line)
        # `sweep FILE.csv` opens results in a screen: a console view, not an engine command
        r = self.sweep_command(line) if line.split(None, 1)[:1] == ["sweep"] else \
            execute(self.machine, line, background=True)
        self.last_result = r
        log.result(r.text, r.ok)
        if r.job is not None:
            self._watch[r.job.id] = r.job
        if hasattr(self.screen, "show_result"):
            self.screen.show_result(r.ok, r.text)
        words = line.split()
        if r.ok and len(words) == 2 and words[0] in ("save", "load"):
            self.save_path = words[1]
        if r.machine is not None:
            self.set_machine(r.machine)
        if not r.ok:
            self.bell()
        self._dirty = True
        self.node_counts.stale()
        return r

    def command_input(self) -> Input | None:
        try:
            return self.screen.query_one("#command", Input)
        except Exception:  # noqa: BLE001 - a modal has none
            return None

    def focus_command(self) -> Input | None:
        """Focus the command line, remembering where to come back to after Enter."""
        inp = self.command_input()
        if inp is None:
            return None
        if self.focused is not inp:
            self._return_focus = self.focused
        inp.focus()
        return inp

    def prefill_command(self, text: str, hint: str = "") -> None:
        """Put a command on the command line for the user to finish and run."""
        inp = self.focus_command()
        if inp is None:
            return
        inp.value = text
        inp.cursor_position = len(text)
        if hint:
            self.console_log.info(hint)
            if hasattr(self.screen, "show_result"):
                self.screen.show_result(True, hint)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "command":
            return
        line = event.value.strip()
        inp = event.input
        inp.value = ""
        if hasattr(inp, "remember"):
            inp.remember(line)
        if line:
            back = self._return_focus
            self._return_focus = None
            if back is not None and back.is_attached and back.screen is self.screen:
                back.focus()
            self.run_command(line)

    def open_sweep(self, path: str) -> Result:
        """The sweep screen on the results of `numacon sweep` at path (a CSV file)."""
        try:
            r = Result(True, f"sweep results {path}", value=read_results(path))
        except SweepError as e:
            return Result(False, f"error: {e}")
        self.push_screen(SweepScreen(r.value))
        return r

    def sweep_command(self, line: str) -> Result:
        """`sweep FILE.csv` on the command line."""
        try:
            words = shlex.split(line)
        except ValueError as e:
            return Result(False, f"error: cannot split the line: {e}")
        if len(words) != 2:
            return Result(False, "error: usage: sweep FILE.csv (results of numacon sweep)")
        return self.open_sweep(words[1])

    # ------------------------------------------------------------ helpers
    def selection(self) -> Selection:
        scr = self.screen
        if hasattr(scr, "selection"):
            return scr.selection()
        return Selection()

    def open_process(self, pid: int, addr: int | None = None) -> None:
        """Drill into a process; with `addr`, its VMA holding addr is selected."""
        if pid in self.machine.procs:
            self.push_screen(ProcessScreen(pid, addr))

    def show_vma_on_map(self, pid: int, start: int) -> None:
        v = find_vma(self.machine, pid, start)
        while len(self.screen_stack) > 1:
            self.pop_screen()
        if v is None:
            return
        pm = self.main_screen.query_one("#pagemap", PageMap)
        pfns = vma_frames(v)
        pfns = pfns[pfns != self.machine.zero_pfn]
        pm.set_hilite(pfns)
        self.main_screen.show_view(None)
        if pfns.size:
            pm.move_to(int(pfns.min()))
        self.console_log.info(f"pid {pid} VMA {v.start:x}-{v.end:x}: {pfns.size} pages "
                              f"marked ■ on the map (b clears)")

    def refresh_view(self) -> None:
        if self.view_index < 0:
            return
        name = VIEWS[self.view_index]
        line = name
        if name == "numa_maps":
            pid = self.main_screen.selection().pid
            if pid is None:
                self.main_screen.show_view(name, "select a process in the table first", False)
                return
            line = f"numa_maps {pid}"
        r = execute(self.machine, line)
        self.main_screen.show_view(line, r.text, r.ok)

    def binding_groups(self) -> list[tuple[str, list[Binding]]]:
        groups: list[tuple[str, list[Binding]]] = [("everywhere", list(self.BINDINGS))]
        groups.append(("main", list(MainScreen.BINDINGS)))
        groups.append(("map", list(PageMap.BINDINGS)))
        groups.append(("process", list(ProcessScreen.BINDINGS)))
        groups.append(("sweep", list(SweepScreen.BINDINGS)))
        from .widgets.cmdline import CommandLine

        groups.append(("command line", list(CommandLine.BINDINGS)))
        return groups

    # ------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if isinstance(self.screen, ModalScreen) and action not in ("quit", "help"):
            return False
        allowed = getattr(self.screen, "APP_ACTIONS", None)
        if allowed is not None and action not in allowed:
            return False
        if isinstance(self.screen, ProcessScreen) and action in ("zoom", "view", "offline",
                                                                  "online"):
            return False
        if action == "zoom" and isinstance(self.focused, Input):
            return False  # + and - are text there
        return True

    def action_command_line(self) -> None:
        self.focus_command()

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
        else:
            # installed once: opening it again reuses its layout and rendered lines
            if not self.is_screen_installed("help"):
                self.install_screen(HelpScreen(self.binding_groups()), "help")
            self.push_screen("help")

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.redraw_now()
        scr = self.screen
        if self.paused and hasattr(scr, "query_one"):
            from .widgets.titlebar import TitleBar

            for tb in scr.query(TitleBar):
                tb.show(self.machine, True)

    def action_back(self) -> None:
        if len(self.screen_stack) > 1 and not isinstance(self.screen, ModalScreen):
            self.pop_screen()
            return
        main = self.main_screen
        if self.view_index >= 0:
            self.view_index = -1
            main.show_view(None)
            return
        pm = main.query_one("#pagemap", PageMap)
        if pm.hilite is not None:
            pm.set_hilite(None)
            self.console_log.info("VMA marks cleared")

    def action_zoom(self, direction: int) -> None:
        pm = self.main_screen.query_one("#pagemap", PageMap)
        if direction > 0:
            pm.zoom_in()
        else:
            pm.zoom_out()
        self.main_screen.update_inspector()
        self.main_screen.update_legend()

    def action_view(self) -> None:
        self.view_index += 1
        if self.view_index >= len(VIEWS):
            self.view_index = -1
            self.main_screen.show_view(None)
            return
        self.refresh_view()

    def action_migrate(self) -> None:
        sel = self.selection()
        m = self.machine
        if isinstance(self.screen, ProcessScreen):
            if sel.vma is None:
                self.console_log.result("select a VMA first", False)
                return
            a, b = sel.vma
            self.prefill_command(f"move_pages {sel.pid} {a:x}..{b:x} ",
                                 f"move VMA {a:x}-{b:x} of pid {sel.pid}: type the target "
                                 f"node ({nodes_str(m.nodes)}) and press enter")
            return
        if sel.pid is None or sel.pid not in m.procs:
            self.console_log.result("select a process in the table first", False)
            return
        p = m.process(sel.pid)
        per = process_pages_per_node(m, p)
        src = [n for n, c in zip(m.nodes, per) if c] or list(m.nodes)
        self.prefill_command(f"migratepages {sel.pid} {nodes_str(src)} ",
                             f"migrate {p.name} (pid {sel.pid}) from nodes {nodes_str(src)}: "
                             f"type the target node(s) and press enter")

    def action_mlock(self) -> None:
        sel = self.selection()
        if sel.vma is None or sel.vma_pid is None:
            self.console_log.result("put the map cursor on a process's page, or open a "
                                    "process and select a VMA", False)
            return
        v = find_vma(self.machine, sel.vma_pid, sel.vma[0])
        if v is None:
            return
        verb = "munlock" if v.locked else "mlock"
        self.run_command(f"{verb} {sel.vma_pid} {v.start:x}..{v.end:x}")

    def action_hook(self) -> None:
        m = self.machine
        drivers = hook_drivers(m)
        if not drivers:
            self.console_log.result("this machine has no PFN-map driver", False)
            return
        sel = self.selection()
        name = driver_of_frame(m, sel.pfn) if sel.pfn is not None else None
        state = dict(drivers)
        if name not in state:
            name = drivers[0][0]
        self.run_command(f"hook {name} {'off' if state[name] else 'on'}")

    def action_offline(self) -> None:
        z = self.main_screen.zone_under_cursor()
        if z is None:
            return
        r = self.run_command(f"offline {z.node} {z.name} --dry-run")
        if not r.ok:
            return
        line = f"offline {z.node} {z.name}"

        def done(yes: bool | None) -> None:
            if yes:
                self.run_command(line)
            else:
                self.console_log.info("offline cancelled")

        self.push_screen(ConfirmScreen(f"rehearsal: {line} --dry-run", r.text,
                                       f"o / y / enter: {line}    escape / n: cancel"), done)

    def action_online(self) -> None:
        z = self.main_screen.zone_under_cursor()
        if z is not None:
            self.run_command(f"online {z.node} {z.name}")

    def action_cancel_job(self) -> None:
        jobs = list(getattr(self.machine, "jobs", []))
        if not jobs:
            self.console_log.result("no running job", False)
            return
        self.run_command(f"cancel {max(jobs, key=lambda j: j.id).id}")

    def action_clock_pause(self) -> None:
        ctl = getattr(self.machine, "clockctl", None)
        if ctl is None:
            self.console_log.result("this engine has no clock control", False)
            return
        self.run_command("clock resume" if ctl.paused else "clock pause")

    def action_clock_speed(self, step: int) -> None:
        """Walk the ladder 0.001x .. 1000x real time, and 'fast' (as fast as possible)."""
        ctl = getattr(self.machine, "clockctl", None)
        if ctl is None:
            self.console_log.result("this engine has no clock control", False)
            return
        ladder = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, None]  # None = fast
        cur = None if getattr(ctl, "mode", "fast") != "speed" else float(ctl.speed)
        i = len(ladder) - 1 if cur is None else min(
            range(len(ladder) - 1), key=lambda k: abs(ladder[k] - cur))  # type: ignore[operator]
        i = min(max(0, i + step), len(ladder) - 1)
        x = ladder[i]
        self.run_command("clock fast" if x is None else f"clock speed {x:g}")

    def action_daemon(self) -> None:
        """Start the automatic-migration daemon on the selected process, or stop it."""
        running = [d for d in self.machine.daemons if d.state == "running"]
        if running:
            self.run_command("daemon stop")
            return
        pid = self.selection().pid
        if pid is None:
            self.console_log.result("select a process first", False)
            return
        self.run_command(f"daemon start {pid}")

    def action_save(self) -> None:
        path = self.save_path or f"{getattr(self.machine, 'name', 'machine')}.snapshot.toml"
        self.prefill_command(f"save {path}", "enter saves (edit the path first if you like)")

    def action_load(self) -> None:
        path = self.save_path or "saves/"
        self.prefill_command(f"load {path}", "type a description or snapshot path, enter loads")


def job_outcome(job: Any) -> tuple[str, bool]:
    """(one line, ok) for a finished job."""
    head = f"job {job.id} {job.name} {job.state}: {job.done}/{job.total} pages"
    err = job.error
    if job.state == "done":
        return head + (f"; {summarize_result(job.result)}" if job.result is not None else ""), True
    if isinstance(err, OSError) and err.errno is not None:
        msg = f"{errno.errorcode.get(err.errno, err.errno)}: {err.strerror or err}"
    else:
        msg = str(err) if err is not None else job.state
    if job.state == "cancelled":
        return f"{head} ({msg})", True
    return f"error: {head}: {msg}", False
