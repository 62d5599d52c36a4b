"""NumaConsoleApp: the Textual console over a numacon Machine.

Every action (keys, the command line, the command palette) builds a command line and
runs it through engine.commands.execute, so they cannot disagree; everything drawn
comes from the view API (engine.views.MachineView, `app.view`), never from the
machine's frame arrays or page tables. Engine listeners only set a dirty flag; a
timer redraws at a capped rate (FPS), and no frame of it reads every page: the map
samples its cells, and the pages per node of the processes (NodeCounts) are counted a
few milliseconds a frame.

A migration typed without `&` runs in the foreground: the command line waits for its
result (the map and the progress bar move meanwhile; `c` cancels); with `&` it runs in
the background and the line is free at once. The simulated clock starts at a
watchable pace (WATCH_SPEED: a whole-process migration takes a second or two); `F`
switches to as fast as possible and back.

On a live machine (the host: `view.status().live`) the same keys and command line
apply, with three differences. The host is read by a thread (`NodeCounts.step` within
HOST_BUDGET, whenever something is due), told which processes the table shows
(`view.watch`); `[` and `]` make the reading slower and faster. Every command line runs
in a thread too, the command line waiting for its result. And nothing acts on the host
at once: an action's result is its rehearsal (`Result.review`), shown in a dialog
(screens/rehearsal.py) whose confirmation, a key of its own, runs the real call
(`Result.confirm`) and shows predicted against actual. Keys that only make sense in
the simulator say so in one line."""

from __future__ import annotations

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
from textual.worker import get_current_worker

import engine
from engine.commands import Result, execute
from engine.views import MachineView, source_nodes
from tools.sweep import SweepError, read_results

from .palette import EngineCommands, KeyActions
from .screens.confirm import ConfirmScreen
from .screens.help import LONG, HelpScreen
from .screens.main import MainScreen, Selection
from .screens.process import ProcessScreen
from .screens.rehearsal import RehearsalScreen
from .screens.sweep import SweepScreen
from .widgets.cmdline import CommandLine
from .widgets.consolelog import ConsoleLog
from .widgets.pagemap import PageMap
from .widgets.titlebar import TitleBar

HERE = Path(__file__).parent
VIEWS = ("numa_maps", "numastat", "zoneinfo", "vmstat")
FPS = 15  # redraw cap (frames per second)
COUNT_BUDGET = 0.004  # seconds of page counting (NodeCounts) a frame may spend
COUNT_PERIOD = 0.5  # while jobs run, pages per node are counted afresh this often
WATCH_SPEED = 0.05  # the default pace: 1/20 of real time (java's 288 MiB in ~2 s)
CLOCK_LADDER = (0.001, 0.01, 0.05, 0.1, 1.0, 10.0, 100.0, 1000.0, None)  # None: fast
SERVICES = ("daemon", "workload")  # jobs that run until stopped: never in the foreground
TYPING_ACTIONS = ("quit", "command_palette", "help")  # allowed while typing (ctrl keys)
HOST_BUDGET = 0.05  # seconds one step of reading the live host may take (in its thread)
# keys of the simulator that have no meaning on the live host: one line each instead
NOT_ON_HOST = {
    "undo": "undo: not on the live host (numacon keeps no record of where the host's "
            "pages were, and its moves cannot be taken back)",
    "mlock": "mlock: not on the live host (mlock locks the caller's own memory, never "
             "another process's)",
    "hook": "driver hooks: not on the live host (only the simulator models a driver's "
            "migrate hook)",
    "offline": "offline: not on the live host (numacon does not hot-remove the host's "
               "memory)",
    "online": "online: not on the live host (numacon does not hot-add the host's memory)",
    "clock": "the live host runs in real time: there is no simulated clock to pace "
             "([ and ] set how often it is read)",
    "daemon": "daemon: not on the live host (the automatic-migration daemon runs in the "
              "simulator)",
    "save": "save: not on the live host (numacon capture writes a description of it)",
    "load": "load: not on the live host (quit, then numacon PATH opens a machine)",
}


def _css_paths() -> list[Path]:
    paths = [HERE / "app.tcss"]
    for sub in ("widgets", "screens"):
        paths += sorted((HERE / sub).glob("*.tcss"))
    return paths


