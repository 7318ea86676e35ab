"""Policy schema, loader errors (file:line) and every verdict path of the engine."""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.domain import (
    HostMetrics,
    Observation,
    PendingApproval,
    PolicyDecision,
    Proposal,
    Verdict,
    WorkerInfo,
)
from policies.engine import PolicyEngine
from policies.loader import PolicyError, load_policy, load_policy_text
from policies.model import ACTIONS, Policy

DEFAULT_YAML = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"
NOW = 10_000.0

BASE_POLICY = """
version: 1
approvers: [alice, U0BOB]
approval_ttl_s: 600
hosts:
  "*": {max_workers: 6, cpu_ceiling_percent: 90, mem_ceiling_percent: 85}
  gpu: {max_workers: 10, cpu_ceiling_percent: 95, mem_ceiling_percent: 90}
workers:
  extract: {min: 1, max: 5, est_cpu_percent: 10, est_mem_percent: 2}
  embed: {min: 0, max: 3, max_total: 4, est_cpu_percent: 20, est_mem_percent: 5}
  wisdom: {min: 0, max: 2}
scaling: {max_step_up: 2, max_step_up_percent: 0, max_step_down: 2, cooldown_s: 60}
routing: {allowed_tiers: [routine, strategic], max_share: {strategic: 0.3}}
actions:
  noop: {}
  scale_workers:
    risk: medium
    approval_when:
      - {id: large_scale, when: {count: {gt: 4}}, reason: more than 4 workers}
  start_embedding: {risk: medium}
  run_dedup:
    risk: high
    cooldown_s: 600
    approval_when:
      - {id: large_merge, when: {expected_merges: {gt: 100}}}
      - {id: live_merge, when: {dry_run: {eq: false}, expected_merges: {gt: 10}}}
  run_recluster: {cooldown_s: 1800}
  set_model_routing: {}
  restart_worker: {}
  stop_worker: {risk: high, destructive: true}
"""


@functools.cache
def base_policy_data() -> dict[str, Any]:
    return load_policy_text(BASE_POLICY, "base.yaml").model_dump()


def policy(**overrides: Any) -> Policy:
    return Policy.model_validate({**base_policy_data(), **overrides})


def worker(wid: str, kind: str, host: str = "local", state: str = "running", cpu: float = 0.0) -> WorkerInfo:
    return WorkerInfo(id=wid, kind=kind, host=host, state=state, cpu_percent=cpu)  # type: ignore[arg-type]


def observation(**kw: Any) -> Observation:
    defaults: dict[str, Any] = {
        "time": NOW,
        "hosts": (
            HostMetrics(host="local", cpu_percent=30.0, mem_percent=40.0, cpu_count=2),
            HostMetrics(host="gpu", cpu_percent=20.0, mem_percent=30.0, cpu_count=8),
        ),
        "workers": (worker("x1", "extract"), worker("x2", "extract"), worker("e1", "embed", "gpu")),
    }
    return Observation(**{**defaults, **kw})


def judge(action: str, pol: Policy | None = None, obs: Observation | None = None, **args: Any) -> PolicyDecision:
    engine = PolicyEngine(pol or policy())
    return engine.evaluate(Proposal(action=action, args=args), obs or observation(), NOW)


def scale(count: Any, kind: str = "extract", host: str = "local", **kw: Any) -> PolicyDecision:
    return judge("scale_workers", kind=kind, host=host, count=count, **kw)


# ---------------------------------------------------------------- loading


def test_shipped_default_loads_and_covers_every_action() -> None:
    pol = load_policy(DEFAULT_YAML)
    assert set(pol.actions) == set(ACTIONS)
    assert pol.approval_ttl_s == 900
    assert pol.scaling.tolerance == 0.1 and pol.scaling.scale_down_stabilization_s == 300
    assert pol.host_limits("anything").max_workers == 8
    assert pol.worker_limits("extract").max >= pol.worker_limits("extract").min


