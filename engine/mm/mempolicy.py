"""Memory policies: validation, placement at fault time (every mode, the exact
interleave formulas), mbind, set_mempolicy, get_mempolicy and migrate_pages(2)
(mm/mempolicy.c)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..constants import (
    EFAULT,
    EINVAL,
    EIO,
    ENOMEM,
    EPERM,
    ESRCH,
    K_ANON,
    K_FILE,
    MAX_NUMNODES,
    MODE_NAMES,
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_F_ADDR,
    MPOL_F_MEMS_ALLOWED,
    MPOL_F_NODE,
    MPOL_F_NUMA_BALANCING,
    MPOL_F_RELATIVE_NODES,
    MPOL_F_STATIC_NODES,
    MPOL_INTERLEAVE,
    MPOL_LOCAL,
    MPOL_MAX,
    MPOL_MF_MOVE,
    MPOL_MF_MOVE_ALL,
    MPOL_MF_STRICT,
    MPOL_MF_VALID,
    MPOL_MODE_FLAGS,
    MPOL_PREFERRED,
    MPOL_PREFERRED_MANY,
    MPOL_WEIGHTED_INTERLEAVE,
    oserror,
)
from ..vec import unique_frames

if TYPE_CHECKING:  # pragma: no cover
    from ..machine import Machine
    from .memory import VMA, Process


# ---------------------------------------------------------------- node lists

def parse_nodes(x, what: str = "nodemask") -> tuple[int, ...]:
    """A nodemask from an iterable of ints or a numactl-style string "0-2,5".
    A node at or above MAX_NUMNODES is EINVAL, as get_nodes() answers."""
    if x is None:
        return ()
    if isinstance(x, int):
        x = (x,)
    nodes: set[int] = set()
    if isinstance(x, str):
        s = x.strip()
        if s in ("", "none"):
            return ()
        for part in s.split(","):
            part = part.strip()
            try:
                if "-" in part[1:]:
                    a, b = part.split("-", 1) if not part.startswith("-") else (part, None)
                    lo, hi = int(a), int(b)
                    if hi < lo:
                        raise ValueError
                    if hi >= MAX_NUMNODES:
                        raise oserror(EINVAL, f"{what}: node {hi} is not below "
                                              f"MAX_NUMNODES ({MAX_NUMNODES})")
                    nodes.update(range(lo, hi + 1))
                else:
                    nodes.add(int(part))
            except ValueError:
                raise oserror(EINVAL, f"{what}: {x!r} is not a node list like 0-2,5") from None
    elif isinstance(x, Iterable):
        for n in x:
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
                raise oserror(EINVAL, f"{what}: {n!r} is not a node number")
            nodes.add(int(n))
    else:
        raise oserror(EINVAL, f"{what}: {x!r} is not a node list")
    for n in nodes:
        if n < 0 or n >= MAX_NUMNODES:
            raise oserror(EINVAL, f"{what}: node {n} is outside 0..{MAX_NUMNODES - 1} "
                                  f"(MAX_NUMNODES)")
    return tuple(sorted(nodes))


def nodes_str(nodes: Iterable[int]) -> str:
    """0,1,2,5 -> "0-2,5" (bitmap_print_to_pagebuf list format)."""
    ns = sorted(set(nodes))
    out = []
    i = 0
    while i < len(ns):
        j = i
        while j + 1 < len(ns) and ns[j + 1] == ns[j] + 1:
            j += 1
        out.append(str(ns[i]) if i == j else f"{ns[i]}-{ns[j]}")
        i = j + 1
    return ",".join(out)


# ---------------------------------------------------------------- policies

@dataclass(frozen=True)
class Policy:
    mode: int
    nodes: tuple[int, ...] = ()
    flags: int = 0  # MPOL_F_STATIC_NODES / RELATIVE_NODES / NUMA_BALANCING
    user_nodes: tuple[int, ...] = ()

    def describe(self, era_formats: str = "modern") -> str:
        """The policy string of /proc/PID/numa_maps (mpol_to_str)."""
        if self.mode == MPOL_DEFAULT:
            return "default"
        if era_formats == "2006":
            name = {MPOL_PREFERRED: "prefer", MPOL_BIND: "bind", MPOL_INTERLEAVE: "interleave"}
            return f"{name.get(self.mode, MODE_NAMES[self.mode])}={nodes_str(self.nodes)}"
        if self.mode == MPOL_LOCAL:
            return "local"
        s = MODE_NAMES[self.mode]
        fl = []
        if self.flags & MPOL_F_STATIC_NODES:
            fl.append("static")
        if self.flags & MPOL_F_RELATIVE_NODES:
            fl.append("relative")
        if self.flags & MPOL_F_NUMA_BALANCING:
            fl.append("balancing")
        if fl:
            s += "=" + "|".join(fl)
        return f"{s}:{nodes_str(self.nodes)}"


def parse_policy_string(s: str) -> tuple[int, tuple[int, ...]]:
    """"interleave:0-3", "bind:1", "prefer:2", "local", "default",
    "preferred-many:0-1", "weighted-interleave:0-2" -> (mode, nodes)."""
    s = s.strip()
    name, _, rest = s.partition(":")
    name = name.strip().lower().replace("_", "-").replace(" ", "-")
    modes = {"default": MPOL_DEFAULT, "prefer": MPOL_PREFERRED, "preferred": MPOL_PREFERRED,
             "bind": MPOL_BIND, "membind": MPOL_BIND, "interleave": MPOL_INTERLEAVE,
             "local": MPOL_LOCAL, "localalloc": MPOL_LOCAL,
             "prefer-many": MPOL_PREFERRED_MANY, "preferred-many": MPOL_PREFERRED_MANY,
             "prefer-(many)": MPOL_PREFERRED_MANY,
             "weighted-interleave": MPOL_WEIGHTED_INTERLEAVE,
             "weighted": MPOL_WEIGHTED_INTERLEAVE}
    if name not in modes:
        raise ValueError(f"unknown policy {name!r} (default, local, prefer:N, bind:NODES, "
                         f"interleave:NODES, preferred-many:NODES, weighted-interleave:NODES)")
    return modes[name], parse_nodes(rest, "policy nodes") if rest else ()


def sanitize_mode(m: Machine, mode: int) -> tuple[int, int]:
    """sanitize_mpol_flags(): split mode flags off and check them."""
    if not isinstance(mode, (int, np.integer)) or isinstance(mode, bool):
        raise oserror(EINVAL, f"mode {mode!r} is not a number")
    mode = int(mode)
    flags = mode & MPOL_MODE_FLAGS
    lmode = mode & ~MPOL_MODE_FLAGS
    if lmode < 0 or lmode >= MPOL_MAX or lmode not in m.era.policy_modes:
        raise oserror(EINVAL, f"mode {mode} is not a policy mode of kernel {m.era.name}")
    if (flags & MPOL_F_STATIC_NODES) and (flags & MPOL_F_RELATIVE_NODES):
        raise oserror(EINVAL, "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES together")
    if flags & MPOL_F_NUMA_BALANCING and lmode not in (MPOL_BIND, MPOL_PREFERRED_MANY):
        raise oserror(EINVAL, "MPOL_F_NUMA_BALANCING is only valid with MPOL_BIND or "
                              "MPOL_PREFERRED_MANY")
    return lmode, flags


def mpol_new(m: Machine, p: Process, mode: int, flags: int, nodes: tuple[int, ...]
             ) -> Policy | None:
    """mpol_new() + mpol_set_nodemask(): None stands for MPOL_DEFAULT."""
    if mode == MPOL_DEFAULT:
        if nodes:
            raise oserror(EINVAL, "MPOL_DEFAULT takes an empty nodemask")
        return None
    if mode == MPOL_PREFERRED and not nodes:
        if flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES):
            raise oserror(EINVAL, "MPOL_PREFERRED with an empty mask cannot take "
                                  "STATIC/RELATIVE flags")
        # an empty preferred mask means local allocation
        return Policy(MPOL_LOCAL if m.era.get_mempolicy_reports_local else MPOL_PREFERRED,
                      (), flags | (0 if m.era.get_mempolicy_reports_local else 1 << 16))
    if mode == MPOL_LOCAL:
        if nodes or flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES):
            raise oserror(EINVAL, "MPOL_LOCAL takes an empty nodemask and no mode flags")
        return Policy(MPOL_LOCAL)
    if not nodes:
        raise oserror(EINVAL, f"{MODE_NAMES[mode]} needs a non-empty nodemask")
    allowed = sorted(set(p.mems_allowed) & set(m.memory_nodes()))
    if flags & MPOL_F_RELATIVE_NODES:
        # mpol_relative_nodemask(): fold onto the allowed set
        w = len(allowed)
        eff = tuple(sorted({allowed[n % w] for n in nodes})) if w else ()
    else:
        eff = tuple(n for n in nodes if n in allowed)
    if not eff:
        raise oserror(EINVAL, f"nodes {nodes_str(nodes)} have no memory in the cpuset "
                              f"(mems_allowed {nodes_str(allowed)})")
    user = nodes if flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) else ()
    if mode == MPOL_PREFERRED:
        eff = (eff[0],)  # only the first node of the mask is kept
    return Policy(mode, eff, flags, user)


def effective_policy(p: Process, v: VMA | None) -> Policy | None:
    if v is not None and v.policy is not None:
        return v.policy
    return p.policy


def _local_pref(m: Machine, cpu: int) -> int:
    """First node with memory in the zonelist of the CPU's node."""
    from .page_alloc import zonelist

    zl = zonelist(m, cpu)
    return zl[0] if zl else cpu


