"""Saving writes only regular files and loading reads only regular files (issue 11,
item 3), and the temporary files of killed saves are removed by the next save to the
same path (item 11)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import stat
import subprocess
import sys

import pytest

import engine
from engine.machines import snapshot as saves
from tests.conftest import small
from tests.test_saves import KILL_SCRIPT, ROOT, assert_same

HEX = "0123456789abcdef"


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail instead of hanging (a FIFO opened for reading blocks until a writer comes)."""
    def boom(signum, frame):
        raise TimeoutError(f"still blocked after {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def temps(d) -> list[str]:
    return sorted(n for n in os.listdir(d) if n.endswith(".tmp"))


def save_refused(m, p, match: str) -> None:
    with pytest.raises(engine.SaveError) as e:
        engine.save(m, p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: ") and "\n" not in msg and match in msg, msg


def load_refused(p, match: str) -> None:
    with deadline(5), pytest.raises(engine.SaveError) as e:
        engine.load(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: ") and "\n" not in msg and match in msg, msg


@pytest.fixture(scope="module")
def m():
    return small()


# ------------------------------------------------------------------ save

def test_save_refuses_a_fifo(tmp_path, m):
    p = tmp_path / "fifo"
    os.mkfifo(p)
    save_refused(m, p, "refusing to replace a FIFO: only regular files are written")
    assert stat.S_ISFIFO(os.lstat(p).st_mode) and temps(tmp_path) == []


def test_save_refuses_a_socket(tmp_path, m):
    p = tmp_path / "sock"
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(p))
        save_refused(m, p, "refusing to replace a socket")
        assert stat.S_ISSOCK(os.lstat(p).st_mode)
    finally:
        s.close()


def test_save_refuses_a_directory(tmp_path, m):
    (tmp_path / "d").mkdir()
    save_refused(m, tmp_path / "d", "refusing to replace a directory")
    assert os.listdir(tmp_path / "d") == [] and temps(tmp_path) == []


def test_save_refuses_a_device_node(tmp_path, m):
    """A character device of our own (the null device's numbers) where mknod is
    allowed; /dev/null itself is never used for a save test."""
    p = tmp_path / "null"
    try:
        os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError):
        pytest.skip("mknod is not permitted here")
    save_refused(m, p, "refusing to replace a character device")
    assert stat.S_ISCHR(os.lstat(p).st_mode)


def test_save_through_a_symlink_replaces_its_target(tmp_path, m):
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    target = tmp_path / "real" / "target.snap"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)
    link = tmp_path / "links" / "link.snap"
    os.symlink("../real/target.snap", link)
    engine.save(m, link)
    assert os.readlink(link) == "../real/target.snap"  # still the same link
    assert os.stat(target).st_mode & 0o777 == 0o600  # the target's mode is kept
    assert target.read_bytes().startswith(saves.MAGIC)
    assert_same(m, engine.load(target))
    assert_same(m, engine.load(link))
    assert temps(tmp_path / "real") == [] and temps(tmp_path / "links") == []


def test_save_refuses_a_dangling_symlink(tmp_path, m):
    link = tmp_path / "link.snap"
    os.symlink("nowhere.snap", link)
    save_refused(m, link, "refusing to write through a dangling symbolic link (to "
                          f"{tmp_path / 'nowhere.snap'})")
    assert not (tmp_path / "nowhere.snap").exists() and os.path.islink(link)
    assert temps(tmp_path) == []


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_save_refuses_a_symlink_to_a_special_file(tmp_path, m, kind):
    t = tmp_path / "t"
    os.mkfifo(t) if kind == "fifo" else t.mkdir()
    link = tmp_path / "link.snap"
    os.symlink(t, link)
    save_refused(m, link, "refusing to write through a symbolic link to " +
                 ("a FIFO" if kind == "fifo" else "a directory"))
    assert os.path.islink(link) and temps(tmp_path) == []


def test_save_refuses_a_symlink_loop(tmp_path, m):
    a, b = tmp_path / "a", tmp_path / "b"
    os.symlink(b, a)
    os.symlink(a, b)
    save_refused(m, a, "cannot write: Too many levels of symbolic links")


# ------------------------------------------------------------------ load

def test_load_refuses_dev_null():
    load_refused("/dev/null", "cannot read a character device: only regular files are "
                              "loaded")


ZERO_SCRIPT = """
import os, resource, sys
# a reader that does not stop at the device would grow until this limit, not the host's
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
sys.path.insert(0, {root!r})
import engine
for p in sys.argv[1:]:
    try:
        engine.load(p)
        print(p, "loaded")
    except engine.SaveError as e:
        print(e)
"""


