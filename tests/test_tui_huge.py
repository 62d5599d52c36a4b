"""The console and huge pages (issue 18): the map marks huge folios, the inspector
shows head/tail, order and the folio's range, the process and VMA tables count huge
pages, H toggles THP for the selected VMA (madvise), text stays text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import small

import engine
from engine.views import MachineView
from tui.app import NumaConsoleApp
from tui.widgets.pagemap import M_HUGE, NCLASS, NMARK, pid_table, rows_codes
from tui.widgets.processes import ProcessTable
from tui.widgets.vmas import VmaTable

ROOT = Path(__file__).resolve().parent.parent
MB2 = 2 << 20


def _machine():
    m = engine.load(ROOT / "saves" / "hugepage-db.toml")
    return m


def test_map_marks_huge_folios_and_inspector_names_the_folio():
    m = _machine()
    view = MachineView(m)
    v = m.process(1001).vmas[-1]  # shared_buffers: THP
    head = int(v.ptes([0])[0])
    codes, _off = rows_codes(view, np.array([head]), np.array([2048]), 1, pid_table(view))
    marks = (codes // NCLASS) % NMARK
    assert (marks == M_HUGE).all()
    lines = dict(view.describe_frame(head + 5))
    assert lines["folio"] == "tail of a THP, order 9 (2048 kB)"
    assert lines["folio range"] == f"{head:#x}-{head + 511:#x}"
    assert dict(view.describe_frame(head))["folio"].startswith("head of a THP")
    from tui.widgets.legend import legend_text
    assert "huge page (THP or hugetlb folio" in legend_text(view).plain
    assert "huge page" not in legend_text(MachineView(engine.Machine.default())).plain


async def test_tables_count_huge_pages_and_h_toggles_thp():
    m = _machine()
    app = NumaConsoleApp(m, pace="fast")
    async with app.run_test(size=(220, 60)) as pilot:
        await pilot.pause()
        app.redraw_now()
        await pilot.pause()
        pt = app.main_screen.query_one("#processes", ProcessTable)
        assert pt._huge
        cell = pt.get_cell("1001", "huge")
        assert str(getattr(cell, "text", cell)) == "544"  # 512 THP + 32 hugetlb pages
        app.open_process(1001)
        await pilot.pause()
        vt = app.screen.query_one("#vmas", VmaTable)
        vt.update_from(app.view)
        work = m.process(1001).vmas[0]  # work_mem: MADV_NOHUGEPAGE
        vt.select_start(work.start)
        await pilot.pause()
        await pilot.press("H")
        await pilot.pause()
        assert m.process(1001).vmas[0].flags & engine.constants.VM_HUGEPAGE
        assert "madvise hugepage" in app.console_log.plain()
        await pilot.press("H")
        await pilot.pause()
        assert m.process(1001).vmas[0].flags & engine.constants.VM_NOHUGEPAGE


async def test_console_shows_shared_and_gigantic_hugetlb_mappings():
    """A MAP_SHARED|MAP_HUGETLB mapping that fork() shares and a 1 GiB page, in the
    console: the VMA table shows the shared one as a file mapping with `s` and
    `hugetlb` and counts each huge page once per VMA; the inspector names the 1 GiB
    folio (order 18, its range); the map marks its cells as a huge page."""
    m = small(nodes=2, size="2560M", block_size="128M")
    assert m.set_nr_hugepages(0, 1, size_kb=1 << 20) == 1
    assert m.set_nr_hugepages(0, 2) == 2
    p = m.spawn("db", node=0)
    sh = m.mmap(p, 2 * MB2, flags=engine.MAP_SHARED | engine.MAP_ANONYMOUS
                | engine.MAP_HUGETLB)
    g = m.mmap(p, 1 << 30, flags=engine.MAP_PRIVATE | engine.MAP_ANONYMOUS
               | engine.MAP_HUGETLB | engine.MAP_HUGE_1GB)
    m.touch(p, sh, 2 * MB2)
    m.touch(p, g, 4096)
    c = m.fork(p)
    m.touch(c, sh, 4096)
    view = MachineView(m)
    head = int(m.process(p).find_vma(g).ptes([0])[0])
    lines = dict(view.describe_frame(head + 12345))
    assert lines["folio"] == "tail of a hugetlb page, order 18 (1048576 kB)"
    assert lines["folio range"] == f"{head:#x}-{head + (1 << 18) - 1:#x}"
    codes, _off = rows_codes(view, np.array([head]), np.array([1 << 18]), 1, pid_table(view))
    assert ((codes // NCLASS) % NMARK == M_HUGE).all()
    app = NumaConsoleApp(m, pace="fast")
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause()
        app.open_process(c)
        await pilot.pause()
        vt = app.screen.query_one("#vmas", VmaTable)
        vt.update_from(app.view)
        rows = {r.start: r for r in vt._rows}
        assert rows[sh].kind == "file" and rows[sh].flags == "rw-s hugetlb"
        assert rows[sh].huge_pages == 1  # the child maps one of the file's two pages
        assert rows[g].huge_pages == 1 and rows[g].flags == "rw-p hugetlb"
        assert str(getattr(vt.get_cell(f"{sh:x}", "huge"), "text", "")) == "1"
    m.check()
