"""engine.load / engine.save: machine descriptions (TOML, written by people) and exact
snapshots (written by the program).

Snapshot container (one file, little-endian):

    header    magic b"\\x89NUMACON\\r\\n\\x1a\\n", u64 manifest offset, u64 manifest length,
              u32 crc32 of the manifest
    blobs     each array cut into chunks of at most `chunk_size` bytes; a chunk is stored
              "zero" (all zero bytes: nothing stored), "raw", "deflate" (zlib level 1), or
              "delta" (signed ints: zlib level 1 of the differences between elements)
    manifest  JSON: {"format": "numacon-snapshot", "version": 2, "chunk_size", "raw_bytes",
              "blobs": [{"name", "dtype", "shape", "offset",
                         "chunks": [[codec, stored bytes, raw bytes, crc32 of stored], ...]}]}

The machine's non-array state (zones, processes, VMAs, mappings, drivers, counters...)
is the JSON blob "state"; page tables and backing indexes of all VMAs are concatenated
into a few large arrays so a machine with thousands of VMAs is still a handful of blobs.
Engine objects in the state (workloads, daemons, finished jobs...) are records of the
schema in engine/machines/snapshot_schema.py: the file names a record type, never a class.
Chunks are encoded and decoded on a thread pool (zlib and crc32 release the GIL), and
all-zero chunks are neither stored nor read back: a fresh 64 GiB machine is mostly zero.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import inspect
import json
import math
import os
import re
import secrets
import stat
import struct
import tempfile
import tomllib
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from ..mm import memory as mm
from . import snapshot_schema as schema

if TYPE_CHECKING:  # pragma: no cover
    from ..machine import Machine


class SaveError(Exception):
    """A file that cannot be loaded or saved: a one-line reason naming the file."""


MAGIC = b"\x89NUMACON\r\n\x1a\n"  # the PNG trick: binary, and text-mode mangling shows
HEADER = struct.Struct("<12sQQI")
FORMAT = "numacon-snapshot"
VERSION = 2  # 2: records named by schema tags (1 named classes; still read)
CHUNK = 4 << 20
MAX_CHUNK = 64 << 20  # a chunk size a snapshot may declare
MAX_MANIFEST = 64 << 20
MAX_DESCRIPTION = 16 << 20  # a TOML description people wrote is never this large
CODECS = ("zero", "raw", "deflate", "delta")
DEFLATE_MAX_RATIO = 1032  # deflate cannot expand data more than this (258-byte matches)
# dtypes a snapshot may declare; anything else (object arrays!) is refused
DTYPES = {"|u1", "|i1", "|b1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8"}
WORKERS = max(1, min(8, os.cpu_count() or 1))

# Extension point for state that lives outside the classes saved here (workloads,
# for one): name -> (dump(m) -> JSON-able, restore(m, obj)). Registered by the module
# that owns the state, at import time.
STATE_HOOKS: dict[str, tuple[Callable[[Any], Any], Callable[[Any, Any], None]]] = {}


# =================================================================== public API

def load(path: str | os.PathLike, *, check: bool = False) -> Machine:
    """A machine from a snapshot or a TOML description; the format is sniffed from the
    first bytes. Raises SaveError("PATH: reason") for anything that cannot be loaded.
    check=True also runs Machine.check() on the result."""
    p = os.fspath(path)
    try:
        fh, size = _open_regular(p)
        with fh:
            head = fh.read(HEADER.size)
            if not head:
                raise SaveError(f"{p}: empty file")
            if head.startswith(MAGIC):
                m = _load_snapshot(fh, p, head, size)
            elif MAGIC.startswith(head):
                raise SaveError(f"{p}: truncated snapshot ({size} bytes)")
            else:
                m = _load_description(fh, p, head, size)
    except OSError as e:
        raise SaveError(f"{p}: cannot read: {e.strerror or e}") from None
    except MemoryError:  # a machine larger than this process may allocate (ulimit -v)
        raise SaveError(f"{p}: this machine needs more memory than this host can "
                        f"give the process") from None
    if check:
        from ..machine import InvariantError

        try:
            m.check()
        except InvariantError as e:
            raise SaveError(f"{p}: loaded machine is inconsistent: {e}") from None
    return m


def save(m: Machine, path: str | os.PathLike) -> None:
    """Write an exact snapshot of m, atomically: a temporary file in the same
    directory, flushed and fsynced, renamed over PATH. Refused while jobs run (a job
    is a Python generator suspended mid-operation: it cannot be written down)."""
    p = os.fspath(path)
    if m.jobs:
        names = ", ".join(f"{j.name} #{j.id}" for j in m.jobs)
        raise SaveError(f"{p}: cannot save while jobs are running ({names}); wait for them "
                        f"or cancel them first")
    try:
        state, arrays = snapshot_state(m)
        for name, a in arrays.items():
            _dtype_str(a, name)
    except SaveError as e:
        raise SaveError(f"{p}: {e}") from None
    state_bytes = json.dumps(state, separators=(",", ":")).encode()
    blobs = list(arrays.items()) + [("state", np.frombuffer(state_bytes, np.uint8))]
    _atomic_write(p, lambda fh: _write_container(fh, blobs))


def bench(m: Machine, directory: str | None = None) -> dict:
    """Time a save and a load of m (for `numacon bench`): seconds and bytes."""
    import time

    with tempfile.TemporaryDirectory(dir=directory) as d:
        p = os.path.join(d, "bench.snap")
        t0 = time.perf_counter()
        save(m, p)
        t1 = time.perf_counter()
        load(p)
        t2 = time.perf_counter()
        return {"frames": m.nr_frames, "save_s": t1 - t0, "load_s": t2 - t1,
                "bytes": os.path.getsize(p)}


# =================================================================== descriptions

def _load_description(fh, p: str, head: bytes, size: int) -> Machine:
    from .description import DescriptionError, load_description

    if size > MAX_DESCRIPTION:
        raise SaveError(f"{p}: not a numacon snapshot, and {size} bytes is too large for a "
                        f"machine description")
    # bounded by what is read, not by st_size: the file may grow while it is read
    data = head + fh.read(MAX_DESCRIPTION + 1 - len(head))
    if len(data) > MAX_DESCRIPTION:
        raise SaveError(f"{p}: not a numacon snapshot, and more than {MAX_DESCRIPTION} "
                        f"bytes is too large for a machine description")
    if b"\0" in data:
        raise SaveError(f"{p}: not a numacon snapshot or machine description (binary data)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SaveError(f"{p}: not a numacon snapshot or machine description (not UTF-8 "
                        f"text)") from None
    try:
        return load_description(text, source=p)
    except tomllib.TOMLDecodeError as e:
        raise SaveError(f"{p}: not a valid TOML description: {e}") from None
    except DescriptionError as e:  # already "PATH:LINE: key: problem"
        raise SaveError(str(e)) from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OSError) as e:
        # the builder validates what it reads; this is the one-line net for a case it
        # missed (the description tests fuzz for them)
        raise SaveError(f"{p}: cannot build this machine: {type(e).__name__}: {e}") from None


# =================================================================== regular files only

def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "a special file"


def _open_regular(p: str) -> tuple[Any, int]:
    """(binary file, size) of p if it is a regular file (a symbolic link to one is
    followed). A device is refused before it is opened (opening one can act); O_NONBLOCK
    keeps a FIFO swapped in meanwhile from blocking the open; fstat decides on what was
    actually opened."""
    st = os.stat(p)
    if not stat.S_ISREG(st.st_mode):
        raise SaveError(f"{p}: cannot read {_file_kind(st.st_mode)}: only regular files "
                        f"are loaded")
    fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SaveError(f"{p}: cannot read {_file_kind(st.st_mode)}: only regular files "
                            f"are loaded")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), st.st_size
    except BaseException:
        os.close(fd)
        raise


def _save_target(p: str) -> str:
    """The file a save to p replaces: p itself (new or regular), or the regular file a
    symbolic link at p resolves to (the link stays a link). Anything else is refused:
    renaming over a device node, FIFO or socket would replace it with a regular file."""
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return p
    if stat.S_ISLNK(st.st_mode):
        real = os.path.realpath(p)
        try:
            st = os.stat(real)
        except FileNotFoundError:
            raise SaveError(f"{p}: refusing to write through a dangling symbolic link (to "
                            f"{real})") from None
        if not stat.S_ISREG(st.st_mode):
            raise SaveError(f"{p}: refusing to write through a symbolic link to "
                            f"{_file_kind(st.st_mode)}: only regular files are written")
        return real
    if not stat.S_ISREG(st.st_mode):
        raise SaveError(f"{p}: refusing to replace {_file_kind(st.st_mode)}: only regular "
                        f"files are written")
    return p


# =================================================================== atomic write

TMP_SUFFIX = re.compile(r"\.[0-9a-f]{16}\.tmp")  # after ".NAME": the saver's temporary files


def _atomic_write(p: str, write: Callable) -> None:
    """Write through a temporary file ".NAME.<16 hex>.tmp" beside the target, then rename
    it over the target. The temporary file is flock()ed while written, so the stale ones
    of killed saves (unlocked) can be told from those of saves still running."""
    try:
        target = _save_target(p)
        d = os.path.dirname(os.path.abspath(target))
        base = os.path.basename(target)
        fd, tmp = _create_temp(d, base)
    except OSError as e:
        raise SaveError(f"{p}: cannot write: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
            os.chmod(tmp, _mode_for(target))
            if _save_target(p) != target:  # swapped for something else while we wrote
                raise SaveError(f"{p}: changed while the snapshot was written; not replaced")
            os.replace(tmp, target)
        _fsync_dir(d)  # the rename itself must reach the disk too
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise SaveError(f"{p}: cannot write: {e.strerror or e}") from None
        raise
    _remove_stale_temps(d, base)


def _create_temp(d: str, base: str) -> tuple[int, str]:
    for _ in range(100):
        tmp = os.path.join(d, f".{base}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            continue
        try:  # (a cleanup that ran between the create and the lock would fail this save)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            os.close(fd)
            os.unlink(tmp)
            raise
        return fd, tmp
    raise FileExistsError(errno.EEXIST, "no unused temporary file name")


def _remove_stale_temps(d: str, base: str) -> None:
    """Remove what killed saves to the same file left: only names the saver makes
    (".BASE.<16 hex>.tmp"), only regular files, only in this directory, and only those
    no running save holds locked."""
    prefix = f".{base}"
    try:
        names = [n for n in os.listdir(d)
                 if n.startswith(prefix) and TMP_SUFFIX.fullmatch(n, len(prefix))]
    except OSError:
        return
    for name in names:
        path = os.path.join(d, name)
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                continue
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held, now = os.fstat(fd), os.lstat(path)
            if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino) == \
                    (st.st_dev, st.st_ino):  # still the file checked and locked
                os.unlink(path)
        except OSError:
            pass  # locked by a save in progress, or gone
        finally:
            os.close(fd)


def _mode_for(p: str) -> int:
    """Keep an existing file's permissions; new files get 0644 (the temporary file is
    created 0600)."""
    try:
        return os.stat(p).st_mode & 0o777
    except OSError:
        return 0o644


def _fsync_dir(d: str) -> None:
    try:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# =================================================================== container: write

def _as_bytes(a: np.ndarray) -> memoryview:
    a = np.ascontiguousarray(a)
    return memoryview(a.reshape(-1).view(np.uint8))


def _encode_chunk(buf: memoryview, delta: np.dtype | None) -> tuple[str, object, int]:
    """(codec, stored bytes, crc32 of them). Page contents are random and cost 1 s per
    60 MB to deflate in vain, so a 64 KiB sample decides first. Signed-int arrays
    (PFNs, page indexes, ids) mostly climb by 1 or stay put: their differences
    ("delta") deflate ten times faster and smaller than the values."""
    if not np.frombuffer(buf, np.uint8).any():
        return "zero", b"", 0
    codec, data = "deflate", buf
    if delta is not None:
        x = np.frombuffer(buf, delta)
        d = np.empty_like(x)
        d[0] = x[0]
        np.subtract(x[1:], x[:-1], out=d[1:])
        codec, data = "delta", memoryview(d.view(np.uint8))
    sample = data[:65536]
    if len(zlib.compress(sample, 1)) > 0.8 * len(sample):
        return "raw", buf, zlib.crc32(buf)
    c = zlib.compress(data, 1)
    if len(c) > 0.9 * len(buf):
        return "raw", buf, zlib.crc32(buf)
    return codec, c, zlib.crc32(c)


def _delta_dtype(a: np.ndarray) -> np.dtype | None:
    return a.dtype if a.dtype.kind == "i" and a.dtype.itemsize >= 4 else None


def _chunks(blobs) -> Iterator[tuple[int, memoryview, np.dtype | None]]:
    for i, (_, a) in enumerate(blobs):
        b = _as_bytes(a)
        dd = _delta_dtype(a)
        for s in range(0, len(b), CHUNK):  # CHUNK is a multiple of every itemsize
            yield i, b[s:s + CHUNK], dd


def _write_container(fh, blobs: list[tuple[str, np.ndarray]]) -> None:
    fh.write(HEADER.pack(MAGIC, 0, 0, 0))  # rewritten once the manifest is placed
    entries = [{"name": name, "dtype": _dtype_str(a), "shape": list(a.shape),
                "offset": None, "chunks": []} for name, a in blobs]
    pos = HEADER.size
    for e in entries:  # blobs with no chunks (empty arrays) still get an offset
        e["offset"] = pos
    with ThreadPoolExecutor(WORKERS) as pool:
        window: deque[tuple[int, int, Future]] = deque()

        def drain(limit: int) -> None:
            nonlocal pos
            while len(window) > limit:
                i, rlen, fut = window.popleft()
                codec, data, crc = fut.result()
                e = entries[i]
                if not e["chunks"]:
                    e["offset"] = pos
                fh.write(data)
                pos += len(data)
                e["chunks"].append([codec, len(data), rlen, crc])

        for i, buf, dd in _chunks(blobs):
            window.append((i, len(buf), pool.submit(_encode_chunk, buf, dd)))
            drain(2 * WORKERS)  # bounded: at most a few chunks encoded ahead
        drain(0)
    manifest = {"format": FORMAT, "version": VERSION, "chunk_size": CHUNK,
                "raw_bytes": sum(int(a.nbytes) for _, a in blobs), "blobs": entries}
    mb = json.dumps(manifest, separators=(",", ":")).encode()
    fh.write(mb)
    fh.seek(0)
    fh.write(HEADER.pack(MAGIC, pos, len(mb), zlib.crc32(mb)))


def _dtype_str(a: np.ndarray, name: str = "") -> str:
    """The array's dtype as the manifest names it (little-endian, plain numbers only)."""
    if a.dtype.str in DTYPES:
        return a.dtype.str
    raise SaveError(f"cannot store array {name} of dtype {a.dtype}")


