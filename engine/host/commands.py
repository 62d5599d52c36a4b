"""The command language on the live host: a registry of the same Command and Spec
objects as the simulator's (engine/commands), run by the same `execute`, so a line
parses the same way on both (one truth for arguments, usage and completion).

- Shared as they are: numa_maps, numastat, zoneinfo, vmstat, meminfo, hardware: their
  bodies call methods the Host offers under the Machine's names and print the host's
  files (numastat and numactl -H through the simulator's formatters).
- Same spec, host body: ps, move_pages, migratepages, help. move_pages with NODES and
  migratepages make the real calls (refused unless --allow-actions); move_pages without
  NODES is a query and always allowed; --dry-run is the rehearsal's prediction.
- Host only: rehearse (move_pages / migratepages: predicted against actual), apply N
  (carry out the rehearsal the console showed), frames (frame classes per node and
  zone from kpageflags), frame PFN (the inspector's lines), blocks (memory blocks),
  refresh (the refresh rates; faster / slower), limits (what the current credentials
  hide).
- On a host opened for the console (Host(confirm=True), `numacon host`) no line acts
  at once: move_pages with NODES, migratepages and rehearse give the rehearsal (a
  Result with `review`, and `confirm` = "apply N" when actions are allowed); the
  console shows it and runs `apply N` only after the user confirms. Read-only, the
  rehearsal is shown and the action refused.
- Every other simulator command is refused with one line: it acts on a simulated
  machine and has no meaning here."""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable

import numpy as np

from ..commands import COMMANDS, Command, execute
from ..commands.core import Result, Sub
from ..commands.migration import MAX_RANGE_PAGES, range_pages
from ..commands.spec import Arg, CommandError, Opt, Spec, Words, integer, number, text
from ..constants import MPOL_MF_MOVE, MPOL_MF_MOVE_ALL
from ..views import fmt_bytes, status_counts_text
from .host import Host
from .kpage import CLASSES
from .refresh import RATE_KEYS
from .rehearse import Rehearsal, RehearsalError, act, headline, rehearse
from .syscalls import ActionRefused
from .views import describe_frame, frames_unavailable, status_line

SHARED = ("numa_maps", "numastat", "zoneinfo", "vmstat", "meminfo", "hardware")
HOST_COMMANDS: dict[str, Command] = {}


def _host_errors(fn: Callable) -> Callable:
    """The host's own refusals as one-line command errors."""
    @functools.wraps(fn)
    def run(m, a, bg):
        try:
            return fn(m, a, bg)
        except (ActionRefused, RehearsalError) as e:
            raise CommandError(str(e)) from None
    return run


def _register(name: str, help: str, spec: Spec, fn: Callable, *, word: str | None = None,
              aliases: tuple = ()) -> None:
    c = HOST_COMMANDS.get(name)
    if c is None:
        c = Command(name, help, aliases=aliases)
        HOST_COMMANDS[name] = c
        for a in aliases:
            HOST_COMMANDS[a] = c
    c.forms.append(Sub(word, spec, help, _host_errors(fn)))


def host_command(name: str, help: str, spec: Spec | None = None, *, word: str | None = None,
                 aliases: tuple = ()):
    def deco(fn: Callable) -> Callable:
        _register(name, help, spec or Spec(), fn, word=word, aliases=aliases)
        return fn
    return deco


def _spec(name: str) -> Spec:
    """The simulator command's own argument spec."""
    return COMMANDS[name].forms[0].spec


for _name in SHARED:
    HOST_COMMANDS[_name] = COMMANDS[_name]
    for _a in COMMANDS[_name].aliases:
        HOST_COMMANDS[_a] = COMMANDS[_name]


# ------------------------------------------------------------------ views

@host_command("help", "list the host's commands, or show one command's usage",
              _spec("help"))
def _help(m: Host, a, bg):
    if a.command is not None:
        c = HOST_COMMANDS.get(a.command)
        if c is None:
            raise CommandError(f"no command {a.command!r} on the host")
        return f"{c.usage}\n  {c.help}"
    names = sorted({c.name for c in HOST_COMMANDS.values()} - set(REFUSED))
    out = [f"{HOST_COMMANDS[n].usage:<60} {HOST_COMMANDS[n].help}" for n in names]
    out.append(f"not on the host (they act on a simulated machine): {', '.join(REFUSED)}")
    return "\n".join(out)


