"""Helpers for tests that need a real brain: seeded LanceDB on a tmp path, worker subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import REPO


def worker_env(cache_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", LITELLM_LOCAL_MODEL_COST_MAP="True")
    # tests run several workers on 2 cores: one torch thread each beats oversubscription
    env.setdefault("BRAINOPS_EMBED_THREADS", "1")
    if cache_dir is not None:
        env["BRAINOPS_CACHE_DIR"] = str(cache_dir)
    return env


def start_worker(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`python -m agent.cli worker ...` as a real OS process, output to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "worker", *args],
            cwd=REPO,
            env=env or worker_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
