"""Long-term pins change no data and never leak (issue 11, items 5 and 6).

A registration (ib_umem_get(): pin_user_pages(FOLL_WRITE | FOLL_LONGTERM)) faults
its range in as a write would but writes nothing: every page reads what it read
before, the integrity oracle is unchanged, copy-on-write is broken. The
registration keeps its pages, as an RDMA memory region does, after munmap; it dies
with the process (do_exit(): exit_mm(), then exit_files() deregisters). check()'s
leak audit fails on a pin no live registration holds, on a registration of a
process that is gone, and on mapping objects nothing keeps alive."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from conftest import fingerprint, small
from test_reliability import compare_contents, contents

import engine
from engine.constants import (
    ANON_SHMEM,
    K_ANON,
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PG_pinned,
)

PAGE = 4096


def machine():
    return small(nodes=2, size="16M", movable="8M",
                 drivers=[{"name": "rdma0", "kind": "rdma", "node": 0},
                          {"name": "unc", "kind": "uncached", "node": 0, "size": "64K"}])


def oracle(m) -> list:
    """Every integrity-oracle entry: per process and per page-cache object, the
    (page, content last written) pairs."""
    out = []
    for pid in m.pids:
        p = m.process(pid)
        keys, _pfn, exp = p.pt.export()
        out.append((pid, keys.tolist(), exp.tolist()))
    for k in sorted(m.mappings):
        obj = m.mappings[k]
        if hasattr(obj, "pt"):
            keys, _pfn, exp = obj.pt.export()
            out.append((obj.name, keys.tolist(), exp.tolist()))
    return out


def written(m, pid, v):
    """Expected contents the VMA's oracle holds (private pages), page by page."""
    offs, vals = v.written()
    return dict(zip(offs.tolist(), vals.tolist()))


def pinned(m) -> int:
    return int(((m.f.flags & PG_pinned) != 0).sum())


# ------------------------------------------------------------------ item 5: no data changes

def test_pin_changes_no_page_content_nor_the_oracle():
    """Anonymous pages written and never touched, a private file mapping (read-
    faulted and not), a shared file page another process maps: a pin of each reads
    the same before and after, in every process, and the oracle holds the same
    content for every page (a pin is not a write; issue 11 item 5)."""
    m = machine()
    w = m.spawn("writer")
    f = m.mmap(w, 8 * PAGE, flags=MAP_SHARED, file="F")
    m.touch(w, f, 8 * PAGE)  # the file has data
    p = m.spawn("ib_app")
    anon = m.mmap(p, 8 * PAGE)
    m.touch(p, anon, 4 * PAGE)  # four written, four never touched
    priv = m.mmap(p, 8 * PAGE, flags=MAP_PRIVATE, file="F")
    m.touch(p, priv, 2 * PAGE, write=False)  # two read-faulted, six never touched
    shared = m.mmap(p, 8 * PAGE, flags=MAP_SHARED, file="F")
    shm = m.mmap(p, 4 * PAGE, flags=MAP_SHARED | MAP_ANONYMOUS)
    before, seq = contents(m), m.write_seq
    for a in (anon, priv, shared, shm):
        m.pin(p, a, 8 * PAGE if a != shm else 4 * PAGE, "rdma0")
        m.check()
    compare_contents(before, contents(m))  # every page of every process, the writer's too
    assert m.write_seq == seq  # no content token was issued: nothing was written
    assert [m.read(w, f + i * PAGE) for i in range(8)] == \
        [m.read(p, shared + i * PAGE) for i in range(8)] == \
        [m.read(p, priv + i * PAGE) for i in range(8)]
    # the COW was broken (private pages of their own, pinned) without writing
    v = m.process(p).find_vma(priv)
    pf = v.pte_range(0, 8)
    assert (m.f.kind[pf] == K_ANON).all() and (m.f.flags[pf] & PG_pinned).all()
    assert pinned(m) == 8 + 8 + 8 + 4
    # what the oracle expects is what a read gave, for every page
    assert written(m, p, v) == {i: m.read(w, f + i * PAGE) for i in range(8)}
    m.check()


def test_pin_leaves_the_oracle_untouched_for_pages_already_private():
    """Pages that are already the process's own: the oracle is identical, entry for
    entry, after the pin (check() compares frames against it, so a pin that wrote
    would now show as lost content)."""
    m = machine()
    p = m.spawn("a")
    a = m.mmap(p, 16 * PAGE)
    m.touch(p, a, 16 * PAGE)
    f = m.mmap(p, 4 * PAGE, flags=MAP_SHARED, file="G")
    m.touch(p, f, 4 * PAGE)
    before = oracle(m)
    m.pin(p, a, 16 * PAGE)
    m.pin(p, f, 4 * PAGE)
    assert oracle(m) == before
    m.check()


