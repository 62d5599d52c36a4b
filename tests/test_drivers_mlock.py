"""PFN-mapped driver regions and the vm_ops->migrate hook (2.6.18 - 3.16), and the
migration of mlocked pages across eras (kernel-semantics.md sections 5, 6, 10)."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from conftest import ptes

import engine
from engine.constants import (
    EPERM,
    K_PFNMAP,
    MPOL_BIND,
    MPOL_MF_MOVE,
    MPOL_MF_STRICT,
    VM_LOCKED,
    PG_mlocked,
)
from engine.mm.migrate import MigrateControl, migrate
from engine.mm.mlock import mlocked_per_node

MB = 1 << 20


def machine(era: str = "modern") -> engine.Machine:
    """Two nodes; an uncached region with a migrate hook and a framebuffer without
    one, both on node 0; `app` (pid 10) has a locked and an unlocked mapping and
    maps the uncached region; `Xorg` (pid 11) maps the framebuffer."""
    return engine.Machine.from_description({
        "machine": {"name": "hooks", "era": era, "block_size": "4M", "seed": 5},
        "nodes": [{"id": 0, "cpus": "0-1", "zones": {"Normal": "64M"}},
                  {"id": 1, "cpus": "2-3", "zones": {"Normal": "64M"}}],
        "distances": {"local": 10, "remote": 21},
        "drivers": [
            {"name": "uncached", "kind": "uncached", "node": 0, "size": "4M", "hook": True},
            {"name": "fb0", "kind": "framebuffer", "node": 0, "size": "2M", "hook": False},
            {"name": "rdma0", "kind": "rdma", "node": 0},
        ],
        "processes": [
            {"name": "app", "pid": 10, "node": 0, "vmas": [
                {"size": "1M", "touch": "100%", "mlock": True},
                {"size": "1M", "touch": "100%"},
                {"kind": "driver", "driver": "uncached", "size": "4M"}]},
            {"name": "Xorg", "pid": 11, "node": 0, "vmas": [
                {"kind": "driver", "driver": "fb0", "size": "2M"}]},
        ],
    })


def vma(m: engine.Machine, pid: int, *, locked=None, pfnmap=False):
    for v in m.process(pid).vmas:
        if v.pfnmap != pfnmap:
            continue
        if locked is None or v.locked == locked:
            return v
    raise AssertionError("no such VMA")


def nodes_of(m: engine.Machine, v) -> set[int]:
    pte = ptes(v)
    pte = pte[pte >= 0]
    return set(m.node_of(pte).tolist())


def pages(m: engine.Machine, v) -> list[int]:
    return list(range(v.start, v.end, m.page_size))


def contents(m: engine.Machine, pid: int, v) -> list[int]:
    return [m.read(pid, a) for a in pages(m, v)]


def all_mlocked(m: engine.Machine, v) -> bool:
    return bool((m.f.flags[ptes(v)] & PG_mlocked).all())


# ----------------------------------------------------------------- mlock itself

def test_mlock_sets_vm_locked_pg_mlocked_and_per_node_counts():
    m = machine()
    v = vma(m, 10, locked=True)
    assert v.flags & VM_LOCKED and all_mlocked(m, v)
    assert mlocked_per_node(m)[0] == v.npages == 256
    assert "Mlocked" in m.meminfo(0)
    m.munlock(10, v.start, v.length)
    assert not (m.f.flags[ptes(v)] & PG_mlocked).any()
    assert mlocked_per_node(m)[0] == 0
    m.check()


# ----------------------------------------------------------------- the mlock matrix

def test_mlock_2_6_17_migrate_pages_fails_locked_pages_with_eperm():
    m = machine("2.6.17")
    lk, un = vma(m, 10, locked=True), vma(m, 10, locked=False)
    before = contents(m, 10, lk)
    left = m.migrate_pages(10, [0], [1])
    assert left == lk.npages  # each mlocked page failed (-EPERM) and is counted
    assert nodes_of(m, lk) == {0} and nodes_of(m, un) == {1}
    assert all_mlocked(m, lk) and contents(m, 10, lk) == before
    m.check()


def test_mlock_2_6_17_migration_core_reports_eperm_per_page():
    """2.6.16/17: try_to_unmap() refused VM_LOCKED mappings, a permanent -EPERM."""
    m = machine("2.6.17")
    lk = vma(m, 10, locked=True)
    ctl = MigrateControl("syscall", thisnode=False, cpu=0)
    res = m.run(migrate(m, ptes(lk), np.ones(lk.npages, np.int64), ctl)).result
    assert set(res.tolist()) == {-EPERM}
    m.check()


def test_mlock_2_6_17_has_no_move_pages():
    m = machine("2.6.17")
    lk = vma(m, 10, locked=True)
    with pytest.raises(OSError) as e:
        m.move_pages(10, pages(m, lk), [1] * lk.npages)
    assert e.value.errno == errno.ENOSYS
    m.check()


def test_mlock_2_6_17_mbind_move_strict_fails_eio_and_pages_stay():
    m = machine("2.6.17")
    lk = vma(m, 10, locked=True)
    m.mbind(10, lk.start, lk.length, MPOL_BIND, [1], MPOL_MF_MOVE)  # not strict: no error
    assert nodes_of(m, lk) == {0}
    with pytest.raises(OSError) as e:
        m.mbind(10, lk.start, lk.length, MPOL_BIND, [1], MPOL_MF_MOVE | MPOL_MF_STRICT)
    assert e.value.errno == errno.EIO
    assert nodes_of(m, lk) == {0}
    m.check()


def test_mlock_2_6_18_move_pages_moves_locked_pages():
    m = machine("2.6.18")
    lk = vma(m, 10, locked=True)
    before = contents(m, 10, lk)
    st = m.move_pages(10, pages(m, lk), [1] * lk.npages)
    assert set(st) == {1} and st.ret == 0
    assert nodes_of(m, lk) == {1} and contents(m, 10, lk) == before
    m.check()


def test_mlock_2_6_18_migrate_pages_skips_vm_locked_vmas():
    m = machine("2.6.18")
    lk, un = vma(m, 10, locked=True), vma(m, 10, locked=False)
    assert m.migrate_pages(10, [0], [1]) == 0  # skipped, not counted
    assert nodes_of(m, lk) == {0} and nodes_of(m, un) == {1}
    m.check()


def test_mlock_2_6_18_mbind_skips_vm_locked_vmas():
    m = machine("2.6.18")
    lk = vma(m, 10, locked=True)
    m.mbind(10, lk.start, lk.length, MPOL_BIND, [1], MPOL_MF_MOVE)
    assert nodes_of(m, lk) == {0}
    m.check()


def test_mlock_modern_all_three_calls_move_locked_pages_and_keep_them_mlocked():
    m = machine("modern")
    lk = vma(m, 10, locked=True)
    before = contents(m, 10, lk)
    st = m.move_pages(10, pages(m, lk), [1] * lk.npages)
    assert set(st) == {1} and st.ret == 0
    assert nodes_of(m, lk) == {1} and all_mlocked(m, lk)
    assert m.migrate_pages(10, [1], [0]) == 0
    assert nodes_of(m, lk) == {0} and all_mlocked(m, lk)
    m.mbind(10, lk.start, lk.length, MPOL_BIND, [1], MPOL_MF_MOVE)
    lk = vma(m, 10, locked=True)
    assert nodes_of(m, lk) == {1} and all_mlocked(m, lk)
    assert contents(m, 10, lk) == before
    assert mlocked_per_node(m)[1] == lk.npages and mlocked_per_node(m)[0] == 0
    m.check()


def test_long_term_pin_not_mlock_makes_a_page_unmovable_today():
    m = machine("modern")
    un = vma(m, 10, locked=False)
    m.pin(10, un.start, 16 * m.page_size, "rdma0")
    st = m.move_pages(10, pages(m, un)[:16], [1] * 16)
    assert st.ret > 0 and nodes_of(m, un) == {0}
    m.unpin(10, un.start, 16 * m.page_size, "rdma0")
    st = m.move_pages(10, pages(m, un)[:16], [1] * 16)
    assert set(st) == {1} and st.ret == 0
    m.check()


# ----------------------------------------------------------------- PFN maps and the hook

def region_nodes(m: engine.Machine, name: str) -> set[int]:
    return set(m.node_of(m.drivers_map[name].backing.present()[1]).tolist())


def test_migrate_pages_2_6_18_hook_on_relocates_driver_region_keeping_content():
    m = machine("2.6.18")
    dv = vma(m, 10, pfnmap=True)
    m.touch(10, dv.start, dv.length)
    before = contents(m, 10, dv)
    m.set_migrate_hook("uncached", True)
    assert m.migrate_pages(10, [0], [1]) == 0
    assert region_nodes(m, "uncached") == {1}
    assert nodes_of(m, dv) == {1}
    assert (m.f.kind[ptes(dv)] == K_PFNMAP).all()
    assert contents(m, 10, dv) == before
    assert region_nodes(m, "fb0") == {0}  # not this process's mapping, no hook anyway
    m.check()


def test_migrate_pages_2_6_18_hook_off_leaves_driver_region():
    m = machine("2.6.18")
    dv = vma(m, 10, pfnmap=True)
    m.touch(10, dv.start, dv.length)
    before = contents(m, 10, dv)
    m.set_migrate_hook("uncached", False)
    assert m.migrate_pages(10, [0], [1]) == 0  # VM_PFNMAP VMAs are skipped, not counted
    assert region_nodes(m, "uncached") == {0}
    assert nodes_of(m, vma(m, 10, locked=False)) == {1}
    assert contents(m, 10, dv) == before
    m.check()


def test_migrate_pages_modern_never_calls_the_hook():
    m = machine("modern")
    m.set_migrate_hook("uncached", True)
    m.migrate_pages(10, [0], [1])
    assert region_nodes(m, "uncached") == {0}  # removed in the 3.17-3.19 window
    m.check()


def test_set_migrate_hook_names_and_kinds():
    m = machine()
    assert set(m.drivers) == {"uncached", "fb0", "rdma0"}
    with pytest.raises(OSError) as e:
        m.set_migrate_hook("rdma0", True)  # pins pages: no region, no vm_ops->migrate
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        m.set_migrate_hook("nosuch", True)
    assert e.value.errno == errno.EINVAL
    m.set_migrate_hook("uncached", True)
    assert m.drivers_map["uncached"].hook_enabled
    m.check()


def test_move_pages_on_pfnmap_addresses_is_efault_today():
    m = machine("modern")
    dv = vma(m, 10, pfnmap=True)
    st = m.move_pages(10, pages(m, dv)[:4], [1] * 4)
    assert list(st) == [-errno.EFAULT] * 4
    assert region_nodes(m, "uncached") == {0}
    m.check()


def test_mbind_strict_counts_pfnmap_pages_and_fails_eio():
    m = machine("modern")
    dv = vma(m, 10, pfnmap=True)
    with pytest.raises(OSError) as e:
        m.mbind(10, dv.start, dv.length, MPOL_BIND, [1], MPOL_MF_MOVE | MPOL_MF_STRICT)
    assert e.value.errno == errno.EIO
    m.mbind(10, dv.start, dv.length, MPOL_BIND, [1], MPOL_MF_MOVE)  # skipped: no error
    assert region_nodes(m, "uncached") == {0}
    m.check()


def test_hook_without_room_fails_enomem_and_leaks_no_frame():
    m = engine.Machine.from_description({
        "machine": {"era": "2.6.18", "block_size": "4M"},
        "nodes": [{"id": 0, "cpus": "0", "zones": {"Normal": "16M"}},
                  {"id": 1, "cpus": "1", "zones": {"Normal": "8M"}}],
        "drivers": [{"name": "uncached", "kind": "uncached", "node": 0, "size": "12M",
                     "hook": True, "hook_enabled": True}],
        "processes": [{"name": "a", "pid": 10, "node": 0, "vmas": [
            {"kind": "driver", "driver": "uncached", "size": "12M"}]}],
    })
    free = [z.free for z in m.zones]
    with pytest.raises(OSError) as e:
        m.migrate_pages(10, [0], [1])  # 2.6.18 migrate_vmas(): the hook's error aborts
    assert e.value.errno == errno.ENOMEM and "uncached" in str(e.value)
    assert [z.free for z in m.zones] == free
    assert region_nodes(m, "uncached") == {0}
    m.check()
