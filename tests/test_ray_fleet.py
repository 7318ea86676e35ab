"""Workers on a Ray cluster: real actors on a local multi-node Ray (`ray.cluster_utils.Cluster`) whose nodes carry
`host:*` resources and stand in for the seed's hosts, driven by the real dispatcher, writing a real LanceDB brain.
Removing a node is a spot instance taken back mid-batch. One cluster for the module: starting one costs seconds."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import wait_for
from support.agent_rig import NO_CPU_CEILING, cli, copy_brain, write_policy
from support.s3 import MotoS3

from fleet.dispatcher import Dispatcher, RestartPolicy
from fleet.hosts import WorkerOptions, WorkerSpec
from fleet.ray_host import RayCaps, RayCluster, RayHost
from workers.ray_actor import KindActor

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
PENDING = "extracted = false OR extracted IS NULL"
SMALL_STORE = 78_643_200  # Ray's minimum object store: the machine is shared
BATCH = WorkerOptions(batch_size=8, item_ms=40, loop=True)  # ~0.3 s batches: a node can die inside one


@dataclass
class RayRig:
    cluster: Any  # ray.cluster_utils.Cluster
    connection: RayCluster
    nodes: dict[str, Any]
    s3: MotoS3

    def host(self, name: str, caps: RayCaps | None = None) -> RayHost:
        if caps is not None:
            self.connection.caps = caps
        return RayHost(name, self.connection, KindActor, cpus_per_worker=0.5)

    def add(self, host: str) -> None:
        self.nodes[host] = self.cluster.add_node(
            num_cpus=2, resources={f"host:{host}": 1.0}, object_store_memory=SMALL_STORE
        )
        self.cluster.wait_for_nodes()


@pytest.fixture(scope="module")
def ray_rig() -> Iterator[RayRig]:
    ray_env = {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_DISABLE_IMPORT_WARNING": "1",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # Ray's own switch to bind to loopback, not the LAN address
    }
    saved = {k: os.environ.get(k) for k in ray_env}
    os.environ.update(ray_env)
    import ray
    from ray.cluster_utils import Cluster

    s3 = MotoS3().__enter__()  # first: the nodes inherit its AWS_* variables, as cloud nodes get their role's
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "resources": {"host:orchestrator": 1.0},
            "object_store_memory": SMALL_STORE,
            "include_dashboard": False,
            "node_ip_address": "127.0.0.1",
        },
    )
    rig = RayRig(cluster, RayCluster(address=cluster.address, namespace="brainops-test"), {}, s3)
    for host in ("brain", "pc"):
        rig.add(host)
    ray.init(address=cluster.address, namespace="brainops-test", log_to_driver=False, logging_level="warning")
    try:
        yield rig
    finally:
        ray.shutdown()
        cluster.shutdown()
        s3.__exit__()
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def burst(tmp_path: Path, brain: str, n: int) -> str:
    """A copy of the small brain with everything extracted, then n new records pending."""
    import pyarrow as pa
    from support.brain_rig import pending_records

    from brain.store import BrainStore

    path = copy_brain(brain, tmp_path)
    store = BrainStore(path)
    ids = store.fresh("records").search().select(["id"]).limit(None).to_arrow().column("id")
    store.update_columns("records", pa.table({"id": ids, "extracted": pa.array([True] * len(ids))}))
    texts = [f"Grace Hopper met Person{i % 30} at Initech in City{i % 7}." for i in range(n)]
    store.add("records", pending_records("burst", texts, "burst", time.time()))
    return path


def backlog(brain: str) -> int:
    from brain.store import BrainStore

    return int(BrainStore(brain).fresh("records").count_rows(PENDING))


def test_workers_run_as_actors_on_their_hosts_nodes_process_the_brain_and_drain(
    tmp_path: Path, small_brain: str, ray_rig: RayRig
) -> None:
    import ray

    brain = burst(tmp_path, small_brain, 80)
    hosts = {name: ray_rig.host(name) for name in ("brain", "pc")}
    dispatcher = Dispatcher(hosts, tmp_path / "dispatcher.db", brain_uri=brain)
    dispatcher.set_desired("extract", "brain", 1, BATCH)
    dispatcher.set_desired("extract", "pc", 1, BATCH)
    assert len(dispatcher.reconcile().started) == 2

    def drained() -> bool:
        dispatcher.reconcile()
        return backlog(brain) == 0

    wait_for(drained, "the two Ray workers to extract the burst", timeout_s=60)
    snaps = {name: host.snapshot(5.0) for name, host in hosts.items()}
    for name, snap in snaps.items():
        (worker,) = snap.workers
        assert worker.kind == "extract" and worker.state == "running" and worker.host == name
        assert snap.metrics.cpu_count == 2 and snap.metrics.cpu_percent == pytest.approx(25.0)  # 0.5 of 2 CPUs
    done = [s.workers[0].processed or 0 for s in snaps.values()]
    assert min(done) > 0 and sum(done) >= 80  # both took rows (unsharded workers may take a row twice: idempotent)
    nodes_of = {
        n["NodeID"]: next(k for k in n["Resources"] if k.startswith("host:")) for n in ray.nodes() if n["Alive"]
    }
    placed = {
        a["Name"].split("/")[0]: nodes_of[a["Address"]["NodeID"]]
        for a in ray._private.state.actors().values()
        if a["State"] == "ALIVE" and "/extract-" in (a.get("Name") or "")
    }
    assert placed == {"brain": "host:brain", "pc": "host:pc"}  # each actor on its own host's node

    dispatcher.set_desired("extract", "brain", 0)
    dispatcher.set_desired("extract", "pc", 0)
    assert len(dispatcher.reconcile().draining) == 2

    def retired() -> list[Any] | None:
        dispatcher.reconcile()
        rows = dispatcher.registry.recent_ended(10)
        return rows if not dispatcher.registry.live() else None

    rows = wait_for(retired, "both workers to drain and retire", timeout_s=30)
    assert {r.state for r in rows} == {"retired"} and {r.last_exit for r in rows} == {0}
    assert all(
        not host.snapshot(5.0).workers or host.snapshot(5.0).workers[0].state == "stopped" for host in hosts.values()
    )


def test_a_spot_node_lost_mid_batch_loses_no_committed_work_and_its_batch_is_retried(
    tmp_path: Path, small_brain: str, ray_rig: RayRig
) -> None:
    from brain.store import BrainStore

    n = 64
    brain = burst(tmp_path, small_brain, n)
    ray_rig.add("spot")
    now = [time.time()]
    hosts = {"spot": ray_rig.host("spot")}
    policy = RestartPolicy(max_restarts=3, backoff_base_s=5.0)
    dispatcher = Dispatcher(hosts, tmp_path / "dispatcher.db", brain_uri=brain, policy=policy, clock=lambda: now[0])
    dispatcher.set_desired("extract", "spot", 1, BATCH)
    (worker_id,) = dispatcher.reconcile().started

    def some_batches_in() -> int | None:
        snap = hosts["spot"].snapshot(5.0)
        done = snap.workers[0].processed if snap.workers else None
        return done if done and done >= 3 * BATCH.batch_size else None  # type: ignore[operator]

    wait_for(some_batches_in, "the spot worker to commit a few batches", timeout_s=60)
    ray_rig.cluster.remove_node(ray_rig.nodes.pop("spot"))  # the spot instance is taken back, mid-batch
    committed = n - backlog(brain)
    assert 0 < committed < n

    def crashed() -> Any:
        report = dispatcher.reconcile()
        return report if report.crashed else None

    report = wait_for(crashed, "the dispatcher to see the actor die with its node", timeout_s=60)
    assert report.crashed == (worker_id,) and report.backoff[0][1] == pytest.approx(now[0] + 5.0)
    assert n - backlog(brain) == committed  # nothing committed was lost; the batch in hand was never written

    ray_rig.add("spot")  # what the autoscaler does for a lost spot node of a node type still wanted
    now[0] += 6.0
    assert dispatcher.reconcile().restarted == (worker_id,)

    def finished() -> int | None:
        dispatcher.reconcile()
        snap = hosts["spot"].snapshot(5.0)
        done = snap.workers[0].processed if snap.workers else None
        # a status answer slower than the probe's timeout leaves the last one in place: poll until it has caught up
        return done if backlog(brain) == 0 and done and done >= n - committed else None

    redone = wait_for(finished, "the restarted worker to extract what was left", timeout_s=60)
    assert redone == n - committed  # exactly the rows not committed before the loss, the lost batch among them
    entities = BrainStore(brain).fresh("relationships")
    ids = entities.search().select(["id"]).limit(None).to_arrow().column("id").to_pylist()
    assert len(ids) == len(set(ids))  # the retried batch wrote no relationship twice
    dispatcher.set_desired("extract", "spot", 0)

    def retired() -> bool:
        dispatcher.reconcile()
        return not dispatcher.registry.live()

    wait_for(retired, "the spot worker to drain")  # no actor left for the next test


def test_a_worker_that_crashes_at_start_backs_off_then_goes_fatal_and_caps_hold(
    tmp_path: Path, ray_rig: RayRig
) -> None:
    now = [1000.0]
    host = ray_rig.host("brain")
    # the window outlasts any run of this loop's 5 s clock steps, however long Ray takes to report each death
    policy = RestartPolicy(max_restarts=2, window_s=1e9, backoff_base_s=1.0)
    missing = str(tmp_path / "no-brain-here")
    dispatcher = Dispatcher({"brain": host}, tmp_path / "d.db", brain_uri=missing, policy=policy, clock=lambda: now[0])
    dispatcher.set_desired("extract", "brain", 1, BATCH)
    dispatcher.reconcile()
    fatal: list[str] = []
    deadline = time.monotonic() + 60
    while not fatal and time.monotonic() < deadline:
        now[0] += 5.0  # past any back-off
        fatal = list(dispatcher.reconcile().fatal)
    assert fatal and dispatcher.fatal() == fatal
    (row,) = dispatcher.registry.live()
    assert row.state == "fatal" and row.total_restarts == 2 and row.last_exit == 1

    alive = len(ray_rig.connection.nodes())
    cloud = ray_rig.host("cloud", RayCaps(max_nodes=alive))  # a host with no node yet: one more would pass the cap
    try:
        refused = cloud.start_worker(WorkerSpec("extract-cloud-1", "extract", missing, BATCH))
        assert not refused.ok and refused.error == f"ray cap: needs node {alive + 1} of at most {alive} (ray.max_nodes)"
        priced = ray_rig.host("cloud", RayCaps(node_cost_per_hour=0.5, max_cost_per_hour=0.5 * alive))
        assert "ray.max_cost_per_hour" in str(
            priced.start_worker(WorkerSpec("extract-cloud-1", "extract", missing, BATCH)).error
        )
    finally:
        ray_rig.connection.caps = RayCaps()


def e2e_config(tmp_path: Path, rig: RayRig, bucket: str, rows: int, extra: str = "") -> tuple[Path, str]:
    """A brainops.toml whose hosts pc and brain run on the rig's Ray, the brain in S3 with `rows` records pending."""
    from support.brain_rig import pending_records

    from brain.store import BrainStore

    uri = f"s3://{rig.s3.bucket(bucket)}/brain"
    store = BrainStore(uri).open_or_create()
    texts = [f"Ada Lovelace met Person{i % 12} at Initech in City{i % 5}." for i in range(rows)]
    store.add("records", pending_records("e2e", texts, "e2e", time.time()))
    extract = {"max": 2, "target_backlog_per_worker": 20, "activation_backlog": 1}
    policy = write_policy(
        tmp_path / "policy.yaml",
        **NO_CPU_CEILING,
        workers={"extract": extract, "embed": {"max": 0}, "wisdom": {"max": 0}},
        actions={name: {"enabled": False} for name in ("start_embedding", "run_dedup", "run_recluster")},
    )
    options = "\n".join(f'{k.lower()} = "{v}"' for k, v in rig.s3.options_env.items())
    config = tmp_path / "brainops.toml"
    config.write_text(
        f'home = "{tmp_path / "home"}"\nbrain_uri = "{uri}"\npolicy_file = "{policy}"\ndemo_seed = false\n{extra}'
        f"[brain_storage_options]\n{options}\n"  # endpoint and region only: the credentials stay in the env
        f'[ray]\naddress = "{rig.cluster.address}"\nnamespace = "brainops-test"\ncpus_per_worker = 0.5\n'
        '[[hosts]]\nname = "pc"\n[[hosts]]\nname = "brain"\nrole = "brain"\n'
        "[worker_defaults.extract]\nbatch_size = 10\nitem_ms = 5\n"
    )
    return config, uri


