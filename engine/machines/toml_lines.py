"""Where a key sits in TOML text. tomllib keeps no positions, so to name the line of
a bad key in a description (`saves/x.toml:12: nodes[1].zones.Normal: ...`) the text
is scanned here: a small reader of TOML's structure (tables, arrays of tables,
dotted keys, inline tables and arrays, strings) that records the line of every key
path it meets."""

from __future__ import annotations

import re


def key_line(text: str, key: str) -> int | None:
    """The line of `key` (a path like processes[1].vmas[0].size) in TOML text; for a
    key that is not written there, the line of the nearest enclosing one."""
    try:
        lines = TomlKeyLines(text).run()
    except (IndexError, ValueError):
        return None
    k = key
    while k:
        if k in lines:
            return lines[k]
        shorter = re.sub(r"(\[\d+\]|\.[^.\[\]]+|^[^.\[\]]+)$", "", k)
        if shorter == k:
            break
        k = shorter
    return None


class TomlKeyLines:
    """Where each key of a (valid) TOML document is written: path -> 1-based line.
    Paths name array elements by index, the same for [[aot]] sections and inline
    arrays: nodes[1].zones.Normal, processes[0].vmas[2].size, distances.matrix[1]."""

    BARE = re.compile(r"[A-Za-z0-9_-]+")

    def __init__(self, text: str):
        self.s = text
        self.i = 0
        self.line = 1
        self.lines: dict[str, int] = {}
        self.aot: dict[str, int] = {}  # array-of-tables path -> current index

    def run(self) -> dict[str, int]:
        prefix = ""
        while True:
            self.ws(newlines=True)
            if self.i >= len(self.s):
                return self.lines
            if self.s.startswith("[[", self.i):
                self.i += 2
                prefix = self.header(self.key(), aot=True)
                self.expect("]]")
            elif self.s[self.i] == "[":
                self.i += 1
                prefix = self.header(self.key(), aot=False)
                self.expect("]")
            else:
                self.keyval(prefix)

    def header(self, parts: list[str], aot: bool) -> str:
        path = ""
        for j, part in enumerate(parts):
            path = f"{path}.{part}" if path else part
            if aot and j == len(parts) - 1:
                self.aot[path] = self.aot.get(path, -1) + 1
            if path in self.aot:
                path = f"{path}[{self.aot[path]}]"
        self.lines.setdefault(path, self.line)
        return path

    def keyval(self, prefix: str) -> None:
        line = self.line
        path = prefix
        for part in self.key():
            path = f"{path}.{part}" if path else part
            self.lines.setdefault(path, line)
        self.ws()
        self.expect("=")
        self.ws()
        self.value(path)

    def key(self) -> list[str]:
        parts = []
        while True:
            self.ws()
            c = self.s[self.i]
            if c in "\"'":
                parts.append(self.string())
            else:
                mt = self.BARE.match(self.s, self.i)
                if not mt:
                    raise ValueError(f"no key at line {self.line}")
                parts.append(mt.group())
                self.i = mt.end()
            self.ws()
            if self.i < len(self.s) and self.s[self.i] == ".":
                self.i += 1
                continue
            return parts

    def value(self, path: str) -> None:
        c = self.s[self.i]
        if c == "[":
            self.i += 1
            k = 0
            while True:
                self.ws(newlines=True)
                if self.s[self.i] == "]":
                    self.i += 1
                    return
                self.lines.setdefault(f"{path}[{k}]", self.line)
                self.value(f"{path}[{k}]")
                k += 1
                self.ws(newlines=True)
                if self.s[self.i] == ",":
                    self.i += 1
        elif c == "{":
            self.i += 1
            while True:
                self.ws(newlines=True)
                if self.s[self.i] == "}":
                    self.i += 1
                    return
                self.keyval(path)
                self.ws(newlines=True)
                if self.s[self.i] == ",":
                    self.i += 1
        elif c in "\"'":
            self.string()
        else:  # number, boolean, date: up to the next delimiter
            while self.i < len(self.s) and self.s[self.i] not in ",]}\n#":
                self.i += 1

    def string(self) -> str:
        s, q = self.s, self.s[self.i]
        triple = s.startswith(q * 3, self.i)
        self.i += 3 if triple else 1
        start = self.i
        while True:
            if s[self.i] == "\\" and q == '"':
                self.i += 2
                continue
            if s.startswith(q * 3 if triple else q, self.i):
                # a closing """ may be followed by up to two more quotes of content
                while triple and s.startswith(q * 4, self.i):
                    self.i += 1
                out = s[start:self.i]
                self.i += 3 if triple else 1
                self.line += out.count("\n")
                return out
            self.i += 1

    def ws(self, newlines: bool = False) -> None:
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c in " \t\r" or (c == "\n" and newlines):
                self.line += c == "\n"
                self.i += 1
            elif c == "#":
                while self.i < len(s) and s[self.i] != "\n":
                    self.i += 1
            else:
                return

    def expect(self, tok: str) -> None:
        if not self.s.startswith(tok, self.i):
            raise ValueError(f"expected {tok!r} at line {self.line}")
        self.i += len(tok)
