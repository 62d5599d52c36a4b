"""The snapshot container: one file of named numpy arrays, chunked, checksummed and
compressed, written atomically and read back without trusting a byte of it.

    header    magic b"\\x89NUMACON\\r\\n\\x1a\\n", u64 manifest offset, u64 manifest length,
              u32 crc32 of the manifest
    blobs     each array cut into chunks of at most `chunk_size` bytes; a chunk is stored
              "zero" (all zero bytes: nothing stored), "raw", "deflate" (zlib level 1), or
              "delta" (signed ints: zlib level 1 of the differences between elements)
    manifest  JSON: {"format": "numacon-snapshot", "version", "chunk_size", "raw_bytes",
              "blobs": [{"name", "dtype", "shape", "offset",
                         "chunks": [[codec, stored bytes, raw bytes, crc32 of stored], ...]}]}

Chunks are encoded and decoded on a thread pool (zlib and crc32 release the GIL), and
all-zero chunks are neither stored nor read back: a fresh 64 GiB machine is mostly
zero. Only regular files are read or replaced; a save goes through a temporary file
renamed over the target. What the arrays mean is engine/machines/snapshot.py's."""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import re
import resource
import secrets
import stat
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np


class SaveError(Exception):
    """A file that cannot be loaded or saved: a one-line reason naming the file."""

    def __str__(self) -> str:
        return one_line(super().__str__())


def one_line(s: str) -> str:
    """A message as one line: line breaks in names taken from a file or a path (a driver
    called "\\n") are shown escaped."""
    return s.replace("\r", "\\r").replace("\n", "\\n")


MAGIC = b"\x89NUMACON\r\n\x1a\n"  # the PNG trick: binary, and text-mode mangling shows
HEADER = struct.Struct("<12sQQI")
FORMAT = "numacon-snapshot"
VERSION = 2  # 2: records named by schema tags, sparse page tables (1: still read)
CHUNK = 4 << 20
MAX_CHUNK = 64 << 20  # a chunk size a snapshot may declare
MAX_MANIFEST = 64 << 20
# a TOML description people write or capture is never this large (a captured host with
# 85 processes and 1883 VMAs is 300 KB); tomllib parses 8 MiB of the worst keys
# (8 dotted parts) in ~2 s and ~100 MB
MAX_DESCRIPTION = 8 << 20
CODECS = ("zero", "raw", "deflate", "delta")
DEFLATE_MAX_RATIO = 1032  # deflate cannot expand data more than this (258-byte matches)
# dtypes a snapshot may declare; anything else (object arrays!) is refused
DTYPES = {"|u1", "|i1", "|b1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8"}
WORKERS = max(1, min(8, os.cpu_count() or 1))


# =================================================================== regular files only

def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "a special file"


def open_regular(p: str) -> tuple[Any, int]:
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


def atomic_write(p: str, write: Callable) -> None:
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


