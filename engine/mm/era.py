"""Kernel eras: the behaviour switches that changed since the 2006 thread
(kernel-semantics.md section 10)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Era:
    name: str
    # 1. whole-call ENOENT when nothing was isolated (< 2.6.28)
    move_pages_empty_enoent: bool
    # 2. E2BIG for huge counts (2.6.18 - 2.6.28)
    move_pages_e2big: bool
    # 3. modern: consecutive same-node batches, lazy node validation, stop at first failing batch
    move_pages_batching: bool
    # 4. modern (>= 4.17): positive return, failed batch's statuses left unwritten
    move_pages_positive_return: bool
    # 5. status lookup rules: "2006" or "6.12"
    status_rules: str
    # 6. __GFP_THISNODE for migration targets (modern) vs fallback allocation (2006)
    strict_target_node: bool
    # 7. permission model: "uid" (<= 4.12) or "ptrace"
    perm_model: str
    # 8. migrate_pages: skip sources that are destinations when weights differ
    remap_skip_dest_in_new: bool
    # 9. mlocked pages: "eperm" (2.6.17), "move_pages_only" (2.6.18-20), "all" (>= 2.6.21)
    mlocked_migration: str
    # 10. vm_ops->migrate called by sys_migrate_pages (2.6.18 - 3.16)
    vm_ops_migrate_hook: bool
    # 11. migration passes: "2006" (10 passes, wait from pass 3) or "modern" (3 async + 7 sync)
    migrate_passes: str
    # 12. caller puts failed pages back (modern) vs engine disposes (2006)
    caller_putback: bool
    # 13. user-visible policy modes
    policy_modes: frozenset
    bind_lowest_first: bool
    # 14. mbind migration uses only the first VMA of the range (2006)
    mbind_first_vma_only: bool
    # 15. offline retry: "none" (2006, hot-add only), "timeout" (2.6.24-4.14), "signal" (modern)
    offline_retry: str
    # 16. anon_vma protection during migration: "mmap_sem", "rcu", "refcount"
    anon_vma_protection: str
    # 17. /proc formats: "2006" or "modern"
    proc_formats: str
    # 18. get_mempolicy reports MPOL_LOCAL (modern) or PREFERRED+empty (<= 5.13)
    get_mempolicy_reports_local: bool
    # move_pages(2) first appeared in 2.6.18; earlier eras answer ENOSYS
    has_move_pages: bool = True
    # --- round 2 (fork, rlimits, mlock2, maxnode, shared policies)
    # RLIMIT_MEMLOCK a process starts with: 8 MiB since 5.16; MLOCK_LIMIT = 8 pages in 2.6.18
    memlock_default_bytes: int = 8 << 20
    memlock_default_pages: int = 0
    # mlock() subtracts pages of the range already locked (count_mm_mlocked_page_nr, 4.9)
    mlock_discounts_locked: bool = True
    # mlock2() and MLOCK_ONFAULT / MCL_ONFAULT (4.4)
    has_mlock2: bool = True
    # 2.6.18's mlock_fixup() populated each VMA as it locked it; today populate runs after
    # every VMA is changed (a hole's ENOMEM leaves earlier VMAs locked but not populated)
    mlock_populates_per_vma: bool = False
    # get_mempolicy(MPOL_F_MEMS_ALLOWED) (2.6.24)
    has_mems_allowed_query: bool = True
    # get_mempolicy(): a nodemask shorter than nr_node_ids (today) / MAX_NUMNODES (2.6.18)
    # bits is EINVAL
    get_mempolicy_min_maxnode: str = "nr_node_ids"
    # get_nodes() checks whole words above MAX_NUMNODES (5.13's rewrite) / only the bits
    # below maxnode (2.6.18)
    get_nodes_whole_words: bool = True
    # mpol_set_nodemask() intersects the mask with cpuset mems & N_MEMORY (today); 2.6.18's
    # contextualize_policy()/mpol_check_policy() refused a mask outside them (EINVAL)
    policy_mask_intersects: bool = True
    # kernel_migrate_pages(): new &= the caller's cpuset mems, empty -> EINVAL (not in 2.6.18)
    migrate_pages_caller_mems: bool = True
    # fork(): the child's VMA gets an anon_vma of its own chained to the parent's
    # (anon_vma_chain, 2.6.34); 2.6.18 linked it into the parent's one anon_vma
    anon_vma_chains: bool = True
    # shmem interleave index biased by the inode number (shmem_get_pgoff_policy())
    shmem_ino_bias: bool = True
    # prlimit() (2.6.36): another process's limits; before it only setrlimit() of oneself
    has_prlimit: bool = True
    # transparent huge pages (2.6.38): /sys/kernel/mm/transparent_hugepage/enabled and
    # madvise(MADV_HUGEPAGE); 2.6.18 had hugetlbfs only
    has_thp: bool = True

    @property
    def is_modern(self) -> bool:
        return self.name == "modern"

    def memlock_default(self, page_size: int) -> int:
        """The RLIMIT_MEMLOCK (soft = hard) a process starts with, in bytes."""
        return self.memlock_default_bytes + self.memlock_default_pages * page_size


MODERN = Era(
    name="modern",
    move_pages_empty_enoent=False,
    move_pages_e2big=False,
    move_pages_batching=True,
    move_pages_positive_return=True,
    status_rules="6.12",
    strict_target_node=True,
    perm_model="ptrace",
    remap_skip_dest_in_new=True,
    mlocked_migration="all",
    vm_ops_migrate_hook=False,
    migrate_passes="modern",
    caller_putback=True,
    policy_modes=frozenset(range(7)),
    bind_lowest_first=False,
    mbind_first_vma_only=False,
    offline_retry="signal",
    anon_vma_protection="refcount",
    proc_formats="modern",
    get_mempolicy_reports_local=True,
)

V2_6_18 = Era(
    name="2.6.18",
    move_pages_empty_enoent=True,
    move_pages_e2big=True,
    move_pages_batching=False,
    move_pages_positive_return=False,
    status_rules="2006",
    strict_target_node=False,
    perm_model="uid",
    remap_skip_dest_in_new=False,
    mlocked_migration="move_pages_only",
    vm_ops_migrate_hook=True,
    migrate_passes="2006",
    caller_putback=False,
    policy_modes=frozenset(range(4)),
    bind_lowest_first=True,
    mbind_first_vma_only=True,
    offline_retry="none",
    anon_vma_protection="mmap_sem",
    proc_formats="2006",
    get_mempolicy_reports_local=False,
    memlock_default_bytes=0,
    memlock_default_pages=8,
    mlock_discounts_locked=False,
    has_mlock2=False,
    mlock_populates_per_vma=True,
    has_mems_allowed_query=False,
    get_mempolicy_min_maxnode="MAX_NUMNODES",
    get_nodes_whole_words=False,
    policy_mask_intersects=False,
    migrate_pages_caller_mems=False,
    anon_vma_chains=False,
    shmem_ino_bias=False,
    has_prlimit=False,
    has_thp=False,
)

V2_6_17 = Era(**{**V2_6_18.__dict__, "name": "2.6.17", "mlocked_migration": "eperm",
                 "vm_ops_migrate_hook": False, "has_move_pages": False})

ERAS = {"modern": MODERN, "2.6.18": V2_6_18, "2006": V2_6_18, "2.6.17": V2_6_17}


def get_era(name: str) -> Era:
    try:
        return ERAS[str(name)]
    except KeyError:
        raise ValueError(
            f"unknown era {name!r}: choose one of modern, 2.6.18 (alias 2006), 2.6.17"
        ) from None
