"""The one text command language: the TUI's command line, its key bindings, the
command palette, `numacon run` and the tests all call `execute(m, line)`.

Names follow the Linux calls and the numactl tools. Sizes take K/M/G/T suffixes,
addresses are hex, ranges are ADDR..END or ADDR+LEN, node lists are "0-2,5".
A line is parsed completely before anything runs, so a malformed line changes
nothing and answers with one line."""

from __future__ import annotations

import errno as _errno
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .constants import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    MCL_CURRENT,
    MCL_FUTURE,
    MODE_NAMES,
    MPOL_MF_MOVE,
    MPOL_MF_MOVE_ALL,
    MPOL_MF_STRICT,
    PROT_READ,
    PROT_WRITE,
)
from .machines.description import DescriptionError
from .machines.snapshot import SaveError, load, save
from .mm.era import get_era
from .nodemask import nodes_str, parse_nodes, parse_policy_string
from .runtime import access
from .runtime.experiment import compare_runs
from .runtime.timeline import timeline_text
from .runtime.workload import described, process_stats
from .units import fmt_ns, fmt_size, parse_size
from .views import resident_pages


class CommandError(Exception):
    """A line that does not parse: the message is what the user sees."""


@dataclass
class Result:
    ok: bool
    text: str
    job: object = None
    machine: object = None  # a machine that `load` produced; the caller adopts it
    value: object = None

    def __bool__(self) -> bool:
        return self.ok


@dataclass
class Command:
    name: str
    usage: str
    help: str
    run: Callable
    aliases: tuple = ()
    job: str | None = None  # the job name when it can run in the background
    args: list = field(default_factory=list)  # completion hints: pid, addr, node, ...


COMMANDS: dict[str, Command] = {}


def command(name, usage, help, aliases=(), job=None, args=()):
    def deco(fn):
        c = Command(name, usage, help, fn, tuple(aliases), job, list(args))
        COMMANDS[name] = c
        for a in aliases:
            COMMANDS[a] = c
        return fn
    return deco


def command_names() -> list[str]:
    return sorted({c.name for c in COMMANDS.values()})


# ------------------------------------------------------------------ parsing helpers

def _int(s: str, what: str) -> int:
    try:
        v = int(s, 0)
    except (ValueError, TypeError):
        raise CommandError(f"{what}: {s!r} is not a number") from None
    return v


def _pid(m, s: str) -> int:
    pid = _int(s, "pid")
    if pid < 0:
        raise CommandError(f"pid: {s} is negative")
    return pid


def _addr(s: str) -> int:
    t = s.lower()
    try:
        v = int(t, 16)
    except ValueError:
        raise CommandError(f"address: {s!r} is not a hex address") from None
    if v < 0 or v >= 1 << 64:
        raise CommandError(f"address: {s!r} is out of range")
    return v


def _size(s: str, what="size") -> int:
    try:
        v = parse_size(s, what)
    except ValueError as e:
        raise CommandError(str(e)) from None
    if v >= 1 << 64:
        raise CommandError(f"{what}: {s!r} is too large")
    return v


def _range(m, s: str) -> tuple[int, int]:
    """ADDR..END, ADDR+LEN or a single ADDR (one page) -> (addr, length)."""
    if ".." in s:
        a, b = s.split("..", 1)
        lo, hi = _addr(a), _addr(b)
        if hi <= lo:
            raise CommandError(f"range {s!r}: end must be above start")
        return lo, hi - lo
    if "+" in s:
        a, b = s.split("+", 1)
        lo = _addr(a)
        ln = _size(b, "length")
        if ln <= 0:
            raise CommandError(f"range {s!r}: length must be positive")
        return lo, ln
    return _addr(s), m.page_size


def _nodes(s: str, what="nodes") -> tuple[int, ...]:
    try:
        return parse_nodes(s, what)
    except OSError as e:
        raise CommandError(e.strerror) from None


def _node(m, s: str) -> int:
    n = _int(s, "node")
    return n


def _policy(s: str):
    try:
        return parse_policy_string(s)
    except (ValueError, OSError) as e:
        raise CommandError(getattr(e, "strerror", None) or str(e)) from None


def _kv(args: list[str]) -> tuple[list[str], dict[str, str], set[str]]:
    """Split positional args, key=value options and --flags."""
    pos, kv, flags = [], {}, set()
    for a in args:
        if a.startswith("--"):
            flags.add(a[2:])
        elif "=" in a and not a.startswith("="):
            k, v = a.split("=", 1)
            kv[k] = v
        else:
            pos.append(a)
    return pos, kv, flags


def _need(pos, n, usage, at_most=None):
    if len(pos) < n:
        raise CommandError(f"missing argument: usage: {usage}")
    if at_most is not None and len(pos) > at_most:
        raise CommandError(f"too many arguments: usage: {usage}")


def _check_opts(kv, flags, allowed_kv=(), allowed_flags=()):
    for k in kv:
        if k not in allowed_kv:
            raise CommandError(f"unknown option {k}=")
    for f in flags:
        if f not in allowed_flags:
            raise CommandError(f"unknown flag --{f}")


# ------------------------------------------------------------------ execution

