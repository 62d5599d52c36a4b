"""Commands for memory hot-remove and hot-add."""

from __future__ import annotations

from .core import Result, command, start_or_run
from .migration import dry_run
from .spec import Arg, Flag, Spec, node, text

NODE = Arg("NODE", node, "node")
ZONE = Arg("ZONE", text, "zone")


@command("offline", "hot-remove a zone: migrate everything movable off it, then take it "
         "offline", Spec(NODE, ZONE, Flag("dry-run")), job="offline")
def _offline(m, a, bg):
    if "dry-run" in a.flags:
        return dry_run(m, bg, "offline", a.node, a.zone)
    if bg:
        m.zone(a.node, a.zone)  # EINVAL now, not from inside a job that already "started"
        return start_or_run(m, True, "offline", a.node, a.zone)
    r = m.offline(a.node, a.zone)
    return Result(True, r["text"], value=r)


@command("online", "hot-add: bring a zone's offline blocks back", Spec(NODE, ZONE))
def _online(m, a, bg):
    m.online(a.node, a.zone)
    return f"node {a.node} {a.zone} online"
