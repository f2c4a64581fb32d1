"""A report as a list of blocks, rendered once to Markdown and once to self-contained HTML.

Sections build blocks (headings, paragraphs, tables, figures) from data; the two renderers
never compute anything, so ``report.md`` and ``report.html`` cannot disagree. No Markdown
library is needed: the only inline markup is ``**bold**`` and ```code```, which both
renderers understand.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ckrun.markdown import markdown_table


@dataclass
class Heading:
    level: int
    text: str

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.text.lower()).strip("-")


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    """A display-ready table: cells are already formatted strings."""

    frame: pd.DataFrame
    caption: str = ""


@dataclass
class Figure:
    path: Path
    caption: str


@dataclass
class FigureRow:
    """Figures side by side in HTML (one after another in Markdown)."""

    figures: list[Figure]


@dataclass
class Details:
    """Collapsible in HTML: reference text a reader may skip (e.g. the diagnosis rule)."""

    summary: str
    text: str


Block = Heading | Paragraph | Bullets | Table | Figure | FigureRow | Details


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block | None) -> None:
        self.blocks.extend(b for b in blocks if b is not None)

    def figures(self) -> list[Figure]:
        out: list[Figure] = []
        for block in self.blocks:
            if isinstance(block, Figure):
                out.append(block)
            elif isinstance(block, FigureRow):
                out.extend(block.figures)
        return out


# %% Markdown


def to_markdown(doc: Document, base: Path) -> str:
    """Markdown with figures linked relative to `base` (the folder report.md is written to)."""
    parts = [f"# {doc.title}"]
    for block in doc.blocks:
        parts.append(_block_md(block, base))
    return "\n\n".join(p for p in parts if p).rstrip() + "\n"


def _block_md(block: Block, base: Path) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {block.text}"
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Table):
        table = markdown_table(block.frame, index=False)
        return f"{table}\n\n*{block.caption}*" if block.caption else table
    if isinstance(block, Figure):
        return _figure_md(block, base)
    if isinstance(block, FigureRow):
        return "\n\n".join(_figure_md(f, base) for f in block.figures)
    if isinstance(block, Details):
        return f"**{block.summary}**\n\n{block.text}"
    raise TypeError(f"unknown block {block!r}")


def _figure_md(figure: Figure, base: Path) -> str:
    try:
        rel = figure.path.resolve().relative_to(base.resolve())
    except ValueError:
        rel = figure.path
    return f"![{figure.caption}]({rel.as_posix()})\n\n*{figure.caption}*"


# %% HTML

_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
       max-width: 1180px; margin: 2em auto; padding: 0 1.5em; }
h1 { font-size: 1.8em; border-bottom: 2px solid #d0d7de; padding-bottom: .3em; }
h2 { font-size: 1.4em; margin-top: 2em; border-bottom: 1px solid #d0d7de; padding-bottom: .2em; }
h3 { font-size: 1.15em; margin-top: 1.5em; }
code { background: #f3f4f6; padding: .1em .3em; border-radius: 4px; font-size: 90%; }
nav { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: .6em 1.2em; }
nav ul { margin: .2em 0; padding-left: 1.2em; }
.table-wrap { overflow-x: auto; margin: 1em 0; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; }
th { background: #f6f8fa; text-align: left; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafbfc; }
tbody tr:hover { background: #eef6ff; }
caption { caption-side: bottom; color: #57606a; font-size: 12px; padding-top: 4px; text-align: left; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; border-radius: 4px; }
figcaption { color: #57606a; font-size: 13px; }
.row { display: flex; flex-wrap: wrap; gap: 1em; }
.row figure { flex: 1 1 420px; }
details { background: #f6f8fa; border-radius: 6px; padding: .5em 1em; margin: 1em 0; }
details pre { white-space: pre-wrap; font-size: 13px; }
.meta { color: #57606a; }
"""

# 0.61, 1e-4, 0.61*, 20 (18), 0.908 [0.87, 0.94], 0.908 ± 0.020
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?%?( \(\d+\)| \[[-+0-9.]+, [-+0-9.]+\]| ± [0-9.]+)?\*?$")


def _inline(text: str) -> str:
    """Escape, then turn ``**bold**`` and ```code``` into tags."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _figure_html(figure: Figure) -> str:
    alt = html.escape(figure.caption)
    return (
        f'<figure><img src="{_data_uri(figure.path)}" alt="{alt}">'
        f"<figcaption>{_inline(figure.caption)}</figcaption></figure>"
    )


def _table_html(table: Table) -> str:
    head = "".join(f"<th>{_inline(str(c))}</th>" for c in table.frame.columns)
    rows = []
    for row in table.frame.itertuples(index=False):
        cells = []
        for value in row:
            text = "" if value is None else str(value)
            cls = ' class="num"' if _NUMBER.match(text.strip()) else ""
            cells.append(f"<td{cls}>{_inline(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    caption = f"<caption>{_inline(table.caption)}</caption>" if table.caption else ""
    return (
        f'<div class="table-wrap"><table>{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _block_html(block: Block) -> str:
    if isinstance(block, Heading):
        return f'<h{block.level} id="{block.anchor}">{_inline(block.text)}</h{block.level}>'
    if isinstance(block, Paragraph):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Table):
        return _table_html(block)
    if isinstance(block, Figure):
        return _figure_html(block)
    if isinstance(block, FigureRow):
        return '<div class="row">' + "".join(_figure_html(f) for f in block.figures) + "</div>"
    if isinstance(block, Details):
        return f"<details><summary>{_inline(block.summary)}</summary><pre>{html.escape(block.text)}</pre></details>"
    raise TypeError(f"unknown block {block!r}")


def _toc(headings: Sequence[Heading]) -> str:
    items = "".join(f'<li><a href="#{h.anchor}">{_inline(h.text)}</a></li>' for h in headings if h.level == 2)
    return f"<nav><strong>Contents</strong><ul>{items}</ul></nav>" if items else ""


def to_html(doc: Document) -> str:
    """One HTML file with CSS inline and every figure embedded as a base64 data URI."""
    headings = [b for b in doc.blocks if isinstance(b, Heading)]
    body = "\n".join(_block_html(b) for b in doc.blocks)
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>{html.escape(doc.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{_inline(doc.title)}</h1>\n{_toc(headings)}\n{body}\n</body>\n</html>\n"
    )