def execute(m, line: str, *, background: bool = False) -> Result:
    """Run one command line. background=True starts long operations as jobs (the TUI);
    otherwise they run to completion. Never raises: errors come back as a Result."""
    try:
        if not isinstance(line, str):
            raise CommandError("a command is a line of text")
        if len(line) > 4096:
            raise CommandError("line too long (more than 4096 characters)")
        s = line.strip()
        if not s or s.startswith("#"):
            return Result(True, "")
        try:
            words = shlex.split(s)
        except ValueError as e:
            raise CommandError(f"cannot split the line: {e}") from None
        name, args = words[0], words[1:]
        bg = background
        if args and args[-1] == "&":
            args = args[:-1]
            bg = True
        cmd = COMMANDS.get(name)
        if cmd is None:
            close = [c for c in command_names() if c.startswith(name[:3])]
            hint = f" (did you mean {', '.join(close[:3])}?)" if close else ""
            raise CommandError(f"unknown command {name!r}{hint}; try: help")
        out = cmd.run(m, args, bg)
        if isinstance(out, Result):
            return out
        return Result(True, "" if out is None else str(out))
    except CommandError as e:
        return Result(False, f"error: {e}")
    except OSError as e:
        return Result(False, f"error: {_oserr(e)}")
    except Exception as e:  # noqa: BLE001 - a console never dies on a command
        if isinstance(e, (SaveError, DescriptionError, ValueError)):
            return Result(False, f"error: {e}")
        return Result(False, f"error: internal: {type(e).__name__}: {e}")


def _oserr(e: OSError) -> str:
    if e.errno is None:
        return str(e)
    name = _errno.errorcode.get(e.errno, str(e.errno))
    return f"{name}: {e.strerror}"


def _start_or_run(m, bg: bool, jobname: str, *args, **kw):
    """Start a job (background) or run the same generator to completion."""
    if bg:
        job = m.start(jobname, *args, **kw)  # argument errors raise here
        return Result(True, f"job {job.id} started: {jobname}", job=job)
    gens = m.job_generators()
    return m.run(gens[jobname](*args, **kw))


# ------------------------------------------------------------------ commands

@command("help", "help [COMMAND]", "list commands, or show one command's usage")
def _help(m, args, bg):
    if args:
        c = COMMANDS.get(args[0])
        if c is None:
            raise CommandError(f"no command {args[0]!r}")
        return f"{c.usage}\n  {c.help}"
    seen = []
    for n in command_names():
        c = COMMANDS[n]
        seen.append(f"{c.usage:<52} {c.help}")
    return "\n".join(seen)


@command("spawn", "spawn NAME [uid=U] [node=N] [cpuset=NODES]", "start a process",
         args=["name"])
def _spawn(m, args, bg):
    pos, kv, fl = _kv(args)
    _need(pos, 1, "spawn NAME [uid=U] [node=N] [cpuset=NODES]", 1)
    _check_opts(kv, fl, ("uid", "node", "cpuset"))
    uid = _int(kv.get("uid", "0"), "uid")
    node = _int(kv.get("node", "0"), "node")
    cpuset = _nodes(kv["cpuset"], "cpuset") if "cpuset" in kv else None
    pid = m.spawn(pos[0], uid=uid, node=node, mems_allowed=cpuset)
    return Result(True, f"pid {pid}", value=pid)


@command("kill", "kill PID", "end a process (frees what only it maps)", args=["pid"])
def _kill(m, args, bg):
    _need(args, 1, "kill PID", 1)
    m.kill(_pid(m, args[0]))
    return "killed"


@command("mmap", "mmap PID SIZE [--shared] [file=NAME] [driver=NAME] [prot=rw]",
         "map memory; prints the address", args=["pid", "size"])
def _mmap(m, args, bg):
    pos, kv, fl = _kv(args)
    _need(pos, 2, "mmap PID SIZE [--shared] [file=NAME] [driver=NAME] [prot=rw]", 2)
    _check_opts(kv, fl, ("file", "driver", "prot"), ("shared",))
    pid = _pid(m, pos[0])
    size = _size(pos[1])
    if size <= 0:
        raise CommandError("size must be positive")
    prot = 0
    for ch in kv.get("prot", "rw"):
        if ch not in "rwx":
            raise CommandError(f"prot: {kv['prot']!r} is not made of r, w, x")
        prot |= {"r": PROT_READ, "w": PROT_WRITE, "x": 4}[ch]
    shared = "shared" in fl or "driver" in kv
    flags = MAP_SHARED if shared else MAP_PRIVATE
    if "file" not in kv and "driver" not in kv:
        flags |= MAP_ANONYMOUS
    addr = m.mmap(pid, size, prot, flags, file=kv.get("file"), driver=kv.get("driver"))
    return Result(True, f"{addr:#x}", value=addr)


@command("munmap", "munmap PID RANGE", "unmap a range", args=["pid", "range"])
def _munmap(m, args, bg):
    _need(args, 2, "munmap PID RANGE", 2)
    pid = _pid(m, args[0])
    a, ln = _range(m, args[1])
    m.munmap(pid, a, ln)
    return "unmapped"