def _bind_order(m: Machine, pol: Policy, cpu: int, allowed) -> list[int]:
    from .page_alloc import zonelist

    mask = [n for n in pol.nodes if n in allowed]
    if m.era.bind_lowest_first:
        return sorted(mask)  # before 2.6.26: lowest node id first
    return zonelist(m, cpu, set(mask))  # since 2.6.26: nearest to the CPU first


def interleave_nodes(m: Machine, pol: Policy, ilx: np.ndarray) -> np.ndarray:
    """The interleave formula: node = the (ilx mod w)-th node of the mask; weighted:
    t = ilx mod sum(weights), walk the nodes subtracting weights."""
    nodes = np.asarray(pol.nodes, dtype=np.int64)
    if pol.mode == MPOL_WEIGHTED_INTERLEAVE:
        w = np.asarray([m.il_weight(int(n)) for n in nodes], dtype=np.int64)
        cum = np.cumsum(w)
        t = ilx % int(cum[-1])
        return nodes[np.searchsorted(cum, t, side="right")]
    return nodes[ilx % len(nodes)]


def policy_nodes_for_fault(m: Machine, p: Process, v: VMA, offs: np.ndarray, cpu: int,
                           pol: Policy | None = ..., ) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray | None]:
    """Intended node per page for a fault at VMA offsets `offs`:
    (targets, preferred-for-numastat, interleave flags or None)."""
    if pol is ...:
        pol = effective_policy(p, v)
    k = offs.size
    mode = MPOL_DEFAULT if pol is None else pol.mode
    if mode in (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE):
        # ilx = vm_pgoff + (addr - vm_start) >> PAGE_SHIFT; anonymous vm_pgoff = vm_start >> shift
        if v.backing is None or v.pfnmap:
            ilx = (v.start >> m.page_shift) + offs
        else:
            ilx = v.pgoff + offs
        t = interleave_nodes(m, pol, ilx.astype(np.int64))
        return t, t, np.ones(k, bool)
    allowed = p.mems_allowed
    if mode == MPOL_BIND:
        order = _bind_order(m, pol, cpu, allowed)
        n = order[0] if order else cpu
    elif mode == MPOL_PREFERRED and pol.nodes:
        n = pol.nodes[0]
    elif mode == MPOL_PREFERRED_MANY:
        from .page_alloc import zonelist

        zl = zonelist(m, cpu, set(pol.nodes) & set(allowed))
        n = zl[0] if zl else _local_pref(m, cpu)
    else:
        n = _local_pref(m, cpu)
    t = np.full(k, n, np.int64)
    return t, t, None


