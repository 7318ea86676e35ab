"""Run the scenario suite through the unchanged tick graph: scenario observer, planner, real policy engine,
real Actor (idempotency in SQLite) over recording effects, an approval desk that only takes note.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.domain import Observation, PlannerInfo
from core.ports import ApprovalRequest, ApprovalTicket, DecisionEntry
from evals.scenario import Scenario, merged
from evals.scoring import Decided, RunScore, joint_overcommits, percentile, score_run, suite_pass_hat_k
from evals.verify_eval import judge_trajectory, verification_failures
from graphs.planners import PlanContext, Planner
from graphs.verifying import VerifyingPlanner

if TYPE_CHECKING:
    from core.settings import PlannerConfig, Settings
    from policies.engine import PolicyEngine
    from policies.model import Policy

PlannerFactory = Callable[["Scenario", "Policy", "PolicyEngine", "PlannerConfig"], Planner]
APPROVAL_TTL_S = 900.0


@dataclass(frozen=True)
class RunResult:
    index: int
    decided: tuple[Decided, ...]
    score: RunScore
    planner: PlannerInfo
    latency_s: float
    effects: tuple[str, ...]  # effect calls the actor made: what actually ran

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "decided": [d.to_dict() for d in self.decided],
            "score": self.score.to_dict(),
            "planner": self.planner.model_dump(mode="json"),
            "latency_s": round(self.latency_s, 6),
            "effects": list(self.effects),
        }


@dataclass(frozen=True)
class ScenarioResult:
    scenario_id: str
    title: str
    category: str
    rules_known_wrong: str | None
    runs: tuple[RunResult, ...]

    @property
    def passes(self) -> list[bool]:
        return [r.score.passed for r in self.runs]

    @property
    def passed_all(self) -> bool:
        return all(self.passes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario_id": self.scenario_id,
            "title": self.title,
            "category": self.category,
            "rules_known_wrong": self.rules_known_wrong,
            "passed_all": self.passed_all,
            "pass_rate": sum(self.passes) / len(self.runs),
            "runs": [r.to_dict() for r in self.runs],
        }


@dataclass(frozen=True)
class SuiteRun:
    label: str
    planner: str
    policy: str
    repeat: int
    results: tuple[ScenarioResult, ...]
    started_at: float = field(default_factory=time.time)

    def summary(self) -> dict[str, Any]:
        runs = [r for s in self.results for r in s.runs]
        n = len(runs) or 1
        latencies = [r.latency_s for r in runs]
        return {
            "scenarios": len(self.results),
            "runs": len(runs),
            "pass_rate": round(sum(r.score.passed for r in runs) / n, 4),
            "pass_hat_1": round(suite_pass_hat_k(self._outcomes(), 1), 4),
            f"pass_hat_{self.repeat}": round(suite_pass_hat_k(self._outcomes(), self.repeat), 4),
            "precision": round(sum(r.score.precision for r in runs) / n, 4),
            "recall": round(sum(r.score.recall for r in runs) / n, 4),
            "forbidden_rate": round(sum(r.score.forbidden_rate for r in runs) / n, 4),
            "forbidden_executed": sum(r.score.forbidden_executed for r in runs),
            "approval_accuracy": round(sum(r.score.approval_ok for r in runs) / n, 4),
            "verdict_accuracy": round(sum(r.score.verdict_ok for r in runs) / n, 4),
            "policy_violations": sum(r.score.policy_violations for r in runs),
            "joint_overcommits": sum(r.score.joint_overcommits for r in runs),
            "tokens_in": sum(r.planner.tokens_in for r in runs),
            "tokens_out": sum(r.planner.tokens_out for r in runs),
            "cost": round(sum(r.planner.cost for r in runs), 6),
            "latency_p50_s": round(percentile(latencies, 50), 6),
            "latency_p95_s": round(percentile(latencies, 95), 6),
        }

    def _outcomes(self) -> dict[str, list[bool]]:
        return {s.scenario_id: s.passes for s in self.results}

    def by_category(self) -> dict[str, tuple[int, int]]:
        """category -> (scenarios passing all runs, scenarios)."""
        out: dict[str, tuple[int, int]] = {}
        for s in self.results:
            ok, total = out.get(s.category, (0, 0))
            out[s.category] = (ok + s.passed_all, total + 1)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "planner": self.planner,
            "policy": self.policy,
            "repeat": self.repeat,
            "started_at": self.started_at,
            "summary": self.summary(),
            "by_category": {k: list(v) for k, v in self.by_category().items()},
            "scenarios": [s.to_dict() for s in self.results],
        }


# ---------------------------------------------------------------- ports for one scenario run


@dataclass
class RecordingEffects:
    """`agent.service.actor.Effects` that changes nothing and remembers every call."""

    calls: list[str] = field(default_factory=list)

    def _note(self, text: str) -> str:
        self.calls.append(text)
        return f"eval: {text}"

    def scale(self, kind: str, host: str, count: int) -> str:
        return self._note(f"scale {kind}@{host}={count}")

    def start_embedding(self, host: str, shards: int, table: str, job_key: str) -> str:
        return self._note(f"start_embedding {table}@{host} x{shards}")

    def run_job(
        self,
        kind: str,
        host: str | None,
        job_key: str,
        dry_run: bool = False,
        plan: str | None = None,
        max_merges: int | None = None,
    ) -> str:
        held = f" plan={plan[:12]} max_merges={max_merges}" if plan else ""
        return self._note(f"run_job {kind}@{host or '-'} dry_run={dry_run}{held}")

    def set_routing(self, weights: Mapping[str, float]) -> str:
        return self._note(f"set_routing {dict(weights)}")

    def set_task_tier(self, task: str, tier: str) -> str:
        return self._note(f"set_task_tier {task} {tier}")

    def restart_worker(self, worker_id: str) -> str:
        return self._note(f"restart_worker {worker_id}")

    def stop_worker(self, worker_id: str) -> str:
        return self._note(f"stop_worker {worker_id}")

    def reclaim_disk(self, target: str, *, older_than_days: float, keep: int) -> str:
        return self._note(f"reclaim_disk {target} older_than_days={older_than_days:g} keep={keep}")

    def undo_dedup(self, run: str) -> str:
        return self._note(f"undo_dedup {run[:12]}")

    def drop_index(self, table: str) -> str:
        return self._note(f"drop_index {table}")


@dataclass
class NotingDesk:
    """ApprovalDesk that records requests; nobody answers them in an eval."""

    requests: list[ApprovalRequest] = field(default_factory=list)

    def open(self, request: ApprovalRequest, now: float) -> ApprovalTicket:
        self.requests.append(request)
        return ApprovalTicket(request.approval_id, now + APPROVAL_TTL_S)


@dataclass
class MemoryRecorder:
    entries: list[DecisionEntry] = field(default_factory=list)

    def record(self, entry: DecisionEntry, now: float) -> str:
        self.entries.append(entry)
        return f"d{len(self.entries)}"


@dataclass
class TimedPlanner:
    inner: Planner
    elapsed_s: float = 0.0

    def plan(self, ctx: PlanContext) -> Any:
        started = time.perf_counter()
        try:
            return self.inner.plan(ctx)
        finally:
            self.elapsed_s += time.perf_counter() - started


@dataclass(frozen=True)
class StaticObserver:
    observation: Observation

    def __call__(self, now: float) -> Observation:
        return self.observation


# ---------------------------------------------------------------- running


@dataclass(frozen=True)
class SuiteSetup:
    """What every scenario run shares: the base policy data, planner config and where SQLite files go."""

    policy_data: Mapping[str, Any]
    planner_config: Mapping[str, Any]
    workdir: Path
    factory: PlannerFactory
    policy_source: str = "policies/default.yaml"
    planner_kind: str = "rules"


def scenario_parts(scenario: Scenario, setup: SuiteSetup) -> tuple[Policy, PolicyEngine, PlannerConfig]:
    from core.settings import PlannerConfig
    from policies.engine import PolicyEngine
    from policies.model import Policy

    policy = Policy.model_validate(merged(setup.policy_data, scenario.policy_overrides))
    engine = PolicyEngine(policy, known_hosts=[h.host for h in scenario.observation.hosts])
    cfg = PlannerConfig.model_validate(merged(setup.planner_config, scenario.planner_overrides))
    return policy, engine, cfg


def run_scenario_once(scenario: Scenario, setup: SuiteSetup, index: int, runs_db: Any) -> RunResult:
    """One full tick (observe -> plan -> guard -> act -> record) on the scenario's observation."""
    from agent.service.actor import Actor
    from agent.service.build import TickPorts, build_tick

    policy, engine, cfg = scenario_parts(scenario, setup)
    obs = scenario.observation
    effects, desk, recorder = RecordingEffects(), NotingDesk(), MemoryRecorder()
    verdicts, rollbacks = judge_trajectory(scenario.trajectory, obs, policy.verification.rollback)
    inner = setup.factory(scenario, policy, engine, cfg)
    planner = TimedPlanner(VerifyingPlanner(inner, lambda _obs, _now: rollbacks) if scenario.trajectory else inner)
    ports = TickPorts(
        observer=StaticObserver(obs),
        actor=Actor(effects=effects, runs=runs_db, clock=lambda: obs.time),
        desk=desk,
        recorder=recorder,
        clock=lambda: obs.time,
    )
    graph = build_tick(ports, planner, policy, engine)
    tick_id = f"eval-{scenario.id}-{index}-{time.monotonic_ns()}"
    state = graph.invoke({"tick_id": tick_id, "now": obs.time, "dry_run": False})
    decided = tuple(
        Decided(p["action"], p["args"], v["verdict"], tuple(v["rule_ids"]), o["status"])
        for p, v, o in zip(state["proposals"], state["verdicts"], state["outcomes"], strict=True)
    )
    score = score_run(scenario.expect, decided, joint_overcommits(obs, policy, decided))
    missed = verification_failures(dict(scenario.expect.verifications), verdicts)
    if missed:
        score = dataclasses.replace(score, passed=False, failures=(*score.failures, *missed))
    return RunResult(
        index=index,
        decided=decided,
        score=score,
        planner=PlannerInfo.model_validate(state["planner"]),
        latency_s=planner.elapsed_s,
        effects=tuple(effects.calls),
    )


