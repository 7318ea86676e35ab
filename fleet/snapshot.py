"""What one probe of a host returns (`HostSnapshot`) and its wire format over SSH.

`fleet.probe` prints `snapshot_to_json` on the remote host; `fleet.remote` parses it with
`snapshot_from_json`. The JSON carries `REMOTE_PROTOCOL`, so an agent talking to a host that runs another
brainops version gets a clear `ProtocolMismatch` instead of a half-understood answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from core.domain import HostMetrics, WorkerInfo

# Version of the agent <-> remote host contract: the entry modules (`python -m fleet.probe`,
# `python -m fleet.remote_cli`), their arguments and their JSON output. Bump it on any incompatible change.
# 1: `workers.probe` / `workers.remote_cli` (no "protocol" field); 2: `fleet.probe` / `fleet.remote_cli`;
# 3: workers carry processed, idle and busy_s (the scaling controller's meters read them).
REMOTE_PROTOCOL = 3


class ProtocolMismatch(ValueError):
    """Probe output from a host speaking another remote protocol (None: an older one that sends none)."""

    def __init__(self, found: object) -> None:
        super().__init__(f"probe speaks remote protocol {found!r}, this agent speaks {REMOTE_PROTOCOL}")
        self.found = found


@dataclass(frozen=True)
class HostSnapshot:
    """Metrics plus the state of every worker the host's run dir knows, taken in one round trip."""

    metrics: HostMetrics
    workers: tuple[WorkerInfo, ...] = ()

    def worker(self, worker_id: str) -> WorkerInfo | None:
        return next((w for w in self.workers if w.id == worker_id), None)


def snapshot_to_json(snapshot: HostSnapshot) -> str:
    return json.dumps(
        {
            "protocol": REMOTE_PROTOCOL,
            # a probed machine has no Ray figures: left out, the wire stays what older agents parse
            "metrics": snapshot.metrics.model_dump(mode="json", exclude=None if snapshot.metrics.ray else {"ray"}),
            "workers": [w.model_dump(mode="json") for w in snapshot.workers],
        }
    )


def snapshot_from_json(text: str) -> HostSnapshot:
    """Parse probe output; raises ValueError (pydantic.ValidationError included) on malformed input, and
    its subclass ProtocolMismatch when the probe speaks another remote protocol."""
    data = json.loads(text)
    if not isinstance(data, dict) or "metrics" not in data:
        raise ValueError("probe output must be a JSON object with 'metrics' and 'workers'")
    if data.get("protocol") != REMOTE_PROTOCOL:
        raise ProtocolMismatch(data.get("protocol"))
    return HostSnapshot(
        metrics=HostMetrics.model_validate(data["metrics"]),
        workers=tuple(WorkerInfo.model_validate(w) for w in data.get("workers", [])),
    )