def task_alloc_nodes(m: Machine, p: Process, k: int, cpu: int):
    """Allocations with no VMA (page cache): the task policy; interleave uses the
    per-task cursor (next node after the previous one, wrapping)."""
    pol = p.policy
    if pol is not None and pol.mode in (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE):
        nodes = np.asarray(pol.nodes, dtype=np.int64)
        start = p.il_next
        seq = (start + np.arange(k)) % len(nodes)
        p.il_next = int((start + k) % len(nodes))
        t = nodes[seq]
        return t, t, np.ones(k, bool)
    from .memory import VMA

    dummy = VMA(start=0, end=0, flags=0, pte=np.empty(0, np.int64))
    return policy_nodes_for_fault(m, p, dummy, np.zeros(k, np.int64), cpu, pol)


def fallback_nodes(m: Machine, p: Process, v: VMA | None, target: int, cpu: int) -> list[int]:
    """The node order an allocation for `target` walks: the target's zonelist within
    the cpuset (BIND: only mask nodes; PREFERRED_MANY: mask nodes first)."""
    from .page_alloc import zonelist

    pol = effective_policy(p, v) if v is not None else p.policy
    allowed = set(p.mems_allowed)
    if pol is not None and pol.mode == MPOL_BIND:
        order = _bind_order(m, pol, cpu, allowed)
        if target in order:
            order = [target] + [n for n in order if n != target]
        return order
    if pol is not None and pol.mode == MPOL_PREFERRED_MANY:
        first = zonelist(m, cpu, set(pol.nodes) & allowed)
        return first + [n for n in zonelist(m, target, allowed) if n not in first]
    return zonelist(m, target, allowed)