@command("touch", "touch PID RANGE [--read] [node=N]",
         "fault in / write a range from a CPU on node N", args=["pid", "range"])
def _touch(m, args, bg):
    pos, kv, fl = _kv(args)
    _need(pos, 2, "touch PID RANGE [--read] [node=N]", 2)
    _check_opts(kv, fl, ("node",), ("read",))
    pid = _pid(m, pos[0])
    a, ln = _range(m, pos[1])
    node = _int(kv["node"], "node") if "node" in kv else None
    m.touch(pid, a, ln, write="read" not in fl, node=node)
    return "touched"


@command("read", "read PID ADDR", "the content value of the page at ADDR", args=["pid", "addr"])
def _read(m, args, bg):
    _need(args, 2, "read PID ADDR", 2)
    v = m.read(_pid(m, args[0]), _addr(args[1]))
    return Result(True, f"{v:#010x}", value=v)


def _range_pages(m, pid: int, a: int, ln: int) -> np.ndarray:
    start = a & ~(m.page_size - 1)
    end = m.page_align(a + ln)
    n = (end - start) >> m.page_shift
    if n > 1 << 26:
        raise CommandError(f"range of {n} pages is too large")
    return start + (np.arange(n, dtype=np.int64) << m.page_shift)


def _whole(m, pid) -> list[tuple[int, int]]:
    p = m.task(pid)
    return [(v.start, v.end - v.start) for v in p.vmas]


@command("move_pages", "move_pages PID RANGE|all [NODES] [--all] [--dry-run]",
         "move pages to NODES (one node, or a list used round-robin); no NODES = query",
         job="move_pages", args=["pid", "range", "node"])
def _move_pages(m, args, bg):
    pos, kv, fl = _kv(args)
    usage = "move_pages PID RANGE|all [NODES] [--all] [--dry-run]"
    _need(pos, 2, usage, 3)
    _check_opts(kv, fl, (), ("all", "dry-run"))
    pid = _pid(m, pos[0])
    if pos[1] == "all":
        pages = np.concatenate([_range_pages(m, pid, a, ln) for a, ln in _whole(m, pid)] or
                               [np.zeros(0, np.int64)])
    else:
        a, ln = _range(m, pos[1])
        pages = _range_pages(m, pid, a, ln)
    flags = MPOL_MF_MOVE_ALL if "all" in fl else MPOL_MF_MOVE
    if len(pos) == 2:
        st = m.move_pages(pid, pages, None, 0)
        return Result(True, _summarize_status(st, query=True), value=st)
    nodes = _nodes(pos[2])
    if not nodes:
        raise CommandError("NODES is empty")
    targets = np.asarray(nodes, np.int64)[np.arange(pages.size) % len(nodes)]
    if "dry-run" in fl:
        return _dry_run(m, "move_pages", pid, pages, targets, flags)
    if bg:
        return _start_or_run(m, True, "move_pages", pid, pages, targets, flags)
    st = m.move_pages(pid, pages, targets, flags)
    return Result(True, _summarize_status(st), value=st)


def _summarize_status(st, query=False) -> str:
    c: dict = {}
    for s in st:
        key = "unwritten" if s is None else (f"N{s}" if s >= 0 else
                                             "-" + _errno.errorcode.get(-s, str(-s)))
        c[key] = c.get(key, 0) + 1
    parts = " ".join(f"{k}={v}" for k, v in sorted(c.items()))
    if query:
        return f"{len(st)} pages: {parts}"
    return f"{len(st)} pages: {parts}; ret={st.ret}"


def _dry_run(m, what, *args):
    """The bill; a dry run that predicts the call fails as a whole fails too, its
    first line the error the call would answer."""
    b = m.migration_bill(what, *args)
    if b.error is None:
        return Result(True, b.text, value=b)
    err = f"error: {_oserr(OSError(*b.error))} (predicted by --dry-run)"
    return Result(False, err + "\n" + b.text, value=b)


@command("migratepages", "migratepages PID FROM-NODES TO-NODES [--dry-run]",
         "migrate_pages(2): move a process's pages between node sets",
         aliases=("migrate_pages",), job="migrate_pages", args=["pid", "nodes", "nodes"])
def _migratepages(m, args, bg):
    pos, kv, fl = _kv(args)
    _need(pos, 3, "migratepages PID FROM-NODES TO-NODES", 3)
    _check_opts(kv, fl, (), ("dry-run",))
    pid = _pid(m, pos[0])
    old, new = _nodes(pos[1], "from-nodes"), _nodes(pos[2], "to-nodes")
    if "dry-run" in fl:
        return _dry_run(m, "migrate_pages", pid, old, new)
    if bg:
        return _start_or_run(m, True, "migrate_pages", pid, old, new)
    left = m.migrate_pages(pid, old, new)
    return Result(True, f"{left} page(s) not moved", value=left)


def _mbind_flags(words: set[str]) -> int:
    fl = 0
    for w in words:
        if w == "strict":
            fl |= MPOL_MF_STRICT
        elif w == "move":
            fl |= MPOL_MF_MOVE
        elif w in ("move_all", "move-all"):
            fl |= MPOL_MF_MOVE_ALL
        else:
            raise CommandError(f"mbind: unknown flag {w!r} (strict, move, move_all)")
    return fl


