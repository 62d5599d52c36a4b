"""Commands for huge pages: the THP setting, madvise(MADV_HUGEPAGE/NOHUGEPAGE) and
the hugetlb pools (nr_hugepages per node)."""

from __future__ import annotations

from ..constants import MADV_HUGEPAGE, MADV_NOHUGEPAGE
from ..mm.huge_memory import THP_MODES
from .core import command
from .spec import Arg, CommandError, Spec, addr_range, choice, integer, node, pid


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


@command("hugepages", "show or set a node's hugetlb pool (nr_hugepages of 2 MiB pages)", Spec(
    Arg("NODE", node, "node", optional=True, name="node"),
    Arg("N", integer("count"), optional=True, name="count")))
def _hugepages(m, a, bg):
    if a.count is not None:
        if a.node is None:
            raise CommandError("hugepages: give NODE and N")
        m.set_nr_hugepages(a.node, a.count)
    nodes = [a.node] if a.node is not None else m.nodes
    return "\n".join([f"node {n}: HugePages_Total {t} HugePages_Free {f} HugePages_Surp "
                      f"{m.hugepages_surplus(n)}" for n in nodes for t, f in [m.hugepages(n)]]
                     + [f"HugePages_Rsvd {m.hugepages_reserved()}"])


@command("overcommit_hugepages", "show or set nr_overcommit_hugepages (surplus huge "
         "pages faults may take beyond the pools)", Spec(
             Arg("N", integer("count"), optional=True, name="count")))
def _overcommit_hugepages(m, a, bg):
    if a.count is not None:
        m.set_nr_overcommit_hugepages(a.count)
    return f"nr_overcommit_hugepages {m.nr_overcommit_hugepages}"
