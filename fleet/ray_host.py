"""Hosts whose workers run as Ray actors: `RayCluster` (the connection, nodes, caps) and `RayHost` (one per host).

A brainops host here is a set of Ray nodes carrying the custom resource `host:<name>` (a node's `--resources`,
or a node type's `resources` in the cluster YAML). brainops keeps deciding how many workers of each kind a host
runs; `RayHost` turns each into a detached, named actor that needs `{"host:<name>": 0.001}` plus its CPUs (and
one GPU for embed on a GPU host), and Ray places it. Ray's autoscaler adds nodes for actors that do not fit,
within the cluster YAML's max_workers; `RayCaps` refuses, before asking, an actor that would need a node past
brainops' own caps (max nodes, $ per hour), so the two controllers never pull against each other.

The host protocol maps onto actors like this:
- start_worker: create the actor (named `<host>/<worker id>` in the namespace); it starts its own `work()`.
- snapshot: one `status()` call per actor, all at once, bounded by the timeout; an actor that died (its process,
  or its node with it) is `crashed`, and the dispatcher's back-off and FATAL follow as for a process.
  An actor whose work ended is killed (its resources freed) and remembered as stopped or crashed.
- stop_worker: `drain()` (the batch in hand finishes and commits); past grace_s, `ray.kill`.

The actor class comes from the caller (agent/service/effects.py passes workers.ray_actor.KindActor): fleet and
workers are sibling layers, and Ray pickles the class by reference, so every node needs brainops installed.
ray is imported on first use only (`brainops --help` and `status` never pay for it).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.domain import GpuInfo, HostMetrics, RayActorCount, RayFigures, WorkerInfo, WorkerState
from fleet.hosts import DEFAULT_GRACE_S, StartResult, StopResult, WorkerSpec
from fleet.snapshot import HostSnapshot

HOST_RESOURCE = "host:{}"
PLACEMENT_SHARE = 0.001  # of `host:<name>`: placement only; CPUs (and a GPU) are what limits actors per node
MAX_ENDED = 512  # ended workers remembered for the dispatcher to settle


class RayUnavailable(RuntimeError):
    """Ray could not be reached or started; the message says which address and why."""


@dataclass(frozen=True)
class RayCaps:
    """brainops' ceiling on the cluster: an actor that needs one more node is refused past these."""

    max_nodes: int | None = None
    node_cost_per_hour: float = 0.0
    max_cost_per_hour: float | None = None

    def refusal(self, nodes_if_added: int) -> str | None:
        if self.max_nodes is not None and nodes_if_added > self.max_nodes:
            return f"needs node {nodes_if_added} of at most {self.max_nodes} (ray.max_nodes)"
        cost = nodes_if_added * self.node_cost_per_hour
        if self.max_cost_per_hour is not None and cost > self.max_cost_per_hour:
            cap = self.max_cost_per_hour
            return f"needs {nodes_if_added} nodes, ${cost:.2f}/h over ${cap:.2f}/h (ray.max_cost_per_hour)"
        return None


