"""Bad files (issue 8): truncated, bit-flipped, empty, foreign-format, newer-version and
absurd-size snapshots and descriptions are refused with a clear one-line reason,
without reserving absurd memory, and the machine in the console stays as it was.

tests/test_saves.py already covers each kind of broken *snapshot* through
engine.load (every truncation, bit flips, empty, foreign formats, newer version,
absurd declared sizes checked before allocation). This file adds what it does not:
broken *descriptions* through engine.load, a description too large for the process,
and every kind of bad file through `numacon run MACHINE -c ...` and the console's
`load` command."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tracemalloc
import zlib

import numpy as np
import pytest
from conftest import small
from test_bad_input import fingerprint

import engine
from engine.commands import execute
from engine.machines import snapshot as saves
from engine.mm import state
from tui import cli
from tui.app import NumaConsoleApp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = (160, 50)

GOOD_TOML = """\
[machine]
name = "bad-files"
block_size = "4M"

[[nodes]]
id = 0
cpus = "0-1"
zones = { DMA = "4M", Normal = "28M" }

[[nodes]]
id = 1
cpus = "2-3"
zones = { Normal = "32M" }

[distances]
matrix = [[10, 20], [20, 10]]

[[processes]]
name = "a"
pid = 10
node = 1
vmas = [{ size = "4M", touch = "100%" }]
"""


def _manifest_edit(snap: bytes, edit) -> bytes:
    _, off, ln, _ = saves.HEADER.unpack_from(snap)
    man = json.loads(snap[off:off + ln])
    edit(man)
    mb = json.dumps(man).encode()
    return saves.HEADER.pack(saves.MAGIC, off, len(mb), zlib.crc32(mb)) + \
        snap[saves.HEADER.size:off] + mb


def _flip(data: bytes, pos: int, bit: int = 0) -> bytes:
    b = bytearray(data)
    b[pos] ^= 1 << bit
    return bytes(b)


@pytest.fixture(scope="module")
def snap(tmp_path_factory) -> bytes:
    p = tmp_path_factory.mktemp("good") / "good.snap"
    engine.save(small(procs=[{"name": "p", "pid": 10, "node": 1, "vmas": [{"size": "8M"}]}]),
                p)
    return p.read_bytes()


def bad_files(snap: bytes) -> dict[str, tuple[str, bytes, str]]:
    """name -> (file name, bytes, a word the reason must contain)."""
    return {
        "snapshot-truncated": ("t.snap", snap[:len(snap) // 2], "truncated"),
        "snapshot-header-only": ("h.snap", snap[:20], "truncated"),
        "snapshot-bit-flipped": ("f.snap", _flip(snap, len(snap) // 3, 3), "corrupt"),
        "snapshot-empty": ("e.snap", b"", "empty"),
        "snapshot-foreign": ("z.snap", b"PK\x03\x04" + bytes(200), "not a"),
        "snapshot-newer": ("n.snap", _manifest_edit(snap, lambda m: m.update(version=9)),
                           "newer"),
        "snapshot-absurd": ("a.snap", _manifest_edit(
            snap, lambda m: m["blobs"][0].update(shape=[1 << 40])), "corrupt"),
        "description-truncated": ("t.toml", GOOD_TOML[:GOOD_TOML.index("zones = {") + 14]
                                  .encode(), "TOML"),
        "description-bit-flipped": ("f.toml", GOOD_TOML.replace("[[nodes]]", "[[nodes]}", 1)
                                    .encode(), "TOML"),
        "description-empty": ("e.toml", b"", "empty"),
        "description-foreign": ("j.toml", json.dumps({"machine": {"name": "x"}}).encode(),
                                "TOML"),
        "description-newer": ("v.toml", GOOD_TOML.replace(
            'name = "bad-files"', 'name = "bad-files"\nversion = 2').encode(), "version"),
        "description-absurd": ("a.toml", GOOD_TOML.replace('Normal = "32M"', 'Normal = "32T"')
                               .encode(), "large"),
    }


def _one_line(msg: str) -> None:
    assert msg and "\n" not in msg.strip() and "Traceback" not in msg, msg


# ------------------------------------------------------------------ engine.load: descriptions

def _refused(tmp_path, text: bytes | str, name: str = "d.toml") -> str:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    with pytest.raises(engine.SaveError) as e:
        engine.load(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}:")  # PATH: reason, or PATH:LINE: key: reason
    _one_line(msg)
    return msg


def test_good_description_loads(tmp_path):
    p = tmp_path / "good.toml"
    p.write_text(GOOD_TOML)
    engine.load(p, check=True)


def test_truncated_descriptions_refused_or_whole(tmp_path):
    """Cut anywhere: refused with one line, or (cut between tables) a valid machine."""
    data = GOOD_TOML.encode()
    refused = 0
    for n in range(0, len(data), 7):
        p = tmp_path / "cut.toml"
        p.write_bytes(data[:n])
        try:
            m = engine.load(p)
        except engine.SaveError as e:
            _one_line(str(e))
            assert str(e).startswith(f"{p}:")
            refused += 1
            continue
        m.check()
    assert refused > len(data) // 14


def test_bit_flipped_descriptions_refused_or_valid(tmp_path):
    data = GOOD_TOML.encode()
    rng = np.random.default_rng(8)
    for pos in rng.integers(0, len(data), 150):
        p = tmp_path / "flip.toml"
        p.write_bytes(_flip(data, int(pos), int(rng.integers(0, 8))))
        try:
            m = engine.load(p)
        except engine.SaveError as e:
            _one_line(str(e))
            continue
        m.check()  # a flip that still parses (a digit, a letter of a name) is a machine


@pytest.mark.parametrize("text,needle", [
    ("", "empty"),
    ("   \n\n# only a comment\n", "nodes"),
    ("[machine]\nname = 'x'\n", "nodes"),
    ('{"machine": {"name": "x"}, "nodes": []}', "TOML"),  # JSON
    ("machine:\n  name: x\nnodes:\n  - id: 0\n", "TOML"),  # YAML
    ("\ufeff[machine]\nname = 'x'\n", "TOML"),  # a byte-order mark
    ("[machine]\nname = 'x'\n".encode("utf-16"), "binary"),  # UTF-16: NUL bytes
    ("[machine]\nname = 'caf\xe9'\n".encode("latin-1"), "UTF-8"),
    ("[machine]\nname = 'x'\n\x00\x01\x02", "binary"),
])
def test_empty_and_foreign_descriptions(tmp_path, text, needle):
    assert needle in _refused(tmp_path, text)


def test_newer_version_description_names_the_key(tmp_path):
    msg = _refused(tmp_path, GOOD_TOML.replace('name = "bad-files"',
                                               'name = "bad-files"\nversion = 2'))
    assert "machine.version" in msg and "unknown key" in msg
    msg = _refused(tmp_path, "format_version = 3\n" + GOOD_TOML)
    assert "format_version" in msg


@pytest.mark.parametrize("old,new,needle", [
    ('Normal = "32M"', 'Normal = "32T"', "impossibly large"),
    ('Normal = "32M"', 'Normal = "99999999999999999999999T"', "size"),
    ('cpus = "2-3"', 'cpus = "0-4000000000"', "CPU list"),
    ('block_size = "4M"', 'page_size = "1G"\nblock_size = "4M"', "page_size"),
    ('size = "4M", touch', 'size = "64T", touch', "larger than anything"),
    ("id = 1", "id = 100000000", "MAX_NUMNODES"),
])
def test_absurd_sizes_in_descriptions_refused_without_allocating(tmp_path, old, new, needle):
    text = GOOD_TOML.replace(old, new, 1)
    assert text != GOOD_TOML
    tracemalloc.start()
    try:
        msg = _refused(tmp_path, text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert needle in msg
    assert peak < 64 << 20, f"{peak >> 20} MiB allocated to refuse {new!r}"


def test_too_many_frames_refused_before_allocation(tmp_path):
    nodes = "".join(f'[[nodes]]\nid = {i}\ncpus = "{i}"\nzones = {{ Normal = "16T" }}\n'
                    for i in range(4))
    tracemalloc.start()
    try:
        msg = _refused(tmp_path, "[machine]\nname = 'big'\n" + nodes)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "2^31" in msg and peak < 64 << 20


def test_huge_description_file_is_not_read(tmp_path):
    p = tmp_path / "huge.toml"
    with open(p, "wb") as fh:  # sparse: 17 MB that cost nothing
        fh.truncate(saves.MAX_DESCRIPTION + (1 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(engine.SaveError) as e:
            engine.load(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "too large" in str(e.value) and peak < 1 << 20


def test_machine_too_large_for_the_process_is_refused(tmp_path, monkeypatch):
    """Regression (found here): building a machine the process cannot allocate (an
    8 TiB description under `ulimit -v`) raised MemoryError with a traceback from
    `numacon run`; engine.load now refuses it with a one-line SaveError."""
    def no_memory(self, n):
        raise MemoryError(f"Unable to allocate {n * 20} bytes")

    monkeypatch.setattr(state.Frames, "__init__", no_memory)
    msg = _refused(tmp_path, GOOD_TOML)
    assert "more memory than this host" in msg


HUGE_TOML = "[machine]\nname = 'huge'\n" + "".join(
    f'[[nodes]]\nid = {i}\ncpus = "{i}"\nzones = {{ Normal = "2T" }}\n' for i in range(4))


def _limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))


def test_machine_too_large_for_the_process_via_numacon_run(tmp_path):
    """The real thing: `numacon run` on an 8 TiB description (40 GiB of frame arrays)
    in a process limited to 6 GiB of address space: exit 1, one line, no traceback."""
    p = tmp_path / "huge.toml"
    p.write_text(HUGE_TOML)
    r = subprocess.run([sys.executable, "-m", "tui.cli", "run", str(p), "-c", "ps"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120,
                       preexec_fn=_limit_address_space)
    assert r.returncode == 1, r.stderr
    assert r.stdout == ""
    _one_line(r.stderr)
    assert "huge.toml" in r.stderr and "more memory" in r.stderr


# ------------------------------------------------------------------ numacon run MACHINE -c

def test_numacon_run_refuses_every_bad_file(tmp_path, snap, capsys):
    for what, (name, data, needle) in bad_files(snap).items():
        p = tmp_path / name
        p.write_bytes(data)
        rc = cli.main(["run", str(p), "-c", "ps"])
        out, err = capsys.readouterr()
        assert rc == 1, what
        assert out == "", what
        _one_line(err)
        assert err.startswith("numacon: error: ") and str(p) in err, (what, err)
        assert needle.lower() in err.lower(), (what, err)


# ------------------------------------------------------------------ the console's `load`

def test_load_command_keeps_the_machine(tmp_path, snap):
    """engine.commands: `load BAD` is one error line and the machine is untouched."""
    m = small(nodes=2, size="16M", procs=[{"name": "p", "pid": 10, "vmas": [{"size": "1M"}]}])
    before = fingerprint(m)
    for what, (name, data, needle) in bad_files(snap).items():
        p = tmp_path / name
        p.write_bytes(data)
        r = execute(m, f"load {p}")
        assert not r.ok and r.machine is None, what
        assert r.text.startswith("error: ") and "internal" not in r.text, (what, r.text)
        _one_line(r.text)
        assert needle.lower() in r.text.lower(), (what, r.text)
        assert fingerprint(m) == before, what
    m.check()


async def test_tui_load_bad_files_keeps_app_and_machine(tmp_path, snap):
    app = NumaConsoleApp(small(nodes=2, size="16M"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        m = app.machine
        before = fingerprint(m)
        for what, (name, data, _) in bad_files(snap).items():
            p = tmp_path / name
            p.write_bytes(data)
            await pilot.press("colon")
            app.command_input().value = f"load {p}"
            await pilot.press("enter")
            await pilot.pause()
            assert app.is_running, what
            assert app.machine is m, what
            last = app.console_log.plain().rstrip().splitlines()[-1]
            assert last.startswith("error: ") and str(p) in last, (what, last)
        assert fingerprint(app.machine) == before
        # and a good file still loads afterwards
        good = tmp_path / "good.toml"
        good.write_text(GOOD_TOML)
        await pilot.press("colon")
        app.command_input().value = f"load {good}"
        await pilot.press("enter")
        await pilot.pause()
        assert app.machine is not m and app.machine.name == "bad-files"
