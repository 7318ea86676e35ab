"""The fleet as the agent acts on it: hosts (local and SSH), the dispatcher, and the token ledger.

Fleet implements the actor's `Effects`: each method is one real effect and returns a line for the record.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.settings import Settings
    from fleet.dispatcher import Dispatcher, ReconcileReport
    from fleet.hosts import Host
    from llm.ledger import TokenLedger
    from policies.model import Policy


LIVE = ("starting", "running", "draining")


def worker_env() -> dict[str, str]:
    """What a local worker inherits: everything but the Slack credentials (workers never talk to Slack).
    Model keys stay: the wisdom/extract workers' LLM calls need them."""
    import os

    return {k: v for k, v in os.environ.items() if not k.upper().startswith("BRAINOPS_SLACK")}


def build_hosts(settings: Settings) -> dict[str, Host]:
    from fleet.hosts import LocalHost

    hosts: dict[str, Host] = dict(build_ray_hosts(settings))
    for cfg in settings.hosts:
        if cfg.name in hosts:
            continue
        if cfg.is_local:
            hosts[cfg.name] = LocalHost(settings.run_dir, cfg.name, env=worker_env())
        else:
            from fleet.remote import RemoteHost

            hosts[cfg.name] = RemoteHost(cfg)
    return hosts


def build_ray_hosts(settings: Settings) -> dict[str, Host]:
    """The hosts `[ray]` names (all, when it names none), each a RayHost on one shared cluster connection."""
    if settings.ray is None:
        return {}
    from fleet.ray_host import RayCaps, RayCluster, RayHost
    from workers.ray_actor import KindActor

    cfg = settings.ray
    names = cfg.hosts or [h.name for h in settings.hosts]
    cluster = RayCluster(
        address=cfg.address,
        namespace=cfg.namespace,
        local_hosts=tuple(names),
        object_store_mb=cfg.object_store_mb,
        caps=RayCaps(cfg.max_nodes, cfg.node_cost_per_hour, cfg.max_cost_per_hour),
        address_file=settings.home / "ray.address",
    )
    gpu = {h.name: h.gpu for h in settings.hosts}
    return {
        name: RayHost(name, cluster, KindActor, cpus_per_worker=cfg.cpus_per_worker, gpu=gpu.get(name, False))
        for name in names
    }


def _connect_ray(hosts: Mapping[str, Host]) -> None:
    """Connect (or start, for address "local") the Ray of the RayHosts now, on the thread building the fleet: a
    host's first snapshot runs in a pool thread under a short timeout, and a Ray started there would die with it."""
    import threading

    from fleet.ray_host import RayHost

    if threading.current_thread() is not threading.main_thread():
        return
    for host in hosts.values():
        if isinstance(host, RayHost):
            host.cluster.connect()
            return  # one cluster for all of them