# =================================================================== container: read

def _bad(p: str, why: str) -> SaveError:
    return SaveError(f"{p}: {why}")


def _read_manifest(fh, p: str, head: bytes, size: int) -> dict:
    if len(head) < HEADER.size:
        raise _bad(p, f"truncated snapshot ({size} bytes)")
    _, moff, mlen, mcrc = HEADER.unpack(head)
    if mlen == 0 and moff == 0:
        raise _bad(p, "incomplete snapshot (the writer never finished it)")
    if mlen > MAX_MANIFEST:
        raise _bad(p, f"corrupt snapshot: manifest of {mlen} bytes is absurd")
    if moff < HEADER.size or moff + mlen > size:
        raise _bad(p, f"truncated snapshot: manifest at {moff}+{mlen} lies beyond the end "
                      f"of the file ({size} bytes)")
    fh.seek(moff)
    mb = fh.read(mlen)
    if zlib.crc32(mb) != mcrc:
        raise _bad(p, "corrupt snapshot: manifest checksum mismatch")
    try:
        man = json.loads(mb)
    except (ValueError, UnicodeDecodeError):
        raise _bad(p, "corrupt snapshot: manifest is not JSON") from None
    if not isinstance(man, dict) or man.get("format") != FORMAT:
        raise _bad(p, f"not a numacon snapshot (format {man.get('format')!r})"
                   if isinstance(man, dict) else "corrupt snapshot: manifest is not a table")
    ver = man.get("version")
    if not isinstance(ver, int) or ver < 1:
        raise _bad(p, f"corrupt snapshot: version {ver!r}")
    if ver > VERSION:
        raise _bad(p, f"snapshot format version {ver} is newer than this numacon reads "
                      f"({VERSION}); upgrade numacon")
    _check_blobs(p, man, moff, size)
    return man


