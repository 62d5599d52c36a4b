"""Machine descriptions: errors that name file, line and key; presets; the TOML
key locator; determinism."""

from __future__ import annotations

import copy
import glob
import os
import tomllib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.constants import ZONE_MOVABLE, PG_pinned
from engine.machines.description import DescriptionError, dumps
from engine.machines.presets import DEFAULT_DESCRIPTION
from engine.machines.toml_lines import TomlKeyLines, key_line

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAVES = os.path.join(ROOT, "saves")
PRESETS = sorted(glob.glob(os.path.join(SAVES, "*.toml")))

BASE = """\
# a small machine
[machine]
name = "t"
era = "{era}"
block_size = "4M"

[[nodes]]
id = 0
cpus = "0-1"
zones = {{ DMA = "4M", Normal = "60M" }}

[[nodes]]
id = 1
cpus = "2-3"
zones = {{ Normal = "64M" }}

[distances]
matrix = [[10, 20], [20, 10]]

[[drivers]]
name = "rdma0"
kind = "rdma"
node = 1

[[processes]]
name = "a"
{proc}
vmas = [
    {{ size = "4M", touch = "50%" }},
    {{ {vma} }},
]
"""


def load_text(tmp_path, text, name="m.toml"):
    p = tmp_path / name
    p.write_text(text)
    return engine.load(p), p


def refused(tmp_path, era="modern", proc="", vma='size = "1M"', text=None):
    """The one-line SaveError message for a broken description."""
    text = text or BASE.format(era=era, proc=proc, vma=vma)
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(engine.SaveError) as e:
        engine.load(p)
    msg = str(e.value)
    assert msg.startswith(str(p)) and "\n" not in msg
    return msg


def line_of(text: str, needle: str) -> int:
    return next(i + 1 for i, ln in enumerate(text.splitlines()) if needle in ln)


def test_base_loads(tmp_path):
    m, _ = load_text(tmp_path, BASE.format(era="modern", proc="", vma='size = "1M"'))
    m.check()
    assert m.nodes == [0, 1] and len(m.pids) == 1


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("proc,vma,key,needle,what", [
    ("", 'size = "1M", colour = "red"', "processes[0].vmas[1].colour", "colour",
     "unknown key"),
    ("shoe = 3", 'size = "1M"', "processes[0].shoe", "shoe = 3", "unknown key"),
    ("", 'size = "12Q"', "processes[0].vmas[1].size", "12Q", "unknown suffix"),
    ("", 'size = "-4M"', "processes[0].vmas[1].size", "-4M", "not a size"),
    ("", 'size = "99T"', "processes[0].vmas[1].size", "99T", "larger than"),
    ("node = 7", 'size = "1M"', "processes[0].node", "node = 7", "node 7 does not exist"),
    ('cpuset = "0-5"', 'size = "1M"', "processes[0].cpuset", "cpuset", "node 2 does not"),
    ('policy = "bind:3"', 'size = "1M"', "processes[0].policy", "bind:3",
     "node 3 does not exist"),
    ("", 'size = "1M", touch_node = 4', "processes[0].vmas[1].touch_node", "touch_node",
     "node 4 does not exist"),
    ("", 'size = "1M", policy = "interleave:0,9"', "processes[0].vmas[1].policy",
     "interleave:0,9", "node 9 does not exist"),
    ("", 'size = "1M", kind = "driver", driver = "fb9"', "processes[0].vmas[1].driver",
     "fb9", "not a driver"),
    ("", 'size = "1M", pin = "nope"', "processes[0].vmas[1].pin", "nope",
     "not a pinning"),
    ("", 'size = "1M", touch = "150%"', "processes[0].vmas[1].touch", "150%", "outside"),
    ("", 'size = "1M", touch_pages = { "0" = 9999 }', "processes[0].vmas[1].touch_pages",
     "9999", "touches 9999 pages"),
    ("uid = -1", 'size = "1M"', "processes[0].uid", "uid = -1", "out of range"),
    ("kthread = true", 'size = "1M"', "processes[0]", "[[processes]]", "no address space"),
    ("pid = 0", 'size = "1M"', "processes[0].pid", "pid = 0", "out of range"),
    ("", 'size = "2M", huge = "yes"', "processes[0].vmas[1].huge", "yes",
     "true, false or"),
    ("", 'size = "2M", huge = "hugetlb"', "processes[0].vmas[1]", "hugetlb",
     "MAP_HUGETLB needs 1 huge pages"),
])
def test_errors_name_file_line_and_key(tmp_path, proc, vma, key, needle, what):
    text = BASE.format(era="modern", proc=proc, vma=vma)
    msg = refused(tmp_path, text=text)
    assert f"bad.toml:{line_of(text, needle)}: {key}" in msg, msg
    assert what in msg


