"""Markdown tables for every document ckrun writes (dataset summary, report).

pandas' own `to_markdown` needs the optional tabulate package; this small writer has no
dependency and renders missing values as a dash, so every table reads the same.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def markdown_table(frame: pd.DataFrame, *, index: bool = True, floatfmt: str = ".2f") -> str:
    """A GitHub Markdown table (pandas' own needs the optional tabulate package)."""
    data = frame.reset_index() if index else frame
    header = [str(c) for c in data.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in data.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v, floatfmt) for v in row) + " |")
    return "\n".join(lines)


def _cell(value: object, floatfmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    if isinstance(value, (float, np.floating)):
        return format(float(value), floatfmt)
    return str(value).replace("|", "\\|")
