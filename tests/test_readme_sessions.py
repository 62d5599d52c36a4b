"""The README's example sessions are real: each `> command` of a session block runs on
the default machine and prints what the README shows (all of it, or, where the README
says "(the ... lines)", those lines among the output)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import engine
from engine.commands import execute

README = Path(__file__).resolve().parent.parent / "README.md"


def session(title: str) -> list[tuple[str, bool, list[str]]]:
    """(command, partial, expected lines) of the first ``` block after the heading."""
    text = README.read_text(encoding="utf-8")
    sec = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    block = sec.split("```\n", 2)[1]
    out: list[tuple[str, bool, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("> "):
            cmd, _, note = line[2:].partition("   (")
            out.append((cmd.strip(), bool(note), []))
        elif out:
            out[-1][2].append(line)
    return out


@pytest.mark.parametrize("title", ["Huge pages"])
def test_readme_session_output_is_what_the_engine_prints(title):
    m = engine.Machine.default()
    for cmd, partial, want in session(title):
        r = execute(m, cmd)
        assert r.ok, (cmd, r.text)
        got = r.text.splitlines()
        if partial:
            missing = [w for w in want if w not in got]
            assert not missing, (cmd, missing)
        else:
            assert [re.sub(r"\s+$", "", g) for g in got] == want, cmd
    m.check()