def test_huge_page_keys(tmp_path):
    """machine.thp and machine.hugepages (issue 18): set as sysfs would be; a VMA's
    huge = true/false is madvise(MADV_HUGEPAGE/NOHUGEPAGE), "hugetlb" MAP_HUGETLB;
    bad values name their file:line and key."""
    text = BASE.format(era="modern", proc="", vma='size = "4M", huge = "hugetlb"')
    text = text.replace('block_size = "4M"', 'block_size = "4M"\nthp = "always"\n'
                        'hugepages = { 1 = 3 }')
    m, _p = load_text(tmp_path, text)
    assert m.thp == "always" and m.hugepages(1) == (3, 1)
    assert "huge anon=2 dirty=2" in m.numa_maps(m.pids[-1]) or \
        "huge anon=2 " in m.numa_maps(m.pids[-1])
    m.check()
    for bad, key, what in (('thp = "sometimes"', "machine.thp", "not one of"),
                           ('hugepages = { 9 = 1 }', "machine.hugepages.9", "does not exist"),
                           ('hugepages = { 1 = 999 }', "machine.hugepages.1", "0..")):
        t = BASE.format(era="modern", proc="", vma='size = "1M"').replace(
            'block_size = "4M"', 'block_size = "4M"\n' + bad)
        msg = refused(tmp_path, text=t)
        assert f"bad.toml:{line_of(t, bad.split(' =')[0])}: {key}" in msg, msg
        assert what in msg, msg
    t = BASE.format(era="2.6.18", proc="", vma='size = "1M"').replace(
        'block_size = "4M"', 'block_size = "4M"\nthp = "always"')
    assert "transparent huge pages came in 2.6.38" in refused(tmp_path, text=t)


def test_policy_mode_not_in_era(tmp_path):
    text = BASE.format(era="2.6.18", proc='policy = "weighted-interleave:0-1"',
                       vma='size = "1M"')
    msg = refused(tmp_path, text=text)
    assert f":{line_of(text, 'weighted')}: processes[0].policy: weighted-interleave is not " \
           f"a policy mode in era 2.6.18" in msg
    for pol in ("local", "preferred-many:0"):
        msg = refused(tmp_path, era="2.6.18", vma=f'size = "1M", policy = "{pol}"')
        assert "processes[0].vmas[1].policy" in msg and "era 2.6.18" in msg
    # the same policies are fine in the modern era
    load_text(tmp_path, BASE.format(era="modern", proc='policy = "weighted-interleave:0-1"',
                                    vma='size = "1M", policy = "preferred-many:0"'))


