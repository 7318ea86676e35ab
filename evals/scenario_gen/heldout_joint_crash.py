"""Held-out split: joint headroom and crash loops with one cause, on fleets the tuned split does not use
(evals/scenario_gen/fleets.py). The planner's authors do not tune against these; the reports show them apart.

Policy figures as in the tuned split: 8 workers, 90% CPU and 85% memory per host; extract max 6 per host
(est. 25% / 4%, target 500), wisdom max 2 (est. 20% / 4%, target 200), an embedding shard est. 50% / 8%;
more than 4 of a kind on a host needs approval; measured worker CPU replaces the estimate.
"""

from __future__ import annotations

from evals.scenario_gen.build import (
    NOOP,
    T1,
    Case,
    act,
    expect,
    no_scale_up,
    observation,
    quiet,
    scale,
    workers,
)
from evals.scenario_gen.build import (
    host as make_host,
)
from evals.scenario_gen.fleets import ap_hosts, ap_workers, gc_hosts, tri_hosts

J, C = "joint_headroom", "crash_loop"
NO_RESTART_OR_STOP = [act("restart_worker"), act("stop_worker")]


def up(kind: str, on: str, now: int) -> dict[str, object]:
    return scale(kind, on, {"gt": now})


JOINT = [
    Case(
        "ho-joint-alienware-pc-extract-spill-and-embedding",
        "alienware fits two extract workers or one embedding shard; pc has one slot of its 8",
        J,
        "pc runs the 7 research workers (5 extract, 2 wisdom). 3600 extract items want 8 workers: pc takes one more "
        "(to 6, with approval), alienware at 38% CPU two (88%). 22k rows lack vectors: one shard (50%) also fits "
        "alienware alone, but two extract workers and a shard come to 138%.",
        observation(ap_hosts(), ap_workers(), pending={"extract": 3600, "embed": 22000, "wisdom": 400}, time=T1),
        expect(
            one_of=[[scale("extract", "alienware", {"ge": 1}, "allow"), scale("extract", "pc", 6)]],
            may=[act("start_embedding", host="alienware")],
            must_not=[scale("extract", "alienware", {"gt": 2})],
        ),
    ),
    Case(
        "ho-joint-three-hosts-worker-b-holds-one-kind-of-two",
        "worker-a is hot; worker-b has CPU for extract or wisdom workers, not both sets",
        J,
        "worker-a (8 threads) is at 85%: another extract worker (12.5% measured) passes 90%. 4500 extract items want "
        "9 over 6; 700 wisdom items want 4 over 2 (worker-a holds its max 2). worker-b at 35% fits four extract "
        "workers (12.5% each) or two wisdom (est. 20%) plus one extract, not three extract and two wisdom (112%).",
        observation(
            tri_hosts(a=(85.0, 50.0), b=(35.0, 40.0)),
            [
                *workers("extract", "worker-a", 4, cpu=100.0),
                *workers("wisdom", "worker-a", 2, cpu=50.0, rss=500.0),
                *workers("extract", "worker-b", 2, cpu=100.0),
            ],
            pending={"extract": 4500, "embed": 150, "wisdom": 700},
            time=T1,
        ),
        expect(
            one_of=[[scale("extract", "worker-b", {"ge": 3}), scale("extract", "brain", {"ge": 1})]],
            may=[scale("wisdom", "worker-b"), scale("wisdom", "brain")],
            must_not=[up("extract", "worker-a", 4), up("wisdom", "worker-a", 2)],
        ),
    ),
    Case(
        "ho-joint-embedding-or-extract-spill-on-alienware",
        "pc is full; alienware holds two spilled extract workers or one embedding shard",
        J,
        "pc runs 6 extract (the kind's max) + 2 wisdom = 8 workers. 4800 extract items want 10; alienware at 25% "
        "CPU fits two extract workers (75%) and 50k rows want embedding shards of 50% each: one shard fits alone, "
        "a shard with two extract workers is 125%.",
        observation(
            ap_hosts(alien_cpu=25.0, alien_mem=58.0, pc_cpu=66.0, pc_mem=61.0),
            ap_workers(extract=6),
            pending={"extract": 4800, "embed": 50000, "wisdom": 400},
            time=T1,
        ),
        expect(
            one_of=[
                [scale("extract", "alienware", {"ge": 1}, "allow"), act("start_embedding", "allow", host="alienware")]
            ],
            must_not=[up("extract", "pc", 6), up("wisdom", "pc", 2)],
            approval="forbidden",
            verdict="allow",
        ),
    ),
    Case(
        "ho-joint-memory-two-slots-extract-first",
        "pc at 76.5% memory fits two more workers: both go to extract, whose objective is 5 minutes",
        J,
        "Two workers at an estimated 4% memory each reach 84.5%, a third 88.5%. 2400 extract items over 2 workers "
        "want 5, 500 wisdom items over 1 want 2 (its max); alienware at 88% CPU takes neither. Extract's backlog is "
        "far past its 5-minute objective, wisdom's is well inside 4 hours.",
        observation(
            ap_hosts(alien_cpu=88.0, alien_mem=70.0, pc_cpu=40.0, pc_mem=76.5),
            ap_workers(extract=2, wisdom=1),
            pending={"extract": 2400, "embed": 150, "wisdom": 500},
            time=T1,
        ),
        expect(
            [scale("extract", "pc", 4, "allow")],
            must_not=[up("wisdom", "pc", 1), up("extract", "alienware", 0), up("wisdom", "alienware", 0)],
            approval="forbidden",
            verdict="allow",
        ),
    ),
    Case(
        "ho-joint-gpu-box-shard-wisdom-to-cpu-box",
        "gpu-box fits an embedding shard or a second wisdom worker; the shard needs the GPU, wisdom does not",
        J,
        "gpu-box (8 threads) is at 32% with one wisdom worker measured at 10%. 40k rows lack vectors: one shard "
        "(50%) makes 82%, a wisdom worker on top 92%. cpu-box (32 threads, 40%) can take the wisdom workers that "
        "600 items want.",
        observation(
            gc_hosts(gpu_cpu=32.0),
            [*workers("wisdom", "gpu-box", 1, cpu=80.0, rss=520.0), *workers("extract", "cpu-box", 3, rss=650.0)],
            pending={"extract": 1500, "embed": 40000, "wisdom": 600},
            time=T1,
        ),
        expect(
            [act("start_embedding", "allow", host="gpu-box")],
            may=[scale("wisdom", "cpu-box", {"ge": 1, "le": 2})],
            must_not=[up("wisdom", "gpu-box", 1)],
            approval="forbidden",
            verdict="allow",
        ),
    ),
    Case(
        "ho-joint-six-worker-hosts-one-slot-not-two",
        "Hosts capped at 6 workers: pc has one slot and both extract and wisdom want it",
        J,
        "The policy caps every host at 6 workers; pc runs 4 extract + 1 wisdom. 3000 extract items want 6 and "
        "500 wisdom items 2, and alienware at 87% CPU takes neither. One worker more on pc, whichever kind: two "
        "would make 7.",
        observation(
            ap_hosts(alien_cpu=87.0, alien_mem=70.0, pc_cpu=45.0, pc_mem=50.0),
            ap_workers(extract=4, wisdom=1),
            pending={"extract": 3000, "embed": 150, "wisdom": 500},
            time=T1,
        ),
        expect(one_of=[[scale("extract", "pc", 5), scale("wisdom", "pc", 2)]]),
        policy_overrides={"hosts": {"*": {"max_workers": 6}}},
    ),
    Case(
        "ho-joint-control-three-hosts-room",
        "Three hosts with room: extract and wisdom both scale in one tick",
        J,
        "Control: 1500 extract items over 1 worker want 3, 300 wisdom items over 1 want 2, and every host is under "
        "40% CPU and memory. Joint accounting leaves plenty.",
        observation(
            tri_hosts(brain=(20.0, 35.0), a=(25.0, 30.0), b=(20.0, 30.0)),
            [*workers("extract", "worker-a", 1, cpu=100.0), *workers("wisdom", "brain", 1, cpu=120.0, rss=500.0)],
            pending={"extract": 1500, "embed": 150, "wisdom": 300},
            time=T1,
        ),
        expect(
            one_of=[
                [
                    scale("extract", h, {"ge": 2 if h == "worker-a" else 1}, "allow")
                    for h in ("worker-a", "worker-b", "brain")
                ],
                [scale("wisdom", "brain", 2, "allow"), scale("wisdom", "worker-a", 1), scale("wisdom", "worker-b", 1)],
            ],
            approval="forbidden",
            verdict="allow",
        ),
        control=True,
    ),
    Case(
        "ho-joint-control-hot-hosts-on-target",
        "alienware at 89% CPU and pc full at 8 workers, every stage on target: nothing to do",
        J,
        "Control: 3000 extract items = 6 x 500, 400 wisdom = 2 x 200; busy hosts within their ceilings.",
        observation(
            ap_hosts(alien_cpu=89.0, alien_mem=80.0, pc_cpu=72.0, pc_mem=70.0),
            ap_workers(extract=6),
            pending={"extract": 3000, "embed": 150, "wisdom": 400},
            time=T1,
        ),
        quiet(),
        control=True,
    ),
]

