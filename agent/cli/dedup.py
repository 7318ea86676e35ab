"""`brainops dedup [--dry-run]` and `brainops dedup undo MERGE_ID... | --last-run`, on the config's brain.

A dry run reads the brain and stores its dedup plan (the merges a live run may make); it changes no state.
A live run is an operator request through the agent (`Agent.request`): the dry run's plan goes through the
same policy guard, approvals and decision log as the loop's own dedup, and a dedup job worker merges exactly
that plan. One the policy sends for approval merges nothing now: it waits for `brainops approve`.
`undo` is the operator's own, not the agent's `undo_dedup` (the verifier's rollback of one harmful run): it
honours the policy's read_only and dry_run switches, holds the home lock like a tick, and is one decision record
(`dedup.undo`, planner "human").
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import typer

from agent.cli.console import EXIT_REFUSED, EXIT_USAGE

if TYPE_CHECKING:
    from agent.service.agent import Agent, TickReport
    from brain.store import BrainStore
    from core.domain import Outcome
    from core.settings import Settings
    from workers.dedup_plan import DedupPlan
    from workers.dedup_store import DedupReport
    from workers.dedup_undo import UndoResult

BRAIN_HELP = "LanceDB path or object-store URI of the brain (default: brain_uri from the config, else <home>/brain)."
BY_HELP = "Who asks: recorded in the decision log as the operator (approvers answer with `brainops approve`)."
UNDO_ACTION = "dedup.undo"  # a decision record's action for an undo: not an agent action, like policy.reload_failed
LIVE = ("starting", "running", "draining")

app = typer.Typer(no_args_is_help=False, invoke_without_command=True)


def register_top_level(root: typer.Typer) -> None:
    root.add_typer(app, name="dedup", help="Merge duplicate entities (reversibly, through the policy), or undo merges.")


def settings_for(brain: str | None) -> Settings:
    """The loaded config; `--brain` replaces its brain_uri (a relative path is relative to the working dir)."""
    from core.settings import load_settings

    return load_settings(brain_uri=brain) if brain else load_settings()


@app.callback()
def dedup(
    ctx: typer.Context,
    brain: str | None = typer.Option(None, "--brain", help=BRAIN_HELP),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List the merges; write nothing but their count and plan (what a live run merges)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    limit: int = typer.Option(50, "--show", min=0, help="Merges to list in the table."),
    llm_calls: int = typer.Option(
        50, "--llm-calls", min=0, help="Ambiguous pairs the fleet LLM may judge (0: never ask a model)."
    ),
    by: str = typer.Option("operator", "--by", help=BY_HELP),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="Wait for the merge job to end and report it (Ctrl-C stops the waiting only)."
    ),
) -> None:
    """Find duplicate live entities of the same type and merge them (each merge logged and undoable).

    A live run plans the merges (a dry run), then asks the agent to run that plan: the policy decides, and a
    dedup it sends for approval waits for `brainops approve` (exit 1, the approval id on stdout)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_for(brain)
    report = _run(settings.brain_path, True, llm_calls, show_progress=not as_json)
    plan = _stored_plan(settings.brain_path)
    if dry_run:
        if as_json:
            typer.echo(json.dumps(asdict(report), indent=2))
            return
        _print_report(report, limit)
        if plan is not None:
            typer.echo(f"stored as the brain's dedup plan {plan.hash} ({plan.absorbed} entities)")
        return
    if not as_json:
        _print_report(report, limit)
    if plan is None or plan.absorbed == 0:
        _emit(as_json, {"plan": None, "status": "nothing_to_merge"}, "dedup: nothing to merge")
        return
    _merge(settings, plan, by, wait, as_json)


