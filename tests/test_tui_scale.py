"""The console at scale (issue 7's redraw and key-latency figures): the map's sampled
cells, its batched rows, pages per node counted a slice at a time, quiet widget
updates. Behaviour only: nothing here looks at how fast anything was."""

from __future__ import annotations

import asyncio
import gc
import time
from types import SimpleNamespace

import numpy as np
import pytest
from rich.text import Text

import engine
from engine.commands import execute
from engine.constants import K_ANON, K_FREE, K_KERNEL, PG_isolated, PG_mlocked, PG_pinned
from engine.mm.move_pages import UNWRITTEN, MoveStatus
from engine.views import (
    MachineView,
    NodeCounts,
    pages_per_node,
    summarize_result,
    vma_frames,
)
from engine.views import counts as view_counts
from tui.app import NumaConsoleApp
from tui.widgets import pagemap as pmod
from tui.widgets.inspector import inspector_text
from tui.widgets.legend import legend_text
from tui.widgets.pagemap import (
    C_FREE,
    M_MLOCK,
    M_NONE,
    M_PINNED,
    NCLASS,
    RUN,
    SAMPLE,
    PageMap,
    cell_codes,
    frame_classes,
    pid_table,
    rows_codes,
    sample_offsets,
)
from tui.widgets.processes import ProcessTable
from tui.widgets.quiet import quiet_update


