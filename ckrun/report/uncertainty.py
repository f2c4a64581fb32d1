"""Report sections on how far a score can be trusted: intervals, paired tests, CV spread.

A test score of 0.91 on eight test subjects could as well be 0.85 on eight others. The
report therefore prints test scores as ``0.908 [0.87, 0.94]`` (the run's logged subject-level
bootstrap interval), cross-validation parents as ``0.908 ± 0.020`` (mean ± SD over folds,
with the per-fold table), and says whether the best run beats the baseline and the runner-up
by more than the choice of test subjects explains (the paired test of `ckrun compare`,
recomputed from the runs' logged predictions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ckrun.errors import CkrunError
from ckrun.report import collect
from ckrun.report.analysis import fmt
from ckrun.report.document import Block, Heading, Paragraph, Table
from ckrun.uncertainty import HEADLINE_METRICS, paired_comparison

METRIC_LABELS = {
    "emotion_accuracy": "emotion accuracy",
    "emotion_f1": "emotion macro-F1",
    "au_f1": "AU macro-F1",
    "au_f1_weighted": "AU weighted-F1",
}


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def fmt_interval(row: Mapping[str, Any], key: str) -> str:
    """``0.908 [0.87, 0.94]`` with a logged interval, ``0.908 ± 0.020`` for a CV mean, else ``0.908``."""
    value = fmt(row.get(key))
    low, high = _number(row.get(f"{key}_ci_low")), _number(row.get(f"{key}_ci_high"))
    if value != "–" and math.isfinite(low) and math.isfinite(high):
        return f"{value} [{low:.2f}, {high:.2f}]"
    std = _number(row.get(f"{key}_std"))
    if value != "–" and math.isfinite(std):
        return f"{value} ± {std:.3f}"
    return value


def _comparison_rows(best: pd.Series, other: pd.Series, split: str) -> pd.DataFrame | None:
    from ckrun.compare import align

    a, b = collect.predictions(best["run_id"], split), collect.predictions(other["run_id"], split)
    if a is None or b is None:
        return None
    try:
        a, b = align(a, b, str(best["run"]), str(other["run"]), split)
    except CkrunError:
        return None
    shared = [au for au in a.aus if au in b.aus]
    result = paired_comparison(a.subset(shared), b.subset(shared))
    return result.table.assign(other=str(other["run"]), subjects=result.n_subjects)


def _paired_text(rows: pd.DataFrame, best: str) -> str:
    parts = []
    for other, group in rows.groupby("other", sort=False):
        better = [
            METRIC_LABELS.get(r.metric, r.metric) for r in group.itertuples() if r.significant and r.difference > 0
        ]
        worse = [
            METRIC_LABELS.get(r.metric, r.metric) for r in group.itertuples() if r.significant and r.difference < 0
        ]
        if better or worse:
            text = f"against {other}, {best} is significantly better on {', '.join(better) or 'nothing'}"
            parts.append(text + (f" and worse on {', '.join(worse)}" if worse else ""))
        else:
            parts.append(f"against {other}, no difference is significant at 0.05")
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "."


def uncertainty_blocks(best: pd.Series, table: pd.DataFrame) -> list[Block]:
    """The best run's test scores with intervals, and paired tests against the baseline and runner-up."""
    blocks: list[Block] = [Heading(2, "Uncertainty")]
    if all(math.isnan(_number(best.get(f"test_{m}_ci_low"))) for m in HEADLINE_METRICS):
        return [
            *blocks,
            Paragraph(
                f"{best['run']} logged no bootstrap intervals (a run from before per-image predictions, a run "
                "without a test split, or `bootstrap_samples=0`)."
            ),
        ]
    rows = [
        {"metric": METRIC_LABELS[m], "test [CI]": fmt_interval(best, f"test_{m}")}
        for m in HEADLINE_METRICS
        if not math.isnan(_number(best.get(f"test_{m}")))
    ]
    blocks += [
        Paragraph(
            "Intervals are percentile intervals (the run's `confidence_level`, 95% by default) of a subject-level "
            "bootstrap (`bootstrap_samples` resamples): test subjects are drawn with "
            "replacement (each with all of its images) and the metric recomputed, so the interval reflects "
            "how much the score depends on which people happen to be in the test split. Frames of one person "
            "are not independent, so resampling images would give intervals that are too narrow."
        ),
        Table(pd.DataFrame(rows), f"{best['run']}: test scores with subject-level bootstrap intervals."),
    ]
    others = [
        r
        for _, r in table.iterrows()
        if r["run_id"] != best["run_id"] and r["kind"] in ("baseline", *collect.TRAINED_KINDS)
    ]
    runner = next((r for r in others if r["kind"] in collect.TRAINED_KINDS), None)
    # The baseline the best run is judged against elsewhere in the report: the strongest one
    # fitted on the same images and split, not whichever comes first in the table.
    baseline = collect.strongest_baseline(table, best.get("data_digest"))
    compared = [
        c for c in (_comparison_rows(best, r, "test") for r in (baseline, runner) if r is not None) if c is not None
    ]
    if compared:
        paired = pd.concat(compared, ignore_index=True)
        frame = pd.DataFrame(
            {
                "against": paired["other"],
                "metric": [METRIC_LABELS.get(m, m) for m in paired["metric"]],
                "best": [fmt(v) for v in paired["a"]],
                "other": [fmt(v) for v in paired["b"]],
                "difference [95% CI]": [
                    f"{d:+.3f} [{lo:+.2f}, {hi:+.2f}]"
                    for d, lo, hi in zip(paired["difference"], paired["ci_low"], paired["ci_high"], strict=True)
                ],
                "p": [fmt(p) for p in paired["p_value"]],
            }
        )
        blocks += [
            Heading(3, "Is the best run really better?"),
            Paragraph(_paired_text(paired, str(best["run"]))),
            Table(
                frame,
                f"Paired subject-level test on the {int(paired['subjects'].iloc[0])} test subjects (what "
                "`ckrun compare` prints): difference = best - other with a paired bootstrap interval; p from "
                "swapping the two runs' predictions subject by subject.",
            ),
        ]
    return blocks