def _check_blobs(p: str, man: dict, data_end: int, size: int) -> None:
    """Every declared size is checked against the file and sane limits before a byte
    is allocated: a corrupt or hostile manifest cannot make us reserve memory."""
    cs = man.get("chunk_size")
    blobs = man.get("blobs")
    if not isinstance(cs, int) or not 0 < cs <= MAX_CHUNK or not isinstance(blobs, list):
        raise _bad(p, "corrupt snapshot: bad chunk size or blob list")
    total = 0
    for b in blobs:
        try:
            name, dt, shape, off, chunks = (b["name"], b["dtype"], b["shape"], b["offset"],
                                            b["chunks"])
            if dt not in DTYPES or not all(isinstance(x, int) and x >= 0 for x in shape):
                raise ValueError
            want = math.prod(shape) * np.dtype(dt).itemsize
            pos, got = off, 0
            if not isinstance(off, int) or off < HEADER.size:
                raise ValueError
            for codec, slen, rlen, crc in chunks:
                if codec not in CODECS or not 0 < rlen <= cs \
                        or not isinstance(slen, int) or not isinstance(crc, int):
                    raise ValueError
                if (codec == "raw" and slen != rlen) or (codec == "zero" and slen) or \
                        (codec in ("deflate", "delta") and
                         rlen > slen * DEFLATE_MAX_RATIO + 64) or \
                        (codec == "delta" and rlen % np.dtype(dt).itemsize):
                    raise ValueError
                pos += slen
                got += rlen
        except (KeyError, TypeError, ValueError):
            raise _bad(p, f"corrupt snapshot: bad blob entry {str(b)[:60]}") from None
        if pos > data_end:
            raise _bad(p, f"truncated snapshot: blob {name} runs past the data "
                          f"({pos} > {data_end})")
        if got != want:
            raise _bad(p, f"corrupt snapshot: blob {name} declares {want} bytes but its "
                          f"chunks hold {got}")
        total += want
    phys = _physical_memory()
    if total > phys:
        raise _bad(p, f"snapshot needs {total / 2**30:.1f} GiB of memory, more than this "
                      f"host has ({phys / 2**30:.1f} GiB)")


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 1 << 40


