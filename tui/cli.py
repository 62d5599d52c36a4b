"""The `numacon` command.

    numacon [MACHINE]                          the console on MACHINE (or the default machine)
    numacon run [MACHINE] --script FILE        commands from FILE ('-' = stdin), headless
    numacon run [MACHINE] -c 'CMD; CMD'        commands from the argument, headless
                                               (CMD & starts a job; `wait` finishes jobs)
    numacon run --host [--allow-actions] -c .. the commands on the live host (engine/host):
                                               read-only unless --allow-actions
    numacon host [--allow-actions|--read-only] the console on the live host (read-only
                                               unless --allow-actions; every action is
                                               rehearsed and confirmed first)
    numacon hardware [MACHINE]                 numactl -H of the machine
    numacon capture [...]                      a description of this host (engine.machines.capture)
    numacon bench [--json]                     the benchmark (tools.bench)
    numacon serve [MACHINE] [--port N]         the console in a browser (textual-serve; open
                                               the URL it prints: it carries a token)
    numacon sweep SPEC.toml [-o FILE.csv] [--workers N | --scheduler tcp://HOST:PORT]
                  [--resume]                   a grid of experiments (tools.sweep)
    numacon sweep --show FILE.csv              its results in the console

`run` prints results on stdout and errors on stderr, and stops with exit status 1 at
the first command that fails (0 when all succeed)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import engine
from engine.commands import execute
from engine.host import HOST_OFFERED, Host, host_execute
from engine.host.views import view_for
from engine.machines.capture import capture
from engine.machines.container import SaveError, atomic_write
from engine.machines.description import dumps
from tools import bench

PROG = "numacon"
SUBCOMMANDS = ("run", "host", "hardware", "capture", "bench", "serve", "sweep")


def _err(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr)


def load_machine(path: str | None) -> Any:
    """The machine at `path` (a description or snapshot), or the default machine.
    Raises engine.SaveError / DescriptionError with a one-line message."""
    if path is None:
        return engine.Machine.default()
    return engine.load(path)


def _load_or_fail(path: str | None) -> Any:
    try:
        return load_machine(path)
    except (engine.SaveError, engine.DescriptionError, OSError, ValueError) as e:
        _err(f"error: {e}")
        return None


def split_commands(text: str) -> list[str]:
    """Split 'a; b "c;d"; e' on semicolons outside quotes; also splits lines."""
    out: list[str] = []
    for line in text.splitlines():
        cur: list[str] = []
        quote: str | None = None
        for ch in line:
            if quote:
                cur.append(ch)
                if ch == quote:
                    quote = None
            elif ch in "'\"":
                quote = ch
                cur.append(ch)
            elif ch == ";":
                out.append("".join(cur).strip())
                cur = []
            else:
                cur.append(ch)
        out.append("".join(cur).strip())
    return [c for c in out if c and not c.startswith("#")]


def run_commands(m: Any, lines: Iterable[str], out=None, err=None, *,
                 run: Callable = execute) -> int:
    """Run command lines through engine.commands.execute (`run`: the live host's
    host_execute), synchronously (a line ending in `&` starts a job that runs beside
    the next commands; `wait` finishes them, as in a shell). Returns the exit status:
    1 at the first failed command, else 0."""
    out = out or sys.stdout
    err = err or sys.stderr
    for line in lines:
        r = run(m, line, background=False)
        if not r.ok:
            print(r.text, file=err)
            return 1
        if r.text:
            print(r.text, file=out)
        if r.machine is not None:
            m = r.machine
    left = [j for j in getattr(m, "jobs", []) if not j.finished]
    if left:
        names = ", ".join(f"{j.id} {j.name}" for j in left)
        print(f"{PROG}: note: job(s) {names} still running at the end (add `wait`)",
              file=err)
    return 0


def cmd_run(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog=f"{PROG} run",
                                 description="run console commands without the UI")
    ap.add_argument("machine", nargs="?", help="a machine description or snapshot")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--script", metavar="FILE", help="one command a line ('-' = stdin)")
    src.add_argument("-c", dest="commands", metavar="'CMD; CMD'", help="commands to run")
    _host_flags(ap, "run the commands on the live host instead of a simulated machine")
    a = ap.parse_args(argv)
    if a.host and a.machine is not None:
        _err("error: --host runs on this host: give no MACHINE")
        return 2
    if not a.host and a.allow_actions:
        _err("error: --allow-actions goes with --host (a simulated machine needs no "
             "permission)")
        return 2
    if a.script is not None:
        try:
            text = sys.stdin.read() if a.script == "-" else Path(a.script).read_text()
        except OSError as e:
            _err(f"error: {a.script}: {e.strerror}")
            return 1
    else:
        text = a.commands
    if a.host:
        return run_commands(Host(allow_actions=a.allow_actions), split_commands(text),
                            run=host_execute)
    m = _load_or_fail(a.machine)
    if m is None:
        return 1
    return run_commands(m, split_commands(text))


def _host_flags(ap: argparse.ArgumentParser, host_help: str | None) -> None:
    if host_help is not None:
        ap.add_argument("--host", action="store_true", help=host_help)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--read-only", dest="allow_actions", action="store_false",
                      help="never change the host (the default)")
    mode.add_argument("--allow-actions", dest="allow_actions", action="store_true",
                      help="let move_pages and migratepages act on the host (Linux's "
                           "own permission checks still apply)")
    ap.set_defaults(allow_actions=False)


def host_app(allow_actions: bool = False, **host_kw: Any) -> Any:
    """The console on the live host: a Host opened for it (every action rehearsed and
    confirmed before it acts: Host(confirm=True)), drawn through HostView and commanded
    through the host's command registry. host_kw: Host's (tests: root, kpageflags)."""
    from .app import NumaConsoleApp  # Textual loads only for the console, not for `run`

    h = Host(allow_actions=allow_actions, confirm=True, **host_kw)
    return NumaConsoleApp(h, view_factory=view_for, executor=host_execute,
                          commands=HOST_OFFERED)


def cmd_host(argv: Sequence[str]) -> int:
    """numacon host: the console on the machine it runs on (engine/host), read-only
    unless --allow-actions."""
    ap = argparse.ArgumentParser(prog=f"{PROG} host",
                                 description="the console on the live host: read-only "
                                             "unless --allow-actions; an action is "
                                             "rehearsed in the simulator and shown, then "
                                             "applied only when you confirm it")
    _host_flags(ap, None)
    a = ap.parse_args(argv)
    host_app(a.allow_actions).run()
    return 0


def cmd_hardware(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog=f"{PROG} hardware", description="numactl -H")
    ap.add_argument("machine", nargs="?")
    a = ap.parse_args(argv)
    m = _load_or_fail(a.machine)
    if m is None:
        return 1
    print(m.hardware().rstrip("\n"))
    return 0


def cmd_capture(argv: Sequence[str]) -> int:
    """numacon capture [-o FILE] [--scale F]: a description of this host as TOML."""
    ap = argparse.ArgumentParser(prog="numacon capture",
                                 description="Write a machine description of this host.")
    ap.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    ap.add_argument("--scale", type=float, default=None,
                    help="multiply memory and process sizes by F (default: fit in 4 GiB)")
    ap.add_argument("--root", default="/", help=argparse.SUPPRESS)  # tests: a fake host
    a = ap.parse_args(argv)
    try:
        d = capture(a.scale, a.root)
    except ValueError as e:
        print(f"numacon capture: {e}", file=sys.stderr)
        return 2
    h = d["host"]
    header = (f"Captured from {h['hostname']} (Linux {h['kernel']}) at {h['captured']} by "
              f"`numacon capture`.\nMemory and process sizes x{h['scale']:.4g}; "
              f"{len(d['processes'])} processes, {h['skipped']} skipped (unreadable or "
              f"exited). Host figures the engine does not use are in [host].")
    text = dumps(d, header)
    if a.output:
        try:
            atomic_write(a.output, lambda fh: fh.write(text.encode()))
        except SaveError as e:
            print(f"numacon capture: {e}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    why = ", ".join(f"{v} {k}" for k, v in h["skipped_why"].items())
    print(f"captured {len(d['nodes'])} node(s), {h['memory_bytes'] / 2**30:.1f} GiB scaled "
          f"x{h['scale']:.4g}, {len(d['processes'])} processes; skipped {h['skipped']}"
          f"{f' ({why})' if why else ''}", file=sys.stderr)
    return 0


def cmd_bench(argv: Sequence[str]) -> int:
    """tools.bench with the console's figures (map redraw, key latency) handed in:
    tools/ never imports tui/."""
    from . import bench_ui  # Textual loads only for the console's figures

    return int(bench.main(list(argv), ui=bench_ui) or 0)


def cmd_serve(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog=f"{PROG} serve",
                                 description="serve the console to a browser on 127.0.0.1")
    ap.add_argument("machine", nargs="?")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--host", default="127.0.0.1")
    a = ap.parse_args(argv)
    from .serve import GuardedServer  # aiohttp and textual-serve: only when serving
    if a.machine is not None and _load_or_fail(a.machine) is None:
        return 1
    # a random token in the printed URL, and the Origin checked (tui/serve.py)
    server = GuardedServer(serve_command(a.machine), host=a.host, port=a.port,
                           title="numacon")
    server.serve()
    return 0


def cmd_sweep(argv: Sequence[str]) -> int:
    """Parse, then hand over to tools.sweep (tools.sweep_dask for --scheduler)."""
    ap = argparse.ArgumentParser(
        prog=f"{PROG} sweep", description="run a grid of experiments (each one workload "
                                          "and seed, the daemon off and on) on local "
                                          "processes or a Dask cluster")
    ap.add_argument("spec", nargs="?", metavar="SPEC.toml", help="the sweep spec")
    ap.add_argument("-o", dest="out", metavar="FILE.csv",
                    help="results (default: SPEC with .csv); JSON lines go to FILE.jsonl")
    be = ap.add_mutually_exclusive_group()
    be.add_argument("--workers", type=int, metavar="N",
                    help="local worker processes (default: the CPU count)")
    be.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="a Dask scheduler")
    ap.add_argument("--timeout", type=float, default=10.0, metavar="S",
                    help="seconds to reach the scheduler (default 10)")
    ap.add_argument("--resume", action="store_true",
                    help="continue FILE.csv: run only what it does not have")
    ap.add_argument("--show", metavar="FILE.csv", help="open results in the console")
    a = ap.parse_args(argv)
    if (a.spec is None) == (a.show is None):
        _err("error: give a SPEC.toml to run, or --show FILE.csv to look at results")
        return 2
    from tools import sweep

    if a.show is not None:
        try:
            sweep.read_results(a.show)
        except sweep.SweepError as e:
            _err(f"error: {e}")
            return 1
        from .app import NumaConsoleApp

        NumaConsoleApp(sweep=a.show).run()
        return 0
    if a.scheduler is None:
        return sweep.sweep_main(a.spec, a.out, lambda: sweep.LocalBackend(a.workers),
                                resume=a.resume)
    try:
        from tools.sweep_dask import connect
    except ImportError as e:
        _err(f"error: --scheduler needs dask.distributed ({e}); pip install "
             f"'dask[distributed]'")
        return 1
    return sweep.sweep_main(a.spec, a.out, lambda: connect(a.scheduler, a.timeout),
                            resume=a.resume)


def serve_command(machine: str | None) -> str:
    """The shell command textual-serve runs per browser session."""
    root = str(Path(__file__).resolve().parent.parent)
    pp = os.environ.get("PYTHONPATH", "")
    if root not in pp.split(os.pathsep):
        os.environ["PYTHONPATH"] = root + (os.pathsep + pp if pp else "")
    cmd = [sys.executable, "-m", "tui.cli"]
    if machine is not None:
        cmd.append(os.path.abspath(machine))
    return shlex.join(cmd)


def cmd_app(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(
        prog=PROG, description="a console for a NUMA machine: see where memory lives and "
                               "move it. Subcommands: " + ", ".join(SUBCOMMANDS))
    ap.add_argument("machine", nargs="?", help="a machine description or snapshot "
                                               "(default: the embedded default machine)")
    a = ap.parse_args(argv)
    m = _load_or_fail(a.machine)
    if m is None:
        return 1
    from .app import NumaConsoleApp  # Textual loads only for the console, not for `run`

    NumaConsoleApp(m).run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    sub = args[0] if args else None
    try:
        if sub == "run":
            return cmd_run(args[1:])
        if sub == "host":
            return cmd_host(args[1:])
        if sub == "hardware":
            return cmd_hardware(args[1:])
        if sub == "capture":
            return cmd_capture(args[1:])
        if sub == "bench":
            return cmd_bench(args[1:])
        if sub == "serve":
            return cmd_serve(args[1:])
        if sub == "sweep":
            return cmd_sweep(args[1:])
        return cmd_app(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `numacon run ... | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except SystemExit as e:  # argparse: usage errors exit 2, --help exits 0
        return int(e.code) if isinstance(e.code, int) else (0 if e.code is None else 1)


if __name__ == "__main__":
    sys.exit(main())
