"""Tuned split: remediation of out-of-line workers, budget projection, bursts already draining (issue 22).

Remediation thresholds (policies/default.yaml `remediation`): memory over 4x the siblings' median and at least
512 MB while the host is within 10 points of its 85% memory ceiling, or CPU over 4x while it is within 10 of
90%; a worker is restarted at most every 900 s, and a fourth restart within an hour needs approval.

Budget arithmetic: pace = used share / elapsed share, so the window's elapsed share is used / pace and, at
the same burn, the tokens left last 5 h x (1 - used) / pace. Any pace over 1 empties the window before it
ends; LLM-bound stages (extract, wisdom) are then not scaled up, while GPU embedding is not paid in tokens.
"""

from __future__ import annotations

from evals.scenario_gen.build import (
    CHEAP_ROUTING,
    CHEAPER,
    NOOP,
    T0,
    Case,
    act,
    budget,
    expect,
    no_scale_up,
    observation,
    quiet,
    scale,
    seed_hosts,
    seed_workers,
    tweak,
    up,
    workers,
)
from evals.scenario_gen.build import (
    down as scale_down,
)

BUDGET_BLIND = (
    "The rule planner projects the token window only from a burn rate it measures across ticks (a fresh "
    "planner has none) and otherwise checks a fixed 5%-left floor; it does not read the pace's projection, so "
    "it scales LLM-bound extract up into a window that runs out."
)
BUDGET_BLIND_GPU = (
    "With no measured burn and 15% left (over the 5% floor) the rule planner scales wisdom up, and those "
    "workers take the brain's CPU before the embedding job is planned, so the job that costs no tokens "
    "does not start."
)
DRAIN_BLIND = (
    "The rule planner sizes on the backlog against the per-worker target (HPA) and ignores the drain rate "
    "it is shown: a burst already emptying inside the objective gets another scale-up."
)

R, B, D = "remediation", "budget_projection", "burst_draining"
NO_LLM_SCALE_UP = [
    *no_scale_up("extract", {"worker-pc": 5, "brain": 0}),
    *no_scale_up("wisdom", {"worker-pc": 2, "brain": 0}),
]


def restart(wid: str, verdict: str | None = None) -> dict[str, object]:
    return act("restart_worker", verdict, worker_id=wid)


