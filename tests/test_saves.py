"""Snapshots: exact round trips, refusals, corrupt files, atomic writes."""

from __future__ import annotations

import glob
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import zlib
from collections import Counter, deque

import numpy as np
import pytest

import engine
from engine.constants import MPOL_BIND, MPOL_INTERLEAVE, MPOL_MF_MOVE
from engine.machine import RUNTIME
from engine.machines import container
from engine.machines import snapshot as saves
from tests.conftest import small

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = sorted(glob.glob(os.path.join(ROOT, "saves", "*.toml")))

# attributes that belong to the running program, not the machine
SKIP = {"listeners", "_event", "_task", "gen", "_clockctl",
        "moves"}  # the console's record of migrations (undo): runtime, not saved


# ------------------------------------------------------------------ deep equality

def diff(a, b) -> list[str]:
    """Differences between two object graphs, field by field. Written independently
    of engine/saves.py: it walks vars() of everything reachable from the machine and
    also checks that sharing is the same (one object on the left is one object on the
    right, both ways)."""
    out: list[str] = []
    fwd: dict[int, int] = {}
    back: dict[int, int] = {}
    keep: list = []

    def walk(x, y, path: str) -> None:
        if len(out) > 20:
            return
        if type(x) is not type(y):
            out.append(f"{path}: type {type(x).__name__} != {type(y).__name__}")
            return
        if isinstance(x, np.ndarray):
            if x.dtype != y.dtype or x.shape != y.shape or not np.array_equal(x, y):
                out.append(f"{path}: arrays differ ({x.dtype}{x.shape} vs {y.dtype}{y.shape})")
            return
        if x is None or isinstance(x, (bool, int, float, str, bytes, np.generic)):
            if x != y and not (x != x and y != y):  # NaN == NaN here
                out.append(f"{path}: {x!r} != {y!r}")
            return
        if isinstance(x, (frozenset, set)):
            if x != y:
                out.append(f"{path}: {x!r} != {y!r}")
            return
        if isinstance(x, np.random.Generator):
            if x.bit_generator.state != y.bit_generator.state:
                out.append(f"{path}: RNG state differs")
            return
        if isinstance(x, BaseException):
            if x.args != y.args:
                out.append(f"{path}: {x!r} != {y!r}")
            return
        if callable(x) and not hasattr(x, "__dict__"):
            return
        # containers and objects: identity must correspond
        if id(x) in fwd or id(y) in back:
            if fwd.get(id(x)) != id(y) or back.get(id(y)) != id(x):
                out.append(f"{path}: sharing differs")
            return
        fwd[id(x)], back[id(y)] = id(y), id(x)
        keep.extend((x, y))
        if isinstance(x, (list, tuple, deque)):
            if len(x) != len(y):
                out.append(f"{path}: length {len(x)} != {len(y)}")
                return
            for i, (u, v) in enumerate(zip(x, y)):
                walk(u, v, f"{path}[{i}]")
            if isinstance(x, list) and hasattr(x, "__dict__"):
                walk(vars(x), vars(y), f"{path}.__dict__")
            return
        if isinstance(x, dict):
            if list(x) != list(y):
                out.append(f"{path}: keys {list(x)[:8]} != {list(y)[:8]}")
                return
            for k in x:
                if k not in SKIP:
                    walk(x[k], y[k], f"{path}[{k!r}]")
            return
        if hasattr(x, "__dict__"):
            # an object that defines its own state (dropping caches, say) is compared by it
            own = type(x).__getstate__ is not object.__getstate__
            vx, vy = (x.__getstate__(), y.__getstate__()) if own else (vars(x), vars(y))
            vx = {k: v for k, v in vx.items() if k not in SKIP}
            vy = {k: v for k, v in vy.items() if k not in SKIP}
            if set(vx) != set(vy):  # attribute order carries no meaning
                out.append(f"{path}: attributes {sorted(set(vx) ^ set(vy))} differ")
                return
            for k in vx:
                if k not in SKIP:
                    walk(vx[k], vy[k], f"{path}.{k}")
            return
        if x != y:
            out.append(f"{path}: {x!r} != {y!r}")

    walk(a, b, "m")
    return out


def roundtrip(m, tmp_path, name="m.snap"):
    p = tmp_path / name
    engine.save(m, p)
    return engine.load(p)


def assert_same(m, m2):
    d = diff(m, m2)
    assert not d, "\n".join(d)


# ------------------------------------------------------------------ round trips

def test_default_round_trip_is_exact(tmp_path):
    m = engine.Machine.default()
    m2 = roundtrip(m, tmp_path)
    assert_same(m, m2)
    m2.check()
    for f in m.f.FIELDS:
        assert np.array_equal(getattr(m.f, f), getattr(m2.f, f))
    assert m2.era is m.era  # the era singleton, not a copy
    assert m2.numa_maps(100) == m.numa_maps(100)
    assert m2.zoneinfo() == m.zoneinfo()
    assert m2.numastat() == m.numastat()