@host_command("ps", "processes with their resident memory (VmRSS)", _spec("ps"))
def _ps(m: Host, a, bg):
    m.read_process_list()
    rows = [f"{'PID':>6} {'UID':>5} {'NODE':>4} {'RSS':>8}  NAME"]
    for pid in m.pids:
        p = m.procs[pid]
        rows.append(f"{pid:>6} {p.uid:>5} {p.node:>4} {fmt_bytes(p.rss * m.page_size):>8}  "
                    f"{p.name}")
    return "\n".join(rows)


def _pfn(m, s: str) -> int:
    v = integer("pfn")(m, s)
    if v < 0:
        raise CommandError(f"pfn: {s} is negative")
    return v


@host_command("frame", "one frame: node, zone, block, class, kpageflags, map count, owner",
              Spec(Arg("PFN", _pfn, "pfn")))
def _frame(m: Host, a, bg):
    if a.pfn >= m.nr_frames:
        raise CommandError(f"pfn {a.pfn:#x} is beyond the last frame ({m.nr_frames:#x})")
    return "\n".join(f"{k:<10} {v}" for k, v in describe_frame(m, a.pfn))


@host_command("frames", "frames per class in each node's zones (a pass over /proc/kpageflags)")
def _frames(m: Host, a, bg):
    why = frames_unavailable(m)
    if why is not None:
        raise CommandError(why)
    m.frames.run()
    rows = [f"{'node':<5}{'zone':<8}" + "".join(f"{c:>12}" for c in CLASSES)]
    for z in m.zones:
        cnt = m.frames.counts.get(z.zid)
        if cnt is None:
            continue
        rows.append(f"{z.node:<5}{z.name:<8}" + "".join(f"{int(c):>12}" for c in cnt))
    rows.append(f"(frames; a pass took {m.frames.pass_seconds * 1e3:.0f} ms)")
    return "\n".join(rows)


@host_command("blocks", "memory blocks (/sys/devices/system/memory): state, node, zone")
def _blocks(m: Host, a, bg):
    m.read_system()
    rows = [f"{'BLOCK':<12}{'STATE':<9}{'NODE':>5}  {'ZONE':<8}{'START PFN':>12}  VALID ZONES"]
    for b in m.blocks():
        rows.append(f"{'memory' + str(b['index']):<12}{b['state']:<9}{b['node']:>5}  "
                    f"{b['zone'] or '-':<8}{b['start_pfn']:>12}  {b['valid_zones']}")
    rows.append(f"block size {fmt_bytes(m.block_size)}")
    return "\n".join(rows)


def _period(key: str):
    return Opt(key, number(f"refresh {key}"), "S")


@host_command("refresh", "show or set the refresh rates (seconds between readings); "
              "faster halves every period, slower doubles them",
              Spec(Words("faster", "slower"), *(_period(k) for k in RATE_KEYS)))
def _refresh(m: Host, a, bg):
    given = {k: getattr(a, k) for k in RATE_KEYS if k in a.given}
    if len(a.words) > 1 or (a.words and given):
        raise CommandError("refresh: say faster, slower, or the periods, one of them")
    if given:
        try:
            m.refresh.set_rates(**given)
        except ValueError as e:
            raise CommandError(str(e)) from None
    if "faster" in a.words:
        m.refresh.faster()
    elif "slower" in a.words:
        m.refresh.slower()
    if m.frames is not None:
        m.frames.max_age = m.refresh.rates.frames
    return m.refresh.text(len(m.procs))


@host_command("limits", "what numacon cannot show or do with the current credentials")
def _limits(m: Host, a, bg):
    lim = m.limits()
    return "\n".join([status_line(m)] + [f"  {x}" for x in lim] if lim else
                     [status_line(m), "  nothing hidden"])


# ------------------------------------------------------------------ the calls