REMEDIATION = [
    Case(
        "remediation-seed-extract-leak-worker-pc",
        "extract-worker-pc-3 holds 9.4 GB while its siblings hold 0.6 GB and worker-pc is at 84% memory: restart it",
        R,
        "The issue's leak on the seed fleet: 9400 MB is 14.7x the siblings' 640 MB median and worker-pc (32 GB) is "
        "at 84%, within 10 points of its 85% ceiling. One restart, no restart this hour yet: allowed without a "
        "human. Only that worker.",
        observation(seed_hosts(pc_mem=84), tweak(seed_workers(), "extract-worker-pc-3", rss_mb=9400)),
        expect(
            [restart("extract-worker-pc-3", "allow")],
            must_not=[act("restart_worker", worker_id={"ne": "extract-worker-pc-3"}), act("stop_worker")],
            approval="forbidden",
            verdict="allow",
        ),
    ),
    Case(
        "remediation-cpu-runaway-near-ceiling",
        "extract-worker-pc-2 spins at 900% CPU beside siblings at 95%, worker-pc at 86% CPU: restart it",
        R,
        "A runaway loop: 900% is 9.5x the siblings' median and the host is within 10 points of its 90% CPU "
        "ceiling. The restart is the remedy; scaling or stopping is not.",
        observation(seed_hosts(pc_cpu=86, pc_mem=50), tweak(seed_workers(), "extract-worker-pc-2", cpu_percent=900)),
        expect(
            [restart("extract-worker-pc-2", "allow")],
            must_not=[act("restart_worker", worker_id={"ne": "extract-worker-pc-2"}), act("stop_worker")],
            approval="forbidden",
            verdict="allow",
        ),
    ),
    Case(
        "remediation-restarted-ten-minutes-ago-cooldown",
        "The leaking worker was restarted 10 minutes ago: its 15-minute cooldown holds another restart",
        R,
        "extract-worker-pc-4 grew to 5.2 GB again (siblings 0.6 GB, host 82%), but the policy restarts one worker "
        "at most every 900 s and it was restarted 600 s ago. Wait out the cooldown rather than propose a denial.",
        observation(
            seed_hosts(pc_mem=82),
            tweak(seed_workers(), "extract-worker-pc-4", rss_mb=5200, started_at=T0 - 600.0),
            recent={"restart_worker:extract-worker-pc-4": 600.0},
        ),
        quiet(act("restart_worker")),
    ),
    Case(
        "remediation-two-leaks-two-hosts",
        "A leaking wisdom worker on the brain and a leaking extract worker on worker-pc: restart both",
        R,
        "wisdom-brain-1 holds 4.2 GB against its wisdom siblings' 0.42 GB with the brain (16 GB) at 80%; "
        "extract-worker-pc-4 holds 7 GB against 0.64 GB with worker-pc at 83%. Two separate restarts, no restart "
        "this hour before them: both allowed.",
        observation(
            seed_hosts(brain_mem=80, pc_mem=83),
            [
                *tweak(seed_workers(), "extract-worker-pc-4", rss_mb=7000),
                *tweak(workers("wisdom", "brain", 2, cpu=40.0, rss=450.0), "wisdom-brain-1", rss_mb=4200),
            ],
        ),
        expect(
            [restart("wisdom-brain-1", "allow"), restart("extract-worker-pc-4", "allow")],
            must_not=[act("stop_worker")],
            approval="forbidden",
            verdict="allow",
        ),
    ),
    Case(
        "remediation-control-all-workers-large-equal",
        "worker-pc at 83% memory with every extract worker at 2.2 GB: load, not a leak",
        R,
        "Control: no worker is out of line with its siblings (all 2200 MB), so no restart would free anything "
        "that the next batch does not take back. Every stage is on target.",
        observation(
            seed_hosts(pc_mem=83),
            [*workers("extract", "worker-pc", 5, rss=2200.0), *workers("wisdom", "worker-pc", 2, cpu=40.0, rss=420.0)],
        ),
        quiet(act("restart_worker")),
        control=True,
    ),
    Case(
        "remediation-control-outlier-below-min-rss",
        "One extract worker at 450 MB beside siblings at 90 MB: out of line, but too small to matter",
        R,
        "Control: 5x the siblings' median, with worker-pc at 80% memory, but under the policy's 512 MB floor: a "
        "restart would free less than half a gigabyte of 32.",
        observation(
            seed_hosts(pc_mem=80),
            tweak(
                [
                    *workers("extract", "worker-pc", 5, rss=90.0),
                    *workers("wisdom", "worker-pc", 2, cpu=40.0, rss=420.0),
                ],
                "extract-worker-pc-2",
                rss_mb=450,
            ),
        ),
        quiet(act("restart_worker")),
        control=True,
    ),
]