@pytest.mark.parametrize("old,new,key,what", [
    ('zones = { Normal = "64M" }', 'zones = { Normal = "63.5K" }', "nodes[1].zones.Normal",
     "multiple of the page size"),
    ('zones = { Normal = "64M" }', 'zones = { Normal = "64P" }', "nodes[1].zones.Normal",
     "unknown suffix"),
    ('zones = { Normal = "64M" }', 'zones = { Normal = "64T" }', "nodes[1].zones.Normal",
     "impossibly large"),
    ('zones = { Normal = "64M" }', 'zones = { Highmem = "64M" }', "nodes[1].zones.Highmem",
     "unknown zone"),
    ('zones = { Normal = "64M" }', 'zones = "64M"', "nodes[1].zones", "table"),
    ('cpus = "2-3"', 'cpus = "1-3"', "nodes[1].cpus", "cpu 1 is already on node 0"),
    ('cpus = "2-3"', 'cpus = "two"', "nodes[1].cpus", "not a CPU list"),
    ("id = 1", "id = 64", "nodes[1].id", "MAX_NUMNODES"),
    ("id = 1", "id = 0", "nodes[1].id", "not a new node id"),
    ("matrix = [[10, 20], [20, 10]]", "matrix = [[10, 20], [20, 10], [1, 2]]",
     "distances.matrix", "must be 2x2"),
    ("matrix = [[10, 20], [20, 10]]", "matrix = [[10, 20], [300, 10]]",
     "distances.matrix[1][0]", "remote ones 11..255"),
    ('block_size = "4M"', 'block_size = "5000"', "machine.block_size", "multiple"),
    ('era = "modern"', 'era = "1999"', "machine.era", "unknown era"),
    ('name = "t"', 'name = "t"\ncolour = 1', "machine.colour", "unknown key"),
    ('kind = "rdma"\nnode = 1', 'kind = "rdma"\nnode = 5', "drivers[0].node",
     "node 5 does not exist"),
    ('kind = "rdma"', 'kind = "gpu"', "drivers[0].kind", "one of"),
])
def test_structural_errors(tmp_path, old, new, key, what):
    base = BASE.format(era="modern", proc="", vma='size = "1M"')
    assert old in base
    text = base.replace(old, new, 1)
    line = base.count("\n", 0, base.index(old)) + 1 + new.count("\n")
    msg = refused(tmp_path, text=text)
    assert f"bad.toml:{line}: {key}: " in msg, msg
    assert what in msg


def test_top_level_unknown_key_and_missing_nodes(tmp_path):
    base = BASE.format(era="modern", proc="", vma='size = "1M"')
    msg = refused(tmp_path, text="colour = 3\n" + base)
    assert "bad.toml:1: colour: unknown key" in msg
    msg = refused(tmp_path, text='[machine]\nname = "x"\n')
    assert "nodes: at least one" in msg


def test_weights_errors(tmp_path):
    base = BASE.format(era="modern", proc="", vma='size = "1M"')
    msg = refused(tmp_path, text=base + '\n[weights]\n"0" = 2\n"7" = 1\n')
    assert 'weights.7: node 7 does not exist' in msg and "bad.toml:" in msg
    msg = refused(tmp_path, text=base + '\n[weights]\n"1" = 0\n')
    assert "weights.1: 0 is out of range (1..255)" in msg


def test_toml_syntax_error_has_a_line(tmp_path):
    msg = refused(tmp_path, text='[machine]\nname = "x\n')
    assert "not a valid TOML description" in msg and "line 2" in msg


def test_description_error_without_a_file():
    d = copy.deepcopy(DEFAULT_DESCRIPTION)
    d["processes"][0]["node"] = 12
    with pytest.raises(DescriptionError) as e:
        engine.Machine.from_description(d)
    assert str(e.value) == "<description>: processes[0].node: node 12 does not exist " \
                           "(nodes 0-3)"
    assert e.value.key == "processes[0].node" and e.value.line is None


