"""The frame layout (engine/mm/state.py Frames): two arrays behind field views, a
derived refcount, copies that keep the views bound, and snapshot files of the
layout before it (one blob per field) loading exactly."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import fingerprint, small

import engine
from engine.constants import K_ANON, K_FILE, K_FREE, PG_isolated, PG_lru, PG_pinned
from engine.machines.container import SaveError
from engine.mm.frames import Frames, refcount_rule

DATA = Path(__file__).parent / "data"
# tests/data/make_v2_frames.py run with the code of main before issue 15 (engine v2,
# seven frame arrays): the file and the fingerprint of the machine it saved
FIXTURE_V2 = DATA / "v2-frames.snap"
FIXTURE_V2_FINGERPRINT = "7405e91cdc9dc003579c04b1a91a2e1bce8137527ad2c4bab7aa312a0589e784"


def test_field_views_write_through_to_the_arrays():
    f = Frames(8)
    f.kind[3] = K_ANON
    f.flags[3] = PG_lru
    f.mapping[3], f.index[3], f.content[3], f.mapcount[3] = 7, 9, 0xDEAD, 1
    assert f.words()[3] == K_ANON | int(PG_lru) << 8
    assert f.kinds().tolist() == [0, 0, 0, K_ANON, 0, 0, 0, 0]
    assert f.flags_of(3, 4).tolist() == [int(PG_lru)]
    kf, rec = f.take(np.array([3]))
    f.put(np.array([5]), kf, rec)
    assert (f.mapping[5], f.index[5], f.content[5], f.mapcount[5]) == (7, 9, 0xDEAD, 1)
    f.clear(np.array([3, 5]))
    assert not f.words().any() and not f.rec.view(np.uint8).any()
    assert f.nbytes() == 8 * 18


def test_refcount_is_derived_and_cannot_be_written():
    f = Frames(4)
    f.kind[:] = [K_FREE, K_ANON, K_FILE, K_ANON]
    f.mapcount[:] = [0, 1, 2, 0]
    f.flags[3] = PG_isolated | PG_pinned
    assert f.refcount[:].tolist() == [0, 1, 3, 2]
    assert int(f.refcount[2]) == 3 and np.array_equal(np.asarray(f.refcount), [0, 1, 3, 2])
    assert refcount_rule(f.kind, f.flags, f.mapcount).tolist() == [0, 1, 3, 2]
    with pytest.raises(TypeError, match="derived"):
        f.refcount[1] += 1


def test_a_clone_has_its_own_frames_with_their_views_bound():
    m = small()
    c = m.clone()
    pid = c.spawn("p", node=0)
    a = c.mmap(pid, 1 << 20)
    c.touch(pid, a, 1 << 20)
    c.check()  # the views of the copy write into the copy's arrays
    assert c.f.kind.base is c.f.kf or c.f.kind.base is c.f.kf.base
    assert int((c.f.kinds() == K_ANON).sum()) == 256
    assert not (m.f.kinds() == K_ANON).any()


def test_version_2_file_of_seven_arrays_loads_exactly(tmp_path):
    m = engine.load(FIXTURE_V2, check=True)
    assert fingerprint(m) == FIXTURE_V2_FINGERPRINT
    p = tmp_path / "again.snap"
    engine.save(m, p)  # written in the same format: one blob per field
    assert fingerprint(engine.load(p, check=True)) == FIXTURE_V2_FINGERPRINT


def test_a_file_whose_refcounts_break_the_rule_is_refused(tmp_path, monkeypatch):
    m = engine.load(FIXTURE_V2)
    anon = int(np.flatnonzero(m.f.kinds() == K_ANON)[0])
    real = Frames.blobs

    def tampered(self):
        b = real(self)
        b["refcount"] = b["refcount"].copy()
        b["refcount"][anon] += 1
        return b

    monkeypatch.setattr(Frames, "blobs", tampered)
    p = tmp_path / "bad.snap"
    engine.save(m, p)
    monkeypatch.undo()
    want = int(m.f.refcount[anon])
    with pytest.raises(SaveError, match=f"frames.refcount of frame {anon} is {want + 1}, "
                                        f"but .* make {want}"):
        engine.load(p)


# ------------------------------------------------------------------ check() at scale

def _touched(m, npages=64):
    pid = m.spawn("a", node=0)
    a = m.mmap(pid, npages * m.page_size)
    m.touch(pid, a, npages * m.page_size)
    return m.process(pid).vmas[0]


def test_check_names_a_mapcount_no_entry_accounts_for():
    m = small()
    v = _touched(m)
    pfn = int(v.ptes([3])[0])
    m.f.mapcount[pfn] = 2
    with pytest.raises(engine.InvariantError, match=f"frame {pfn}: mapcount 2 but 1 "):
        m.check()
    m.f.mapcount[pfn] = 1
    free = int(np.flatnonzero(m.f.kinds() == K_FREE)[-1])
    m.f.kind[free] = K_ANON  # a frame no page table maps claims a mapping
    m.f.mapcount[free] = 1
    m.zone(int(m.node_of([free])[0]), "Normal").free -= 1
    with pytest.raises(engine.InvariantError, match=f"frame {free}: mapcount 1 but 0 "):
        m.check()


def test_check_finds_a_leaked_anonymous_frame_and_a_wrong_isolated_count():
    m = small()
    _touched(m)
    m.check()
    free = int(np.flatnonzero(m.f.kinds() == K_FREE)[-1])
    m.f.kind[free] = K_ANON
    m.zone(int(m.node_of([free])[0]), "Normal").free -= 1
    with pytest.raises(engine.InvariantError, match=f"anonymous frame {free} is mapped "
                                                    f"by nothing"):
        m.check()
    m.f.flags[free] = PG_isolated  # held by a migration: not leaked, but not counted
    with pytest.raises(engine.InvariantError, match="1 frames isolated but the machine "
                                                    "counts 0"):
        m.check()


def test_a_chunk_written_whole_is_seeded_and_reads_as_written():
    """The oracle of a chunk one write covered whole is its seed (PageTable docs):
    it reads back the values written, and a later write to part of it stores the
    chunk's values first."""
    m = small()
    v = _touched(m, npages=3 * 4096)
    pt = m.process(v.mm.pid).pt
    assert pt.seeded[pt.rows].sum() >= 2
    before = v.expects(np.arange(v.npages))
    m.touch(v.mm.pid, v.start + 5 * m.page_size, m.page_size)  # part of a seeded chunk
    after = v.expects(np.arange(v.npages))
    assert (after != before).sum() == 1 and after[5] != before[5]
    m.check()
    m2 = engine.load(_save(m))
    assert np.array_equal(m2.process(v.mm.pid).vmas[0].expects(np.arange(v.npages)), after)


def _save(m):
    p = Path(tempfile.mkdtemp()) / "m.snap"
    engine.save(m, p)
    return p
