"""Tuned split: pending approvals for every action (issue 22), on the seed fleet: while a prompt is open for an
action and target, and its request still covers the need, the planner waits; it never opens a second one.
"""

from __future__ import annotations

from evals.scenario_gen.build import (
    PLAN_A,
    T0,
    Case,
    act,
    approval,
    brain,
    expect,
    observation,
    quiet,
    scale,
    seed_hosts,
    seed_workers,
    up,
    workers,
)

SPILLS_WHILE_PENDING = (
    "While a scale-up awaits approval on one host the rule planner holds only that host and places the "
    "same backlog's workers on another one without a human, so the pending request answers a need that is "
    "already met."
)

P = "pending_approval"

ASK_EXTRACT_6 = approval("apr-7c1e2a90", "scale_workers", {"kind": "extract", "host": "worker-pc", "count": 6})
PENDING = [
    Case(
        "pending-seed-extract-six-awaits-human",
        "A human is asked for extract on worker-pc = 6 and the need is unchanged: wait, do not ask again",
        P,
        "3000 extract items over 4 workers want 6, exactly what the open approval (3 minutes old, 12 left) asks "
        "for. A second prompt for the same target, or extract workers on the brain for the same backlog, would "
        "answer the need twice.",
        observation(
            seed_hosts(),
            seed_workers(extract=4),
            pending={"extract": 3000, "embed": 120, "wisdom": 400},
            approvals=[ASK_EXTRACT_6],
        ),
        expect(
            must_not=[up("extract", "worker-pc", 4), up("extract", "brain", 0)], approval="forbidden", verdict="allow"
        ),
        rules_known_wrong=SPILLS_WHILE_PENDING,
    ),
    Case(
        "pending-need-grew-no-second-prompt",
        "Extract on worker-pc = 6 awaits a human and the backlog doubled: no second prompt for worker-pc",
        P,
        "5000 items want 10 extract workers. worker-pc cannot hold more than the 6 already asked for (the kind's "
        "max); the rest may go to the brain within its headroom (two at 36% CPU), which needs nobody.",
        observation(
            seed_hosts(),
            seed_workers(extract=4),
            pending={"extract": 5000, "embed": 120, "wisdom": 400},
            approvals=[ASK_EXTRACT_6],
        ),
        expect(
            may=[scale("extract", "brain", {"ge": 1, "le": 2})],
            must_not=[up("extract", "worker-pc", 4)],
            approval="forbidden",
            verdict="allow",
        ),
    ),
    Case(
        "pending-restart-leak-already-asked",
        "The fourth restart this hour already waits for a human: do not ask again for the same worker",
        P,
        "extract-worker-pc-3 still holds 9.4 GB (siblings 0.6 GB, worker-pc memory 84%); its restart needs approval "
        "after three restarts this hour and that approval is open. Asking again is a second prompt for one need.",
        observation(
            seed_hosts(pc_mem=84),
            [
                *workers("extract", "worker-pc", 2),
                *workers("extract", "worker-pc", 1, first=3, rss=9400.0),
                *workers("extract", "worker-pc", 2, first=4),
                *workers("wisdom", "worker-pc", 2, cpu=40.0, rss=420.0),
            ],
            recent={
                "restart_worker:extract-worker-pc-9": 700.0,
                "restart_worker:wisdom-worker-pc-4": 1500.0,
                "restart_worker:extract-worker-pc-8": 2600.0,
            },
            approvals=[approval("apr-2b9d41f0", "restart_worker", {"worker_id": "extract-worker-pc-3"}, 240.0)],
        ),
        expect(must_not=[act("restart_worker", worker_id="extract-worker-pc-3")], approval="forbidden"),
    ),
    Case(
        "pending-live-dedup-recluster-waits",
        "A live dedup of 230 merges awaits approval: no other dedup, and the due recluster waits for it",
        P,
        "The dry-run plan merges 230 entities (over the 200 that need a human) and the live run naming it is "
        "pending. 8% of relationships changed, so a recluster is due, but the merges will repoint relationships: "
        "reclustering now would be redone after the approval.",
        observation(
            seed_hosts(),
            seed_workers(),
            stats=brain(
                duplicate_estimate=0.011,
                duplicate_candidates=230,
                relationships_changed_since_recluster=1700,
                dedup_plan={
                    "hash": PLAN_A,
                    "absorbed": 230,
                    "merges": 210,
                    "created_at": T0 - 900.0,
                    "entities_version": 88,
                    "stale": False,
                },
            ),
            approvals=[
                approval("apr-5e3a77c2", "run_dedup", {"dry_run": False, "expected_merges": 230, "plan": PLAN_A})
            ],
            recent={"run_dedup:dry_run": 900.0},
        ),
        expect(must_not=[act("run_dedup"), act("run_recluster")], approval="forbidden", verdict="allow"),
    ),
    Case(
        "pending-embedding-shards-approval-waits",
        "A 3-shard embedding job awaits approval under a tighter policy: no second job in the meantime",
        P,
        "This policy asks a human for embedding jobs over 2 shards; one for 3 shards on the brain is open. The 60k "
        "rows are still missing: a second job now would run beside the one a human may approve in a minute.",
        observation(
            seed_hosts(brain_cpu=20),
            seed_workers(),
            pending={"extract": 2500, "embed": 60000, "wisdom": 400},
            approvals=[approval("apr-91d0c3b4", "start_embedding", {"host": "brain", "shards": 3, "table": "records"})],
        ),
        expect(must_not=[act("start_embedding")], approval="forbidden"),
        policy_overrides={
            "actions": {
                "start_embedding": {
                    "approval_when": [
                        {
                            "id": "entities_table",
                            "when": {"table": {"eq": "entities"}},
                            "reason": "re-embedding entities invalidates the dedup neighbour graph",
                        },
                        {
                            "id": "many_shards",
                            "when": {"shards": {"gt": 2}},
                            "reason": "an embedding job over 2 shards",
                        },
                    ]
                }
            }
        },
    ),
    Case(
        "pending-wisdom-second-worker-awaits",
        "A second wisdom worker on the brain awaits a human under a tighter policy: do not ask again",
        P,
        "This policy asks a human for more than one wisdom worker on a host; wisdom@brain = 2 is pending and 400 "
        "items over 1 worker want exactly 2. Neither a repeat prompt nor a wisdom worker on worker-pc for the same "
        "items.",
        observation(
            seed_hosts(brain_cpu=40),
            [*workers("extract", "worker-pc", 4), *workers("wisdom", "brain", 1, cpu=160.0, rss=450.0)],
            pending={"extract": 2000, "embed": 120, "wisdom": 400},
            approvals=[approval("apr-c4e8a1d3", "scale_workers", {"kind": "wisdom", "host": "brain", "count": 2})],
        ),
        expect(must_not=[up("wisdom", "brain", 1), up("wisdom", "worker-pc", 0)], approval="forbidden"),
        policy_overrides={
            "actions": {
                "scale_workers": {
                    "approval_when": [
                        {
                            "id": "large_scale",
                            "when": {"count": {"gt": 4}},
                            "reason": "scaling one kind above 4 workers on a host",
                        },
                        {
                            "id": "second_wisdom",
                            "when": {"kind": {"eq": "wisdom"}, "count": {"gt": 1}},
                            "reason": "more than one wisdom worker on a host",
                        },
                    ]
                }
            }
        },
        rules_known_wrong=SPILLS_WHILE_PENDING,
    ),
    Case(
        "pending-control-other-target-proceeds",
        "An extract approval is open; wisdom is another target and scales without a human",
        P,
        "Control: the pending approval (extract on worker-pc = 6) covers the 3000 extract items. Wisdom has 600 "
        "items over 1 worker on the brain (HPA 3, max 2 per host): more wisdom, on the brain or worker-pc, is "
        "within policy and is not the pending action's target.",
        observation(
            seed_hosts(),
            [*workers("extract", "worker-pc", 4), *workers("wisdom", "brain", 1, cpu=160.0, rss=450.0)],
            pending={"extract": 3000, "embed": 120, "wisdom": 600},
            approvals=[ASK_EXTRACT_6],
        ),
        expect(
            one_of=[[scale("wisdom", "brain", 2, "allow"), scale("wisdom", "worker-pc", {"ge": 1}, "allow")]],
            must_not=[up("extract", "worker-pc", 4), up("extract", "brain", 0)],
            approval="forbidden",
            verdict="allow",
        ),
        control=True,
        rules_known_wrong=SPILLS_WHILE_PENDING,
    ),
    Case(
        "pending-control-need-gone-noop",
        "The backlog that prompted extract = 6 is back on target: nothing new, and no second prompt",
        P,
        "Control: 1900 items over 4 workers is 0.95 of the target, inside the 10% tolerance. The open approval is "
        "now moot; the tick has nothing to do.",
        observation(
            seed_hosts(),
            seed_workers(extract=4),
            pending={"extract": 1900, "embed": 120, "wisdom": 400},
            approvals=[ASK_EXTRACT_6],
        ),
        quiet(up("extract", "worker-pc", 4)),
        control=True,
    ),
]

CASES = PENDING
