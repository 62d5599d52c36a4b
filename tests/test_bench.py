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
from tools import bench
from tui import bench_ui, cli

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--quick", "--frames", "16384"]  # a 64 MiB reference machine, one run
NUMBER_KEYS = ("build_s", "move_pages_pps", "migrate_pages_pps", "offline_s",
               "bytes_per_frame", "save_s", "load_s", "redraw_ms", "key_latency_ms")


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
        "query_ratio_vs_kernel")


def test_json_figures_have_their_types(cli_json):
    for k in NUMBER_KEYS:  # the console's figures too: numacon bench hands in the UI
        assert isinstance(cli_json[k], float) and cli_json[k] > 0, (k, cli_json[k])
    # --quick skips the 1 TiB machine
    assert cli_json["tib_ok"] is None and cli_json["tib_rss_gib"] is None
    # null only where the host's move_pages(2) cannot be called
    q = cli_json["query_ratio_vs_kernel"]
    assert q is None or (isinstance(q, float) and q > 0)
    if q is None:
        assert bench.kernel_query_s(16, 1)[0] is None


def test_text_report_without_ui_puts_each_figure_beside_its_goal(capsys):
    assert bench.main([*TINY, "--runs", "1"]) == 0  # no ui: the console's figures skipped
    out = capsys.readouterr().out
    for _, what, _, _ in bench.FIGURES:
        # the sizes in a label are those that ran (bench.figure_label)
        label = re.sub(r"1\\ Mi|16\\ GiB", r"[\\d.]+\\ [KMG]i(B)?", re.escape(what))
        line = next((ln for ln in out.splitlines() if re.match(label, ln)), None)
        assert line is not None, what
        assert re.search(r"(≤|≥|yes)", line) and line.rstrip().endswith(("yes", "NO", "-"))
    assert "no UI given" in out and "host:" in out and "skipped" in out


def test_goals_are_judged_as_the_issue_states():
    assert bench.goal_met("build_s", 0.9) and not bench.goal_met("build_s", 1.1)
    assert bench.goal_met("move_pages_pps", 10e6) and not bench.goal_met("move_pages_pps", 9e6)
    assert bench.goal_met("tib_ok", True) is True and bench.goal_met("tib_ok", False) is False
    assert bench.goal_met("query_ratio_vs_kernel", None) is None
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