def _merge(settings: Settings, plan: DedupPlan, by: str, wait: bool, as_json: bool) -> None:
    """The plan as an operator request: guard, maybe an approval, the job, all recorded like the loop's."""
    from agent.service.agent import Agent

    agent = Agent(settings)
    why = f"dry-run plan {plan.hash[:12]} merges {plan.absorbed} entities into {len(plan.merges)} survivors"
    args = {"dry_run": False, "expected_merges": plan.absorbed, "plan": plan.hash}
    tick = agent.request("run_dedup", args, f"cli:{by}", why=why)
    if not tick.outcomes:  # pragma: no cover - a requested proposal always gets an outcome
        typer.echo(f"dedup: tick {tick.tick_id} decided nothing (`brainops decisions` says why)", err=True)
        raise typer.Exit(EXIT_REFUSED)
    outcome, verdict = tick.outcomes[0], tick.verdicts[0]
    payload: dict[str, Any] = {
        "plan": {"hash": plan.hash, "absorbed": plan.absorbed, "merges": len(plan.merges)},
        "tick_id": tick.tick_id,
        "verdict": verdict.get("verdict"),
        "rule_ids": list(verdict.get("rule_ids", [])),
        "status": outcome.status,
        "detail": outcome.detail,
        "approval_id": outcome.data.get("approval_id"),
    }
    if outcome.status != "done":
        _emit(as_json, payload, _not_merged_line(outcome, verdict, by))
        if outcome.status != "dry_run":  # the policy's dry_run: recorded, nothing to merge, as asked
            raise typer.Exit(EXIT_REFUSED)
        return
    if not wait:
        _emit(as_json, payload, f"dedup: {outcome.detail} (recorded in tick {tick.tick_id})")
        return
    if not as_json:
        typer.echo(f"dedup: {outcome.detail}; waiting for it to end")
    job = _wait_for_job(agent, tick)
    payload["job"] = job
    merged = job.get("merged", 0)
    line = (
        f"dedup: job {job['id']} merged {merged} entities (exit 0); undo with `brainops dedup undo --last-run`"
        if job.get("exit") == 0
        else f"dedup: job {job['id']} ended with exit {job.get('exit')}: {job.get('meaning', '')} (log {job['log']})"
    )
    _emit(as_json, payload, line)
    if job.get("exit") != 0:
        raise typer.Exit(EXIT_REFUSED)


def _not_merged_line(outcome: Outcome, verdict: dict[str, Any], by: str) -> str:
    approval = outcome.data.get("approval_id")
    reasons = "; ".join(verdict.get("reasons", [])) or outcome.detail
    if approval:
        return (
            f"dedup: not merged: the policy asks for approval ({reasons}); approval {approval} waits: "
            f"`brainops approve {approval} --by {by}` runs the plan, `brainops approvals` shows it"
        )
    if outcome.status == "dry_run":
        return f"dedup: the policy is in dry_run: recorded, nothing merged ({outcome.detail})"
    return f"dedup: not merged: {outcome.status}: {outcome.detail}"


def _wait_for_job(agent: Agent, tick: TickReport, poll_s: float = 0.5) -> dict[str, Any]:
    """Follow the dedup job the request started until its process ends; what it did."""
    from workers.runtime import EXIT_MEANINGS

    dispatcher = agent.fleet.dispatcher
    jobs = [w for w in dispatcher.registry.live() if w.kind == "dedup" and w.one_shot]
    started = [w for w in jobs if w.id in tick.outcomes[0].detail] or jobs
    if not started:
        return {"id": "?", "exit": None, "meaning": "no dedup job found in the registry", "log": "-"}
    job = started[0]
    while True:
        seen = {w.id: w for w in dispatcher.workers(refresh=True)}.get(job.id)
        if seen is None or seen.state not in LIVE:
            break
        time.sleep(poll_s)
    code = seen.last_exit if seen is not None else None
    local = agent.settings.host(job.host).is_local
    log = str(agent.settings.run_dir / f"{job.id}.log") if local else f"{job.id}.log in the run dir on {job.host}"
    merged = (seen.processed or 0) if seen is not None and code == 0 else 0  # a pass counts what it absorbed
    return {"id": job.id, "exit": code, "meaning": EXIT_MEANINGS.get(code or 0, ""), "log": log, "merged": merged}