class NumaConsoleApp(App):
    """The numacon console. `machine` is the engine Machine it shows; pace "watch"
    (default: WATCH_SPEED) or "fast" (tests) sets the simulated clock of each machine
    it adopts; view_factory(machine) gives the view API it draws from (engine.views.
    MachineView, or another backend's object with the same methods: VIEW_API), and
    executor(machine, line, background=) runs its command lines (engine.commands.
    execute; the live host's host_execute with engine.host.views.view_for)."""

    TITLE = "numacon"
    CSS_PATH = _css_paths()
    COMMANDS = App.COMMANDS | {EngineCommands, KeyActions}
    BINDINGS = [
        Binding("colon", "command_line", "Command", id="app.command", key_display=":"),
        Binding("question_mark", "help", "Help", id="app.help", key_display="?"),
        Binding("m", "migrate", "Migrate", id="app.migrate"),
        Binding("u", "undo", "Undo", id="app.undo"),
        Binding("l", "mlock", "mlock", id="app.mlock"),
        Binding("H", "hugepage", "THP for VMA", id="app.hugepage"),
        Binding("h", "hook", "Hook", id="app.hook"),
        Binding("o", "offline", "Offline", id="app.offline"),
        Binding("O", "online", "Online", id="app.online"),
        Binding("c", "cancel_job", "Cancel job", id="app.cancel"),
        Binding("v", "view", "View", id="app.view"),
        Binding("w", "panels", "Panels", id="app.panels"),
        # priority: the zoom acts as soon as the app reads the key, not after it has been
        # handed to the focused widget and back (each hand-over waits its turn behind the
        # frame timer and running jobs); check_action leaves the key to a focused Input
        Binding("plus,equals_sign", "zoom(1)", "Zoom in", id="app.zoom_in", key_display="+",
                priority=True),
        Binding("minus", "zoom(-1)", "Zoom out", id="app.zoom_out", key_display="-",
                priority=True),
        Binding("space", "pause", "Pause", id="app.pause"),
        Binding("t", "clock_pause", "Clock", id="app.clock_pause"),
        Binding("greater_than_sign", "clock_speed(1)", "Faster", id="app.clock_faster",
                key_display=">"),
        Binding("less_than_sign", "clock_speed(-1)", "Slower", id="app.clock_slower",
                key_display="<"),
        Binding("F", "clock_fast", "Fast", id="app.clock_fast"),
        Binding("right_square_bracket", "refresh_rate(1)", "Refresh faster",
                id="app.refresh_faster", key_display="]"),
        Binding("left_square_bracket", "refresh_rate(-1)", "Refresh slower",
                id="app.refresh_slower", key_display="["),
        Binding("d", "daemon", "Daemon", id="app.daemon"),
        Binding("b,escape", "back", "Back", id="app.back", key_display="b"),
        Binding("ctrl+s", "save", "Save", id="app.save"),
        Binding("ctrl+o", "load", "Load", id="app.load"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(self, machine: Any = None, *, sweep: str | None = None,
                 pace: str = "watch", view_factory: Any = MachineView,
                 executor: Any = execute, commands: dict | None = None,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.execute = executor  # (machine, line, background=) -> Result: the commands
        # the commands the executor runs, which completion offers (None: the simulator's)
        self.command_registry = commands
        self._sweep_path = sweep  # results to open at start (numacon sweep --show FILE.csv)
        self.pace = pace
        self.view_factory = view_factory  # machine -> its view API (another backend's)
        self.machine: Any = None
        self.view: MachineView
        self.paused = False
        self.history: list[str] = []
        self.view_index = -1  # -1: the map; else an index into VIEWS
        self.last_result: Result | None = None
        self.save_path: str | None = None
        self._dirty = True
        self._counted_at = 0.0  # when the last count of pages per node was asked for
        self.node_counts: Any = None  # the machine's pages per node, counted a bit a frame
        self._watch: dict[int, Any] = {}
        self.foreground: Any = None  # the job the command line waits for
        self._return_focus: Any = None
        self.live = False  # a live machine (the host): read and commanded in threads
        self._host_worker: Any = None  # the thread reading the host, while it runs
        self._host_error: str | None = None  # why its last reading failed
        self._host_error_shown: str | None = None
        self._live_lines = 0  # command lines running in threads
        self._adopt(machine if machine is not None else engine.Machine.default())

    # ------------------------------------------------------------ machine
    def _adopt(self, m: Any) -> None:
        old = self.machine
        if old is not None:
            if self._on_change in old.listeners:
                old.listeners.remove(self._on_change)
            for jid in self.view.job_ids():
                self.execute(old, f"cancel {jid}")
        self.machine = m
        self.view = self.view_factory(m)
        self.live = self.view.status().live
        self.node_counts = self.view.node_counts()
        m.listeners.append(self._on_change)
        if self.pace == "watch" and self.view.status().clock.mode == "fast":
            self.execute(m, f"clock speed {WATCH_SPEED:g}")
        self.foreground = None
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
        main.set_machine()
        self._release_command_line()

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
        counts = self.node_counts
        if self.live:
            self._step_host(counts)
        elif self.machine.jobs:
            self._dirty = True
            now = time.monotonic()
            if now - self._counted_at >= COUNT_PERIOD:
                self._counted_at = now
                counts.stale()
        if not self.live and counts.busy and counts.step(COUNT_BUDGET):
            self._dirty = True  # a count ended: the slow parts show it
        if not self._dirty:
            return
        self._dirty = False
        if not self.screen_stack:  # exiting: the screens are gone before the timer
            return
        scr = self.screen
        if hasattr(scr, "refresh_from_machine") and scr.is_attached:
            try:
                with self.batch_update():
                    scr.refresh_from_machine()
            except NoMatches:  # the screen is being torn down (exit)
                pass

    def _step_host(self, counts: Any) -> None:
        """What the live host's refresh policy says is due, read in a thread (a
        numa_maps read walks a process's page tables: never in the event loop), one
        step of HOST_BUDGET at a time."""
        w = self._host_worker
        if w is not None and not w.is_finished:
            return
        err = self._host_error
        if err is not None and err != self._host_error_shown:
            self._host_error_shown = err  # once, not every tick it recurs
            self.console_log.result(err, False)
        if not counts.busy:
            return

        def step() -> None:
            try:
                if counts.step(HOST_BUDGET):
                    self._dirty = True
                self._host_error = None
            except Exception as e:  # noqa: BLE001 - a failed reading never ends the console
                self._host_error = f"reading the host failed: {type(e).__name__}: {e}"

        self._host_worker = self.run_worker(step, thread=True, group="host-refresh",
                                            exit_on_error=False)

    def redraw_now(self) -> None:
        """Redraw everything at once (tests, and after a pause)."""
        scr = self.screen
        if hasattr(scr, "refresh_from_machine"):
            scr.refresh_from_machine(slow=True)

    def _check_jobs(self) -> None:
        """Log the outcome of jobs this console started, once they finish."""
        for jid, job in list(self._watch.items()):
            if not job.finished:
                continue
            del self._watch[jid]
            text, ok = self.view.job_outcome(job)
            self.console_log.result(text, ok)
            self._show_result(ok, text)
            if job is self.foreground:
                self._release_command_line()
            self._dirty = True

    def _show_result(self, ok: bool, text: str) -> None:
        for scr in {self.screen, self.main_screen}:
            if hasattr(scr, "show_result"):
                scr.show_result(ok, text)

    # ------------------------------------------------------------ commands
    def run_command(self, line: str) -> Result:
        """Run one command line through engine.commands.execute; log it and its result.
        A job started without `&` runs in the foreground: the command line waits for
        its result."""
        log = self.console_log
        log.command(line)
        words = line.split()
        background = bool(words) and words[-1] == "&"
        if self.live and words[:1] != ["sweep"]:
            self.run_live_line(line, self._live_result)
            return Result(True, f"running on the host: {line}")
        if words[:1] == ["save"] and len(words) == 2:
            _snapshot_dir(words[1])
        # `sweep FILE.csv` opens results in a screen: a console view, not an engine command
        r = self.sweep_command(line) if words[:1] == ["sweep"] else \
            self.execute(self.machine, line, background=True)
        self.last_result = r
        job = r.job
        if job is not None:
            self._watch[job.id] = job
            if not background and job.name not in SERVICES and not job.finished:
                self.foreground = job
                r = Result(r.ok, f"job {job.id} ({job.name}) runs in the foreground: c "
                                 f"cancels; a line ending in & runs in the background",
                           job=job)
                self._hold_command_line(job)
        log.result(r.text, r.ok)
        self._show_result(r.ok, r.text)
        if r.ok and len(words) == 2 and words[0] in ("save", "load"):
            self.save_path = words[1]
        if r.machine is not None:
            self.set_machine(r.machine)
        if not r.ok:
            self.bell()
        self._dirty = True
        self.node_counts.stale()
        return r

    def run_live_line(self, line: str, done: Any) -> None:
        """Run a command line on the live host in a thread (a rehearsal captures the
        host: a second or two), the command line waiting; done(result) runs in the
        event loop afterwards."""
        self._live_lines += 1
        for scr in self.screen_stack:
            for inp in scr.query(CommandLine):
                inp.placeholder = f"running on the host: {line}"
                inp.disabled = True
        m = self.machine

        def work() -> None:
            r = self.execute(m, line, background=True)
            try:
                self.call_from_thread(self._live_line_done, r, done)
            except RuntimeError:  # the console has ended
                pass

        self.run_worker(work, thread=True, group="host-command", exit_on_error=False)

    def _live_line_done(self, r: Result, done: Any) -> None:
        self._live_lines -= 1
        if self._live_lines <= 0:
            self._live_lines = 0
            self._release_command_line()
        self.last_result = r
        self._dirty = True
        self.node_counts.stale()  # the host may have changed: read what is shown soon
        done(r)

    def _live_result(self, r: Result) -> None:
        """A command line's result on the live host: logged; a rehearsal is shown in
        its dialog, which alone can confirm it."""
        log = self.console_log
        if r.review is not None and r.confirm is not None:
            log.result(f"{r.review}: shown in the dialog; y applies it, escape cancels", True)
        else:
            log.result(r.text, r.ok)
        short = r.review if r.review is not None else (r.text.splitlines() or [""])[-1]
        self._show_result(r.ok, short)
        if not r.ok:
            self.bell()
        if r.review is not None:
            self.push_screen(RehearsalScreen(r.review, r.text, r.confirm,
                                             self.view.status().read_only, r.ok),
                             self._rehearsal_closed)

    def _rehearsal_closed(self, applied: Result | None) -> None:
        if applied is None:
            self.console_log.info("rehearsal closed: nothing was applied to the host")

    def log_applied(self, line: str, r: Result) -> None:
        """The confirmed call's result (predicted against actual), as it ends."""
        self.console_log.command(line)
        self.console_log.result(r.text, r.ok)
        self._show_result(r.ok, r.review or (r.text.splitlines() or [""])[0])
        if not r.ok:
            self.bell()

    def _not_on_host(self, what: str) -> bool:
        """On the live host, a key that only makes sense in the simulator says so."""
        if not self.live:
            return False
        msg = NOT_ON_HOST[what]
        self.console_log.result(msg, False)
        self._show_result(False, msg)
        return True

    def command_input(self) -> CommandLine | None:
        try:
            return self.screen.query_one("#command", CommandLine)
        except NoMatches:  # a modal has none
            return None

    def _hold_command_line(self, job: Any) -> None:
        for scr in self.screen_stack:
            for inp in scr.query(CommandLine):
                inp.placeholder = (f"waiting for job {job.id} ({job.name}): c cancels it")
                inp.disabled = True

    def _release_command_line(self) -> None:
        self.foreground = None
        for scr in self.screen_stack:
            for inp in scr.query(CommandLine):
                inp.disabled = False
                inp.placeholder = ": command (help lists them; tab completes)"

    def focus_command(self) -> CommandLine | None:
        """Focus the command line at once (keys typed next go into it), remembering
        where to come back to after Enter."""
        if self.foreground is not None:
            j = self.foreground
            self.console_log.result(f"job {j.id} ({j.name}) runs in the foreground: wait "
                                    f"for it or press c to cancel it", False)
            self._show_result(False, f"waiting for job {j.id} ({j.name}): c cancels it")
            return None
        inp = self.command_input()
        if inp is None:
            return None
        if self.focused is not inp:
            self._return_focus = self.focused
        self.screen.set_focus(inp)  # synchronous: the next key lands in it
        return inp

    def prefill_command(self, text: str, hint: str = "", cursor: int | None = None) -> None:
        """Put a command on the command line for the user to finish and run (cursor:
        where the caret goes, default the end)."""
        inp = self.focus_command()
        if inp is None:
            return
        inp.value = text
        inp.cursor_position = len(text) if cursor is None else cursor
        if hint:
            self.console_log.info(hint)
            self._show_result(True, hint)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "command":
            return
        line = event.value.strip()
        inp = event.input
        inp.value = ""
        if isinstance(inp, CommandLine):
            inp.remember(line)
            inp.clear_line()
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
        if self.view.process(pid) is not None:
            self.push_screen(ProcessScreen(pid, addr))

    def show_vma_on_map(self, pid: int, start: int) -> None:
        v = self.view.vma_at(pid, start)
        while len(self.screen_stack) > 1:
            self.pop_screen()
        if v is None:
            return
        pm = self.main_screen.query_one("#pagemap", PageMap)
        pfns = self.view.vma_frames(pid, start)
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
        title = name
        if name == "numa_maps":
            pid = self.main_screen.selection().pid
            row = self.view.process(pid) if pid is not None else None
            if row is None:
                self.main_screen.show_view(name, "select a process in the table first", False)
                return
            line = f"numa_maps {pid}"
            title = f"/proc/{pid}/numa_maps ({row.name})"
        main = self.main_screen
        if self.live:  # numa_maps walks page tables: in a thread, shown when it ends
            self.execute_view(line, lambda r: main.show_view(title, r.text, r.ok)
                              if self.view_index >= 0 else None)
            return
        r = self.execute(self.machine, line)
        main.show_view(title, r.text, r.ok)

    def execute_view(self, line: str, done: Any) -> None:
        """A command whose text a view shows (numa_maps, zoneinfo...): at once on a
        simulated machine; on the live host in a thread (one at a time), done(result)
        in the event loop afterwards."""
        if not self.live:
            done(self.execute(self.machine, line))
            return
        m = self.machine

        def work() -> None:
            r = self.execute(m, line)
            if get_current_worker().is_cancelled:  # a newer one replaced it
                return
            try:
                self.call_from_thread(done, r)
            except RuntimeError:  # the console has ended
                pass

        self.run_worker(work, thread=True, group="host-view", exclusive=True,
                        exit_on_error=False)

    def binding_groups(self) -> list[tuple[str, list[Binding]]]:
        groups: list[tuple[str, list[Binding]]] = [("everywhere", list(self.BINDINGS))]
        groups.append(("main", list(MainScreen.BINDINGS)))
        groups.append(("map", list(PageMap.BINDINGS)))
        groups.append(("process", list(ProcessScreen.BINDINGS)))
        groups.append(("host rehearsal", list(RehearsalScreen.BINDINGS)))
        groups.append(("sweep", list(SweepScreen.BINDINGS)))
        groups.append(("command line", list(CommandLine.BINDINGS)))
        return groups

    def key_actions(self) -> list[tuple[str, str, str]]:
        """(title, help, action) of the app's key bindings, for the command palette."""
        out = []
        for b in self.BINDINGS:
            if b.action in ("quit", "help", "command_line"):
                continue
            key = b.key_display or b.key.split(",")[0]
            out.append((f"{b.description.lower()} ({key})", LONG.get(b.id or "", ""),
                        f"app.{b.action}"))
        return out

    # ------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if isinstance(self.focused, Input) and action not in TYPING_ACTIONS:
            return False  # typing: every key is text (or the input's own)
        if isinstance(self.screen, ModalScreen) and action not in ("quit", "help"):
            return False
        allowed = getattr(self.screen, "APP_ACTIONS", None)
        if allowed is not None and action not in allowed:
            return False
        if isinstance(self.screen, ProcessScreen) and action in ("zoom", "view", "offline",
                                                                  "online", "panels"):
            return False
        return True

    def action_command_line(self) -> None:
        inp = self.focus_command()
        if inp is not None:
            inp.clear_line()  # `:` always opens an empty line

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
        else:
            # installed once: opening it again reuses its layout and rendered lines (the
            # live host has its own commands: its `help` lists them)
            if not self.is_screen_installed("help"):
                commands = self.execute(self.machine, "help").text if self.live else None
                self.install_screen(HelpScreen(self.binding_groups(), commands), "help")
            self.push_screen("help")

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.redraw_now()
        if self.paused:
            for tb in self.screen.query(TitleBar):
                tb.show(self.view, True)

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

    def action_panels(self) -> None:
        main = self.main_screen
        front = main.toggle_panels()
        what = ("panels: inspector, legend, nodes, distances, jobs, log (w: back to the "
                "map)" if main.narrow and front else
                "map and processes (w: the panels)" if main.narrow else
                "wide map (w: the panels again)" if main.has_class("-panels") else
                "panels shown")
        self._show_result(True, what)

    def action_migrate(self) -> None:
        sel = self.selection()
        view = self.view
        if isinstance(self.screen, ProcessScreen):
            self._migrate_vma(sel)
            return
        row = view.process(sel.pid, self.node_counts) if sel.pid is not None else None
        if row is None:
            self.console_log.result("select a process in the table first", False)
            return
        src = source_nodes(row, view.nodes())
        after = (": numacon rehearses it in the simulator and asks before it acts"
                 if self.live else "")
        self.prefill_command(f"migratepages {row.pid} {src} ",
                             f"migrate {row.name} (pid {row.pid}) from nodes {src}: type "
                             f"the target node(s) and press enter{after}")

    def _migrate_vma(self, sel: Selection) -> None:
        """The call that fits the selected VMA: mbind with MOVE (MOVE_ALL when it has
        shared pages), or move_pages; a PFN-mapped VMA has none."""
        view = self.view
        if sel.vma is None:
            self.console_log.result("select a VMA first", False)
            return
        v = view.vma_at(sel.pid, sel.vma[0])
        if v is None:
            return
        a, b = v.start, v.end
        status = view.status()
        if v.kind == "driver":
            self._show_result(False, f"VMA {a:x}-{b:x} maps driver {v.driver}'s PFN-mapped "
                                     f"region: no call moves it (only the driver's migrate "
                                     f"hook: h on the map)")
            self.console_log.result(f"no call moves a PFN-mapped VMA ({v.driver}): only "
                                    f"its driver's migrate hook does", False)
            return
        if self.live:
            # mbind changes the caller's own address space only: on the host, move_pages
            head = f"move_pages {sel.pid} {a:x}..{b:x} "
            self.prefill_command(head, f"move VMA {a:x}-{b:x} of pid {sel.pid}: type the "
                                       f"target node and press enter (numacon rehearses it "
                                       f"in the simulator and asks before it acts)")
            return
        flag = "move_all" if v.shared_pages else "move"
        head = f"mbind {sel.pid} {a:x}..{b:x} bind:"
        line = f"{head} {flag}"
        alt = (f"; or move_pages {sel.pid} {a:x}..{b:x} NODE"
               f"{' --all' if v.shared_pages else ''} (pages only, no policy)"
               if status.has_move_pages else
               f"; era {status.era} has no move_pages (it came in 2.6.18)")
        why = (f"{v.shared_pages} shared pages: move_all moves them too" if v.shared_pages
               else "mbind sets the VMA's policy and moves its pages")
        self.prefill_command(line, f"move VMA {a:x}-{b:x} of pid {sel.pid}: type the target "
                                   f"node after bind: and press enter ({why}{alt})",
                             cursor=len(head))

    def action_undo(self) -> None:
        if self._not_on_host("undo"):
            return
        last = self.view.last_migration()
        if last is None:
            self.console_log.result("nothing to undo: no migration has run yet", False)
            self._show_result(False, "nothing to undo: no migration has run yet")
            return
        self.run_command("undo")

    def action_mlock(self) -> None:
        if self._not_on_host("mlock"):
            return
        hit = self._selected_vma()
        if hit is not None:
            pid, v = hit
            verb = "munlock" if v.locked else "mlock"
            self.run_command(f"{verb} {pid} {v.start:x}..{v.end:x}")

    def _selected_vma(self) -> tuple[int, Any] | None:
        """(pid, VmaRow) of the VMA under the map cursor or selected in a process
        screen; None (with a line saying how to pick one) when there is none."""
        sel = self.selection()
        if sel.vma is None or sel.vma_pid is None:
            self.console_log.result("put the map cursor on a process's page, or open a "
                                    "process and select a VMA", False)
            return None
        v = self.view.vma_at(sel.vma_pid, sel.vma[0])
        return None if v is None else (sel.vma_pid, v)

    def action_hugepage(self) -> None:
        """madvise(MADV_HUGEPAGE) on the selected VMA, or MADV_NOHUGEPAGE when it has
        it already: THP on or off for that VMA."""
        if self._not_on_host("madvise"):
            return
        hit = self._selected_vma()
        if hit is not None:
            pid, v = hit
            advice = "nohugepage" if "hugepage" in v.flags.replace(",", " ").split() \
                else "hugepage"
            self.run_command(f"madvise {pid} {v.start:x}..{v.end:x} {advice}")

    def action_hook(self) -> None:
        """Toggle the migrate hook of the driver whose region is under the map cursor."""
        if self._not_on_host("hook"):
            return
        view = self.view
        pfn = self.main_screen.query_one("#pagemap", PageMap).cursor
        d = view.driver_at(pfn)
        if d is None:
            names = ", ".join(x.name for x in view.drivers() if x.kind != "rdma") or "none"
            msg = (f"no driver region under the cursor (PFN {pfn:#x}); PFN-mapped regions "
                   f"(yellow on the map) belong to: {names}")
            self.console_log.result(msg, False)
            self._show_result(False, msg)
            return
        self.run_command(f"hook {d.name} {'off' if d.hook else 'on'}")

    def action_offline(self) -> None:
        if self._not_on_host("offline"):
            return
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
        if self._not_on_host("online"):
            return
        z = self.main_screen.zone_under_cursor()
        if z is not None:
            self.run_command(f"online {z.node} {z.name}")

    def action_cancel_job(self) -> None:
        ids = self.view.job_ids()
        if not ids:
            self.console_log.result("no running job", False)
            return
        self.run_command(f"cancel {max(ids)}")

    def action_clock_pause(self) -> None:
        if self._not_on_host("clock"):
            return
        self.run_command("clock resume" if self.view.status().clock.mode == "paused"
                         else "clock pause")

    def action_clock_speed(self, step: int) -> None:
        """Walk the ladder 1/1000 .. 1000x real time, and fast (as fast as possible)."""
        if self._not_on_host("clock"):
            return
        clock = self.view.status().clock
        ladder = list(CLOCK_LADDER)
        if clock.mode == "fast":
            i = len(ladder) - 1
        else:
            i = min(range(len(ladder) - 1), key=lambda k: abs(ladder[k] - clock.speed))
        i = min(max(0, i + step), len(ladder) - 1)
        x = ladder[i]
        self.run_command("clock fast" if x is None else f"clock speed {x:g}")

    def action_clock_fast(self) -> None:
        """As fast as possible, or back to the watchable pace."""
        if self._not_on_host("clock"):
            return
        if self.view.status().clock.mode == "fast":
            self.run_command(f"clock speed {WATCH_SPEED:g}")
        else:
            self.run_command("clock fast")

    def action_refresh_rate(self, step: int) -> None:
        """The live host read more often (]) or less often ([): every period halved or
        doubled (`refresh faster` / `refresh slower`)."""
        if not self.live:
            msg = ("refresh: a simulated machine is never re-read (its state is the "
                   "engine's); t, < and > pace its clock")
            self.console_log.result(msg, False)
            self._show_result(False, msg)
            return
        self.run_command(f"refresh {'faster' if step > 0 else 'slower'}")

    def action_daemon(self) -> None:
        """Start the automatic-migration daemon on the selected process (offering a
        workload first when it runs none), or stop it."""
        if self._not_on_host("daemon"):
            return
        view = self.view
        if view.daemons():
            self.run_command("daemon stop")
            return
        pid = self.selection().pid
        row = view.process(pid) if pid is not None else None
        if row is None:
            self.console_log.result("select a process first", False)
            return
        if view.workloads(pid):
            self.run_command(f"daemon start {pid}")
            return
        wl = f"workload {pid} --loop &"

        def done(yes: bool | None) -> None:
            if yes:
                self.run_command(wl)
                self.run_command(f"daemon start {pid}")
            else:
                self.console_log.info(f"daemon not started (it needs a workload on pid "
                                      f"{pid})")

        self.push_screen(ConfirmScreen(
            f"daemon start {pid}",
            f"pid {pid} ({row.name}) runs no workload. The daemon migrates pages by the "
            f"accesses it sees, and without a workload there are none: it would do "
            f"nothing.\nStart `{wl}` (threads on the process's node touching its memory "
            f"until stopped) and then the daemon?",
            "y / enter: start both    escape / n: neither"), done)

    def action_save(self) -> None:
        if self._not_on_host("save"):
            return
        path = self.save_path or f"snapshots/{self.view.status().name}.numacon"
        self.prefill_command(f"save {path}", "enter saves (edit the path first if you like)")

    def action_load(self) -> None:
        if self._not_on_host("load"):
            return
        path = self.save_path or "saves/"
        self.prefill_command(f"load {path}", "type a description or snapshot path, enter loads")


def _snapshot_dir(path: str) -> None:
    """The console proposes snapshots/NAME.numacon: make that directory when a save
    goes there (and only that one)."""
    p = Path(path)
    if p.parent == Path("snapshots") and not p.parent.exists():
        p.parent.mkdir()

