"""Commands for simulated time, jobs, workloads, access statistics, the daemon and
experiments."""

from __future__ import annotations

from ..runtime import access
from ..runtime.experiment import compare_runs
from ..runtime.workload import described, process_stats
from ..units import fmt_ns
from ..views import clock_label, daemon_sentence, job_outcome
from .core import Result, command
from .spec import (
    Arg,
    CommandError,
    Flag,
    Opt,
    Spec,
    Words,
    addr_range,
    choice,
    duration,
    integer,
    node,
    number,
    onoff,
    pid,
    positive_size,
    text,
)

PID = Arg("PID", pid, "pid")


@command("clock", "simulated time: show it, pause jobs, run at X times real time (0.05: "
         "1/20 of real time, slow motion), or as fast as possible", Spec(Arg("pause|resume|fast|speed", choice("pause", "resume", "fast",
                                                                  "speed"), optional=True,
                                 name="verb"),
                             Arg("X", number("speed"), optional=True, name="speed")))
def _clock(m, a, bg):
    ctl = m.clockctl
    if a.verb == "pause":
        ctl.pause()
    elif a.verb == "resume":
        ctl.resume()
    elif a.verb == "fast":
        ctl.set_fast()
    elif a.verb == "speed":
        if a.speed is None or a.speed <= 0:
            raise CommandError("clock speed X: X must be a positive number")
        ctl.set_speed(a.speed)
    if a.speed is not None and a.verb != "speed":
        raise CommandError("clock: a number goes with speed")
    return Result(True, f"clock {fmt_ns(m.clock)} ({m.clock} ns), "
                        f"{clock_label(ctl.mode, ctl.speed, ctl._resume_mode)}", value=m.clock)


@command("cancel", "cancel a running job", Spec(Arg("JOB", integer("job"), "job")))
def _cancel(m, a, bg):
    for j in m.jobs:
        if j.id == a.job:
            j.cancel()
            return f"job {a.job} cancelling"
    raise CommandError(f"no running job {a.job}")


@command("wait", "run pending jobs to the end (scripts: jobs started with &)")
def _wait(m, a, bg):
    pending = [j for j in m.jobs if j._task is None]
    if not pending:
        return "no pending jobs" + (" (jobs run in the background)" if m.jobs else "")
    rounds = m.run_jobs()
    left = [j for j in m.jobs if not j.finished and j._task is None]
    lines = [f"{rounds} rounds"] + [job_outcome(m, j)[0] for j in pending if j.finished]
    if left:
        lines.append(f"{len(left)} job(s) idle (waiting for something to run)")
    return "\n".join(lines)


# ------------------------------------------------------------------ workloads

def _init(m, s: str):
    return "none" if s == "none" else node(m, s)


# what a phase of a workload takes (a `then` starts another phase with these only)
PHASE_OPTS = (
    Opt("pattern", choice("uniform", "zipf", "hot", "seq", "stream", "sequential", "stairs",
                          "zigzag", "random"), "P"),
    Opt("threads", text, "NODES", "nodes"), Opt("ticks", integer("ticks"), "N"),
    Opt("rate", integer("rate"), "N"), Opt("write", number("write"), "F"),
    Opt("zipf", number("zipf"), "A"), Opt("width", number("width"), "F"),
    Opt("step", integer("step"), "N"), Opt("shard", onoff("shard"), "on|off"),
    Opt("scatter", onoff("scatter"), "on|off"))
PHASE = Spec(*PHASE_OPTS)
WORKLOAD_OPTS = (Opt("size", positive_size, "S", "size"), Opt("init", _init, "NODE|none"),
                 Opt("seed", integer("seed"), "N"))


def phase_options(a) -> dict:
    return {o.key: getattr(a, o.key) for o in PHASE_OPTS if o.key in a.given}


def workload_options(a) -> dict:
    return {o.key: getattr(a, o.key) for o in WORKLOAD_OPTS if o.key in a.given}


@command("workload", "run a workload: threads on nodes access a region in a pattern (tick "
         "by tick); `then KEY=V ...` adds a phase", Spec(
             PID, Arg("RANGE", addr_range, "range", optional=True), *WORKLOAD_OPTS,
             *PHASE_OPTS, Opt("watch", text, "hint,damon"), Flag("loop"),
             split=("then", PHASE)), job="workload", word="start",
         default="start")
