"""Commands for memory hot-remove and hot-add: zones, and single memory blocks (the
/sys/devices/system/memory/memoryN a zone is made of)."""

from __future__ import annotations

from .core import Result, command, start_or_run
from .migration import dry_run, recorded
from .spec import Arg, CommandError, Flag, Spec, choice, integer, node, text

NODE = Arg("NODE", node, "node")
ZONE = Arg("ZONE", text, "zone")
BLOCK = Arg("INDEX", integer("block"), "block", name="index")


@command("offline", "hot-remove a zone: migrate everything movable off it, then take it "
         "offline", Spec(NODE, ZONE, Flag("dry-run")), job="offline")
def _offline(m, a, bg):
    if "dry-run" in a.flags:
        return dry_run(m, bg, "offline", a.node, a.zone)
    if bg:
        m.zone(a.node, a.zone)  # EINVAL now, not from inside a job that already "started"
        return start_or_run(m, True, "offline", a.node, a.zone)
    r = recorded(m, "offline", (a.node, a.zone), lambda: m.offline(a.node, a.zone))
    if r.ok:
        r.text = r.value["text"]
    return r


@command("online", "hot-add: bring a zone's offline blocks back", Spec(NODE, ZONE))
def _online(m, a, bg):
    m.online(a.node, a.zone)
    return f"node {a.node} {a.zone} online"


def _block(m, index: int) -> int:
    if not 0 <= index < len(m.blocks()):
        raise CommandError(f"no memory block {index} (blocks 0-{len(m.blocks()) - 1}; "
                           f"`blocks` lists them)")
    return index


@command("blocks", "the memory blocks (/sys/devices/system/memory/memoryN): state, node, "
         "zone, removable")
def _blocks(m, a, bg):
    rows = [f"{'BLOCK':>5} {'STATE':<13} {'NODE':>4} {'ZONE':<8} {'START PFN':>12} "
            f"{'PAGES':>8} REMOVABLE"]
    for b in m.blocks():
        rows.append(f"{b['index']:>5} {b['state']:<13} {b['node']:>4} "
                    f"{b['valid_zones']:<8} {b['start_pfn']:>12} {b['pages']:>8} "
                    f"{b['removable']}")
    return "\n".join(rows)


@command("offline_block", "hot-remove one memory block (echo offline > memoryN/state)",
         Spec(BLOCK), job="offline_block")
def _offline_block(m, a, bg):
    _block(m, a.index)
    if bg:
        return start_or_run(m, True, "offline_block", a.index)
    r = recorded(m, "offline_block", (a.index,), lambda: m.offline_block(a.index))
    if r.ok:
        r.text = r.value["text"]
    return r


@command("online_block", "hot-add one memory block (online, or online_movable / "
         "online_kernel)", Spec(BLOCK, Arg("HOW", choice("online", "online_movable",
                                                        "online_kernel"), optional=True)))
def _online_block(m, a, bg):
    _block(m, a.index)
    n = m.online_block(a.index, a.how or "online")
    return Result(True, f"memory{a.index} {a.how or 'online'}: {n} pages", value=n)