@pytest.mark.parametrize("what", ["pfnmap", "read-only", "hole", "zero-length"])
def test_pin_refusals_change_nothing(what):
    """check_vma_flags(): VM_IO|VM_PFNMAP has no pages to pin and FOLL_WRITE needs
    VM_WRITE (EFAULT); no VMA is EFAULT; a zero length is EINVAL. Nothing changes."""
    m = machine()
    p = m.spawn("a")
    rw = m.mmap(p, 4 * PAGE)
    m.touch(p, rw, 4 * PAGE)
    addr, length, err = {
        "pfnmap": (m.mmap(p, 4 * PAGE, flags=MAP_SHARED, driver="unc"), 4 * PAGE,
                   errno.EFAULT),
        "read-only": (m.mmap(p, 4 * PAGE, PROT_READ), 4 * PAGE, errno.EFAULT),
        "hole": (rw, 8 * PAGE, errno.EFAULT),
        "zero-length": (rw, 0, errno.EINVAL),
    }[what]
    before = fingerprint(m)
    with pytest.raises(OSError) as e:
        m.pin(p, addr, length, "rdma0")
    assert e.value.errno == err and str(e.value).startswith(f"[Errno {err}] pin: ")
    assert fingerprint(m) == before
    m.check()


# ------------------------------------------------------------------ item 6: no leaks

def test_pins_outlive_munmap_and_die_with_the_process():
    """Regression (issue 11 item 6): munmap of a pinned range then kill left the
    frames pinned forever (offline EBUSY for good) and check() passed. The
    registration keeps its pages after munmap, as an MR does, and names its owner
    when it blocks an offline; the process's exit deregisters it and frees them."""
    m = machine()
    free0 = [z.free for z in m.zones]
    p = m.spawn("ib_app", node=1)
    a = m.mmap(p, 64 * PAGE)
    m.mbind(p, a, 64 * PAGE, engine.MPOL_BIND, [1])
    m.touch(p, a, 64 * PAGE)  # node 1's Movable zone comes first
    assert (m.zone_of(m.process(p).find_vma(a).pte_range(0, 64)) ==
            m.zone(1, "Movable").zid).all()
    assert m.pin(p, a, 64 * PAGE, "rdma0") == 64
    m.munmap(p, a, 64 * PAGE)
    assert pinned(m) == 64  # the registration still holds them
    m.check()
    before = fingerprint(m)
    with pytest.raises(OSError) as e:
        m.offline(1, "Movable")
    assert e.value.errno == errno.EBUSY and "registered with rdma0" in str(e.value)
    assert fingerprint(m) == before
    m.kill(p)
    assert pinned(m) == 0 and m.drivers_map["rdma0"].pins == []
    assert [z.free for z in m.zones] == free0  # every page came back
    m.offline(1, "Movable")  # nothing holds the zone any more
    m.check()


def test_unmapped_pinned_pages_stay_unmovable():
    m = machine()
    p = m.spawn("ib_app", node=0)
    a = m.mmap(p, 8 * PAGE)
    m.touch(p, a, 8 * PAGE)
    m.pin(p, a, 8 * PAGE)
    m.munmap(p, a, 4 * PAGE)
    assert m.migrate_pages(p, [0], [1]) == 4  # the 4 still mapped are pinned too
    m.check()


def test_unpin_after_munmap_frees_the_pages():
    m = machine()
    free0 = sum(z.free for z in m.zones)
    p = m.spawn("a")
    a = m.mmap(p, 8 * PAGE)
    m.pin(p, a, 8 * PAGE)
    m.munmap(p, a, 8 * PAGE)
    assert sum(z.free for z in m.zones) == free0 - 8
    assert m.unpin(p, a, 8 * PAGE) == 8
    assert sum(z.free for z in m.zones) == free0 and pinned(m) == 0
    m.check()


def test_overlapping_registrations_pin_until_the_last_goes():
    m = machine()
    p = m.spawn("a")
    a = m.mmap(p, 8 * PAGE)
    assert m.pin(p, a, 8 * PAGE) == 8
    assert m.pin(p, a + 4 * PAGE, 4 * PAGE) == 0  # already pinned
    assert m.unpin(p, a, 4 * PAGE) == 4  # the first registration: 4 pages are still held
    assert pinned(m) == 4
    m.check()
    assert m.unpin(p, a + 4 * PAGE, 4 * PAGE) == 4
    assert pinned(m) == 0
    m.check()