def _workload(m, a, bg):
    opts = workload_options(a)
    if a.range is not None:
        opts["addr"], opts["length"] = a.range
    if a.watch is not None:
        opts["watch"] = a.watch
    phases = [phase_options(a)] + [phase_options(p) for p in a.parts]
    if len(phases) > 1:
        opts["phases"] = phases
    else:
        opts.update(phases[0])
    opts["loop"] = "loop" in a.flags
    if opts["loop"] and not bg:
        raise CommandError("workload --loop runs until stopped: start it in the "
                           "background (end the line with &)")
    addr_, length = opts.pop("addr", None), opts.pop("length", None)
    if bg:
        job = m.start("workload", a.pid, addr_, length, **opts)
        return Result(True, f"job {job.id} started: workload {job.owner.id} on pid {a.pid}",
                      job=job)
    # a script: step every pending job (daemons too) until this workload ends
    job = m.start_sync("workload", a.pid, addr_, length, **opts)
    while not job.finished and m.run_jobs() > 0:
        pass
    if job.state == "failed":
        raise job.error
    return Result(True, job.owner.describe(), value=job.result)


@command("workload", "stop running workloads", Spec(
    Arg("ID|PID|all", text, "workload", name="which")), word="stop")
def _workload_stop(m, a, bg):
    hit = [w for w in m.workloads if w.running and
           (a.which == "all" or str(w.id) == a.which or str(w.pid) == a.which)]
    if not hit:
        raise CommandError(f"no running workload {a.which}")
    for w in hit:
        w.stop()
    return f"stopping {len(hit)} workload(s)"


@command("workloads", "workloads with locality, latency and stalls; `start`: those of the "
         "description", Spec(Words("start")))
def _workloads(m, a, bg):
    if "start" in a.words:
        specs = described(m)
        if not specs:
            raise CommandError("the machine's description has no [[workloads]]")
        jobs = [m.start("workload", **kw) if bg else m.start_sync("workload", **kw)
                for kw in specs]
        if not bg:
            m.run_jobs()
        return Result(True, f"{len(jobs)} workload(s) started" if bg else
                      "\n".join(j.owner.describe() for j in jobs), job=jobs[0])
    if not m.workloads:
        return "no workloads"
    lines = [w.describe() for w in m.workloads]
    for p_ in sorted({w.pid for w in m.workloads}):
        s = process_stats(m, m.workloads, p_)
        lines.append(f"pid {p_}: {s['local']} local, {s['remote']} remote accesses "
                     f"({s['locality']:.1%} local), avg latency {s['avg_latency_ns']:.0f} ns, "
                     f"{s['stalls']} stalls")
    return "\n".join(lines)


def _find_workload(m, n: int):
    by_pid = [w for w in m.workloads if w.pid == n]
    if by_pid:
        run = [w for w in by_pid if w.running]
        return (run or by_pid)[-1]
    for w in m.workloads:
        if w.id == n:
            return w
    raise CommandError(f"no workload for pid {n} (nor workload id {n})")


@command("access", "what user space can see about accesses (numastat, move_pages query, hint "
         "faults, DAMON) scored against the truth", Spec(
             PID, Arg("watch|reset", choice("watch", "reset"), optional=True, name="verb"),
             Arg("hint,damon", text, optional=True, name="kinds")))
def _access(m, a, bg):
    wl = _find_workload(m, a.pid)
    if a.verb == "watch":
        if a.kinds is None:
            raise CommandError("missing argument: usage: access PID watch hint,damon")
        access.watch(m, wl, a.kinds)
        return f"workload {wl.id}: watching {a.kinds}"
    if a.kinds is not None:
        raise CommandError("too many arguments: usage: access PID reset")
    if a.verb == "reset":
        access.reset(m, wl)
        return f"workload {wl.id}: access statistics start again"
    return Result(True, access.compare_text(m, wl), value=access.compare(m, wl))


# ------------------------------------------------------------------ the daemon