# ---------------------------------------------------------------- syscalls

def set_mempolicy(m: Machine, pid: int, mode: int, nodemask=(), *, caller=None) -> None:
    lmode, flags = sanitize_mode(m, mode)
    nodes = parse_nodes(nodemask)
    p = m.task(pid, caller)
    if not p.has_mm:
        raise oserror(EINVAL, f"pid {p.pid} is a kernel thread")
    pol = mpol_new(m, p, lmode, flags, nodes)
    p.policy = pol
    p.il_next = 0  # set_mempolicy(INTERLEAVE) restarts the task's round-robin cursor


def get_mempolicy(m: Machine, pid: int, addr: int | None = None, flags: int = 0, *,
                  caller=None):
    if flags & ~(MPOL_F_NODE | MPOL_F_ADDR | MPOL_F_MEMS_ALLOWED):
        raise oserror(EINVAL, f"get_mempolicy: unknown flags {flags:#x}")
    p = m.task(pid, caller)
    if flags & MPOL_F_MEMS_ALLOWED:
        if flags & (MPOL_F_NODE | MPOL_F_ADDR):
            raise oserror(EINVAL, "MPOL_F_MEMS_ALLOWED cannot be combined with NODE or ADDR")
        return 0, tuple(sorted(p.mems_allowed))
    if flags & MPOL_F_ADDR:
        if addr is None:
            raise oserror(EFAULT, "get_mempolicy: MPOL_F_ADDR with a NULL address")
        v = p.find_vma(int(addr))
        if v is None:
            raise oserror(EFAULT, f"get_mempolicy: {int(addr):#x} is not in any VMA")
        pol = v.policy  # the VMA's own policy: no fallback to the task policy
    else:
        if addr not in (None, 0):
            raise oserror(EINVAL, "get_mempolicy: an address needs MPOL_F_ADDR")
        pol = p.policy
    if flags & MPOL_F_NODE:
        if flags & MPOL_F_ADDR:
            # the node of the page at addr, faulted in as a read (GUP): an untouched
            # anonymous page gives the zero page's node
            off = (int(addr) - v.start) >> m.page_shift
            if v.pte[off] < 0:
                m.touch_vma(p, v, off, off + 1, write=False, node=p.node)
            pfn = int(v.pte[off])
            return int(m.node_of(np.array([pfn]))[0])
        if pol is not None and pol.mode in (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE):
            return int(pol.nodes[p.il_next % len(pol.nodes)])
        raise oserror(EINVAL, "MPOL_F_NODE without MPOL_F_ADDR needs an interleave task "
                              "policy")
    if pol is None:
        return MPOL_DEFAULT, ()
    mode = pol.mode | (pol.flags & MPOL_MODE_FLAGS)
    nodes = pol.user_nodes if pol.user_nodes else pol.nodes
    return mode, tuple(nodes)