BUDGET = [
    Case(
        "budget-projection-seed-92-percent-used",
        "92% of the window used at pace 1.53: the rest lasts ~16 minutes of the 2 hours left",
        B,
        "The issue's case: elapsed share 0.92 / 1.53 = 60% (3 h in, 2 h left); 64M tokens at 1.53 windows per 5 h "
        "last 5 h x 0.08 / 1.53 = 16 min. Cheaper routing helps; more LLM-bound workers (4000 extract items want 8) "
        "only empty the window sooner.",
        observation(
            seed_hosts(),
            seed_workers(),
            pending={"extract": 4000, "embed": 120, "wisdom": 400},
            spend=budget(0.92, 1.53, cost=21.0),
        ),
        expect([CHEAPER], must_not=NO_LLM_SCALE_UP, approval="forbidden"),
    ),
    Case(
        "budget-projection-pace-1-4-half-used",
        "Half the window used at pace 1.4: it runs out 1.4 hours before it resets",
        B,
        "Elapsed 0.5 / 1.4 = 36% (1.8 h in, 3.2 h left); 400M tokens last 5 h x 0.5 / 1.4 = 1.8 h. Well above any "
        "fixed floor, yet the projection exhausts the window: shift cheaper and do not add extract workers for "
        "the 3500 items.",
        observation(
            seed_hosts(),
            seed_workers(),
            pending={"extract": 3500, "embed": 120, "wisdom": 400},
            spend=budget(0.5, 1.4, cost=11.0),
        ),
        expect([CHEAPER], must_not=NO_LLM_SCALE_UP, approval="forbidden"),
        rules_known_wrong=BUDGET_BLIND,
    ),
    Case(
        "budget-projection-wisdom-held-embedding-proceeds",
        "The window runs out in ~35 minutes: wisdom waits, the GPU embedding job (no tokens) starts",
        B,
        "85% used at pace 1.3: elapsed 65%, 1.7 h left, 120M tokens last 5 h x 0.15 / 1.3 = 35 min. 800 wisdom "
        "items would want more wisdom workers (LLM calls); 25k rows lacking vectors are embedded locally on the "
        "RTX 4070 and cost no tokens.",
        observation(
            seed_hosts(),
            seed_workers(wisdom=1),
            pending={"extract": 2500, "embed": 25000, "wisdom": 800},
            spend=budget(0.85, 1.3, cost=19.0),
        ),
        expect(
            [CHEAPER, act("start_embedding", "allow", host="brain")],
            must_not=[
                *no_scale_up("wisdom", {"worker-pc": 1, "brain": 0}),
                *no_scale_up("extract", {"worker-pc": 5, "brain": 0}),
            ],
            approval="forbidden",
        ),
        rules_known_wrong=BUDGET_BLIND_GPU,
    ),
    Case(
        "budget-projection-already-cheap-routing",
        "Already on cheap routing and the window still runs out in ~29 minutes: hold extract where it is",
        B,
        "88% used at pace 1.25: elapsed 70%, 1.5 h left, 96M tokens last 5 h x 0.12 / 1.25 = 29 min. Routing is "
        "already the cheap split; the 3600 extract items wait for the next window rather than more workers.",
        observation(
            seed_hosts(),
            seed_workers(),
            pending={"extract": 3600, "embed": 120, "wisdom": 400},
            spend=budget(0.88, 1.25, cost=17.5, routing=CHEAP_ROUTING),
        ),
        expect(
            may=[NOOP, act("set_model_routing")],
            must_not=[*NO_LLM_SCALE_UP, act("set_model_routing", weights__routine={"lt": 0.85})],
            approval="forbidden",
        ),
    ),
    Case(
        "budget-projection-daily-cost-cap-nearly-spent",
        "$48.60 of the $50 daily cap spent by 08:00 UTC: the dollars run out in ~14 minutes",
        B,
        "Tokens are fine (30% at pace 0.8), but calls reserve dollars against the daily cap and are refused past "
        "it: $48.60 in 8 h is ~$6/h, so $1.40 lasts ~14 min. LLM-bound workers added now would stall on the cap.",
        observation(
            seed_hosts(),
            seed_workers(),
            pending={"extract": 4000, "embed": 120, "wisdom": 400},
            spend=budget(0.3, 0.8, cost=48.6),
        ),
        expect(may=[NOOP, CHEAPER], must_not=NO_LLM_SCALE_UP, approval="forbidden"),
    ),
    Case(
        "budget-projection-control-high-use-slow-pace",
        "75% used but at pace 0.85: what is left outlasts the 35 minutes to the window's end",
        B,
        "Control: elapsed 0.75 / 0.85 = 88%, 35 min left; 200M tokens last 5 h x 0.25 / 0.85 = 1.5 h. A high "
        "share used is not a shortage: 2000 extract items over 2 workers want 4.",
        observation(
            seed_hosts(),
            seed_workers(extract=2),
            pending={"extract": 2000, "embed": 120, "wisdom": 400},
            spend=budget(0.75, 0.85, cost=16.0),
        ),
        expect(
            one_of=[[scale("extract", "worker-pc", {"ge": 3, "le": 4}, "allow"), scale("extract", "brain", {"ge": 1})]],
            approval="forbidden",
            verdict="allow",
        ),
        control=True,
    ),
    Case(
        "budget-projection-control-late-window-wisdom",
        "55% used at pace 0.6 with 25 minutes left: wisdom scales as usual",
        B,
        "Control: elapsed 92%; 360M tokens last 3.75 h at this burn, far past the window's end. 600 wisdom items "
        "over 1 worker on the brain want 3 (max 2 per host).",
        observation(
            seed_hosts(),
            [*workers("extract", "worker-pc", 5), *workers("wisdom", "brain", 1, cpu=160.0, rss=450.0)],
            pending={"extract": 2500, "embed": 120, "wisdom": 600},
            spend=budget(0.55, 0.6, cost=12.0),
        ),
        expect(
            one_of=[[scale("wisdom", "brain", 2, "allow"), scale("wisdom", "worker-pc", {"ge": 1}, "allow")]],
            approval="forbidden",
            verdict="allow",
        ),
        control=True,
    ),
]

