"""Held-out split: pending approvals for every action, and remediation of an out-of-line worker, on the held-out
fleets. Remediation thresholds as in policies/default.yaml: memory over 4x the siblings' median (at least
512 MB) with the host within 10 points of its 85% memory ceiling, or CPU over 4x within 10 of 90%; one restart
per worker per 900 s; a fourth restart within an hour needs approval."""

from __future__ import annotations

from evals.scenario_gen.build import (
    CHEAPER,
    PLAN_B,
    T1,
    Case,
    act,
    approval,
    brain,
    budget,
    expect,
    no_scale_up,
    observation,
    quiet,
    scale,
    tweak,
    workers,
)
from evals.scenario_gen.fleets import ap_hosts, ap_workers, gc_hosts, tri_hosts

P, R = "pending_approval", "remediation"


def up(kind: str, on: str, now: int) -> dict[str, object]:
    return scale(kind, on, {"gt": now})


def ask(aid: str, action: str, args: dict[str, object], ago: float = 300.0) -> dict[str, object]:
    return approval(aid, action, args, asked_s_ago=ago, now=T1)


def restart(wid: str, verdict: str | None = None) -> dict[str, object]:
    return act("restart_worker", verdict, worker_id=wid)


LIVE_DEDUP = ask("apr-d3ad0b7e", "run_dedup", {"dry_run": False, "expected_merges": 300, "plan": PLAN_B})
PLANNED = brain(
    duplicate_estimate=0.014,
    duplicate_candidates=300,
    dedup_plan={"hash": PLAN_B, "absorbed": 300, "merges": 260, "created_at": T1 - 1200.0, "entities_version": 131},
)