@dataclass
class Fleet:
    settings: Settings
    hosts: dict[str, Host]
    dispatcher: Dispatcher
    ledger: TokenLedger
    last_unreachable: dict[str, str] = field(default_factory=dict)
    policy_source: Callable[[], Policy] | None = None  # the policy in force (reclaim_disk reads its storage limits)

    @classmethod
    def from_settings(cls, settings: Settings) -> Fleet:
        from fleet.dispatcher import Dispatcher
        from llm.ledger import TokenLedger

        settings.ensure_dirs()
        hosts = build_hosts(settings)
        _connect_ray(hosts)
        dispatcher = Dispatcher(hosts, settings.home / "dispatcher.db", brain_uri=settings.brain_path)
        return cls(settings, hosts, dispatcher, TokenLedger.from_settings(settings))

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """One dispatcher at a time across processes (`brainops run`, `approve`, `slack` share the registry):
        two concurrent reconciles would each start the missing workers."""
        self.settings.ensure_dirs()
        with open(self.settings.home / "dispatch.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @property
    def brain_host(self) -> str:
        brain = [h.name for h in self.settings.hosts if h.role == "brain"]
        return brain[0] if brain else self.settings.hosts[0].name

    def worker_options(self, kind: str, **extra: Any) -> Any:
        from fleet.hosts import WorkerOptions

        defaults = dict(self.settings.worker_defaults.get(kind, {}))
        return WorkerOptions(**{**defaults, **extra})

    # ------------------------------------------------------------ effects

    def scale(self, kind: str, host: str, count: int) -> str:
        with self.exclusive():
            self.dispatcher.set_desired(kind, host, count, self.worker_options(kind))
            report = self.dispatcher.reconcile()
            return f"desired {kind}@{host} = {count}; {_summary(report)}"

    def start_embedding(self, host: str, shards: int, table: str, job_key: str) -> str:
        with self.exclusive():
            started: list[str] = []
            refused: list[str] = []
            for i in range(shards):
                shard = f"{i}/{shards}" if shards > 1 else None
                options = self.worker_options("embed", shard=shard, table=table)
                result = self.dispatcher.run_once("embed", host, options, job_key=job_key)
                if result.ok:
                    started.append(result.worker_id)
                else:
                    refused.append(str(result.error))
            if not started:
                raise RuntimeError(f"no embedding shard started: {'; '.join(refused)}")
            return f"embedding {table} on {host}: started {', '.join(started)}" + (
                f"; refused: {'; '.join(refused)}" if refused else ""
            )

    def run_job(
        self,
        kind: str,
        host: str | None,
        job_key: str,
        dry_run: bool = False,
        plan: str | None = None,
        max_merges: int | None = None,
    ) -> str:
        with self.exclusive():
            target = host or self.brain_host
            extra: dict[str, Any] = {"dry_run": True} if dry_run else {}
            if plan is not None:
                extra["plan"] = plan
            if max_merges is not None:
                extra["max_merges"] = max_merges
            result = self.dispatcher.run_once(kind, target, self.worker_options(kind, **extra), job_key=job_key)
            if not result.ok:
                raise RuntimeError(result.error or f"{kind} job did not start")
            return f"{kind} job {result.worker_id} started on {target}"

    def set_routing(self, weights: Mapping[str, float]) -> str:
        with self.exclusive():
            applied = self.ledger.set_routing(weights)
            return "fleet routing " + ", ".join(f"{k} {v:.0%}" for k, v in applied.items())

    def set_task_tier(self, task: str, tier: str) -> str:
        with self.exclusive():
            self.ledger.set_task_tier(task, tier)
            return f"{task} calls pinned to tier {tier}"

    def restart_worker(self, worker_id: str) -> str:
        with self.exclusive():
            self.dispatcher.clear_fatal(worker_id)
            return f"{worker_id} cleared from FATAL; {_summary(self.dispatcher.reconcile())}"

    def stop_worker(self, worker_id: str) -> str:
        with self.exclusive():
            row = self.dispatcher.registry.get(worker_id)
            if row is not None and row.state in ("draining", "retired"):  # a retry after a crash finds it done
                return f"{worker_id} already {row.state}"
            result = self.dispatcher.stop(worker_id, drain=True)
            if not result.ok:
                raise RuntimeError(result.error or f"could not stop {worker_id}")
            return f"{worker_id} draining"

    def reclaim_disk(self, target: str, *, older_than_days: float, keep: int) -> str:
        from agent.service.storage import reclaim
        from policies.model import Storage

        storage = self.policy_source().storage if self.policy_source else Storage()
        if target != "logs":
            return reclaim(self.settings, storage, target, older_than_days, keep)
        with self.exclusive():  # no worker (re)starts onto a log while it is compressed and removed
            return reclaim(self.settings, storage, target, older_than_days, keep)

    def undo_dedup(self, run: str) -> str:
        from brain.store import BrainStore
        from workers.dedup_undo import undo_run

        with self.exclusive():  # no dedup job starts while its merges are undone
            busy = [w.id for w in self.dispatcher.workers(refresh=True) if w.kind == "dedup" and w.state in LIVE]
            if busy:
                raise RuntimeError(f"dedup job {busy[0]} is running: undo once it ends")
            return undo_run(BrainStore(self.settings.brain_path), run)

    def drop_index(self, table: str) -> str:
        from brain.store import BrainStore
        from brain.vector_index import drop_vector_index

        with self.exclusive():
            return drop_vector_index(BrainStore(self.settings.brain_path), table)

    def look(self) -> None:
        """Fresh snapshots for an observation that changes nothing (a dry run): no restarts, no convergence."""
        self.dispatcher.workers(refresh=True)
        self.last_unreachable = {h: m.error or "unreachable" for h, m in self.dispatcher.down.items()}

    def reconcile(self, now: float | None = None) -> ReconcileReport:
        """Supervise: one snapshot per host, restart crashed workers, converge to desired counts."""
        with self.exclusive():
            report = self.dispatcher.reconcile(now)
        self.last_unreachable = {h: m.error or "unreachable" for h, m in self.dispatcher.down.items()}
        return report


def _summary(report: ReconcileReport) -> str:
    parts = [
        f"{name} {', '.join(map(str, ids))}"
        for name, ids in (
            ("started", report.started),
            ("restarted", report.restarted),
            ("draining", report.draining),
            ("retired", report.retired),
            ("crashed", report.crashed),
            ("fatal", report.fatal),
            ("errors", report.errors),
        )
        if ids
    ]
    return "; ".join(parts) or "no process change"