def _emit(as_json: bool, payload: dict[str, Any], line: str) -> None:
    typer.echo(json.dumps(payload, indent=2) if as_json else line)


def _stored_plan(brain: str) -> DedupPlan | None:
    from brain.store import BrainStore
    from workers.dedup_plan import load_plan

    return load_plan(BrainStore(brain))


# ---------------------------------------------------------------- undo


@app.command("undo")
def undo(
    merge_ids: list[str] = typer.Argument(None, help="Ids from `brainops dedup` output or the merge_log table."),
    last_run: bool = typer.Option(False, "--last-run", help="Undo every merge of the newest dedup run."),
    brain: str | None = typer.Option(None, "--brain", help=BRAIN_HELP),
    by: str = typer.Option("operator", "--by", help="Who undoes: recorded in the decision log as the operator."),
) -> None:
    """Restore the entities and relationships of merges exactly as they were before them (newest first).
    Recorded in the decision log; refused (and recorded) while the policy is read-only or a dedup job runs."""
    from agent.service.agent import Agent
    from brain.store import BrainStore, StoreError
    from workers.dedup_undo import last_run_merge_ids

    if bool(merge_ids) == last_run:
        raise typer.BadParameter("give merge ids or --last-run (one of the two)")
    settings = settings_for(brain)
    store = BrainStore(settings.brain_path)
    if not store.exists():
        typer.echo(f"dedup undo: no brain at {settings.brain_path}", err=True)
        raise typer.Exit(EXIT_USAGE)
    try:
        ids = list(merge_ids) if merge_ids else last_run_merge_ids(store)
    except StoreError as exc:
        typer.echo(f"dedup undo: {exc}", err=True)
        raise typer.Exit(EXIT_REFUSED) from exc
    if not ids:
        typer.echo("dedup undo: no merges left to undo")
        return
    agent = Agent(settings)
    why = "the newest dedup run's merges" if last_run else f"{len(ids)} merge(s) named"
    results = _undo_recorded(agent, store, ids, f"cli:{by}", why)
    if results is None:  # refused: said on stderr and recorded
        raise typer.Exit(EXIT_REFUSED)
    for result in results:
        if result.ok:
            typer.echo(
                f"undid {result.merge_id}: {result.entities_restored} entities, "
                f"{result.relationships_restored} relationship endpoints restored"
            )
        else:
            typer.echo(f"dedup undo {result.merge_id}: {result.status}: {result.detail}", err=True)
    if not all(r.ok for r in results):
        raise typer.Exit(EXIT_REFUSED)


