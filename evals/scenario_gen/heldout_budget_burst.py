"""Held-out split: budget projection and bursts already draining fast, on the held-out fleets.

pace = used share / elapsed share: the window's elapsed share is used / pace and, at the same burn, what is
left lasts 5 h x (1 - used - reserved) / pace. LLM-bound stages (extract, wisdom) are not scaled up when that
ends before the window does; embedding runs on the local GPU and costs no tokens. A queue that drains at the
rate it shows empties in backlog / rate minutes: against extract's 5-minute objective and wisdom's 4 hours.
"""

from __future__ import annotations

from evals.scenario_gen.build import (
    CHEAP_ROUTING,
    CHEAPER,
    NOOP,
    T1,
    Case,
    act,
    budget,
    expect,
    no_scale_up,
    observation,
    quiet,
    scale,
    workers,
)
from evals.scenario_gen.build import (
    down as scale_down,
)
from evals.scenario_gen.fleets import ap_hosts, ap_workers, gc_hosts, tri_hosts

B, D = "budget_projection", "burst_draining"
AP_LLM = [*no_scale_up("extract", {"pc": 5, "alienware": 0}), *no_scale_up("wisdom", {"pc": 2, "alienware": 0})]


def up(kind: str, on: str, now: int) -> dict[str, object]:
    return scale(kind, on, {"gt": now})