@dataclass
class RayCluster:
    """One connection to a Ray cluster, shared by every RayHost of the fleet; connects on first use.

    address "local": join the Ray an earlier brainops command of this home started (`brainops run` keeps it up;
    an `approve` meanwhile joins it), else start one whose only node carries `host:<name>` for each of
    `local_hosts`."""

    address: str = "local"
    namespace: str = "brainops"
    local_hosts: tuple[str, ...] = ()
    local_cpus: int | None = None
    object_store_mb: int = 256
    caps: RayCaps = RayCaps()
    address_file: Path | None = None  # "local": where the started Ray's address is kept for the next command
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _ready: bool = False

    def connect(self) -> Any:
        import ray

        with self._lock:
            if self._ready and ray.is_initialized():
                return ray
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            os.environ.setdefault("RAY_DISABLE_IMPORT_WARNING", "1")
            quiet: dict[str, Any] = {"namespace": self.namespace, "log_to_driver": False, "logging_level": "warning"}
            try:
                if ray.is_initialized():
                    pass
                elif self.address == "local":
                    self._join_or_start(ray, quiet)
                else:
                    self._check_answers()
                    ray.init(address=self.address, **quiet)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise RayUnavailable(f"ray at {self.address!r}: {str(exc).splitlines()[0][:200]}") from exc
            self._ready = True
            return ray

    def _check_answers(self) -> None:
        """Fail in a second when nothing listens at the address: ray.init would retry for minutes."""
        endpoint = ray_endpoint(self.address)
        if endpoint is not None and not answers(endpoint):
            raise ConnectionError("nothing answers there (is the cluster up? `ray status` on its head shows it)")

    def _join_or_start(self, ray: Any, quiet: dict[str, Any]) -> None:
        """Join the Ray this home's `brainops run` started (its address in `address_file`, while it answers), else
        start one in this process. Only the main thread may start it: Ray's daemons die with the
        thread that started them. Never Ray's own "auto": that joins whatever cluster this machine ran last."""
        known = self.address_file.read_text().strip() if self.address_file and self.address_file.is_file() else ""
        if known and answers(known):
            ray.init(address=known, **quiet)
            return
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("a local Ray is started from the main thread only (Fleet.from_settings does)")
        _loopback_only(ray)
        context = ray.init(
            address="local",  # a new one, whatever `ray start` left in /tmp/ray
            num_cpus=self.local_cpus,
            resources={HOST_RESOURCE.format(h): 1000.0 for h in self.local_hosts},
            object_store_memory=self.object_store_mb * 2**20,
            include_dashboard=False,
            **quiet,
        )
        if self.address_file is not None:
            self.address_file.parent.mkdir(parents=True, exist_ok=True)
            self.address_file.write_text(context.address_info["gcs_address"])

    def nodes(self) -> list[dict[str, Any]]:
        """Alive nodes, each with its total `Resources` and `Available` ones."""
        ray = self.connect()
        from ray._private import state  # per-node availability has no public API without the dashboard

        available = state.available_resources_per_node()
        return [{**n, "Available": available.get(n["NodeID"], {})} for n in ray.nodes() if n.get("Alive")]

    def pending_actors(self) -> int:
        """Actors of this namespace's brainops workers waiting for a node (Ray's autoscaler works on these)."""
        self.connect()
        from ray._private import state

        return sum(
            1 for a in state.actors().values() if a.get("State") == "PENDING_CREATION" and "/" in (a.get("Name") or "")
        )


def _loopback_only(ray: Any) -> None:
    """Make the Ray this process starts listen on 127.0.0.1 only. On Linux Ray maps a node address of 127.0.0.1 to
    the machine's LAN address and its GCS, raylet and workers listen on every interface; its switch for a
    single-machine Ray (meant for macOS and Windows) keeps the node, and so every server, on loopback. Ray reads it
    at import (the environment: the processes it spawns) and per call (the constant: this one)."""
    from ray._private import ray_constants

    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def ray_endpoint(address: str) -> str | None:
    """The host:port a `[ray] address` connects to; None for "local" and "auto" (no fixed endpoint)."""
    endpoint = address.removeprefix("ray://").rstrip("/")
    if address in ("local", "auto") or not endpoint.rpartition(":")[2].isdigit():
        return None  # no fixed endpoint, or one ray.init judges itself
    return endpoint


