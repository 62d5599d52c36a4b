"""Node masks and policy strings as users and numactl write them ("0-2,5",
"interleave:0-3"), and their printed form (bitmap_print_to_pagebuf)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .constants import (
    EINVAL,
    MAX_NUMNODES,
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_INTERLEAVE,
    MPOL_LOCAL,
    MPOL_PREFERRED,
    MPOL_PREFERRED_MANY,
    MPOL_WEIGHTED_INTERLEAVE,
    oserror,
)


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


def node_remap(old: tuple, new: tuple, s: int) -> int:
    """node_remap(): the n-th set bit of old maps to the (n mod w)-th set bit of new."""
    if s not in old or not new:
        return s
    return new[old.index(s) % len(new)]


def node_mask(nodes: Iterable[int]) -> np.ndarray:
    """A boolean array over node ids 0..MAX_NUMNODES-1: True for the given nodes (for
    testing the node of many pages at once)."""
    mask = np.zeros(MAX_NUMNODES, bool)
    mask[[n for n in nodes if 0 <= n < MAX_NUMNODES]] = True
    return mask
