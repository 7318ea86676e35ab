"""The HTML reports as a person sees them: rendered by headless Chromium, measured from the live DOM and
photographed, so a test can assert that a page is not blank and that every figure loaded and painted.

    python tests/support/report_pages.py [OUT_DIR]    # eval, replay and sim reports + a screenshot of each

Chromium: the Debian package `chromium` (or $BRAINOPS_CHROMIUM); `chromium_binary()` is None without one,
and tests skip with that reason. Pages are loaded from file:// with --dump-dom on a copy that carries a probe
script (image natural sizes and positions, the page height); the screenshot is taken at the page's full height.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROBE_ID = "brainops-probe"
PROBE = f"""<script>
window.addEventListener('load', () => {{
  const doc = document.documentElement;
  const images = Array.from(document.images).map(img => {{
    const r = img.getBoundingClientRect();
    return {{src: img.getAttribute('src'), natural_width: img.naturalWidth, natural_height: img.naturalHeight,
             complete: img.complete, x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}};
  }});
  const facts = {{height: Math.ceil(Math.max(doc.scrollHeight, document.body.scrollHeight)),
                  width: Math.ceil(doc.scrollWidth), images: images,
                  tables: document.querySelectorAll('table').length, text: document.body.innerText}};
  const out = document.createElement('pre');
  out.id = '{PROBE_ID}';
  out.textContent = JSON.stringify(facts);
  document.body.appendChild(out);
}});
</script>"""
MAX_HEIGHT = 16000  # px: Chromium's screenshot limit is larger, but a report taller than this is a bug anyway


@dataclass(frozen=True)
class PageFacts:
    height: int
    width: int
    images: list[dict[str, Any]]
    tables: int
    text: str


def chromium_binary() -> str | None:
    named = os.environ.get("BRAINOPS_CHROMIUM")
    if named:
        return named if Path(named).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromium(args: list[str], timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    binary = chromium_binary()
    if binary is None:
        raise RuntimeError("no chromium binary (apt-get install chromium, or set BRAINOPS_CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="brainops-chromium-") as profile:
        flags = [
            "--headless",
            "--no-sandbox",  # root in CI containers
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
            "--allow-file-access-from-files",
            f"--user-data-dir={profile}",
        ]
        return subprocess.run(
            [binary, *flags, *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
            stdin=subprocess.DEVNULL,
        )


def page_facts(page: Path, width: int = 1400) -> PageFacts:
    """Load `page` (via a probed copy next to it, so relative image paths resolve) and read the DOM after load."""
    probed = page.with_name(f".probe-{page.name}")
    source = page.read_text(encoding="utf-8")
    probed.write_text(source.replace("</body>", PROBE + "</body>", 1), encoding="utf-8")
    try:
        done = _chromium([f"--window-size={width},900", "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()])
    finally:
        probed.unlink(missing_ok=True)
    start = done.stdout.find(f'<pre id="{PROBE_ID}">')
    if start < 0:
        raise AssertionError(f"{page}: the probe did not run (no load event?); stderr: {done.stderr[-2000:]}")
    body = done.stdout[start:].split(">", 1)[1].split("</pre>", 1)[0]
    data = json.loads(html.unescape(body))
    return PageFacts(data["height"], data["width"], data["images"], data["tables"], data["text"])


def screenshot(page: Path, png: Path, width: int = 1400, height: int | None = None) -> Path:
    """A PNG of the whole page (its measured height unless given) at `width` CSS pixels."""
    tall = min(MAX_HEIGHT, height or page_facts(page, width).height)
    png.parent.mkdir(parents=True, exist_ok=True)
    _chromium([f"--window-size={width},{tall}", f"--screenshot={png}", page.as_uri()])
    if not png.exists():
        raise AssertionError(f"chromium wrote no screenshot of {page}")
    return png


@dataclass(frozen=True)
class Pixels:
    width: int
    height: int
    std: float  # grey-level standard deviation over the whole shot: a blank page is ~0
    ink: float  # share of pixels that are not (near) white


def pixels(png: Path, box: tuple[float, float, float, float] | None = None) -> Pixels:
    """Grey-level statistics of the screenshot, or of the box (x, y, width, height) within it."""
    import numpy as np
    from PIL import Image

    with Image.open(png) as img:
        grey = img.convert("L")
        if box is not None:
            x, y, w, h = box
            grey = grey.crop((int(x), int(y), int(x + w), int(y + h)))
        values = np.asarray(grey, dtype=float)
    return Pixels(values.shape[1], values.shape[0], float(values.std()), float((values < 235).mean()))


# ---------------------------------------------------------------- the three reports, for the script and tests


def eval_report(out: Path) -> Any:
    """The rules planner over the shipped scenarios, compared with a run under the TIGHT policy."""
    from core.settings import PlannerConfig
    from evals.report import write_suite_report
    from evals.runner import SuiteSetup, rules_factory, run_suite
    from evals.scenario import load_scenarios, merged

    scenarios = load_scenarios()

    def run(label: str, override: dict[str, Any]) -> Any:
        policy = merged(default_policy(), override)
        setup = SuiteSetup(policy, PlannerConfig().model_dump(), out / f"state-{label}", rules_factory)
        return run_suite(scenarios, setup, repeat=1, label=label, progress=False)

    return write_suite_report(run("rules", {}), out, run("tight", TIGHT).to_dict())


REPLAYED = (
    "scale-up-extract-moderate",
    "control-all-quiet",
    "dedup-small-over-threshold",
    "scale-up-from-zero-activation",
)
TIGHT = {"workers": {"extract": {"max": 3}}}  # a policy under which scale-up-extract-moderate decides otherwise


def default_policy() -> dict[str, Any]:
    import yaml

    return dict(yaml.safe_load((Path(__file__).resolve().parents[2] / "policies" / "default.yaml").read_text()))


def record_ticks(db: Path, ids: tuple[str, ...] = REPLAYED) -> list[Any]:
    """These scenarios' observations (the REPLAYED ones by default) through the real tick graph under the default
    policy, recorded in the decision log and observation archive at `db` as ticks t0, t1, ...; returns them."""
    from agent.service.actor import ActionRuns, Actor
    from agent.state.archive import ObservationArchive
    from agent.state.decisions import DecisionLog
    from core.settings import PlannerConfig
    from evals.runner import NotingDesk, RecordingEffects, rules_factory
    from evals.scenario import load_scenarios
    from graphs.tick import build_tick_graph
    from policies.engine import PolicyEngine
    from policies.model import Policy

    db.parent.mkdir(parents=True, exist_ok=True)
    default = Policy.model_validate(default_policy())
    log, archive = DecisionLog(db), ObservationArchive(db)
    observed = [s for s in load_scenarios() if s.id in ids]
    for n, scenario in enumerate(observed):
        obs = scenario.observation

        def observer(now: float, obs: Any = obs) -> Any:
            archive.put(obs)  # what the FleetObserver hook does each tick
            return obs

        def clock(obs: Any = obs) -> float:
            return float(obs.time)

        engine = PolicyEngine(default)
        graph = build_tick_graph(
            observer=observer,
            planner=rules_factory(scenario, default, engine, PlannerConfig()),
            guard=engine.evaluate,
            actor=Actor(RecordingEffects(), ActionRuns(db), clock=clock),
            desk=NotingDesk(),
            recorder=log,
        )
        graph.invoke({"tick_id": f"t{n}", "now": obs.time, "dry_run": False})
    return observed


def replay_report(out: Path) -> Any:
    """record_ticks, then replayed under the TIGHT policy: one tick decides differently."""
    from agent.state.archive import ObservationArchive
    from agent.state.decisions import DecisionLog
    from core.settings import PlannerConfig
    from evals.replay import replay
    from evals.report import write_replay_report
    from evals.runner import rules_factory
    from evals.scenario import merged
    from policies.engine import PolicyEngine
    from policies.model import Policy

    db = out / "state.db"
    observed = record_ticks(db)
    tight = Policy.model_validate(merged(default_policy(), TIGHT))
    engine = PolicyEngine(tight)
    planner = rules_factory(observed[0], tight, engine, PlannerConfig())
    report = replay(DecisionLog(db), ObservationArchive(db), planner, engine.evaluate)
    return write_replay_report(report.to_dict(), out, planner="rules", policy="default.yaml, extract max 3")


def sim_report(out: Path, hours: float = 2.0, workers: int = 2) -> Any:
    """The real simulator: two scenarios, two seeds, the agent and both baselines."""
    from evals.sim_grid import grid, run_grid
    from evals.sim_report import write_sim_report

    results = run_grid(grid(["bursty", "step"], [1, 2], ["agent", "hpa", "fixed"], hours, None), workers, None)
    return write_sim_report(results, out, f"fleet simulation: bursty, step, {hours:g} h")


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path("report-pages")
    if chromium_binary() is None:
        print("no chromium binary: apt-get install chromium (or set BRAINOPS_CHROMIUM)", file=sys.stderr)
        return 2
    for name, make in (("eval", eval_report), ("replay", replay_report), ("sim", sim_report)):
        files = make(out / name)
        facts = page_facts(files.html)
        shot = screenshot(files.html, out / f"{name}.png", height=facts.height)
        loaded = sum(img["natural_width"] > 0 for img in facts.images)
        print(f"{shot}: {facts.height} px tall, {loaded}/{len(facts.images)} images loaded, {facts.tables} tables")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    raise SystemExit(main(sys.argv[1:]))