@command("mbind", "mbind PID RANGE POLICY [strict] [move] [move_all] [--dry-run]",
         "set a VMA range's policy (e.g. bind:1, interleave:0-3), optionally moving pages",
         job="mbind", args=["pid", "range", "policy"])
def _mbind(m, args, bg):
    pos, kv, fl = _kv(args)
    _need(pos, 3, "mbind PID RANGE POLICY [strict] [move] [move_all]", 6)
    _check_opts(kv, fl, (), ("dry-run",))
    pid = _pid(m, pos[0])
    a, ln = _range(m, pos[1])
    mode, nodes = _policy(pos[2])
    flags = _mbind_flags(set(pos[3:]))
    if "dry-run" in fl:
        return _dry_run(m, "mbind", pid, a, ln, mode, nodes, flags)
    if bg and flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
        return _start_or_run(m, True, "mbind", pid, a, ln, mode, nodes, flags)
    m.mbind(pid, a, ln, mode, nodes, flags)
    return "policy set"


@command("set_mempolicy", "set_mempolicy PID POLICY", "set a process's task policy",
         args=["pid", "policy"])
def _set_mempolicy(m, args, bg):
    _need(args, 2, "set_mempolicy PID POLICY", 2)
    pid = _pid(m, args[0])
    mode, nodes = _policy(args[1])
    m.set_mempolicy(pid, mode, nodes)
    return "policy set"


@command("get_mempolicy", "get_mempolicy PID [ADDR]",
         "a process's task policy, or the policy of the VMA at ADDR", args=["pid", "addr"])
def _get_mempolicy(m, args, bg):
    _need(args, 1, "get_mempolicy PID [ADDR]", 2)
    pid = _pid(m, args[0])
    if len(args) == 2:
        mode, nodes = m.get_mempolicy(pid, _addr(args[1]), 2)
    else:
        mode, nodes = m.get_mempolicy(pid)
    base = mode & 0xFF
    return Result(True, f"{MODE_NAMES.get(base, base)} {nodes_str(nodes)}".strip(),
                  value=(mode, nodes))


def _lock_cmd(fn_name):
    def run(m, args, bg):
        _need(args, 2, f"{fn_name} PID RANGE", 2)
        pid = _pid(m, args[0])
        a, ln = _range(m, args[1])
        getattr(m, fn_name)(pid, a, ln)
        return f"{fn_name} done"
    return run


command("mlock", "mlock PID RANGE", "lock a range in memory (VM_LOCKED)",
        args=["pid", "range"])(_lock_cmd("mlock"))
command("munlock", "munlock PID RANGE", "unlock a range", args=["pid", "range"])(
    _lock_cmd("munlock"))


@command("mlockall", "mlockall PID [current] [future]", "lock all of a process's memory",
         args=["pid"])
def _mlockall(m, args, bg):
    _need(args, 1, "mlockall PID [current] [future]", 3)
    pid = _pid(m, args[0])
    fl = 0
    for w in args[1:] or ["current"]:
        if w == "current":
            fl |= MCL_CURRENT
        elif w == "future":
            fl |= MCL_FUTURE
        else:
            raise CommandError(f"mlockall: {w!r} is not current or future")
    m.mlockall(pid, fl)
    return "mlockall done"


@command("munlockall", "munlockall PID", "unlock all of a process's memory", args=["pid"])
def _munlockall(m, args, bg):
    _need(args, 1, "munlockall PID", 1)
    m.munlockall(_pid(m, args[0]))
    return "munlockall done"


@command("pin", "pin PID RANGE [driver=NAME]", "long-term pin a range (an RDMA registration)",
         args=["pid", "range"])
def _pin(m, args, bg):
    pos, kv, fl = _kv(args)
    _need(pos, 2, "pin PID RANGE [driver=NAME]", 2)
    _check_opts(kv, fl, ("driver",))
    a, ln = _range(m, pos[1])
    n = m.pin(_pid(m, pos[0]), a, ln, kv.get("driver"))
    return f"{n} page(s) pinned"


@command("unpin", "unpin PID RANGE [driver=NAME]", "drop long-term pins", args=["pid", "range"])
def _unpin(m, args, bg):
    pos, kv, fl = _kv(args)
    _need(pos, 2, "unpin PID RANGE [driver=NAME]", 2)
    _check_opts(kv, fl, ("driver",))
    a, ln = _range(m, pos[1])
    n = m.unpin(_pid(m, pos[0]), a, ln, kv.get("driver"))
    return f"{n} page(s) unpinned"


@command("hook", "hook DRIVER on|off",
         "switch a driver's vm_ops->migrate (historical: 2.6.18 to ~3.17, no in-tree user)",
         args=["driver"])
def _hook(m, args, bg):
    _need(args, 2, "hook DRIVER on|off", 2)
    if args[1] not in ("on", "off"):
        raise CommandError(f"hook: {args[1]!r} is not on or off")
    m.set_migrate_hook(args[0], args[1] == "on")
    return f"{args[0]}: migrate hook {args[1]}"


