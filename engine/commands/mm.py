"""Commands for processes, mappings, policies and locks (the mm/ calls)."""

from __future__ import annotations

from ..constants import (
    MAP_ANONYMOUS,
    MAP_HUGE_1GB,
    MAP_HUGETLB,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_SHARED,
    MCL_CURRENT,
    MCL_FUTURE,
    MCL_ONFAULT,
    MLOCK_ONFAULT,
    MODE_NAMES,
    MPOL_F_ADDR,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    RLIM_INFINITY,
)
from ..mm.era import get_era
from ..nodemask import nodes_str
from ..units import fmt_size
from .core import Result, command
from .spec import (
    Arg,
    CommandError,
    Flag,
    Opt,
    Spec,
    Words,
    addr,
    addr_range,
    choice,
    integer,
    node,
    nodes,
    pid,
    policy,
    positive_size,
    size,
    text,
)

PID = Arg("PID", pid, "pid")
RANGE = Arg("RANGE", addr_range, "range")


@command("spawn", "start a process", Spec(
    Arg("NAME", text, "name"), Opt("uid", integer("uid"), "U"), Opt("node", node, "N"),
    Opt("cpuset", nodes("cpuset"), "NODES", "nodes")))
def _spawn(m, a, bg):
    p = m.spawn(a.name, uid=a.uid or 0, node=a.node or 0, mems_allowed=a.cpuset)
    return Result(True, f"pid {p}", value=p)


@command("kill", "end a process (frees what only it maps)", Spec(PID))
def _kill(m, a, bg):
    m.kill(a.pid)
    return "killed"


@command("fork", "fork(): a child sharing the private pages copy-on-write; prints its pid",
         Spec(PID))
def _fork(m, a, bg):
    c = m.fork(a.pid)
    return Result(True, f"pid {c}", value=c)


def _limit(m, s: str) -> tuple[int, int | None]:
    """SOFT[:HARD], each a size or "unlimited"."""
    def one(x: str) -> int:
        if x.lower() in ("unlimited", "infinity"):
            return RLIM_INFINITY
        return size(m, x, "limit")
    soft, _, hard = s.partition(":")
    return one(soft), (one(hard) if hard else None)


def _limit_str(v: int) -> str:
    return "unlimited" if v == RLIM_INFINITY else fmt_size(v)


@command("rlimit", "show or set a process's RLIMIT_MEMLOCK (prlimit): SOFT[:HARD], sizes or "
         "unlimited; without HARD the hard limit stays", Spec(
             PID, Arg("memlock", choice("memlock"), name="resource"),
             Arg("SOFT[:HARD]", _limit, optional=True, name="limit")))
def _rlimit(m, a, bg):
    if a.limit is not None:
        m.setrlimit(a.pid, a.resource, *a.limit)
    soft, hard = m.getrlimit(a.pid, a.resource)
    return Result(True, f"memlock soft {_limit_str(soft)} hard {_limit_str(hard)}",
                  value=(soft, hard))


def _prot(m, s: str) -> int:
    prot = 0
    for ch in s:
        if ch not in "rwx":
            raise CommandError(f"prot: {s!r} is not made of r, w, x")
        prot |= {"r": PROT_READ, "w": PROT_WRITE, "x": PROT_EXEC}[ch]
    return prot


@command("mmap", "map memory; prints the address", Spec(
    PID, Arg("SIZE", positive_size, "size"), Opt("file", text, "NAME"),
    Opt("driver", text, "NAME", "driver"), Opt("prot", _prot, "rw"), Flag("shared"),
    Flag("noreserve"), Flag("hugetlb"), Flag("huge-1g")))
def _mmap(m, a, bg):
    shared = "shared" in a.flags or a.driver is not None
    flags = MAP_SHARED if shared else MAP_PRIVATE
    if "noreserve" in a.flags:
        flags |= MAP_NORESERVE  # no overcommit check, as with vm.overcommit_memory=0
    if a.file is None and a.driver is None:
        flags |= MAP_ANONYMOUS
    if "hugetlb" in a.flags or "huge-1g" in a.flags:
        flags |= MAP_HUGETLB  # huge pages from the hugetlb pools (`hugepages NODE N`)
    if "huge-1g" in a.flags:
        flags |= MAP_HUGE_1GB  # (mmap(2)'s MAP_HUGE_1GB: the 1 GiB pools)
    prot = PROT_READ | PROT_WRITE if a.prot is None else a.prot
    addr_ = m.mmap(a.pid, a.size, prot, flags, file=a.file, driver=a.driver)
    return Result(True, f"{addr_:#x}", value=addr_)


