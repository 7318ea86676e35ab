"""A `[ray] address` where nothing listens: `tick`, `run` and `doctor` each say so in one sentence and exit 1, in
seconds (ray.init alone would retry for minutes), with no traceback; --debug keeps it."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from support.agent_rig import cli, copy_brain

pytestmark = pytest.mark.timeout(120)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed on exit: nothing listens there any more


@pytest.fixture
def config(tmp_path: Path, small_brain: str) -> tuple[Path, str]:
    address = f"127.0.0.1:{closed_port()}"
    path = tmp_path / "brainops.toml"
    path.write_text(
        f'home = "{tmp_path / "home"}"\nbrain_uri = "{copy_brain(small_brain, tmp_path)}"\ndemo_seed = false\n'
        f'[ray]\naddress = "{address}"\n[[hosts]]\nname = "pc"\n'
    )
    return path, address


@pytest.mark.parametrize("args", [("tick",), ("run", "--ticks", "1")])
def test_tick_and_run_fail_fast_in_one_sentence_when_ray_does_not_answer(
    config: tuple[Path, str], args: tuple[str, ...]
) -> None:
    path, address = config
    started = time.monotonic()
    result = cli(path, *args, timeout=60)
    assert time.monotonic() - started < 30  # ray.init on its own retries for minutes
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: ray at {address!r}: nothing answers there (is the cluster up? `ray status` on its head shows it)"
    ]
    assert "Traceback" not in result.stdout + result.stderr
    if args == ("tick",):
        debug = cli(path, "--debug", *args, timeout=60)
        assert debug.returncode != 0 and "RayUnavailable" in debug.stderr and "Traceback" in debug.stderr


def test_doctor_fails_the_ray_check(config: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.cli.doctor import run_doctor

    path, address = config
    monkeypatch.setenv("BRAINOPS_CONFIG", str(path))  # load_settings sets it: monkeypatch undoes it after the test
    report = run_doctor(str(path))
    check = report.find("ray")
    assert check.status == "FAIL" and address in check.detail and "ray start --head" in check.fix
    assert report.exit_code != 0


@pytest.mark.slow
def test_a_local_ray_listens_on_loopback_only(tmp_path: Path) -> None:
    """`address = "local"`: every socket the started Ray listens on is 127.0.0.1 (Ray's default is every interface)."""
    import subprocess
    import sys

    from support.agent_rig import REPO

    script = f"""
import json, psutil
from pathlib import Path
from fleet.ray_host import RayCluster
RayCluster(local_hosts=("pc",), object_store_mb=75, address_file=Path({str(tmp_path / "ray.address")!r})).connect()
import ray
listening = set()
for proc in psutil.Process().children(recursive=True):
    try:
        listening |= {{c.laddr.ip for c in proc.net_connections("tcp") if c.status == "LISTEN"}}
    except psutil.Error:
        pass
print(json.dumps({{"listening": sorted(listening), "nodes": [n["NodeManagerAddress"] for n in ray.nodes()]}}))
ray.shutdown()
"""
    env = {**__import__("os").environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=90, cwd=REPO, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["nodes"] == ["127.0.0.1"]
    assert seen["listening"] and all(ip in ("127.0.0.1", "::ffff:127.0.0.1") for ip in seen["listening"]), seen
    assert (tmp_path / "ray.address").read_text().startswith("127.0.0.1:")


def test_ray_figures_become_the_ray_gauges_and_a_machine_gets_none() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from agent.service.metrics import BrainopsMetrics
    from core.domain import HostMetrics, Observation, RayActorCount, RayFigures
    from fleet.snapshot import HostSnapshot, snapshot_from_json, snapshot_to_json

    actors = (
        RayActorCount(kind="extract", state="ALIVE", count=2),
        RayActorCount(kind="embed", state="PENDING_CREATION", count=1),
    )
    on_ray = HostMetrics(host="cloud", ray=RayFigures(nodes=3, pending_actors=1, actors=actors))
    metrics = BrainopsMetrics()
    metrics.update_state(Observation(time=1.0, hosts=(on_ray, HostMetrics(host="pc"))))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(metrics.exposition().decode())
        for s in fam.samples
        if s.name.startswith("brainops_ray_")
    }
    assert samples == {
        ("brainops_ray_nodes", (("host", "cloud"),)): 3,
        ("brainops_ray_pending_actors", (("host", "cloud"),)): 1,
        ("brainops_ray_actors", (("host", "cloud"), ("kind", "extract"), ("state", "ALIVE"))): 2,
        ("brainops_ray_actors", (("host", "cloud"), ("kind", "embed"), ("state", "PENDING_CREATION"))): 1,
    }  # nothing for pc: a machine has no Ray figures
    assert '"ray"' not in snapshot_to_json(HostSnapshot(HostMetrics(host="pc")))  # the SSH wire is unchanged
    assert snapshot_from_json(snapshot_to_json(HostSnapshot(on_ray))).metrics == on_ray