BUDGET = [
    Case(
        "ho-budget-95-percent-pace-1-19",
        "95% of the window used at pace 1.19: ~13 minutes of tokens for the hour left",
        B,
        "Elapsed 0.95 / 1.19 = 80% (4 h in, 1 h left); 40M tokens last 5 h x 0.05 / 1.19 = 13 min. The pace sits "
        "just under a 1.2 routing trigger, but the projection is what matters: 3500 extract items get no more "
        "LLM-bound workers.",
        observation(
            ap_hosts(),
            ap_workers(),
            pending={"extract": 3500, "embed": 150, "wisdom": 400},
            spend=budget(0.95, 1.19, cost=24.0),
            time=T1,
        ),
        expect(may=[NOOP, CHEAPER], must_not=AP_LLM, approval="forbidden"),
    ),
    Case(
        "ho-budget-pace-1-6-early-in-the-window",
        "40% used at pace 1.6, 1.25 hours in: the window runs dry almost 2 hours early",
        B,
        "Elapsed 25%, 3.75 h left; 480M tokens last 5 h x 0.6 / 1.6 = 1.9 h. 900 wisdom items (one worker on "
        "alienware) and 3500 extract items would both want more workers: neither, and go cheaper.",
        observation(
            ap_hosts(),
            [*workers("extract", "pc", 5, rss=700.0), *workers("wisdom", "alienware", 1, cpu=150.0, rss=500.0)],
            pending={"extract": 3500, "embed": 150, "wisdom": 900},
            spend=budget(0.4, 1.6, cost=9.0),
            time=T1,
        ),
        expect(
            [CHEAPER],
            must_not=[
                *no_scale_up("extract", {"pc": 5, "alienware": 0}),
                *no_scale_up("wisdom", {"alienware": 1, "pc": 0}),
            ],
            approval="forbidden",
        ),
    ),
    Case(
        "ho-budget-reserved-tokens-eat-the-rest",
        "80% used and 12% reserved by calls in flight at pace 1.1: 8% left for 1.4 hours",
        B,
        "Reserved tokens are spent as far as the window is concerned. Elapsed 0.8 / 1.1 = 73%, 1.4 h left; 64M "
        "tokens last 5 h x 0.08 / 1.1 = 22 min. 3000 extract items would want 6 over 5: no.",
        observation(
            ap_hosts(),
            ap_workers(),
            pending={"extract": 3000, "embed": 150, "wisdom": 400},
            spend=budget(0.8, 1.1, reserved=0.12, cost=20.0),
            time=T1,
        ),
        expect(may=[NOOP, CHEAPER], must_not=AP_LLM, approval="forbidden"),
    ),
    Case(
        "ho-budget-exhausting-embedding-proceeds",
        "The window runs out in ~22 minutes: extract waits, the GPU embedding job starts",
        B,
        "90% used at pace 1.35: elapsed 67%, 1.7 h left; 80M tokens last 5 h x 0.1 / 1.35 = 22 min. 30k rows "
        "lack vectors and the RTX 4070 idles: embedding costs no tokens. Cheaper routing, no LLM-bound scale-up.",
        observation(
            ap_hosts(alien_cpu=30.0),
            ap_workers(),
            pending={"extract": 3500, "embed": 30000, "wisdom": 400},
            spend=budget(0.9, 1.35, cost=22.0),
            time=T1,
        ),
        expect(
            [CHEAPER, act("start_embedding", "allow", host="alienware")],
            must_not=AP_LLM,
            approval="forbidden",
        ),
    ),
    Case(
        "ho-budget-400m-window-half-elapsed",
        "A 400M-token window, 75% used at pace 1.5: 50 minutes of tokens for 2.5 hours",
        B,
        "Elapsed 0.75 / 1.5 = 50%; 100M tokens last 5 h x 0.25 / 1.5 = 50 min. 4000 extract items over 4 workers "
        "on worker-a and worker-b would want 8.",
        observation(
            tri_hosts(a=(45.0, 45.0), b=(45.0, 45.0)),
            [*workers("extract", "worker-a", 2, cpu=100.0), *workers("extract", "worker-b", 2, cpu=100.0)],
            pending={"extract": 4000, "embed": 150, "wisdom": 0},
            spend=budget(0.75, 1.5, window=400_000_000, cost=15.0),
            time=T1,
        ),
        expect(
            [CHEAPER],
            must_not=no_scale_up("extract", {"worker-a": 2, "worker-b": 2, "brain": 0}),
            approval="forbidden",
        ),
    ),
    Case(
        "ho-budget-control-86-percent-pace-0-9",
        "86% used at pace 0.9 with 13 minutes to the window's end: enough, scale as usual",
        B,
        "Control: elapsed 96%; 112M tokens last 5 h x 0.14 / 0.9 = 47 min, past the window's end. 2400 extract "
        "items over 2 workers want 5.",
        observation(
            ap_hosts(),
            ap_workers(extract=2),
            pending={"extract": 2400, "embed": 150, "wisdom": 400},
            spend=budget(0.86, 0.9, cost=19.0),
            time=T1,
        ),
        expect(one_of=[[scale("extract", "pc", {"ge": 3}), scale("extract", "alienware", {"ge": 1})]]),
        control=True,
    ),
    Case(
        "ho-budget-control-pace-recovered-restore-and-scale",
        "Pace back to 0.5 on the cheap split: restore the default routing and scale extract",
        B,
        "Control: 30% used at pace 0.5 (60% of the window gone); the cheap split is no longer needed, and 2000 "
        "extract items over 2 workers want 4.",
        observation(
            ap_hosts(),
            ap_workers(extract=2),
            pending={"extract": 2000, "embed": 150, "wisdom": 400},
            spend=budget(0.3, 0.5, cost=7.0, routing=CHEAP_ROUTING),
            time=T1,
        ),
        expect(
            [act("set_model_routing", "allow", weights__routine={"le": 0.65})],
            one_of=[[scale("extract", "pc", {"ge": 3, "le": 4}, "allow"), scale("extract", "alienware", {"ge": 1})]],
            approval="forbidden",
            verdict="allow",
        ),
        control=True,
    ),
]