def _decode_chunk(codec: str, data, rlen: int, crc: int, dst: np.ndarray,
                  dtype: np.dtype) -> bool:
    """Verify and decode one chunk into dst (runs on the pool). False: corrupt."""
    if zlib.crc32(data) != crc:
        return False
    if codec in ("deflate", "delta"):
        try:
            out = zlib.decompress(data, bufsize=rlen)
        except zlib.error:
            return False
        if len(out) != rlen:
            return False
        if codec == "delta":
            np.cumsum(np.frombuffer(out, dtype), out=dst.view(dtype))
        else:
            dst[:] = np.frombuffer(out, np.uint8)
    return True


def _read_blobs(fh, p: str, man: dict) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with ThreadPoolExecutor(WORKERS) as pool:
        futs = []
        for b in man["blobs"]:
            # np.zeros: calloc'd, so the pages of zero chunks are never touched
            a = np.zeros(b["shape"], np.dtype(b["dtype"]))
            out[b["name"]] = a
            raw = a.reshape(-1).view(np.uint8)
            fh.seek(b["offset"])
            s = 0
            for codec, slen, rlen, crc in b["chunks"]:
                dst = raw[s:s + rlen]
                s += rlen
                if codec == "zero":
                    continue
                if codec == "raw":
                    n = fh.readinto(memoryview(dst))
                    data = dst
                else:
                    data = fh.read(slen)
                    n = len(data)
                if n != slen:
                    raise _bad(p, f"truncated snapshot: blob {b['name']} is cut short")
                futs.append((b["name"], pool.submit(_decode_chunk, codec, data, rlen, crc,
                                                    dst, a.dtype)))
        for name, f in futs:
            if not f.result():
                raise _bad(p, f"corrupt snapshot: blob {name} fails its checksum")
    return out


def _load_snapshot(fh, p: str, head: bytes, size: int) -> Machine:
    man = _read_manifest(fh, p, head, size)
    arrays = _read_blobs(fh, p, man)
    raw_state = arrays.pop("state", None)
    if raw_state is None:
        raise _bad(p, "corrupt snapshot: no machine state")
    try:
        state = json.loads(raw_state.tobytes())
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _bad(p, "corrupt snapshot: machine state is not JSON") from None
    try:
        return restore_state(state, arrays, man["version"])
    except SaveError as e:
        raise _bad(p, f"inconsistent snapshot: {e}") from None
    except RecursionError:
        raise _bad(p, "inconsistent snapshot: values nested too deeply") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise _bad(p, f"inconsistent snapshot: {type(e).__name__}: {e}") from None


# =================================================================== value encoding

BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
LEGACY_TAGS = ("obj", "lobj", "job", "exc")  # version 1 named classes; see snapshot_schema


