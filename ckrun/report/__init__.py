"""Reports under ``reports/``: run comparison, result analysis, best run, dataset card.

`generate_report` is the entry point (`ckrun report`); the modules split the work the way
data flows: `collect` reads MLflow into tables, `analysis` writes the judgement, `groups`
scores demographic groups with the best model, `sections` and `dataset` assemble blocks
(drawing with `ckrun.figures`), `document` renders them to Markdown and self-contained HTML.
"""

from __future__ import annotations

from ckrun.report.build import default_out, generate_report

__all__ = ["default_out", "generate_report"]