def test_approvers_match_names_and_slack_ids() -> None:
    pol = policy()
    assert pol.is_approver("alice") and pol.is_approver(" Alice ") and pol.is_approver("U0BOB")
    assert not pol.is_approver("mallory") and not pol.is_approver("")
    assert pol.approval_ttl_s == 600


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def error_of(path: Path) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return info.value


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        dry_run: false
        hosts:
          "*": {max_workers: 4
        approval_ttl_s: 10
        """,
    )
    err = error_of(path)
    assert str(err).startswith(f"{path}:4: YAML syntax error")
    assert err.line == 4


@pytest.mark.parametrize(
    ("body", "line", "needle"),
    [
        ("version: 1\nworkers:\n  extract:\n    min: 1\n    maxx: 3\n", 5, "workers.extract.maxx: unknown key"),
        ("version: 1\nworkers:\n  extract:\n    min: 1\n    max: six\n", 5, "workers.extract.max: Input should be"),
        ("version: 1\nworkers:\n  extract:\n    min: 5\n    max: 2\n", 5, "min (5) > max (2)"),
        ("dry_run: false\nread_only: 1\n", 2, "read_only: Input should be a valid boolean"),
        ("hosts:\n  '*':\n    max_workers: -1\n", 3, "hosts.*.max_workers: Input should be greater"),
        ("approvers:\n  - alice\n  - 7\n", 3, "approvers[1]"),
        ("workers:\n  gpu_magic:\n    max: 1\n", 2, "unknown worker kind"),
        ("actions:\n  launch_missiles: {}\n", 2, "unknown action"),
        (
            "actions:\n  run_dedup:\n    approval_when:\n      - id: big\n        when: {merges: {gt: 1}}\n",
            5,
            "run_dedup has no argument 'merges'",
        ),
        ("approval_ttl_s: 60\napproval_ttl_s: 90\n", 2, "duplicate key 'approval_ttl_s' (first defined on line 1)"),
        ("- just\n- a list\n", 1, "top level must be a mapping"),
    ],
)
def test_schema_errors_name_the_line(tmp_path: Path, body: str, line: int, needle: str) -> None:
    path = write(tmp_path, body)
    message = str(error_of(path))
    assert message.startswith(f"{path}:{line}:"), message
    assert needle in message


def test_missing_and_empty_files_fail_clearly(tmp_path: Path) -> None:
    assert "cannot read policy file" in str(error_of(tmp_path / "nope.yaml"))
    assert "policy file is empty" in str(error_of(write(tmp_path, "# nothing\n")))


# ---------------------------------------------------------------- verdicts: action and mode


def assert_verdict(decision: PolicyDecision, verdict: Verdict, *rule_ids: str) -> None:
    assert decision.verdict == verdict, decision
    for rule_id in rule_ids:
        assert rule_id in decision.rule_ids, decision
    assert decision.reasons


def test_unknown_action_is_denied_with_the_valid_list() -> None:
    decision = judge("reboot_everything")
    assert_verdict(decision, Verdict.DENY, "action.unknown")
    assert "scale_workers" in decision.reasons[0]


def test_noop_is_allowed_even_read_only() -> None:
    assert_verdict(judge("noop", policy(read_only=True), reason="idle"), Verdict.ALLOW, "action.noop")


def test_read_only_denies_every_mutating_action() -> None:
    pol = policy(read_only=True)
    for action in ACTIONS:
        if action != "noop":
            assert_verdict(judge(action, pol), Verdict.DENY, "mode.read_only")


def test_action_not_listed_or_disabled_is_denied() -> None:
    actions = policy().model_dump()["actions"]
    del actions["run_recluster"]
    actions["restart_worker"]["enabled"] = False
    pol = policy(actions=actions)
    assert_verdict(judge("run_recluster", pol, reason="x"), Verdict.DENY, "action.not_allowed")
    assert_verdict(judge("restart_worker", pol, worker_id="x1"), Verdict.DENY, "action.not_allowed")


def test_dry_run_allows_with_flag_even_where_approval_would_be_needed() -> None:
    pol = policy(dry_run=True)
    plain = judge("scale_workers", pol, kind="extract", host="local", count=3)
    assert_verdict(plain, Verdict.ALLOW, "mode.dry_run", "default.allow")
    assert plain.dry_run
    risky = judge("stop_worker", pol, worker_id="e1")
    assert_verdict(risky, Verdict.ALLOW, "mode.dry_run", "risk.stop_worker.destructive")
    assert risky.dry_run and risky.risk == "high"


def test_dry_run_does_not_lift_denials() -> None:
    decision = judge("scale_workers", policy(dry_run=True), kind="extract", host="local", count=9)
    assert_verdict(decision, Verdict.DENY, "worker.extract.max")
    assert not decision.dry_run


def test_default_allow() -> None:
    decision = scale(3)
    assert_verdict(decision, Verdict.ALLOW, "default.allow")
    assert decision.risk == "medium" and not decision.dry_run


# ---------------------------------------------------------------- verdicts: arguments


@pytest.mark.parametrize(
    ("action", "args", "rule_id", "needle"),
    [
        ("scale_workers", {"kind": "extract", "host": "mars", "count": 2}, "args.unknown_host", "known hosts: gpu"),
        ("scale_workers", {"kind": "dedup", "host": "local", "count": 2}, "args.unknown_kind", "scalable kinds"),
        ("scale_workers", {"kind": "extract", "host": "local", "count": -1}, "args.negative_count", ">= 0"),
        ("scale_workers", {"kind": "extract", "host": "local", "count": "3"}, "args.type", "integer"),
        ("scale_workers", {"kind": "extract", "host": "local", "count": True}, "args.type", "integer"),
        ("scale_workers", {"kind": "extract", "host": "local"}, "args.missing", "'count'"),
        ("scale_workers", {"kind": "extract", "host": "local", "count": 2, "force": 1}, "args.unexpected", "force"),
        ("start_embedding", {"host": "gpu", "shards": 0, "table": "records"}, "args.shards_range", ">= 1"),
        ("start_embedding", {"host": "gpu", "shards": 1, "table": "users"}, "args.unknown_table", "entities"),
        ("run_dedup", {"dry_run": "no", "expected_merges": 3}, "args.type", "true or false"),
        ("run_dedup", {"dry_run": True, "expected_merges": -4}, "args.negative_count", "expected_merges"),
        ("set_model_routing", {"weights": {"routine": 0.5, "strategic": 0.2}}, "args.weights_sum", "0.700"),
        ("set_model_routing", {"weights": {"routine": 0.5, "gpt9": 0.5}}, "routing.tier_not_allowed", "gpt9"),
        ("set_model_routing", {"weights": {"routine": 1.5}}, "args.weight_range", "[0, 1]"),
        ("set_model_routing", {"weights": []}, "args.type", "mapping"),
        ("set_model_routing", {"weights": {"routine": 0.5, "strategic": 0.5}}, "routing.max_share.strategic", "0.30"),
        ("restart_worker", {"worker_id": "ghost"}, "args.unknown_worker", "known workers: e1, x1, x2"),
        ("stop_worker", {"worker_id": 12}, "args.type", "worker id"),
    ],
)
def test_bad_arguments_are_denied_with_a_precise_reason(
    action: str, args: dict[str, Any], rule_id: str, needle: str
) -> None:
    decision = judge(action, **args)
    assert_verdict(decision, Verdict.DENY, rule_id)
    assert any(needle in reason for reason in decision.reasons), decision.reasons


def test_all_argument_problems_are_reported_at_once() -> None:
    decision = judge("scale_workers", kind="mystery", host="mars", count=-2)
    assert set(decision.rule_ids) == {"args.unknown_host", "args.unknown_kind", "args.negative_count"}


def test_hosts_known_from_settings_count_as_known() -> None:
    engine = PolicyEngine(policy(), known_hosts=["worker-pc"])
    proposal = Proposal(action="scale_workers", args={"kind": "wisdom", "host": "worker-pc", "count": 1})
    assert engine.evaluate(proposal, observation(), NOW).verdict == Verdict.ALLOW


# ---------------------------------------------------------------- verdicts: limits


def test_worker_kind_min_and_max() -> None:
    assert_verdict(scale(6), Verdict.DENY, "worker.extract.max")
    assert_verdict(scale(0), Verdict.DENY, "worker.extract.min")


def test_fleet_max_total_counts_other_hosts() -> None:
    obs = observation(desired={"embed@gpu": 3})
    assert_verdict(
        judge("scale_workers", obs=obs, kind="embed", host="local", count=2), Verdict.DENY, "worker.embed.max_total"
    )
    assert judge("scale_workers", obs=obs, kind="embed", host="local", count=1).verdict == Verdict.ALLOW


def test_host_max_workers_counts_all_kinds() -> None:
    obs = observation(desired={"extract@local": 2, "wisdom@local": 2, "embed@local": 1})
    decision = judge("scale_workers", obs=obs, kind="extract", host="local", count=4)
    assert_verdict(decision, Verdict.DENY, "host.local.max_workers")
    assert "7 workers" in decision.reasons[0]
    # scaling down is always within capacity
    assert judge("scale_workers", obs=obs, kind="wisdom", host="local", count=1).verdict == Verdict.ALLOW


def test_cpu_ceiling_uses_measured_worker_cpu() -> None:
    # two extract workers at 60% of one core each on a 2-core host = 30% of the host each
    hot = (worker("x1", "extract", cpu=60.0), worker("x2", "extract", cpu=60.0))
    obs = observation(workers=hot, hosts=(HostMetrics(host="local", cpu_percent=65.0, mem_percent=10.0, cpu_count=2),))
    decision = judge("scale_workers", obs=obs, kind="extract", host="local", count=3)
    assert_verdict(decision, Verdict.DENY, "host.local.cpu_ceiling")
    assert "95%" in decision.reasons[0] and "at most 0 more" in decision.reasons[0]


def test_mem_ceiling_uses_policy_estimate() -> None:
    obs = observation(hosts=(HostMetrics(host="local", cpu_percent=10.0, mem_percent=82.0),))
    assert_verdict(
        judge("scale_workers", obs=obs, kind="extract", host="local", count=4), Verdict.DENY, "host.local.mem_ceiling"
    )
    assert judge("scale_workers", obs=obs, kind="extract", host="local", count=3).verdict == Verdict.ALLOW


def test_ceiling_of_100_switches_the_check_off() -> None:
    hosts = {"*": {"max_workers": 8, "cpu_ceiling_percent": 100.0, "mem_ceiling_percent": 99.0}}
    obs = observation(hosts=(HostMetrics(host="local", cpu_percent=97.0, mem_percent=50.0),))
    decision = judge("scale_workers", policy(hosts=hosts), obs, kind="extract", host="local", count=4)
    assert decision.verdict == Verdict.ALLOW, decision
    full = observation(hosts=(HostMetrics(host="local", cpu_percent=10.0, mem_percent=97.0),))
    denied = judge("scale_workers", policy(hosts=hosts), full, kind="extract", host="local", count=4)
    assert_verdict(denied, Verdict.DENY, "host.local.mem_ceiling")


def test_unreachable_host_cannot_take_more_workers() -> None:
    down = HostMetrics(host="local", reachable=False, error="ssh timeout")
    obs = observation(hosts=(down,))
    assert_verdict(
        judge("scale_workers", obs=obs, kind="extract", host="local", count=3), Verdict.DENY, "host.local.unreachable"
    )


def test_step_limits() -> None:
    decision = scale(5, kind="extract", host="gpu")  # 0 -> 5 with max step up 2
    assert_verdict(decision, Verdict.DENY, "scale.max_step_up")
    assert "propose at most 2" in decision.reasons[0]
    obs = observation(desired={"extract@local": 5})
    assert_verdict(
        judge("scale_workers", obs=obs, kind="extract", host="local", count=2), Verdict.DENY, "scale.max_step_down"
    )


def test_unchanged_count_is_allowed_without_cooldown_or_approval() -> None:
    obs = observation(desired={"extract@local": 5}, recent_actions={"scale_workers:extract@local": NOW - 1})
    decision = judge("scale_workers", obs=obs, kind="extract", host="local", count=5)
    assert_verdict(decision, Verdict.ALLOW, "scale.unchanged")


def test_stop_worker_below_min_is_denied() -> None:
    obs = observation(workers=(worker("x1", "extract"),))
    assert_verdict(judge("stop_worker", obs=obs, worker_id="x1"), Verdict.DENY, "worker.extract.min")


def test_cooldown_per_kind_and_host() -> None:
    recent = {"scale_workers:extract@local": NOW - 20}
    decision = judge("scale_workers", obs=observation(recent_actions=recent), kind="extract", host="local", count=3)
    assert_verdict(decision, Verdict.DENY, "cooldown.scale_workers")
    assert "retry in 40s" in decision.reasons[0]
    other_host = judge("scale_workers", obs=observation(recent_actions=recent), kind="extract", host="gpu", count=1)
    assert other_host.verdict == Verdict.ALLOW
    expired = {"scale_workers:extract@local": NOW - 61}
    assert (
        judge("scale_workers", obs=observation(recent_actions=expired), kind="extract", host="local", count=3).verdict
        == Verdict.ALLOW
    )


def test_start_embedding_shares_the_scale_cooldown_and_action_cooldowns_apply() -> None:
    recent = {"scale_workers:embed@gpu": NOW - 5, "run_dedup": NOW - 100}
    obs = observation(recent_actions=recent)
    embed = judge("start_embedding", obs=obs, host="gpu", shards=2, table="records")
    assert_verdict(embed, Verdict.DENY, "cooldown.start_embedding")
    dedup = judge("run_dedup", obs=obs, dry_run=True, expected_merges=1)
    assert_verdict(dedup, Verdict.DENY, "cooldown.run_dedup")


def test_identical_pending_approval_is_not_proposed_again() -> None:
    args: dict[str, Any] = {"dry_run": False, "expected_merges": 500}
    pending = (PendingApproval(id="ap-1", action="run_dedup", args=args, expires_at=NOW + 100),)
    decision = judge("run_dedup", obs=observation(pending_approvals=pending), **args)
    assert_verdict(decision, Verdict.DENY, "approval.already_pending")


# ---------------------------------------------------------------- verdicts: risk


def test_risk_conditions_need_approval() -> None:
    assert_verdict(
        judge("run_dedup", dry_run=True, expected_merges=500), Verdict.NEEDS_APPROVAL, "risk.run_dedup.large_merge"
    )
    live = judge("run_dedup", dry_run=False, expected_merges=50)
    assert_verdict(live, Verdict.NEEDS_APPROVAL, "risk.run_dedup.live_merge")
    assert live.risk == "high"
    assert judge("run_dedup", dry_run=False, expected_merges=5).verdict == Verdict.ALLOW
    assert judge("run_dedup", dry_run=True, expected_merges=50).verdict == Verdict.ALLOW


def test_large_scale_and_destructive_actions_need_approval() -> None:
    obs = observation(desired={"extract@local": 3})
    decision = judge("scale_workers", obs=obs, kind="extract", host="local", count=5)
    assert_verdict(decision, Verdict.NEEDS_APPROVAL, "risk.scale_workers.large_scale")
    assert decision.reasons == ("more than 4 workers",)
    assert_verdict(judge("stop_worker", worker_id="e1"), Verdict.NEEDS_APPROVAL, "risk.stop_worker.destructive")


def test_dotted_condition_on_routing_weights() -> None:
    actions = policy().model_dump()["actions"]
    actions["set_model_routing"]["approval_when"] = [
        {"id": "strategic_raise", "when": {"weights.strategic": {"gt": 0.1}}}
    ]
    pol = policy(actions=actions)
    high = judge("set_model_routing", pol, weights={"routine": 0.8, "strategic": 0.2})
    assert_verdict(high, Verdict.NEEDS_APPROVAL, "risk.set_model_routing.strategic_raise")
    assert judge("set_model_routing", pol, weights={"routine": 1.0}).verdict == Verdict.ALLOW


# ---------------------------------------------------------------- properties: limits hold for any input

NON_INTEGERS = st.one_of(st.booleans(), st.floats(-2, 20), st.text(max_size=2), st.none())
ROOMY_HOST = {"*": {"max_workers": 100, "cpu_ceiling_percent": 100.0, "mem_ceiling_percent": 100.0}}
FREE_STEPS = {"max_step_up": 100, "max_step_down": 100, "cooldown_s": 0.0}


@st.composite
def kind_limit_cases(draw: st.DrawFn) -> tuple[int, int, Any, int, bool]:
    """Counts cluster on the edges of [min, max], where off-by-one bugs live."""
    lo = draw(st.integers(0, 5))
    hi = lo + draw(st.integers(0, 6))
    edges = st.sampled_from([lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, hi + 2])
    count = draw(st.one_of(edges, st.integers(-5, 20), NON_INTEGERS))
    return lo, hi, count, draw(st.integers(0, 12)), draw(st.booleans())


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=kind_limit_cases())
def test_engine_never_allows_a_count_outside_min_max(case: tuple[int, int, Any, int, bool]) -> None:
    lo, hi, count, current, dry_run = case
    pol = policy(dry_run=dry_run, workers={"extract": {"min": lo, "max": hi}}, hosts=ROOMY_HOST, scaling=FREE_STEPS)
    obs = observation(desired={"extract@local": current})
    decision = judge("scale_workers", pol, obs, kind="extract", host="local", count=count)
    if decision.verdict != Verdict.DENY:
        assert isinstance(count, int) and not isinstance(count, bool)
        assert lo <= count <= hi, decision


@st.composite
def capacity_cases(draw: st.DrawFn) -> tuple[int, int, int, int, float]:
    """Fleets one slot or a few CPU points either side of the host's limits."""
    current, added = draw(st.integers(0, 6)), draw(st.integers(1, 4))
    others = draw(st.integers(0, 6))
    max_workers = max(0, current + added + others + draw(st.integers(-2, 1)))
    near_ceiling = 90.0 - 20.0 * added + draw(st.floats(-4, 4))
    cpu = draw(st.sampled_from([0.0, max(0.0, near_ceiling)]))
    return current, added, others, max_workers, cpu


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=capacity_cases())
def test_engine_never_allows_a_scale_up_past_host_capacity(case: tuple[int, int, int, int, float]) -> None:
    current, added, others, max_workers, cpu = case
    hosts = {"*": {"max_workers": max_workers, "cpu_ceiling_percent": 90.0, "mem_ceiling_percent": 90.0}}
    workers = {"extract": {"min": 0, "max": 20, "est_cpu_percent": 20.0, "est_mem_percent": 1.0}}
    pol = policy(workers=workers, hosts=hosts, scaling={"max_step_up": 3, "max_step_up_percent": 0.0})
    obs = observation(
        desired={"extract@local": current, "wisdom@local": others},
        hosts=(HostMetrics(host="local", cpu_percent=cpu, mem_percent=10.0),),
    )
    decision = judge("scale_workers", pol, obs, kind="extract", host="local", count=current + added)
    if decision.verdict != Verdict.DENY:
        assert current + added + others <= max_workers, decision
        assert cpu + added * 20.0 <= 90.0 + 1e-9, decision
        assert added <= 3, decision


