"""`numacon bench`: the measurement harness of issues 7 and 15 (speed and scale).

    numacon bench [--json] [--quick] [--scale F | --frames N] [--runs N] [--no-tib]

It builds the reference machine and measures, each figure the median of several
runs, the figures of the issues' tables (FIGURES below, with their goals). `--json`
prints one JSON object with exactly the keys of FIGURES, in order (issue 7's keys,
then issue 15's); a figure that could not be measured here is null (the host
kernel's move_pages where the syscall is missing, the 1 TiB machine with --no-tib or
--quick, the console's figures when no UI is given). Without --json each figure is
printed beside its goal.

The reference machine (`reference_description()`, 64 GiB at scale 1): four nodes of
18, 17, 13 and 16 GiB of 4 KiB pages, node 3 all ZONE_MOVABLE, SLIT 10/16/32, and
four processes mapping 48 GiB (75 %): `db` 16 GiB bound to node 0, `web` 11 GiB on
node 1, `batch` 9 GiB on node 2 and `cache` 12 GiB on node 3 (the Movable zone 75 %
used). A machine 75 % mapped has less free memory than a 16 GiB process or a 12 GiB
zone evacuation needs, so those two figures make room first, untimed: the offline
figure kills `batch`, the migrate_pages figure kills `web`. The move_pages figure
moves 1 Mi random pages of `db` (each to a random node other than its own) and puts
them back, untimed, between runs, so every run starts from the same state.

A yardstick in the same run: after each move_pages run, the design's numpy
prototype of move_pages (tools/proto.py) moves as many pages on a machine of as many
frames; `proto_pps` is its median and each engine rate is also given as a ratio to
it, which holds across machines and across the load of a shared host. The query
figure alternates the engine's query and the host kernel's, the same number of
times, and compares medians (measured apart, a host whose load swings weighs on one
side only: that is how one run once gave 0.56).

The console's figures (map redraw, key latency, help, views) need Textual. engine/
never imports tui/, so they come in through `ui`: tui.bench_ui, which `numacon
bench` passes. Benchmarks are not tests: nothing here fails on timing; `numacon
bench` exits 0 once it has measured, whether the goals are met or not."""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from engine.constants import K_ANON, K_FILE
from engine.machine import Machine
from engine.machines.snapshot import load, save
from engine.units import parse_size
from tools.bench_thp import label as thp_label
from tools.bench_thp import thp_figures
from tools.proto import proto_move_pages_pps

# (key, what, goal as (operator, value), unit) in the order: --json keys
FIGURES: tuple[tuple[str, str, tuple[str, Any], str], ...] = (
    ("build_s", "build the reference machine from its description", ("<=", 1.0), "s"),
    ("move_pages_pps", "move_pages, one call, 1 Mi random pages to random nodes",
     (">=", 10e6), "pages/s"),
    ("migrate_pages_pps", "migrate_pages, a whole 16 GiB process to another node",
     (">=", 15e6), "pages/s"),
    ("offline_s", "offline the 16 GiB Movable zone, 75 % used", ("<=", 0.5), "s"),
    ("bytes_per_frame", "engine memory per page frame (RSS growth / frames)",
     ("<=", 20.0), "B"),
    ("save_s", "snapshot save of the reference machine", ("<=", 1.0), "s"),
    ("load_s", "snapshot load of the reference machine", ("<=", 1.0), "s"),
    ("tib_ok", "1 TiB machine: builds, migrates 1 Mi pages, <= 8 GiB", ("is", True), ""),
    ("tib_rss_gib", "1 TiB machine: peak RSS of its process", ("<=", 8.0), "GiB"),
    ("redraw_ms", "full-screen map redraw at 200x60 (reference machine)", ("<=", 10.0),
     "ms"),
    ("key_latency_ms", "key press to visible change while a 1 Mi-page job runs",
     ("<=", 50.0), "ms"),
    ("query_ratio_vs_kernel", "query 1 Mi pages: host kernel time / engine time",
     (">=", 1.0), "x"),
    ("proto_pps", "the design's numpy prototype of move_pages, same machine and run",
     ("info", None), "pages/s"),
    ("move_pages_ratio", "move_pages rate / the prototype's", (">=", 1.25), "x"),
    ("migrate_pages_ratio", "migrate_pages rate / the prototype's", ("info", None), "x"),
    ("tib_check_s", "1 TiB machine: check()", ("<=", 3.0), "s"),
    ("tib_views_s", "1 TiB machine: slowest view (numa_maps, numastat, vmstat, "
     "offline --dry-run)", ("<=", 2.0), "s"),
    ("tib_peak_gib", "1 TiB machine: peak RSS over build, check and views", ("<=", 8.0),
     "GiB"),
    ("help_ms", "console: `?` to the help screen shown", ("<=", 100.0), "ms"),
    ("view_ms", "console: `v` to the next view shown", ("<=", 100.0), "ms"),
    ("thp_migrate_s", "migrate_pages, 16 GiB of THP between nodes (wall time)",
     ("info", None), "s"),
    ("small_migrate_s", "migrate_pages, 16 GiB of small pages between nodes",
     ("info", None), "s"),
    ("thp_vs_small", "THP time / small-page time", ("<=", 1.0), "x"),
)
KEYS = tuple(k for k, _, _, _ in FIGURES)