def run_suite(
    scenarios: Sequence[Scenario], setup: SuiteSetup, repeat: int = 1, label: str = "", progress: bool = True
) -> SuiteRun:
    from agent.service.actor import ActionRuns

    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    with tempfile.TemporaryDirectory(dir=fast_tmp_dir()) as tmp:
        runs_db = ActionRuns(Path(tmp) / "eval_runs.db")  # idempotency claims only; nothing to keep
        results = _run_all(scenarios, setup, repeat, runs_db, progress)
    return SuiteRun(
        label=label or f"{setup.planner_kind}",
        planner=setup.planner_kind,
        policy=setup.policy_source,
        repeat=repeat,
        results=tuple(results),
    )


def fast_tmp_dir() -> str | None:
    """tmpfs when there is one: the Actor's SQLite commits fsync, and eval state is throwaway."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


def _run_all(
    scenarios: Sequence[Scenario], setup: SuiteSetup, repeat: int, runs_db: Any, progress: bool
) -> list[ScenarioResult]:
    from rich.progress import Progress

    results = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"eval {setup.planner_kind}", total=len(scenarios) * repeat)
        for scenario in scenarios:
            runs = []
            for index in range(repeat):
                runs.append(run_scenario_once(scenario, setup, index, runs_db))
                bar.advance(task)
            results.append(
                ScenarioResult(scenario.id, scenario.title, scenario.category, scenario.rules_known_wrong, tuple(runs))
            )
    return results


# ---------------------------------------------------------------- planner factories


def rules_factory(scenario: Scenario, policy: Policy, engine: PolicyEngine, cfg: PlannerConfig) -> Planner:
    """A fresh rule planner per run: scenarios are independent snapshots, no stabilization history carries over."""
    from agent.service.build import build_planner

    return build_planner(policy, engine, cfg)


def llm_factory(settings: Settings, state_dir: Path) -> PlannerFactory:
    """The planner production builds from these settings (the model over the configured tiers, the rules behind
    it), with its own token ledger under state_dir."""
    from agent.service.build import ModelSetup, build_planner
    from llm.ledger import TokenLedger
    from llm.router import TierRouter

    if not settings.llm.tiers:
        raise ValueError("--planner llm needs llm.tiers in the config (brainops.toml or BRAINOPS_LLM__TIERS)")
    state_dir.mkdir(parents=True, exist_ok=True)
    budget = settings.budget
    ledger = TokenLedger(state_dir / "eval_ledger.db", window_s=budget.window_s, window_tokens=budget.window_tokens)
    model = ModelSetup.of(TierRouter.from_settings(settings, ledger), settings.llm)

    def make(scenario: Scenario, policy: Policy, engine: PolicyEngine, cfg: PlannerConfig) -> Planner:
        return build_planner(policy, engine, cfg, model, llm=settings.llm)

    return make
