"""`brainops workers stop [--all]`: drain the worker processes brainops started on this home, wait, report.

Workers outlive `brainops run` on purpose (Ctrl-C or a restart must not drop the queues); this is how an
operator, or `make clean`, stops them. A drain is a SIGTERM: the worker finishes its batch and exits; one still
alive when `--grace` runs out gets SIGKILL. Without `--all` it stops the scaled workers (the ones the dispatcher
keeps at a desired count, which it sets to 0) and leaves one-shot jobs (embed, dedup, recluster) to finish;
`--all` stops those too, and any process of ours in a run dir that no registry row knows. It is an operator
action, not an agent action (no approval: stop_worker's policy is for the agent), and one decision record says
who stopped what (`workers.stop`, planner "human"). A running `brainops run` may start workers again at its
next tick: `brainops pause` first keeps them stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from agent.cli.console import EXIT_REFUSED

if TYPE_CHECKING:
    from agent.service.effects import Fleet
    from core.settings import Settings

STOP_ACTION = "workers.stop"  # a decision record's action: an operator's, like dedup.undo
ALIVE = ("starting", "running", "draining")

app = typer.Typer(no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="workers", help="The worker processes brainops started: `stop` drains them.")


@dataclass
class Drain:
    asked: dict[str, str] = field(default_factory=dict)  # worker id -> host
    left: list[str] = field(default_factory=list)  # one-shot jobs left running (no --all)
    errors: list[str] = field(default_factory=list)


@app.command("stop")
def stop(
    all_workers: bool = typer.Option(
        False, "--all", help="Also one-shot jobs (embed, dedup, recluster) and stray processes of ours."
    ),
    grace: float = typer.Option(30.0, "--grace", min=0.0, help="Seconds a worker gets to drain before SIGKILL."),
    timeout: float | None = typer.Option(
        None, "--timeout", min=0.0, help="Seconds to wait for them all to end (default: the grace plus 15)."
    ),
    by: str = typer.Option("operator", "--by", help="Who stops them: recorded in the decision log."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Drain the workers (SIGTERM, SIGKILL after --grace), wait for them to end, and say what stopped.
    Exit 0: every worker asked has ended; 1: some still run (or could not be asked)."""
    from agent.service.agent import Agent
    from core.domain import Outcome
    from core.settings import load_settings

    settings = load_settings()
    registry = settings.home / "dispatcher.db"
    if not registry.is_file():  # nothing was ever started on this home: create nothing there
        _emit(as_json, {"home": str(settings.home), "stopped": [], "running": []}, _nothing_line(settings))
        return
    agent = Agent(settings)
    _warn_if_loop_runs(settings)
    fleet = agent.fleet
    fleet.dispatcher.grace_s = grace
    drain = _ask(fleet, all_workers)
    ended, running = _wait(fleet, drain.asked, grace + 15.0 if timeout is None else timeout)
    _retire(fleet, ended)
    ok = not running and not drain.errors
    detail = f"{len(ended)} stopped" + (f", {len(running)} still running" if running else "")
    outcome = Outcome(status="done" if ok else "failed", detail=detail, data={"stopped": ended, "running": running})
    why = "drain every worker" + (", one-shot jobs and strays too (--all)" if all_workers else " kept at a count")
    agent.record_operator(STOP_ACTION, {"all": all_workers, "grace_s": grace}, f"cli:{by}", why, outcome)
    payload = {"home": str(settings.home), "stopped": ended, "running": running, "left": drain.left}
    _emit(as_json, {**payload, "errors": drain.errors}, _lines(ended, running, drain))
    if not ok:
        raise typer.Exit(EXIT_REFUSED)


def _ask(fleet: Fleet, all_workers: bool) -> Drain:
    """SIGTERM every worker to stop (under the dispatcher lock), every desired count to 0."""
    from fleet.dispatcher import DispatchError
    from fleet.registry import Desired

    dispatcher, drain = fleet.dispatcher, Drain()
    with fleet.exclusive():
        for row in dispatcher.registry.live():
            if row.one_shot and not all_workers:
                drain.left.append(row.id)
                continue
            try:
                result = dispatcher.stop(row.id, drain=True)
            except DispatchError as exc:
                drain.errors.append(str(exc))
                continue
            if result.ok:
                drain.asked[row.id] = row.host
            else:
                drain.errors.append(f"{row.id}: {result.error}")
        now = dispatcher.clock()
        for d in dispatcher.registry.desired():
            if d.count:
                dispatcher.registry.set_desired(Desired(d.kind, d.host, 0, d.options), now)
        if all_workers:
            _ask_strays(fleet, drain)
    return drain