def test_shared_anonymous_memory_goes_with_its_last_mapping():
    """Regression (found by the leak audit): a MAP_SHARED|MAP_ANONYMOUS object stayed
    in the page cache after its last munmap, its pages never freed. It goes when
    nothing maps it; a pin keeps it until the registration is dropped."""
    m = machine()
    free0 = sum(z.free for z in m.zones)
    p = m.spawn("a")
    a = m.mmap(p, 16 * PAGE, flags=MAP_SHARED | MAP_ANONYMOUS)
    m.touch(p, a, 16 * PAGE)
    m.munmap(p, a, 16 * PAGE)
    assert sum(z.free for z in m.zones) == free0
    assert not any(n.startswith(ANON_SHMEM) for n in m.files)
    b = m.mmap(p, 16 * PAGE, flags=MAP_SHARED | MAP_ANONYMOUS)
    m.touch(p, b, 16 * PAGE)
    m.pin(p, b, 4 * PAGE)
    m.munmap(p, b, 16 * PAGE)
    assert sum(z.free for z in m.zones) == free0 - 16  # kept whole while pinned
    m.check()
    m.kill(p)
    assert sum(z.free for z in m.zones) == free0
    assert not any(n.startswith(ANON_SHMEM) for n in m.files)
    m.check()


def test_shared_anonymous_memory_unmapped_during_a_migration_job_goes_after_it():
    """kill while a migrate_pages job holds some of the object's pages isolated: the
    object lives until the batch puts them back or moves them, then goes."""
    m = machine()
    free0 = sum(z.free for z in m.zones)
    p = m.spawn("a", node=0)
    a = m.mmap(p, 64 * PAGE, flags=MAP_SHARED | MAP_ANONYMOUS)
    m.touch(p, a, 64 * PAGE, node=0)
    job = m.start_sync("migrate_pages", p, [0], [1], batch=8)
    job.step()
    m.kill(p)
    m.check()
    while job.step():
        m.check()
    assert job.finished
    assert sum(z.free for z in m.zones) == free0 and m.isolated_pages == 0
    m.check()


# ------------------------------------------------------------------ the audit itself

def test_audit_fails_on_a_pin_nothing_holds():
    m = machine()
    p = m.spawn("a")
    a = m.mmap(p, 4 * PAGE)
    m.touch(p, a, 4 * PAGE)
    pf = int(m.process(p).find_vma(a).pte_range(0, 1)[0])
    m.f.flags[pf] |= PG_pinned
    with pytest.raises(engine.InvariantError, match=f"frame {pf} is pinned but no live "
                                                    f"registration holds it"):
        m.check()


def test_audit_fails_on_a_registration_of_a_dead_process():
    m = machine()
    p = m.spawn("a")
    a = m.mmap(p, 4 * PAGE)
    m.pin(p, a, 4 * PAGE)
    m.munmap(p, a, 4 * PAGE)
    del m.procs[p]  # an exit path that forgets the registrations (the old one)
    with pytest.raises(engine.InvariantError, match=f"registration of pid {p} .* outlived "
                                                    f"its process"):
        m.check()


def test_audit_fails_on_leaked_mapping_objects():
    m = machine()
    p = m.spawn("a")
    a = m.mmap(p, 4 * PAGE, flags=MAP_SHARED | MAP_ANONYMOUS)
    m.touch(p, a, 4 * PAGE)
    v = m.process(p).find_vma(a)
    b = v.backing
    b.vmas.clear()  # as if the last unmap forgot to release the object
    with pytest.raises(engine.InvariantError, match="anonymous shared memory that nothing"):
        m.check()
    b.vmas.append(v)
    q = m.spawn("b")
    x = m.mmap(q, 4 * PAGE)
    m.touch(q, x, 4 * PAGE)
    av = m.process(q).find_vma(x).anon
    m.munmap(q, x, 4 * PAGE)
    m.mappings[av.id] = av  # an anon_vma kept after its last VMA
    with pytest.raises(engine.InvariantError, match=f"anon_vma {av.id} of pid {q}"):
        m.check()


def test_pinned_registration_survives_save_and_load(tmp_path):
    m = machine()
    p = m.spawn("a")
    a = m.mmap(p, 8 * PAGE)
    m.pin(p, a, 8 * PAGE)
    m.munmap(p, a, 4 * PAGE)
    engine.save(m, tmp_path / "m.snap")
    m2 = engine.load(tmp_path / "m.snap")
    assert fingerprint(m2) == fingerprint(m)
    m2.kill(p)
    assert pinned(m2) == 0
    m2.check()
    assert np.array_equal(m.drivers_map["rdma0"].pins[0][3],
                          np.sort(m.drivers_map["rdma0"].pins[0][3]))
