"""What the suite, replay and simulator reports share: the files a report writes, matplotlib (Agg, imported on
first use) and a dependency-free HTML rendering of the Markdown subset the reports write.

The subset: `#` headings, GitHub tables (a header row, its `|---|` delimiter row, body rows; `\\|` is a pipe
inside a cell), `![alt](src)` images on their own line (consecutive ones share a row, two abreast where the
page is wide enough; a blank line between images keeps each at its own width), `- ` list items, paragraphs,
and inline `**bold**`, `` `code` `` and `[text](href)`. A cell or list item that reads "met" or
"pass" (or starts with a bold "met") is marked good, one that reads "FAIL" or "not met" (or starts with them
in bold) bad, coloured by the page's style.
"""

from __future__ import annotations

import html
import re
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


# A delimiter row: cells of dashes with optional alignment colons, e.g. |---|:--:|--:| or ---|---
_DELIMITER = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_PIPE = re.compile(r"(?<!\\)\|")
_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)\s]+)\)\s*$")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
STYLE = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:2em auto;"
    "max-width:1500px;padding:0 1.5em;color:#1d1d1f;line-height:1.4}"
    "h1{font-size:1.6em;border-bottom:2px solid #1f77b4;padding-bottom:.2em}h2{font-size:1.25em;margin-top:1.6em}"
    "table{border-collapse:collapse;margin:.6em 0 1em}"
    "td,th{border:1px solid #d0d0d0;padding:3px 8px;font-size:13px;vertical-align:top}"
    "th{background:#eef2f7;text-align:left}tr:nth-child(even) td{background:#fafafa}"
    "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}td.center,th.center{text-align:center}"
    "td.ok{color:#17803d}td.bad{color:#c0261b;font-weight:600}li{margin:.15em 0;font-size:14px}"
    "li.ok>b:first-child{color:#17803d}li.bad>b:first-child{color:#c0261b}"
    "p.figs{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}"
    "p.figs img{max-width:100%;height:auto;border:1px solid #e3e3e3}"
    "p.figs.row img{flex:1 1 560px;min-width:0;max-width:min(100%,780px)}"
    "code{background:#f3f3f3;padding:0 3px;border-radius:3px}"
)


def html_page(title: str, markdown: str) -> str:
    """The page for a report's Markdown: no stray delimiter rows, every row as many cells as its header."""
    lines = markdown.splitlines()
    body: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _is_row(line) and i + 1 < len(lines) and _DELIMITER.match(lines[i + 1]):
            i = _table(lines, i, body)
            continue
        if _DELIMITER.match(line) and "|" in line:
            i += 1  # a delimiter row without a header: never shown as text
            continue
        if _IMAGE.match(line):
            figs = []
            while i < len(lines) and (match := _IMAGE.match(lines[i])):
                alt, src = match.groups()
                figs.append(f'<img src="{html.escape(src)}" alt="{html.escape(alt)}">')
                i += 1
            body.append(f'<p class="figs{" row" if len(figs) > 1 else ""}">{"".join(figs)}</p>')
            continue
        if line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                text = lines[i][2:].strip()
                items.append(f"<li{_tone(text)}>{inline(text)}</li>")
                i += 1
            body.append(f"<ul>{''.join(items)}</ul>")
            continue
        if line.startswith("#"):
            level = min(6, len(line) - len(line.lstrip("#")))
            body.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            body.append(f"<p>{inline(line)}</p>")
        i += 1
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )


def _is_row(line: str) -> bool:
    return bool(_PIPE.search(line)) and not _DELIMITER.match(line)


def split_row(line: str) -> list[str]:
    """`| a | b \\| c |  |` -> ["a", "b \\| c", ""]: unescaped pipes separate, the outer ones are optional."""
    text = line.strip()
    text = text[1:] if text.startswith("|") else text
    text = text[:-1] if text.endswith("|") and not text.endswith("\\|") else text
    return [cell.strip() for cell in _PIPE.split(text)]


def _align(delimiter: str) -> list[str]:
    out = []
    for cell in split_row(delimiter):
        left, right = cell.startswith(":"), cell.endswith(":")
        out.append("center" if left and right else "num" if right else "")
    return out


def _table(lines: list[str], start: int, body: list[str]) -> int:
    """The table starting at `start` (header, delimiter, rows) into `body`; returns the next line's index."""
    header = split_row(lines[start])
    align = (_align(lines[start + 1]) + [""] * len(header))[: len(header)]
    rows = []
    i = start + 2
    while i < len(lines) and _PIPE.search(lines[i]):
        if not _DELIMITER.match(lines[i]):
            cells = (split_row(lines[i]) + [""] * len(header))[: len(header)]  # GitHub pads and cuts the same
            rows.append(cells)
        i += 1

    def cell(tag: str, text: str, col: int) -> str:
        classes = " ".join(c for c in (align[col], _tone(text, bare=True)) if c)
        attr = f' class="{classes}"' if classes else ""
        return f"<{tag}{attr}>{inline(text)}</{tag}>"

    head = "<tr>" + "".join(cell("th", h, n) for n, h in enumerate(header)) + "</tr>"
    rest = "".join("<tr>" + "".join(cell("td", c, n) for n, c in enumerate(r)) + "</tr>" for r in rows)
    body.append(f"<table><thead>{head}</thead><tbody>{rest}</tbody></table>")
    return i


def _tone(text: str, bare: bool = False) -> str:
    tone = ""
    if text.startswith(("**not met**", "**FAIL**")) or text in ("FAIL", "not met"):
        tone = "bad"
    elif text in ("met", "pass", "**met**", "**pass**") or text.startswith("**met** "):
        tone = "ok"
    return tone if bare else (f' class="{tone}"' if tone else "")


def inline(text: str) -> str:
    """Code spans first (their content stays literal), then bold and links in the rest."""
    out = []
    for in_code, part in _pairs(html.escape(text.replace("\\|", "|"), quote=True), "`"):
        if in_code:
            out.append(f"<code>{part}</code>")
            continue
        bold = "".join(f"<b>{p}</b>" if inside else p for inside, p in _pairs(part, "**"))
        out.append(_LINK.sub(lambda m: f'<a href="{m.group(2)}">{m.group(1)}</a>', bold))
    return "".join(out)


def _pairs(text: str, mark: str) -> list[tuple[bool, str]]:
    """(inside a pair of `mark`, text) pieces; an unpaired last mark stays literal."""
    parts = text.split(mark)
    out = [(n % 2 == 1, p) for n, p in enumerate(parts)]
    if len(parts) % 2 == 0:  # an odd number of marks: the last one has no partner
        out[-1] = (False, mark + parts[-1])
    return out
