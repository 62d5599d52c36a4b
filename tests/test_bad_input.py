"""Bad input never hurts: every malformed command line gets a one-line error, no
traceback, and leaves the machine exactly as it was."""


import pytest
from conftest import fingerprint

import engine
from engine.commands import command_names, execute


@pytest.fixture(scope="module")
def mach():
    return engine.Machine.default()


A = "7efff0000000"
CORPUS = [
    # unknown / empty-ish
    "bogus", "move_pages_", "MOVE_PAGES 100 all 1", "\x00", "é", "🙂 1 2",
    # missing and extra arguments
    "move_pages", "move_pages 100", "migratepages 100 0", "mbind 100", f"mbind 100 {A}+4K",
    "spawn", "kill", "kill 1 2", "mmap 100", "munmap 100", "touch 100", "read 100",
    "set_mempolicy 100", "get_mempolicy", "mlock 100", "munlock", "mlockall",
    "hook", "hook uncached", "offline 3", "online", "meminfo", "cancel", "numa_maps",
    "numastat extra", "zoneinfo x", "vmstat y", "check z", "ps -ef", "jobs x",
    "save", "load", "era modern 2006",
    # wrong types
    "move_pages abc all 1", f"move_pages 100 {A} one", "kill x", "mmap 100 lots",
    f"touch 100 {A} node=zero", "spawn x uid=root", "spawn x node=n",
    f"mbind 100 {A}+4K bind:x", f"mbind 100 {A}+4K nonsense:1", f"mbind 100 {A}+4K bind:1 fly",
    "hook uncached maybe", "mlockall 100 sometimes", "era 1999", "cancel x",
    # huge and negative numbers, bad ranges
    f"move_pages 100 {A} -1", f"move_pages 100 {A} 99999999999999999999",
    "move_pages 100 ffffffffffffffffffff 1", "kill -5", "kill 99999999999999999999999",
    "mmap 100 -4K", "mmap 100 0", "mmap 100 1e400", f"munmap 100 {A}..7eff00000000",
    f"touch 100 {A}+0", f"touch 100 {A}+-4K", "read 100 zz", "read 100 1", "touch 100 1+4K",
    f"mbind 100 {A}+4K bind:64", f"mbind 100 {A}+4K bind:5-2",
    "migratepages 100 0 70", "migratepages 100 x 1", "migratepages 100 0 ''",
    "spawn x node=17", "spawn x cpuset=9", "spawn x node=-1",
    # unknown nodes and pids
    "move_pages 4242 all 1", "migratepages 4242 0 1", "numa_maps 4242", "kill 4242",
    f"mbind 4242 {A}+4K bind:1", "set_mempolicy 4242 bind:1", "meminfo 17",
    "offline 9 Normal", "offline 0 Nowhere", "online 7 Normal", "hook nosuch on",
    "cancel 12345", "move_pages 2 all 1",
    # options and flags that do not exist
    f"move_pages 100 {A} 1 --fast", "spawn x color=red", f"touch 100 {A} --twice",
    # files
    "load /nonexistent/file.toml", "save /nonexistent/dir/x.snap",
    # unbalanced quotes, very long lines
    'spawn "unterminated', "x" * 5000, "move_pages 100 " + "7efff0000000," * 400 + " 1",
]


@pytest.mark.parametrize("line", CORPUS)
def test_malformed_line_one_line_error_no_change(mach, line):
    before = fingerprint(mach)
    r = execute(mach, line)
    assert not r.ok, f"{line!r} was accepted: {r.text}"
    assert r.text.startswith("error: ") and "\n" not in r.text
    assert "internal" not in r.text and "Traceback" not in r.text
    assert fingerprint(mach) == before
    mach.check()


def test_every_command_has_usage_in_help(mach):
    for name in command_names():
        r = execute(mach, f"help {name}")
        assert r.ok and len(r.text.splitlines()) == 2, name  # usage line, help line


def test_empty_line_and_comment_do_nothing(mach):
    before = fingerprint(mach)
    assert execute(mach, "").ok and execute(mach, "   # a comment").ok
    assert fingerprint(mach) == before


def test_usage_comes_from_the_spec_so_flags_never_drift():
    """Each command's usage is generated from the same declaration that validates its
    words: every flag the parser accepts is in the usage (migratepages and mbind had
    lost [--dry-run] when usage strings were written by hand)."""
    from engine.commands import COMMANDS

    for c in COMMANDS.values():
        for f in c.forms:
            for flag in f.spec.flags:
                assert f"[--{flag}]" in c.usage, (c.name, flag)
            for k in f.spec.opts:
                assert f"[{k}=" in c.usage, (c.name, k)
    assert "[--dry-run]" in COMMANDS["migratepages"].usage
    assert "[--dry-run]" in COMMANDS["mbind"].usage
