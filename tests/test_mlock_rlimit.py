"""RLIMIT_MEMLOCK and the mlock family as mm/mlock.c does them (issue 14 items 3, 5, 6;
issue 11 item 9): setrlimit/getrlimit per process, can_do_mlock()'s EPERM,
count_mm_mlocked_page_nr(), mlockall's whole-address-space check before any change,
mlock_future_ok()'s EAGAIN, apply_vma_lock_flags() and holes, mlock2(MLOCK_ONFAULT)
and MCL_ONFAULT, and where 2.6.18 differed."""

import errno

import pytest
from conftest import err, fingerprint, small

import engine
from engine import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MCL_CURRENT,
    MCL_FUTURE,
    MCL_ONFAULT,
    MLOCK_ONFAULT,
    MPOL_BIND,
    PROT_READ,
    RLIM_INFINITY,
)
from engine.commands import execute
from engine.constants import VM_LOCKED, VM_LOCKONFAULT, PG_mlocked
from engine.mm.mlock import locked_pages
from engine.views import MARK_MLOCKED, MachineView

MB = 1 << 20


def user(m, uid=1000, memlock=None, **kw):
    pid = m.spawn("u", uid=uid, **kw)
    if memlock is not None:
        m.setrlimit(pid, "memlock", memlock, memlock)
    return pid


def present(m, v) -> int:
    offs, _ = v.present()
    return int(offs.size)


def mlocked(m, v) -> int:
    _, pfns = v.present()
    return int(((m.f.flags[pfns] & PG_mlocked) != 0).sum())


# ---------------------------------------------------------------- setrlimit/getrlimit

def test_memlock_defaults_to_8_MiB_modern_and_8_pages_in_2_6_18():
    """MLOCK_LIMIT: 8 MiB since 5.16; 2.6.18's include/linux/resource.h: 8 * PAGE_SIZE."""
    m = small()
    assert m.getrlimit(m.spawn("a", uid=1000), "memlock") == (8 * MB, 8 * MB)
    m.era = "2.6.18"
    assert m.getrlimit(m.spawn("b", uid=1000), "memlock") == (8 * 4096, 8 * 4096)


def test_setrlimit_rules_of_do_prlimit():
    """do_prlimit(): soft > hard -> EINVAL; raising the hard limit without
    CAP_SYS_RESOURCE -> EPERM; check_prlimit_permission(): another uid -> EPERM."""
    m = small()
    a, b, other = user(m), user(m), user(m, uid=1001)
    root = m.spawn("root")
    assert err(lambda: m.setrlimit(a, "memlock", 16 * MB, 8 * MB)) == errno.EINVAL
    assert err(lambda: m.setrlimit(a, "memlock", 9 * MB, caller=a)) == errno.EINVAL  # > hard
    m.setrlimit(a, "memlock", 4 * MB, caller=a)  # lowering the soft limit: anyone
    assert m.getrlimit(a, "memlock", caller=a) == (4 * MB, 8 * MB)
    assert err(lambda: m.setrlimit(a, "memlock", 4 * MB, 16 * MB, caller=a)) == errno.EPERM
    m.setrlimit(a, "memlock", 1 * MB, 2 * MB, caller=b)  # same uid: prlimit allowed
    assert err(lambda: m.setrlimit(a, "memlock", 0, caller=other)) == errno.EPERM
    assert err(lambda: m.getrlimit(a, "memlock", caller=other)) == errno.EPERM
    with pytest.raises(OSError, match=f"getrlimit: uid 1001 may not read the limits of pid {a}"):
        m.getrlimit(a, "memlock", caller=other)  # prlimit(LSM_PRLIMIT_READ): a read
    m.setrlimit(a, "memlock", RLIM_INFINITY, RLIM_INFINITY, caller=root)  # CAP_SYS_RESOURCE
    assert m.getrlimit(a, "memlock") == (RLIM_INFINITY, RLIM_INFINITY)
    assert err(lambda: m.setrlimit(a, "nofile", 1)) == errno.EINVAL
    assert err(lambda: m.setrlimit(a, "memlock", -1)) == errno.EINVAL
    with pytest.raises(TypeError):
        m.setrlimit(a, "memlock", 1.5)
    m.era = "2.6.18"  # no prlimit() before 2.6.36: setrlimit() acts on the caller only
    assert err(lambda: m.setrlimit(a, "memlock", 0, caller=root)) == errno.EPERM
    m.setrlimit(a, "memlock", 0, caller=a)


