"""Reading a generated report.md back: its sections and tables, for the report and main-job tests."""

from __future__ import annotations

import re


def section(markdown: str, title: str) -> str:
    """The text of one `## title` section (up to the next level-2 heading)."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown, re.MULTILINE | re.DOTALL)
    assert match, f"section {title!r} missing"
    return match.group(1)


def subsection(text: str, title: str) -> str:
    match = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^### |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"subsection {title!r} missing"
    return match.group(1)


def table_rows(text: str) -> list[dict[str, str]]:
    """The first Markdown table in `text` as dicts keyed by header."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([c.strip() for c in line.strip().strip("|").split("|")])
    return [dict(zip(table[0], row, strict=True)) for row in table[2:]]


def tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table in `text`, each as dicts keyed by header."""
    blocks, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(table_rows("\n".join(current)))
            current = []
    return blocks