def test_dedup_risk_is_judged_on_the_brains_candidates_not_the_claim() -> None:
    from core.domain import BrainStats, HostMetrics, Observation, Proposal
    from policies.engine import PolicyEngine
    from policies.loader import load_policy

    engine = PolicyEngine(load_policy(Path(__file__).resolve().parent.parent / "policies" / "default.yaml"))
    obs = Observation(time=0, hosts=(HostMetrics(host="local"),), brain=BrainStats(duplicate_candidates=80))
    for args in ({}, {"expected_merges": 0}, {"dry_run": False, "expected_merges": 1}):
        decision = engine.evaluate(Proposal(action="run_dedup", args=args), obs, now=0.0)
        assert decision.verdict == "needs_approval", (args, decision)
        assert "risk.run_dedup.live_merge" in decision.rule_ids
    quiet = obs.model_copy(update={"brain": BrainStats(duplicate_candidates=3)})
    assert engine.evaluate(Proposal(action="run_dedup", args={}), quiet, now=0.0).verdict == "allow"


def test_a_policy_error_survives_a_process_boundary() -> None:
    # The simulator bench runs policies in worker processes: an unpicklable error broke the whole pool.
    import pickle

    from policies.loader import PolicyError, PolicyIssue

    error = PolicyError("p.yaml", [PolicyIssue(3, "workers.extract.max", "min (2) > max (1)")])
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) == "p.yaml:3: workers.extract.max: min (2) > max (1)" and again.line == 3
