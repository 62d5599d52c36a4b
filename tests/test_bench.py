"""`numacon bench` on a tiny machine: every figure is produced, with the right key
and type, through the same path as the real command. Benchmarks are not tests:
nothing here looks at how fast anything was."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from engine.units import parse_size
from tools import bench, proto
from tui import bench_ui, cli

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--quick", "--frames", "16384"]  # a 64 MiB reference machine, one run
NUMBER_KEYS = ("build_s", "move_pages_pps", "migrate_pages_pps", "offline_s",
               "bytes_per_frame", "save_s", "load_s", "redraw_ms", "key_latency_ms",
               "proto_pps", "move_pages_ratio", "migrate_pages_ratio", "help_ms", "view_ms",
               "thp_migrate_s", "small_migrate_s", "thp_vs_small")
TIB_KEYS = ("tib_ok", "tib_rss_gib", "tib_check_s", "tib_views_s", "tib_peak_gib")


@pytest.fixture(scope="module")
def cli_json() -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.main(["bench", "--json", *TINY])
    assert rc == 0
    text = out.getvalue()
    assert text.count("\n") == 1, text  # one JSON object, one line
    return json.loads(text)


def test_json_has_every_figure_in_order(cli_json):
    assert list(cli_json) == list(bench.KEYS)
    assert bench.KEYS == (
        "build_s", "move_pages_pps", "migrate_pages_pps", "offline_s", "bytes_per_frame",
        "save_s", "load_s", "tib_ok", "tib_rss_gib", "redraw_ms", "key_latency_ms",
        "query_ratio_vs_kernel",  # the keys before issue 15, then its own
        "proto_pps", "move_pages_ratio", "migrate_pages_ratio", "tib_check_s", "tib_views_s",
        "tib_peak_gib", "help_ms", "view_ms",
        "thp_migrate_s", "small_migrate_s", "thp_vs_small")  # (issue 18)


def test_json_figures_have_their_types(cli_json):
    for k in NUMBER_KEYS:  # the console's figures too: numacon bench hands in the UI
        assert isinstance(cli_json[k], float) and cli_json[k] > 0, (k, cli_json[k])
    # the ratios are the rates over the prototype's, measured in the same run
    for k in ("move_pages", "migrate_pages"):
        assert cli_json[f"{k}_ratio"] == pytest.approx(
            cli_json[f"{k}_pps"] / cli_json["proto_pps"], rel=1e-2)
    # --quick skips the 1 TiB machine (test_the_1_tib_child_produces_its_figures)
    assert all(cli_json[k] is None for k in TIB_KEYS)
    # null only where the host's move_pages(2) cannot be called
    q = cli_json["query_ratio_vs_kernel"]
    assert q is None or (isinstance(q, float) and q > 0)
    if q is None:
        assert bench.kernel_query_s(16, 1)[0] is None


def test_text_report_without_ui_puts_each_figure_beside_its_goal(capsys):
    assert bench.main([*TINY, "--runs", "1"]) == 0  # no ui: the console's figures skipped
    out = capsys.readouterr().out
    for _, what, (op, _), _ in bench.FIGURES:
        # the sizes in a label are those that ran (bench.figure_label)
        label = re.sub(r"1\\ Mi|16\\ GiB", r"[\\d.]+\\ [KMG]i(B)?", re.escape(what))
        line = next((ln for ln in out.splitlines() if re.match(label, ln)), None)
        assert line is not None, what
        assert re.search(r"(≤|≥|yes)" if op != "info" else r"\(yardstick\)", line)
        assert line.rstrip().endswith(("yes", "NO", "-"))
    assert "no UI given" in out and "host:" in out and "skipped" in out


def test_the_1_tib_child_produces_its_figures():
    """The same child `numacon bench` runs for the 1 TiB machine, on four 256 MiB
    nodes: it builds, migrates, checks and produces every view, and reports each
    time and its peak RSS (wait4)."""
    r = bench.run_tib(size="256M,4M")
    assert r["ok"] and r["rc"] == 0 and r["moved"] == 1024
    assert r["check_s"] > 0 and r["rss_gib"] > 0
    assert set(r["views_s"]) == {"numa_maps", "numastat", "vmstat", "offline_dry_run"}
    assert all(v > 0 for v in r["views_s"].values())


def test_the_prototype_is_the_designs_with_sizes():
    """tools/proto.py moves pages as shared/design/move_pages_prototype.py does; only
    the sizes are parameters (a small machine here)."""
    assert proto.proto_move_pages_pps(1, frames=16384, moves=1024) > 0


def test_goals_are_judged_as_the_issue_states():
    assert bench.goal_met("build_s", 0.9) and not bench.goal_met("build_s", 1.1)
    assert bench.goal_met("move_pages_pps", 10e6) and not bench.goal_met("move_pages_pps", 9e6)
    assert bench.goal_met("tib_ok", True) is True and bench.goal_met("tib_ok", False) is False
    assert bench.goal_met("query_ratio_vs_kernel", None) is None
    assert bench.goal_met("move_pages_ratio", 1.25) and not bench.goal_met("move_pages_ratio", 1.2)
    assert bench.goal_met("proto_pps", 5e6) is None  # the yardstick has no goal
    assert bench.goal_met("bytes_per_frame", 20.0) and not bench.goal_met("bytes_per_frame", 21)
    for k, goal in (("tib_check_s", 3.0), ("tib_views_s", 2.0), ("tib_peak_gib", 8.0),
                    ("help_ms", 100.0), ("view_ms", 100.0)):
        assert bench.goal_met(k, goal) and not bench.goal_met(k, goal * 1.01)
    r = bench.rounded({"build_s": 0.123456, "tib_ok": True})
    assert list(r) == list(bench.KEYS) and r["build_s"] == 0.1235 and r["tib_ok"] is True


def _bytes(s: str) -> int:
    return parse_size(s, "size")


@pytest.mark.parametrize("scale", [1.0, 1 / 8, 16384 / 2**24])
def test_reference_machine_is_consistent(scale):
    """64 GiB x scale over 4 nodes, 75 % mapped by processes, a 16 GiB process and a
    16 GiB Movable zone 75 % used and made of whole memory blocks."""
    d = bench.reference_description(scale)
    block = _bytes(d["machine"]["block_size"])
    zones = [(n["id"], z, _bytes(s)) for n in d["nodes"] for z, s in n["zones"].items()]
    total = sum(b for _, _, b in zones)
    gib = total // 64
    start = sum(b for n, _, b in zones if n < 3)  # the Movable zone: whole blocks
    assert start % block == 0 and 16 * gib % block == 0
    procs = {p["name"]: sum(_bytes(v["size"]) for v in p["vmas"]) for p in d["processes"]}
    assert sum(procs.values()) * 4 == total * 3
    assert procs["db"] == 16 * gib and procs["cache"] == 12 * gib
    assert [(n, b) for n, z, b in zones if z == "Movable"] == [(3, 16 * gib)]
    if scale == 1.0:
        assert total == 64 << 30


def test_engine_never_imports_the_console():
    pat = re.compile(r"^\s*(from|import) (textual|tui)\b", re.M)
    bad = [p.name for p in (ROOT / "engine").glob("*.py") if pat.search(p.read_text())]
    assert bad == []
    assert callable(bench_ui.redraw_ms) and callable(bench_ui.key_latency_ms)
    assert callable(bench_ui.help_view_ms)