CRASH = [
    Case(
        "ho-crash-pc-extract-exit-78-config",
        "Every extract worker on pc exits 78 (bad configuration): alienware must not get extract workers",
        C,
        "6 extract workers FATAL with exit 78 (EX_CONFIG) after a config push; the backlog grows 160/min. The "
        "configuration is the same on every host: a new worker on alienware would exit 78 too.",
        observation(
            ap_hosts(pc_cpu=15.0, pc_mem=30.0),
            [
                *workers("extract", "pc", 6, state="fatal", cpu=0.0, rss=0.0, restarts=5, last_exit=78),
                *workers("wisdom", "pc", 2, cpu=45.0, rss=480.0),
            ],
            pending={"extract": 7000, "embed": 150, "wisdom": 400},
            rates={"extract": -160.0, "embed": 80.0, "wisdom": 5.0},
            notes=["extract-pc-1: configuration error: llm base_url is not set (exit 78)"],
            time=T1,
        ),
        expect(may=[NOOP], must_not=[*no_scale_up("extract", {"pc": 6, "alienware": 0}), *NO_RESTART_OR_STOP]),
    ),
    Case(
        "ho-crash-two-hosts-same-exit-one-still-running",
        "Extract FATAL with exit 1 on worker-a and worker-b (one still runs there): no extract anywhere",
        C,
        "Three FATAL extract workers on two hosts, all exit 1; one extract worker on worker-b still runs, on "
        "items that do not trigger it yet. 3000 items want 6 over 4, but every new worker meets the same fault.",
        observation(
            tri_hosts(brain=(40.0, 50.0), a=(20.0, 30.0), b=(30.0, 35.0)),
            [
                *workers("extract", "worker-a", 2, state="fatal", cpu=0.0, restarts=5, last_exit=1),
                *workers("extract", "worker-b", 1, state="fatal", cpu=0.0, restarts=5, last_exit=1),
                *workers("extract", "worker-b", 1, first=2, cpu=100.0),
            ],
            pending={"extract": 3000, "embed": 150, "wisdom": 0},
            time=T1,
        ),
        expect(must_not=[*no_scale_up("extract", {"worker-a": 2, "worker-b": 2, "brain": 0}), *NO_RESTART_OR_STOP]),
    ),
    Case(
        "ho-crash-wisdom-exit-2-on-gpu-host",
        "Both wisdom workers on alienware exit 2: pc has room but must not get a wisdom worker",
        C,
        "The crash loop is wisdom's, on one host with one exit code; 900 wisdom items wait. Extract runs on pc "
        "and is on target.",
        observation(
            ap_hosts(),
            [
                *workers("extract", "pc", 5, rss=700.0),
                *workers("wisdom", "alienware", 2, state="fatal", cpu=0.0, restarts=6, last_exit=2),
            ],
            pending={"extract": 2500, "embed": 150, "wisdom": 900},
            time=T1,
        ),
        expect(must_not=[*no_scale_up("wisdom", {"alienware": 2, "pc": 0}), *NO_RESTART_OR_STOP]),
    ),
    Case(
        "ho-crash-embedding-shards-cuda-error",
        "Both shards of the last embedding job died with exit 1 (CUDA error): do not start another job",
        C,
        "40k rows still lack vectors because the job's two shards went FATAL with the same exit: the next job "
        "on the same GPU would die the same way. An operator looks first.",
        observation(
            ap_hosts(alien_cpu=30.0),
            [*ap_workers(), *workers("embed", "alienware", 2, state="fatal", cpu=0.0, restarts=3, last_exit=1)],
            pending={"extract": 2500, "embed": 40000, "wisdom": 400},
            notes=["embed-alienware-1: CUDA error: an illegal memory access was encountered"],
            time=T1,
        ),
        expect(must_not=[act("start_embedding"), *NO_RESTART_OR_STOP]),
    ),
    Case(
        "ho-crash-host-fault-disk-full-on-pc",
        "pc's disk is full and every worker there is FATAL; extract runs fine on alienware",
        C,
        "All of pc's workers, of both kinds, exit 1 while its disk is at 99%; the two extract workers on alienware "
        "run. This fault follows the host: nothing more on pc, while extract on alienware may grow.",
        observation(
            [ap_hosts(alien_cpu=38.0, alien_mem=60.0)[0], make_host("pc", 12.0, 25.0, cores=24, disk=99.0)],
            [
                *workers("extract", "pc", 3, state="fatal", cpu=0.0, restarts=5, last_exit=1),
                *workers("wisdom", "pc", 1, state="fatal", cpu=0.0, restarts=5, last_exit=1),
                *workers("extract", "alienware", 2),
            ],
            pending={"extract": 3000, "embed": 150, "wisdom": 300},
            notes=["extract-pc-1: OSError: [Errno 28] No space left on device"],
            time=T1,
        ),
        expect(
            may=[scale("extract", "alienware")],
            must_not=[up("extract", "pc", 3), up("wisdom", "pc", 1), *NO_RESTART_OR_STOP],
        ),
    ),
    Case(
        "ho-crash-control-one-segfault-on-target",
        "One of six extract workers FATAL with exit 139, backlog on target: leave it to an operator",
        C,
        "Control: one crash is not a loop, and the other five keep 3000 items (6 x 500 desired) on target.",
        observation(
            ap_hosts(),
            [
                *workers("extract", "pc", 5, rss=700.0),
                *workers("extract", "pc", 1, first=6, state="fatal", cpu=0.0, restarts=5, last_exit=139),
                *workers("wisdom", "pc", 2, cpu=45.0, rss=480.0),
            ],
            pending={"extract": 3000, "embed": 150, "wisdom": 400},
            time=T1,
        ),
        quiet(*NO_RESTART_OR_STOP),
        control=True,
    ),
    Case(
        "ho-crash-control-recovered-after-fix",
        "Extract workers with 6 restarts each run again after a fix: 5000 items scale as usual",
        C,
        "Control: all 5 extract workers run (last exit 2, before the fix). 5000 items want 10: one more on pc (to "
        "6, with approval), alienware two.",
        observation(
            ap_hosts(),
            [
                *workers("extract", "pc", 5, rss=700.0, restarts=6, last_exit=2, started=T1 - 600.0),
                *workers("wisdom", "pc", 2, cpu=45.0, rss=480.0),
            ],
            pending={"extract": 5000, "embed": 150, "wisdom": 400},
            time=T1,
        ),
        expect(
            one_of=[[scale("extract", "pc", 6), scale("extract", "alienware", {"ge": 1}, "allow")]],
            must_not=NO_RESTART_OR_STOP,
        ),
        control=True,
    ),
]

CASES = [*JOINT, *CRASH]