@command("munmap", "unmap a range", Spec(PID, RANGE))
def _munmap(m, a, bg):
    m.munmap(a.pid, *a.range)
    return "unmapped"


@command("touch", "fault in / write a range from a CPU on node N", Spec(
    PID, RANGE, Opt("node", node, "N", "node"), Flag("read")))
def _touch(m, a, bg):
    m.touch(a.pid, *a.range, write="read" not in a.flags, node=a.node)
    return "touched"


@command("read", "the content value of the page at ADDR", Spec(PID, Arg("ADDR", addr, "addr")))
def _read(m, a, bg):
    v = m.read(a.pid, a.addr)
    return Result(True, f"{v:#010x}", value=v)


@command("set_mempolicy", "set a process's task policy", Spec(
    PID, Arg("POLICY", policy, "policy")))
def _set_mempolicy(m, a, bg):
    m.set_mempolicy(a.pid, *a.policy)
    return "policy set"


@command("get_mempolicy", "a process's task policy, or the policy of the VMA at ADDR",
         Spec(PID, Arg("ADDR", addr, "addr", optional=True)))
def _get_mempolicy(m, a, bg):
    if a.addr is not None:
        mode, ns = m.get_mempolicy(a.pid, a.addr, MPOL_F_ADDR)
    else:
        mode, ns = m.get_mempolicy(a.pid)
    base = mode & 0xFF
    return Result(True, f"{MODE_NAMES.get(base, base)} {nodes_str(ns)}".strip(),
                  value=(mode, ns))


@command("mlock", "lock a range in memory (VM_LOCKED); onfault: mlock2(MLOCK_ONFAULT), "
         "pages lock as they fault", Spec(PID, RANGE, Words("onfault")))
def _mlock(m, a, bg):
    if "onfault" in a.words:
        m.mlock2(a.pid, *a.range, MLOCK_ONFAULT)
    else:
        m.mlock(a.pid, *a.range)
    return "mlock done"


@command("munlock", "unlock a range", Spec(PID, RANGE))
def _munlock(m, a, bg):
    m.munlock(a.pid, *a.range)
    return "munlock done"


@command("mlockall", "lock all of a process's memory (onfault: MCL_ONFAULT)",
         Spec(PID, Words("current", "future", "onfault")))
def _mlockall(m, a, bg):
    words = a.words - {"onfault"} or {"current"}
    m.mlockall(a.pid, (MCL_CURRENT if "current" in words else 0) |
               (MCL_FUTURE if "future" in words else 0) |
               (MCL_ONFAULT if "onfault" in a.words else 0))
    return "mlockall done"


@command("munlockall", "unlock all of a process's memory", Spec(PID))
def _munlockall(m, a, bg):
    m.munlockall(a.pid)
    return "munlockall done"


@command("pin", "long-term pin a range (an RDMA registration)", Spec(
    PID, RANGE, Opt("driver", text, "NAME", "driver")))
def _pin(m, a, bg):
    return f"{m.pin(a.pid, *a.range, a.driver)} page(s) pinned"


@command("unpin", "drop long-term pins", Spec(PID, RANGE, Opt("driver", text, "NAME", "driver")))
def _unpin(m, a, bg):
    return f"{m.unpin(a.pid, *a.range, a.driver)} page(s) unpinned"


@command("hook", "switch a driver's vm_ops->migrate (historical: 2.6.18 to ~3.17, no in-tree "
         "user)", Spec(Arg("DRIVER", text, "driver"), Arg("on|off", choice("on", "off"), name="state")))
def _hook(m, a, bg):
    m.set_migrate_hook(a.driver, a.state == "on")
    return f"{a.driver}: migrate hook {a.state}"


def _era_name(m, s: str) -> str:
    get_era(s)  # ValueError: a one-line error naming the eras
    return s


@command("era", "show or set the kernel era", Spec(
    Arg("modern|2.6.18|2006|2.6.17", _era_name, "era", optional=True, name="era")))
def _era(m, a, bg):
    if a.era is not None:
        m.era = a.era
    return f"era {m.era.name}"
