"""Everything a run learns from its per-image predictions beyond the point scores.

One call per scored split (`attach_analysis`) turns the predictions table into: subject-level
bootstrap intervals of the headline metrics (`ckrun.uncertainty`), per-AU curves,
average precision, skew-normalised F1 and calibration (`ckrun.au_evaluation`,
`ckrun.calibration`), and the EMFACS agreement of the two heads (`ckrun.emfacs`). The train,
baseline and evaluate runs all score through it, so they log the same names
(docs/architecture.md), and the report recomputes from the same logged table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ckrun import names
from ckrun.au_evaluation import AUEvaluation, evaluate_aus
from ckrun.calibration import au_reliability, emotion_reliability, expected_calibration_error
from ckrun.emfacs import EmfacsCheck, emfacs_check
from ckrun.metrics import SplitEvaluation
from ckrun.predictions import Predictions, read_predictions
from ckrun.uncertainty import bootstrap_intervals

if TYPE_CHECKING:
    from ckrun.config import TrainConfig


@dataclass(frozen=True)
class AnalysisSettings:
    """The evaluation keys of `TrainConfig` that shape the analysis (defaults = the config's)."""

    bootstrap_samples: int = 1000
    confidence_level: float = 0.95
    calibration_bins: int = 10
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> AnalysisSettings:
        return cls(cfg.bootstrap_samples, cfg.confidence_level, cfg.calibration_bins, cfg.seed)


@dataclass
class SplitAnalysis:
    split: str
    predictions: Predictions
    metrics: dict[str, float]  # prefixed with the split, as logged
    intervals: pd.DataFrame  # metric, estimate, ci_low, ci_high (empty without a bootstrap)
    au: AUEvaluation
    emotion_reliability: pd.DataFrame
    au_reliability: pd.DataFrame
    emfacs: EmfacsCheck
    seconds: dict[str, float] = field(default_factory=dict)  # time per part (bench/bench_evaluation.py)


def analyse_predictions(
    split: str, pred: Predictions, settings: AnalysisSettings = AnalysisSettings(), *, intervals: bool = True
) -> SplitAnalysis:
    """All of the above for one split; `intervals=False` skips the bootstrap (val, train)."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    ci = (
        bootstrap_intervals(
            pred, samples=settings.bootstrap_samples, level=settings.confidence_level, seed=settings.seed
        )
        if intervals and settings.bootstrap_samples
        else pd.DataFrame(columns=["metric", "estimate", "ci_low", "ci_high"])
    )
    seconds["bootstrap"] = time.perf_counter() - start
    start = time.perf_counter()
    au = evaluate_aus(pred.au_targets, pred.au_probs, pred.aus, pred.thresholds, n_bins=settings.calibration_bins)
    emotion_bins = emotion_reliability(pred.emotion_targets, pred.emotion_probs, settings.calibration_bins)
    au_bins = au_reliability(pred.au_targets, pred.au_probs, settings.calibration_bins)
    seconds["curves"] = time.perf_counter() - start
    start = time.perf_counter()
    check = emfacs_check(pred)
    seconds["emfacs"] = time.perf_counter() - start
    raw: dict[str, float] = {"emotion_ece": expected_calibration_error(emotion_bins), **au.metrics}
    if pred.aus:
        raw["emfacs_consistency"] = check.predicted.rate
        raw["emfacs_consistency_truth"] = check.truth.rate
    for row in ci.itertuples(index=False):
        raw[f"{row.metric}_ci_low"] = float(row.ci_low)
        raw[f"{row.metric}_ci_high"] = float(row.ci_high)
    metrics = {names.split_metric(split, k): v for k, v in raw.items()}
    return SplitAnalysis(split, pred, metrics, ci, au, emotion_bins, au_bins, check, seconds)


def attach_analysis(
    ev: SplitEvaluation, predictions: pd.DataFrame, settings: AnalysisSettings, *, intervals: bool
) -> SplitEvaluation:
    """Add the predictions, the analysis, its metrics and the extra per-AU columns to `ev`."""
    analysis = analyse_predictions(ev.split, read_predictions(predictions), settings, intervals=intervals)
    ev.predictions = predictions
    ev.analysis = analysis
    ev.metrics.update(analysis.metrics)
    if len(ev.per_au) and len(analysis.au.table):
        extra = [c for c in analysis.au.table.columns if c == "au" or c not in ev.per_au.columns]
        ev.per_au = ev.per_au.merge(analysis.au.table[extra], on="au", how="left")
    return ev


def draw_figures(analysis: SplitAnalysis, out_dir: Path, *, run: str = "") -> dict[str, Path]:
    """The analysis's PNGs (PR curves, threshold-F1, reliability, EMFACS), keyed by artifact name."""
    from ckrun.figures.scores import plot_emfacs, plot_pr_curves, plot_reliability, plot_threshold_f1

    split = analysis.split
    out: dict[str, Path] = {}
    if analysis.au.curves:
        name = f"au_pr_curves_{split}.png"
        out[name] = plot_pr_curves(analysis.au.curves, out_dir / name, split=split, run=run)
        name = f"au_threshold_f1_{split}.png"
        out[name] = plot_threshold_f1(analysis.au.curves, out_dir / name, split=split, run=run)
    panels = {"emotion head (top label)": (analysis.emotion_reliability, analysis.metrics.get(f"{split}_emotion_ece"))}
    if analysis.au.curves:
        panels["action units (all pooled)"] = (analysis.au_reliability, analysis.metrics.get(f"{split}_au_ece"))
    name = f"reliability_{split}.png"
    out[name] = plot_reliability(
        {k: (bins, float("nan") if ece is None else ece) for k, (bins, ece) in panels.items()},
        out_dir / name,
        split=split,
        run=run,
    )
    if analysis.au.curves:
        name = f"emfacs_{split}.png"
        out[name] = plot_emfacs(analysis.emfacs.by_class, out_dir / name, split=split, run=run)
    return out
