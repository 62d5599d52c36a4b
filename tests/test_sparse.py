"""Sparse page tables (engine v2, issue 12 item 5): a mapping costs nothing until it
is touched, as Linux's page tables are allocated on first fault; mappings larger
than the heuristic overcommit allows fail with ENOMEM (vm.overcommit_memory=0),
MAP_NORESERVE aside. Memory is measured with tracemalloc (numpy reports its
buffers to it); time is a bench figure, never asserted here."""

import errno
import tracemalloc

import pytest

import engine
from engine.commands import execute

MiB = 1 << 20


@pytest.fixture
def m():
    return engine.Machine.default()  # 8 GiB, 4 nodes


def _peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_mmap_of_1_tib_noreserve_allocates_nothing(m):
    chunks = m.process(100).pt.nchunks
    a, peak = _peak(lambda: m.mmap(100, 1 << 40, flags=engine.MAP_PRIVATE |
                                   engine.MAP_ANONYMOUS | engine.MAP_NORESERVE))
    assert peak < 1 * MiB, peak
    v = m.process(100).find_vma(a)
    assert v.length == 1 << 40 and v.npages == 1 << 28
    p = m.process(100)
    assert p.pt.present(v.start >> 12, v.end >> 12)[0].size == 0 and p.pt.nchunks == chunks


def test_a_few_touched_pages_of_1_tib_then_numa_maps_and_check_stay_small(m):
    pid = m.spawn("big", node=0)  # default policy: local to the touching CPU
    r = execute(m, f"mmap {pid} 1T --noreserve")
    assert r.ok, r.text
    a = r.value
    far = a + (1 << 39)  # the middle of the terabyte
    assert execute(m, f"touch {pid} {a:#x}+16K node=0").ok
    assert execute(m, f"touch {pid} {far:#x}+8K node=1").ok

    def look():
        m.check()
        return execute(m, f"numa_maps {pid}").text

    text, peak = _peak(look)
    assert peak < 200 * MiB, peak
    line = next(x for x in text.splitlines() if x.startswith(f"{a:x} "))
    assert "anon=6 dirty=6 N0=4 N1=2" in line, line
    # the page table holds only the chunks those pages live in
    p = m.process(pid)
    assert p.pt.nbytes() < 4 * MiB, p.pt.nbytes()
    assert m.read(pid, far) != 0 and m.read(pid, far + 8192) == 0


def test_mmap_beyond_overcommit_is_enomem_without_noreserve(m):
    """mmap(2) ERRORS, ENOMEM: with vm.overcommit_memory=0 a private writable
    mapping larger than RAM + swap (no swap here) is refused at mmap time."""
    before = len(m.process(100).vmas)
    with pytest.raises(OSError) as e:
        m.mmap(100, 1 << 40)
    assert e.value.errno == errno.ENOMEM
    assert len(m.process(100).vmas) == before
    r = execute(m, "mmap 100 1T")
    assert not r.ok and r.text.startswith("error: ENOMEM: ") and "MAP_NORESERVE" in r.text


def test_mmap_beyond_the_address_space_is_enomem_not_memoryerror(m):
    """mmap(2) ERRORS, ENOMEM: no room in the address space (99999 TiB > 128 TiB of
    user space); the first version ended in `error: internal: MemoryError`."""
    for line in ("mmap 100 99999T", "mmap 100 99999T --noreserve"):
        r = execute(m, line)
        assert not r.ok and r.text.startswith("error: ENOMEM: "), r.text
    with pytest.raises(OSError) as e:
        m.mmap(100, 99999 << 40, flags=engine.MAP_PRIVATE | engine.MAP_ANONYMOUS |
               engine.MAP_NORESERVE)
    assert e.value.errno == errno.ENOMEM
    m.check()


def test_munmap_of_the_middle_of_a_sparse_mapping_splits_without_copying(m):
    a = m.mmap(100, 1 << 40, flags=engine.MAP_PRIVATE | engine.MAP_ANONYMOUS |
               engine.MAP_NORESERVE)
    m.touch(100, a, 4 * m.page_size)
    mid = a + (1 << 39)
    m.touch(100, mid + (1 << 30), 4 * m.page_size)
    _, peak = _peak(lambda: m.munmap(100, mid, 1 << 30))
    assert peak < 8 * MiB, peak
    left, right = m.process(100).find_vma(a), m.process(100).find_vma(mid + (1 << 30))
    assert left.end == mid and right.start == mid + (1 << 30)
    keys, _ = m.process(100).pt.present(a >> 12, (a + (1 << 40)) >> 12)
    assert keys.size == 8
    m.check()