def test_rlimit_command_and_description(tmp_path):
    """prlimit(RLIMIT_MEMLOCK) from the command language (soft above hard: EINVAL, as
    do_prlimit()), from a description's `memlock`, and kept by a snapshot."""
    m = small(procs=[{"name": "d", "pid": 10, "uid": 1000, "memlock": "64M"},
                     {"name": "u", "pid": 11, "uid": 1000, "memlock": "unlimited"}])
    assert m.getrlimit(10, "memlock") == (64 * MB, 64 * MB)
    assert m.getrlimit(11, "memlock") == (RLIM_INFINITY,) * 2
    r = execute(m, "rlimit 10 memlock 1M")
    assert r.ok and r.text == "memlock soft 1M hard 64M"
    assert execute(m, "rlimit 10 memlock 2M:1M").text.startswith("error: EINVAL")
    assert execute(m, "rlimit 10 memlock").value == (1 * MB, 64 * MB)
    engine.save(m, tmp_path / "s")
    assert engine.load(tmp_path / "s").getrlimit(10, "memlock") == (1 * MB, 64 * MB)


# ---------------------------------------------------------------- mlock and the limit

def test_mlock_EPERM_when_the_limit_is_zero_but_not_for_root():
    """can_do_mlock(): no CAP_IPC_LOCK and RLIMIT_MEMLOCK 0 -> EPERM (mlock(2) ERRORS)."""
    m = small()
    pid = user(m, memlock=0)
    a = m.mmap(pid, 4 * 4096)
    assert err(lambda: m.mlock(pid, a, 4096)) == errno.EPERM
    assert err(lambda: m.mlockall(pid, MCL_CURRENT)) == errno.EPERM
    m.munlock(pid, a, 4096)  # munlock needs no limit
    root = m.spawn("r")
    m.setrlimit(root, "memlock", 0, 0)
    m.mlock(root, m.mmap(root, 4096), 4096)  # CAP_IPC_LOCK


def test_mlock_does_not_count_pages_already_locked():
    """count_mm_mlocked_page_nr() (4.9): locking the same 5 MiB twice under an 8 MiB
    limit succeeds; 2.6.18 added the range to locked_vm again and failed (ENOMEM)."""
    m = small()
    pid = user(m)
    a = m.mmap(pid, 6 * MB)
    m.mlock(pid, a, 5 * MB)
    m.mlock(pid, a, 5 * MB)
    m.mlock(pid, a + MB, 5 * MB)  # 4 MiB of it locked already: 6 MiB in all
    assert locked_pages(m.process(pid)) == 6 * MB // 4096
    m.era = "2.6.18"
    pid2 = user(m, memlock=8 * MB)
    a2 = m.mmap(pid2, 6 * MB)
    m.mlock(pid2, a2, 5 * MB)
    before = fingerprint(m)
    assert err(lambda: m.mlock(pid2, a2, 5 * MB)) == errno.ENOMEM
    assert fingerprint(m) == before
    m.check()


def test_mlock_ENOMEM_past_the_limit_changes_nothing():
    """do_mlock(): locked > RLIMIT_MEMLOCK without CAP_IPC_LOCK -> ENOMEM before any VMA
    changes (mlock(2) ERRORS)."""
    m = small()
    pid = user(m, memlock=MB)
    a = m.mmap(pid, 2 * MB)
    before = fingerprint(m)
    assert err(lambda: m.mlock(pid, a, MB + 4096)) == errno.ENOMEM
    assert fingerprint(m) == before


def test_mlock_over_vmas_then_a_hole_locks_those_before_it_then_ENOMEM():
    """apply_vma_lock_flags(): the VMAs before the hole are locked (their present pages
    mlocked), then ENOMEM; today nothing is populated (__mm_populate() runs only after
    success); 2.6.18's mlock_fixup() populated each VMA as it went."""
    for era, populated in (("modern", False), ("2.6.18", True)):
        _mlock_then_hole(era, populated)


def _mlock_then_hole(era, populated):
    m = small(era=era)
    pid = m.spawn("p")
    ps = m.page_size
    a = m.mmap(pid, 8 * ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS)  # not mergeable
    b = m.mmap(pid, 8 * ps)  # directly below a
    assert b + 8 * ps == a
    m.munmap(pid, a + 4 * ps, 4 * ps)  # a hole at the end of a
    m.touch(pid, b, ps)
    assert err(lambda: m.mlock(pid, b, 16 * ps)) == errno.ENOMEM
    vb, va = m.process(pid).vmas[:2]
    assert vb.flags & VM_LOCKED and va.flags & VM_LOCKED
    assert present(m, vb) == mlocked(m, vb) == (8 if populated else 1)
    # munlock: the same walk, the same ENOMEM after the VMAs before the hole
    assert err(lambda: m.munlock(pid, b, 16 * ps)) == errno.ENOMEM
    assert not vb.flags & VM_LOCKED and not va.flags & VM_LOCKED
    assert mlocked(m, vb) == 0
    m.check()