def our_actors() -> list[str]:
    """The actors of the e2e config's hosts (another test's leftover on its own host is not theirs)."""
    import ray

    named = ray.util.list_named_actors(all_namespaces=True)
    return [a["name"] for a in named if a["namespace"] == "brainops-test" and a["name"].startswith(("pc/", "brain/"))]


def stop_all(config: Path) -> str:
    """`brainops workers stop --all`, then no actor of the namespace is left."""
    stopped = cli(config, "workers", "stop", "--all")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    wait_for(lambda: not our_actors(), f"the drained actors to be gone ({stopped.stdout.strip()})", timeout_s=30)
    return stopped.stdout + stopped.stderr


def test_brainops_tick_with_a_ray_section_scales_real_actors_on_the_brain_in_s3(
    tmp_path: Path, ray_rig: RayRig
) -> None:
    config, uri = e2e_config(tmp_path, ray_rig, "brain-e2e", 40)
    tick = cli(config, "tick")
    assert tick.returncode == 0, tick.stdout + tick.stderr
    assert "scale_workers" in tick.stdout, tick.stdout
    names = our_actors()
    assert any(n.startswith(("brain/extract-", "pc/extract-")) for n in names), names  # real actors, by the tick
    wait_for(lambda: backlog(uri) == 0, "the Ray workers to extract the records in S3", timeout_s=90, interval_s=1.0)
    stopped = stop_all(config)
    assert "moto-test-secret" not in tick.stdout + tick.stderr + stopped
    assert "moto-test-secret" not in config.read_text()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample on /metrics by name and labels; empty while nothing answers."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_brainops_run_scales_actors_and_exports_the_ray_figures_on_metrics(tmp_path: Path, ray_rig: RayRig) -> None:
    import socket
    import subprocess
    import sys

    from support.agent_rig import REPO

    from agent.service.metrics import METRIC_NAMES

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config, uri = e2e_config(tmp_path, ray_rig, "brain-run", 40, extra=f"metrics_port = {port}\n")
    env = {**os.environ, "BRAINOPS_CONFIG": str(config), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    run = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", "--ticks", "4", "--interval", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:

        def ray_figures() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            samples = scrape(f"http://127.0.0.1:{port}/metrics")
            actors = [k for k in samples if k[0] == "brainops_ray_actors" and ("kind", "extract") in k[1]]
            return samples if actors else None

        samples = wait_for(
            ray_figures, "a tick of `brainops run` to see its extract actors", timeout_s=60, interval_s=0.3
        )
        out, _ = run.communicate(timeout=60)
    finally:
        run.kill() if run.poll() is None else None
    assert run.returncode == 0, out
    assert {n for n, _ in samples} >= {n for n in METRIC_NAMES if "_ray_" in n}  # the names the dashboard reads
    assert samples[("brainops_ray_nodes", (("host", "pc"),))] == 1  # one node carries host:pc
    assert samples[("brainops_ray_nodes", (("host", "brain"),))] == 1
    live = sum(v for (n, labels), v in samples.items() if n == "brainops_ray_actors" and ("kind", "extract") in labels)
    assert live >= 1 and "scale_workers" in out, out
    wait_for(lambda: backlog(uri) == 0, "the actors `run` started to extract the records", timeout_s=90, interval_s=1.0)
    assert any(n.startswith(("brain/extract-", "pc/extract-")) for n in our_actors())  # they outlive `run`
    stop_all(config)
