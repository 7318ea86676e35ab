"""Importing what the brain was asked: a JSONL log, one query a line, into the `queries` table.

Each line is a JSON object with `text` (non-empty), `time` (unix seconds), `hits` (results returned) and
`best_score` (the best result's score, 0..1). The whole file is checked before anything is written: one bad
line refuses the import with its file:line, so nothing is half-imported. A query's id is the hash of its text
and time, so importing the same log twice adds nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from brain.store import BrainStore


class QueryLine(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)  # servers log more fields; we keep these

    text: str = Field(min_length=1)
    time: float = Field(ge=0)
    hits: int = Field(ge=0)
    best_score: float = Field(ge=0.0, le=1.0)


class QueryImportError(ValueError):
    """A line of the file is not a query; `str()` is one sentence naming file:line."""


@dataclass(frozen=True)
class ImportReport:
    lines: int
    added: int  # new queries (ids not in the table before)


def query_id(text: str, at: float) -> str:
    return "q-" + hashlib.sha1(f"{text}\x00{at!r}".encode()).hexdigest()[:20]


def parse_queries(path: Path) -> list[QueryLine]:
    """Every query of the file, or QueryImportError for the first bad line (blank lines are skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise QueryImportError(f"{path}: cannot be read: {exc}") from exc
    out: list[QueryLine] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(QueryLine.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise QueryImportError(f"{path}:{number}: not JSON ({exc.msg})") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "line"
            raise QueryImportError(f"{path}:{number}: {field}: {first['msg']}") from None
    return out


def import_queries(store: BrainStore, path: Path) -> ImportReport:
    queries = parse_queries(path)
    store.open_or_create()  # a brain made before the queries table gets it
    existing = set(store.fresh("queries").to_lance().to_table(columns=["id"]).column(0).to_pylist())
    rows = {}
    for q in queries:
        qid = query_id(q.text, q.time)
        if qid not in existing:
            rows[qid] = {"id": qid, "text": q.text, "time": q.time, "hits": q.hits, "best_score": q.best_score}
    store.add("queries", list(rows.values()))  # one commit: all of the file or nothing
    return ImportReport(lines=len(queries), added=len(rows))
