"""Host metrics (psutil, nvidia-smi) and the probe, run as the real `python -m workers.probe` command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from fleet.host_metrics import gpu_info, host_metrics, parse_nvidia_smi
from fleet.hosts import probe_argv, snapshot_from_json

SMI_OUTPUT = "0, NVIDIA GeForce RTX 4090, 37, 10240, 24564\n1, Tesla T4, [N/A], 15, 15360\n"


def test_metrics_of_this_machine_are_sane() -> None:
    m = host_metrics("brain-host", cpu_interval_s=0.05)
    assert m.host == "brain-host" and m.reachable
    assert 0.0 <= m.cpu_percent <= 100.0
    assert 0.0 < m.mem_percent < 100.0
    assert 0.0 < m.disk_percent <= 100.0
    assert m.cpu_count == (psutil.cpu_count() or 1) >= 1
    assert m.load1 == pytest.approx(os.getloadavg()[0], abs=2.0)
    assert m.observed_in_ms >= 40.0  # the CPU sample really waited
    if shutil.which("nvidia-smi") is None:
        assert m.gpus == ()


def test_nvidia_smi_csv_is_parsed_including_unsupported_fields() -> None:
    gpus = parse_nvidia_smi(SMI_OUTPUT)
    assert [g.name for g in gpus] == ["NVIDIA GeForce RTX 4090", "Tesla T4"]
    assert gpus[0].util_percent == 37.0 and gpus[0].mem_total_mb == 24564.0
    assert gpus[1].util_percent == 0.0  # "[N/A]"
    assert parse_nvidia_smi("garbage line\n\n") == ()


def test_gpus_come_from_nvidia_smi_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "nvidia-smi"  # a real executable on PATH: the real subprocess path runs
    fake.write_text(f"#!/bin/sh\ncase \"$*\" in *--query-gpu=*) printf '{SMI_OUTPUT}';; *) exit 9;; esac\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert [g.index for g in gpu_info()] == [0, 1]
    fake.write_text("#!/bin/sh\nexit 1\n")  # driver missing: no GPUs rather than an error
    assert gpu_info() == ()


def test_probe_command_reports_metrics_and_workers_as_json(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    me = psutil.Process()
    alive = {"pid": me.pid, "create_time": me.create_time(), "kind": "embed", "started_at": 1.0}
    (run_dir / "embed-a-1.pid").write_text(json.dumps(alive))
    (run_dir / "embed-a-1.status.json").write_text(json.dumps({"state": "running", "exit_code": None}))
    gone = {"pid": me.pid, "create_time": me.create_time() - 99, "kind": "extract", "started_at": 1.0}
    (run_dir / "extract-a-2.pid").write_text(json.dumps(gone))
    (run_dir / "extract-a-2.status.json").write_text(json.dumps({"state": "stopped", "exit_code": 0}))

    argv = probe_argv(python=sys.executable, run_dir=str(run_dir), host_name="worker-pc")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    snap = snapshot_from_json(out)
    assert snap.metrics.host == "worker-pc" and snap.metrics.cpu_count >= 1
    states = {w.id: (w.kind, w.state, w.host) for w in snap.workers}
    assert states == {
        "embed-a-1": ("embed", "running", "worker-pc"),
        "extract-a-2": ("extract", "stopped", "worker-pc"),
    }
    assert snap.worker("embed-a-1").rss_mb > 1.0  # type: ignore[union-attr]


def test_malformed_probe_output_and_bad_probe_args_are_refused() -> None:
    with pytest.raises(ValueError):
        snapshot_from_json("[]")
    with pytest.raises(ValueError):
        snapshot_from_json('{"metrics": {"host": "x", "cpu_percent": "lots"}}')
    with pytest.raises(ValueError):
        probe_argv(python="python3", run_dir="/r", host_name="x; reboot")