class Encoder:
    """The JSON-able form of Python values. JSON has no tuples, sets, int-keyed dicts
    or objects, so each non-JSON value becomes a one-key object ({"t": [...]} is a
    tuple) and a plain dict is itself tagged "d": decoding is unambiguous. Numpy
    arrays go to blobs. Engine objects the machine does not save explicitly (a
    workload, a timeline) are records of engine/machines/snapshot_schema.py, {"rec": [k, tag,
    fields]}, memoized so that shared objects stay shared; an object the schema does
    not describe is refused. Objects the machine saves explicitly (the machine,
    processes, VMAs, mappings, drivers, zones, nodes, the cost model) become
    references."""

    def __init__(self, m: Machine, arrays: dict[str, np.ndarray]):
        self.m = m
        self.arrays = arrays
        self.memo: dict[int, Any] = {}
        self.busy: set[int] = set()  # records being encoded: meeting one again is a cycle
        self.hold: list = []  # keeps encoded objects alive so that ids stay unique
        self.known: dict[int, Any] = {id(m): {"ref": ["machine"]},
                                      id(m.cost): {"ref": ["cost"]}}
        for pid, p in m.procs.items():
            self.known[id(p)] = {"ref": ["proc", pid]}
            for i, v in enumerate(p.vmas):
                self.known[id(v)] = {"ref": ["vma", pid, i]}
        for k, o in m.mappings.items():
            self.known[id(o)] = {"ref": ["map", k]}
        for k, d in m.drivers_map.items():
            self.known[id(d)] = {"ref": ["drv", k]}
        for i, z in enumerate(m.zones):
            self.known[id(z)] = {"ref": ["zone", i]}
        for i, n in enumerate(m.nodes_list):
            self.known[id(n)] = {"ref": ["node", i]}

    def fields(self, obj, skip=()) -> dict:
        return {f.name: self(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if f.name not in skip}

    def __call__(self, x: Any) -> Any:
        from ..mm.mempolicy import Policy

        t = type(x)
        if x is None or t in (bool, int, float, str):
            return x
        if isinstance(x, (np.bool_, np.integer, np.floating)):
            return x.item()
        if t is list:
            return [self(v) for v in x]
        if t is tuple:
            return {"t": [self(v) for v in x]}
        if t in (set, frozenset):
            items = [self(v) for v in x]
            try:
                items.sort()
            except TypeError:
                pass
            return {"fs" if t is frozenset else "s": items}
        if t is dict:
            if all(type(k) is str for k in x):
                return {"d": {k: self(v) for k, v in x.items()}}
            return {"dk": [[self(k), self(v)] for k, v in x.items()]}
        if t is Counter:
            return {"ctr": [[self(k), self(v)] for k, v in x.items()]}
        if t is deque:
            return {"dq": [x.maxlen, [self(v) for v in x]]}
        if t is Policy:
            return {"pol": [x.mode, list(x.nodes), x.flags, list(x.user_nodes)]}
        if isinstance(x, (int, str)) and not isinstance(x, bool):  # IntEnum and the like
            return int(x) if isinstance(x, int) else str(x)
        if isinstance(x, BaseException):
            try:
                return {"err": schema.exception_fields(x)}
            except schema.SchemaError as e:
                raise SaveError(str(e)) from None
        if t is np.random.Generator:  # a workload's RNG: its exact position is state
            bg = x.bit_generator
            return {"rng": [type(bg).__name__, self(bg.state)]}
        if id(x) in self.known:
            return self.known[id(x)]
        if id(x) in self.busy:
            raise SaveError(f"cannot save a {t.__name__} that refers back to itself")
        if id(x) in self.memo:
            return {"mref": self.memo[id(x)]}
        return self._object(x)

    def _object(self, x: Any) -> Any:
        k = len(self.memo)
        if isinstance(x, np.ndarray):
            name = f"obj.{k}"
            self.memo[id(x)] = k
            self.hold.append(x)
            self.arrays[name] = x
            return {"arr": [k, name]}
        rec = schema.record_for(x)
        if rec is None:
            raise SaveError(f"cannot save a value of type {type(x).__name__} (the snapshot "
                            f"schema has no record for it)")
        self.memo[id(x)] = k
        self.hold.append(x)
        self.busy.add(id(x))
        try:
            values = rec.fields_of(x)
            rec.validate(values, self)  # what load would refuse, save refuses
        except schema.SchemaError as e:
            raise SaveError(str(e)) from None
        out = {name: self(v) for name, v in values.items()}
        self.busy.discard(id(x))
        return {"rec": [k, rec.tag, out]}


class Decoder:
    """Inverse of Encoder, once the explicitly saved parts of m are restored. Builds
    only plain values, arrays, references into m and schema records, each record
    after all of its fields are checked."""

    def __init__(self, m: Machine, arrays: dict[str, np.ndarray], version: int = VERSION):
        self.m = m
        self.arrays = arrays
        self.version = version
        self.memo: dict[int, Any] = {}
        self.job_ids: list[int] = []  # jobs rebuilt: Job._ids passes them once loaded

    def ref(self, r: Any) -> Any:
        m = self.m
        if type(r) is not list or not r or not all(type(i) in (str, int) for i in r):
            raise SaveError(f"malformed reference {str(r)[:60]}")
        kind, key = r[0], r[1:]
        if kind == "machine" and not key:
            return m
        if kind == "cost" and not key:
            return m.cost
        if kind == "vma" and len(key) == 2 and key[0] in m.procs:
            vmas = m.procs[key[0]].vmas
            if type(key[1]) is int and 0 <= key[1] < len(vmas):
                return vmas[key[1]]
        elif kind in ("proc", "map", "drv") and len(key) == 1:
            table = {"proc": m.procs, "map": m.mappings, "drv": m.drivers_map}[kind]
            if key[0] in table:
                return table[key[0]]
        elif kind in ("zone", "node") and len(key) == 1 and type(key[0]) is int:
            seq = m.zones if kind == "zone" else m.nodes_list
            if 0 <= key[0] < len(seq):
                return seq[key[0]]
        raise SaveError(f"reference to a missing object {str(r)[:60]}")

    def __call__(self, x: Any) -> Any:
        from ..mm.mempolicy import Policy

        if isinstance(x, list):
            return [self(v) for v in x]
        if not isinstance(x, dict):
            return x
        if len(x) != 1:
            raise SaveError("malformed value")
        (tag, v), = x.items()
        if tag in ("t", "fs", "s", "dk", "ctr", "pol", "rng", "arr", "dq") and \
                type(v) is not list:
            raise SaveError(f"malformed {tag!r} value")
        if tag == "t":
            return tuple(self(i) for i in v)
        if tag in ("fs", "s"):
            return (frozenset if tag == "fs" else set)(self(i) for i in v)
        if tag == "d":
            if type(v) is not dict:
                raise SaveError("malformed 'd' value")
            return {k: self(i) for k, i in v.items()}
        if tag in ("dk", "ctr"):
            if not all(type(i) is list and len(i) == 2 for i in v):
                raise SaveError(f"malformed {tag!r} value")
            d = {self(k): self(i) for k, i in v}
            return Counter(d) if tag == "ctr" else d
        if tag == "dq":
            if len(v) != 2 or not (v[0] is None or type(v[0]) is int and v[0] >= 0) \
                    or type(v[1]) is not list:
                raise SaveError("malformed 'dq' value")
            return deque((self(i) for i in v[1]), maxlen=v[0])
        if tag == "pol":
            ints = (len(v) == 4 and type(v[0]) is int and type(v[2]) is int and
                    all(type(v[i]) is list and all(type(n) is int for n in v[i])
                        for i in (1, 3)))
            if not ints:
                raise SaveError("malformed memory policy")
            return Policy(v[0], tuple(v[1]), v[2], tuple(v[3]))
        if tag == "err":
            try:
                return schema.build_exception(v)
            except schema.SchemaError as e:
                raise SaveError(str(e)) from None
        if tag == "rng":
            if len(v) != 2 or v[0] not in BIT_GENERATORS:
                raise SaveError(f"unknown random generator {str(v[0:1])[:40]}")
            bg = getattr(np.random, v[0])()
            try:
                bg.state = self(v[1])
            except (ValueError, TypeError, KeyError) as e:
                raise SaveError(f"bad random generator state: {e}") from None
            return np.random.Generator(bg)
        if tag == "ref":
            return self.ref(v)
        if tag == "mref":
            if type(v) is not int or v not in self.memo:
                raise SaveError(f"reference to an undefined object {str(v)[:20]}")
            return self.memo[v]
        if tag == "arr":
            if len(v) != 2 or type(v[1]) is not str or v[1] not in self.arrays:
                raise SaveError(f"reference to a missing array {str(v)[:40]}")
            a = self.arrays.pop(v[1])
            self._define(v[0], a)
            return a
        if tag == "rec":
            if len(v) != 3 or type(v) is not list or not isinstance(v[1], str) or \
                    type(v[2]) is not dict:
                raise SaveError("malformed record")
            rec = schema.records().get(v[1])
            if rec is None:
                raise SaveError(f"unknown record type {v[1][:80]!r}")
            return self._record(v[0], rec, v[2])
        if tag in LEGACY_TAGS and self.version == 1:
            return self._legacy(tag, v)
        raise SaveError(f"unknown value tag {str(tag)[:40]!r}")

    def _define(self, k: Any, obj: Any) -> None:
        if type(k) is not int or k in self.memo:
            raise SaveError(f"object number {str(k)[:20]} is malformed or defined twice")
        self.memo[k] = obj

    def _record(self, k: Any, rec: schema.Record, raw: dict) -> Any:
        """Decode the fields, check them all, then build. The record is numbered only
        once built: a reference to it from inside itself (a cycle) is refused."""
        try:
            rec.check_names(raw, f"{rec.tag} record")
            obj = rec.make({name: self(v) for name, v in raw.items()}, self)
        except schema.SchemaError as e:
            raise SaveError(str(e)) from None
        self._define(k, obj)
        return obj

    def _legacy(self, tag: str, v: Any) -> Any:
        """Version 1 wrote {"obj": [k, "module:qualname", state]} (and "lobj" for list
        subclasses, "job", "exc"): the name is looked up in a fixed table of the classes
        that version saved, and the state goes through the same record checks."""
        if tag == "exc":
            if type(v) is not list or len(v) != 2:
                raise SaveError("malformed exception")
            try:
                return schema.legacy_exception(v[0], self(v[1]))
            except schema.SchemaError as e:
                raise SaveError(str(e)) from None
        if type(v) is not list or len(v) != {"obj": 3, "lobj": 4, "job": 2}[tag]:
            raise SaveError(f"malformed {tag!r} value")
        if tag == "job":
            name = "job"
        else:
            name = schema.LEGACY_CLASSES.get(v[1]) if isinstance(v[1], str) else None
            if name is None:
                raise SaveError(f"refusing class {str(v[1])[:80]!r}: not a record type of "
                                f"the snapshot schema")
        state = v[-1]
        if type(state) is not dict or list(state) != ["d"] or type(state["d"]) is not dict:
            raise SaveError(f"malformed {name} state")
        raw = dict(state["d"])
        if tag == "lobj":
            raw["items"] = v[2]
        return self._record(v[0], schema.records()[name], raw)


def _make(cls, d: dict, dec: Decoder, **extra):
    """Rebuild a dataclass; a field this version does not know means a broken file."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise SaveError(f"{cls.__name__} has no field {sorted(unknown)[0]!r}")
    return cls(**{k: dec(v) for k, v in d.items()}, **extra)


# =================================================================== machine -> state

# Machine attributes saved explicitly below. TRANSIENT ones are derived, or belong to
# the running program rather than the machine (listeners, real-time pacing of jobs).
# Any other attribute is saved through the Encoder, so state another module keeps on
# the machine is not lost; if it cannot be encoded, save refuses and names it.
EXPLICIT = {"name", "page_size", "page_shift", "_era", "nodes_list", "zones", "distances",
            "f", "block_pages", "blk_state", "blk_isolated", "procs", "mappings", "files",
            "drivers_map", "il_weights", "numastat_arr", "vmstat_counts", "vmstat_extra",
            "clock_ns", "cost", "seed", "zero_pfn", "isolated_pages", "finished_jobs",
            "traffic", "description", "_next_id", "_write_seq", "_next_pid"}
TRANSIENT = {"jobs", "listeners", "_node_starts", "_node_ids", "_zone_starts", "_zone_ids", "_tabs",
             "_clockctl"}
SCALARS = ("name", "page_size", "page_shift", "block_pages", "seed", "clock_ns", "zero_pfn",
           "isolated_pages", "_next_id", "_write_seq", "_next_pid")


def snapshot_state(m: Machine) -> tuple[dict, dict[str, np.ndarray]]:
    """(JSON-able state, arrays) that restore_state() turns back into an equal machine."""
    arrays: dict[str, np.ndarray] = {f"frames.{n}": getattr(m.f, n) for n in m.f.FIELDS}
    arrays.update({"distances": m.distances, "blk_state": m.blk_state,
                   "blk_isolated": m.blk_isolated, "numastat": m.numastat_arr})
    if m.traffic is not None:
        arrays["traffic"] = m.traffic
    e = Encoder(m, arrays)
    procs = _procs_state(m, e, arrays)
    maps = _mappings_state(m, e, arrays)
    state = {
        "machine": {k: e(getattr(m, k)) for k in SCALARS},
        "nr_frames": m.f.n,
        "era": e.fields(m._era),
        "cost": e.fields(m.cost),
        "nodes": [e.fields(n) for n in m.nodes_list],
        "zones": [e.fields(z) for z in m.zones],
        "procs": procs,
        "mappings": maps,
        "files": [[name, b.id] for name, b in m.files.items()],
        "drivers": [[k, e.fields(d, skip=("backing",)),
                     None if d.backing is None else d.backing.id]
                    for k, d in m.drivers_map.items()],
        "il_weights": e(m.il_weights),
        "vmstat_counts": e(dict(m.vmstat_counts)),
        "vmstat_extra": e(dict(m.vmstat_extra)),
        "description": json.loads(json.dumps(m.description, default=str)),
        "finished_jobs": e(list(m.finished_jobs)),
        "attrs": _generic_attrs(m, e),
        "hooks": {name: dump(m) for name, (dump, _) in STATE_HOOKS.items()},
    }
    return state, arrays


def _procs_state(m: Machine, e: Encoder, arrays: dict) -> list:
    """Processes and VMAs; page tables and private contents concatenated into two
    arrays (a VMA records its length and whether it has contents)."""
    procs, ptes, expects = [], [], []
    for p in m.procs.values():
        vmas = []
        for v in p.vmas:
            ptes.append(v.pte)
            if v.expect is not None:
                expects.append(v.expect)
            vmas.append({"start": v.start, "end": v.end, "flags": v.flags,
                         "policy": e(v.policy), "pgoff": v.pgoff, "npages": len(v.pte),
                         "anon": None if v.anon is None else v.anon.id,
                         "backing": None if v.backing is None else v.backing.id,
                         "expect": v.expect is not None})
        procs.append({"fields": e.fields(p, skip=("vmas",)), "vmas": vmas})
    arrays["vma.pte"] = _cat(ptes, mm.PTE_DTYPE)
    arrays["vma.expect"] = _cat(expects, np.uint32)
    return procs


def _mappings_state(m: Machine, e: Encoder, arrays: dict) -> list:
    """anon_vmas and backings (files, driver regions) in m.mappings order; their VMA
    lists as [pid, index] (a VMA no process holds is an orphan and is dropped)."""
    from ..mm.memory import AnonVMA

    vref = {id(v): [p.pid, i] for p in m.procs.values() for i, v in enumerate(p.vmas)}
    maps, pages, expect = [], [], []
    for key, obj in m.mappings.items():
        members = [vref[id(v)] for v in obj.vmas if id(v) in vref]
        if isinstance(obj, AnonVMA):
            maps.append({"key": key, "type": "anon", "id": obj.id, "pid": obj.pid,
                         "base_vpn": obj.base_vpn, "inflight": obj.inflight,
                         "vmas": members})
        else:
            pages.append(obj.pages)
            expect.append(obj.expect)
            maps.append({"key": key, "type": "backing", "id": obj.id, "name": obj.name,
                         "kind": obj.kind, "npages": len(obj.pages), "vmas": members})
    arrays["backing.pages"] = _cat(pages, mm.PTE_DTYPE)
    arrays["backing.expect"] = _cat(expect, np.uint32)
    return maps


def _cat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def _generic_attrs(m: Machine, e: Encoder) -> dict:
    out = {}
    for k, v in vars(m).items():
        if k in EXPLICIT or k in TRANSIENT:
            continue
        try:
            out[k] = e(v)
        except SaveError as err:
            raise SaveError(f"cannot save machine attribute {k!r}: {err}") from None
    return out


# =================================================================== state -> machine

def restore_state(state: dict, arrays: dict[str, np.ndarray], version: int = VERSION
                  ) -> Machine:
    from ..machine import Machine
    from ..mm.drivers import Driver
    from ..mm.era import ERAS, Era
    from ..mm.topology import Node, Zone
    from ..runtime.jobs import Job

    m = Machine()
    dec = Decoder(m, arrays, version)
    for k in SCALARS:
        setattr(m, k, dec(state["machine"][k]))
    era = _make(Era, state["era"], dec)
    m._era = ERAS[era.name] if ERAS.get(era.name) == era else era  # keep the singletons
    m.cost = _make(type(m.cost), state["cost"], dec)
    m.nodes_list = [_make(Node, d, dec) for d in state["nodes"]]
    m.zones = [_make(Zone, d, dec) for d in state["zones"]]
    _restore_frames(m, int(state["nr_frames"]), arrays)
    m.distances = arrays.pop("distances")
    m.blk_state = arrays.pop("blk_state")
    m.blk_isolated = arrays.pop("blk_isolated")
    m.numastat_arr = arrays.pop("numastat")
    m.traffic = arrays.pop("traffic", None)
    _restore_mappings(m, state, arrays, dec)
    m.drivers_map = {}
    for key, fields, bid in state["drivers"]:
        m.drivers_map[key] = _make(Driver, fields, dec,
                                   backing=None if bid is None else m.mappings[bid])
    m.il_weights = dec(state["il_weights"])
    m.vmstat_counts = Counter(dec(state["vmstat_counts"]))
    m.vmstat_extra = Counter(dec(state["vmstat_extra"]))
    m.description = state["description"]
    m.finished_jobs = dec(state["finished_jobs"])
    for k, v in state["attrs"].items():
        _check_attr_name(k, Machine)
        setattr(m, k, dec(v))
    for k in state["attrs"]:
        # a record that hooks itself into the machine (the timeline's listener) does so
        # again
        after = getattr(getattr(m, k), "after_load", None)
        if callable(after) and schema.record_for(getattr(m, k)) is not None:
            after(m)
    for name, obj in state["hooks"].items():
        if name not in STATE_HOOKS:
            raise SaveError(f"snapshot holds {name!r} state this numacon cannot restore")
        STATE_HOOKS[name][1](m, obj)
    m._index_ranges()
    _verify_structure(m)
    Job._ids = max([Job._ids, *dec.job_ids])  # only now: a refused file changes nothing
    return m


def _check_attr_name(k: Any, machine_cls: type) -> None:
    """A generic attribute may not replace what the machine saves explicitly, a method
    or a property (setting `era` would run its setter with the file's value)."""
    static = inspect.getattr_static(machine_cls, k, None) if isinstance(k, str) else None
    if not isinstance(k, str) or not k.isidentifier() or k.startswith("__") or \
            k in EXPLICIT or k in TRANSIENT or hasattr(type(static), "__get__"):
        raise SaveError(f"machine attribute {str(k)[:40]!r} cannot be restored")


def _restore_frames(m: Machine, n: int, arrays: dict[str, np.ndarray]) -> None:
    from ..mm.page_alloc import Frames

    m.f = Frames(0)
    m.f.n = n
    for name, dt in zip(Frames.FIELDS, Frames.DTYPES):
        a = arrays.pop(f"frames.{name}")
        if a.shape != (n,) or a.dtype != dt:
            raise SaveError(f"frames.{name} is {a.shape} {a.dtype}, expected ({n},) "
                            f"{np.dtype(dt)}")
        setattr(m.f, name, a)


def _restore_mappings(m: Machine, state: dict, arrays: dict, dec: Decoder) -> None:
    from ..mm.memory import VMA, AnonVMA, Backing, Process

    m.mappings = {}
    bp, be = _take(arrays, "backing.pages"), _take(arrays, "backing.expect")
    for d in state["mappings"]:
        if d["type"] == "anon":
            obj = AnonVMA(id=d["id"], pid=d["pid"], base_vpn=d["base_vpn"],
                          inflight=d["inflight"])
        else:
            k = int(d["npages"])
            obj = Backing(id=d["id"], name=d["name"], kind=d["kind"], pages=bp(k),
                          expect=be(k))
        m.mappings[d["key"]] = obj
    m.files = {name: m.mappings[bid] for name, bid in state["files"]}
    pte, exp = _take(arrays, "vma.pte"), _take(arrays, "vma.expect")
    m.procs = {}
    for pd in state["procs"]:
        p = _make(Process, pd["fields"], dec)
        for vd in pd["vmas"]:
            k = int(vd["npages"])
            v = VMA(start=vd["start"], end=vd["end"], flags=vd["flags"],
                    policy=dec(vd["policy"]), pgoff=vd["pgoff"],
                    anon=None if vd["anon"] is None else m.mappings[vd["anon"]],
                    backing=None if vd["backing"] is None else m.mappings[vd["backing"]],
                    pte=pte(k), expect=exp(k) if vd["expect"] else None, mm=p)
            p.vmas.append(v)
        m.procs[p.pid] = p
    for d in state["mappings"]:
        m.mappings[d["key"]].vmas = [m.procs[pid].vmas[i] for pid, i in d["vmas"]]


def _take(arrays: dict, name: str) -> Callable[[int], np.ndarray]:
    """Successive slices (copies: each VMA owns its page table) of a concatenated array."""
    a = arrays.pop(name)
    pos = 0

    def take(k: int) -> np.ndarray:
        nonlocal pos
        if k < 0 or pos + k > len(a):
            raise SaveError(f"{name} is shorter than the objects that use it")
        out = a[pos:pos + k].copy()
        pos += k
        return out

    return take


def _verify_structure(m: Machine) -> None:
    """Index-range checks that keep a crafted snapshot from crashing the engine later
    (the checksums already rule out accidental corruption)."""
    n = m.f.n
    for z in m.zones:
        if z.start_pfn < 0 or z.start_pfn + z.spanned > n:
            raise SaveError(f"zone {z.label} lies outside the {n} frames")
    nblk = (n + m.block_pages - 1) // max(m.block_pages, 1)
    if m.block_pages < 1 or len(m.blk_state) != nblk or len(m.blk_isolated) != nblk:
        raise SaveError("memory block arrays do not match the frames")
    nr = m.nr_node_ids
    if m.distances.shape != (nr, nr) or m.numastat_arr.shape != (6, nr):
        raise SaveError("distance or numastat table does not match the nodes")
    if n and not -1 <= m.zero_pfn < n:
        raise SaveError(f"zero page {m.zero_pfn} is not a frame")
    for p in m.procs.values():
        for v in p.vmas:
            if len(v.pte) != (v.end - v.start) >> m.page_shift:
                raise SaveError(f"pid {p.pid}: VMA {v.start:#x} has a page table of the "
                                f"wrong length")
            if len(v.pte) and (v.pte.min() < -1 or v.pte.max() >= n):
                raise SaveError(f"pid {p.pid}: VMA {v.start:#x} maps a frame that does "
                                f"not exist")
    for obj in m.mappings.values():
        pages = getattr(obj, "pages", None)
        if pages is not None and len(pages) and (pages.min() < -1 or pages.max() >= n):
            raise SaveError(f"{obj.name} indexes a frame that does not exist")
