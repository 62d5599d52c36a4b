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


def parse_nodes(x, what: str = "nodemask", limit: int | None = MAX_NUMNODES
                ) -> tuple[int, ...]:
    """A nodemask from an iterable of ints or a numactl-style string "0-2,5".
    A node at or above `limit` (MAX_NUMNODES) is EINVAL, as get_nodes() answers for a
    mask read whole; limit None keeps every bit (get_nodes() then applies maxnode)."""
    if x is None:
        return ()
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        x = (x,)
    # a string range is bounded even without a limit: no mask has more bits than this
    cap = limit if limit is not None else MAX_MASK_BITS
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
                    if hi >= cap:
                        raise oserror(EINVAL, f"{what}: node {hi} is not below "
                                              f"{'MAX_NUMNODES' if limit else 'the largest mask'}"
                                              f" ({cap})")
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
        if n < 0 or (limit is not None and n >= limit):
            raise oserror(EINVAL, f"{what}: node {n} is outside 0..{(limit or cap) - 1} "
                                  f"(MAX_NUMNODES)")
    return tuple(sorted(nodes))


MAX_MASK_BITS = 1 << 20  # more bits than any maxnode get_nodes() accepts (PAGE_SIZE * 8)


def get_nodes(x, maxnode=None, *, page_size: int = 4096, whole_words: bool = True,
              what: str = "nodemask") -> tuple[int, ...]:
    """get_nodes(): the nodemask a call reads from user space, maxnode bits long.

    The kernel first decrements maxnode and reads that many bits (the historic
    off-by-one: libnuma passes nbits + 1). An empty mask stands for a NULL pointer and
    reads as empty; so does a decremented maxnode of 0. More than PAGE_SIZE * 8 bits is
    EINVAL (maxnode 0 wraps to ULONG_MAX: EINVAL too). Bits at or above maxnode - 1 are
    not read. A set bit between MAX_NUMNODES and the end of the mask is EINVAL; since
    5.13 the check reads whole 64-bit words above MAX_NUMNODES, so a bit beyond
    maxnode - 1 in the last word counts too (2.6.18 masked it off). maxnode None: as
    large as the mask (every bit is read)."""
    if maxnode is None:
        return parse_nodes(x, what)
    if isinstance(maxnode, bool) or not isinstance(maxnode, (int, np.integer)):
        raise TypeError(f"maxnode must be an integer, not {type(maxnode).__name__}")
    bits = set(parse_nodes(x, what, limit=None))
    nbits = (int(maxnode) - 1) % (1 << 64)  # unsigned long --maxnode
    if not bits or nbits == 0:
        return ()
    if nbits > page_size * 8:
        raise oserror(EINVAL, f"{what}: maxnode {maxnode} is more than PAGE_SIZE * 8 + 1 "
                              f"bits")
    if nbits > MAX_NUMNODES:
        end = -(-nbits // 64) * 64 if whole_words else nbits
        bad = [n for n in bits if MAX_NUMNODES <= n < end]
        if bad:
            raise oserror(EINVAL, f"{what}: node {min(bad)} is not below MAX_NUMNODES "
                                  f"({MAX_NUMNODES})")
    return tuple(sorted(n for n in bits if n < min(nbits, MAX_NUMNODES)))


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