def test_operations_continue_identically(tmp_path):
    m = engine.Machine.default()
    m2 = roundtrip(m, tmp_path)
    p = m.process(103)
    addrs = [p.vmas[-1].start + i * m.page_size for i in range(0, 4000, 7)]
    for mm in (m, m2):
        st = mm.move_pages(103, addrs, [1] * len(addrs), MPOL_MF_MOVE)
        mm.migrate_pages(101, [1], [0])
        mm.mbind(100, mm.process(100).vmas[-1].start, 64 << 20, MPOL_BIND, [2],
                 MPOL_MF_MOVE)
        a = mm.mmap(102, 8 << 20)
        mm.touch(102, a, 8 << 20, node=3)
        mm.kill(104)
        mm.check()
        if mm is m:
            first = (list(st), st.ret)
        else:
            assert (list(st), st.ret) == first
    assert_same(m, m2)


def busy_machine():
    """A machine that went through most of what the engine does."""
    m = engine.Machine.default()
    p = m.process(103)
    v = p.vmas[-1]
    m.move_pages(103, [v.start + i * m.page_size for i in range(512)], [3] * 512)
    m.munmap(100, m.process(100).vmas[-1].start + (4 << 20), 1 << 20)  # split a VMA
    m.mbind(104, m.process(104).vmas[0].start, 4 << 20, MPOL_INTERLEAVE, [0, 1])
    m.mlockall(105, 3)
    m.set_migrate_hook("uncached", True)
    m.migrate_pages(106, [1], [2])
    m.il_weights[1] = 4
    m.kill(102)
    pid = m.spawn("late", uid=7, node=2, mems_allowed="1-3")
    m.set_mempolicy(pid, MPOL_INTERLEAVE, [1, 3])
    a = m.mmap(pid, 4 << 20)
    m.touch(pid, a, 4 << 20)
    m.pin(pid, a, 1 << 20, "rdma0")
    m.offline_block(m.f.n // m.block_pages - 1)
    m.vmstat_extra["custom"] = 3
    m.time.advance(12345)
    m.check()
    return m


def test_busy_machine_round_trip(tmp_path):
    m = busy_machine()
    m2 = roundtrip(m, tmp_path)
    assert_same(m, m2)
    m2.check()
    assert m2.blk_state.any() and m2.traffic is not None


def test_era_round_trip(tmp_path):
    m = small()
    m.era = "2.6.18"
    m2 = roundtrip(m, tmp_path)
    assert m2.era.name == "2.6.18" and m2.era is m.era
    assert_same(m, m2)


@pytest.mark.parametrize("path", PRESETS, ids=os.path.basename)
def test_presets_round_trip(path, tmp_path):
    m = engine.load(path)
    m2 = roundtrip(m, tmp_path)
    assert_same(m, m2)
    m2.check()


def test_workloads_jobs_and_daemons_round_trip(tmp_path):
    m = engine.Machine.default()
    m.start("workload", 100, pattern="zipf", ticks=15, threads=(0, 2))
    m.start("daemon", 100, source="hint", period_ns=1_000_000)
    m.run_jobs(max_steps=20)
    for j in list(m.jobs):
        j.cancel()
    m.run_jobs()
    m.timeline.sample(m)
    m2 = roundtrip(m, tmp_path)
    assert_same(m, m2)
    assert [j.state for j in m2.finished_jobs] == [j.state for j in m.finished_jobs]
    # the RNG continues where it was
    assert m2.workloads[0].rng.integers(0, 1 << 30, 8).tolist() == \
        m.workloads[0].rng.integers(0, 1 << 30, 8).tolist()
    m2.check()


def test_finished_job_results_round_trip(tmp_path):
    m = small(procs=[{"name": "p", "pid": 10, "node": 0, "vmas": [{"size": "4M"}]}])
    v = m.process(10).vmas[0]

    async def go():
        job = m.start("move_pages", 10, [v.start, v.start + m.page_size], [1, 1])
        return await job.wait()

    import asyncio

    asyncio.run(go())
    m2 = roundtrip(m, tmp_path)
    j, j2 = m.finished_jobs[-1], m2.finished_jobs[-1]
    assert type(j2.result) is type(j.result) and list(j2.result) == list(j.result)
    assert j2.result.ret == j.result.ret and j2.id == j.id and j2.state == "done"
    assert_same(m, m2)


def test_every_machine_attribute_has_a_place():
    """The snapshot names every attribute a Machine has: kernel state, derived
    lookups, or the running program's; nothing is saved or dropped by accident."""
    fresh = set(vars(engine.Machine()))
    assert fresh == set(saves.KERNEL_STATE) | set(saves.DERIVED) | set(RUNTIME)
    assert set(saves.RUNTIME_STATE) <= set(RUNTIME)


def test_an_attribute_without_a_place_is_refused(tmp_path):
    """State parked on the machine outside its declared subsystems is refused at save,
    naming it, rather than silently dropped."""
    m = small()
    m.some_counter = Counter({"a": 1})
    with pytest.raises(engine.SaveError, match=r"m\.snap: .*'some_counter' has no place"):
        engine.save(m, tmp_path / "m.snap")
    assert not os.path.exists(tmp_path / "m.snap")


def test_unsavable_attribute_is_named(tmp_path):
    m = small()
    m.callback = lambda: None
    with pytest.raises(engine.SaveError, match=r"m\.snap: .*'callback' has no place"):
        engine.save(m, tmp_path / "m.snap")
    assert not os.path.exists(tmp_path / "m.snap")


def test_save_refuses_while_jobs_run(tmp_path):
    m = engine.Machine.default()
    v = m.process(103).vmas[-1]
    job = m.start("move_pages", 103, [v.start + i * m.page_size for i in range(2048)],
                  [1] * 2048, batch=64)
    job.step()
    with pytest.raises(engine.SaveError, match="jobs are running"):
        engine.save(m, tmp_path / "m.snap")
    m.run_jobs()
    engine.save(m, tmp_path / "m.snap")  # fine once finished
    assert_same(m, engine.load(tmp_path / "m.snap"))


def test_snapshot_format(tmp_path):
    p = tmp_path / "m.snap"
    m = small()
    engine.save(m, p)
    data = p.read_bytes()
    assert data.startswith(container.MAGIC)
    _, off, ln, crc = container.HEADER.unpack_from(data)
    man = json.loads(data[off:off + ln])
    assert man["format"] == "numacon-snapshot" and man["version"] == 2
    names = {b["name"] for b in man["blobs"]}
    assert {f"frames.{f}" for f in m.f.FIELDS} <= names and "state" in names
    for b in man["blobs"]:
        assert b["dtype"] in container.DTYPES
        assert all(len(c) == 4 for c in b["chunks"])


def test_load_check_option(tmp_path):
    p = tmp_path / "m.snap"
    engine.save(small(), p)
    engine.load(p, check=True)


# ------------------------------------------------------------------ broken files

@pytest.fixture(scope="module")
def snap(tmp_path_factory):
    p = tmp_path_factory.mktemp("snap") / "good.snap"
    m = small(procs=[{"name": "p", "pid": 10, "node": 1, "vmas": [{"size": "8M"}]}])
    engine.save(m, p)
    return p.read_bytes()


def load_bytes(tmp_path, data: bytes, name="x.snap"):
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(engine.SaveError) as e:
        engine.load(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: ") and "\n" not in msg
    return msg


def test_missing_file(tmp_path):
    with pytest.raises(engine.SaveError, match="cannot read"):
        engine.load(tmp_path / "nope.snap")


def test_empty_file(tmp_path):
    assert "empty" in load_bytes(tmp_path, b"")


@pytest.mark.parametrize("cut", [1, 5, 11, 12, 20, 31, 32, 100, 1000, -100, -1])
def test_truncated(tmp_path, snap, cut):
    n = cut if cut > 0 else len(snap) + cut
    msg = load_bytes(tmp_path, snap[:n])
    assert "truncated" in msg or "incomplete" in msg


def test_every_truncation_is_refused(tmp_path, snap):
    for n in range(0, len(snap), max(1, len(snap) // 97)):
        load_bytes(tmp_path, snap[:n])


def test_bit_flips_are_refused(tmp_path, snap):
    rng = np.random.default_rng(1)
    positions = list(range(40)) + sorted(rng.integers(0, len(snap), 150).tolist())
    for pos in positions:
        bad = bytearray(snap)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        load_bytes(tmp_path, bytes(bad))


@pytest.mark.parametrize("data", [
    b"\x89PNG\r\n\x1a\n" + bytes(100),
    b"PK\x03\x04" + bytes(100),
    b"\x7fELF\x02\x01\x01" + bytes(100),
    bytes(range(256)) * 4,
    b'{"format": "something"}',
    b"<html><body>hello</body></html>",
])
def test_foreign_formats(tmp_path, data):
    msg = load_bytes(tmp_path, data)
    assert "not a" in msg


def rewrite_manifest(snap: bytes, edit) -> bytes:
    _, off, ln, _ = container.HEADER.unpack_from(snap)
    man = json.loads(snap[off:off + ln])
    edit(man)
    mb = json.dumps(man).encode()
    head = container.HEADER.pack(container.MAGIC, off, len(mb), zlib.crc32(mb))
    return head + snap[container.HEADER.size:off] + mb


def test_newer_version(tmp_path, snap):
    msg = load_bytes(tmp_path, rewrite_manifest(snap, lambda m: m.update(version=3)))
    assert "version 3 is newer" in msg


def test_foreign_manifest(tmp_path, snap):
    assert "not a numacon snapshot" in load_bytes(
        tmp_path, rewrite_manifest(snap, lambda m: m.update(format="other")))


def test_absurd_sizes_refused_before_allocation(tmp_path, snap, monkeypatch):
    def huge(man):
        b = man["blobs"][0]
        b["shape"] = [1 << 40]

    def huge_chunk(man):
        b = man["blobs"][0]
        b["shape"] = [1 << 36]
        b["chunks"] = [["deflate", 10, 1 << 36, 0]]

    def many(man):
        man["blobs"][0]["shape"] = [1 << 45]
        man["blobs"][0]["chunks"] = [["zero", 0, 1 << 22, 0]] * (1 << 23)

    allocated = []
    real = np.zeros
    monkeypatch.setattr(container.np, "zeros",
                        lambda shape, *a, **k: allocated.append(shape) or real(shape, *a, **k))
    for edit in (huge, huge_chunk):
        load_bytes(tmp_path, rewrite_manifest(snap, edit))
    assert not any(np.prod(s) > 1 << 30 for s in allocated)
    # a declared chunk bigger than the chunk size, or an object dtype
    for edit in (lambda m: m["blobs"][0]["chunks"][0].__setitem__(2, 1 << 30),
                 lambda m: m["blobs"][0].update(dtype="|O"),
                 lambda m: m.update(chunk_size=1 << 40)):
        load_bytes(tmp_path, rewrite_manifest(snap, edit))


def test_inconsistent_state_is_refused(tmp_path):
    """A well-formed container whose state does not hang together."""
    m = small(procs=[{"name": "p", "pid": 10, "node": 1, "vmas": [{"size": "8M"}]}])
    state, arrays = saves.snapshot_state(m)
    state["procs"][0]["pt"] += 5
    blob = np.frombuffer(json.dumps(state).encode(), np.uint8)
    p = tmp_path / "x.snap"
    container.atomic_write(str(p), lambda fh: container.write_container(
        fh, list(arrays.items()) + [("state", blob)]))
    with pytest.raises(engine.SaveError, match="inconsistent snapshot"):
        engine.load(p)


# ------------------------------------------------------------------ atomic writes

def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "m.snap"
    m = small()
    engine.save(m, p)
    before = p.read_bytes()
    calls = []

    def boom(buf, dd):
        calls.append(1)
        if len(calls) > 3:
            raise OSError(28, "No space left on device")
        return real(buf, dd)

    real = container._encode_chunk
    monkeypatch.setattr(container, "_encode_chunk", boom)
    m2 = busy_machine()
    with pytest.raises(engine.SaveError, match="No space left"):
        engine.save(m2, p)
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.snap"]  # the temporary file is gone


def test_save_keeps_permissions(tmp_path):
    p = tmp_path / "m.snap"
    engine.save(small(), p)
    assert os.stat(p).st_mode & 0o777 == 0o644
    os.chmod(p, 0o600)
    engine.save(small(), p)
    assert os.stat(p).st_mode & 0o777 == 0o600


def test_unwritable_directory(tmp_path):
    with pytest.raises(engine.SaveError, match="cannot write"):
        engine.save(small(), tmp_path / "no" / "such" / "dir.snap")


KILL_SCRIPT = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {root!r})
    import engine
    from engine.machines import container
    where = sys.argv[2]
    real_encode, real_fsync = container._encode_chunk, os.fsync
    n = [0]

    def stall():
        print("stalled", flush=True)
        time.sleep(60)

    def encode(buf, dd):
        n[0] += 1
        if where == "data" and n[0] == 5:
            stall()
        return real_encode(buf, dd)

    def fsync(fd):
        if where == "fsync":
            stall()
        return real_fsync(fd)

    container._encode_chunk = encode
    container.os.fsync = fsync
    m = engine.Machine.default()
    m.kill(103)
    engine.save(m, sys.argv[1])
""")


@pytest.mark.parametrize("where", ["data", "fsync"])
def test_kill_during_save_keeps_the_old_file(tmp_path, where):
    p = tmp_path / "m.snap"
    m = engine.Machine.default()
    engine.save(m, p)
    before = p.read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT.format(root=ROOT), str(p),
                             where], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "stalled"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert p.read_bytes() == before
    assert_same(m, engine.load(p))


# ------------------------------------------------------------------ speed

def test_header_struct_is_stable():
    assert container.HEADER.size == 32 and container.MAGIC == b"\x89NUMACON\r\n\x1a\n"
    assert struct.calcsize("<12sQQI") == 32
