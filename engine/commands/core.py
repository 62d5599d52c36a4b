"""The command registry and `execute(m, line)`: the one entry of the command
language, shared by the console's command line, its keys, the palette, `numacon run`
and the tests. A line is parsed completely (engine/commands/spec.py) before anything
runs, so a malformed line changes nothing and answers with one line."""

from __future__ import annotations

import errno as _errno
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from ..machine import Machine
from ..machines.container import SaveError
from ..machines.description import DescriptionError
from .spec import Args, CommandError, Spec


@dataclass
class Result:
    ok: bool
    text: str
    job: object = None
    machine: object = None  # a machine that `load` produced; the caller adopts it
    value: object = None
    # a rehearsal to show before anything acts (the live host's console): `review` is
    # its title, `confirm` the line that carries it out, run only after the user
    # confirms (None: nothing may be carried out, e.g. the host is read-only)
    review: str | None = None
    confirm: str | None = None

    def __bool__(self) -> bool:
        return self.ok


@dataclass
class Sub:
    """One form of a command: its spec, what it does, and the function that runs it
    (fn(m, args: Args, bg: bool))."""

    word: str | None  # the sub-command word (None: the command's only form)
    spec: Spec
    help: str
    run: Callable


@dataclass
class Command:
    name: str
    help: str
    forms: list[Sub] = field(default_factory=list)
    aliases: tuple = ()
    job: str | None = None  # the job name when it can run in the background
    default: str | None = None  # the form used when no sub-command word is given

    @property
    def usage(self) -> str:
        return "  |  ".join(f.spec.usage(self.name if f.word is None else
                                         f"{self.name} {f.word}") for f in self.forms)

    @property
    def args(self) -> list[str]:
        """Completion hints of the first form's positionals (pid, range, node...)."""
        f = self.forms[0]
        return ([] if f.word is None else ["word"]) + f.spec.hints()

    @property
    def words(self) -> list[str]:
        """Sub-command words, flags and keywords Tab may complete."""
        out = [f.word for f in self.forms if f.word is not None]
        for f in self.forms:
            out += [f"--{x}" for x in f.spec.flags] + list(f.spec.words)
            out += [f"{k}=" for k in f.spec.opts]
        return list(dict.fromkeys(out))

    def form(self, words: list[str]) -> tuple[Sub, list[str]]:
        subs = {f.word: f for f in self.forms if f.word is not None}
        if not subs:
            return self.forms[0], words
        if words and words[0] in subs:
            return subs[words[0]], words[1:]
        if self.default is not None:
            return subs[self.default], words
        raise CommandError(f"{self.name}: say {' or '.join(subs)}; usage: {self.usage}")


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, spec: Spec | None = None, *, aliases=(), job=None,
            word: str | None = None, default: str | None = None):
    """Register a command (or, with `word`, one sub-command form of it)."""
    def deco(fn: Callable) -> Callable:
        c = COMMANDS.get(name)
        if c is None:
            c = Command(name, help, aliases=tuple(aliases), job=job, default=default)
            COMMANDS[name] = c
            for a in aliases:
                COMMANDS[a] = c
        if default is not None:
            c.default = default
        c.forms.append(Sub(word, spec or Spec(), help, fn))
        return fn
    return deco


def command_names(commands: dict[str, Command] | None = None) -> list[str]:
    return sorted({c.name for c in (COMMANDS if commands is None else commands).values()})


def execute(m: Machine, line: str, *, background: bool = False,
            commands: dict[str, Command] | None = None) -> Result:
    """Run one command line. background=True starts long operations as jobs (the TUI);
    otherwise they run to completion. `commands`: another registry built from the same
    Command and Spec objects (the live host's, engine/host/commands.py). Never raises:
    errors come back as a Result."""
    registry = COMMANDS if commands is None else commands
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
        name, rest = words[0], words[1:]
        bg = background
        if rest and rest[-1] == "&":
            rest = rest[:-1]
            bg = True
        cmd = registry.get(name)
        if cmd is None:
            close = [c for c in command_names(registry) if c.startswith(name[:3])]
            hint = f" (did you mean {', '.join(close[:3])}?)" if close else ""
            raise CommandError(f"unknown command {name!r}{hint}; try: help")
        form, rest = cmd.form(rest)
        label = cmd.name if form.word is None else f"{cmd.name} {form.word}"
        args = form.spec.parse(m, rest, label)
        out = form.run(m, args, bg)
        if isinstance(out, Result):
            return out
        return Result(True, "" if out is None else str(out))
    except CommandError as e:
        return Result(False, f"error: {e}")
    except OSError as e:
        return Result(False, f"error: {oserr(e)}")
    except (SaveError, DescriptionError, ValueError) as e:
        return Result(False, f"error: {e}")
    except Exception as e:  # noqa: BLE001 - a console never dies on a command
        return Result(False, f"error: internal: {type(e).__name__}: {e}")


def oserr(e: OSError) -> str:
    if e.errno is None:
        return str(e)
    name = _errno.errorcode.get(e.errno, str(e.errno))
    return f"{name}: {e.strerror}"


def start_or_run(m: Machine, bg: bool, jobname: str, *args, **kw):
    """Start a job (background) or run the same generator to completion."""
    if bg:
        job = m.start(jobname, *args, **kw)  # argument errors raise here
        return Result(True, f"job {job.id} started: {jobname}", job=job)
    return m.run(m.job_generators()[jobname](*args, **kw))


__all__ = ["Args", "Command", "CommandError", "COMMANDS", "Result", "command",
           "command_names", "execute", "oserr", "start_or_run"]
