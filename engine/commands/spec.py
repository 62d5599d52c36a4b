"""Argument specs: one declaration per command gives its usage text, its validation
and its completion hints (the console's Tab). A spec is a sequence of items:

    Arg("PID", pid)              a positional argument (optional=True: may be left out)
    Opt("node", node, "N")       a key=value option
    Flag("dry-run")              a --flag
    Words("strict", "move")      bare keywords that may follow, each at most once

and, for grammars of several parts, `split=(word, spec)`: the word starts another
part parsed by that spec (workload phases after `then`, daemon options after `--`).

`spec.parse(m, words)` checks the words against the spec and returns an Args whose
attributes are the parsed values (positionals by lower-cased name, options by key;
missing optional ones are None); every value goes through its parser, so a command
body never sees a malformed argument. Parsers raise CommandError with a sentence."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..constants import MAX_NUMNODES
from ..nodemask import parse_nodes, parse_policy_string
from ..units import parse_size


class CommandError(Exception):
    """A line that does not parse: the message is what the user sees."""


Parser = Callable[[Any, str], Any]


@dataclass(frozen=True)
class Arg:
    meta: str  # as the usage shows it: PID, RANGE|all
    parse: Parser
    hint: str = ""  # what Tab completes: pid, range, node, nodes, policy, zone, ...
    optional: bool = False
    name: str = ""  # the attribute it is parsed into (default: from meta)

    @property
    def key(self) -> str:
        return self.name or self.meta.split("|")[0].lower().replace("-", "_")


@dataclass(frozen=True)
class Opt:
    key: str
    parse: Parser
    meta: str = "V"
    hint: str = ""


@dataclass(frozen=True)
class Flag:
    name: str


@dataclass(frozen=True)
class Words:
    """Bare keywords after the positionals (mbind's strict/move, mlockall's current)."""

    words: tuple[str, ...]

    def __init__(self, *words: str) -> None:
        object.__setattr__(self, "words", tuple(words))


class Args:
    """The parsed words: positionals and options as attributes, `flags` and `words`
    as sets of what was given."""

    def __init__(self) -> None:
        self.flags: set[str] = set()
        self.words: set[str] = set()
        self.given: set[str] = set()  # option keys given

    def __repr__(self) -> str:
        return f"Args({vars(self)})"


@dataclass
class Spec:
    items: tuple = ()
    rest: Arg | None = None  # a positional that takes every remaining word (a list)
    split: tuple[str, Spec] | None = None  # (word, spec of each part it starts)
    args: tuple[Arg, ...] = field(init=False)
    opts: dict[str, Opt] = field(init=False)
    flags: tuple[str, ...] = field(init=False)
    words: tuple[str, ...] = field(init=False)

    def __init__(self, *items: Arg | Opt | Flag | Words, rest: Arg | None = None,
                 split: tuple[str, Spec] | None = None) -> None:
        self.items = items
        self.rest = rest
        self.split = split
        self.args = tuple(i for i in items if isinstance(i, Arg))
        self.opts = {i.key: i for i in items if isinstance(i, Opt)}
        self.flags = tuple(i.name for i in items if isinstance(i, Flag))
        self.words = tuple(w for i in items if isinstance(i, Words) for w in i.words)

    def usage(self, name: str) -> str:
        parts = [name]
        for a in self.args:
            parts.append(f"[{a.meta}]" if a.optional else a.meta)
        if self.rest is not None:
            parts.append(f"[{self.rest.meta} ...]")
        parts += [f"[{w}]" for w in self.words]
        parts += [f"[{o.key}={o.meta}]" for o in self.opts.values()]
        parts += [f"[--{f}]" for f in self.flags]
        if self.split is not None:
            word, sub = self.split
            parts.append(f"[{word} {sub.usage('').strip()} ...]")
        return " ".join(parts)

    def hints(self) -> list[str]:
        return [a.hint for a in self.args]

    def parse(self, m: Any, words: list[str], name: str) -> Args:
        parts: list[list[str]] = [[]]
        for w in words:
            if self.split is not None and w == self.split[0]:
                parts.append([])
            else:
                parts[-1].append(w)
        out = self._parse(m, parts[0], name)
        out.parts = [self.split[1].parse(m, p, f"{name} ... {self.split[0]}")
                     for p in parts[1:]] if self.split is not None else []
        return out

    def _parse(self, m: Any, words: list[str], name: str) -> Args:
        out = Args()
        pos: list[str] = []
        for w in words:
            if w.startswith("--") and len(w) > 2:
                if w[2:] not in self.flags:
                    raise CommandError(f"unknown flag {w}; usage: {self.usage(name)}")
                out.flags.add(w[2:])
            elif "=" in w and not w.startswith("=") and w.split("=", 1)[0] in self.opts:
                k, v = w.split("=", 1)
                setattr(out, k, self.opts[k].parse(m, v))
                out.given.add(k)
            elif "=" in w and not w.startswith("=") and self.rest is None:
                raise CommandError(f"unknown option {w.split('=', 1)[0]}=; usage: "
                                   f"{self.usage(name)}")
            elif w in self.words and len(pos) >= len(self.args):
                out.words.add(w)
            else:
                pos.append(w)
        for k in self.opts:
            if k not in out.given:
                setattr(out, k, None)
        need = sum(1 for a in self.args if not a.optional)
        if len(pos) < need:
            raise CommandError(f"missing argument: usage: {self.usage(name)}")
        if len(pos) > len(self.args) and self.rest is None:
            extra = pos[len(self.args)]
            if self.words:
                raise CommandError(f"{name}: unknown word {extra!r} ({', '.join(self.words)})")
            raise CommandError(f"too many arguments: usage: {self.usage(name)}")
        for a, w in zip(self.args, pos):
            setattr(out, a.key, a.parse(m, w))
        for a in self.args[len(pos):]:
            setattr(out, a.key, None)
        if self.rest is not None:
            setattr(out, self.rest.key, [self.rest.parse(m, w) for w in pos[len(self.args):]])
        return out


# ------------------------------------------------------------------ parsers

def integer(what: str) -> Parser:
    def parse(m, s: str) -> int:
        try:
            return int(s, 0)
        except (ValueError, TypeError):
            raise CommandError(f"{what}: {s!r} is not a number") from None
    return parse


def pid(m, s: str) -> int:
    v = integer("pid")(m, s)
    if v < 0:
        raise CommandError(f"pid: {s} is negative")
    return v


def node(m, s: str) -> int:
    v = integer("node")(m, s)
    if not 0 <= v < MAX_NUMNODES:
        raise CommandError(f"node: {s} is outside 0..{MAX_NUMNODES - 1}")
    return v


def addr(m, s: str) -> int:
    try:
        v = int(s.lower(), 16)
    except ValueError:
        raise CommandError(f"address: {s!r} is not a hex address") from None
    if v < 0 or v >= 1 << 64:
        raise CommandError(f"address: {s!r} is out of range")
    return v


def size(m, s: str, what: str = "size") -> int:
    try:
        v = parse_size(s, what)
    except ValueError as e:
        raise CommandError(str(e)) from None
    if v >= 1 << 64:
        raise CommandError(f"{what}: {s!r} is too large")
    return v


def positive_size(m, s: str) -> int:
    v = size(m, s)
    if v <= 0:
        raise CommandError("size must be positive")
    return v


def addr_range(m, s: str) -> tuple[int, int]:
    """ADDR..END, ADDR+LEN or a single ADDR (one page) -> (addr, length)."""
    if ".." in s:
        a, b = s.split("..", 1)
        lo, hi = addr(m, a), addr(m, b)
        if hi <= lo:
            raise CommandError(f"range {s!r}: end must be above start")
        return lo, hi - lo
    if "+" in s:
        a, b = s.split("+", 1)
        lo = addr(m, a)
        ln = size(m, b, "length")
        if ln <= 0:
            raise CommandError(f"range {s!r}: length must be positive")
        return lo, ln
    return addr(m, s), (m.page_size if m is not None else 4096)


def range_or_all(m, s: str):
    return "all" if s == "all" else addr_range(m, s)


def nodes(what: str = "nodes") -> Parser:
    def parse(m, s: str) -> tuple[int, ...]:
        try:
            return parse_nodes(s, what)
        except OSError as e:
            raise CommandError(e.strerror) from None
    return parse


def policy(m, s: str) -> tuple[int, tuple[int, ...]]:
    try:
        return parse_policy_string(s)
    except (ValueError, OSError) as e:
        raise CommandError(getattr(e, "strerror", None) or str(e)) from None


def text(m, s: str) -> str:
    return s


def choice(*options: str) -> Parser:
    def parse(m, s: str) -> str:
        if s not in options:
            raise CommandError(f"{s!r} is not {' or '.join(options)}")
        return s
    return parse


def number(what: str) -> Parser:
    """A float (or a percentage: "50%" is 0.5), finite."""
    def parse(m, s: str) -> float:
        try:
            v = float(s[:-1]) / 100 if s.endswith("%") else float(s)
        except ValueError:
            raise CommandError(f"{what}: {s!r} is not a number") from None
        if v != v or v in (float("inf"), float("-inf")):
            raise CommandError(f"{what}: {s!r} is not a finite number")
        return v
    return parse


def onoff(what: str) -> Parser:
    def parse(m, s: str) -> bool:
        if s.lower() in ("on", "yes", "true", "1"):
            return True
        if s.lower() in ("off", "no", "false", "0"):
            return False
        raise CommandError(f"{what}: {s!r} is not on or off")
    return parse


def duration(what: str = "time") -> Parser:
    """"10ms", "1.5s", "500us", "200ns" or plain nanoseconds -> ns."""
    def parse(m, s: str) -> int:
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
    return parse
