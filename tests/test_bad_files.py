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
        # checksums right, meaning wrong (issue 11)
        "snapshot-altered-content": ("c.snap", _rebuild(snap, {"frames.content": (
            _blob(snap, "frames.content") + np.uint32(1))}), "inconsistent"),
        "snapshot-all-ones-slit": ("s.snap", _rebuild(snap, {"distances": np.ones_like(
            _blob(snap, "distances"))}), "distance"),
        "description-nested": ("n.toml", DEEP_ARRAYS.encode(), "nested too deeply"),
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


async def settled(app, pilot) -> None:
    """The command's workers done and their results on screen (a load reads the file
    off the event loop: one pause is not always enough on a busy machine)."""
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


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
            await settled(app, pilot)
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
        await settled(app, pilot)
        assert app.machine is not m and app.machine.name == "bad-files"


# ================================================================== issue 11: crafted files
# Every bad file gets one line (item 8), every declared size is bounded by what the
# file's machine can need before it is allocated (item 7), and a snapshot whose arrays
# do not hang together is refused at load by the checks a live machine passes.

def _rebuild(snap: bytes, arrays: dict | None = None, state=None, edit=None) -> bytes:
    """The snapshot with some blobs replaced (stored raw) and every offset and checksum
    recomputed: a file only the loader's meaning checks can refuse. arrays: name ->
    new array (its dtype and shape go to the manifest); state: a new state dict; edit:
    a function applied to the manifest last."""
    from tests.test_snapshot_schema import unpack

    _, off, ln, _ = saves.HEADER.unpack_from(snap)
    man = json.loads(snap[off:off + ln])
    arrays = dict(arrays or {})
    if state is not None:
        arrays["state"] = np.frombuffer(json.dumps(state).encode(), np.uint8)
    elif "state" not in arrays:
        arrays["state"] = np.frombuffer(json.dumps(unpack(snap)[1]).encode(), np.uint8)
    body, pos = bytearray(), saves.HEADER.size
    cs = man["chunk_size"]
    for b in man["blobs"]:
        if b["name"] in arrays:
            a = np.ascontiguousarray(arrays[b["name"]])
            raw = a.tobytes()
            b["dtype"], b["shape"] = a.dtype.str, list(a.shape)
            parts = [raw[i:i + cs] for i in range(0, len(raw), cs)]
            b["chunks"] = [["raw", len(c), len(c), zlib.crc32(c)] for c in parts]
            stored = raw
        else:
            start, n = b["offset"], sum(c[1] for c in b["chunks"])
            stored = snap[start:start + n]
        b["offset"] = pos
        body += stored
        pos += len(stored)
    if edit is not None:
        edit(man)
    mb = json.dumps(man).encode()
    return saves.HEADER.pack(saves.MAGIC, pos, len(mb), zlib.crc32(mb)) + bytes(body) + mb


def _arrays(snap: bytes) -> dict:
    p = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    import tempfile

    with tempfile.NamedTemporaryFile(dir=p, suffix=".snap") as fh:
        fh.write(snap)
        fh.flush()
        m = engine.load(fh.name)
    return m


@pytest.fixture(scope="module")
def pinned_snap(tmp_path_factory) -> bytes:
    """A small machine with anonymous pages written, a file, a pin and three nodes."""
    m = small(nodes=3, size="16M", drivers=[{"name": "rdma0", "kind": "rdma", "node": 0}],
              procs=[{"name": "p", "pid": 10, "node": 1,
                      "vmas": [{"size": "1M"}, {"size": "256K", "pin": "rdma0"},
                               {"kind": "file", "file": "F", "size": "64K"}]}])
    p = tmp_path_factory.mktemp("pinned") / "p.snap"
    engine.save(m, p)
    return p.read_bytes()


def _state(snap: bytes) -> dict:
    from tests.test_snapshot_schema import unpack

    return unpack(snap)[1]


def _blob(snap: bytes, name: str) -> np.ndarray:
    """One array of the snapshot, read through the container (its meaning unchecked)."""
    from engine.machines import container

    _, off, ln, _ = saves.HEADER.unpack_from(snap)
    man = json.loads(snap[off:off + ln])
    import io

    return container.read_blobs(io.BytesIO(snap), "x", man, {name})[name]