def host_pages(m: Host, pid: int, rng) -> np.ndarray:
    """The page addresses of a range, or of every VMA of the process ("all": read
    from /proc/PID/maps now; the kernel's vdso/vvar/vsyscall mappings left out)."""
    if rng != "all":
        return range_pages(m, pid, rng)
    p = m.read_vmas(pid)
    if p.vmas_error:
        raise OSError(errno.EACCES, f"/proc/{pid}/maps: {p.vmas_error}")
    spans = [(v.start, v.length) for v in p.vmas if not v.special]
    if sum(ln for _, ln in spans) // m.page_size > MAX_RANGE_PAGES:
        raise CommandError(f"pid {pid} maps more than {MAX_RANGE_PAGES} pages: give a range")
    parts = [range_pages(m, pid, s) for s in spans]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _targets(nodes, n: int) -> np.ndarray:
    if not nodes:
        raise CommandError("NODES is empty")
    return np.asarray(nodes, np.int64)[np.arange(n) % len(nodes)]


def _raise(call) -> None:
    if not call.ok:
        raise OSError(call.errno, os.strerror(call.errno))


@host_command("move_pages", "move_pages(2) on the host: NODES moves (needs --allow-actions), "
              "no NODES queries, --dry-run rehearses", _spec("move_pages"))
def _move_pages(m: Host, a, bg):
    if a.nodes is not None and "dry-run" not in a.flags and not m.confirm_actions:
        m.actions.refuse("move_pages")  # before anything is read
    pages = host_pages(m, a.pid, a.range)
    flags = MPOL_MF_MOVE_ALL if "all" in a.flags else MPOL_MF_MOVE
    if a.nodes is None:
        if "dry-run" in a.flags:
            return _rehearse_text(m, "move_pages", a.pid, pages, None, 0, act_too=False)
        st = m.actions.query(a.pid, pages)
        _raise(st)
        return Result(True, f"{pages.size} pages: {status_counts_text(st.status)}", value=st)
    targets = _targets(a.nodes, pages.size)
    if "dry-run" in a.flags:
        return _rehearse_text(m, "move_pages", a.pid, pages, targets, flags, act_too=False)
    if m.confirm_actions:
        return _review(m, rehearse(m, "move_pages", a.pid, pages, targets, flags))
    st = m.actions.move_pages(a.pid, pages, targets, flags)
    _raise(st)
    return Result(True, f"{pages.size} pages: {status_counts_text(st.status)}; ret={st.ret}",
                  value=st)


@host_command("migratepages", "migrate_pages(2) on the host (needs --allow-actions); "
              "--dry-run rehearses", _spec("migratepages"), aliases=("migrate_pages",))
def _migratepages(m: Host, a, bg):
    if "dry-run" in a.flags:
        return _rehearse_text(m, "migrate_pages", a.pid, a.from_nodes, a.to_nodes,
                              act_too=False)
    if m.confirm_actions:
        return _review(m, rehearse(m, "migrate_pages", a.pid, a.from_nodes, a.to_nodes))
    r = m.actions.migrate_pages(a.pid, a.from_nodes, a.to_nodes)
    _raise(r)
    return Result(True, f"{r.ret} page(s) not moved", value=r)


# ------------------------------------------------------------------ rehearse, then act

SCALE = Opt("scale", number("scale"), "F")


def _acts(m: Host, r: Rehearsal) -> bool:
    """Would carrying out r change the host (a move_pages query does not)?"""
    return r.kind != "move_pages" or r.host_args[1] is not None


def _rehearse_text(m: Host, kind: str, pid: int, *args, act_too: bool,
                   scale: float | None = None) -> Result:
    r = rehearse(m, kind, pid, *args, scale=scale)
    if act_too and m.confirm_actions and _acts(m, r):
        return _review(m, r)
    if act_too:
        if m.actions.allow or not _acts(m, r):
            act(m, r)
        else:
            r.refused = "read-only: pass --allow-actions to apply it to the host"
    # the console shows a rehearsal in its dialog (here: nothing to confirm)
    review = None if not m.confirm_actions else headline(r) if act_too else \
        f"{headline(r)} (--dry-run: the prediction only)"
    return Result(True, r.text, value=r, review=review)