GIB_PAGES = 1 << 18  # 4 KiB pages in a GiB at scale 1
MI = 1 << 20  # "1 M pages": 1 Mi pages of 4 KiB = 4 GiB
MIN_G = 256  # the smallest "GiB" (64 MiB machine): below it watermarks leave no room
PIDS = {"db": 100, "web": 101, "batch": 102, "cache": 103}
SYS_MOVE_PAGES = {"x86_64": 279, "aarch64": 239}  # as tests/test_host_reference.py
TIB_RSS_LIMIT_GIB = 8.0


# ----------------------------------------------------------------- the machines

def reference_description(scale: float = 1.0) -> dict:
    """The reference machine: 64 GiB x scale, 4 nodes, 4 KiB pages, 75 % mapped by
    processes, node 3 a 16 GiB (x scale) ZONE_MOVABLE 75 % used. Every size is a
    multiple of one "GiB" of G pages; memory blocks are the largest power of two
    dividing G, at most 128 MiB, so the Movable zone is whole blocks at any scale."""
    g = max(MIN_G, int(GIB_PAGES * scale) // 64 * 64)  # pages per "GiB"
    block = min(32768, g & -g)

    def kib(pages: int) -> str:
        return f"{pages * 4}K"

    dma = g // 256  # 16 MiB at scale 1
    node0 = {"DMA": kib(dma), "DMA32": kib(4 * g - dma)} if dma >= 64 else \
        {"DMA32": kib(4 * g)}
    node0["Normal"] = kib(14 * g)
    return {
        "machine": {"name": f"bench-{64 * g // GIB_PAGES}G" if g >= GIB_PAGES
                    else f"bench-{64 * g * 4 // 1024}M",
                    "page_size": "4K", "era": "modern", "seed": 7,
                    "block_size": kib(block), "kernel": "2%",
                    "description": "numacon bench reference machine (tools/bench.py)"},
        "nodes": [
            {"id": 0, "cpus": "0-7", "zones": node0},
            {"id": 1, "cpus": "8-15", "zones": {"Normal": kib(17 * g)}},
            {"id": 2, "cpus": "16-23", "zones": {"Normal": kib(13 * g)}},
            {"id": 3, "cpus": "24-31", "zones": {"Movable": kib(16 * g)}},
        ],
        "distances": {"matrix": [[10, 16, 32, 32], [16, 10, 32, 32],
                                 [32, 32, 10, 16], [32, 32, 16, 10]]},
        "processes": [
            {"name": "db", "pid": PIDS["db"], "node": 0, "policy": "bind:0",
             "vmas": [{"size": kib(16 * g), "name": "heap"}]},
            {"name": "web", "pid": PIDS["web"], "node": 1,
             "vmas": [{"size": kib(11 * g), "touch_node": 1}]},
            {"name": "batch", "pid": PIDS["batch"], "node": 2,
             "vmas": [{"size": kib(9 * g), "touch_node": 2}]},
            {"name": "cache", "pid": PIDS["cache"], "node": 3,
             "vmas": [{"size": kib(12 * g), "touch_node": 3}]},
        ],
    }


def tib_description(node: str = "256G", proc: str = "4G") -> dict:
    """1 TiB: four nodes of 256 GiB of 4 KiB pages (268 M frames), one process of
    4 GiB (1 Mi pages) on node 0. (Smaller sizes: the tests' run of the same code.)"""
    return {
        "machine": {"name": "bench-1T", "page_size": "4K", "seed": 7},
        "nodes": [{"id": i, "cpus": f"{8 * i}-{8 * i + 7}", "zones": {"Normal": node}}
                  for i in range(4)],
        "distances": {"local": 10, "remote": 21},
        "processes": [{"name": "p", "pid": 100, "node": 0,
                       "vmas": [{"size": proc, "touch_node": 0}]}],
    }


def build(d: dict):
    return Machine.from_description(d, source="<bench>")


# ----------------------------------------------------------------- helpers

def _vm_hwm_kib() -> int | None:
    """VmHWM: the peak RSS of this process's own address space (since its exec)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_bytes() -> int:
    """VmRSS of this process (0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def engine_array_bytes(m) -> int:
    """nbytes of every numpy array reachable from m through engine objects, dicts,
    lists and tuples (views counted once, through their base)."""
    seen: set[int] = set()
    total = 0
    stack: list[Any] = [m]
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, np.ndarray):
            if isinstance(o.base, np.ndarray):
                stack.append(o.base)
            else:
                total += o.nbytes
        elif isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            stack.extend(o)
        elif type(o).__module__.startswith("engine."):
            stack.extend(getattr(o, "__dict__", {}).values())
            for s in getattr(type(o), "__slots__", ()):
                if hasattr(o, s):
                    stack.append(getattr(o, s))
    return total


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    r = fn()
    return time.perf_counter() - t0, r


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def db_vma(m):
    p = m.process(PIDS["db"])
    return p.vmas[0]


# ----------------------------------------------------------------- the host kernel

class HostQuery:
    """The host kernel's move_pages(2) query (nodes = NULL) of n pages of this
    process's own memory: a private anonymous mapping of n pages (no huge pages),
    each written. `once()` times one call; `note` says what was measured, or why it
    cannot be (then `ok` is False)."""

    def __init__(self, n: int) -> None:
        self.n, self.ok, self.note = n, False, ""
        self.base = None
        nr = SYS_MOVE_PAGES.get(platform.machine())
        if not sys.platform.startswith("linux") or nr is None:
            self.note = f"no move_pages(2) syscall number for {sys.platform}/" \
                        f"{platform.machine()}"
            return
        self.nr = nr
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        libc.syscall.restype = ctypes.c_long
        self.libc = libc
        ps = os.sysconf("SC_PAGE_SIZE")
        self.length = n * ps
        base = libc.mmap(None, self.length, 0x3, 0x22, -1, 0)  # RW, PRIVATE | ANONYMOUS
        if base is None or base == ctypes.c_void_p(-1).value:
            self.note = f"mmap of {self.length >> 20} MiB failed (errno {ctypes.get_errno()})"
            return
        self.base = base
        libc.madvise(base, self.length, 15)  # MADV_NOHUGEPAGE: n base pages, as the engine
        ctypes.memset(base, 1, self.length)  # touch (write) every page
        self.pages = np.arange(n, dtype=np.uint64) * np.uint64(ps) + np.uint64(base)
        self.status = np.full(n, -123, np.int32)
        self.ok = True
        self.note = f"{n} pages of {ps >> 10} KiB"

    def once(self) -> float | None:
        """Seconds of one query, or None (then `note` says why)."""
        if not self.ok:
            return None
        self.status[:] = -123
        ctypes.set_errno(0)
        t0 = time.perf_counter()
        r = self.libc.syscall(ctypes.c_long(self.nr), ctypes.c_long(0), ctypes.c_ulong(self.n),
                              ctypes.c_void_p(self.pages.ctypes.data), ctypes.c_void_p(None),
                              ctypes.c_void_p(self.status.ctypes.data), ctypes.c_int(0))
        t = time.perf_counter() - t0
        if r != 0:
            self.ok = False
            self.note = f"move_pages(2) answered {r} (errno {os.strerror(ctypes.get_errno())})"
            return None
        if (self.status < 0).any():
            self.ok = False
            self.note = f"move_pages(2) query: {int((self.status < 0).sum())} of {self.n} " \
                        f"pages without a node"
            return None
        self.note = f"{self.n} pages of {os.sysconf('SC_PAGE_SIZE') >> 10} KiB, nodes " \
                    f"{sorted(set(self.status.tolist()))}"
        return t

    def close(self) -> None:
        if self.base is not None:
            self.libc.munmap(self.base, self.length)
            self.base = None
            self.ok = False


def kernel_query_s(n: int, runs: int) -> tuple[float | None, str]:
    """The host kernel's query of n pages, median of runs: (seconds, note); None where
    it cannot run."""
    try:
        q = HostQuery(n)
    except (OSError, AttributeError, ValueError) as e:  # no libc, no syscall()
        return None, f"the host's move_pages(2) cannot be called: {e}"
    try:
        ts = [q.once() for _ in range(runs)]
        return (median(ts) if q.ok else None), q.note
    finally:
        q.close()


# ----------------------------------------------------------------- the 1 TiB child

def tib_child(size: str | None = None) -> int:
    """In a process of its own (`python -m tools.bench --tib-child`): build the 1 TiB
    machine, migrate its 1 Mi-page process to another node, then check() it and
    produce the views a console shows (numa_maps of every process, numastat,
    vmstat, the bill of offlining the zone the process now sits in), each timed;
    print a JSON line. size: "NODE,PROC" sizes for a smaller machine (the tests)."""
    d = tib_description(*size.split(",")) if size else tib_description()
    t_build, m = timed(lambda: build(d))
    before = m.vmstat().get("pgmigrate_success", 0)
    t_mig, r = timed(lambda: m.migrate_pages(100, [0], [1]))
    moved = m.vmstat().get("pgmigrate_success", 0) - before
    t_check, _ = timed(m.check)
    views = {
        "numa_maps": timed(lambda: [m.numa_maps(pid) for pid in m.pids])[0],
        "numastat": timed(m.numastat)[0],
        "vmstat": timed(m.vmstat)[0],
        "offline_dry_run": timed(lambda: m.offline_plan(1, "Normal"))[0],
    }
    print(json.dumps({"frames": m.nr_frames, "build_s": t_build, "migrate_s": t_mig,
                      "ret": r, "moved": moved, "check_s": t_check, "views_s": views,
                      "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "hwm_kib": _vm_hwm_kib()}))
    return 0


def run_child(args: list[str], timeout: float = 900.0) -> dict:
    """`python -m tools.bench ARGS` in a process of its own: the JSON object of its
    last stdout line, plus rc, wall_s and rss_gib (its peak RSS from wait4()'s rusage,
    whatever happened to it); "error" when it printed no JSON."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                else "")
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as errf:
        p = subprocess.Popen([sys.executable, "-m", "tools.bench", *args],
                             stdout=subprocess.PIPE, stderr=errf, env=env, cwd=root)
        killer = threading.Timer(timeout, p.kill)
        killer.start()
        try:
            out = p.stdout.read()  # type: ignore[union-attr]
            _, status, ru = os.wait4(p.pid, 0)  # its own rusage, even if it crashed
        finally:
            killer.cancel()
            p.stdout.close()  # type: ignore[union-attr]
        p.returncode = os.waitstatus_to_exitcode(status)
        errf.seek(0)
        err = errf.read()
    res: dict = {"rc": p.returncode, "wall_s": time.perf_counter() - t0,
                 "rss_gib": ru.ru_maxrss / 2**20}  # ru_maxrss: KiB on Linux
    try:
        res.update(json.loads(out.decode().strip().splitlines()[-1]))
    except (ValueError, IndexError):
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or [f"rc {p.returncode}"]
        res["error"] = tail[0][:300]
    return res


def run_tib(timeout: float = 900.0, size: str | None = None) -> dict:
    """The 1 TiB machine in a child; ok when it finished, moved its process's pages
    (1 Mi) and its peak RSS stayed within 8 GiB."""
    res = run_child(["--tib-child"] + (["--tib-size", size] if size else []), timeout)
    want = MI if size is None else parse_size(size.split(",")[1], "size") // 4096
    res["ok"] = bool(res["rc"] == 0 and res.get("moved") == want
                     and res["rss_gib"] <= TIB_RSS_LIMIT_GIB)
    return res


def build_child(scale: float) -> int:
    """In a fresh process (`python -m tools.bench --build-child --scale F`): build
    the reference machine (timed; RSS growth measured), kill `batch` (room), offline
    node 3's Movable zone (timed). Prints one JSON line."""
    gc.collect()
    d = reference_description(scale)
    r0 = rss_bytes()
    t_build, m = timed(lambda: build(d))
    grown = rss_bytes() - r0
    nr = m.nr_frames
    out = {"build_s": t_build, "frames": nr, "page_size": m.page_size,
           "bytes_per_frame": grown / nr,
           "array_bytes_per_frame": engine_array_bytes(m) / nr,
           "frame_array_bytes_per_frame": m.f.nbytes() / nr,
           "mapped_share": _mapped_share(m)}
    m.kill(PIDS["batch"])
    z = m.zone(3, "Movable")
    used = z.managed - z.free
    t_off, r = timed(lambda: m.offline(3, "Movable"))
    if r.get("pages") != used:
        raise RuntimeError(f"offline moved {r.get('pages')} pages, not {used}")
    out.update(offline_s=t_off, offline_pages=used)
    print(json.dumps(out))
    return 0


# ----------------------------------------------------------------- the measurement

class Log:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if self.enabled:
            print(f"[{time.perf_counter() - self.t0:6.1f}s] {msg}", file=sys.stderr,
                  flush=True)


def measure(*, scale: float = 1.0, runs: int = 3, tib: bool = True, ui: Any = None,
            quick: bool = False, log: Callable[[str], None] | None = None) -> dict:
    """Every figure: {"figures": {key: value}, "details": {...}}."""
    log = log or (lambda s: None)
    fig: dict[str, Any] = dict.fromkeys(KEYS)
    det: dict[str, Any] = {}
    d = reference_description(scale)

    # the 1 TiB machine in a child process, first: a child's peak RSS (wait4) counts
    # the fork it started as, a copy of this process, which is still small now
    if tib:
        log("1 TiB machine (a child process) ...")
        r = run_tib()
        fig["tib_ok"], fig["tib_rss_gib"] = r["ok"], r["rss_gib"]
        fig["tib_peak_gib"] = r["rss_gib"]  # wait4(): the whole child, build to views
        if "check_s" in r:
            fig["tib_check_s"] = r["check_s"]
            fig["tib_views_s"] = max(r["views_s"].values())
        det["tib"] = r
        log(f"1 TiB: ok={r['ok']} rss {r['rss_gib']:.2f} GiB, check "
            f"{r.get('check_s', float('nan')):.2f} s, views {r.get('views_s')}")
    _build_and_offline(scale, runs, fig, det, log)
    gc.collect()
    _reference_figures(d, runs, fig, det, log, ui, quick)
    gc.collect()
    thp_figures(scale, runs, fig, det, log)
    gc.collect()
    if fig["proto_pps"]:
        for k in ("move_pages", "migrate_pages"):
            if fig[f"{k}_pps"]:
                fig[f"{k}_ratio"] = fig[f"{k}_pps"] / fig["proto_pps"]

    return {"figures": fig, "details": det}


def _build_and_offline(scale: float, runs: int, fig: dict, det: dict, log) -> None:
    """build_s, bytes_per_frame and offline_s, each run in a fresh process (a cold
    build, as `numacon` does it, and a clean RSS figure): medians of the runs."""
    rs = []
    for i in range(runs):
        r = run_child(["--build-child", "--scale", repr(scale)])
        if "error" in r:
            raise RuntimeError(f"build child: {r['error']}")
        rs.append(r)
        log(f"build {i + 1}/{runs}: {r['build_s']:.3f} s, offline {r['offline_s']:.3f} s, "
            f"{r['bytes_per_frame']:.2f} B/frame")
    for k in ("build_s", "offline_s", "bytes_per_frame"):
        fig[k] = median([r[k] for r in rs])
    for k in ("frames", "page_size", "array_bytes_per_frame", "frame_array_bytes_per_frame",
              "mapped_share", "offline_pages"):
        det[k] = rs[0][k]


def _reference_figures(d: dict, runs: int, fig: dict, det: dict, log, ui: Any,
                       quick: bool) -> None:
    """On one reference machine, in this order: redraw, save/load, the engine's
    query, move_pages, migrate_pages, key latency."""
    m = build(d)
    db = PIDS["db"]
    v = db_vma(m)
    ps = m.page_size
    db_pages = (v.end - v.start) // ps
    n = min(MI, db_pages // 4)
    det["move_pages_n"] = n

    # the console's map redraw, on the reference state
    if ui is not None:
        r = _ui_figure(det, "redraw", lambda: ui.redraw_ms(m, runs=5 if quick else 20))
        if r is not None:
            fig["redraw_ms"] = r["median_ms"]
            log(f"redraw: {r['median_ms']:.2f} ms")

    # save / load
    with tempfile.TemporaryDirectory(prefix="numacon-bench-") as tmp:
        path = os.path.join(tmp, "reference.snap")
        saves_t, loads_t = [], []
        for _ in range(runs):
            saves_t.append(timed(lambda: save(m, path))[0])
            loads_t.append(timed(lambda: load(path))[0])
            gc.collect()
        det["snapshot_bytes"] = os.path.getsize(path)
    fig["save_s"], fig["load_s"] = median(saves_t), median(loads_t)
    log(f"save {fig['save_s']:.3f} s, load {fig['load_s']:.3f} s")

    # the engine's query of n pages (nodes = NULL) and the host kernel's of as many
    # pages, taken in turn the same number of times (a load that comes and goes on
    # the host then weighs on both sides alike): medians
    q_addrs = v.start + np.arange(n, dtype=np.int64) * ps
    try:
        host = HostQuery(n)
    except (OSError, AttributeError, ValueError) as e:  # no libc, no syscall()
        host = None
        det["kernel_query_note"] = f"the host's move_pages(2) cannot be called: {e}"
    q, kq = [], []
    try:
        for _ in range(1 if quick else 5):
            gc.collect()
            t, st = timed(lambda: m.move_pages(db, q_addrs, None))
            q.append(t)
            if set(st) != {0}:
                raise RuntimeError(f"engine query: statuses {sorted(set(st))[:5]}")
            st = None
            if host is not None:
                kq.append(host.once())
    finally:
        host_ok = host is not None and host.ok and bool(kq)
        if host is not None:
            det["kernel_query_note"] = host.note
            host.close()
    det["engine_query_s"] = median(q)
    det["kernel_query_s"] = median(kq) if host_ok else None
    if det["kernel_query_s"] is not None and det["engine_query_s"] > 0:
        fig["query_ratio_vs_kernel"] = det["kernel_query_s"] / det["engine_query_s"]
    log(f"query: engine {det['engine_query_s'] * 1e3:.1f} ms, host kernel "
        f"{(det['kernel_query_s'] or 0) * 1e3:.1f} ms ({det['kernel_query_note']})")

    # move_pages: n random pages of db, each to a random node other than its own;
    # put back home (untimed) after each run. Each run is followed by one of the
    # design's prototype on a machine of as many frames moving as many pages (the
    # yardstick, in turn with the engine)
    rng = np.random.default_rng(12345)
    mp, pp = [], []
    for i in range(runs):
        idx = rng.choice(db_pages, n, replace=False)  # distinct pages, random order
        addrs = v.start + idx.astype(np.int64) * ps
        cur = np.asarray(m.move_pages(db, addrs, None), dtype=np.int64)
        tgt = (cur + rng.integers(1, 4, n)) % 4
        before = m.vmstat().get("pgmigrate_success", 0)
        t, st = timed(lambda a=addrs, tg=tgt: m.move_pages(db, a, tg))
        moved = m.vmstat().get("pgmigrate_success", 0) - before
        if st.ret != 0 or moved != n or not np.array_equal(np.asarray(st, np.int64), tgt):
            raise RuntimeError(f"move_pages run {i}: ret {st.ret}, {moved} of {n} moved")
        mp.append(n / t)
        st = None
        m.migrate_pages(db, [1, 2, 3], [0])  # back home (untimed)
        gc.collect()
        pp.append(proto_move_pages_pps(1, frames=m.nr_frames, moves=n))
        log(f"move_pages {i + 1}/{runs}: {t:.3f} s, {n / t / 1e6:.2f} M pages/s; "
            f"prototype {pp[-1] / 1e6:.2f} M pages/s")
    fig["move_pages_pps"] = median(mp)
    fig["proto_pps"] = median(pp)

    # migrate_pages: the whole of db between nodes 0 and 1 (web killed for room)
    m.kill(PIDS["web"])
    mg = []
    src, dst = 0, 1
    for i in range(runs):
        before = m.vmstat().get("pgmigrate_success", 0)
        t, ret = timed(lambda s=src, t_=dst: m.migrate_pages(db, [s], [t_]))
        moved = m.vmstat().get("pgmigrate_success", 0) - before
        if ret != 0 or moved != db_pages:
            raise RuntimeError(f"migrate_pages run {i}: ret {ret}, {moved} of {db_pages}")
        mg.append(moved / t)
        log(f"migrate_pages {i + 1}/{runs}: {t:.3f} s, {moved / t / 1e6:.2f} M pages/s")
        src, dst = dst, src
    fig["migrate_pages_pps"] = median(mg)
    det["migrate_pages_n"] = db_pages

    # key latency: jobs of n pages of db, back and forth between its node and the other
    if ui is not None:
        home, other = src, dst  # db is on `src` now
        lo, hi = v.start, v.start + n * ps
        jobs = [f"move_pages {db} {lo:x}..{hi:x} {other} &",
                f"move_pages {db} {lo:x}..{hi:x} {home} &"]
        r = _ui_figure(det, "key_latency",
                       lambda: ui.key_latency_ms(m, jobs, presses=3 if quick else 9))
        if r is not None:
            fig["key_latency_ms"] = r["median_ms"]
            log(f"key latency: {r['median_ms']:.1f} ms")
        r = _ui_figure(det, "help_view",
                       lambda: ui.help_view_ms(m, rounds=1 if quick else 3))
        if r is not None:
            fig["help_ms"], fig["view_ms"] = r["help_ms"], r["view_ms"]
            log(f"help {r['help_ms']:.1f} ms, view {r['view_ms']:.1f} ms "
                f"(slowest {r['view_max_ms']:.1f} ms)")


def _ui_figure(det: dict, name: str, fn: Callable[[], dict]) -> dict | None:
    """A console figure: its details, or None with the error in the details (the UI
    failing is reported, not allowed to throw away the engine's figures)."""
    try:
        r = fn()
    except Exception as e:  # noqa: BLE001 - reported in the output
        det[f"{name}_error"] = f"{type(e).__name__}: {e}"[:300]
        return None
    det[name] = r
    return r


def _mapped_share(m) -> float:
    """Pages mapped by processes / frames (anonymous and file-backed user pages)."""
    k = m.f.kind
    return float(((k == K_ANON) | (k == K_FILE)).sum()) / m.nr_frames


# ----------------------------------------------------------------- reporting

def rounded(fig: dict) -> dict:
    """The --json object: every key of FIGURES, in order; floats rounded."""
    out: dict[str, Any] = {}
    for k in KEYS:
        v = fig.get(k)
        if isinstance(v, bool) or v is None:
            out[k] = v
        elif k.endswith("_pps"):
            out[k] = float(round(v))
        else:
            out[k] = float(round(v, 4 if k.endswith("_s") else 3))
    return out


def goal_met(key: str, v: Any) -> bool | None:
    op, goal = next(g for k, _, g, _ in FIGURES if k == key)
    if v is None or op == "info":
        return None
    if op == "is":
        return v is goal
    return v <= goal if op == "<=" else v >= goal


def _fmt(key: str, v: Any, unit: str) -> str:
    if v is None:
        return "skipped"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if unit == "pages/s":
        return f"{v / 1e6:.2f} M pages/s"
    if unit == "x":
        return f"{v:.2f}"
    if unit == "s":
        return f"{v:.3f} s"
    return f"{v:.2f} {unit}".rstrip()


def _fmt_goal(op: str, goal: Any, unit: str) -> str:
    if op == "info":
        return "(yardstick)"
    if op == "is":
        return "yes"
    sym = {"<=": "≤", ">=": "≥"}[op]
    if unit == "pages/s":
        return f"{sym} {goal / 1e6:g} M pages/s"
    if unit == "x":
        return f"{sym} {goal:g}"
    return f"{sym} {goal:g} {unit}"


def host_line() -> str:
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = 0.0
    return (f"{os.cpu_count()} CPUs, {mem:.1f} GiB, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, numpy "
            f"{np.__version__}")


def _pages(n: int) -> str:
    return f"{n >> 20} Mi" if n and n % (1 << 20) == 0 else \
        f"{n >> 10} Ki" if n and n % 1024 == 0 else str(n)


def _gib(nbytes: float) -> str:
    g = nbytes / 2**30
    return f"{g:g} GiB" if g >= 1 else f"{nbytes / 2**20:g} MiB"


def figure_label(key: str, what: str, det: dict, scale: float) -> str:
    """A figure's label with the sizes that ran (--quick and --scale shrink them)."""
    ps = det.get("page_size", 4096)
    mp, mg = det.get("move_pages_n"), det.get("migrate_pages_n")
    if key == "move_pages_pps" and mp:
        return f"move_pages, one call, {_pages(mp)} random pages to random nodes"
    if key == "migrate_pages_pps" and mg:
        return f"migrate_pages, a whole {_gib(mg * ps)} process to another node"
    if key == "offline_s" and scale != 1:
        return f"offline the {_gib(16 * 2**30 * scale)} Movable zone, 75 % used"
    if key in ("thp_migrate_s", "small_migrate_s", "thp_vs_small") and thp_label(key, det):
        return thp_label(key, det)
    if key == "query_ratio_vs_kernel" and mp:
        return f"query {_pages(mp)} pages: host kernel time / engine time"
    if key == "key_latency_ms" and det.get("key_latency", {}).get("job_pages"):
        return (f"key press to visible change while a "
                f"{_pages(det['key_latency']['job_pages'])}-page job runs")
    return what


def report(res: dict, *, scale: float, runs: int) -> str:
    fig, det = res["figures"], res["details"]
    ps = det.get("page_size", 4096)
    frames = det.get("frames", 0)
    lines = [f"numacon bench: reference machine {frames * ps / 2**30:g} GiB "
             f"({frames} frames of {ps >> 10} KiB), 4 nodes, "
             f"{100 * det.get('mapped_share', 0):.0f} % mapped; scale {scale:g}; "
             f"median of {runs} run{'s' if runs > 1 else ''}",
             f"host: {host_line()}", ""]
    whats = {key: figure_label(key, what, det, scale) for key, what, _, _ in FIGURES}
    w = max(len(what) for what in whats.values())
    lines.append(f"{'figure':<{w}}  {'measured':>17}  {'goal':>17}  met")
    for key, _what, (op, goal), unit in FIGURES:
        what = whats[key]
        v = fig.get(key)
        met = goal_met(key, v)
        lines.append(f"{what:<{w}}  {_fmt(key, v, unit):>17}  "
                     f"{_fmt_goal(op, goal, unit):>17}  "
                     f"{'-' if met is None else 'yes' if met else 'NO'}")
    lines.append("")
    lines.append("details:")
    lines.append(f"  engine arrays: {det.get('array_bytes_per_frame', 0):.2f} B/frame "
                 f"(frame arrays alone {det.get('frame_array_bytes_per_frame', 0):.2f}); "
                 f"RSS growth of the build {fig.get('bytes_per_frame') or 0:.2f} B/frame")
    lines.append(f"  move_pages: {det.get('move_pages_n')} pages a call; migrate_pages: "
                 f"{det.get('migrate_pages_n')} pages a call; offline: "
                 f"{det.get('offline_pages')} pages")
    if "snapshot_bytes" in det:
        lines.append(f"  snapshot: {det['snapshot_bytes'] / 2**20:.1f} MiB")
    eq, kq = det.get("engine_query_s"), det.get("kernel_query_s")
    lines.append(f"  query of {det.get('move_pages_n')} pages: engine "
                 f"{eq * 1e3:.1f} ms, host kernel "
                 + (f"{kq * 1e3:.1f} ms" if kq is not None else "n/a")
                 + f" ({det.get('kernel_query_note')})")
    if "redraw" in det:
        r = det["redraw"]
        lines.append(f"  redraw: {r.get('lines')} lines of {r.get('width')} columns, "
                     f"{r.get('zoom')} frames a cell; default machine "
                     f"{r.get('default_machine_ms', float('nan')):.2f} ms")
    elif fig.get("redraw_ms") is None and "redraw_error" not in det:
        lines.append("  redraw, key latency: no UI given (run `numacon bench`)")
    for name in ("redraw", "key_latency"):
        if f"{name}_error" in det:
            lines.append(f"  {name.replace('_', ' ')}: failed: {det[name + '_error']}")
    if "help_view" in det:
        r = det["help_view"]
        lines.append(f"  help: {r['help_ms']:.1f} ms (max {r['help_max_ms']:.1f}); views: "
                     + ", ".join(f"{k} {v:.1f} ms" for k, v in r["views"].items()))
    if "help_view_error" in det:
        lines.append(f"  help, views: failed: {det['help_view_error']}")
    if "key_latency" in det:
        r = det["key_latency"]
        lines.append(f"  key latency: {r.get('presses')} presses during jobs "
                     f"(max {r.get('max_ms', 0):.1f} ms); without a job "
                     f"{r.get('idle_ms', float('nan')):.1f} ms")
    if "tib" in det:
        t = det["tib"]
        if "error" in t:
            lines.append(f"  1 TiB: failed ({t['error']}); peak RSS {t['rss_gib']:.2f} GiB")
        else:
            lines.append(f"  1 TiB: {t.get('frames')} frames, build {t.get('build_s', 0):.2f} s,"
                         f" migrate {t.get('moved')} pages {t.get('migrate_s', 0):.2f} s, "
                         f"check {t.get('check_s', 0):.2f} s, peak RSS {t['rss_gib']:.2f} GiB"
                         + (f" (its own address space: {t['hwm_kib'] / 2**20:.2f} GiB)"
                            if t.get("hwm_kib") else ""))
            vs = t.get("views_s") or {}
            lines.append("  1 TiB views: " + ", ".join(f"{k} {v:.2f} s" for k, v in vs.items()))
    return "\n".join(lines)


# ----------------------------------------------------------------- the command

def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="numacon bench",
        description="measure the engine and the console against the goals of issue 7")
    ap.add_argument("--json", action="store_true",
                    help="print one JSON object of the figures (keys in a fixed order)")
    ap.add_argument("--quick", action="store_true",
                    help="a small run: scale 1/8 unless given, one run, no 1 TiB machine")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--scale", type=float, metavar="F",
                      help="reference machine of 64 GiB x F (default 1)")
    size.add_argument("--frames", type=int, metavar="N",
                      help="reference machine of about N frames (2^24 = 64 GiB)")
    ap.add_argument("--runs", type=int, metavar="N", help="runs per figure (default 3)")
    ap.add_argument("--no-tib", action="store_true", help="skip the 1 TiB machine")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="progress on stderr (the default when stderr is a terminal)")
    ap.add_argument("--tib-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tib-size", help=argparse.SUPPRESS)
    ap.add_argument("--build-child", action="store_true", help=argparse.SUPPRESS)
    return ap


def main(argv: Sequence[str] | None = None, ui: Any = None) -> int:
    """`numacon bench`. ui: the console's figures (tui.bench_ui), or None."""
    a = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if a.tib_child:
        return tib_child(a.tib_size)
    if a.build_child:
        return build_child(a.scale)
    if a.frames is not None:
        if a.frames < 64 * MIN_G:
            parser().error(f"--frames: at least {64 * MIN_G}")
        scale = a.frames / (64 * GIB_PAGES)
    elif a.scale is not None:
        if not a.scale > 0:
            parser().error("--scale: a positive number")
        scale = a.scale
    else:
        scale = 1 / 8 if a.quick else 1.0
    runs = a.runs if a.runs is not None else (1 if a.quick else 3)
    if runs < 1:
        parser().error("--runs: at least 1")
    log = Log(a.verbose or sys.stderr.isatty())
    res = measure(scale=scale, runs=runs, tib=not (a.no_tib or a.quick), ui=ui,
                  quick=a.quick, log=log)
    if a.json:
        print(json.dumps(rounded(res["figures"])))
    else:
        print(report(res, scale=scale, runs=runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