def test_mlock_hole_at_the_start_changes_nothing():
    """apply_vma_lock_flags(): no VMA at start -> ENOMEM and nothing changes."""
    m = small()
    pid = m.spawn("p")
    a = m.mmap(pid, 4 * 4096)
    before = fingerprint(m)
    assert err(lambda: m.mlock(pid, a - 4096, 2 * 4096)) == errno.ENOMEM
    assert fingerprint(m) == before


def test_mlock_populate_out_of_memory_is_EAGAIN():
    """__mlock_posix_error_return(): __mm_populate()'s -ENOMEM becomes EAGAIN; the range
    stays VM_LOCKED."""
    m = small(nodes=1, size="16M")
    pid = m.spawn("p")
    n = m.totalram_pages() * m.page_size  # overcommit allows it; memory cannot hold it
    a = m.mmap(pid, n)
    assert err(lambda: m.mlock(pid, a, n)) == errno.EAGAIN
    assert m.process(pid).vmas[0].flags & VM_LOCKED
    m.check()


# ---------------------------------------------------------------- mlockall

def test_failed_mlockall_leaves_no_vma_locked_and_no_MCL_FUTURE():
    """mlockall(): total_vm (PFN-mapped regions included) against the limit before
    apply_mlockall_flags() runs: ENOMEM, nothing locked, def_flags untouched (issue 11
    item 9)."""
    m = small(drivers=[{"name": "fb", "kind": "framebuffer", "node": 0, "size": "4M"}])
    pid = user(m, memlock=6 * MB)
    m.mmap(pid, 4 * MB)  # fits the limit alone
    m.mmap(pid, 4 * MB, driver="fb")  # 8 MiB mapped in all
    before = fingerprint(m)
    assert err(lambda: m.mlockall(pid, MCL_CURRENT | MCL_FUTURE)) == errno.ENOMEM
    assert fingerprint(m) == before
    p = m.process(pid)
    assert p.def_flags == 0 and not any(v.flags & VM_LOCKED for v in p.vmas)
    m.mlockall(pid, MCL_FUTURE)  # MCL_FUTURE alone is not checked against total_vm
    assert p.def_flags == VM_LOCKED


def test_mlockall_locks_every_vma_but_special_ones():
    """apply_mlockall_flags() -> mlock_fixup(): VM_SPECIAL (VM_PFNMAP|VM_IO) VMAs are not
    given VM_LOCKED; munlockall() clears PG_mlocked again."""
    m = small(drivers=[{"name": "fb", "kind": "framebuffer", "node": 0, "size": "4M"}])
    pid = m.spawn("p")
    m.mmap(pid, MB)
    m.mmap(pid, MB, driver="fb")
    m.mlockall(pid, MCL_CURRENT)
    p = m.process(pid)
    assert [bool(v.flags & VM_LOCKED) for v in p.vmas] == [False, True]  # VM_PFNMAP not
    assert mlocked(m, p.vmas[1]) == MB // 4096
    m.munlockall(pid)
    assert mlocked(m, p.vmas[1]) == 0


def test_mmap_after_MCL_FUTURE_past_the_limit_is_EAGAIN():
    """do_mmap() -> mlock_future_ok(): a VM_LOCKED mapping taking locked_vm past
    RLIMIT_MEMLOCK -> EAGAIN (CAP_IPC_LOCK lifts it)."""
    m = small()
    pid = user(m, memlock=4 * MB)
    m.mlockall(pid, MCL_CURRENT | MCL_FUTURE)
    a = m.mmap(pid, 3 * MB)  # locked and populated
    v = m.process(pid).find_vma(a)
    assert v.flags & VM_LOCKED and present(m, v) == 3 * MB // 4096
    before = fingerprint(m)
    assert err(lambda: m.mmap(pid, 2 * MB)) == errno.EAGAIN
    assert fingerprint(m) == before
    root = m.spawn("r")
    m.setrlimit(root, "memlock", MB)
    m.mlockall(root, MCL_FUTURE)
    m.mmap(root, 2 * MB)
    m.check()


# ---------------------------------------------------------------- MLOCK_ONFAULT