def answers(address: str, timeout_s: float = 1.0) -> bool:
    """Something listens at host:port (a dead cluster's address must not make ray.init wait a minute)."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


@dataclass
class _Tracked:
    handle: Any
    kind: str
    started_at: float
    kill_after: float | None = None  # a drain was asked: ray.kill past this time
    last: dict[str, Any] = field(default_factory=dict)  # its last answered status


class RayHost:
    """The workers of host `name` as actors on the Ray nodes carrying `host:<name>`."""

    def __init__(
        self,
        name: str,
        cluster: RayCluster,
        actor_cls: type,
        *,
        cpus_per_worker: float = 1.0,
        gpu: bool = False,
    ) -> None:
        self.name = name
        self.cluster = cluster
        self.actor_cls = actor_cls
        self.cpus_per_worker = cpus_per_worker
        self.gpu = gpu
        self._remote: Any = None
        self._tracked: dict[str, _Tracked] = {}
        self._ended: dict[str, WorkerInfo] = {}

    # ------------------------------------------------------------ the host protocol

    def snapshot(self, timeout_s: float = 5.0) -> HostSnapshot:
        started = time.monotonic()
        try:
            nodes = self._own_nodes()
            self._adopt_running()
            figures = self._figures(len(nodes))
            infos = self._probe(timeout_s)
        except Exception as exc:  # a lost head node must not take the control loop down
            return HostSnapshot(metrics=HostMetrics(host=self.name, reachable=False, error=repr(exc)[:300]))
        metrics = _metrics(self.name, nodes, (time.monotonic() - started) * 1000).model_copy(update={"ray": figures})
        return HostSnapshot(metrics=metrics, workers=(*infos, *self._ended.values()))

    def start_worker(self, spec: WorkerSpec) -> StartResult:
        try:
            ray = self.cluster.connect()
            if spec.worker_id in self._ended:  # a restart: the ended actor's name frees once Ray has killed it
                self._wait_name_free(ray, spec.worker_id, 10.0)
            if self._alive_handle(ray, spec.worker_id) is not None:
                return StartResult(ok=False, worker_id=spec.worker_id, error="already running")
            refusal = self._cap_refusal(spec.kind)
            if refusal:
                return StartResult(ok=False, worker_id=spec.worker_id, error=f"ray cap: {refusal}")
            handle = (
                self._actor_class(ray)
                .options(**self._placement(spec.kind, spec.worker_id))
                .remote(spec.worker_id, spec.kind, spec.brain, spec.options.to_json(), autostart=True)
            )
        except Exception as exc:  # Ray refused the actor (bad resources, cluster gone): one failed start
            return StartResult(ok=False, worker_id=spec.worker_id, error=repr(exc)[:300])
        now = time.time()
        self._ended.pop(spec.worker_id, None)
        self._tracked[spec.worker_id] = _Tracked(handle, spec.kind, now)
        return StartResult(ok=True, worker_id=spec.worker_id, started_at=now)

    def stop_worker(self, worker_id: str, drain: bool = True, grace_s: float = DEFAULT_GRACE_S) -> StopResult:
        ray = self.cluster.connect()
        tracked = self._tracked.get(worker_id)
        handle = tracked.handle if tracked else self._alive_handle(ray, worker_id)
        if handle is None:
            return StopResult(ok=True, worker_id=worker_id, state="not_running")
        if tracked is None:
            tracked = self._tracked[worker_id] = _Tracked(handle, "?", time.time())
        tracked.kill_after = time.time() + grace_s
        with contextlib.suppress(Exception):  # dead already, or too busy to answer: the deadline still holds
            ray.get(handle.drain.remote(), timeout=min(grace_s, 10.0))
        if drain:
            return StopResult(ok=True, worker_id=worker_id, state="draining")
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if self._probe_one(ray, worker_id, tracked, 2.0).state in ("stopped", "crashed"):
                return StopResult(ok=True, worker_id=worker_id, state="stopped")
            time.sleep(0.2)
        self._kill(ray, worker_id)
        self._end(worker_id, tracked, "crashed", None)
        return StopResult(ok=True, worker_id=worker_id, state="killed")

    # ------------------------------------------------------------ helpers

    def _actor_class(self, ray: Any) -> Any:
        if self._remote is None:
            self._remote = ray.remote(self.actor_cls)
        return self._remote

    def _placement(self, kind: str, worker_id: str) -> dict[str, Any]:
        return {
            "name": f"{self.name}/{worker_id}",
            "lifetime": "detached",  # outlives the brainops command that started it, as a detached process does
            "max_restarts": 0,  # a restart is the dispatcher's, with its back-off and FATAL
            "max_concurrency": 2,  # status() and drain() answer while work() runs in the actor's thread
            "num_cpus": self.cpus_per_worker,
            "num_gpus": 1 if self.gpu and kind == "embed" else 0,
            "resources": {HOST_RESOURCE.format(self.name): PLACEMENT_SHARE},
        }

    def _own_nodes(self) -> list[dict[str, Any]]:
        key = HOST_RESOURCE.format(self.name)
        return [n for n in self.cluster.nodes() if n["Resources"].get(key)]

    def _cap_refusal(self, kind: str) -> str | None:
        """None when a node of this host has room now; else whether one more node stays within the caps."""
        need_gpu = 1.0 if self.gpu and kind == "embed" else 0.0
        own = self._own_nodes()
        for node in own:
            free = node["Available"]
            if free.get("CPU", 0.0) >= self.cpus_per_worker and free.get("GPU", 0.0) >= need_gpu:
                return None
        nodes = self.cluster.nodes()
        return self.cluster.caps.refusal(len(nodes) + self.cluster.pending_actors() + 1)

    def _alive_handle(self, ray: Any, worker_id: str) -> Any:
        try:
            return ray.get_actor(f"{self.name}/{worker_id}", namespace=self.cluster.namespace)
        except ValueError:  # no such actor (never started, or dead: a dead actor's name is free again)
            return None

    def _wait_name_free(self, ray: Any, worker_id: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self._alive_handle(ray, worker_id) is not None and time.monotonic() < deadline:
            time.sleep(0.1)

    def _adopt_running(self) -> None:
        """Actors another brainops process started (an `approve`, a restarted loop) join this host's view."""
        ray = self.cluster.connect()
        prefix = f"{self.name}/"
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry.get("namespace") != self.cluster.namespace or not entry.get("name", "").startswith(prefix):
                continue
            worker_id = entry["name"][len(prefix) :]
            if worker_id not in self._tracked and worker_id not in self._ended:
                handle = self._alive_handle(ray, worker_id)
                if handle is not None:
                    self._tracked[worker_id] = _Tracked(handle, "?", time.time())

    def _figures(self, nodes: int) -> RayFigures:
        """Its live worker actors per kind and Ray state (one read of Ray's actor table), and its nodes."""
        from ray._private import state

        prefix = f"{self.name}/"
        counts: dict[tuple[str, str], int] = {}
        for actor in state.actors().values():
            name = actor.get("Name") or ""
            if name.startswith(prefix) and actor.get("State") != "DEAD":
                key = (self._kind_of(name[len(prefix) :]), str(actor.get("State")))
                counts[key] = counts.get(key, 0) + 1
        return RayFigures(
            nodes=nodes,
            pending_actors=sum(n for (_, st), n in counts.items() if st == "PENDING_CREATION"),
            actors=tuple(RayActorCount(kind=k, state=st, count=n) for (k, st), n in sorted(counts.items())),
        )

    def _kind_of(self, worker_id: str) -> str:
        tracked = self._tracked.get(worker_id)
        kind = str(tracked.last.get("kind") or tracked.kind) if tracked else "?"
        return kind if kind != "?" else worker_id.split("-")[0]  # ids start with the kind (fleet/dispatcher.py)

    def _probe(self, timeout_s: float) -> list[WorkerInfo]:
        ray = self.cluster.connect()
        asked = {wid: t.handle.status.remote() for wid, t in self._tracked.items()}
        if not asked:
            return []
        ready, _ = ray.wait(list(asked.values()), num_returns=len(asked), timeout=max(0.1, timeout_s * 0.8))
        done = set(ready)
        infos = [self._read(ray, wid, self._tracked[wid], ref if ref in done else None) for wid, ref in asked.items()]
        return [i for i in infos if i.id in self._tracked]  # the ended ones are in self._ended

    def _probe_one(self, ray: Any, worker_id: str, tracked: _Tracked, timeout_s: float) -> WorkerInfo:
        ref = tracked.handle.status.remote()
        ready, _ = ray.wait([ref], timeout=timeout_s)
        return self._read(ray, worker_id, tracked, ref if ready else None)

    def _read(self, ray: Any, worker_id: str, tracked: _Tracked, ref: Any) -> WorkerInfo:
        from ray.exceptions import RayActorError

        if ref is not None:
            try:
                tracked.last = ray.get(ref)
            except RayActorError:  # its process or its node died: a crash, as a killed process is
                return self._end(worker_id, tracked, "crashed", None)
        status = tracked.last
        if status.get("exit_code") is not None:
            code = int(status["exit_code"])
            self._kill(ray, worker_id)
            return self._end(worker_id, tracked, "stopped" if code == 0 else "crashed", code)
        if tracked.kill_after is not None and time.time() > tracked.kill_after:
            self._kill(ray, worker_id)
            return self._end(worker_id, tracked, "crashed", None)
        state: WorkerState
        if not status:
            state = "starting"  # not placed yet (waiting for a node), or still loading
        elif tracked.kill_after is not None or status.get("state") == "draining":
            state = "draining"
        else:
            state = "running"
        return _info(self.name, worker_id, tracked, state, None)

    def _end(self, worker_id: str, tracked: _Tracked, state: WorkerState, code: int | None) -> WorkerInfo:
        info = _info(self.name, worker_id, tracked, state, code)
        self._tracked.pop(worker_id, None)
        self._ended[worker_id] = info
        while len(self._ended) > MAX_ENDED:
            self._ended.pop(next(iter(self._ended)))
        return info

    def _kill(self, ray: Any, worker_id: str) -> None:
        tracked = self._tracked.get(worker_id)
        if tracked is None:
            return
        with contextlib.suppress(Exception):  # already gone
            ray.kill(tracked.handle, no_restart=True)
        self._wait_name_free(ray, worker_id, 5.0)  # gone before this (maybe short-lived) process exits


