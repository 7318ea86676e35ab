"""What the suite and simulator reports share: the files a report writes, matplotlib (Agg, imported on first
use) and a dependency-free HTML rendering of the Markdown subset the reports write."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ReportFiles:
    json: Path
    markdown: Path
    html: Path
    plots: tuple[Path, ...]


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def html_page(title: str, markdown: str) -> str:
    """A dependency-free rendering of our own Markdown subset: headings, tables, images, paragraphs."""
    body: list[str] = []
    table: list[str] = []

    def flush() -> None:
        if table:
            body.append("<table>" + "".join(table) + "</table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            if set(line.strip()) <= set("|-: "):  # the header rule, |---|---|
                continue
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            tag = "th" if not table else "td"
            table.append("<tr>" + "".join(f"<{tag}>{inline(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.startswith("!["):
            alt, src = line[2:].split("](", 1)
            body.append(f'<p><img src="{html.escape(src[:-1])}" alt="{html.escape(alt)}"></p>')
        elif line.strip():
            body.append(f"<p>{inline(line)}</p>")
    flush()
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )


def inline(text: str) -> str:
    escaped = html.escape(text.replace("\\|", "|"))
    parts = escaped.split("**")
    out = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
