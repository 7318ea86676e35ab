"""The eval, replay and simulator reports as pages: the Markdown-to-HTML rendering (tables without delimiter
rows, every row as wide as its header), the figures each report promises, `eval replay` writing HTML, and,
where a Chromium binary exists, each page rendered headless: not blank, every figure loaded and painted."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from support.report_pages import (
    TIGHT,
    chromium_binary,
    default_policy,
    eval_report,
    page_facts,
    pixels,
    record_ticks,
    replay_report,
    screenshot,
    sim_report,
)
from typer.testing import CliRunner

from evals.report_html import ReportFiles, html_page, split_row

SUITE_PLOTS = ["pass_by_category", "precision_recall", "forbidden", "approvals", "tokens_cost", "latency"]


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ReportFiles]:
    """The three reports, made once: the rules suite compared with a tighter policy, a replay in which one
    recorded tick decides differently, and the real simulator (two scenarios, two seeds, three controllers)."""
    root = tmp_path_factory.mktemp("reports")
    return {
        "eval": eval_report(root / "eval"),
        "replay": replay_report(root / "replay"),
        "sim": sim_report(root / "sim", hours=0.25, workers=1),
    }


def tables(page: str) -> list[list[list[str]]]:
    """Each <table> as rows of cell texts (th and td alike)."""
    out = []
    for table in re.findall(r"<table>(.*?)</table>", page, flags=re.S):
        rows = re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)
        out.append([re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, flags=re.S) for row in rows])
    return out


# ---------------------------------------------------------------- Markdown -> HTML


def test_tables_lose_their_delimiter_rows_and_keep_empty_cells() -> None:
    md = "\n".join(
        [
            "| scenario | this run | other run |",
            "|---|:-:|--:|",
            "| (none) | | |",
            "| a \\| b | pass | **FAIL** |",
            "",
            "name | value",
            "--- | ---",
            "x | 1",
            "",
            "---|---",
            "text after",
        ]
    )

    page = html_page("t", md)

    assert "---" not in page
    first, second = tables(page)
    assert first == [["scenario", "this run", "other run"], ["(none)", "", ""], ["a | b", "pass", "<b>FAIL</b>"]]
    assert second == [["name", "value"], ["x", "1"]]
    assert '<td class="center ok">pass</td>' in page and '<td class="num bad"><b>FAIL</b></td>' in page
    assert "<p>text after</p>" in page
    assert split_row("| a | b \\| c |  |") == ["a", "b \\| c", ""]


def test_inline_marks_lists_and_images() -> None:
    md = "- **met** · x `a**b`\n- **not met** · y\n\n![one](a.png)\n![two](b.png)\n\n![three](c.png)\nan ** alone"

    page = html_page("t", md)

    assert '<li class="ok"><b>met</b> · x <code>a**b</code></li><li class="bad"><b>not met</b> · y</li>' in page
    assert '<p class="figs row"><img src="a.png" alt="one"><img src="b.png" alt="two"></p>' in page
    assert '<p class="figs"><img src="c.png" alt="three"></p>' in page and "<p>an ** alone</p>" in page


@pytest.mark.parametrize("name", ["eval", "replay", "sim"])
def test_report_pages_have_clean_tables_and_every_figure(reports: dict[str, ReportFiles], name: str) -> None:
    files = reports[name]
    page, md = files.html.read_text(), files.markdown.read_text()

    assert "---" not in page and "<td>|</td>" not in page
    found = tables(page)
    assert found
    for table in found:
        assert all(len(row) == len(table[0]) for row in table), table[0]
    shown = re.findall(r'<img src="([^"]+)"', page)
    assert shown == [p.name for p in files.plots] and all(f"]({p.name})" in md for p in files.plots)
    assert all(p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 5000 for p in files.plots)


def test_suite_report_has_the_promised_figures(reports: dict[str, ReportFiles]) -> None:
    files = reports["eval"]

    assert [p.stem for p in files.plots] == SUITE_PLOTS
    md = files.markdown.read_text()
    for heading in ("## Actions", "## Safety", "## Cost and speed", "## Comparison: rules (this run) vs tight"):
        assert heading in md
    assert "- **FAIL** provider-outage-backlog (provider_outage): forbidden scale_workers" in md


def test_sim_report_gives_a_verdict_line_per_metric(reports: dict[str, ReportFiles]) -> None:
    import json

    files = reports["sim"]
    data = json.loads(files.json.read_text())
    md = files.markdown.read_text()

    lines = [line for line in md.splitlines() if line.startswith(("- **met** · ", "- **not met** · "))]
    checks = [(t, c) for t in data["targets"] for c in t["checks"]]
    assert len(lines) == len(checks) > 0
    for line, (target, check) in zip(lines, checks, strict=True):
        assert line.startswith(f"- **{'met' if check['met'] else 'not met'}** · {target['name']}: ")
        assert re.search(r"\d", line.split(": ", 1)[1]) and "target" in line  # the numbers and the target
    missed = [t for t in data["targets"] if not t["met"]]
    summary = (
        "Every target met."
        if not missed
        else "**not met**: " + ", ".join(f"{t['scenario']} {t['name']}" for t in missed)
    )
    assert summary in md


def test_replay_report_lists_the_tick_that_decides_differently(reports: dict[str, ReportFiles]) -> None:
    page = reports["replay"].html.read_text()

    assert "<b>1 of 4 replayed ticks decide differently</b>" in page
    rows = tables(page)[1]
    assert rows[0] == ["tick", "recorded", "replayed"] and len(rows) == 2
    tick, recorded, replayed = rows[1]
    assert re.fullmatch(r"t\d", tick)
    assert "scale_workers count=4 host=worker1 kind=extract (allow)" in recorded
    assert "count=3 host=worker1" in replayed


def test_eval_replay_cli_writes_the_html_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from agent.cli.main import app
    from evals.scenario import merged

    home = tmp_path / "home"
    record_ticks(home / "state.db")
    tight = tmp_path / "tight.yaml"
    tight.write_text(yaml.safe_dump(merged(default_policy(), TIGHT)))
    monkeypatch.setenv("BRAINOPS_HOME", str(home))
    monkeypatch.delenv("BRAINOPS_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)

    done = CliRunner().invoke(app, ["eval", "replay", "--policy", "tight.yaml", "--out", "out"])

    assert done.exit_code == 0, done.output
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} >= {"replay.json", "replay.md", "replay.html", "replay.png"}
    page = (out / "replay.html").read_text()
    assert "decide differently" in page and '<img src="replay.png"' in page
    assert "out/replay.html" in done.output.split()


# ---------------------------------------------------------------- in a browser

needs_chromium = pytest.mark.skipif(
    chromium_binary() is None, reason="no chromium binary (apt-get install chromium, or set BRAINOPS_CHROMIUM)"
)
HEADLINES = {"eval": "pass^1 = ", "replay": "replayed ticks decide differently", "sim": "Targets met: "}


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("name", ["eval", "replay", "sim"])
def test_report_page_renders_with_every_figure_painted(
    reports: dict[str, ReportFiles], name: str, tmp_path: Path
) -> None:
    from PIL import Image

    files = reports[name]

    facts = page_facts(files.html)
    shot = screenshot(files.html, tmp_path / f"{name}.png", height=facts.height)

    assert HEADLINES[name] in facts.text and "---" not in facts.text
    assert len(facts.images) == len(files.plots)
    for img, plot in zip(facts.images, files.plots, strict=True):
        with Image.open(plot) as png:
            assert (img["natural_width"], img["natural_height"]) == png.size, img["src"]  # loaded, decoded
        assert img["width"] > 300 and img["height"] > 100  # laid out at a readable size
    whole = pixels(shot)
    assert whole.height == facts.height > 600 and whole.std > 20 and whole.ink > 0.03
    for img in facts.images:  # every figure painted where the layout put it: not a blank box or a broken icon
        figure = pixels(shot, (img["x"], img["y"], img["width"], img["height"]))
        assert figure.std > 15, img["src"]


@pytest.mark.slow
@needs_chromium
def test_the_page_checks_fail_on_a_missing_figure_and_a_blank_page(tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text(html_page("broken", "# a report\n\n![gone](missing.png)\n"))
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><html><body></body></html>")

    facts = page_facts(broken)
    shot = pixels(screenshot(blank, tmp_path / "blank.png", height=700))

    assert [img["natural_width"] for img in facts.images] == [0]
    assert shot.std < 1 and shot.ink < 0.001


def test_latency_histogram_has_real_bins(reports: dict[str, ReportFiles]) -> None:
    import json

    from evals.report_plots import histogram, latency_bins

    data = json.loads(reports["eval"].json.read_text())
    real = [r["latency_s"] * 1000 for sc in data["scenarios"] for r in sc["runs"]]
    edges, _ = latency_bins(real)
    assert sum(c > 0 for c in histogram(real, edges)) > 1 and max(real) < 100  # ms, not s

    slow_first = [0.2 + 0.01 * (i % 30) for i in range(56)] + [450.0]  # one 450 ms tick among sub-ms ones
    edges, log = latency_bins(slow_first)
    counts = histogram(slow_first, edges)
    bulk = [c for c, right in zip(counts, edges[1:], strict=True) if right <= 1.0]
    assert log and sum(c > 0 for c in bulk) > 1 and sum(counts) == len(slow_first)
    edges, log = latency_bins([0.0] * 5 + [0.3])  # rounded to 0: still on the axis
    assert sum(histogram([0.0] * 5 + [0.3], edges)) == 6


def test_tokens_and_cost_figure_draws_bars_when_a_model_spent(tmp_path: Path) -> None:
    from PIL import Image

    from evals.report_plots import plot_tokens_cost

    def run(label: str, tokens: int, cost: float) -> dict[str, Any]:
        runs = [{"planner": {"tokens_in": tokens, "tokens_out": tokens // 10, "cost": cost}}]
        scenarios = [{"category": c, "runs": runs} for c in ("control", "budget")]
        summary = {"tokens_in": 2 * tokens, "tokens_out": 2 * (tokens // 10), "cost": 2 * cost}
        return {"label": label, "planner": "llm" if tokens else "rules", "scenarios": scenarios, "summary": summary}

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    spent = plot_tokens_cost(run("llm", 1200, 0.002), run("rules", 0, 0.0), tmp_path / "a")
    idle = plot_tokens_cost(run("rules", 0, 0.0), None, tmp_path / "b")

    with Image.open(spent) as a, Image.open(idle) as b:
        assert a.size[1] > 400 > 200 > b.size[1]  # two panels of bars vs one line of text
