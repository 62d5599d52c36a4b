"""Commands for huge pages: the THP setting, madvise(MADV_HUGEPAGE/NOHUGEPAGE) and
the hugetlb pools (nr_hugepages per node)."""

from __future__ import annotations

from ..constants import MADV_HUGEPAGE, MADV_NOHUGEPAGE
from ..mm.huge_memory import THP_MODES
from ..units import fmt_size
from .core import command
from .spec import Arg, CommandError, Spec, addr_range, choice, integer, node, pid, size


@command("thp", "show or set transparent_hugepage/enabled (always, madvise, never)", Spec(
    Arg("always|madvise|never", choice(*THP_MODES), "mode", optional=True, name="mode")))
def _thp(m, a, bg):
    if a.mode is not None:
        m.thp = a.mode
    return f"thp {m.thp}"


@command("madvise", "madvise(MADV_HUGEPAGE / MADV_NOHUGEPAGE) over a range", Spec(
    Arg("PID", pid, "pid"), Arg("RANGE", addr_range, "range"),
    Arg("hugepage|nohugepage", choice("hugepage", "nohugepage"), name="advice")))
def _madvise(m, a, bg):
    adv = MADV_HUGEPAGE if a.advice == "hugepage" else MADV_NOHUGEPAGE
    m.madvise(a.pid, *a.range, adv)
    return f"madvise {a.advice}"


def _page_size(m, s: str) -> int:
    """A huge page size (2M, 1G): its kB, as the hugepages-NNNkB directory names it."""
    return size(m, s, "huge page size") >> 10


@command("hugepages", "show or set a node's hugetlb pool (nr_hugepages of 2 MiB pages, "
         "or of the size given: 1G)", Spec(
             Arg("NODE", node, "node", optional=True, name="node"),
             Arg("N", integer("count"), optional=True, name="count"),
             Arg("2M|1G", _page_size, optional=True, name="size_kb")))
def _hugepages(m, a, bg):
    if a.count is not None:
        if a.node is None:
            raise CommandError("hugepages: give NODE and N")
        m.set_nr_hugepages(a.node, a.count, size_kb=a.size_kb)
    nodes = [a.node] if a.node is not None else m.nodes
    out = []
    default_kb = m.page_size << (m.page_shift - 3) >> 10
    shown = {default_kb}
    for n in nodes:
        for name, d in m.sysfs_hugepages(n).items():
            kb = int(name[len("hugepages-"):-len("kB")])
            default = kb == default_kb
            if not (default or d["nr_hugepages"] or kb == a.size_kb):
                continue  # (the 1 GiB pool: shown when it has pages or was named)
            shown.add(kb)
            label = f"node {n}:" if default else f"node {n} {fmt_size(kb << 10)}:"
            out.append(f"{label} HugePages_Total {d['nr_hugepages']} HugePages_Free "
                       f"{d['free_hugepages']} HugePages_Surp {d['surplus_hugepages']}")
    for kb in sorted(shown):  # (global, not per node: /sys/kernel/mm/hugepages)
        label = "" if kb == default_kb else f"{fmt_size(kb << 10)} "
        out.append(f"{label}HugePages_Rsvd {m.hugepages_reserved(kb)}")
    return "\n".join(out)


@command("overcommit_hugepages", "show or set nr_overcommit_hugepages (surplus huge "
         "pages faults may take beyond the pools)", Spec(
             Arg("N", integer("count"), optional=True, name="count")))
def _overcommit_hugepages(m, a, bg):
    if a.count is not None:
        m.set_nr_overcommit_hugepages(a.count)
    return f"nr_overcommit_hugepages {m.nr_overcommit_hugepages}"