def mbind(m: Machine, pid: int, addr: int, length: int, mode: int, nodemask=(),
          flags: int = 0, *, caller=None, _chunk=None):
    """mbind(2) (modern do_mbind), returns None; errors as OSError."""
    return m.run(mbind_gen(m, pid, addr, length, mode, nodemask, flags, caller=caller))


def check_mbind_call(m: Machine, pid, addr, length, mode, nodemask, flags, caller):
    """do_mbind()'s checks, in its order. None for len 0 (success before the per-mode
    mask checks); else (process, addr, end, flags, mode, nodes, new policy)."""
    from .memory import range_holes

    lmode, mflags = sanitize_mode(m, mode)
    nodes = parse_nodes(nodemask)
    if flags & ~MPOL_MF_VALID:
        raise oserror(EINVAL, f"mbind: flags {flags:#x} outside STRICT|MOVE|MOVE_ALL")
    cred = m.credentials(caller)
    if flags & MPOL_MF_MOVE_ALL and not cred.cap_sys_nice:
        raise oserror(EPERM, "mbind: MPOL_MF_MOVE_ALL needs CAP_SYS_NICE")
    addr = int(addr)
    if addr & (m.page_size - 1):
        raise oserror(EINVAL, f"mbind: address {addr:#x} is not page aligned")
    if lmode == MPOL_DEFAULT:
        flags &= ~MPOL_MF_STRICT
    length = int(length)
    end = addr + m.page_align(length) if length >= 0 else addr + length
    if end < addr:
        raise oserror(EINVAL, "mbind: range wraps around")
    if end == addr:
        return None
    p = m.task(pid, caller)
    if not p.has_mm:
        raise oserror(EINVAL, f"pid {p.pid} is a kernel thread")
    new = mpol_new(m, p, lmode, mflags, nodes)
    # queue_pages_range(): holes are EFAULT (except for MPOL_DEFAULT)
    if lmode != MPOL_DEFAULT and range_holes(p, addr, end):
        raise oserror(EFAULT, f"mbind: [{addr:#x}, {end:#x}) has unmapped holes")
    return p, addr, end, flags, lmode, nodes, new