# A description with random junk in one place is refused with DescriptionError, never
# with a traceback from deeper in the engine.
JUNK = st.one_of(st.integers(-5, 1 << 40), st.text(max_size=6), st.booleans(),
                 st.lists(st.integers(-2, 70), max_size=3), st.just({}), st.just("64G"),
                 st.just("interleave:0-9"), st.just("bind:1"), st.floats(-1, 2),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
SMALL = {
    "machine": {"name": "f", "block_size": "4M", "kernel": "2%"},
    "nodes": [{"id": 0, "cpus": "0-1", "zones": {"DMA": "4M", "Normal": "28M"}},
              {"id": 1, "cpus": "2-3", "zones": {"Normal": "16M", "Movable": "16M"}}],
    "distances": {"matrix": [[10, 20], [20, 10]]},
    "weights": {"0": 2},
    "drivers": [{"name": "unc", "kind": "uncached", "node": 0, "size": "1M"},
                {"name": "rdma0", "kind": "rdma", "node": 1}],
    "processes": [
        {"name": "a", "pid": 5, "node": 0, "policy": "interleave:0-1", "cpuset": "0-1",
         "vmas": [{"size": "2M", "touch": "50%", "touch_node": 1},
                  {"kind": "file", "file": "/f", "size": "1M", "write": False},
                  {"kind": "driver", "driver": "unc", "size": "1M"},
                  {"size": "1M", "pin": "rdma0", "mlock": True, "policy": "bind:1"}]},
        {"name": "k", "pid": 2, "node": 1, "kthread": True}],
}


def _leaves(d, path=()):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(d, list) and d and isinstance(d[0], (dict, list)):
        for i, v in enumerate(d):
            yield from _leaves(v, path + (i,))
    yield path


LEAVES = [p for p in _leaves(SMALL) if p]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(LEAVES), JUNK)
def test_junk_is_refused_cleanly(path, junk):
    d = copy.deepcopy(SMALL)
    obj = d
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = junk
    try:
        m = engine.Machine.from_description(d, source="fuzz")
    except DescriptionError as e:
        assert str(e).startswith("fuzz: ") and "\n" not in str(e)
        return
    m.check()


def test_small_fuzz_base_builds():
    engine.Machine.from_description(copy.deepcopy(SMALL)).check()


# ------------------------------------------------------------------ behaviour

def test_loading_is_deterministic():
    a = engine.Machine.default()
    b = engine.Machine.default()
    for f in a.f.FIELDS:
        assert np.array_equal(getattr(a.f, f), getattr(b.f, f))


def test_touch_pages_places_pages_per_node(tmp_path):
    m, _ = load_text(tmp_path, BASE.format(
        era="modern", proc="", vma='size = "4M", touch_pages = { "1" = 300, "0" = 100 }'))
    pid = m.pids[0]
    # the two anonymous VMAs merge: 512 pages of the first (50% of 4M) + 100 on node 0
    line = [ln for ln in m.numa_maps(pid).splitlines() if "N1=300" in ln]
    assert line and "N0=612" in line[0], m.numa_maps(pid)


def test_host_table_is_accepted(tmp_path):
    base = BASE.format(era="modern", proc="", vma='size = "1M"')
    load_text(tmp_path, base + '\n[host]\nhostname = "x"\nzones = [{ node = 0 }]\n')


# ------------------------------------------------------------------ key locator

def test_key_locator_paths():
    text = """\
# comment with [brackets] and "quotes"
top = 1
nodes = [
    { id = 0, zones = { DMA = "16M" } },  # trailing comment
    { id = 1, zones = { Normal = "1G" } },
]
[machine]
'quoted key' = 'literal \\ string'
"0" = \"\"\"multi
line [not a table]
\"\"\"
a.b.c = 3

[[processes]]
name = "p0"
[[processes.vmas]]
size = "1M"
[[processes.vmas]]
size = "2M"
[processes.extra]
x = 1
[[processes]]
name = "p1"
vmas = [{ size = "3M" }]
[weights]
"7" = 2
after = 1
"""
    tomllib.loads(text)  # the sample is valid TOML
    lines = TomlKeyLines(text).run()
    want = {"top": 2, "nodes[0]": 4, "nodes[0].zones.DMA": 4, "nodes[1].zones": 5,
            "nodes[1].zones.Normal": 5, "machine": 7, "machine.quoted key": 8,
            "machine.0": 9, "machine.a.b.c": 12, "processes[0]": 14,
            "processes[0].vmas[0].size": 17, "processes[0].vmas[1].size": 19,
            "processes[0].extra.x": 21, "processes[1].name": 23,
            "processes[1].vmas[0].size": 24, "weights.7": 26, "weights.after": 27}
    for k, ln in want.items():
        assert lines.get(k) == ln, (k, lines.get(k), ln)
    # missing keys fall back to the nearest enclosing one
    assert key_line(text, "processes[1].vmas[0].policy") == 24
    assert key_line(text, "processes[0].vmas[1].touch") == 18
    assert key_line(text, "distances.matrix") is None


