"""`brainops eval`: the scenario suite (rules or model planner, pass^k, reports, comparisons),
`eval replay` (re-decide recorded observations) and `eval sim` (closed-loop fleet simulation vs baselines)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from agent.cli.console import make_console

if TYPE_CHECKING:
    from core.settings import Settings
    from evals.runner import PlannerFactory

console = make_console()
PLANNERS = ("rules", "llm")
CONTROLLERS = ("agent", "hpa", "fixed")


def register(app: typer.Typer) -> None:
    eval_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)
    eval_app.callback()(suite)
    eval_app.command("replay", help="Re-run planner + guard on recorded observations; show differing decisions.")(
        replay
    )
    eval_app.command("sim", help="Closed-loop fleet simulation: the agent vs HPA and fixed-worker baselines.")(sim)
    app.add_typer(eval_app, name="eval", help="Offline evals: scenario suite, replay, fleet simulator.")


def _settings(config: str | None) -> Settings:
    from core.settings import load_settings

    return load_settings(config)


def _check_planner(planner: str) -> None:
    if planner not in PLANNERS:
        raise typer.BadParameter(f"planner must be one of {', '.join(PLANNERS)}, got {planner!r}")


def _policy_data(path: Path) -> dict[str, Any]:
    """Validated through the real loader (file:line errors), then as plain data for per-scenario overrides."""
    from policies.loader import PolicyError, load_policy

    try:
        return load_policy(path).model_dump(mode="json")
    except PolicyError as exc:
        raise typer.BadParameter(str(exc), param_hint="--policy") from None


def _factory(planner: str, settings: Settings, state_dir: Path) -> PlannerFactory:
    from evals.runner import llm_factory, rules_factory

    if planner == "rules":
        return rules_factory
    try:
        return llm_factory(settings, state_dir)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--planner") from None


def suite(
    ctx: typer.Context,
    planner: str = typer.Option("rules", "--planner", help="rules | llm (the configured model tiers)"),
    repeat: int = typer.Option(1, "--repeat", "-k", min=1, help="Runs per scenario; pass^k needs all k to pass."),
    scenarios: Path = typer.Option(None, "--scenarios", help="Scenario directory (instead of --split)."),
    split: str = typer.Option(
        None, "--split", help="tuned (evals/scenarios, the default) | heldout (evals/scenarios_heldout) | all."
    ),
    out: Path = typer.Option(Path("eval-out"), "--out", help="Where the JSON, Markdown, HTML and PNGs go."),
    compare: Path = typer.Option(None, "--compare", help="Another run's eval-*.json to compare side by side."),
    policy: Path = typer.Option(None, "--policy", help="Policy file (default: the configured one)."),
    label: str = typer.Option("", "--label", help="Name of this run in reports (default: planner name)."),
    fail_under: float = typer.Option(None, "--fail-under", help="Exit 1 when pass^k is below this share."),
    config: str = typer.Option(None, "--config", "-c", help="brainops.toml"),
) -> None:
    """Run the scenario suite and write reports."""
    if ctx.invoked_subcommand is not None:
        return
    from evals.report import load_run, write_suite_report
    from evals.runner import SuiteSetup, run_suite
    from evals.scenario import SPLITS, ScenarioError, load_scenarios, load_split

    _check_planner(planner)
    if split is not None and split not in (*SPLITS, "all"):
        raise typer.BadParameter(f"must be one of {', '.join([*SPLITS, 'all'])}, got {split!r}", param_hint="--split")
    if scenarios is not None and split is not None:
        raise typer.BadParameter("give --scenarios or --split, not both", param_hint="--split")
    settings = _settings(config)
    policy_path = policy or settings.policy_path
    try:
        loaded = load_scenarios(scenarios) if scenarios is not None else load_split(split or "tuned")
        other = load_run(compare) if compare else None
    except (ScenarioError, ValueError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    setup = SuiteSetup(
        policy_data=_policy_data(policy_path),
        planner_config=settings.planner.model_dump(mode="json"),
        workdir=out / "state",
        factory=_factory(planner, settings, out / "state"),
        policy_source=str(policy_path),
        planner_kind=planner,
    )
    split_label = f"{planner}-{split}" if split not in (None, "tuned") else planner
    run = run_suite(loaded, setup, repeat=repeat, label=label or split_label)
    files = write_suite_report(run, out, other)
    summary = run.summary()
    score = summary[f"pass_hat_{repeat}"]
    console.print(
        f"pass^{repeat} {score:.3f} over {summary['scenarios']} scenarios; precision {summary['precision']:.3f}, "
        f"recall {summary['recall']:.3f}, forbidden executed {summary['forbidden_executed']}"
    )
    console.print(f"reports: {files.markdown}  {files.html}  {files.json}")
    if fail_under is not None and score < fail_under:
        raise typer.Exit(1)


def replay(
    planner: str = typer.Option("rules", "--planner", help="rules | llm"),
    policy: Path = typer.Option(None, "--policy", help="Policy to judge with (default: the configured one)."),
    out: Path = typer.Option(None, "--out", help="Write replay.json, replay.md, replay.html and replay.png here."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    config: str = typer.Option(None, "--config", "-c", help="brainops.toml"),
) -> None:
    """Re-decide every recorded tick on its archived observation; list ticks whose decisions differ."""
    from agent.state.archive import ObservationArchive
    from agent.state.decisions import DecisionLog
    from evals.replay import replay as run_replay
    from policies.engine import PolicyEngine
    from policies.model import Policy

    _check_planner(planner)
    settings = _settings(config)
    if not settings.state_db.exists():
        console.print(f"[red]no decision log at {settings.state_db}[/]")
        raise typer.Exit(2)
    policy_model = Policy.model_validate(_policy_data(policy or settings.policy_path))
    engine = PolicyEngine(policy_model, known_hosts=[h.name for h in settings.hosts])
    state_dir = (out or settings.home / "eval") / "state"
    factory = _factory(planner, settings, state_dir)
    from evals.scenario import Expectations, Scenario

    # Factories take a scenario for per-scenario overrides; replay has none, so a neutral one stands in.
    stand_in = Scenario("replay", "replay", "control", _empty_observation(), Expectations())
    made = factory(stand_in, policy_model, engine, settings.planner)
    report = run_replay(DecisionLog(settings.state_db), ObservationArchive(settings.state_db), made, engine.evaluate)
    data = report.to_dict()
    files = None
    if out:
        from evals.report import write_replay_report

        files = write_replay_report(data, out, planner=planner, policy=str(policy or settings.policy_path))
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    console.print(
        f"{report.ticks} ticks, {report.compared} replayed, {report.same} same, {len(report.diffs)} differ, "
        f"{len(report.missing_observations)} without an archived observation"
    )
    for diff in report.diffs:
        console.print(f"[yellow]{diff.tick_id}[/] recorded {list(diff.recorded)}\n  replayed {list(diff.replayed)}")
    if files is not None:
        console.print(f"reports: {files.markdown}  {files.html}  {files.json}")


def _empty_observation() -> Any:
    from core.domain import Observation

    return Observation(time=0.0)


def _seed_list(seeds: str) -> list[int]:
    """Seeds from a comma list, ranges or both: 1,2,5 / 1-20 / 1-3,7."""
    out: list[int] = []
    try:
        for part in (p.strip() for p in seeds.split(",") if p.strip()):
            first, dash, last = part.partition("-")
            out += list(range(int(first), int(last) + 1)) if dash else [int(part)]
    except ValueError:
        raise typer.BadParameter(
            f"seeds must be integers or ranges (1-20), got {seeds!r}", param_hint="--seeds"
        ) from None
    if not out:
        raise typer.BadParameter(f"no seeds in {seeds!r}", param_hint="--seeds")
    return list(dict.fromkeys(out))


def _scenario_list(values: list[str]) -> list[str]:
    from evals.sim_model import SCENARIOS

    names = list(dict.fromkeys(n.strip() for v in values for n in v.split(",") if n.strip()))
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        raise typer.BadParameter(
            f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}"
            if unknown
            else f"name a scenario: {', '.join(SCENARIOS)}",
            param_hint="--scenario",
        )
    return names


def sim(
    hours: float = typer.Option(24.0, "--hours", help="Simulated time per run in hours (more than 0)."),
    seeds: str = typer.Option("1", "--seeds", help="Seeds: comma-separated, ranges (1-20) or both."),
    scenario: list[str] = typer.Option(
        ["bursty"],
        "--scenario",
        help="steady | bursty | diurnal | step | host_failure | provider_outage; repeatable or comma-separated.",
    ),
    controllers: str = typer.Option(",".join(CONTROLLERS), "--controllers", help="agent,hpa,fixed"),
    policy: Path = typer.Option(None, "--policy", help="Policy file (default: the shipped one)."),
    out: Path = typer.Option(Path("sim-out"), "--out", help="Where sim.json/.md/.html and the plots go."),
    workers: int = typer.Option(0, "--workers", min=0, help="Simulations run at once (0: one per CPU)."),
) -> None:
    """Run the fleet simulator for each scenario, seed and controller (in parallel), and write the report:
    medians and worst seeds side by side, the agent's targets met or not."""
    from rich.progress import Progress

    from evals.sim_grid import grid, run_grid
    from evals.sim_report import write_sim_report
    from evals.sim_summary import judge, summarize_runs, targets_met

    if not hours > 0:  # also NaN
        raise typer.BadParameter(f"must be more than 0 hours, got {hours:g}", param_hint="--hours")
    names = [c.strip() for c in controllers.split(",") if c.strip()]
    unknown = sorted(set(names) - set(CONTROLLERS))
    if unknown or not names:
        raise typer.BadParameter(f"controllers must be among {', '.join(CONTROLLERS)}", param_hint="--controllers")
    scenarios = _scenario_list(scenario)
    runs = grid(scenarios, _seed_list(seeds), names, hours, policy)
    with Progress() as bar:
        task = bar.add_task("simulating", total=len(runs))
        results = run_grid(runs, workers or None, lambda _done, _run, _result: bar.advance(task))
    title = f"fleet simulation: {', '.join(scenarios)}, {hours:g} h"
    files = write_sim_report(results, out, title, timeline_stride=1 if len(results) <= 30 else 10)
    targets = judge(summarize_runs([r.metrics for r in results]))
    for t in targets:
        mark = "[green]met[/]" if t.met else "[red]not met[/]"
        console.print(f"{t.scenario:16s} {t.name:22s} {mark}  {t.verdict.rsplit(': ', 1)[0]}", highlight=False)
    met, total = targets_met(targets)
    console.print(f"targets met {met}/{total}; report: {files.markdown}  {files.html}")