@command("era", "era [modern|2.6.18|2006|2.6.17]", "show or set the kernel era")
def _era(m, args, bg):
    _need(args, 0, "era [NAME]", 1)
    if args:

        get_era(args[0])  # validates: ValueError -> one-line error
        m.era = args[0]
    return f"era {m.era.name}"


@command("offline", "offline NODE ZONE [--dry-run]",
         "hot-remove a zone: migrate everything movable off it, then take it offline",
         job="offline", args=["node", "zone"])
def _offline(m, args, bg):
    pos, kv, fl = _kv(args)
    _need(pos, 2, "offline NODE ZONE [--dry-run]", 2)
    _check_opts(kv, fl, (), ("dry-run",))
    node = _int(pos[0], "node")
    zone = pos[1]
    if "dry-run" in fl:
        return _dry_run(m, "offline", node, zone)
    if bg:
        m.zone(node, zone)  # EINVAL now, not from inside a job that already "started"
        return _start_or_run(m, True, "offline", node, zone)
    r = m.offline(node, zone)
    text = r.get("text") if isinstance(r, dict) else None
    return Result(True, text or f"node {node} {zone} offline", value=r)


@command("online", "online NODE ZONE", "hot-add: bring a zone's offline blocks back",
         args=["node", "zone"])
def _online(m, args, bg):
    _need(args, 2, "online NODE ZONE", 2)
    if not hasattr(m, "online"):
        raise CommandError("online: hot-add is not available in this build")
    m.online(_int(args[0], "node"), args[1])
    return f"node {args[0]} {args[1]} online"


@command("numa_maps", "numa_maps PID", "/proc/PID/numa_maps", args=["pid"])
def _numa_maps(m, args, bg):
    _need(args, 1, "numa_maps PID", 1)
    return m.numa_maps(_pid(m, args[0])).rstrip("\n")


@command("numastat", "numastat", "per-node allocation counters")
def _numastat(m, args, bg):
    _need(args, 0, "numastat", 0)
    return m.numastat().rstrip("\n")


@command("zoneinfo", "zoneinfo", "/proc/zoneinfo")
def _zoneinfo(m, args, bg):
    _need(args, 0, "zoneinfo", 0)
    return m.zoneinfo().rstrip("\n")


@command("vmstat", "vmstat", "/proc/vmstat counters")
def _vmstat(m, args, bg):
    _need(args, 0, "vmstat", 0)
    return "\n".join(f"{k} {v}" for k, v in m.vmstat().items())


@command("meminfo", "meminfo NODE", "/sys/devices/system/node/nodeN/meminfo", args=["node"])
def _meminfo(m, args, bg):
    _need(args, 1, "meminfo NODE", 1)
    n = _int(args[0], "node")
    if n not in m.nodes:
        raise CommandError(f"no node {n}")
    return m.meminfo(n).rstrip("\n")


@command("hardware", "hardware", "numactl -H", aliases=("numactl",))
def _hardware(m, args, bg):
    if args and args != ["-H"]:
        raise CommandError("usage: hardware (or numactl -H)")
    return m.hardware().rstrip("\n")


@command("ps", "ps", "processes with pages per node")
def _ps(m, args, bg):
    _need(args, 0, "ps", 0)
    rows = [f"{'PID':>6} {'UID':>5} {'NODE':>4} {'RSS':>8}  NAME"]
    for pid in m.pids:
        p = m.process(pid)
        rows.append(f"{pid:>6} {p.uid:>5} {p.node:>4} {fmt_size(resident_pages(m, p) * m.page_size):>8}  "
                    f"{p.name}")
    return "\n".join(rows)


@command("jobs", "jobs", "running jobs")
def _jobs(m, args, bg):
    _need(args, 0, "jobs", 0)
    if not m.jobs:
        return "no running jobs"
    return "\n".join(f"{j.id} {j.name} {j.state} {j.done}/{j.total}" for j in m.jobs)


@command("cancel", "cancel JOB", "cancel a running job", args=["job"])
def _cancel(m, args, bg):
    _need(args, 1, "cancel JOB", 1)
    jid = _int(args[0], "job")
    for j in m.jobs:
        if j.id == jid:
            j.cancel()
            return f"job {jid} cancelling"
    raise CommandError(f"no running job {jid}")


@command("check", "check", "verify the machine's invariants and the integrity oracle")
def _check(m, args, bg):
    _need(args, 0, "check", 0)
    m.check()
    return "machine consistent"


@command("save", "save PATH", "write an exact snapshot (atomically)", args=["path"])
def _save(m, args, bg):
    _need(args, 1, "save PATH", 1)

    save(m, args[0])
    return f"saved {args[0]}"


@command("load", "load PATH", "load a description or snapshot (replaces the machine)",
         args=["path"])
def _load(m, args, bg):
    _need(args, 1, "load PATH", 1)

    new = load(args[0])
    return Result(True, f"loaded {args[0]}: {new!r}", machine=new)


# ------------------------------------------------------------------ runtime (issue 4):
# simulated time, workloads, access statistics, the daemon, the timeline, the bill