def test_load_refuses_dev_zero_without_reading_it(tmp_path):
    """In a child process with a 1 GiB address-space limit: reading /dev/zero to the end
    would never finish."""
    os.symlink("/dev/zero", tmp_path / "zero")
    out = subprocess.run([sys.executable, "-c", ZERO_SCRIPT.format(root=ROOT), "/dev/zero",
                          str(tmp_path / "zero")], capture_output=True, text=True, timeout=60)
    assert out.stdout.splitlines() == [
        "/dev/zero: cannot read a character device: only regular files are loaded",
        f"{tmp_path / 'zero'}: cannot read a character device: only regular files are "
        f"loaded"], out.stderr


def test_load_refuses_a_fifo_without_hanging(tmp_path):
    p = tmp_path / "fifo"
    os.mkfifo(p)
    load_refused(p, "cannot read a FIFO")


def test_load_refuses_a_directory(tmp_path):
    load_refused(tmp_path, "cannot read a directory")


def test_load_opens_without_blocking(tmp_path, monkeypatch):
    """A FIFO swapped in between the check and the open: O_NONBLOCK keeps the open from
    waiting for a writer, and fstat refuses what was opened."""
    p = tmp_path / "fifo"
    os.mkfifo(p)
    real_stat = os.stat

    def regular_once(path, *a, **k):  # the check sees a regular file
        st = real_stat(path, *a, **k)
        if os.fspath(path) == str(p):
            return real_stat(__file__)
        return st

    monkeypatch.setattr(saves.os, "stat", regular_once)
    load_refused(p, "cannot read a FIFO")


def test_load_through_symlinks(tmp_path, m):
    engine.save(m, tmp_path / "m.snap")
    os.symlink("m.snap", tmp_path / "link")
    assert_same(m, engine.load(tmp_path / "link"))
    os.symlink("/dev/null", tmp_path / "null")
    load_refused(tmp_path / "null", "cannot read a character device")


def test_description_read_is_bounded_by_bytes_read(tmp_path, monkeypatch):
    """A description that grows while it is read (here: fstat says 40 bytes, the file
    holds 3000) is cut at the limit and refused, whatever st_size said."""
    monkeypatch.setattr(saves, "MAX_DESCRIPTION", 2000)
    p = tmp_path / "grows.toml"
    p.write_text("# padding\n" * 300)
    real_fstat = os.fstat

    def small_size(fd):
        st = real_fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_size == 3000:
            return os.stat_result(st[:6] + (40,) + st[7:])
        return st

    monkeypatch.setattr(saves.os, "fstat", small_size)
    load_refused(p, "not a numacon snapshot, and more than 2000 bytes is too large for a "
                    "machine description")


# ------------------------------------------------------------------ stale temporary files

def test_next_save_removes_stale_temporaries_and_nothing_else(tmp_path, m):
    p = tmp_path / "m.snap"
    stale = [tmp_path / f".m.snap.{HEX}.tmp", tmp_path / f".m.snap.{HEX[::-1]}.tmp"]
    for s in stale:
        s.write_bytes(b"left by a killed save")
    keep = {
        "running": tmp_path / f".m.snap.{'1' * 16}.tmp",  # a save still writing it
        "symlink": tmp_path / f".m.snap.{'2' * 16}.tmp",
        "fifo": tmp_path / f".m.snap.{'3' * 16}.tmp",
        "other file": tmp_path / f".other.snap.{HEX}.tmp",
        "short": tmp_path / ".m.snap.0123.tmp",
        "upper": tmp_path / f".m.snap.{HEX.upper()}.tmp",
        "no dot": tmp_path / f"m.snap.{HEX}.tmp",
        "elsewhere": tmp_path / "sub" / f".m.snap.{HEX}.tmp",
    }
    (tmp_path / "sub").mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep")
    for k, f in keep.items():
        if k == "symlink":
            os.symlink(victim, f)
        elif k == "fifo":
            os.mkfifo(f)
        else:
            f.write_bytes(b"x")
    fd = os.open(keep["running"], os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        engine.save(m, p)
    finally:
        os.close(fd)
    assert not any(s.exists() for s in stale)
    assert all(os.path.lexists(f) for f in keep.values())
    assert victim.read_text() == "keep"
    assert_same(m, engine.load(p))


def test_save_after_a_killed_save_removes_its_temporary(tmp_path):
    p = tmp_path / "m.snap"
    engine.save(small(), p)
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT.format(root=ROOT), str(p),
                             "fsync"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "stalled"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    left = temps(tmp_path)
    assert len(left) == 1 and left[0].startswith(".m.snap.")
    m = small()
    engine.save(m, p)
    assert temps(tmp_path) == []
    assert_same(m, engine.load(p))