def _review(m: Host, r: Rehearsal) -> Result:
    """The console's rehearsal: numbered, and waiting as m.pending for `apply N` when
    actions are allowed; refused (after the rehearsal, which is shown) when not."""
    m.rehearsals += 1
    n = m.rehearsals
    if m.actions.allow or not _acts(m, r):
        m.pending = (n, r)
        r.refused = f"waiting for confirmation: apply {n}"
        return Result(True, r.text, value=r, review=f"rehearsal {n}: {headline(r)}",
                      confirm=f"apply {n}")
    m.pending = None
    r.refused = ("refused: the host is open read-only; pass --allow-actions to let "
                 "numacon change it")
    return Result(False, r.text, value=r, review=f"rehearsal {n}: {headline(r)}")


@host_command("apply", "carry out rehearsal N on the host, as rehearsed (the console's "
              "confirmation; needs --allow-actions): predicted against actual",
              Spec(Arg("N", integer("rehearsal"))))
def _apply(m: Host, a, bg):
    pend = m.pending
    if pend is None or pend[0] != a.n:
        last = f"; the last one is {m.rehearsals}" if m.rehearsals else ""
        raise CommandError(f"apply {a.n}: no rehearsal {a.n} is waiting (each one waits "
                           f"until applied once or replaced by the next{last})")
    n, r = pend
    if _acts(m, r):
        m.actions.refuse("apply")
    m.pending = None
    r.refused = None
    act(m, r)
    return Result(True, r.text, value=r, review=f"applied {n}: {headline(r)}")


def _scale(a) -> float | None:
    if a.scale is not None and not 0 < a.scale <= 1:
        raise CommandError(f"scale {a.scale:g} must be in (0, 1]")
    return a.scale


@host_command("rehearse", "run the call in the simulator on a capture of this host, then on "
              "the host (with --allow-actions), and compare", Spec(
                  *_spec("move_pages").items, SCALE), word="move_pages")
def _rehearse_move(m: Host, a, bg):
    pages = host_pages(m, a.pid, a.range)
    flags = MPOL_MF_MOVE_ALL if "all" in a.flags else MPOL_MF_MOVE
    if a.nodes is None:
        return _rehearse_text(m, "move_pages", a.pid, pages, None, 0,
                              act_too="dry-run" not in a.flags, scale=_scale(a))
    return _rehearse_text(m, "move_pages", a.pid, pages, _targets(a.nodes, pages.size),
                          flags, act_too="dry-run" not in a.flags, scale=_scale(a))


def _rehearse_migrate(m: Host, a, bg):
    return _rehearse_text(m, "migrate_pages", a.pid, a.from_nodes, a.to_nodes,
                          act_too="dry-run" not in a.flags, scale=_scale(a))


for _w in ("migratepages", "migrate_pages"):
    _register("rehearse", "", Spec(*_spec("migratepages").items, SCALE), _rehearse_migrate,
              word=_w)


# ------------------------------------------------------------------ refused

# every simulator command the host has no form of (computed before they are added)
REFUSED: tuple[str, ...] = tuple(sorted({c.name for n, c in COMMANDS.items()
                                         if n not in HOST_COMMANDS}))


def _refuse(name: str) -> Callable:
    def run(m, a, bg):
        hint = "; rehearse runs a call in the simulator first" if name == "bill" else ""
        raise CommandError(f"{name}: not on the live host (it acts on a simulated "
                           f"machine){hint}")
    return run


for _name in REFUSED:
    _c = COMMANDS[_name]
    HOST_COMMANDS[_name] = Command(_name, f"(simulator only) {_c.help}", [
        Sub(None, Spec(rest=Arg("ARGS", text)), _c.help, _refuse(_name))], aliases=_c.aliases)
    for _a in _c.aliases:
        HOST_COMMANDS[_a] = HOST_COMMANDS[_name]


# what the host runs (the refused ones left out): what completion and help offer
HOST_OFFERED: dict[str, Command] = {n: c for n, c in HOST_COMMANDS.items()
                                    if c.name not in REFUSED}


def host_execute(m: Host, line: str, *, background: bool = False) -> Result:
    """Run one command line on the host (engine.commands.execute over HOST_COMMANDS)."""
    return execute(m, line, background=False, commands=HOST_COMMANDS)


__all__ = ["HOST_COMMANDS", "REFUSED", "host_execute", "host_pages"]