def mbind_gen(m: Machine, pid, addr, length, mode, nodemask=(), flags=0, *, caller=None,
              chunk=None, job=None):
    from .migrate import migrate_pairs_gen

    call = check_mbind_call(m, pid, addr, length, mode, nodemask, flags, caller)
    if call is None:
        return None  # len 0: success before the per-mode mask checks
    p, addr, end, flags, lmode, nodes, new = call
    mask = set(nodes)
    move = bool(flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL))
    strict = bool(flags & MPOL_MF_STRICT)
    f = m.f
    queued_pfn: list[np.ndarray] = []
    queued_addr: list[tuple] = []
    nr_failed = 0
    for v in m.vmas_in_range(p, addr, end, split=False):
        lo = max(v.start, addr)
        hi = min(v.end, end)
        o0 = (lo - v.start) >> m.page_shift
        o1 = (hi - v.start) >> m.page_shift
        migratable = m.vma_migratable(v, "mbind")
        if not migratable and not strict:
            continue  # queue_pages_test_walk() skips it
        pte = v.pte[o0:o1]
        offs = np.arange(o0, o1)
        present = (pte >= 0) & (pte != m.zero_pfn)
        pfn = pte[present]
        offs = offs[present]
        if v.pfnmap:
            kinds_ok = np.ones(pfn.size, bool)
        else:
            kinds_ok = np.isin(f.kind[pfn], (K_ANON, K_FILE))
        pfn, offs = pfn[kinds_ok], offs[kinds_ok]
        nid = m.node_of(pfn)
        misplaced = ~np.isin(nid, list(mask)) if mask else np.ones(pfn.size, bool)
        pfn, offs = pfn[misplaced], offs[misplaced]
        if pfn.size == 0:
            continue
        if not move or not migratable:
            nr_failed += pfn.size
            if strict and not move:
                # first misplaced page: EIO, and the policy is not applied
                raise oserror(EIO, f"mbind: MPOL_MF_STRICT and {pfn.size} page(s) of "
                                   f"[{addr:#x}, {end:#x}) are on other nodes")
            continue
        shared = f.mapcount[pfn] > 1
        if not flags & MPOL_MF_MOVE_ALL:
            keep = ~shared  # shared pages under MOVE are skipped, not counted
            pfn, offs = pfn[keep], offs[keep]
        if pfn.size:
            queued_pfn.append(pfn)
            queued_addr.append((v, offs))
    if job is not None:
        yield 0  # every error before the policy is applied has been raised
    # apply the policy to every VMA in the range (split at the bounds, merge after)
    for v in m.vmas_in_range(p, addr, end, split=True):
        v.policy = new
    m.merge_vmas(p)
    if queued_pfn:
        pfns = np.concatenate(queued_pfn)
        # targets: the new policy at each page's own address (the exact interleave
        # slot a fault would use); VMAs may have been split or merged meanwhile, so
        # each page's VMA is looked up again
        tgts = []
        first = queued_addr[0][0].start
        for vv, offs in queued_addr:
            addrs = vv.start + (offs.astype(np.int64) << m.page_shift)
            tv = p.find_vma(int(addrs[0]))
            t, _, _ = policy_nodes_for_fault(m, p, tv, (addrs - tv.start) >> m.page_shift,
                                             p.node, new)
            if m.era.mbind_first_vma_only and vv.start != first:
                t = _first_vma_only_targets(m, p, addr, new, t)
            tgts.append(t)
        targets = np.concatenate(tgts)
        allowed = set(new.nodes) if new is not None and new.mode == MPOL_BIND else None
        if job is not None:
            job.total = int(pfns.size)
        res = yield from migrate_pairs_gen(
            m, pfns, targets, reason="mbind", strict_node=False, allowed=allowed,
            cpu=p.node, chunk=chunk, job=job)
        nr_failed += int((res < 0).sum())
    if nr_failed and strict:
        raise oserror(EIO, f"mbind: MPOL_MF_STRICT and {nr_failed} page(s) could not be "
                           f"moved")
    return None


def _first_vma_only_targets(m: Machine, p: Process, addr: int, new: Policy | None,
                            t: np.ndarray) -> np.ndarray:
    """2.6.18's new_vma_page() asked page_address_in_vma() of the range's first VMA
    only: for a page of a later VMA that is -EFAULT, and alloc_page_vma() computed the
    interleave slot from that bogus address, so every such page lands on one node."""
    if new is None or new.mode not in (MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE):
        return t  # other policies do not depend on the address
    v0 = p.find_vma(addr) or next(v for v in p.vmas if v.end > addr)
    bogus = (1 << 64) - EFAULT  # (unsigned long)-EFAULT
    ilx = (v0.start >> m.page_shift) + (((bogus - v0.start) % (1 << 64)) >> m.page_shift)
    node = interleave_nodes(m, new, np.array([ilx % (1 << 62)], dtype=np.int64))[0]
    return np.full(t.size, node, np.int64)


def node_remap(old: tuple, new: tuple, s: int) -> int:
    """node_remap(): the n-th set bit of old maps to the (n mod w)-th set bit of new."""
    if s not in old or not new:
        return s
    return new[old.index(s) % len(new)]


def migrate_pages_pairs(m: Machine, old: tuple, new: tuple) -> list[tuple[int, int]]:
    """do_migrate_pages()'s pair order: vacate before fill; the modern rule skips a
    source that is also a destination when the weights differ."""
    tmp = list(old)
    pairs = []
    while tmp:
        s_found = d_found = None
        for s in sorted(tmp):
            if m.era.remap_skip_dest_in_new and len(old) != len(new) and s in new:
                continue
            d = node_remap(old, new, s)
            if d == s:
                continue
            s_found, d_found = s, d
            if d not in tmp:
                break
        if s_found is None:
            break
        tmp.remove(s_found)
        pairs.append((s_found, d_found))
    return pairs