def _undo_recorded(
    agent: Agent, store: BrainStore, ids: list[str], requester: str, why: str
) -> list[UndoResult] | None:
    """Undo under the policy's global switches and the home lock; one decision record whatever happens.
    None: refused (the reason is on stderr and in the record); empty: the policy's dry run, nothing undone."""
    from brain.store import StoreError
    from core.domain import Outcome
    from workers.dedup_undo import undo_merges

    args = {"merge_ids": ids, "brain": store.uri}
    no_rule = ("no policy rule covers dedup undo (not an agent action): the policy's read_only and dry_run apply",)

    def record(outcome: Outcome, **decision: Any) -> None:
        agent.record_operator(UNDO_ACTION, args, requester, why, outcome, **{"reasons": no_rule, **decision})

    policy = agent.policy
    if policy.read_only:
        reason = f"policy is read-only: {UNDO_ACTION} changes the brain"
        record(Outcome(status="denied", detail=reason), verdict="deny", rule_ids=["mode.read_only"], reasons=[reason])
        typer.echo(f"dedup undo: refused: {reason}", err=True)
        return None
    if policy.dry_run:
        record(Outcome(status="dry_run", detail=f"dry run: would undo {len(ids)} merges"), rule_ids=["mode.dry_run"])
        typer.echo(f"dedup undo: the policy is in dry_run: recorded, nothing undone ({len(ids)} merges)")
        return []
    with agent.lock:  # no tick, approval or other undo acts on this home meanwhile
        busy = [w.id for w in agent.fleet.dispatcher.workers(refresh=True) if w.kind == "dedup" and w.state in LIVE]
        if busy:
            reason = f"dedup job {busy[0]} is running: undo once it ends"
            record(Outcome(status="denied", detail=reason), reasons=[reason])
            typer.echo(f"dedup undo: refused: {reason}", err=True)
            return None
        try:
            results = undo_merges(store, ids)
        except StoreError as exc:
            record(Outcome(status="failed", detail=str(exc)))
            typer.echo(f"dedup undo: {exc}", err=True)
            return None
        done = [r for r in results if r.ok]
        detail = f"undid {len(done)} of {len(results)} merges" + "".join(
            f"; {r.merge_id}: {r.status}" for r in results if not r.ok
        )
        data = {"results": [asdict(r) for r in results]}
        record(Outcome(status="done" if len(done) == len(results) else "failed", detail=detail, data=data))
    return results


# ---------------------------------------------------------------- the pass and its table


def _run(brain: str, dry_run: bool, llm_calls: int, show_progress: bool) -> DedupReport:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agent.cli.worker import fleet_llm_or_none
    from brain.store import BrainStore, StoreError
    from workers.dedup import run_dedup
    from workers.dedup_adjudicate import LLMAdjudicator
    from workers.dedup_match import MatchConfig

    store = BrainStore(brain)
    if not store.exists():
        typer.echo(f"dedup: no brain at {brain} (`brainops brain seed --path {brain}` creates one)", err=True)
        raise typer.Exit(EXIT_USAGE)
    llm = fleet_llm_or_none() if llm_calls else None
    adjudicate = LLMAdjudicator(llm, llm_calls) if llm else None
    columns = (TextColumn("embedding entity names"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not show_progress, transient=True) as bar:
        task = bar.add_task("embed", total=None)
        try:
            return run_dedup(
                store,
                dry_run=dry_run,
                match=MatchConfig(max_llm_calls=llm_calls),
                adjudicate=adjudicate,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except StoreError as exc:
            typer.echo(f"dedup: {exc}", err=True)
            raise typer.Exit(EXIT_REFUSED) from exc


def _print_report(report: DedupReport, limit: int) -> None:
    from rich.table import Table

    from agent.cli.console import make_console

    verb = "would merge" if report.dry_run else "merged"
    table = Table(title=f"dedup: {verb} {report.absorbed} entities into {len(report.merges)} survivors")
    table.add_column("merge", no_wrap=True)
    for col in ("kept", "absorbed", "score", "reason"):
        table.add_column(col)
    ids = report.merge_ids or ("-",) * len(report.merges)
    for merge_id, m in list(zip(ids, report.merges, strict=True))[:limit]:
        table.add_row(merge_id, m.kept_name, ", ".join(m.absorbed_names), f"{m.score:.3f}", m.reason)
    console = make_console()
    console.print(table)
    timing = ", ".join(f"{k} {v:.2f}s" for k, v in report.timings.items())
    console.print(
        f"{report.live_entities:,} live entities, {report.embedded:,} embedded, "
        f"{report.candidate_pairs} candidate pairs, {report.relationships_repointed} relationships repointed ({timing})"
    )
    if report.adjudications:
        said = sum(1 for a in report.adjudications if a.get("same"))
        console.print(f"the fleet LLM judged {len(report.adjudications)} ambiguous pairs: {said} the same entity")
    if report.quality is not None:
        q = report.quality
        console.print(f"against truth_cluster: precision {q.precision:.3f}, recall {q.recall:.3f}")