def _ns(s: str, what: str = "time") -> int:
    """"10ms", "1.5s", "500us", "200ns" or plain nanoseconds."""
    t = s.strip().lower()
    for suf, mul in (("ms", 1_000_000), ("us", 1_000), ("ns", 1), ("s", 1_000_000_000)):
        if t.endswith(suf):
            t, scale = t[: -len(suf)], mul
            break
    else:
        scale = 1
    try:
        v = float(t) * scale
    except ValueError:
        raise CommandError(f"{what}: {s!r} is not a time like 10ms") from None
    if not v >= 0 or v > 1e18:
        raise CommandError(f"{what}: {s!r} is out of range")
    return int(v)


def _float(s: str, what: str) -> float:
    try:
        v = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise CommandError(f"{what}: {s!r} is not a number") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise CommandError(f"{what}: {s!r} is not a finite number")
    return v


def _onoff(s: str, what: str) -> bool:
    if s.lower() in ("on", "yes", "true", "1"):
        return True
    if s.lower() in ("off", "no", "false", "0"):
        return False
    raise CommandError(f"{what}: {s!r} is not on or off")


@command("clock", "clock [pause|resume|fast|speed X]",
         "simulated time: show it, pause jobs, run at X times real time, or as fast as possible")
def _clock(m, args, bg):

    _need(args, 0, "clock [pause|resume|fast|speed X]", 2)
    ctl = m.clockctl
    if args:
        w = args[0]
        if w == "pause":
            ctl.pause()
        elif w == "resume":
            ctl.resume()
        elif w == "fast":
            ctl.set_fast()
        elif w == "speed":
            _need(args, 2, "clock speed X", 2)
            x = _float(args[1].rstrip("x"), "speed")
            if x <= 0:
                raise CommandError("speed: must be positive")
            ctl.set_speed(x)
        else:
            raise CommandError(f"clock: {w!r} is not pause, resume, fast or speed")
    return Result(True, f"clock {fmt_ns(m.clock)} ({m.clock} ns), {ctl.describe()}",
                  value=m.clock)


_WL_USAGE = ("workload PID [RANGE] [size=S] [pattern=uniform|zipf|hot|seq|stairs|zigzag] "
             "[threads=NODES] [ticks=N] [rate=N] [write=F] [zipf=A] [width=F] [step=N] "
             "[shard=on|off] [init=NODE|none] [seed=N] [watch=hint,damon] [--loop] "
             "[then KEY=V ...]  |  workload stop ID|PID|all")


def _wl_phase(kv: dict) -> dict:
    out = {}
    for k, v in kv.items():
        if k == "pattern":
            out[k] = v
        elif k == "threads":
            out[k] = v
        elif k in ("ticks", "rate", "step"):
            out[k] = _int(v, k)
        elif k in ("write", "zipf", "width"):
            out[k] = _float(v, k)
        elif k in ("shard", "scatter"):
            out[k] = _onoff(v, k)
        else:
            raise CommandError(f"workload: unknown option {k}= (usage: {_WL_USAGE})")
    return out


@command("workload", _WL_USAGE,
         "run a workload: threads on nodes access a region in a pattern (tick by tick)",
         job="workload", args=["pid", "range"])
def _workload(m, args, bg):

    if args and args[0] == "stop":
        _need(args, 2, "workload stop ID|PID|all", 2)
        hit = [w for w in m.workloads if w.running and
               (args[1] == "all" or str(w.id) == args[1] or str(w.pid) == args[1])]
        if not hit:
            raise CommandError(f"no running workload {args[1]}")
        for w in hit:
            w.stop()
        return f"stopping {len(hit)} workload(s)"
    groups = [[]]
    for a in args:
        if a == "then":
            groups.append([])
        else:
            groups[-1].append(a)
    pos, kv, fl = _kv(groups[0])
    _need(pos, 1, _WL_USAGE, 2)
    _check_opts(kv, fl, ("size", "pattern", "threads", "ticks", "rate", "write", "zipf",
                         "width", "step", "shard", "scatter", "init", "seed", "watch"),
                ("loop",))
    pid = _pid(m, pos[0])
    opts = {}
    if len(pos) == 2:
        opts["addr"], opts["length"] = _range(m, pos[1])
    if "size" in kv:
        opts["size"] = _size(kv.pop("size"))
    if "init" in kv:
        v = kv.pop("init")
        opts["init"] = "none" if v == "none" else _int(v, "init")
    if "seed" in kv:
        opts["seed"] = _int(kv.pop("seed"), "seed")
    if "watch" in kv:
        opts["watch"] = kv.pop("watch")
    phases = [_wl_phase(kv)]
    for g in groups[1:]:
        p2, kv2, fl2 = _kv(g)
        if p2 or fl2:
            raise CommandError(f"workload: a phase after 'then' takes KEY=V only ({g})")
        phases.append(_wl_phase(kv2))
    if len(phases) > 1:
        opts["phases"] = phases
    else:
        opts.update(phases[0])
    opts["loop"] = "loop" in fl
    if opts["loop"] and not bg:
        raise CommandError("workload --loop runs until stopped: start it in the "
                           "background (end the line with &)")
    addr = opts.pop("addr", None)
    length = opts.pop("length", None)
    if bg:
        job = m.start("workload", pid, addr, length, **opts)
        return Result(True, f"job {job.id} started: workload {job.owner.id} on pid {pid}",
                      job=job)

    # a script: step every pending job (daemons too) until this workload ends
    job = m.start_sync("workload", pid, addr, length, **opts)
    while not job.finished and m.run_jobs() > 0:
        pass
    if job.state == "failed":
        raise job.error
    return Result(True, job.owner.describe(), value=job.result)