def _cross_validated(row: Any) -> bool:
    """A cv parent of a baseline (`ckrun baseline --cv K`): no predictions of its own to pair."""
    return not math.isnan(_number(row.get("cv_folds")))


def cv_blocks(table: pd.DataFrame) -> list[Block]:
    """Per cross-validation parent (networks, then baselines): mean ± SD over folds and the per-fold table."""
    cross_validated = table.apply(_cross_validated, axis=1) if not table.empty else pd.Series(dtype=bool)
    parents = table.loc[(table["kind"] == "cv") | ((table["kind"] == "baseline") & cross_validated)]
    if parents.empty:
        return []
    blocks: list[Block] = [
        Heading(2, "Cross-validation"),
        Paragraph(
            "Each fold holds out different subjects; the spread over folds (SD) says how much a score moves with "
            "the choice of test subjects."
        ),
    ]
    for _, parent in parents.iterrows():
        summary = pd.DataFrame(
            [
                {"metric": METRIC_LABELS[m], "mean ± SD over folds": fmt_interval(parent, f"test_{m}")}
                for m in HEADLINE_METRICS
                if not math.isnan(_number(parent.get(f"test_{m}")))
            ]
        )
        blocks += [Heading(3, str(parent["run"])), Table(summary, f"{parent['run']}: test scores over folds.")]
        folds = collect.cv_folds(parent["run_id"])
        if folds is not None and not folds.empty:
            columns = [f"test_{m}" for m in HEADLINE_METRICS if f"test_{m}" in folds.columns]
            frame = pd.DataFrame(
                {
                    "fold": [str(v) for v in folds["fold"]],
                    **{
                        METRIC_LABELS[c.removeprefix("test_")]: [fmt_interval(r, c) for _, r in folds.iterrows()]
                        for c in columns
                    },
                    "fit": folds.get("fit_diagnosis", pd.Series([""] * len(folds))).fillna("").astype(str),
                }
            )
            blocks.append(Table(frame, "Per fold: test scores with each fold's own subject-level interval."))
    return blocks
