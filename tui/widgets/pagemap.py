"""The page-frame map: one Line-API ScrollView. Each cell is a run of `zoom` frames
coloured by its dominant holder (free, kernel, one colour per process's anonymous
memory, page cache, PFN-mapped, offline) with a mark for mlocked, pinned or isolated
(in-flight) frames and for driver regions whose migrate hook is on. Nodes get a header
line, zones a label in the left gutter. Everything it reads comes from the view API
(engine.views.MachineView): frame kinds, owners and flags, the topology, the drivers.

A cell's colour is the most frequent holder among its frames when it covers up to SAMPLE
(32) frames, else among SAMPLE frames spread over it (sample_offsets), so a paint costs
in cells, not frames (the border title and the legend say "sampled"; the inspector counts
the cursor's cell in full). Marks and "mostly free" look at every frame (a bitwise OR
per cell, at memory speed) unless a screen holds more than EXACT_LIMIT frames.

When the machine has more zones than the screen has lines (36 nodes), the map folds
into columns side by side, as a newspaper does: the rows run down the first column,
then the next (`fold`), so the whole width is used and every zone keeps its rows.

Cell codes are computed with numpy for all visible rows at once and cached with a
generation counter; Strips are cached per row and rebuilt only for rows whose cells
changed."""

from __future__ import annotations

import textwrap
from typing import Any, NamedTuple

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from engine.nodemask import nodes_str
from engine.views import (
    K_ANON,
    K_FILE,
    K_FREE,
    K_KERNEL,
    K_OFFLINE,
    K_PFNMAP,
    MARK_ISOLATED,
    MARK_MLOCKED,
    MARK_PINNED,
    MachineView,
    fmt_bytes,
)

GUTTER = 8
GUTTER_COMPACT = 10  # "N12 DMA32 " when node headers are left out
ZONE_ABBR = {"Normal": "Norm", "Movable": "Mov", "Device": "Dev"}
MIN_FOLD_COLS = 24  # cells a folded column keeps at least

# colour classes
C_FREE, C_KERNEL, C_FILE, C_PFNMAP, C_OFFLINE, C_ANON = range(6)
ANON_BASE = 6
ANON_PALETTE = (  # neighbours differ most: processes get them in pid order
    "#2e9e5b", "#d9822b", "#7d5bd6", "#4fd1c5", "#c2417f", "#8fae1b",
    "#ff9ecb", "#b5651d", "#c9b8ff", "#16a3a3", "#e0607e", "#2bb0d9",
)
NCLASS = ANON_BASE + len(ANON_PALETTE)
CLASS_NAMES = ("free", "kernel", "page cache", "PFN-mapped", "offline", "anon")
CLASS_COLORS = ("#262a30", "#b83b3b", "#3567b5", "#c9a227", "#0a0a0a", "#5f8f5f") + ANON_PALETTE
PARTIAL_FREE = "#3d434c"  # a mostly free cell that holds something

# marks (priority: highlighted > isolated > pinned > mlocked > hooked driver region >
# huge page)
M_NONE, M_MLOCK, M_PINNED, M_ISOLATED, M_HILITE, M_HOOK, M_HUGE = range(7)
NMARK = 7
MARK_GLYPHS = (" ", "•", "◆", "»", "■", "⇄", "▬")
MARK_NAMES = ("", "mlocked", "pinned", "isolated / in flight", "selected VMA",
              "driver region, migrate hook on", "huge page (THP or hugetlb folio)")
OFFLINE_GLYPH = "╳"

KIND_TO_CLASS = np.full(256, C_KERNEL, np.uint8)
KIND_TO_CLASS[K_FREE] = C_FREE
KIND_TO_CLASS[K_KERNEL] = C_KERNEL
KIND_TO_CLASS[K_ANON] = C_ANON
KIND_TO_CLASS[K_FILE] = C_FILE
KIND_TO_CLASS[K_PFNMAP] = C_PFNMAP
KIND_TO_CLASS[K_OFFLINE] = C_OFFLINE

ROW_NODE, ROW_CELLS = 0, 1
BLANK_STYLE = Style(bgcolor="#14161a")
HEADER_STYLE = Style(color="#f0f0f0", bgcolor="#2d3340", bold=True)
HEADER_DIM = Style(color="#a8b0bf", bgcolor="#2d3340")
GUTTER_ZONE = Style(color="#e8c46a", bgcolor="#14161a", bold=True)
GUTTER_DIM = Style(color="#6b7280", bgcolor="#14161a")
GUTTER_ODD = Style(bgcolor="#232834")  # alternate nodes in the compact layout
SENTENCE_STYLE = Style(color="#e8c46a", bgcolor="#14161a")


def offset_str(nbytes: int) -> str:
    """A short offset for the gutter: 512K, 2016M, 13G, 4T."""
    for unit, shift in (("K", 10), ("M", 20), ("G", 30), ("T", 40)):
        v = nbytes / (1 << shift)
        if v < 10000:
            return f"{v:.0f}{unit}" if v >= 10 or v == int(v) else f"{v:.1f}{unit}"
    return f"{nbytes >> 50}P"