def _info(host: str, worker_id: str, tracked: _Tracked, state: WorkerState, code: int | None) -> WorkerInfo:
    status = tracked.last
    processed = status.get("processed")
    return WorkerInfo(
        id=worker_id,
        kind=str(status.get("kind") or tracked.kind),
        host=host,
        pid=status.get("pid"),
        state=state,
        started_at=status.get("started_at", tracked.started_at),
        last_exit=code,
        processed=processed if isinstance(processed, int) else None,
        idle=state == "running" and status.get("last_batch") == 0,
        busy_s=status.get("busy_s"),
    )


def _metrics(host: str, nodes: list[dict[str, Any]], took_ms: float) -> HostMetrics:
    """The host's nodes as one machine: CPUs and memory reserved of what its nodes have, its GPUs."""

    def used(resource: str) -> tuple[float, float]:
        total = sum(n["Resources"].get(resource, 0.0) for n in nodes)
        free = sum(n["Available"].get(resource, 0.0) for n in nodes)
        return total, total - free

    cpus, cpus_used = used("CPU")
    mem, mem_used = used("memory")
    gpus, gpus_used = used("GPU")
    return HostMetrics(
        host=host,
        cpu_percent=100.0 * cpus_used / cpus if cpus else 0.0,
        mem_percent=100.0 * mem_used / mem if mem else 0.0,
        cpu_count=max(1, int(cpus)),
        gpus=tuple(
            GpuInfo(
                index=i, name="ray GPU", util_percent=100.0 if i < gpus_used else 0.0, mem_used_mb=0, mem_total_mb=0
            )
            for i in range(int(gpus))
        ),
        observed_in_ms=took_ms,
    )
