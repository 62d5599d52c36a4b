"""Commands that show the machine in Linux's own formats, and the console's own
views (ps, jobs, timeline, help)."""

from __future__ import annotations

from ..runtime.timeline import timeline_text
from ..views import MachineView
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


@command("ps", "processes with their memory per node (MiB, as numastat -p)")
def _ps(m, a, bg):
    mib = m.page_size / (1 << 20)
    rows = MachineView(m).processes()
    cols = ["RSS"] + [f"N{n}" for n in m.nodes]
    vals = [[r.rss * mib] + [c * mib for c in r.per_node.tolist()] for r in rows]
    w = [max(len(c), *(len(f"{v[i]:.1f}") for v in vals)) if vals else len(c)
         for i, c in enumerate(cols)]
    name_w = max([4] + [len(r.name) for r in rows])
    out = [f"{'PID':>6} {'UID':>5} {'NODE':>4} {'NAME':<{name_w}} "
           + " ".join(f"{c:>{w[i]}}" for i, c in enumerate(cols)) + f" {'LOCAL':>5}"
           + "  POLICY  (memory in MiB)"]
    for r, v in zip(rows, vals):
        loc = "-" if r.locality is None else f"{r.locality:.0f}%"
        out.append(f"{r.pid:>6} {r.uid:>5} {r.node:>4} {r.name:<{name_w}} "
                   + " ".join(f"{x:>{w[i]}.1f}" for i, x in enumerate(v))
                   + f" {loc:>5}  {r.policy}")
    return "\n".join(out)


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