class PidColors:
    """Which palette colour each process's anonymous memory gets: processes are given
    colours in order of first sight (pids ascending), so a colour stays with its
    process while others come and go. Shared by the map and the legend."""

    def __init__(self) -> None:
        self._slot: dict[int, int] = {}

    def clear(self) -> None:
        self._slot.clear()

    def slot(self, pid: int) -> int:
        s = self._slot.get(pid)
        if s is None:
            s = self._slot[pid] = len(self._slot) % len(ANON_PALETTE)
        return s

    def learn(self, pids: list[int]) -> None:
        for pid in sorted(pids):
            self.slot(pid)

    def cls(self, pid: int) -> int:
        """The colour class of a process's anonymous memory."""
        return ANON_BASE + self.slot(pid)

    def color(self, pid: int) -> str:
        return CLASS_COLORS[self.cls(pid)]

    def table(self, pids: list[int]) -> np.ndarray:
        """pid -> colour class, as an array indexed by pid (the last entry, reached by
        the owner -1, is plain anonymous memory)."""
        self.learn(pids)
        lut = np.full(max(pids, default=0) + 2, C_ANON, np.uint8)
        for pid in pids:
            lut[pid] = self.cls(pid)
        return lut


def pid_table(view: MachineView, colors: PidColors | None = None) -> np.ndarray:
    return (colors if colors is not None else PidColors()).table(view.pids())


def frame_classes(view: MachineView, pfns: np.ndarray, ptab: np.ndarray) -> np.ndarray:
    """The colour class of each frame (anonymous memory by its process)."""
    return classes_of(*view.frame_sample(pfns), ptab)


def classes_of(kind: np.ndarray, owner: np.ndarray, ptab: np.ndarray) -> np.ndarray:
    cls = KIND_TO_CLASS[kind]
    anon = kind == K_ANON
    if anon.any():
        o = owner[anon]
        cls[anon] = ptab[np.where((o >= 0) & (o < ptab.size - 1), o, -1)]
    return cls


def cell_codes(view: MachineView, a: int, n: int, zoom: int, ptab: np.ndarray,
               hilite: np.ndarray | None = None, hooked: np.ndarray | None = None
               ) -> np.ndarray:
    """One int code per cell over frames [a, a+n): class + NCLASS * (mark + NMARK *
    partial) (one row of rows_codes)."""
    return rows_codes(view, np.array([a]), np.array([n]), zoom, ptab, hilite, hooked)[0]


def hooked_runs(view: MachineView) -> np.ndarray | None:
    """PFN runs [start, end) of driver regions whose migrate hook is on, sorted; None
    when there are none."""
    runs = [d.runs for d in view.drivers() if d.hook and d.runs.size]
    if not runs:
        return None
    r = np.concatenate(runs)
    return r[np.argsort(r[:, 0])]


SAMPLE = 32  # a cell's colour is the most frequent class of at most this many frames
RUN = 8  # sampled frames come in runs of this many neighbours
EXACT_LIMIT = 1 << 26  # frames one refresh reads in full (marks, "mostly free"); beyond: samples
MAX_CACHED_ROWS = 4096  # rows of cell codes kept off screen (zoomed in, a map has millions)


