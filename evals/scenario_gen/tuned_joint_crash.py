"""Tuned split: joint headroom and crash loops with one cause (issue 22), on the seed fleet.

Policy figures used throughout (policies/default.yaml): a host holds at most 8 workers under 90% CPU and 85%
memory; extract 6 per host (est. 25% CPU, 4% memory, target 500 items each, 5-minute wait objective), wisdom 2
per host (est. 20% / 4%, target 200, 4-hour objective), an embedding shard est. 50% / 8%; more than 4 of a
kind on a host needs approval. A running worker's measured CPU (per-core percent / cores) replaces the estimate.
"""

from __future__ import annotations

from evals.scenario_gen.build import (
    NOOP,
    T0,
    Case,
    act,
    expect,
    gpu,
    host,
    no_scale_up,
    observation,
    quiet,
    scale,
    seed_hosts,
    seed_workers,
    up,
    workers,
)

JOBS_AFTER_SCALING = (
    "The rule planner plans scaling before data jobs: wisdom takes the GPU host's headroom first, and the "
    "embedding job, which can only run there, no longer fits."
)

J, C = "joint_headroom", "crash_loop"
NO_RESTART_OR_STOP = [act("restart_worker"), act("stop_worker")]

JOINT = [
    Case(
        "joint-seed-brain-cpu-wisdom-or-embedding",
        "Seed tick: wisdom workers and an embedding job both want the brain's CPU; only one fits",
        J,
        "The seed snapshot. Wisdom is at its per-host max (2) on worker-pc with 1000 waiting (HPA wants 4), so more "
        "wisdom means the brain; 30k rows lack vectors and the RTX 4070 idles. The brain is at 36% CPU: two wisdom "
        "workers (2 x 20%) reach 76%, one embedding shard (50%) 86%, both 126%. Either is right, not both.",
        observation(seed_hosts(), seed_workers(), pending={"extract": 2500, "embed": 30000, "wisdom": 1000}),
        expect(
            one_of=[[scale("wisdom", "brain", {"ge": 1}, "allow"), act("start_embedding", "allow", host="brain")]],
            approval="forbidden",
            verdict="allow",
        ),
    ),
    Case(
        "joint-seed-worker-pc-one-slot-extract-spills",
        "Seed tick: worker-pc has one slot of its 8 left; the extract backlog needs three more workers",
        J,
        "worker-pc runs 7 workers (max_workers 8). 4000 extract items over 5 workers: HPA wants 8. worker-pc takes "
        "one more at most (to 6, which needs approval: more than 4); the brain at 36% takes two (86% CPU, 70% "
        "memory) without a human. Nothing may bring worker-pc to 9 or the brain past 90%.",
        observation(seed_hosts(), seed_workers(), pending={"extract": 4000, "embed": 120, "wisdom": 400}),
        expect(
            [scale("extract", "brain", {"ge": 1, "le": 2}, "allow")],
            may=[scale("extract", "worker-pc", 6)],
            must_not=[scale("extract", "brain", {"gt": 2})],
        ),
    ),
    Case(
        "joint-max-workers-two-kinds-share-last-slots",
        "worker-pc may hold 6 workers: extract and wisdom together want three of its last two slots",
        J,
        "The policy caps worker-pc at 6 workers; it runs 3 extract + 1 wisdom. Extract wants 5 (2500 items), wisdom "
        "2 (600 items, max 2). The brain at 84% CPU fits neither (+25% / +20% passes 90%). Extract, with the "
        "5-minute objective, gets the slots first; extract 5 plus wisdom 2 would be 7 workers on a 6-worker host.",
        observation(
            [host("brain", 84, 70, disk=80.0), host("worker-pc", 40, 40)],
            [*workers("extract", "worker-pc", 3), *workers("wisdom", "worker-pc", 1, cpu=40.0, rss=420.0)],
            pending={"extract": 2500, "embed": 120, "wisdom": 600},
        ),
        expect(
            [scale("extract", "worker-pc", {"ge": 4, "le": 5})],
            may=[scale("wisdom", "worker-pc", 2)],
            must_not=[up("extract", "brain", 0), up("wisdom", "brain", 0)],
        ),
        policy_overrides={"hosts": {"worker-pc": {"max_workers": 6}}},
    ),
    Case(
        "joint-memory-one-worker-fits-extract-first",
        "worker-pc memory at 79%: one more worker fits, and it should be extract",
        J,
        "Each new worker adds an estimated 4% memory: 79% + 4% = 83% fits under 85%, a second one (87%) does not. "
        "Extract (3 workers, 2500 items: HPA 5) and wisdom (1 worker, 500 items: HPA 3, max 2) both ask; the brain "
        "at 86% CPU has no room. The slot goes to extract, whose objective is 5 minutes against wisdom's 4 hours.",
        observation(
            [host("brain", 86, 70, disk=80.0), host("worker-pc", 50, 79)],
            [*workers("extract", "worker-pc", 3), *workers("wisdom", "worker-pc", 1, cpu=40.0, rss=420.0)],
            pending={"extract": 2500, "embed": 120, "wisdom": 500},
        ),
        expect(
            [scale("extract", "worker-pc", 4, "allow")],
            must_not=[up("wisdom", "worker-pc", 1), up("extract", "brain", 0), up("wisdom", "brain", 0)],
            approval="forbidden",
            verdict="allow",
        ),
    ),
    Case(
        "joint-embedding-on-gpu-host-wisdom-elsewhere",
        "The GPU host fits an embedding shard or another wisdom worker: the shard goes there, wisdom to worker-pc",
        J,
        "The brain (38% CPU) runs one wisdom worker measured at 10% of its CPU; 60k rows lack vectors. One shard "
        "(50%) brings it to 88%; a second wisdom worker on top passes 90%. Only the brain has the GPU, while "
        "worker-pc (45% CPU, 4 extract) can hold wisdom workers: embedding on the brain, wisdom on worker-pc.",
        observation(
            [host("brain", 38, 50, disk=80.0, gpus=[gpu(used_mb=1200.0, util=3.0)]), host("worker-pc", 45, 45)],
            [*workers("extract", "worker-pc", 4), *workers("wisdom", "brain", 1, cpu=160.0, rss=450.0)],
            pending={"extract": 2000, "embed": 60000, "wisdom": 700},
        ),
        expect(
            [act("start_embedding", "allow", host="brain")],
            may=[scale("wisdom", "worker-pc", {"ge": 1, "le": 2})],
            must_not=[up("wisdom", "brain", 1)],
            approval="forbidden",
            verdict="allow",
        ),
        rules_known_wrong=JOBS_AFTER_SCALING,
    ),
    Case(
        "joint-brain-memory-extract-or-embedding",
        "Brain memory at 76%: two more extract workers or one embedding shard, not both",
        J,
        "worker-pc is full (6 extract at the kind's max + 2 wisdom = 8 workers). 5000 extract items want 10 "
        "workers, so more extract means the brain: two fit (30% + 2 x 25% CPU, 76% + 2 x 4% memory = 84%). 25k rows "
        "lack vectors: one shard takes 8% memory. Two extract workers and a shard reach 92% memory.",
        observation(
            seed_hosts(brain_cpu=30, brain_mem=76, pc_cpu=55, pc_mem=58),
            seed_workers(extract=6),
            pending={"extract": 5000, "embed": 25000, "wisdom": 400},
        ),
        expect(
            one_of=[[scale("extract", "brain", {"ge": 1}, "allow"), act("start_embedding", "allow", host="brain")]],
            must_not=[up("extract", "worker-pc", 6), up("wisdom", "worker-pc", 2)],
            approval="forbidden",
            verdict="allow",
        ),
    ),
    Case(
        "joint-control-room-for-both-kinds",
        "Room everywhere: extract and wisdom both scale up in the same tick",
        J,
        "Control: worker-pc runs 3 workers at 30% CPU / 35% memory, the brain idles at 20% / 40%. Extract wants 4 "
        "(2000 items over 2), wisdom 2 (400 over 1). Together that is 6 workers on worker-pc and ~50% CPU: judging "
        "the tick as a whole must not make the planner timid.",
        observation(
            seed_hosts(brain_cpu=20, brain_mem=40, pc_cpu=30, pc_mem=35),
            seed_workers(extract=2, wisdom=1),
            pending={"extract": 2000, "embed": 120, "wisdom": 400},
        ),
        expect(
            one_of=[
                [scale("extract", "worker-pc", {"ge": 3, "le": 4}, "allow"), scale("extract", "brain", {"ge": 1})],
                [scale("wisdom", "worker-pc", 2, "allow"), scale("wisdom", "brain", {"ge": 1}, "allow")],
            ],
            approval="forbidden",
            verdict="allow",
        ),
        control=True,
    ),
    Case(
        "joint-control-full-fleet-on-target",
        "worker-pc holds its 8 workers and every stage is on target: nothing to do",
        J,
        "Control: 6 extract (3000 items = 6 x 500) and 2 wisdom (400 = 2 x 200) fill worker-pc to max_workers; "
        "the brain is busy at 60% CPU. A full host is not a fault.",
        observation(
            seed_hosts(brain_cpu=60, brain_mem=70, pc_cpu=70, pc_mem=72),
            seed_workers(extract=6),
            pending={"extract": 3000, "embed": 120, "wisdom": 400},
        ),
        quiet(),
        control=True,
    ),
]