def check_migrate_pages_call(m: Machine, pid: int, old_nodes, new_nodes, caller):
    """kernel_migrate_pages()'s checks, in its order: masks (EINVAL), the task
    (ESRCH), ptrace access (EPERM), new nodes outside the target's cpuset without
    CAP_SYS_NICE (EPERM), new & the caller's cpuset empty (EINVAL), no mm (EINVAL).
    Returns (process, old, new, caller credentials)."""
    old = parse_nodes(old_nodes, "old_nodes")
    new = parse_nodes(new_nodes, "new_nodes")
    p = m.lookup(pid, caller)
    if p is None:
        raise oserror(ESRCH, f"migrate_pages: no process {pid}")
    cred = m.credentials(caller)
    m.check_access(cred, p, "migrate_pages")
    if not set(new) <= set(p.mems_allowed) and not cred.cap_sys_nice:
        raise oserror(EPERM, f"migrate_pages: nodes {nodes_str(new)} are outside pid "
                             f"{p.pid}'s cpuset ({nodes_str(p.mems_allowed)})")
    new = tuple(n for n in new if n in cred.mems_allowed)
    if not new:
        raise oserror(EINVAL, "migrate_pages: no destination node left in the caller's cpuset")
    if not p.has_mm:
        raise oserror(EINVAL, f"migrate_pages: pid {p.pid} has no mm (kernel thread)")
    return p, old, new, cred


def migrate_pages_syscall_gen(m: Machine, pid: int, old_nodes, new_nodes, *, caller=None,
                              chunk=None, job=None):
    """migrate_pages(2): checks in kernel_migrate_pages() order, then one node pair at
    a time. Returns the number of pages not moved."""
    from .migrate import migrate_pairs_gen

    p, old, new, cred = check_migrate_pages_call(m, pid, old_nodes, new_nodes, caller)
    move_all = cred.cap_sys_nice
    if job is not None:
        yield 0  # the call's checks are done: Machine.start() returns here
    failed = 0
    if m.era.vm_ops_migrate_hook:
        # 2.6.18 migrate_vmas(): vm_ops->migrate of every VMA first, abort on error
        for v in list(p.vmas):
            if v.pfnmap:
                drv = m.driver_of(v)
                if drv is not None and drv.hook_enabled:
                    drv.migrate_hook(m, v, old, new)
    f = m.f

    def pages_on(node_set):
        out = []
        for v in p.vmas:
            if not m.vma_migratable(v, "migrate_pages"):
                continue  # skipped and not counted
            pte = v.pte
            pfn = pte[(pte >= 0) & (pte != m.zero_pfn)]
            pfn = pfn[np.isin(f.kind[pfn], (K_ANON, K_FILE))]
            pfn = pfn[np.isin(m.node_of(pfn), list(node_set))]
            if not move_all:
                pfn = pfn[f.mapcount[pfn] <= 1]  # shared pages skipped silently
            out.append(pfn)
        return unique_frames(np.concatenate(out), m.nr_frames) if out else np.empty(0, np.int64)

    if job is not None:
        job.total = int(pages_on(old).size)
    for s, d in migrate_pages_pairs(m, old, new):
        pfns = pages_on((s,))
        if pfns.size == 0:
            continue
        res = yield from migrate_pairs_gen(
            m, pfns, np.full(pfns.size, d, np.int64), reason="syscall",
            strict_node=m.era.strict_target_node, cpu=p.node, chunk=chunk, job=job,
            fail_on_enomem=True, unique=True)
        if (res == -ENOMEM).any():
            # migrate_to_node() < 0 aborts do_migrate_pages() with that error
            raise oserror(ENOMEM, f"migrate_pages: node {d} has no free page left")
        failed += int((res < 0).sum())
    return min(failed, 2**31 - 1)
