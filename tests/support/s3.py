"""An S3 stand-in for object-store brains: moto's threaded server on a loopback port, and a brain writer process.

    with MotoS3() as s3:            # AWS_* variables point the object store (lance, boto3) at it
        s3.bucket("brain")          # s3://brain/... now exists

`python tests/support/s3.py URI PREFIX BATCHES ROWS` is one writer: per batch, an append of ROWS records and a
merge_insert marking them extracted (two commits, conflict retry, as an extract worker does), printing
`committed K` after each.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "moto-test", "AWS_SECRET_ACCESS_KEY": "moto-test-secret"}


class MotoS3:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._saved: dict[str, str | None] = {}

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach it: the endpoint and region (options) and the credentials (secrets)."""
        return {**self.options_env, **CREDENTIALS}

    @property
    def options_env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT": self.endpoint, "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}

    def __enter__(self) -> MotoS3:
        import logging

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        self.server.start()
        for key, value in {**self.env, "AWS_DEFAULT_REGION": "us-east-1"}.items():
            self._saved[key] = os.environ.get(key)
            os.environ[key] = value
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


def write(uri: str, prefix: str, batches: int, rows: int) -> None:
    import pyarrow as pa

    from brain.store import BrainStore
    from support.brain_rig import pending_records

    store = BrainStore(uri)
    for b in range(batches):
        texts = [f"{prefix} batch {b} row {i}: " + "Grace Hopper met Ada Lovelace. " * 20 for i in range(rows)]
        batch = pending_records(f"{prefix}-b{b:03d}", texts, prefix, 0.0)
        store.add("records", batch)
        done = pa.table({"id": [r["id"] for r in batch], "extracted": [True] * len(batch)})
        store.update_columns("records", done)
        print(f"committed {b + 1}", flush=True)


if __name__ == "__main__":
    sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[2])]
    write(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
