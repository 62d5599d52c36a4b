"""The view API's records: plain dataclasses the console reads (topology, status,
node, process and VMA rows, drivers, jobs)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ClockInfo", "DriverInfo", "JobInfo", "NodeInfo", "NodeStat", "ProcRow", "RefreshInfo", "Status", "Topology", "VmaRow", "ZoneInfo"]



@dataclass(frozen=True)
class NodeInfo:
    id: int
    cpus: tuple[int, ...]
    start_pfn: int
    spanned: int

    @property
    def end_pfn(self) -> int:
        return self.start_pfn + self.spanned


@dataclass(frozen=True)
class ZoneInfo:
    index: int  # position in Topology.zones
    node: int
    name: str
    start_pfn: int
    spanned: int

    @property
    def end_pfn(self) -> int:
        return self.start_pfn + self.spanned


@dataclass(eq=False)
class Topology:
    name: str
    page_size: int
    nr_frames: int
    nodes: tuple[NodeInfo, ...]
    zones: tuple[ZoneInfo, ...]
    distances: np.ndarray  # [i, j] between nodes[i] and nodes[j]

    @property
    def node_ids(self) -> list[int]:
        return [n.id for n in self.nodes]

    def zones_of(self, nid: int) -> list[ZoneInfo]:
        return [z for z in self.zones if z.node == nid and z.spanned > 0]

    def node(self, nid: int) -> NodeInfo:
        for n in self.nodes:
            if n.id == nid:
                return n
        raise KeyError(nid)


@dataclass(frozen=True)
class ClockInfo:
    mode: str  # fast | speed | paused
    speed: float  # simulated ns per real ns (mode speed)
    label: str


@dataclass(frozen=True)
class Status:
    name: str
    era: str
    has_move_pages: bool
    nodes: int
    memory_bytes: int
    nr_frames: int
    page_size: int
    clock_ns: int
    clock: ClockInfo
    jobs: int
    live: bool = False  # a live machine (the host), not a simulated one
    read_only: bool = False  # its actions are refused (the host without --allow-actions)


@dataclass(frozen=True)
class RefreshInfo:
    """How often a live machine is read (seconds between readings) and what it costs."""

    watched: float  # the processes the console shows or has selected
    others: float  # every other process
    system: float  # zones, counters, the process list
    frames: float  # the page-frame map
    cpu_share: float  # fraction of one CPU spent reading, lately
    text: str  # all of it in a sentence


@dataclass(frozen=True)
class NodeStat:
    id: int
    managed: int
    free: int
    wmark_min: int
    wmark_low: int
    wmark_high: int
    moved_out: int
    moved_in: int


@dataclass(frozen=True)
class DriverInfo:
    name: str
    kind: str  # uncached | framebuffer | rdma
    node: int
    npages: int
    hook: bool | None  # its vm_ops->migrate: None (has none), False (off), True (on)
    runs: np.ndarray = field(compare=False)  # (k, 2) PFN runs [start, end) of its region
    users: tuple[tuple[int, str], ...] = ()  # (pid, name) of processes mapping it

    @property
    def hook_text(self) -> str:
        return {None: "no migrate hook", False: "migrate hook off",
                True: "migrate hook on"}[self.hook]


@dataclass
class ProcRow:
    pid: int
    name: str
    uid: int
    node: int
    rss: int  # pages
    per_node: np.ndarray  # pages per node, topology order
    locality: float | None  # percent of RSS on the process's own node
    policy: str
    huge_pages: int = 0  # huge pages (THP and hugetlb folios) it maps


@dataclass
class VmaRow:
    start: int
    end: int
    kind: str  # anon | file | driver
    flags: str
    policy: str
    locked: bool
    shared_pages: int  # pages mapped by more than one process
    rss: int
    per_node: np.ndarray
    npages: int
    driver: str | None = None
    huge_pages: int = 0  # huge pages (THP and hugetlb folios) whose head it maps


@dataclass(frozen=True)
class JobInfo:
    id: int
    name: str
    done: int
    total: int
    line: str