@command("workloads", "workloads [start]",
         "workloads with locality, latency and stalls; `start`: those of the description")
def _workloads(m, args, bg):

    _need(args, 0, "workloads [start]", 1)
    if args:
        if args[0] != "start":
            raise CommandError(f"workloads: {args[0]!r} is not start")
        specs = described(m)
        if not specs:
            raise CommandError("the machine's description has no [[workloads]]")

        jobs = [m.start("workload", **kw) if bg else m.start_sync("workload", **kw)
                for kw in specs]
        if not bg:
            m.run_jobs()
        return Result(True, f"{len(jobs)} workload(s) started" if bg else
                      "\n".join(j.owner.describe() for j in jobs), job=jobs[0])
    wl = m.workloads
    if not wl:
        return "no workloads"
    lines = [w.describe() for w in wl]
    for pid in sorted({w.pid for w in wl}):
        s = process_stats(m, m.workloads, pid)
        lines.append(f"pid {pid}: {s['local']} local, {s['remote']} remote accesses "
                     f"({s['locality']:.1%} local), avg latency {s['avg_latency_ns']:.0f} ns, "
                     f"{s['stalls']} stalls")
    return "\n".join(lines)


def _find_workload(m, s: str):

    n = _int(s, "workload")
    by_pid = [w for w in m.workloads if w.pid == n]
    if by_pid:
        run = [w for w in by_pid if w.running]
        return (run or by_pid)[-1]
    for w in m.workloads:
        if w.id == n:
            return w
    raise CommandError(f"no workload for pid {n} (nor workload id {n})")


@command("access", "access PID [watch hint,damon] [reset]",
         "what user space can see about accesses (numastat, move_pages query, hint faults, "
         "DAMON) scored against the truth", args=["pid"])
def _access(m, args, bg):

    _need(args, 1, "access PID [watch hint,damon] [reset]", 3)
    wl = _find_workload(m, args[0])
    if len(args) >= 2:
        if args[1] == "watch":
            _need(args, 3, "access PID watch hint,damon", 3)
            access.watch(m, wl, args[2])
            return f"workload {wl.id}: watching {args[2]}"
        if args[1] == "reset":
            _need(args, 2, "access PID reset", 2)
            access.reset(m, wl)
            return f"workload {wl.id}: access statistics start again"
        raise CommandError(f"access: {args[1]!r} is not watch or reset")
    return Result(True, access.compare_text(m, wl), value=access.compare(m, wl))


_DAEMON_USAGE = ("daemon start PID [mode=user|autonuma|damos] [source=hint|truth|damon|query] "
                 "[period=10ms] [rate=MB/s] [threshold=F] [min=N] [hysteresis=F] "
                 "[cooldown=50ms] [decay=F] [hot=NODE] [cold=NODE] [hot_min=F] "
                 "[cold_max=F] [cold_age=N] [duration=T]  |  daemon stop [ID]  |  "
                 "daemon [report [ID]]")


def _daemon_opts(kv: dict) -> dict:
    out = {}
    for k, v in kv.items():
        if k in ("mode", "source"):
            out[k] = v
        elif k in ("period", "cooldown", "duration"):
            out[{"period": "period_ns", "cooldown": "cooldown_ns",
                 "duration": "duration_ns"}[k]] = _ns(v, k)
        elif k == "rate":
            out["rate_mbps"] = _float(v, k)
        elif k == "min":
            out["min_accesses"] = _float(v, k)
        elif k in ("threshold", "hysteresis", "decay", "hot_min", "cold_max"):
            out[k] = _float(v, k)
        elif k in ("hot", "cold", "cold_age"):
            out[k] = _int(v, k)
        else:
            raise CommandError(f"daemon: unknown option {k}= (usage: {_DAEMON_USAGE})")
    return out


@command("daemon", _DAEMON_USAGE,
         "automatic page migration: a user-space daemon, AutoNUMA, or DAMOS hot/cold",
         job="daemon", args=["pid"])