def test_mlock2_onfault_locks_pages_as_they_fault():
    """mlock2(MLOCK_ONFAULT): VM_LOCKED|VM_LOCKONFAULT, present pages mlocked, nothing
    populated (populate_vma_page_range() skips VM_LOCKONFAULT); a later fault maps an
    mlocked page; numa_maps is unchanged, meminfo's Mlocked counts the faulted pages and
    the VMA's flags show it."""
    m = small()
    pid = m.spawn("p")
    ps = m.page_size
    a = m.mmap(pid, 16 * ps)
    m.touch(pid, a, 2 * ps)
    m.mlock2(pid, a, 16 * ps, MLOCK_ONFAULT)
    v = m.process(pid).vmas[0]
    assert v.flags & (VM_LOCKED | VM_LOCKONFAULT) == VM_LOCKED | VM_LOCKONFAULT
    assert "onfault" in v.flag_string()
    assert present(m, v) == 2 and mlocked(m, v) == 2
    m.touch(pid, a + 4 * ps, 3 * ps)
    assert present(m, v) == 5 and mlocked(m, v) == 5
    assert f"Node 0 {'Mlocked:':<16}{20:>8} kB" in m.meminfo(0)
    m.mlock(pid, a, 16 * ps)  # plain mlock: VM_LOCKONFAULT cleared and populated
    assert not v.flags & VM_LOCKONFAULT and present(m, v) == 16 == mlocked(m, v)
    m.check()


def test_mlock_onfault_shows_on_the_map_and_in_the_vma_table():
    """What the console draws (engine.views): the frames an MLOCK_ONFAULT VMA has
    faulted carry the mlocked mark (PG_mlocked, set by mlock_new_folio() at fault), the
    others none; the VMA row says `onfault` (smaps' VmFlags `lf`) and locked."""
    m = small()
    pid = m.spawn("p")
    ps = m.page_size
    a = m.mmap(pid, 8 * ps)
    m.mlock2(pid, a, 8 * ps, MLOCK_ONFAULT)
    m.touch(pid, a + 2 * ps, 3 * ps)
    view = MachineView(m)
    pfns = view.vma_frames(pid, a)
    assert pfns.size == 3
    assert (view.frame_flags(pfns) & MARK_MLOCKED).all()
    row = view.vma_at(pid, a)
    assert "onfault" in row.flags and row.locked
    flags = dict(view.describe_frame(int(pfns[0])))["flags"]  # the inspector
    assert "mlocked" in flags.split(",")


def test_mlock2_flags_and_eras():
    """mlock2(): flags other than MLOCK_ONFAULT -> EINVAL; flags 0 is mlock(). Before 4.4
    there is no mlock2 (ENOSYS) and mlockall() knows no MCL_ONFAULT (EINVAL)."""
    m = small()
    pid = m.spawn("p")
    a = m.mmap(pid, 4096)
    assert err(lambda: m.mlock2(pid, a, 4096, 2)) == errno.EINVAL
    m.mlock2(pid, a, 4096, 0)  # mlock2(..., 0) is mlock()
    assert m.process(pid).vmas[0].flags & VM_LOCKED
    m.era = "2.6.18"
    assert err(lambda: m.mlock2(pid, a, 4096, 0)) == errno.ENOSYS  # 4.4
    assert err(lambda: m.mlockall(pid, MCL_CURRENT | MCL_ONFAULT)) == errno.EINVAL


def test_mlockall_onfault_current_and_future():
    """MCL_ONFAULT: every VMA (and with MCL_FUTURE every new one) VM_LOCKONFAULT; nothing
    populated; MCL_ONFAULT alone is EINVAL."""
    m = small()
    pid = m.spawn("p")
    a = m.mmap(pid, 8 * 4096)
    assert err(lambda: m.mlockall(pid, MCL_ONFAULT)) == errno.EINVAL
    m.mlockall(pid, MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)
    p = m.process(pid)
    b = m.mmap(pid, 8 * 4096)
    for addr in (a, b):
        v = p.find_vma(addr)
        assert v.flags & VM_LOCKONFAULT and present(m, v) == 0
    m.touch(pid, b, 4096)
    assert mlocked(m, p.find_vma(b)) == 1
    assert execute(m, f"mlockall {pid} future onfault").ok
    assert p.def_flags == VM_LOCKED | VM_LOCKONFAULT


def test_mlock_merges_only_around_its_range_so_2_6_18_mbind_splits_stay():
    """2.6.18's mbind_range() split VMAs and never merged them; vma_merge() elsewhere
    (an mlock of another range) looks only at that range's neighbours."""
    m = small(era="2.6.18")
    pid = m.spawn("p")
    ps = m.page_size
    a = m.mmap(pid, 16 * ps)
    m.mbind(pid, a + 4 * ps, 4 * ps, MPOL_BIND, [0])
    m.mbind(pid, a + 4 * ps, 4 * ps, engine.MPOL_DEFAULT)
    assert len(m.process(pid).vmas) == 3  # split, not merged back
    c = m.mmap(pid, 4 * ps, PROT_READ)  # below a, not mergeable with it
    m.mlock(pid, c, ps)
    m.munlock(pid, c, ps)
    assert len(m.process(pid).vmas) == 4  # the mbind splits are still there
    m.era = "modern"
    m.mbind(pid, a + 4 * ps, 4 * ps, engine.MPOL_DEFAULT)
    assert len(m.process(pid).vmas) == 2  # today's mbind_range() merges what it touched