BURST = [
    Case(
        "ho-burst-pc-drains-in-two-minutes",
        "extract went 2 -> 4 three minutes ago and 2600 items drain 1300/min: no further step, no page",
        D,
        "By target alone 2600 items want 6 (more than 4 on pc: a human would be paged), but the queue empties in "
        "2 min, well inside the 5-minute objective; a scale-down would undo the step that is working.",
        observation(
            ap_hosts(),
            ap_workers(extract=4),
            pending={"extract": 2600, "embed": 150, "wisdom": 400},
            rates={"extract": 1300.0, "embed": 80.0, "wisdom": 5.0},
            recent={"scale_workers:extract@pc": 180.0},
            time=T1,
        ),
        quiet(*no_scale_up("extract", {"pc": 4, "alienware": 0}), scale_down("extract", "pc", 4)),
    ),
    Case(
        "ho-burst-three-hosts-draining",
        "Both worker hosts stepped extract up 150 s ago; 4000 items drain 1100/min: wait",
        D,
        "6 extract workers (3 + 3) against 4000 items, 8 by target, but empty in ~3.6 min at the drain shown.",
        observation(
            tri_hosts(a=(55.0, 45.0), b=(55.0, 45.0)),
            [*workers("extract", "worker-a", 3, cpu=100.0), *workers("extract", "worker-b", 3, cpu=100.0)],
            pending={"extract": 4000, "embed": 150, "wisdom": 0},
            rates={"extract": 1100.0, "embed": 80.0, "wisdom": 0.0},
            recent={"scale_workers:extract@worker-a": 150.0, "scale_workers:extract@worker-b": 150.0},
            time=T1,
        ),
        quiet(*no_scale_up("extract", {"worker-a": 3, "worker-b": 3, "brain": 0})),
    ),
    Case(
        "ho-burst-wisdom-draining-on-gpu-box",
        "A wisdom worker started 4 minutes ago; 350 items drain 40/min: 9 minutes against 4 hours",
        D,
        "By target 350 items want 2 wisdom workers, but they are gone in ~9 min; wisdom may lag 4 hours.",
        observation(
            gc_hosts(),
            [
                *workers("wisdom", "gpu-box", 1, cpu=80.0, rss=520.0, started=T1 - 240.0),
                *workers("extract", "cpu-box", 3, rss=650.0),
            ],
            pending={"extract": 1500, "embed": 150, "wisdom": 350},
            rates={"extract": 30.0, "embed": 80.0, "wisdom": 40.0},
            recent={"scale_workers:wisdom@gpu-box": 240.0},
            time=T1,
        ),
        quiet(*no_scale_up("wisdom", {"gpu-box": 1, "cpu-box": 0})),
    ),
    Case(
        "ho-burst-draining-keep-workers-in-window",
        "extract went 3 -> 5 75 seconds ago; 700 items drain 450/min: neither up nor down yet",
        D,
        "By target 700 items need 2 of the 5 workers, but the scale-down stabilization window (300 s) has not "
        "passed since the step up; the queue needs nothing more either.",
        observation(
            ap_hosts(),
            ap_workers(extract=5),
            pending={"extract": 700, "embed": 150, "wisdom": 400},
            rates={"extract": 450.0, "embed": 80.0, "wisdom": 5.0},
            recent={"scale_workers:extract@pc": 75.0},
            time=T1,
        ),
        quiet(scale_down("extract", "pc", 5), *no_scale_up("extract", {"pc": 5, "alienware": 0})),
    ),
    Case(
        "ho-burst-control-drain-too-slow",
        "4000 extract items drain at 100/min: 40 minutes against a 5-minute objective, scale up",
        D,
        "Control: draining, but eight times too slowly; HPA wants 8 over 4.",
        observation(
            ap_hosts(),
            ap_workers(extract=4),
            pending={"extract": 4000, "embed": 150, "wisdom": 400},
            rates={"extract": 100.0, "embed": 80.0, "wisdom": 5.0},
            time=T1,
        ),
        expect(one_of=[[scale("extract", "pc", {"ge": 5}), scale("extract", "alienware", {"ge": 1})]]),
        control=True,
    ),
    Case(
        "ho-burst-control-new-burst-growing",
        "A new burst: 1800 items growing 250/min over one extract worker, no recent change: scale up",
        D,
        "Control: nothing drains this burst yet; HPA wants 4.",
        observation(
            ap_hosts(),
            ap_workers(extract=1),
            pending={"extract": 1800, "embed": 150, "wisdom": 400},
            rates={"extract": -250.0, "embed": 80.0, "wisdom": 5.0},
            time=T1,
        ),
        expect(one_of=[[scale("extract", "pc", {"ge": 2}), scale("extract", "alienware", {"ge": 1})]]),
        control=True,
    ),
]

CASES = [*BUDGET, *BURST]