PENDING = [
    Case(
        "ho-pending-pc-extract-five-awaits",
        "extract on pc = 5 awaits a human and 2500 items still want exactly 5: wait",
        P,
        "The open approval (5 minutes old) asks 3 -> 5 on pc for this backlog. Asking again, or adding extract "
        "workers on alienware for the same items, answers one need twice.",
        observation(
            ap_hosts(),
            ap_workers(extract=3),
            pending={"extract": 2500, "embed": 150, "wisdom": 400},
            approvals=[ask("apr-41f2c9aa", "scale_workers", {"kind": "extract", "host": "pc", "count": 5})],
            time=T1,
        ),
        expect(must_not=no_scale_up("extract", {"pc": 3, "alienware": 0}), approval="forbidden", verdict="allow"),
    ),
    Case(
        "ho-pending-worker-b-six-covers-the-backlog",
        "extract on worker-b = 6 awaits a human: no extract elsewhere for the same 3000 items",
        P,
        "worker-b runs 2 extract workers; 3000 items want 6, the count the pending approval asks for. worker-a and "
        "the brain have room, but the need is already in front of a human.",
        observation(
            tri_hosts(brain=(40.0, 50.0), a=(30.0, 40.0), b=(35.0, 40.0)),
            [*workers("extract", "worker-b", 2, cpu=100.0), *workers("wisdom", "worker-a", 2, cpu=50.0, rss=500.0)],
            pending={"extract": 3000, "embed": 150, "wisdom": 400},
            approvals=[ask("apr-0be7c512", "scale_workers", {"kind": "extract", "host": "worker-b", "count": 6})],
            time=T1,
        ),
        expect(
            must_not=no_scale_up("extract", {"worker-b": 2, "worker-a": 0, "brain": 0}),
            approval="forbidden",
            verdict="allow",
        ),
    ),
    Case(
        "ho-pending-live-dedup-300-merges",
        "A live dedup of 300 planned merges awaits approval: no other dedup run",
        P,
        "1.4% duplicates; the dry run planned 300 merges and the live run naming that plan is pending (over 200 "
        "merges needs a human). Neither a new dry run nor a second live prompt.",
        observation(ap_hosts(), ap_workers(), stats=PLANNED, approvals=[LIVE_DEDUP], time=T1),
        expect(must_not=[act("run_dedup")], approval="forbidden", verdict="allow"),
    ),
    Case(
        "ho-pending-routing-raise-no-second-ask",
        "A raise of the strategic share awaits a human while the budget burns at pace 1.4: do not ask again",
        P,
        "Someone asked to send 30% to the strategic tier (over 10% needs approval). The pace is now 1.4: asking "
        "again for any strategic raise would be a second prompt; the cheap split needs no human and may go ahead.",
        observation(
            ap_hosts(),
            ap_workers(),
            spend=budget(0.5, 1.4, cost=14.0),
            approvals=[
                ask(
                    "apr-77aa01c3",
                    "set_model_routing",
                    {"weights": {"routine": 0.5, "analysis": 0.2, "strategic": 0.3}},
                    ago=420.0,
                )
            ],
            time=T1,
        ),
        expect(
            may=[CHEAPER],
            must_not=[act("set_model_routing", weights__strategic={"gt": 0.1})],
            approval="forbidden",
        ),
    ),
    Case(
        "ho-pending-wisdom-gpu-box-second-worker",
        "A second wisdom worker on gpu-box awaits a human under a tighter policy: no repeat, no wisdom elsewhere",
        P,
        "This policy asks a human for more than one wisdom worker on a host; wisdom@gpu-box = 2 is pending and 400 "
        "items over 1 worker want 2.",
        observation(
            gc_hosts(),
            [*workers("wisdom", "gpu-box", 1, cpu=80.0, rss=520.0), *workers("extract", "cpu-box", 3, rss=650.0)],
            pending={"extract": 1500, "embed": 150, "wisdom": 400},
            approvals=[ask("apr-9f00e1d2", "scale_workers", {"kind": "wisdom", "host": "gpu-box", "count": 2})],
            time=T1,
        ),
        expect(must_not=no_scale_up("wisdom", {"gpu-box": 1, "cpu-box": 0}), approval="forbidden"),
        policy_overrides={
            "actions": {
                "scale_workers": {
                    "approval_when": [
                        {"id": "large_scale", "when": {"count": {"gt": 4}}, "reason": "more than 4 on a host"},
                        {
                            "id": "second_wisdom",
                            "when": {"kind": {"eq": "wisdom"}, "count": {"gt": 1}},
                            "reason": "more than one wisdom worker on a host",
                        },
                    ]
                }
            }
        },
    ),
    Case(
        "ho-pending-control-dedup-pending-extract-scales",
        "A dedup approval is open; the extract backlog is another matter and scales without a human",
        P,
        "Control: 2000 extract items over 2 workers want 4 (no approval up to 4 per host); the pending dedup "
        "holds only dedup.",
        observation(
            ap_hosts(),
            ap_workers(extract=2),
            pending={"extract": 2000, "embed": 150, "wisdom": 400},
            stats=PLANNED,
            approvals=[LIVE_DEDUP],
            time=T1,
        ),
        expect(
            one_of=[[scale("extract", "pc", {"ge": 3, "le": 4}, "allow"), scale("extract", "alienware", {"ge": 1})]],
            must_not=[act("run_dedup")],
            approval="forbidden",
            verdict="allow",
        ),
        control=True,
    ),
    Case(
        "ho-pending-control-need-gone",
        "The backlog behind a pending extract = 6 is back on target: nothing new",
        P,
        "Control: 1500 items over 3 workers is exactly the target; the open prompt is moot and nothing else is due.",
        observation(
            ap_hosts(),
            ap_workers(extract=3),
            pending={"extract": 1500, "embed": 150, "wisdom": 400},
            approvals=[ask("apr-5c5c5c01", "scale_workers", {"kind": "extract", "host": "pc", "count": 6}, ago=600.0)],
            time=T1,
        ),
        quiet(up("extract", "pc", 3)),
        control=True,
    ),
]