def _refused_snap(tmp_path, data: bytes) -> str:
    p = tmp_path / "crafted.snap"
    p.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(engine.SaveError) as e:
            engine.load(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    msg = str(e.value)
    assert msg.startswith(f"{p}: ")
    _one_line(msg)
    assert peak < 64 << 20, f"{peak >> 20} MiB allocated to refuse it: {msg}"
    return msg


def _mapped_anon_pfn(snap: bytes) -> int:
    m = _arrays(snap)
    v = m.process(10).vmas[-1]
    return int(v.pte_range(0, 1)[0])


def crafted_snapshots(snap: bytes) -> dict[str, tuple[bytes, str]]:
    """name -> (file, a word its one-line reason contains). Checksums all correct."""
    st = _state(snap)
    n = st["nr_frames"]
    content = _blob(snap, "frames.content").copy()
    pf = _mapped_anon_pfn(snap)
    content[pf] ^= 0x5A5A
    flags = _blob(snap, "frames.flags").copy()
    free = int(np.flatnonzero(_blob(snap, "frames.kind") == 0)[0])
    flags[free] |= 1 << 7  # PG_pinned on a free frame
    refcount = _blob(snap, "frames.refcount").copy()
    refcount[free] += 1  # the pin's reference too: the derived counts agree
    kind = _blob(snap, "frames.kind").copy()
    kind[pf] = 3  # an anonymous page turned into a page-cache page
    dist = _blob(snap, "distances")
    dead = json.loads(json.dumps(st))
    drv = next(d for d in dead["drivers"] if d[0] == "rdma0")
    pins = drv[1]["pins"]
    pins[0]["t"][0] = 4242  # the registration's owner is a process that does not exist

    def zero_chunks(man):  # 4 GiB of declared zero chunks in a 2.5 MB file
        man["blobs"].append({"name": "obj.999", "dtype": "|u1", "shape": [4 << 30],
                             "offset": saves.HEADER.size,
                             "chunks": [["zero", 0, 4 << 20, 0]] * 1024})

    def more_frames(man):  # frames declared 2^31 long (zero chunks): 116 GiB to check
        for b in man["blobs"]:
            if b["name"].startswith("frames."):
                isz = np.dtype(b["dtype"]).itemsize
                b["shape"] = [1 << 31]
                b["chunks"] = [["zero", 0, 4 << 20, 0]] * ((isz << 31) >> 22)

    big = json.loads(json.dumps(st))
    big["nr_frames"] = 1 << 31

    def float_len(man):
        man["blobs"][0]["chunks"][0][2] = float(man["blobs"][0]["chunks"][0][2])

    def dims(man):
        man["blobs"].append({"name": "obj.998", "dtype": "|u1", "shape": [1] * 100,
                             "offset": saves.HEADER.size, "chunks": []})

    return {
        "altered-content": (_rebuild(snap, {"frames.content": content}), "last written"),
        "pinned-free-frame": (_rebuild(snap, {"frames.flags": flags,
                                              "frames.refcount": refcount}), "free frame"),
        "anon-as-file": (_rebuild(snap, {"frames.kind": kind}), "inconsistent"),
        "all-ones-slit": (_rebuild(snap, {"distances": np.ones_like(dist)}),
                          "local distance is 10"),
        "asymmetric-local": (_rebuild(snap, {"distances": np.where(
            np.eye(len(dist), dtype=bool), 20, dist).astype(np.uint8)}), "distance"),
        "slit-as-int64": (_rebuild(snap, {"distances": dist.astype(np.int64)}), "uint8"),
        "content-as-float": (_rebuild(snap, {"frames.content":
                                             content.astype(np.float32)}), "frames"),
        "kind-as-u2": (_rebuild(snap, {"frames.kind": kind.astype(np.uint16)}), "frames"),
        "pt-as-float": (_rebuild(snap, {"pt.pfn": _blob(snap, "pt.pfn").astype(np.float32)}),
                        "pt.pfn"),
        "pin-of-a-dead-process": (_rebuild(snap, state=dead), "outlived its process"),
        "zero-chunks-4GiB": (_rebuild(snap, edit=zero_chunks), "obj.999"),
        "frames-2^31": (_rebuild(snap, state=big, edit=more_frames), "more memory"),
        "float-chunk-length": (_rebuild(snap, edit=float_len), "bad blob entry"),
        "100-dimensions": (_rebuild(snap, edit=dims), "bad blob entry"),
        "nr-frames-float": (_rebuild(snap, state={**st, "nr_frames": float(n)}),
                            "frame count"),
    }


@pytest.mark.parametrize("name", [
    "altered-content", "pinned-free-frame", "anon-as-file", "all-ones-slit",
    "asymmetric-local", "slit-as-int64", "content-as-float", "kind-as-u2", "pt-as-float",
    "pin-of-a-dead-process", "zero-chunks-4GiB", "frames-2^31", "float-chunk-length",
    "100-dimensions", "nr-frames-float"])
def test_crafted_snapshot_refused_with_one_line(tmp_path, pinned_snap, name):
    """Files with every checksum right: only the meaning checks stand in the way. Each
    is refused with one line, allocating no more than a small machine needs."""
    data, needle = crafted_snapshots(pinned_snap)[name]
    msg = _refused_snap(tmp_path, data)
    assert needle in msg, msg


def test_crafted_snapshots_pass_when_untouched(tmp_path, pinned_snap):
    """The crafting itself (a rebuild with nothing replaced) yields a loadable file."""
    p = tmp_path / "same.snap"
    p.write_bytes(_rebuild(pinned_snap))
    m = engine.load(p)
    assert m.drivers_map["rdma0"].pins and m.process(10)


def test_deeply_nested_json_manifest_is_one_line(tmp_path, pinned_snap):
    _, off, ln, _ = saves.HEADER.unpack_from(pinned_snap)
    mb = b"[" * 200_000 + b"]" * 200_000
    data = saves.HEADER.pack(saves.MAGIC, off, len(mb), zlib.crc32(mb)) + \
        pinned_snap[saves.HEADER.size:off] + mb
    assert "nested too deeply" in _refused_snap(tmp_path, data)


def test_deeply_nested_json_state_is_one_line(tmp_path, pinned_snap):
    st = "[" * 200_000 + "]" * 200_000
    blob = np.frombuffer(st.encode(), np.uint8)
    assert "not JSON" in _refused_snap(tmp_path, _rebuild(pinned_snap, {"state": blob}))


# ------------------------------------------------------------------ descriptions

DEEP_ARRAYS = "[machine]\nname = 'x'\nhost = { a = " + "[" * 5000 + "]" * 5000 + " }\n"
DEEP_TABLES = "a = " + "{ b = " * 3000 + "1" + " }" * 3000 + "\n"


@pytest.mark.parametrize("text,needle", [
    (DEEP_ARRAYS, "nested too deeply"),  # RecursionError
    (DEEP_TABLES, "nested too deeply"),
    (GOOD_TOML.replace('Normal = "32M"', "Normal = inf"), "not a size"),  # OverflowError
    (GOOD_TOML.replace('size = "4M"', "size = inf"), "not a size"),
    (GOOD_TOML.replace('block_size = "4M"', "block_size = -inf"), "not a size"),
    (GOOD_TOML.replace('size = "4M"', "size = nan"), "not a size"),
    (GOOD_TOML.replace('name = "bad-files"', 'name = "bad-files"\nera = 5'),
     "machine.era: 5 is not a string"),  # was "x.toml:2: machine.era: x.toml: ..."
    (GOOD_TOML.replace('block_size = "4M"', 'block_size = "4M"\nkernel = "100%"'),
     "machine.kernel: the kernel's memmap and slab leave no page"),  # was IndexError
    (GOOD_TOML.replace('vmas = [{ size = "4M", touch = "100%" }]',
                       'vmas = [{ size = "4M", kind = "driver", driver = "x" }]') +
     '[[drivers]]\nname = "a\\nb"\nkind = "rdma"\n',
     "'x' is not a driver of this machine (a\\nb)"),  # a newline in a name: still one line
    ("a" + ".a" * 20_000 + " = 1\n", "dotted key of more than 8 parts"),  # quadratic
    ("[a" + ".a" * 20_000 + "]\n", "dotted key of more than 8 parts"),
    # [[workloads]] are checked at load as `workloads start` will check them (a badly
    # typed one was an "internal: TypeError" at start)
    (GOOD_TOML + '[[workloads]]\npid = 10\nticks = "x"\n',
     "workloads[0]: ticks must be an integer, not str"),
    (GOOD_TOML + '[[workloads]]\npid = 10\nphases = "x"\n',
     "workloads[0]: phases must be a list of tables, not str"),
    (GOOD_TOML + '[[workloads]]\npid = 99\n', "workloads[0]: workload: no process 99"),
    (GOOD_TOML + '[[workloads]]\npid = 10\nsize = "1T"\n', "larger than the machine"),
])
def test_bad_description_is_one_line_with_its_key(tmp_path, text, needle):
    msg = _refused(tmp_path, text)
    assert needle in msg, msg
    assert msg.count(str(tmp_path)) == 1  # the source once, never twice
    assert "cannot build this machine" not in msg


def test_cpu_ranges_are_bounded_before_they_are_expanded(tmp_path):
    """Regression: a node's `cpus` of 200 ranges of 65536 CPUs cost 1.5 GiB."""
    cpus = ",".join(f"{i * 70_000}-{i * 70_000 + 65_536}" for i in range(200))
    tracemalloc.start()
    try:
        msg = _refused(tmp_path, GOOD_TOML.replace('cpus = "2-3"', f'cpus = "{cpus}"'))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "NR_CPUS (8192)" in msg and "nodes[1].cpus" in msg and peak < 32 << 20
    msg = _refused(tmp_path, GOOD_TOML.replace('cpus = "2-3"', 'cpus = "0-4000,0-4500"'))
    assert "at most 8192" in msg


def test_driver_larger_than_its_node_is_refused_before_allocation(tmp_path):
    text = GOOD_TOML + '\n[[drivers]]\nname = "d"\nkind = "uncached"\nnode = 0\nsize = "1T"\n'
    tracemalloc.start()
    try:
        msg = _refused(tmp_path, text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "drivers[0].size: 1T is more than node 0's kernel zones hold" in msg
    assert peak < 16 << 20


def test_many_large_vmas_on_a_small_machine_cost_little(tmp_path):
    """Regression: 200 VMAs of 512M on a 128 MiB machine took 441 MB and 14 s. Private
    ones are refused by the overcommit heuristic at the first; shared file ones are
    sparse address space."""
    base = GOOD_TOML.replace('Normal = "28M"', 'Normal = "60M"').replace(
        'Normal = "32M"', 'Normal = "64M"')
    for extra, refused in (('touch = "0%"', True),
                           ('kind = "file", shared = true, touch = "0%"', False)):
        vmas = ", ".join(f'{{ size = "512M", {extra}, file = "f{i}" }}' for i in range(200))
        text = base.replace('vmas = [{ size = "4M", touch = "100%" }]', f"vmas = [{vmas}]")
        p = tmp_path / "vmas.toml"
        p.write_text(text)
        tracemalloc.start()
        try:
            if refused:
                with pytest.raises(engine.SaveError, match="overcommit"):
                    engine.load(p)
            else:
                assert len(engine.load(p).process(10).vmas) == 200
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 64 << 20, (extra, peak >> 20)


def test_machine_too_big_to_check_is_refused_naming_the_numbers(tmp_path, monkeypatch):
    """A 4 TiB description was accepted and check() then took more than 16 GiB: the
    memory a machine needs (its frames and check()'s working arrays) is estimated from
    its frame count and compared with what this process can be given."""
    from engine.machines import description

    monkeypatch.setattr(description, "memory_budget", lambda: (8 << 30, "8.0 GiB (test)"))
    text = "[machine]\nname = 'big'\n" + "".join(
        f'[[nodes]]\nid = {i}\ncpus = "{i}"\nzones = {{ Normal = "1T" }}\n' for i in range(4))
    msg = _refused(tmp_path, text)
    assert "nodes: 1073741824 frames need 58.0 GiB to hold and check: more memory than " \
           "this host can give the process (8.0 GiB (test))" in msg


def test_nul_in_a_path_is_one_line(tmp_path):
    for call in (lambda: engine.load(f"{tmp_path}/a\0b.toml"),
                 lambda: engine.save(small(nodes=1, size="8M"), f"{tmp_path}/a\0b.snap")):
        with pytest.raises(engine.SaveError) as e:
            call()
        _one_line(str(e.value))
        assert "a file name cannot contain a NUL byte" in str(e.value)


def test_description_fuzz_every_failure_is_one_description_error():
    """Every leaf of a description holding every kind of wrong value (numbers out of
    range, strings, floats, infinities, lists, tables, booleans): a DescriptionError
    naming the source once, never another exception."""
    import copy
    import tomllib

    d0 = tomllib.loads(GOOD_TOML + '\n[[drivers]]\nname = "d0"\nkind = "uncached"\n'
                       'node = 0\nsize = "1M"\n\n[[drivers]]\nname = "r0"\nkind = "rdma"\n'
                       'node = 1\n\n[weights]\n"0" = 2\n')
    d0["machine"].update(era="modern", seed=1, page_size="4K", kernel="2%")
    d0["processes"][0].update(uid=0, cpuset="0-1", policy="interleave:0-1")
    d0["processes"][0]["vmas"].append({"size": "64K", "kind": "file", "file": "f",
                                       "touch_pages": {"0": 4, "1": 2}, "pin": "r0",
                                       "mlock": True, "policy": "bind:1"})
    values = [0, -1, 3, 2**40, 2**70, "", "x", "0-3", "100%", "1T", 1.5, float("inf"),
              float("nan"), [], {}, True, [[1]]]

    def leaves(x, path=()):
        if isinstance(x, dict):
            for k, v in x.items():
                yield from leaves(v, path + (k,))
        elif isinstance(x, list):
            for i, v in enumerate(x):
                yield from leaves(v, path + (i,))
        yield path

    n = 0
    for path in [p for p in leaves(d0) if p]:
        for v in values:
            d = copy.deepcopy(d0)
            t = d
            for k in path[:-1]:
                t = t[k]
            t[path[-1]] = v
            n += 1
            try:
                engine.Machine.from_description(d, source="fz.toml")
            except engine.DescriptionError as e:
                assert str(e).count("fz.toml") == 1, str(e)
                _one_line(str(e))
    assert n > 1000


# ------------------------------------------------------------------ under an address-space limit

LIMITED = """
import resource, sys
sys.path.insert(0, {root!r})
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
import engine
for path in sys.argv[1:]:
    try:
        m = engine.load(path)
        m.check()
        print("loaded", m.nr_frames)
    except engine.SaveError as e:
        print("refused", e)
"""


def test_loads_under_an_address_space_limit(tmp_path, pinned_snap):
    """In a process limited to 3 GiB of address space: a 4 TiB description and a
    snapshot declaring 4 GiB of zero chunks are refused with one line each (naming the
    numbers), and a 16 GiB machine still loads and passes check() there."""
    huge = tmp_path / "4T.toml"
    huge.write_text("[machine]\nname = 'big'\n" + "".join(
        f'[[nodes]]\nid = {i}\ncpus = "{i}"\nzones = {{ Normal = "1T" }}\n' for i in range(4)))
    zeros = tmp_path / "zeros.snap"
    zeros.write_bytes(crafted_snapshots(pinned_snap)["zero-chunks-4GiB"][0])
    ok = tmp_path / "16G.toml"
    ok.write_text(GOOD_TOML.replace('Normal = "28M"', 'Normal = "8188M"')
                  .replace('Normal = "32M"', 'Normal = "8G"'))
    script = LIMITED.format(root=ROOT, limit=3 << 30)
    r = subprocess.run([sys.executable, "-c", script, str(huge), str(zeros), str(ok)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert len(out) == 3, r.stdout
    assert out[0].startswith("refused ") and "1073741824 frames need 58.0 GiB" in out[0] \
        and "address-space limit" in out[0]
    assert out[1].startswith("refused ") and "snapshot needs 4.0 GiB" in out[1] \
        and "address-space limit" in out[1]
    assert out[2] == f"loaded {(16 << 30) // 4096}"