def cell_layout(starts: np.ndarray, counts: np.ndarray, zoom: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows (first PFN, frames): every cell's first PFN and size, and where each
    row's cells begin in them (len(rows) + 1 offsets)."""
    starts = np.asarray(starts, np.int64)
    counts = np.asarray(counts, np.int64)
    ncells = -(-counts // zoom)
    offsets = np.zeros(ncells.size + 1, np.int64)
    np.cumsum(ncells, out=offsets[1:])
    total = int(offsets[-1])
    row = np.repeat(np.arange(ncells.size), ncells)
    j = np.arange(total, dtype=np.int64) - offsets[:-1][row]
    cstart = starts[row] + j * zoom
    csize = np.minimum(zoom, starts[row] + counts[row] - cstart)
    return cstart, csize, offsets


def sample_offsets(size: int, s: int) -> np.ndarray:
    """The frames of a cell of `size` frames that its colour is taken from: all of them
    when size <= s, else s of them in s // RUN runs of RUN neighbours, one run in the
    middle of each of s // RUN equal stretches of the cell. A run is one cache line of
    each frame array, and runs at a regular stride let the CPU prefetch them: sampling
    costs about what reading s frames in order would."""
    if size <= s:
        return np.arange(size, dtype=np.int64)
    runs = max(1, s // RUN)
    r = np.arange(runs, dtype=np.int64)
    lo = r * size // runs
    start = lo + ((r + 1) * size // runs - lo - RUN) // 2
    return (start[:, None] + np.arange(RUN, dtype=np.int64)).ravel()[:s]


def sample_frames(cstart: np.ndarray, csize: np.ndarray, zoom: int
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """(PFN per sample, valid or None when every sample is) of shape (cells, min(SAMPLE,
    zoom)), as sample_offsets() places them; a cell smaller than that repeats its last
    frame in samples marked not valid."""
    s = min(SAMPLE, max(1, zoom))
    pfn = cstart[:, None] + sample_offsets(zoom, s)[None, :]
    odd = np.flatnonzero(csize != zoom)  # the last cell of a zone: fewer frames
    valid = None
    for size in np.unique(csize[odd]).tolist():
        cells = odd[csize[odd] == size]
        offs = sample_offsets(size, s)
        if offs.size < s:
            if valid is None:
                valid = np.ones(pfn.shape, bool)
            valid[cells, offs.size:] = False
            offs = np.concatenate((offs, np.full(s - offs.size, offs[-1])))
        pfn[cells] = cstart[cells, None] + offs[None, :]
    return pfn, valid


def rows_codes(view: MachineView, starts: np.ndarray, counts: np.ndarray, zoom: int,
               ptab: np.ndarray, hilite: np.ndarray | None = None,
               hooked: np.ndarray | None = None, exact_limit: int = EXACT_LIMIT
               ) -> tuple[np.ndarray, np.ndarray]:
    """Cell codes of several map rows at once: (codes of every cell, offsets: row i is
    codes[offsets[i]:offsets[i+1]]). A code is class + NCLASS * (mark + NMARK * partial).

    The class is the most frequent one among the cell's frames when a cell covers up to
    SAMPLE frames, else among SAMPLE frames of it spread over the cell (sample_offsets:
    the cost scales with cells, not frames). Marks (mlocked, pinned, isolated,
    highlighted) and "mostly free" (a free cell that holds something) count every frame
    while the rows hold at most exact_limit frames, else the samples too; a cell that
    overlaps a hooked driver region (`hooked`: sorted PFN runs) is marked as such."""
    cstart, csize, offsets = cell_layout(starts, counts, zoom)
    n = cstart.size
    if n == 0:
        return np.zeros(0, np.int64), offsets
    pfn, valid = sample_frames(cstart, csize, zoom)
    kind, owner = view.frame_sample(pfn)
    # a sample's holder: its kind (< 256), or for anonymous memory 257 + its owner's
    # pid; cells whose samples share one holder (most) take its class, the others count
    # their samples' classes
    anon = kind == K_ANON
    holder = np.where(anon, owner.astype(np.int64) + 257, kind) if anon.any() else kind
    dom = classes_of(kind[:, 0], owner[:, 0], ptab).astype(np.int64)
    same = holder == holder[:, :1]
    if valid is not None:
        same |= ~valid
    mixed = np.flatnonzero(~same.all(1))
    if mixed.size:
        k = mixed.size
        c = classes_of(kind[mixed], owner[mixed], ptab).astype(np.int64)
        if valid is not None:
            c = np.where(valid[mixed], c, NCLASS)
        key = np.arange(k, dtype=np.int64)[:, None] * (NCLASS + 1) + c
        counts_ = np.bincount(key.ravel(), minlength=k * (NCLASS + 1))
        dom[mixed] = counts_.reshape(k, NCLASS + 1)[:, :NCLASS].argmax(1)
    if int(csize.sum()) <= exact_limit:
        groups = _contiguous(cstart, csize)
        # kind | flags << 8, one word a frame: one pass ORs both (K_FREE is 0, so a
        # kind byte that is not 0 means something holds a frame of the cell)
        both = _reduce_cells(np.bitwise_or, [view.frame_words(pa, pb)
                                             for _a, _b, pa, pb in groups], cstart, groups)
        fl = (both >> 8).astype(np.uint8)
        held = (both & 0xFF) != 0
        hl = None if hilite is None else \
            _reduce_cells(np.bitwise_or, [hilite[pa:pb].view(np.uint8)
                                          for _a, _b, pa, pb in groups], cstart, groups) != 0
    else:
        fl = np.bitwise_or.reduce(view.frame_flags(pfn), axis=1)  # (repeats: harmless)
        held = (kind != K_FREE).any(1)
        hl = hilite[pfn].any(1) if hilite is not None else None
    partial = (dom == C_FREE) & held
    mark = np.where(fl & MARK_ISOLATED, M_ISOLATED,
                    np.where(fl & MARK_PINNED, M_PINNED,
                             np.where(fl & MARK_MLOCKED, M_MLOCK, M_NONE)))
    if hooked is not None and hooked.size:
        cend = cstart + csize
        i = np.searchsorted(hooked[:, 1], cstart, side="right")  # first run ending after
        ok = i < len(hooked)
        over = ok & (hooked[np.minimum(i, len(hooked) - 1), 0] < cend)
        mark = np.where(over & (mark == M_NONE), M_HOOK, mark)
    huge = view.frame_huge(pfn)
    if huge is not None:
        # a cell whose samples are in huge pages reads as one object: the huge mark
        hv = huge.any(1) if valid is None else (huge & valid).any(1)
        mark = np.where(hv & (mark == M_NONE), M_HUGE, mark)
    if hl is not None:
        mark = np.where(hl, M_HILITE, mark)
    return dom + NCLASS * (mark + NMARK * partial.astype(np.int64)), offsets


def _contiguous(cstart: np.ndarray, csize: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Runs of cells that follow each other in PFN order: (first cell, end cell, first
    PFN, end PFN)."""
    end = cstart + csize
    breaks = np.flatnonzero(cstart[1:] != end[:-1]) + 1
    lo = np.concatenate(([0], breaks)).tolist()
    hi = np.concatenate((breaks, [cstart.size])).tolist()
    return [(a, b, int(cstart[a]), int(end[b - 1])) for a, b in zip(lo, hi)]


def _reduce_cells(op: np.ufunc, arrs: list[np.ndarray], cstart: np.ndarray,
                  groups: list[tuple[int, int, int, int]], fn: Any = None) -> np.ndarray:
    """op reduced over every frame of each cell (of fn(frames) when fn is given); arrs:
    each group's frames [first PFN, end PFN)."""
    parts = [op.reduceat(arr if fn is None else fn(arr), cstart[a:b] - pa)
             for arr, (a, b, pa, _pb) in zip(arrs, groups)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def dominant(cls: np.ndarray, zoom: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cell of `zoom` frames: the most frequent class, and whether a mostly free
    cell holds something. Uniform cells (the common case) skip the counting."""
    n = cls.size
    full = n // zoom
    ncells = -(-n // zoom)
    dom = np.empty(ncells, np.int64)
    partial = np.zeros(ncells, bool)
    if full:
        c2 = cls[: full * zoom].reshape(full, zoom)
        first = c2[:, 0]
        dom[:full] = first
        mixed = np.flatnonzero(~(c2 == first[:, None]).all(1))
        if mixed.size:
            k = mixed.size
            key = np.arange(k, dtype=np.int64)[:, None] * NCLASS + c2[mixed]
            counts = np.bincount(key.ravel(), minlength=k * NCLASS).reshape(k, NCLASS)
            d = counts.argmax(1)
            dom[mixed] = d
            partial[mixed] = (d == C_FREE) & (counts[:, C_FREE] < zoom)
    if ncells > full:
        tail = cls[full * zoom:]
        counts = np.bincount(tail, minlength=NCLASS)
        d = int(counts.argmax())
        dom[full] = d
        partial[full] = d == C_FREE and counts[C_FREE] < tail.size
    return dom, partial


_STYLE_CACHE: dict[tuple[int, bool], tuple[str, Style]] = {}


def code_style(code: int, cursor: bool = False) -> tuple[str, Style]:
    """(glyph, style) of a cell code."""
    key = (code, cursor)
    hit = _STYLE_CACHE.get(key)
    if hit is not None:
        return hit
    cls = code % NCLASS
    rest = code // NCLASS
    mark, partial = rest % NMARK, rest // NMARK
    bg = PARTIAL_FREE if partial else CLASS_COLORS[cls]
    glyph = MARK_GLYPHS[mark]
    if cls == C_OFFLINE and mark == M_NONE:
        glyph = OFFLINE_GLYPH
    fg = "#ffffff" if mark != M_NONE else "#5a5a5a"
    if cursor:
        style = Style(color="#000000", bgcolor="#f5f5f5", bold=True)
        glyph = glyph if glyph.strip() else "+"
    else:
        style = Style(color=fg, bgcolor=bg)
    _STYLE_CACHE[key] = (glyph, style)
    return glyph, style


def codes_to_segments(codes: np.ndarray, cursor_col: int = -1) -> list[Segment]:
    """Run-length merge equal neighbouring cells into Segments."""
    if codes.size == 0:
        return []
    segs: list[Segment] = []
    bounds = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [codes.size]))
    for s, e in zip(starts.tolist(), ends.tolist()):
        code = int(codes[s])
        glyph, style = code_style(code)
        if s <= cursor_col < e:
            if cursor_col > s:
                segs.append(Segment(glyph * (cursor_col - s), style))
            cg, cs = code_style(code, True)
            segs.append(Segment(cg, cs))
            if e > cursor_col + 1:
                segs.append(Segment(glyph * (e - cursor_col - 1), style))
        else:
            segs.append(Segment(glyph * (e - s), style))
    return segs


class Layout(NamedTuple):
    kind: np.ndarray  # ROW_NODE | ROW_CELLS
    start: np.ndarray  # first PFN of the row (node: node start)
    count: np.ndarray  # frames in the row
    zone: np.ndarray  # index in the topology's zones, -1 for node rows
    node: np.ndarray  # node id
    first: np.ndarray  # first row of its zone
    cell_y: np.ndarray  # y of every cell row
    cell_start: np.ndarray  # start PFN of every cell row


def build_layout(topo: Any, ncols: int, zoom: int, headers: bool = True) -> Layout:
    """Rows of the map: per node a header row (when `headers`), then per zone enough
    cell rows of `ncols` cells of `zoom` frames."""
    kinds, starts, counts, zones, nodes, firsts = [], [], [], [], [], []
    per_row = max(1, ncols) * zoom
    for node in topo.nodes:
        if headers:
            kinds.append(np.array([ROW_NODE]))
            starts.append(np.array([node.start_pfn]))
            counts.append(np.array([node.spanned]))
            zones.append(np.array([-1]))
            nodes.append(np.array([node.id]))
            firsts.append(np.array([False]))
        for z in topo.zones_of(node.id):
            nrows = -(-z.spanned // per_row)
            s = z.start_pfn + np.arange(nrows, dtype=np.int64) * per_row
            c = np.minimum(per_row, z.start_pfn + z.spanned - s)
            kinds.append(np.full(nrows, ROW_CELLS))
            starts.append(s)
            counts.append(c)
            zones.append(np.full(nrows, z.index))
            nodes.append(np.full(nrows, node.id))
            f = np.zeros(nrows, bool)
            f[0] = True
            firsts.append(f)
    if not kinds:
        e = np.zeros(0, np.int64)
        return Layout(e, e, e, e, e, np.zeros(0, bool), e, e)
    kind = np.concatenate(kinds).astype(np.int8)
    start = np.concatenate(starts).astype(np.int64)
    ys = np.flatnonzero(kind == ROW_CELLS)
    return Layout(kind, start, np.concatenate(counts).astype(np.int64),
                  np.concatenate(zones).astype(np.int64),
                  np.concatenate(nodes).astype(np.int64), np.concatenate(firsts),
                  ys, start[ys])


def nonempty_zones(topo: Any) -> list:
    return [z for z in topo.zones if z.spanned > 0]


def use_headers(topo: Any, height: int) -> bool:
    """Node header rows only when there is room for about two rows per zone besides."""
    return (len(topo.nodes) + len(nonempty_zones(topo))) * 2 <= max(1, height)


def layout_height(topo: Any, ncols: int, zoom: int, headers: bool = True) -> int:
    per_row = max(1, ncols) * zoom
    rows = sum(-(-z.spanned // per_row) for z in nonempty_zones(topo))
    return rows + (len(topo.nodes) if headers else 0)


def fit_zoom(topo: Any, ncols: int, height: int, headers: bool = True) -> int:
    """The smallest zoom (frames a cell) that shows the whole machine in `height` lines
    (or, when even one row per zone is too many, the zoom that gives one row per zone):
    a binary search, the height falling as the zoom grows."""
    ncols = max(1, ncols)
    biggest = max((z.spanned for z in topo.zones), default=1)
    lo, hi = 1, max(1, -(-biggest // ncols))  # hi: one row per zone
    if layout_height(topo, ncols, lo, headers) <= max(1, height):
        return lo
    while lo < hi:
        mid = (lo + hi) // 2
        if layout_height(topo, ncols, mid, headers) <= max(1, height):
            hi = mid
        else:
            lo = mid + 1
    return lo


FOLD_GAIN = 1.5  # folding must make cells this much finer (or make the map fit)


def choose_fold(topo: Any, width: int, height: int) -> tuple[int, int, bool]:
    """(columns side by side, zoom, node headers) for a map of width x height cells:
    one column unless folding into more shows the machine without scrolling where one
    column cannot, or at a zoom FOLD_GAIN times finer (many zones, few lines)."""
    best = None
    for fold in range(1, 9):
        colw = (width - (fold - 1)) // fold
        headers = use_headers(topo, height * fold)
        gutter = GUTTER if headers else GUTTER_COMPACT
        ncols = colw - gutter
        if ncols < MIN_FOLD_COLS and fold > 1:
            break
        zoom = fit_zoom(topo, max(1, ncols), height * fold, headers)
        fits = layout_height(topo, max(1, ncols), zoom, headers) <= height * fold
        if best is None:
            best = (fits, zoom, fold, headers)
            continue
        if (fits and not best[0]) or (fits == best[0] and zoom * FOLD_GAIN <= best[1]):
            best = (fits, zoom, fold, headers)
    return best[2], best[1], best[3]


class PageMap(ScrollView, can_focus=True):
    """A map of every page frame of the machine (drawn from a MachineView)."""

    BINDINGS = [
        Binding("up", "cursor(0, -1)", "Up", show=False, id="map.up"),
        Binding("down", "cursor(0, 1)", "Down", show=False, id="map.down"),
        Binding("left", "cursor(-1, 0)", "Left", show=False, id="map.left"),
        Binding("right", "cursor(1, 0)", "Right", show=False, id="map.right"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="map.pageup"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="map.pagedown"),
        Binding("home", "jump(0)", "First frame", show=False, id="map.home"),
        Binding("end", "jump(-1)", "Last frame", show=False, id="map.end"),
        Binding("enter", "open", "Open owner", id="map.open"),
    ]

    class OpenFrame(Message):
        """Enter on a frame: open whatever owns it."""

        def __init__(self, pfn: int) -> None:
            super().__init__()
            self.pfn = pfn

    class CursorMoved(Message):
        """The cursor moved to a new cell."""

        def __init__(self, pfn: int, zoom: int) -> None:
            super().__init__()
            self.pfn = pfn
            self.zoom = zoom

    def __init__(self, view: MachineView | None = None, *, name: str | None = None,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.view = view
        self.zoom = 1
        self.auto_fit = True
        self.cursor = 0
        self.hilite: np.ndarray | None = None  # bool per frame, or None
        self.pid_colors = PidColors()  # the legend reads the same book
        self.fold = 1  # columns side by side
        self._ncols = 0
        self._layout: Layout | None = None
        self._gen = 0
        self._cells: dict[int, tuple[int, np.ndarray]] = {}
        self._strips: dict[int, tuple[int, int, Strip]] = {}
        self._ptab = np.full(1, C_ANON, np.uint8)
        self._hooked: np.ndarray | None = None
        self._width = 0  # of one column (gutter + cells)
        self._height = 0
        self._rows = 0  # lines of one column
        self.show_headers = True
        self.label_width = GUTTER
        self._marks_sampled = False  # the last rows computed were too many frames to OR
        self._cursor_memo: tuple | None = None
        self._layout_gen = 0  # counts layouts (the cursor memo's key)
        self.unavailable: str | None = None  # why the map cannot be shown (the host)

    @property
    def topo(self) -> Any:
        return self.view.topology()

    # ------------------------------------------------------------ state in
    def set_view(self, view: MachineView) -> None:
        self.view = view
        self.unavailable = view.frames_unavailable()
        self.pid_colors.clear()
        self.cursor = 0
        self.hilite = None
        self.auto_fit = True
        self.relayout()

    def set_hilite(self, pfns: np.ndarray | None) -> None:
        if pfns is None or self.view is None:
            self.hilite = None
        else:
            n = self.topo.nr_frames
            mask = np.zeros(n, bool)
            p = np.asarray(pfns, np.int64)
            mask[p[(p >= 0) & (p < n)]] = True
            self.hilite = mask
        self.refresh_from_machine(force=True)

    def zoom_in(self) -> None:
        if self.zoom > 1:
            self.zoom //= 2
            self.auto_fit = False
            self.relayout()

    def zoom_out(self) -> None:
        fit = self._fit()
        if self.zoom < fit:
            self.zoom = min(self.zoom * 2, fit)
            self.auto_fit = self.zoom >= fit
            self.relayout()

    def _fit(self) -> int:
        if self.view is None:
            return 1
        return fit_zoom(self.topo, max(1, self._ncols), self._view_height() * self.fold,
                        self.show_headers)

    def _view_height(self) -> int:
        return max(1, self.size.height or self._height)

    def relayout(self, width: int | None = None, height: int | None = None) -> None:
        """Recompute rows for the current width and zoom (keeps the cursor's frame).
        width/height default to the widget's size (give them to use it without an app)."""
        if width is None:
            width = self.scrollable_content_region.width or self.size.width
        if height is not None:
            self._height = height
        if self.view is None:
            self._layout = None
            self._layout_gen += 1
            self.virtual_size = Size(max(1, width), 0)
            return
        topo = self.topo
        h = self._view_height()
        if self.auto_fit:
            self.fold, self.zoom, self.show_headers = choose_fold(topo, max(1, width), h)
        else:
            self.show_headers = use_headers(topo, h * self.fold)
        self.label_width = GUTTER if self.show_headers else GUTTER_COMPACT
        colw = (max(1, width) - (self.fold - 1)) // self.fold
        self._width = max(self.label_width + 1, colw)
        self._ncols = max(1, self._width - self.label_width)
        self._layout = build_layout(topo, self._ncols, self.zoom, self.show_headers)
        total = len(self._layout.kind)
        self._rows = -(-total // self.fold) if self.fold > 1 else total
        self._layout_gen += 1
        self._cells.clear()
        self._strips.clear()
        self._ptab = pid_table(self.view, self.pid_colors)
        self._hooked = hooked_runs(self.view)
        self._gen += 1
        self.virtual_size = Size(max(1, width), self._rows)
        self.border_title = self.title_for(max(1, width) - 4)
        first = int(self._layout.cell_start[0]) if self._layout.cell_start.size else 0
        self.cursor = min(max(first, self.cursor), max(0, topo.nr_frames - 1))
        self._scroll_to_cursor()
        self.refresh()
        self.post_message(self.CursorMoved(self.cursor, self.zoom))

    def title_for(self, width: int) -> str:
        """The border title, its less important parts left out to fit `width`."""
        if self.unavailable is not None:
            return "page frames · not available here"
        cell = fmt_bytes(self.zoom * self.topo.page_size)
        parts = [f"page frames · {self.zoom} frame{'s' if self.zoom > 1 else ''} ({cell}) "
                 f"a cell", f"colour of {SAMPLE} sampled" if self.sampled else "",
                 f"{self.fold} columns" if self.fold > 1 else "", "+/- zoom"]
        for drop in (None, 1, 2, 3):
            if drop is not None:
                parts[drop] = ""
            title = " · ".join(p for p in parts if p)
            if len(title) <= width:
                break
        return title

    def on_resize(self, event: events.Resize) -> None:
        self.relayout()

    # ------------------------------------------------------------ folding
    def screen_line(self, y: int) -> int:
        """The line (of the virtual height) where layout row y is drawn."""
        return y % self._rows if self.fold > 1 and self._rows else y

    def _refresh_row(self, y: int) -> None:
        self.refresh_line(self.screen_line(y))

    # ------------------------------------------------------------ machine updates
    def refresh_from_machine(self, force: bool = False) -> int:
        """Recompute visible rows from engine state; repaint only rows that changed.
        Returns the number of rows repainted."""
        if self._layout is None or self.view is None:
            return 0
        self._gen += 1
        self._ptab = pid_table(self.view, self.pid_colors)
        self._hooked = hooked_runs(self.view)
        ys = self._visible_cell_rows()
        changed = 0
        for y, new in zip(ys, self._compute_rows(ys)):
            old = self._cells.get(y)
            if force or old is None or not np.array_equal(old[1], new):
                self._strips.pop(y, None)
                self._refresh_row(y)
                changed += 1
            else:
                new = old[1]
            self._cells[y] = (self._gen, new)
        return changed

    def clear_caches(self) -> None:
        """Forget every computed row and strip (the next paint computes them afresh)."""
        self._cells.clear()
        self._strips.clear()
        self._gen += 1

    @property
    def sampled(self) -> bool:
        """Whether a cell's colour comes from SAMPLE of its frames (not all of them)."""
        return self.zoom > SAMPLE

    def sampling_note(self) -> str:
        """How the cells on screen are drawn, for the legend ("" when from every frame)."""
        if not self.sampled:
            return ""
        if self._marks_sampled:
            return f"cells: {SAMPLE} frames sampled, marks too"
        return f"cell colour: {SAMPLE} frames sampled; marks: all"

    def _visible_cell_rows(self) -> list[int]:
        lay = self._layout
        top = int(self.scroll_offset.y)
        h = self._view_height()
        out: list[int] = []
        for j in range(self.fold):
            base = j * self._rows if self.fold > 1 else 0
            a = base + top
            end = min(base + top + h, len(lay.kind),
                      base + self._rows if self.fold > 1 else len(lay.kind))
            if a < end:
                out += (a + np.flatnonzero(lay.kind[a:end] == ROW_CELLS)).tolist()
        return out

    def _compute_rows(self, ys: list[int]) -> list[np.ndarray]:
        """Cell codes of layout rows ys, computed together."""
        if not ys:
            return []
        lay = self._layout
        idx = np.asarray(ys, np.int64)
        self._marks_sampled = int(lay.count[idx].sum()) > EXACT_LIMIT
        codes, off = rows_codes(self.view, lay.start[idx], lay.count[idx], self.zoom,
                                self._ptab, self.hilite, self._hooked)
        return [codes[off[i]:off[i + 1]] for i in range(len(ys))]

    def _row_codes(self, y: int) -> np.ndarray:
        hit = self._cells.get(y)
        if hit is not None and hit[0] == self._gen:
            return hit[1]
        # a miss: compute the whole visible window with it (a paint asks for every line)
        gen = self._gen
        if len(self._cells) > MAX_CACHED_ROWS:  # scrolled far: keep what is on screen
            keep = set(self._visible_cell_rows())
            for v in [v for v in self._cells if v not in keep]:
                del self._cells[v]
                self._strips.pop(v, None)
        ys = [y] + [v for v in self._visible_cell_rows()
                    if v != y and (self._cells.get(v) or (-1,))[0] != gen]
        out = None
        for v, new in zip(ys, self._compute_rows(ys)):
            old = self._cells.get(v)
            if old is not None and np.array_equal(old[1], new):
                new = old[1]
            else:
                self._strips.pop(v, None)
            self._cells[v] = (gen, new)
            if v == y:
                out = new
        return out

    # ------------------------------------------------------------ rendering
    def row_strip(self, y: int) -> Strip:
        """The Strip (one column wide) of layout row y (cached)."""
        lay = self._layout
        if lay is None or not 0 <= y < len(lay.kind):
            return Strip.blank(self._width, BLANK_STYLE)
        if lay.kind[y] == ROW_NODE:
            hit = self._strips.get(y)
            if hit is not None:
                return hit[2]
            strip = self._node_strip(y)
            self._strips[y] = (self._gen, -1, strip)
            return strip
        codes = self._row_codes(y)
        cy, ccol = self.cursor_cell()
        col = ccol if cy == y else -1
        hit = self._strips.get(y)
        if hit is not None and hit[1] == col:
            return hit[2]
        segs = [Segment(self._gutter_text(y), self._gutter_style(y))]
        segs += codes_to_segments(codes, col)
        strip = Strip(segs).extend_cell_length(self._width, BLANK_STYLE)
        self._strips[y] = (self._gen, col, strip)
        return strip

    def render_line(self, y: int) -> Strip:
        if self.unavailable is not None:
            return self._sentence_line(y)
        scroll_x, scroll_y = self.scroll_offset
        line = y + int(scroll_y)
        width = self.size.width or self._width
        if self.fold == 1:
            strip = self.row_strip(line)
        else:
            parts = []
            for j in range(self.fold):
                if j:
                    parts.append(Strip.blank(1, BLANK_STYLE))
                ly = j * self._rows + line
                parts.append(self.row_strip(ly) if line < self._rows else
                             Strip.blank(self._width, BLANK_STYLE))
            strip = Strip.join(parts)
        return strip.crop_extend(int(scroll_x), int(scroll_x) + width, BLANK_STYLE)

    def _sentence_line(self, y: int) -> Strip:
        """The map's place, when the frames cannot be read: the sentence that says why
        (and what it needs), wrapped, below a blank line."""
        width = self.size.width or self._width or 40
        lines = [""] + textwrap.wrap(self.unavailable or "", max(10, width - 2))
        text = f" {lines[y]}" if 0 <= y < len(lines) else ""
        return Strip([Segment(text, SENTENCE_STYLE)]).extend_cell_length(
            width, BLANK_STYLE).crop(0, width)

    def _gutter_text(self, y: int) -> str:
        lay = self._layout
        z = self.topo.zones[int(lay.zone[y])]
        g = self.label_width - 1
        if lay.first[y]:
            label = z.name if self.show_headers else f"N{z.node} {ZONE_ABBR.get(z.name, z.name)}"
            return f"{label[:g]:<{g}} "
        off = (int(lay.start[y]) - z.start_pfn) * self.topo.page_size
        return f"{'+' + offset_str(off):>{g}} "

    def _gutter_style(self, y: int) -> Style:
        lay = self._layout
        style = GUTTER_ZONE if lay.first[y] else GUTTER_DIM
        if not self.show_headers and int(lay.node[y]) % 2:
            style = style + GUTTER_ODD
        return style

    def _node_strip(self, y: int) -> Strip:
        topo = self.topo
        nid = int(self._layout.node[y])
        node = topo.node(nid)
        zs = topo.zones_of(nid)
        size = fmt_bytes(node.spanned * topo.page_size)
        cpus = nodes_str(node.cpus) if node.cpus else "none"
        zones = "  ".join(f"{z.name} {fmt_bytes(z.spanned * topo.page_size)}" for z in zs)
        segs = [Segment(f" node {nid} ", HEADER_STYLE),
                Segment(f" {size}  cpus {cpus}  {zones} ", HEADER_DIM)]
        return Strip(segs).extend_cell_length(self._width, HEADER_DIM).crop(0, self._width)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    # ------------------------------------------------------------ cursor
    def cursor_cell(self) -> tuple[int, int]:
        """(layout row, column) of the cursor (asked for by every line of a paint)."""
        key = (self.cursor, self._layout_gen)
        hit = self._cursor_memo
        if hit is None or hit[0] != key:
            hit = self._cursor_memo = (key, self.cell_of(self.cursor))
        return hit[1]

    def cell_of(self, pfn: int) -> tuple[int, int]:
        lay = self._layout
        if lay is None or lay.cell_start.size == 0:
            return -1, -1
        i = int(np.searchsorted(lay.cell_start, pfn, side="right")) - 1
        i = max(0, i)
        y = int(lay.cell_y[i])
        return y, (int(pfn) - int(lay.start[y])) // self.zoom

    def cell_range(self, y: int, col: int) -> tuple[int, int]:
        lay = self._layout
        a = int(lay.start[y]) + col * self.zoom
        return a, min(a + self.zoom, int(lay.start[y] + lay.count[y]))

    def _ncells(self, y: int) -> int:
        return -(-int(self._layout.count[y]) // self.zoom)

    def move_to(self, pfn: int) -> None:
        if self.view is None or self._layout is None:
            return
        pfn = min(max(0, int(pfn)), self.topo.nr_frames - 1)
        old_y, _ = self.cursor_cell()
        self.cursor = pfn
        new_y, _ = self.cursor_cell()
        for y in {old_y, new_y}:
            if y >= 0:
                self._refresh_row(y)
        self._scroll_to_cursor()
        self.post_message(self.CursorMoved(self.cursor, self.zoom))

    def _scroll_to_cursor(self) -> None:
        y, _ = self.cursor_cell()
        if y >= 0:
            line = self.screen_line(y)
            top = int(self.scroll_offset.y)
            h = max(1, self.size.height)
            if line < top or line >= top + h:
                self.scroll_to_region(Region(0, line, 1, 1), animate=False, immediate=True)

    def action_cursor(self, dx: int, dy: int) -> None:
        lay = self._layout
        if lay is None or lay.cell_y.size == 0:
            return
        y, col = self.cursor_cell()
        i = int(np.searchsorted(lay.cell_y, y))
        if dx:
            col += dx
            if col < 0:
                if i == 0:
                    return
                i -= 1
                col = self._ncells(int(lay.cell_y[i])) - 1
            elif col >= self._ncells(y):
                if i + 1 >= lay.cell_y.size:
                    return
                i += 1
                col = 0
        if dy:
            i = min(max(0, i + dy), lay.cell_y.size - 1)
        ny = int(lay.cell_y[i])
        col = min(col, self._ncells(ny) - 1)
        self.move_to(int(lay.start[ny]) + col * self.zoom)

    def action_open(self) -> None:
        self.post_message(self.OpenFrame(self.cursor))

    def action_page(self, direction: int) -> None:
        self.action_cursor(0, direction * max(1, self.size.height - 1))

    def action_jump(self, where: int) -> None:
        if self.view is not None:
            self.move_to(0 if where == 0 else self.topo.nr_frames - 1)

    def pfn_at(self, x: int, y: int) -> int | None:
        """The first frame of the cell at widget offset (x, y), or None."""
        lay = self._layout
        if lay is None:
            return None
        x += int(self.scroll_offset.x)
        line = y + int(self.scroll_offset.y)
        j = x // (self._width + 1) if self.fold > 1 else 0
        if j >= self.fold:
            return None
        col = x - j * (self._width + 1) - self.label_width
        if self.fold > 1 and line >= self._rows:
            return None
        vy = j * self._rows + line if self.fold > 1 else line
        if not 0 <= vy < len(lay.kind) or lay.kind[vy] != ROW_CELLS or col < 0:
            return None
        if col >= self._ncells(vy):
            return None
        return int(lay.start[vy]) + col * self.zoom

    def on_click(self, event: events.Click) -> None:
        off = event.get_content_offset(self)
        if off is None:
            return
        pfn = self.pfn_at(off.x, off.y)
        if pfn is not None:
            self.focus()
            self.move_to(pfn)