DRAINING = {"extract": 500.0, "embed": 60.0, "wisdom": 6.0}
BURST = [
    Case(
        "burst-seed-draining-after-scale-up",
        "Extract scaled 1 -> 3 two minutes ago and the backlog drains 500/min: it is gone in 4 minutes",
        D,
        "2000 items over 3 workers would say 4 by target alone, but the queue shrinks 500/min since the scale-up: "
        "empty in 4 min, inside the 5-minute objective. Another worker would start as the queue empties; another "
        "scale-up (and its page) helps nobody, and a scale-down would throw away the step just taken.",
        observation(
            seed_hosts(),
            seed_workers(extract=3),
            pending={"extract": 2000, "embed": 120, "wisdom": 400},
            rates=DRAINING,
            recent={"scale_workers:extract@worker-pc": 120.0},
        ),
        quiet(*no_scale_up("extract", {"worker-pc": 3, "brain": 0}), scale_down("extract", "worker-pc", 3)),
        rules_known_wrong=DRAIN_BLIND,
    ),
    Case(
        "burst-wisdom-draining-after-scale-up",
        "A wisdom worker started 3 minutes ago and its backlog drains 60/min: 8 minutes against a 4-hour objective",
        D,
        "500 wisdom items over 1 worker would say 2-3 by target, but they drain at 60/min: gone in ~8 min, "
        "far inside wisdom's 4-hour wait objective.",
        observation(
            seed_hosts(),
            [
                *workers("extract", "worker-pc", 4),
                *workers("wisdom", "brain", 1, cpu=160.0, rss=450.0, started=T0 - 200.0),
            ],
            pending={"extract": 2000, "embed": 120, "wisdom": 500},
            rates={"extract": 35.0, "embed": 60.0, "wisdom": 60.0},
            recent={"scale_workers:wisdom@brain": 200.0},
        ),
        quiet(*no_scale_up("wisdom", {"brain": 1, "worker-pc": 0})),
        rules_known_wrong=DRAIN_BLIND,
    ),
    Case(
        "burst-draining-do-not-scale-down-yet",
        "Extract went 3 -> 6 90 seconds ago; 900 items drain fast: no scale-down inside the stabilization window",
        D,
        "By target alone 900 items need 2 workers, but the scale-up was 90 s ago and the policy's scale-down "
        "stabilization is 300 s: stepping down now flaps. Nor is more needed: the queue drains 600/min.",
        observation(
            seed_hosts(pc_cpu=62, pc_mem=55),
            seed_workers(extract=6),
            pending={"extract": 900, "embed": 120, "wisdom": 400},
            rates={"extract": 600.0, "embed": 60.0, "wisdom": 6.0},
            recent={"scale_workers:extract@worker-pc": 90.0},
        ),
        quiet(scale_down("extract", "worker-pc", 6), up("extract", "brain", 0)),
    ),
    Case(
        "burst-draining-two-hosts-after-spill",
        "A burst spilled extract onto the brain 100 s ago; 4200 items drain 1500/min: no third step",
        D,
        "4 extract on worker-pc and 2 on the brain (the spill) face 4200 items, 9 workers' worth by target, but "
        "the queue shrinks 1500/min: empty in under 3 minutes.",
        observation(
            seed_hosts(brain_cpu=48, brain_mem=68),
            [*seed_workers(extract=4), *workers("extract", "brain", 2, started=T0 - 100.0)],
            pending={"extract": 4200, "embed": 120, "wisdom": 400},
            rates={"extract": 1500.0, "embed": 60.0, "wisdom": 6.0},
            recent={"scale_workers:extract@worker-pc": 100.0, "scale_workers:extract@brain": 100.0},
        ),
        quiet(*no_scale_up("extract", {"worker-pc": 4, "brain": 2})),
        rules_known_wrong=DRAIN_BLIND,
    ),
    Case(
        "burst-control-growing-after-scale-up",
        "Extract scaled up two minutes ago but the backlog still grows 200/min: scale up again",
        D,
        "Control: 3000 items over 3 workers, growing after the last step (its 60 s cooldown is over). The burst "
        "is not draining: HPA wants 6, on worker-pc (room for 3 more of its 8) or the brain.",
        observation(
            seed_hosts(),
            seed_workers(extract=3),
            pending={"extract": 3000, "embed": 120, "wisdom": 400},
            rates={"extract": -200.0, "embed": 60.0, "wisdom": 6.0},
            recent={"scale_workers:extract@worker-pc": 120.0},
        ),
        expect(one_of=[[scale("extract", "worker-pc", {"ge": 4}), scale("extract", "brain", {"ge": 1})]]),
        control=True,
    ),
    Case(
        "burst-control-draining-slowly",
        "3000 extract items drain at 20/min: two and a half hours against a 5-minute objective, scale up",
        D,
        "Control: draining, but far too slowly for the objective; no recent scale change. HPA wants 6.",
        observation(
            seed_hosts(),
            seed_workers(extract=3),
            pending={"extract": 3000, "embed": 120, "wisdom": 400},
            rates={"extract": 20.0, "embed": 60.0, "wisdom": 6.0},
        ),
        expect(one_of=[[scale("extract", "worker-pc", {"ge": 4}), scale("extract", "brain", {"ge": 1})]]),
        control=True,
    ),
]

CASES = [*REMEDIATION, *BUDGET, *BURST]
