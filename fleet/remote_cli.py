"""Remote side of RemoteHost: `python -m fleet.remote_cli start|stop ...` on the worker's host.

It re-validates its arguments into a `WorkerSpec` and hands them to `LocalHost`, so a remote worker is
started, bookkept (pid + create_time, log, status, stop deadline) and stopped exactly like a local one.
It prints one JSON object (the StartResult / StopResult fields) and exits 0 when the action succeeded,
3 when it was refused or failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from fleet.commands import check_identifier
from fleet.hosts import InvalidWorkerSpec, LocalHost, StartResult, StopResult, WorkerOptions, WorkerSpec

EXIT_REFUSED = 3
EXIT_BAD_ARGS = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fleet.remote_cli")
    sub = parser.add_subparsers(dest="action", required=True)
    for action in ("start", "stop"):
        p = sub.add_parser(action)
        p.add_argument("--run-dir", required=True, type=Path)
        p.add_argument("--host", required=True)
        p.add_argument("--id", required=True)
    start = sub.choices["start"]
    start.add_argument("--kind", required=True)
    start.add_argument("--brain", required=True)
    start.add_argument("--options", default="{}", help="WorkerOptions as a JSON object")
    stop = sub.choices["stop"]
    stop.add_argument("--grace", type=float, default=30.0)
    stop.add_argument("--drain", action=argparse.BooleanOptionalAction, default=True)
    return parser


def _start(host: LocalHost, args: argparse.Namespace) -> StartResult:
    options = json.loads(args.options)
    if not isinstance(options, dict):
        raise InvalidWorkerSpec("--options must be a JSON object")
    spec = WorkerSpec(worker_id=args.id, kind=args.kind, brain=args.brain, options=WorkerOptions.from_json(options))
    return host.start_worker(spec)


def _stop(host: LocalHost, args: argparse.Namespace) -> StopResult:
    check_identifier("worker_id", args.id)
    return host.stop_worker(args.id, drain=args.drain, grace_s=args.grace)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    host = LocalHost(args.run_dir.expanduser().resolve(), name=args.host, python=sys.executable)
    try:
        result: StartResult | StopResult = _start(host, args) if args.action == "start" else _stop(host, args)
    except (InvalidWorkerSpec, ValueError) as exc:
        print(json.dumps({"ok": False, "worker_id": args.id, "error": f"invalid: {exc}"}))
        return EXIT_BAD_ARGS
    print(json.dumps(asdict(result)))
    return 0 if result.ok else EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
