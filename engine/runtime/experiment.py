"""Experiments: the same workload, same seed, on copies of a machine with the daemon
off and on (`experiment` in the command language, and each run of a sweep). Every
run is deterministic for the machine's seed: jobs are stepped round-robin without an
event loop."""

from __future__ import annotations

from ..machine import Machine
from ..units import fmt_ns


def experiment(m: Machine, pid: int, workload: dict, daemon: dict | None = None) -> dict:
    """Run one workload on a copy of `m`, with or without a daemon."""
    c = m.clone()
    wj = c.start_sync("workload", pid, **workload)
    dj = c.start_sync("daemon", pid, **daemon) if daemon is not None else None
    c.run_jobs()
    for j in (wj, dj):
        if j is not None and j.state == "failed":
            raise j.error
    wl = wj.owner
    c.check()
    out = {"workload": wl.summary(), "last": wl.window(daemon.get("report_ticks", 20)
                                                         if daemon else 20),
           "machine": c}
    if dj is not None:
        out["daemon"] = dj.result
    return out


def compare_runs(m: Machine, pid: int, workload: dict, daemon: dict) -> dict:
    """The same workload, same seed, daemon off and on: did it pay?"""
    off = experiment(m, pid, workload, None)
    on = experiment(m, pid, workload, daemon)
    wo, wn = off["workload"], on["workload"]
    d = on["daemon"]
    text = "\n".join([
        f"{'':<10} {'locality':>9} {'last-win':>9} {'latency':>9} {'runtime':>12} "
        f"{'stalls':>7} {'migrated':>9} {'migr-time':>11}",
        f"{'daemon off':<10} {wo['locality']:>9.1%} {off['last']['locality']:>9.1%} "
        f"{wo['avg_latency_ns']:>7.0f}ns {fmt_ns(wo['runtime_ns']):>12} {wo['stalls']:>7} "
        f"{0:>9} {'-':>11}",
        f"{'daemon on':<10} {wn['locality']:>9.1%} {on['last']['locality']:>9.1%} "
        f"{wn['avg_latency_ns']:>7.0f}ns {fmt_ns(wn['runtime_ns']):>12} {wn['stalls']:>7} "
        f"{d['migrated']:>9} {fmt_ns(d['migrate_ns']):>11}",
        f"paid: runtime {'-' if wo['runtime_ns'] >= wn['runtime_ns'] else '+'}"
        f"{abs(1 - wn['runtime_ns'] / max(wo['runtime_ns'], 1)):.1%}, "
        f"ping-pong {d['pingpong']}, failures {d['failures'] or 'none'}"])
    return {"off": off, "on": on, "text": text}
