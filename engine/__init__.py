"""numacon's engine: a Linux-faithful NUMA machine and its page-migration machinery.
Pure Python + numpy; no UI imports."""

from .constants import (
    MADV_HUGEPAGE,
    MADV_NOHUGEPAGE,
    MAP_ANONYMOUS,
    MAP_HUGE_1GB,
    MAP_HUGE_2MB,
    MAP_HUGETLB,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAX_NUMNODES,
    MCL_CURRENT,
    MCL_FUTURE,
    MCL_ONFAULT,
    MLOCK_ONFAULT,
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
    MPOL_MF_MOVE,
    MPOL_MF_MOVE_ALL,
    MPOL_MF_STRICT,
    MPOL_PREFERRED,
    MPOL_PREFERRED_MANY,
    MPOL_WEIGHTED_INTERLEAVE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    RLIM_INFINITY,
)
from .machine import InvariantError, Machine
from .machines.description import DescriptionError
from .machines.snapshot import SaveError, load, save

__all__ = [
    "Machine", "InvariantError", "SaveError", "DescriptionError", "load", "save",
    "MADV_HUGEPAGE", "MADV_NOHUGEPAGE", "MAP_HUGETLB", "MAP_HUGE_2MB", "MAP_HUGE_1GB",
    "MAP_ANONYMOUS", "MAP_NORESERVE", "MAP_PRIVATE", "MAP_SHARED", "MAX_NUMNODES", "MCL_CURRENT", "MCL_FUTURE",
    "MCL_ONFAULT", "MLOCK_ONFAULT", "MPOL_BIND", "MPOL_DEFAULT", "MPOL_F_ADDR",
    "MPOL_F_MEMS_ALLOWED",
    "MPOL_F_NODE", "MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES",
    "MPOL_INTERLEAVE", "MPOL_LOCAL", "MPOL_MF_MOVE", "MPOL_MF_MOVE_ALL", "MPOL_MF_STRICT",
    "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE", "PROT_EXEC",
    "PROT_NONE", "PROT_READ", "PROT_WRITE", "RLIM_INFINITY",
]