REMEDIATION = [
    Case(
        "ho-remediation-pc-wisdom-leak",
        "wisdom-pc-1 holds 6.1 GB beside its sibling's 0.7 GB with pc at 82% memory: restart it",
        R,
        "8.7x the sibling's memory, well over 512 MB, and pc is within 10 points of its 85% ceiling.",
        observation(
            ap_hosts(pc_mem=82.0),
            [
                *workers("extract", "pc", 5, rss=700.0),
                *tweak(workers("wisdom", "pc", 2, cpu=45.0, rss=700.0), "wisdom-pc-1", rss_mb=6100),
            ],
            time=T1,
        ),
        expect(
            [restart("wisdom-pc-1", "allow")],
            must_not=[act("restart_worker", worker_id={"ne": "wisdom-pc-1"}), act("stop_worker")],
            approval="forbidden",
            verdict="allow",
        ),
    ),
    Case(
        "ho-remediation-worker-b-cpu-runaway",
        "extract-worker-b-1 burns 600% CPU beside siblings at 100%, worker-b at 88%: restart it",
        R,
        "Siblings of the same kind on worker-a and worker-b run at 100% (one core each); 6x that on an 8-thread "
        "host at 88% CPU, within 10 points of the 90% ceiling.",
        observation(
            tri_hosts(a=(62.0, 50.0), b=(88.0, 45.0)),
            [
                *workers("extract", "worker-a", 4, cpu=100.0),
                *tweak(workers("extract", "worker-b", 2, cpu=100.0), "extract-worker-b-1", cpu_percent=600),
            ],
            pending={"extract": 3000, "embed": 150, "wisdom": 0},
            time=T1,
        ),
        expect(
            [restart("extract-worker-b-1", "allow")],
            must_not=[act("restart_worker", worker_id={"ne": "extract-worker-b-1"}), act("stop_worker")],
            approval="forbidden",
            verdict="allow",
        ),
    ),
    Case(
        "ho-remediation-fourth-restart-asks",
        "A leak after three restarts within the hour: the fourth restart goes to a human",
        R,
        "extract-pc-4 holds 10.5 GB (siblings 0.7 GB), pc at 84% memory. Three restarts in the last hour "
        "(17, 33 and 50 minutes ago): the policy's frequent_restarts rule asks a human.",
        observation(
            ap_hosts(pc_mem=84.0),
            tweak(ap_workers(), "extract-pc-4", rss_mb=10500),
            recent={
                "restart_worker:extract-pc-1": 1000.0,
                "restart_worker:wisdom-pc-2": 2000.0,
                "restart_worker:extract-pc-3": 3000.0,
            },
            time=T1,
        ),
        expect([restart("extract-pc-4", "needs_approval")], must_not=[act("stop_worker")], approval="required"),
    ),
    Case(
        "ho-remediation-leak-over-ceiling-and-backlog",
        "pc over its memory ceiling from one leaking worker while extract wants more: restart, spill to alienware",
        R,
        "extract-pc-5 holds 11 GB (siblings 0.7 GB) and pc is at 86%, past 85%: restart it, and add nothing on pc. "
        "3500 items over 5 want 7: alienware at 38% CPU takes up to two (88%).",
        observation(
            ap_hosts(pc_mem=86.0),
            tweak(ap_workers(), "extract-pc-5", rss_mb=11000),
            pending={"extract": 3500, "embed": 150, "wisdom": 400},
            time=T1,
        ),
        expect(
            [restart("extract-pc-5", "allow"), scale("extract", "alienware", {"ge": 1, "le": 2}, "allow")],
            must_not=[up("extract", "pc", 5), up("wisdom", "pc", 2), act("stop_worker")],
            approval="forbidden",
            verdict="allow",
        ),
    ),
    Case(
        "ho-remediation-cooldown-passed-restart-again",
        "The same worker leaks again 25 minutes after its restart: the 15-minute cooldown is over, restart",
        R,
        "extract-pc-2 was restarted 1500 s ago (cooldown 900 s) and holds 6 GB again beside 0.7 GB siblings, pc "
        "at 81%. One restart this hour so far: no approval needed.",
        observation(
            ap_hosts(pc_mem=81.0),
            tweak(ap_workers(), "extract-pc-2", rss_mb=6000, started_at=T1 - 1500.0),
            recent={"restart_worker:extract-pc-2": 1500.0},
            time=T1,
        ),
        expect(
            [restart("extract-pc-2", "allow")], must_not=[act("stop_worker")], approval="forbidden", verdict="allow"
        ),
    ),
    Case(
        "ho-remediation-control-outlier-host-roomy",
        "A 5 GB extract worker beside 0.5 GB siblings on a pc at 52% memory: no restart needed",
        R,
        "Control: out of line, but pc is far from its memory ceiling; the policy restarts only when the host "
        "nears it. Everything else on target.",
        observation(
            ap_hosts(pc_mem=52.0),
            tweak(
                [*workers("extract", "pc", 5, rss=500.0), *workers("wisdom", "pc", 2, cpu=45.0, rss=480.0)],
                "extract-pc-3",
                rss_mb=5000,
            ),
            time=T1,
        ),
        quiet(act("restart_worker")),
        control=True,
    ),
    Case(
        "ho-remediation-control-uniform-cpu-hot-host",
        "pc at 88% CPU with every worker at its usual share: nothing to restart",
        R,
        "Control: the CPU is spread evenly (each extract worker at 95%, each wisdom at 45%); no worker is out of "
        "line, and every stage is on target.",
        observation(ap_hosts(pc_cpu=88.0), ap_workers(), time=T1),
        quiet(act("restart_worker")),
        control=True,
    ),
]

CASES = [*PENDING, *REMEDIATION]