def write_container(fh, blobs: list[tuple[str, np.ndarray]]) -> None:
    fh.write(HEADER.pack(MAGIC, 0, 0, 0))  # rewritten once the manifest is placed
    entries = [{"name": name, "dtype": dtype_str(a), "shape": list(a.shape),
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


def dtype_str(a: np.ndarray, name: str = "") -> str:
    """The array's dtype as the manifest names it (little-endian, plain numbers only)."""
    if a.dtype.str in DTYPES:
        return a.dtype.str
    raise SaveError(f"cannot store array {name} of dtype {a.dtype}")


# =================================================================== container: read

def bad(p: str, why: str) -> SaveError:
    return SaveError(f"{p}: {why}")


def read_manifest(fh, p: str, head: bytes, size: int) -> dict:
    if len(head) < HEADER.size:
        raise bad(p, f"truncated snapshot ({size} bytes)")
    _, moff, mlen, mcrc = HEADER.unpack(head)
    if mlen == 0 and moff == 0:
        raise bad(p, "incomplete snapshot (the writer never finished it)")
    if mlen > MAX_MANIFEST:
        raise bad(p, f"corrupt snapshot: manifest of {mlen} bytes is absurd")
    if moff < HEADER.size or moff + mlen > size:
        raise bad(p, f"truncated snapshot: manifest at {moff}+{mlen} lies beyond the end "
                      f"of the file ({size} bytes)")
    fh.seek(moff)
    mb = fh.read(mlen)
    if zlib.crc32(mb) != mcrc:
        raise bad(p, "corrupt snapshot: manifest checksum mismatch")
    try:
        man = json.loads(mb)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise bad(p, "corrupt snapshot: manifest is not JSON (or nested too deeply)") from None
    if not isinstance(man, dict) or man.get("format") != FORMAT:
        raise bad(p, f"not a numacon snapshot (format {man.get('format')!r})"
                   if isinstance(man, dict) else "corrupt snapshot: manifest is not a table")
    ver = man.get("version")
    if not isinstance(ver, int) or ver < 1:
        raise bad(p, f"corrupt snapshot: version {ver!r}")
    if ver > VERSION:
        raise bad(p, f"snapshot format version {ver} is newer than this numacon reads "
                      f"({VERSION}); upgrade numacon")
    _check_blobs(p, man, moff, size)
    return man


def _check_blobs(p: str, man: dict, data_end: int, size: int) -> None:
    """Every declared size is checked against the file and sane limits before a byte
    is allocated: a corrupt or hostile manifest cannot make us reserve memory."""
    cs = man.get("chunk_size")
    blobs = man.get("blobs")
    if not _is_int(cs) or not 0 < cs <= MAX_CHUNK or not isinstance(blobs, list):
        raise bad(p, "corrupt snapshot: bad chunk size or blob list")
    total = 0
    names = set()
    for b in blobs:
        try:
            name, dt, shape, off, chunks = (b["name"], b["dtype"], b["shape"], b["offset"],
                                            b["chunks"])
            # every number an int (a float chunk length sliced nothing and raised
            # TypeError), shapes of a few dimensions, each name once
            if not isinstance(name, str) or name in names or dt not in DTYPES or \
                    not isinstance(shape, list) or len(shape) > MAX_DIMS or \
                    not all(_is_int(x) and x >= 0 for x in shape) or \
                    not isinstance(chunks, list):
                raise ValueError
            names.add(name)
            want = math.prod(shape) * np.dtype(dt).itemsize
            pos, got = off, 0
            if not _is_int(off) or off < HEADER.size:
                raise ValueError
            for codec, slen, rlen, crc in chunks:
                if codec not in CODECS or not _is_int(rlen) or not 0 < rlen <= cs \
                        or not _is_int(slen) or slen < 0 or not _is_int(crc):
                    raise ValueError
                if (codec == "raw" and slen != rlen) or (codec == "zero" and slen) or \
                        (codec in ("deflate", "delta") and
                         rlen > slen * DEFLATE_MAX_RATIO + 64) or \
                        (codec == "delta" and rlen % np.dtype(dt).itemsize):
                    raise ValueError
                pos += slen
                got += rlen
        except (KeyError, TypeError, ValueError):
            raise bad(p, f"corrupt snapshot: bad blob entry {str(b)[:60]}") from None
        if pos > data_end:
            raise bad(p, f"truncated snapshot: blob {name} runs past the data "
                          f"({pos} > {data_end})")
        if got != want:
            raise bad(p, f"corrupt snapshot: blob {name} declares {want} bytes but its "
                          f"chunks hold {got}")
        total += want
    budget, why = memory_budget()
    if total > budget:
        raise bad(p, f"snapshot needs {total / 2**30:.1f} GiB of memory, more memory than "
                      f"this host can give the process ({why})")


MAX_DIMS = 4  # the engine's arrays have at most 2 dimensions


def _is_int(x) -> bool:
    return type(x) is int


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 1 << 40


def memory_budget() -> tuple[int, str]:
    """(bytes this process can still hold, why): the host's physical memory, or less
    under an address-space limit (RLIMIT_AS, `ulimit -v`): the limit minus what the
    process has mapped already."""
    phys = _physical_memory()
    budget, why = phys, f"{phys / 2**30:.1f} GiB of RAM"
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        left = max(0, soft - _mapped_bytes())
        if left < budget:
            budget, why = left, (f"{left / 2**30:.1f} GiB left under its "
                                 f"{soft / 2**30:.1f} GiB address-space limit")
    return budget, why


def _mapped_bytes() -> int:
    """The process's address space in use (VmSize), as RLIMIT_AS counts it."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


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


def read_blobs(fh, p: str, man: dict, names=None) -> dict[str, np.ndarray]:
    """The blobs (those named in `names`, default all), verified and decoded."""
    out: dict[str, np.ndarray] = {}
    with ThreadPoolExecutor(WORKERS) as pool:
        futs = []
        for b in man["blobs"]:
            if names is not None and b["name"] not in names:
                continue
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
                    raise bad(p, f"truncated snapshot: blob {b['name']} is cut short")
                futs.append((b["name"], pool.submit(_decode_chunk, codec, data, rlen, crc,
                                                    dst, a.dtype)))
        for name, f in futs:
            if not f.result():
                raise bad(p, f"corrupt snapshot: blob {name} fails its checksum")
    return out
