"""Commands that show the machine in Linux's own formats, and the console's own
views (ps, jobs, timeline, help)."""

from __future__ import annotations

from ..runtime.timeline import timeline_text
from ..units import fmt_size
from ..views import resident_pages
from .core import COMMANDS, Result, command, command_names
from .spec import Arg, CommandError, Spec, Words, integer, node, pid, text


@command("help", "list commands, or show one command's usage", Spec(
    Arg("COMMAND", text, "command", optional=True)))
def _help(m, a, bg):
    if a.command is not None:
        c = COMMANDS.get(a.command)
        if c is None:
            raise CommandError(f"no command {a.command!r}")
        return f"{c.usage}\n  {c.help}"
    return "\n".join(f"{COMMANDS[n].usage:<52} {COMMANDS[n].help}" for n in command_names())


@command("numa_maps", "/proc/PID/numa_maps", Spec(Arg("PID", pid, "pid")))
def _numa_maps(m, a, bg):
    return m.numa_maps(a.pid).rstrip("\n")


@command("numastat", "per-node allocation counters")
def _numastat(m, a, bg):
    return m.numastat().rstrip("\n")


@command("zoneinfo", "/proc/zoneinfo")
def _zoneinfo(m, a, bg):
    return m.zoneinfo().rstrip("\n")


@command("vmstat", "/proc/vmstat counters")
def _vmstat(m, a, bg):
    return "\n".join(f"{k} {v}" for k, v in m.vmstat().items())


@command("meminfo", "/sys/devices/system/node/nodeN/meminfo", Spec(Arg("NODE", node, "node")))
def _meminfo(m, a, bg):
    if a.node not in m.nodes:
        raise CommandError(f"no node {a.node}")
    return m.meminfo(a.node).rstrip("\n")


@command("hardware", "numactl -H", Spec(Words("-H")), aliases=("numactl",))
def _hardware(m, a, bg):
    return m.hardware().rstrip("\n")


@command("ps", "processes with pages per node")
def _ps(m, a, bg):
    rows = [f"{'PID':>6} {'UID':>5} {'NODE':>4} {'RSS':>8}  NAME"]
    for p_ in map(m.process, m.pids):
        rows.append(f"{p_.pid:>6} {p_.uid:>5} {p_.node:>4} "
                    f"{fmt_size(resident_pages(m, p_) * m.page_size):>8}  {p_.name}")
    return "\n".join(rows)


@command("jobs", "running jobs")
def _jobs(m, a, bg):
    if not m.jobs:
        return "no running jobs"
    return "\n".join(f"{j.id} {j.name} {j.state} {j.done}/{j.total}" for j in m.jobs)


@command("check", "verify the machine's invariants and the integrity oracle")
def _check(m, a, bg):
    m.check()
    return "machine consistent"


def _width(m, s: str) -> int:
    w = integer("width")(m, s)
    if not 4 <= w <= 400:
        raise CommandError("width: 4..400")
    return w


@command("timeline", "per-node used pages and migration traffic over simulated time",
         Spec(Arg("WIDTH", _width, optional=True)))
def _timeline(m, a, bg):
    return Result(True, timeline_text(m, m.timeline, a.width or 40))