DAEMON_OPTS = (
    Opt("mode", choice("user", "autonuma", "damos"), "user|autonuma|damos"),
    Opt("source", choice("hint", "truth", "damon", "query"), "hint|truth|damon|query"),
    Opt("period", duration("period"), "10ms"), Opt("rate", number("rate"), "MB/s"),
    Opt("threshold", number("threshold"), "F"), Opt("min", number("min"), "N"),
    Opt("hysteresis", number("hysteresis"), "F"), Opt("cooldown", duration("cooldown"), "T"),
    Opt("decay", number("decay"), "F"), Opt("hot", node, "NODE"), Opt("cold", node, "NODE"),
    Opt("hot_min", number("hot_min"), "F"), Opt("cold_max", number("cold_max"), "F"),
    Opt("cold_age", integer("cold_age"), "N"), Opt("duration", duration("duration"), "T"))
DAEMON_NAMES = {"period": "period_ns", "cooldown": "cooldown_ns", "duration": "duration_ns",
                "rate": "rate_mbps", "min": "min_accesses"}


def daemon_options(a) -> dict:
    return {DAEMON_NAMES.get(o.key, o.key): getattr(a, o.key) for o in DAEMON_OPTS
            if o.key in a.given}


@command("daemon", "automatic page migration: a user-space daemon, AutoNUMA, or DAMOS "
         "hot/cold", Spec(PID, *DAEMON_OPTS), job="daemon", word="start", default="report")
def _daemon_start(m, a, bg):
    # always a job: it runs beside workloads (scripts step it with them)
    if bg:
        job = m.start("daemon", a.pid, **daemon_options(a))
    else:
        job = m.start_sync("daemon", a.pid, **daemon_options(a))
    text = f"job {job.id} started: daemon {job.owner.id} on pid {a.pid}"
    if not m.workloads.running(a.pid):
        text += (f" (pid {a.pid} runs no workload yet: the daemon acts on the accesses a "
                 f"workload makes; start one, e.g. `workload {a.pid} --loop &`)")
    return Result(True, text, job=job)


@command("daemon", "stop a daemon (all running ones by default)", Spec(
    Arg("ID", integer("daemon"), optional=True, name="id")), word="stop")
def _daemon_stop(m, a, bg):
    hit = [d for d in m.daemons if d.state == "running" and (a.id is None or d.id == a.id)]
    if not hit:
        raise CommandError("no running daemon" + (f" {a.id}" if a.id is not None else ""))
    for d in hit:
        d.stop()
    m.run_jobs()  # scripts: let it finish and report; the event loop does it otherwise
    return "\n".join(daemon_sentence(d.report(), "stopped") for d in hit)



@command("daemon", "the daemons' reports", Spec(
    Arg("ID", integer("daemon"), optional=True, name="id")), word="report")
def _daemon_report(m, a, bg):
    sel = [d for d in m.daemons if a.id is None or d.id == a.id]
    if not sel:
        return "no daemons"
    return Result(True, "\n".join(d.report_text() for d in sel),
                  value=[d.report() for d in sel])


# ------------------------------------------------------------------ experiments

EXPERIMENT = Spec(PID, *WORKLOAD_OPTS, *PHASE_OPTS, split=("--", Spec(*DAEMON_OPTS)))


def experiment_options(a) -> tuple[int, dict, dict]:
    if len(a.parts) > 1:
        raise CommandError("experiment: one -- before the daemon options")
    d = daemon_options(a.parts[0]) if a.parts else {}
    return a.pid, {**workload_options(a), **phase_options(a)}, d


def parse_experiment(args: list[str]) -> tuple[int, dict, dict]:
    """`experiment`'s arguments -> (pid, workload options, daemon options); raises
    CommandError. A sweep spec (tools/sweep.py) is checked by this same parser before
    any run starts."""
    return experiment_options(EXPERIMENT.parse(None, args, "experiment"))


@command("experiment", "run a workload on copies of this machine with the daemon off and on "
         "(same seed); daemon options follow --", EXPERIMENT)
def _experiment(m, a, bg):
    pid_, wopts, dopts = experiment_options(a)
    r = compare_runs(m, pid_, wopts, dopts)
    # last_off/last_on: the last-window locality the table prints (a sweep row carries
    # every figure of the text)
    return Result(True, r["text"], value={"off": r["off"]["workload"],
                                          "on": r["on"]["workload"],
                                          "daemon": r["on"]["daemon"],
                                          "last_off": r["off"]["last"],
                                          "last_on": r["on"]["last"]})
