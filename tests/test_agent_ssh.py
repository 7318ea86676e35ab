"""The agent over a real SSH fleet: local brain host plus two sshd "hosts" on loopback addresses."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support import wait_for
from support.agent_rig import NO_CPU_CEILING, copy_brain, kill_workers, make_settings, write_policy
from support.sshd import SshFleet, sshd_unavailable_reason

from agent.service.agent import Agent
from core.settings import HostConfig

pytestmark = [pytest.mark.ssh, pytest.mark.slow]  # a seeded brain and two sshd hosts per test
_skip = sshd_unavailable_reason()


@pytest.fixture
def fleet_agent(tmp_path: Path):
    if _skip:
        pytest.skip(f"sshd unavailable: {_skip}")
    from brain.seed import seed_brain

    seed_brain(str(tmp_path / "seed"), "small", seed=2, show_progress=False)
    with SshFleet(tmp_path / "fleet", 2, first_octet=8) as fleet:
        hosts = [HostConfig(name="local", role="brain"), *fleet.configs(connect_timeout_s=2.0, command_timeout_s=3.0)]
        policy = write_policy(tmp_path / "policy.yaml", **NO_CPU_CEILING)
        settings = make_settings(tmp_path, copy_brain(str(tmp_path / "seed"), tmp_path), policy, hosts=hosts)
        agent = Agent(settings)
        agent.fleet.dispatcher.snapshot_timeout_s = 4.0
        try:
            yield agent, fleet
        finally:
            for name in [h.name for h in fleet.hosts]:
                for w in agent.fleet.dispatcher.workers():
                    if w.host == name:
                        agent.fleet.dispatcher.stop(w.id, drain=False)
            kill_workers(settings.run_dir)


def test_tick_sees_every_host_and_dispatches_remotely(fleet_agent) -> None:
    agent, fleet = fleet_agent
    remote = fleet.hosts[0].name
    report = agent.request("scale_workers", {"kind": "extract", "host": remote, "count": 1}, requester="test")
    assert report.outcomes[0].status == "done", report.outcomes[0]
    obs = agent.observe()
    assert {h.host for h in obs.hosts if h.reachable} == {"local", *[h.name for h in fleet.hosts]}
    wait_for(
        lambda: [w for w in agent.fleet.dispatcher.workers(refresh=True) if w.host == remote and w.state == "running"],
        f"a running worker on {remote}",
    )


def test_dead_host_degrades_the_tick_without_hanging(fleet_agent) -> None:
    agent, fleet = fleet_agent
    agent.tick(dry_run=True)  # warm connections
    dead = fleet.hosts[1]
    dead.kill()
    started = time.monotonic()
    report = agent.tick()
    elapsed = time.monotonic() - started
    assert elapsed < 4.0 + 15.0, elapsed  # bounded by the snapshot timeout, plus brain stats and recording
    obs = agent.observe()
    down = {h.host: h for h in obs.hosts if not h.reachable}
    assert set(down) == {dead.name} and down[dead.name].error
    assert any(dead.name in note for note in obs.notes)
    assert report.proposals  # the other hosts still got a decision
