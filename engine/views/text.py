"""Words and numbers the console prints: sizes, counts, policies, clock labels, status
summaries and job lines, each formatted in one place for every view."""

from __future__ import annotations

import errno
from typing import Any

import numpy as np

from ..constants import (
    FLAG_NAMES,
    PG_isolated,
    PG_mlocked,
    PG_pinned,
)
from ..mm.move_pages import UNWRITTEN, MoveStatus
from ..units import fmt_ns

__all__ = ["KUSE_NAMES", "MARK_ISOLATED", "MARK_MLOCKED", "MARK_PINNED", "clock_label", "daemon_sentence", "flag_names", "fmt_bytes", "fmt_count", "fmt_pages", "job_line", "job_outcome", "node_index", "policy_str", "status_counts", "status_counts_text", "summarize_result"]



KUSE_NAMES = {0: "memmap", 1: "slab", 2: "page tables", 3: "zero page"}
MARK_MLOCKED = int(PG_mlocked)
MARK_PINNED = int(PG_pinned)
MARK_ISOLATED = int(PG_isolated)


def fmt_bytes(n: float) -> str:
    """1536 -> '1.5K', 3*2**30 -> '3.0G' (binary units, short)."""
    n = float(n)
    for unit in ("B", "K", "M", "G", "T", "P"):
        if abs(n) < 1024 or unit == "P":
            if unit == "B":
                return f"{int(n)}B"
            return f"{n:.1f}{unit}" if abs(n) < 10 else f"{n:.0f}{unit}"
        n /= 1024
    return f"{n:.0f}P"  # pragma: no cover


def fmt_pages(m: Any, pages: int) -> str:
    return fmt_bytes(int(pages) * m.page_size)


def fmt_count(n: float) -> str:
    """At most 5 characters: 66048 -> '66.0k', 131072 -> '131k', 1500000 -> '1.50M'
    (counts below 100000 are shown whole)."""
    n = float(n)
    if abs(n) < 100_000:
        return str(int(n))
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            v = n / div
            s = f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"
            return s + unit
    return str(int(n))  # pragma: no cover


def policy_str(policy: Any) -> str:
    """A policy as numa_maps names it ("default" for none)."""
    return "default" if policy is None else policy.describe()


def node_index(m: Any) -> dict[int, int]:
    """node id -> column position (node ids may be sparse)."""
    return {n: i for i, n in enumerate(m.nodes)}


def flag_names(flags: int) -> list[str]:
    """PG_* bits as names."""
    return [n for bit, n in FLAG_NAMES if flags & int(bit)]


def job_line(m: Any, job: Any) -> str:
    """'#3 migrate_pages 1024/4096 25% 204k pg/s ETA 0.25s' (rate and ETA in
    simulated time)."""
    done, total = int(job.done), int(job.total)
    s = f"#{job.id} {job.name} {fmt_count(done)}/{fmt_count(total)}"
    if total:
        s += f" {100 * done // total}%"
    if done:
        dt = (m.clock - job.started_ns) / 1e9
        if dt > 0:
            rate = done / dt
            s += f" {fmt_count(rate)} pg/s"
            if total > done and rate > 0:
                s += f" ETA {(total - done) / rate:.2g}s"
    return s


def clock_label(mode: str, speed: float, resume: str = "fast") -> str:
    """How the simulated clock runs, the right way round: 'fast (as fast as
    possible)', '1/10 real time (slow motion)', '10x real time', 'paused'."""
    if mode == "fast":
        return "fast"
    if mode == "paused":
        return f"paused (then {clock_label(resume, speed)})"
    if speed == 1:
        return "real time"
    if speed < 1:
        inv = 1 / speed
        return f"1/{inv:.0f} real time" if abs(inv - round(inv)) < 1e-6 else \
            f"{speed:g}x real time"
    return f"{speed:g}x real time"


def status_counts(status: np.ndarray) -> dict[str, int]:
    """A status array (move_pages) as counts: N<node>, -E<errno>, unwritten."""
    vals, counts = np.unique(np.asarray(status, np.int64), return_counts=True)
    out: dict[str, int] = {}
    for s, c in zip(vals.tolist(), counts.tolist()):
        if s == UNWRITTEN:
            k = "unwritten"
        elif s >= 0:
            k = f"N{s}"
        else:
            k = "-" + errno.errorcode.get(-s, str(-s))
        out[k] = out.get(k, 0) + c
    return out


def status_counts_text(status: np.ndarray) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(status_counts(status).items()))


def summarize_result(result: Any) -> str:
    """A job's return value in one line (when no record of its moves says more)."""
    if isinstance(result, MoveStatus):
        return f"{len(result)} pages: " + status_counts_text(result.array)
    if isinstance(result, bool):
        return str(result)
    if isinstance(result, int):
        return f"{result} page(s) not moved"
    if isinstance(result, dict) and "text" in result:
        return str(result["text"]).splitlines()[0]
    text = getattr(result, "text", None)
    if isinstance(text, str):
        return text.splitlines()[0] if text else ""
    return "" if result is None else str(result)


def daemon_sentence(r: dict, verb: str) -> str:
    """A daemon's report (Daemon.report()) as a sentence."""
    return (f"daemon {r['id']} on pid {r['pid']} {verb}: it migrated {r['migrated']} of "
            f"{r['attempted']} pages in {r['periods']} periods "
            f"({fmt_ns(r['migrate_ns'])} of migration), ping-pong {r['pingpong']}")


def job_outcome(m: Any, job: Any) -> tuple[str, bool]:
    """(one line, ok) for a finished job: a migration's says what moved and why the
    rest did not (its MoveRecord), a daemon's what it migrated, a workload's how it
    ran; a failure names the errno."""
    rec = m.moves.of_job(job.id)
    what = f"job {job.id} {job.state}"  # the line that follows names the call
    if job.name == "daemon" and job.owner is not None:
        return (f"{what}: {daemon_sentence(job.owner.report(), job.owner.state)}",
                job.state != "failed")
    if job.name == "workload" and job.owner is not None and job.state != "failed":
        return f"{what}: {job.owner.describe()}", True
    if rec is not None and job.state == "done" and not rec.query:
        return f"{what}: {rec.summary(job.result)}", True
    err = job.error
    if job.state == "done":
        line = summarize_result(job.result)
        return f"job {job.id} {job.name} done" + (f": {line}" if line else ""), True
    what = f"job {job.id} {job.name} {job.state}"
    if isinstance(err, OSError) and err.errno is not None:
        msg = f"{errno.errorcode.get(err.errno, err.errno)}: {err.strerror or err}"
    else:
        msg = str(err) if err is not None else job.state
    moved = f"; {rec.summary()}" if rec is not None and (rec.moved or rec.failures) else ""
    if job.state == "cancelled":
        return f"{what} ({msg}){moved}", True
    return f"error: {what}: {msg}{moved}", False