def _daemon(m, args, bg):

    w = args[0] if args else "report"
    if w == "start":
        pos, kv, fl = _kv(args[1:])
        _need(pos, 1, _DAEMON_USAGE, 1)
        _check_opts(kv, fl, ("mode", "source", "period", "rate", "threshold", "min",
                             "hysteresis", "cooldown", "decay", "hot", "cold", "hot_min",
                             "cold_max", "cold_age", "duration"))
        pid = _pid(m, pos[0])
        # always a job: it runs beside workloads (scripts step it with them)
        if bg:
            job = m.start("daemon", pid, **_daemon_opts(kv))
        else:

            job = m.start_sync("daemon", pid, **_daemon_opts(kv))
        return Result(True, f"job {job.id} started: daemon on pid {pid}", job=job)
    ds = m.daemons
    if w == "stop":
        _need(args, 1, "daemon stop [ID]", 2)
        hit = [d for d in ds if d.state == "running" and
               (len(args) == 1 or str(d.id) == args[1])]
        if not hit:
            raise CommandError("no running daemon" + (f" {args[1]}" if len(args) > 1 else ""))
        for d in hit:
            d.stop()
        m.run_jobs()  # scripts: let it finish and report; the event loop does it otherwise
        return "\n".join(d.report_text() for d in hit)
    if w in ("report", "status"):
        _need(args, 0, "daemon report [ID]", 2)
        sel = [d for d in ds if len(args) < 2 or str(d.id) == args[1]]
        if not sel:
            return "no daemons"
        return Result(True, "\n".join(d.report_text() for d in sel),
                      value=[d.report() for d in sel])
    raise CommandError(f"daemon: {w!r} is not start, stop or report")


@command("wait", "wait", "run pending jobs to the end (scripts: jobs started with &)")
def _wait(m, args, bg):
    _need(args, 0, "wait", 0)
    pending = [j for j in m.jobs if j._task is None]
    if not pending:
        return "no pending jobs" + (" (jobs run in the background)" if m.jobs else "")
    rounds = m.run_jobs()
    left = [j for j in m.jobs if not j.finished and j._task is None]
    text = f"{rounds} rounds; " + ", ".join(f"{j.name} {j.state}" for j in pending)
    if left:
        text += f"; {len(left)} job(s) idle (waiting for something to run)"
    return text


@command("timeline", "timeline [WIDTH]",
         "per-node used pages and migration traffic over simulated time")
def _timeline(m, args, bg):

    _need(args, 0, "timeline [WIDTH]", 1)
    width = _int(args[0], "width") if args else 40
    if not 4 <= width <= 400:
        raise CommandError("width: 4..400")
    return timeline_text(m, m.timeline, width)


@command("bill", "bill [run]",
         "the last migration bill (--dry-run); `bill run` makes the call and shows "
         "predicted against actual")
def _bill(m, args, bg):
    _need(args, 0, "bill [run]", 1)
    b = m.last_bill
    if b is None:
        raise CommandError("no bill yet: add --dry-run to move_pages, migratepages, mbind "
                           "or offline")
    if args:
        if args[0] != "run":
            raise CommandError(f"bill: {args[0]!r} is not run")
        if b.actual is not None:
            raise CommandError("this bill already ran; make a new one with --dry-run")
        if bg:
            job = m.start("bill", b)
            return Result(True, f"job {job.id} started: {b.kind} (billed)", job=job)
        try:
            m.run_bill(b)
        except OSError:
            pass  # the outcome, error included, is in the bill
        return Result(True, b.text, value=b)
    return Result(True, b.text, value=b)


@command("experiment", "experiment PID WORKLOAD-OPTIONS -- DAEMON-OPTIONS",
         "run a workload on copies of this machine with the daemon off and on (same seed)",
         args=["pid"])
def _experiment(m, args, bg):

    pid, wopts, dopts = parse_experiment(args)
    r = compare_runs(m, pid, wopts, dopts)
    # sweep (tools/sweep.py, issue 17): last_off/last_on, the last-window locality the
    # table prints, so that a sweep row carries every figure of the text
    return Result(True, r["text"], value={"off": r["off"]["workload"],
                                          "on": r["on"]["workload"],
                                          "daemon": r["on"]["daemon"],
                                          "last_off": r["off"]["last"],
                                          "last_on": r["on"]["last"]})


def parse_experiment(args: list[str]) -> tuple[int, dict, dict]:
    """`experiment`'s arguments -> (pid, workload options, daemon options); raises
    CommandError. Split out of _experiment so that a sweep spec (tools/sweep.py) is
    checked by this same parser before any run starts."""
    usage = "experiment PID [size=S] [pattern=P] [threads=NODES] ... -- [mode=..] [source=..] .."
    if "--" in args:
        i = args.index("--")
        wargs, dargs = args[:i], args[i + 1:]
    else:
        wargs, dargs = args, []
    pos, kv, fl = _kv(wargs)
    _need(pos, 1, usage, 1)
    _check_opts(kv, fl, ("size", "pattern", "threads", "ticks", "rate", "write", "zipf",
                         "width", "step", "shard", "scatter", "init", "seed"))
    pid = _pid(None, pos[0])
    wopts = {}
    if "size" in kv:
        wopts["size"] = _size(kv.pop("size"))
    if "init" in kv:
        v = kv.pop("init")
        wopts["init"] = "none" if v == "none" else _int(v, "init")
    if "seed" in kv:
        wopts["seed"] = _int(kv.pop("seed"), "seed")
    wopts.update(_wl_phase(kv))
    dpos, dkv, dfl = _kv(dargs)
    if dpos or dfl:
        raise CommandError(f"experiment: daemon options are KEY=V ({usage})")
    return pid, wopts, _daemon_opts(dkv)