def exact_codes(m, a: int, n: int, zoom: int, lut, hilite=None) -> np.ndarray:
    """Cell codes counting every frame of every cell (the map before sampling)."""
    cls = frame_classes(MachineView(m), np.arange(a, a + n), lut)
    ncells = -(-n // zoom)
    cell = np.arange(n) // zoom
    counts = np.bincount(cell * NCLASS + cls, minlength=ncells * NCLASS).reshape(ncells, NCLASS)
    dom = counts.argmax(1)
    sizes = np.minimum(zoom, n - np.arange(0, n, zoom))
    partial = (dom == C_FREE) & (counts[:, C_FREE] < sizes)
    starts = np.arange(0, n, zoom)
    fl = np.bitwise_or.reduceat(m.f.flags[a:a + n], starts)
    mark = np.where(fl & PG_isolated, pmod.M_ISOLATED,
                    np.where(fl & PG_pinned, M_PINNED, np.where(fl & PG_mlocked, M_MLOCK, M_NONE)))
    if hilite is not None:
        mark = np.where(np.logical_or.reduceat(hilite[a:a + n], starts), pmod.M_HILITE, mark)
    return dom + NCLASS * (mark + pmod.NMARK * partial.astype(np.int64))


def scattered_machine():
    """The default machine with java's pages scattered over every node and a few
    mlocked pages: cells of mixed holders everywhere."""
    m = engine.Machine.default()
    rng = np.random.default_rng(3)
    v = m.process(103).vmas[0]
    n = (v.end - v.start) // m.page_size
    idx = np.sort(rng.choice(n, n // 2, replace=False))
    m.move_pages(103, v.start + idx * m.page_size, rng.integers(0, 4, idx.size))
    assert execute(m, f"mlock 103 {v.start:x}+{8 * m.page_size:x}").ok
    return m


# ---------------------------------------------------------------- sampling

@pytest.mark.parametrize("size", [1, 5, 63, 64, 65, 100, 1000, 2048, 4099, 1 << 20])
def test_sample_offsets_spread_runs_over_the_cell(size):
    offs = sample_offsets(size, SAMPLE)
    assert offs.size == min(size, SAMPLE)
    assert (np.diff(offs) > 0).all() and offs[0] >= 0 and offs[-1] < size
    if size <= SAMPLE:
        assert offs.tolist() == list(range(size))  # every frame: exact
        return
    runs = offs.reshape(SAMPLE // RUN, RUN)
    assert (np.diff(runs, axis=1) == 1).all()  # runs of neighbours
    stretch = np.arange(SAMPLE // RUN) * size // (SAMPLE // RUN)
    ends = (np.arange(SAMPLE // RUN) + 1) * size // (SAMPLE // RUN)
    assert (runs[:, 0] >= stretch).all() and (runs[:, -1] < ends).all()  # one per stretch


@pytest.mark.parametrize("zoom", [1, 3, 8, 64])
def test_rows_codes_count_every_frame_up_to_sample_frames(zoom):
    m = scattered_machine()
    lut = pid_table(MachineView(m))
    hl = np.zeros(m.nr_frames, bool)
    hl[np.random.default_rng(1).integers(0, m.nr_frames, 500)] = True
    # rows of odd lengths (a partial last cell), not touching each other
    starts = np.array([0, 7000, 524288 - 1000, 1200001, m.nr_frames - 333])
    counts = np.array([5000, 12345, 3000, 77777, 333])
    codes, off = rows_codes(MachineView(m), starts, counts, zoom, lut, hl)
    for i, (a, n) in enumerate(zip(starts.tolist(), counts.tolist())):
        assert (codes[off[i]:off[i + 1]] == exact_codes(m, a, n, zoom, lut, hl)).all(), i
        assert (cell_codes(MachineView(m), a, n, zoom, lut, hl) == codes[off[i]:off[i + 1]]).all()


def test_sampled_rows_keep_every_mark_and_mostly_free():
    m = scattered_machine()
    lut = pid_table(MachineView(m))
    zoom = 2048
    codes = rows_codes(MachineView(m), np.array([0]), np.array([m.nr_frames]), zoom, lut)[0]
    want = exact_codes(m, 0, m.nr_frames, zoom, lut)
    same = codes % NCLASS == want % NCLASS
    assert same.mean() > 0.97  # the colour: sampled
    assert ((codes // NCLASS) % pmod.NMARK == (want // NCLASS) % pmod.NMARK).all()  # marks: every frame
    assert (codes[same] == want[same]).all()  # "mostly free" too, given the colour
    # one pinned frame and one kernel frame in an otherwise free cell
    free_cells = np.flatnonzero(want == C_FREE)
    c = int(free_cells[len(free_cells) // 2])
    a = c * zoom
    assert (m.f.kind[a:a + zoom] == K_FREE).all()
    m.f.flags[a + 1] |= PG_pinned
    m.f.kind[a + 2] = K_KERNEL
    code = int(rows_codes(MachineView(m), np.array([a]), np.array([zoom]), zoom, lut)[0][0])
    assert code % NCLASS == C_FREE
    mark, partial = (code // NCLASS) % pmod.NMARK, code // NCLASS // pmod.NMARK
    assert mark == M_PINNED and partial == 1
    # past exact_limit, marks come from the samples too (frame 1 is not one of them)
    code = int(rows_codes(MachineView(m), np.array([a]), np.array([zoom]), zoom, lut, exact_limit=0)[0][0])
    assert code == C_FREE


def test_sampled_colour_is_the_majority_of_a_blocky_cell():
    m = engine.Machine.default()
    lut = pid_table(MachineView(m))
    zoom = 4096
    a = m.nr_frames - 4 * zoom  # free memory at the top of node 3
    assert (m.f.kind[a:a + zoom] == K_FREE).all()
    v = m.process(103).vmas[0]
    mid = int(vma_frames(v)[0])
    m.f.kind[a:a + 3500] = K_ANON  # 85 % of the cell: java's anon memory
    m.f.mapping[a:a + 3500] = m.f.mapping[mid]
    code = int(rows_codes(MachineView(m), np.array([a]), np.array([zoom]), zoom, lut)[0][0])
    assert code % NCLASS == int(lut[103])  # java's colour


# ---------------------------------------------------------------- the map widget

def test_pagemap_computes_the_visible_rows_together_and_says_it_samples():
    m = engine.Machine.default()
    pm = PageMap(MachineView(m))
    pm.relayout(width=80, height=40)
    assert pm.zoom > SAMPLE and pm.sampled
    assert "sampled" in str(pm.border_title) and "sampled" in pm.sampling_note()
    ys = pm._visible_cell_rows()
    pm._row_codes(ys[0])
    assert all(pm._cells[y][0] == pm._gen for y in ys)  # one miss filled the screen
    lut = pid_table(MachineView(m), pm.pid_colors)
    for y in ys:
        lay = pm._layout
        want = rows_codes(MachineView(m), lay.start[[y]], lay.count[[y]], pm.zoom, lut)[0]
        assert (pm._row_codes(y) == want).all()
    assert pm.refresh_from_machine() == 0  # nothing changed
    m.f.flags[int(pm._layout.start[ys[3]])] |= PG_pinned
    assert pm.refresh_from_machine() == 1
    pm.clear_caches()
    assert not pm._cells and not pm._strips
    pm.zoom, pm.auto_fit = SAMPLE, False
    pm.relayout(width=80, height=40)
    assert not pm.sampled and pm.sampling_note() == ""
    assert "sampled" not in str(pm.border_title)


def test_pagemap_keeps_a_bounded_number_of_rows_off_screen():
    m = engine.Machine.default()
    pm = PageMap(MachineView(m))
    pm.zoom, pm.auto_fit = 1, False
    pm.relayout(width=80, height=40)
    ys = pm._layout.cell_y
    assert ys.size > 3 * pmod.MAX_CACHED_ROWS
    for y in ys[:: ys.size // (2 * pmod.MAX_CACHED_ROWS)].tolist():
        pm._row_codes(y)
    assert len(pm._cells) <= pmod.MAX_CACHED_ROWS + 40 + 1


def test_legend_and_inspector_say_when_cells_are_sampled():
    m = engine.Machine.default()
    pm = PageMap(MachineView(m))
    pm.relayout(width=80, height=40)
    assert pm.sampling_note() in legend_text(MachineView(m), pm.pid_colors, note=pm.sampling_note()).plain
    assert "sampled" not in legend_text(MachineView(m), pm.pid_colors).plain
    y, col = pm.cursor_cell()
    cell = pm.cell_range(y, col)
    assert f"{SAMPLE} sampled" in inspector_text(MachineView(m), pm.cursor, cell, True).plain
    assert "sampled" not in inspector_text(MachineView(m), pm.cursor, cell, False).plain


# ---------------------------------------------------------------- pages per node

def plain_pages_per_node(m, pfns):
    pfns = np.asarray(pfns, np.int64)
    pfns = pfns[(pfns >= 0) & (pfns != m.zero_pfn)]
    counts = np.bincount(m.node_of(pfns), minlength=max(m.nodes) + 1)
    return counts[np.asarray(m.nodes)]


def test_pages_per_node_counts_present_pages_but_not_the_zero_page(monkeypatch):
    m = scattered_machine()
    rng = np.random.default_rng(2)
    pfns = rng.integers(-1, m.nr_frames, 700_000).astype(np.int32)
    pfns[::97] = m.zero_pfn
    want = plain_pages_per_node(m, pfns)
    assert (pages_per_node(m, pfns) == want).all()
    assert (pages_per_node(m, pfns.astype(np.int64)) == want).all()
    assert (pages_per_node(m, pfns[:0]) == 0).all()
    monkeypatch.setattr(view_counts, "_node_buckets", lambda m: None)  # node bounds too fine
    assert (pages_per_node(m, pfns) == want).all()


def test_node_counts_count_a_slice_a_step_and_match_a_full_count():
    m = scattered_machine()
    rows = [(r.pid, r.rss, r.per_node.tolist()) for r in MachineView(m).processes()]
    c = NodeCounts(m, slice_pages=4096)
    assert c.busy and c.passes == 0
    steps = 1
    while not c.step(0.0):  # one slice a step
        steps += 1
    assert steps > 10 and c.passes == 1 and not c.busy
    assert [(r.pid, r.rss, r.per_node.tolist()) for r in MachineView(m).processes(c)] == rows
    assert not c.step(0.0)  # nothing asked for: no work
    # the machine changes: the old counts stand until a new pass ends
    assert execute(m, "migratepages 103 0-3 1").ok
    c.stale()
    assert c.process(103).sum() == sum(r[1] for r in rows if r[0] == 103)
    while not c.step(0.0):
        pass
    per = c.process(103)
    assert per[1] == per.sum() > 0
    assert [(r.pid, r.per_node.tolist()) for r in MachineView(m).processes(c)] == \
        [(r.pid, r.per_node.tolist()) for r in MachineView(m).processes()]
    # a VMA the last pass did not see is counted when asked for
    v = m.process(104).vmas[0]
    del c.vmas[(104, v.start, v.end)]
    assert (c.vma(104, v) == pages_per_node(m, vma_frames(v))).all()
    # run(): a whole pass at once, dropping one under way
    c.stale()
    c.step(0.0)
    c.run()
    assert c.passes == 3 and not c.busy


def test_status_summary_counts_a_million_statuses_by_array():
    rare = np.ones(200_000, np.int64)
    rare[123_457] = -12
    assert summarize_result(MoveStatus.of(rare, 0)) == "200000 pages: -ENOMEM=1 N1=199999"
    st = MoveStatus.of(np.array([UNWRITTEN, 2, 2, -14]), 1)
    assert list(st) == [None, 2, 2, -14] and st.ret == 1
    assert summarize_result(st) == "4 pages: -EFAULT=1 N2=2 unwritten=1"


# ---------------------------------------------------------------- quiet updates

def test_quiet_update_skips_equal_content_and_lays_out_only_on_new_shape():
    calls = []
    w = SimpleNamespace(content_size=SimpleNamespace(width=20),
                        update=lambda content, layout: calls.append(layout))
    assert quiet_update(w, Text("a\nb"))
    assert not quiet_update(w, Text("a\nb"))  # same: nothing
    assert quiet_update(w, Text("a\nc"))  # same shape: no layout
    assert quiet_update(w, Text("a\nb\nc"))  # one more line: layout
    assert quiet_update(w, Text("a\nb\n" + "x" * 30))  # wider than the widget: layout
    assert quiet_update(w, Text("1"), fixed_height=True) is True
    assert calls == [True, False, True, True, False]


# ---------------------------------------------------------------- in the console

async def test_table_follows_a_job_without_a_full_redraw():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        assert app._gc_frozen and gc.get_freeze_count() > 0
        app.node_counts.slice = 2048  # many steps a pass
        t = app.main_screen.query_one("#processes", ProcessTable)
        assert int(t.get_cell("103", "N2").value) == 73728
        app.run_command("migratepages 103 2 0 &")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20:  # the frame timer alone brings the table up
            await asyncio.sleep(0.05)
            if not app.machine.jobs and int(t.get_cell("103", "N0").value) == 81920:
                break
        assert int(t.get_cell("103", "N2").value) == 0
        assert int(t.get_cell("103", "N0").value) == 81920
        rows = {r.pid: r.per_node.tolist() for r in app.view.processes()}
        for pid, per in rows.items():
            assert [int(t.get_cell(str(pid), f"N{n}").value)
                    for n in app.machine.nodes] == per
    assert gc.get_freeze_count() == 0  # thawed when the console ended


async def test_zoom_keys_act_at_once_but_type_into_an_input():
    app = NumaConsoleApp(pace="fast")
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        pm = app.main_screen.query_one("#pagemap", PageMap)
        z0 = pm.zoom
        app.main_screen.query_one("#processes").focus()  # the key goes past the table
        await pilot.press("plus")
        assert pm.zoom == z0 // 2
        await pilot.press("minus")
        assert pm.zoom == z0
        await pilot.press("colon", *"offline 3 Movable --dry-run +")
        assert app.command_input().value == "offline 3 Movable --dry-run +"
        assert pm.zoom == z0
        app.main_screen.action_filter()
        await pilot.press("minus")  # the processes filter takes them too
        assert app.main_screen.query_one("#filter").value == "-"
        assert pm.zoom == z0