SCHEMA_ERROR = "extract-worker-pc-1 exited 3: KeyError: 'entity_type' (records schema v7)"
CRASH = [
    Case(
        "crash-seed-schema-change-every-extract-fatal",
        "After a schema change every extract worker is FATAL with exit 3: no new extract worker anywhere",
        C,
        "All 5 extract workers on worker-pc went FATAL with the same exit code after a records schema change, and "
        "the backlog grows. The fault follows the code or the data, not the host: workers started on the brain "
        "would crash the same way. Stop scaling extract, leave the FATAL workers to an operator.",
        observation(
            seed_hosts(pc_cpu=18, pc_mem=30),
            [
                *workers("extract", "worker-pc", 5, state="fatal", cpu=0.0, restarts=6, last_exit=3),
                *workers("wisdom", "worker-pc", 2, cpu=40.0, rss=420.0),
            ],
            pending={"extract": 6200, "embed": 120, "wisdom": 400},
            rates={"extract": -140.0, "embed": 60.0, "wisdom": 6.0},
            notes=[SCHEMA_ERROR],
        ),
        expect(
            may=[NOOP],
            must_not=[*no_scale_up("extract", {"worker-pc": 5, "brain": 0}), *NO_RESTART_OR_STOP],
            verdict="allow",
        ),
    ),
    Case(
        "crash-same-exit-on-both-hosts",
        "Extract FATAL with exit 1 on both hosts: one cause, so extract is not scaled anywhere",
        C,
        "2 extract workers on the brain and 3 on worker-pc, all FATAL with exit 1. Two hosts failing the same way "
        "rule out a host fault; more workers on either host would crash too.",
        observation(
            seed_hosts(brain_cpu=30, brain_mem=60, pc_cpu=20, pc_mem=35),
            [
                *workers("extract", "brain", 2, state="fatal", cpu=0.0, restarts=5, last_exit=1),
                *workers("extract", "worker-pc", 3, state="fatal", cpu=0.0, restarts=5, last_exit=1),
                *workers("wisdom", "worker-pc", 2, cpu=40.0, rss=420.0),
            ],
            pending={"extract": 4000, "embed": 120, "wisdom": 400},
            rates={"extract": -90.0, "embed": 60.0, "wisdom": 6.0},
        ),
        expect(must_not=[*no_scale_up("extract", {"brain": 2, "worker-pc": 3}), *NO_RESTART_OR_STOP]),
    ),
    Case(
        "crash-two-fatal-same-exit-three-running",
        "Two of five extract workers FATAL with exit 2: a poison input, not a reason for more workers",
        C,
        "3 extract workers run, 2 went FATAL with the same exit 2 (4000 items would want 8). The same code on two "
        "workers is one cause that any new worker can meet: do not scale extract up on either host.",
        observation(
            seed_hosts(),
            [
                *workers("extract", "worker-pc", 3),
                *workers("extract", "worker-pc", 2, first=4, state="fatal", cpu=0.0, restarts=5, last_exit=2),
                *workers("wisdom", "worker-pc", 2, cpu=40.0, rss=420.0),
            ],
            pending={"extract": 4000, "embed": 120, "wisdom": 400},
        ),
        expect(must_not=[*no_scale_up("extract", {"worker-pc": 5, "brain": 0}), *NO_RESTART_OR_STOP]),
    ),
    Case(
        "crash-wisdom-loop-extract-still-scales",
        "Both wisdom workers FATAL with exit 1: wisdom stays where it is, extract still scales",
        C,
        "The crash loop is wisdom's: no wisdom worker anywhere. Extract runs fine with 4000 items over 5 workers "
        "(HPA 8): one more fits on worker-pc (7 desired of 8, to 6 needs approval), two on the brain at 36%.",
        observation(
            seed_hosts(),
            [
                *workers("extract", "worker-pc", 5),
                *workers("wisdom", "worker-pc", 2, state="fatal", cpu=0.0, rss=300.0, restarts=5, last_exit=1),
            ],
            pending={"extract": 4000, "embed": 120, "wisdom": 900},
        ),
        expect(
            one_of=[[scale("extract", "brain", {"ge": 1}, "allow"), scale("extract", "worker-pc", 6)]],
            must_not=[*no_scale_up("wisdom", {"worker-pc": 2, "brain": 0}), *NO_RESTART_OR_STOP],
        ),
    ),
    Case(
        "crash-loop-on-brain-not-spread-to-worker-pc",
        "Extract crash-loops on the brain with exit 3: worker-pc is healthy but must not get the crash",
        C,
        "Both extract workers (on the brain) are FATAL with exit 3; worker-pc runs only wisdom and has plenty of "
        "room. Starting extract there moves the crash, it does not fix it.",
        observation(
            seed_hosts(brain_cpu=30, brain_mem=60, pc_cpu=25, pc_mem=30),
            [
                *workers("extract", "brain", 2, state="fatal", cpu=0.0, restarts=7, last_exit=3),
                *workers("wisdom", "worker-pc", 2, cpu=40.0, rss=420.0),
            ],
            pending={"extract": 3000, "embed": 120, "wisdom": 400},
            rates={"extract": -60.0, "embed": 60.0, "wisdom": 6.0},
        ),
        expect(must_not=[*no_scale_up("extract", {"brain": 2, "worker-pc": 0}), *NO_RESTART_OR_STOP]),
    ),
    Case(
        "crash-control-one-oom-kill-is-not-a-loop",
        "One extract worker OOM-killed (exit 137) on a full worker-pc: scale extract on the brain",
        C,
        "Control: one FATAL worker with exit 137 on worker-pc at 83% memory is that host's memory, not the code; "
        "4 siblings run. 3500 items over 5 desired workers want 7: worker-pc has no memory room (83% + 4% > 85%), "
        "the brain at 36% CPU fits two.",
        observation(
            seed_hosts(pc_cpu=55, pc_mem=83),
            [
                *workers("extract", "worker-pc", 4),
                *workers("extract", "worker-pc", 1, first=5, state="fatal", cpu=0.0, restarts=4, last_exit=137),
                *workers("wisdom", "worker-pc", 2, cpu=40.0, rss=420.0),
            ],
            pending={"extract": 3500, "embed": 120, "wisdom": 400},
        ),
        expect(
            [scale("extract", "brain", {"ge": 1, "le": 2}, "allow")],
            must_not=[up("extract", "worker-pc", 5), *NO_RESTART_OR_STOP],
            approval="forbidden",
            verdict="allow",
        ),
        control=True,
    ),
    Case(
        "crash-control-recovered-after-fix",
        "Extract workers crashed earlier but run again after the fix: the backlog scales as usual",
        C,
        "Control: every extract worker has 6 restarts and last exited 3, but all are running now. Past restarts "
        "are history: 4000 items over 5 workers want 8, on worker-pc (one slot, needs approval) or the brain.",
        observation(
            seed_hosts(),
            [
                *workers("extract", "worker-pc", 5, restarts=6, last_exit=3, started=T0 - 900.0),
                *workers("wisdom", "worker-pc", 2, cpu=40.0, rss=420.0),
            ],
            pending={"extract": 4000, "embed": 120, "wisdom": 400},
        ),
        expect(
            one_of=[[scale("extract", "brain", {"ge": 1}, "allow"), scale("extract", "worker-pc", 6)]],
            must_not=NO_RESTART_OR_STOP,
        ),
        control=True,
    ),
]

CASES = [*JOINT, *CRASH]