def test_dumps_writes_header_and_round_trips():
    text = dumps(DEFAULT_DESCRIPTION, "line one\n\nline three")
    assert text.startswith("# line one\n#\n# line three\n\n")
    assert tomllib.loads(text) == DEFAULT_DESCRIPTION


# ------------------------------------------------------------------ presets

def test_presets_exist():
    names = {os.path.basename(p) for p in PRESETS}
    assert {"default.toml", "altix-2006.toml", "epyc-nps4.toml", "cxl-tiered.toml",
            "hotremove-rehearsal.toml", "large-36.toml", "hugepage-db.toml"} <= names


@pytest.mark.parametrize("path", PRESETS, ids=os.path.basename)
def test_every_preset_loads_and_checks(path):
    """Every preset builds and passes check(); its build time is a bench figure
    (`numacon bench`), not an assertion here."""
    text = open(path).read()
    assert text.startswith("# ") and "Shows" in text.split("\n\n[")[0]  # the header
    m = engine.load(path)
    m.check()


def test_default_preset_is_the_default_machine():
    p = os.path.join(SAVES, "default.toml")
    with open(p, "rb") as fh:
        assert tomllib.load(fh) == DEFAULT_DESCRIPTION
    a, b = engine.load(p), engine.Machine.default()
    for f in a.f.FIELDS:
        assert np.array_equal(getattr(a.f, f), getattr(b.f, f)), f
    assert a.numa_maps(100) == b.numa_maps(100)


def test_altix_preset():
    m = engine.load(os.path.join(SAVES, "altix-2006.toml"))
    assert m.page_size == 16384 and len(m.nodes) >= 8 and m.era.name == "2.6.18"
    d = m.drivers_map["uncached"]
    assert d.kind == "uncached" and d.has_hook


def test_epyc_preset():
    m = engine.load(os.path.join(SAVES, "epyc-nps4.toml"))
    assert len(m.nodes) == 8
    assert set(np.unique(m.distances).tolist()) == {10, 12, 32}
    assert m.distance(0, 3) == 12 and m.distance(0, 4) == 32


def test_cxl_preset():
    m = engine.load(os.path.join(SAVES, "cxl-tiered.toml"))
    cxl = [n for n in m.nodes if not m.node(n).cpus and m.node_has_memory(n)]
    dram = [n for n in m.nodes if m.node(n).cpus]
    assert len(cxl) == 1 and len(dram) == 2
    c = cxl[0]
    assert min(m.distance(d, c) for d in dram) > m.distance(dram[0], dram[1])
    assert m.il_weights and m.il_weights[c] < m.il_weights[dram[0]]
    assert any(p.policy is not None and p.policy.mode == engine.MPOL_WEIGHTED_INTERLEAVE
               for p in m.procs.values())


def test_hotremove_preset():
    m = engine.load(os.path.join(SAVES, "hotremove-rehearsal.toml"))
    movable_only = [n for n in m.nodes if m.node_has_memory(n) and
                    all(z.zone_type == ZONE_MOVABLE for z in m.node_zones(n) if z.present)]
    assert movable_only
    pinned = np.flatnonzero(m.f.flags & PG_pinned)
    assert pinned.size and len(np.unique(pinned // m.block_pages)) == 1
    assert set(m.node_of(pinned).tolist()) == set(movable_only[:1])
    assert not m.drivers_map["rdma0"].pfnmap and m.drivers_map["rdma0"].pins
    with pytest.raises(OSError) as e:
        m.offline(movable_only[0], "Movable")
    assert e.value.errno == 16  # EBUSY: the pinned block


def test_large_preset():
    m = engine.load(os.path.join(SAVES, "large-36.toml"))
    assert len(m.nodes) >= 36 and int(m.distances.max()) == 255