def _ask_strays(fleet: Fleet, drain: Drain) -> None:
    """Processes of ours in a host's run dir that no registry row knows (a dispatcher died before its record)."""
    dispatcher = fleet.dispatcher
    dispatcher.workers(refresh=True)
    for host, snap in dispatcher.last_snapshots.items():
        for w in snap.workers:
            if w.state in ALIVE and w.id not in drain.asked and dispatcher.registry.get(w.id) is None:
                result = dispatcher.hosts[host].stop_worker(w.id, drain=True, grace_s=dispatcher.grace_s)
                if result.ok:
                    drain.asked[w.id] = host
                else:
                    drain.errors.append(f"{w.id}: {result.error}")


def _wait(fleet: Fleet, asked: dict[str, str], timeout_s: float) -> tuple[list[dict[str, Any]], list[str]]:
    """Poll the hosts (each snapshot also SIGKILLs a drain past its grace) until every asked worker ended."""
    dispatcher = fleet.dispatcher
    started = time.monotonic()
    ended: dict[str, dict[str, Any]] = {}
    while True:
        dispatcher.workers(refresh=True)
        for worker_id, host in asked.items():
            snap = dispatcher.last_snapshots.get(host)
            seen = snap.worker(worker_id) if snap is not None else None
            if worker_id not in ended and (seen is None or seen.state not in ALIVE):
                code = seen.last_exit if seen is not None else None
                waited = round(time.monotonic() - started, 1)
                killed = (code is None or code < 0) and waited >= dispatcher.grace_s  # SIGKILL: no exit of its own
                ended[worker_id] = {"id": worker_id, "host": host, "exit": code, "after_s": waited, "killed": killed}
        running = [w for w in asked if w not in ended]
        if not running or time.monotonic() - started >= timeout_s:
            return [ended[w] for w in asked if w in ended], running
        time.sleep(0.2)


def _retire(fleet: Fleet, ended: list[dict[str, Any]]) -> None:
    """The drained workers' rows become retired now, as the next reconcile would make them (no reconcile here:
    it would also restart, start or stop others)."""
    registry = fleet.dispatcher.registry
    with fleet.exclusive():
        for w in ended:
            row = registry.get(w["id"])
            if row is not None and row.state == "draining":
                registry.save(row.evolve(state="retired", last_exit=w["exit"], ended_at=fleet.dispatcher.clock()))


def _warn_if_loop_runs(settings: Settings) -> None:
    from agent.service.locks import LoopAlreadyRunning, LoopLock

    try:
        with LoopLock(settings.home / "loop.lock"):
            return
    except LoopAlreadyRunning as exc:
        typer.echo(
            f"note: {exc}; its next ticks may start workers again (`brainops pause --by NAME` keeps them stopped)",
            err=True,
        )


def _nothing_line(settings: Settings) -> str:
    return f"no workers to stop: nothing was ever started on home {settings.home} (no dispatcher registry there)"


def _lines(ended: list[dict[str, Any]], running: list[str], drain: Drain) -> str:
    lines = []
    for w in ended:
        how = "killed after its grace" if w["killed"] else f"exit {w['exit']}" if w["exit"] is not None else "gone"
        lines.append(f"stopped {w['id']} on {w['host']} ({how}) after {w['after_s']:g}s")
    lines += [f"still running: {w} (drain asked; SIGKILL once its grace is over)" for w in running]
    lines += [f"could not stop: {e}" for e in drain.errors]
    if drain.left:
        lines.append(f"left running (one-shot jobs; --all stops them too): {', '.join(drain.left)}")
    if not lines:
        lines.append("no workers were running")
    return "\n".join(lines)


def _emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    typer.echo(json.dumps(payload, indent=2) if as_json else text)
