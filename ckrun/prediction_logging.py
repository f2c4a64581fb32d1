"""Logging a split's per-image predictions and what was learnt from them.

Called once per scored split from `run_logging.log_evaluation_artifacts`, so the train,
baseline and evaluate runs log the same artifacts under the same names (docs/architecture.md):
``predictions/{split}.csv``, ``uncertainty/intervals_{split}.json``, ``au/curves_{split}.json``,
``calibration/reliability_{split}.json``, ``emfacs/consistency_{split}.json``,
``emfacs/contradictions_{split}.csv`` and, for the test split, the figures under ``plots/``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from ckrun import tracking
from ckrun.metrics import SplitEvaluation
from ckrun.split_analysis import draw_figures

FIGURE_SPLITS = ("test",)  # figures cost a second each; val's curves stay in the JSON artifacts


def _plain(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def log_prediction_analysis(ev: SplitEvaluation, tmp: str | Path) -> None:
    """The predictions table and, when analysed, its intervals, curves, calibration and EMFACS check."""
    if ev.predictions is None:
        return
    split = ev.split
    tracking.log_table(ev.predictions, f"predictions/{split}.csv")
    analysis = ev.analysis
    if analysis is None:
        return
    if len(analysis.intervals):
        tracking.log_table(analysis.intervals, f"uncertainty/intervals_{split}.json")
    if analysis.au.curves:
        tracking.log_dict(_plain(analysis.au.curves), f"au/curves_{split}.json")
    tracking.log_dict(
        _plain(
            {
                "emotion": {
                    "kind": "top-label",
                    "ece": analysis.metrics.get(f"{split}_emotion_ece"),
                    "bins": analysis.emotion_reliability.to_dict(orient="list"),
                },
                "aus": {
                    "kind": "binary, every coded (image, AU) pooled",
                    "ece": analysis.metrics.get(f"{split}_au_ece"),
                    "bins": analysis.au_reliability.to_dict(orient="list"),
                },
            }
        ),
        f"calibration/reliability_{split}.json",
    )
    check = analysis.emfacs
    if ev.per_au is not None and len(ev.per_au):
        tracking.log_dict(
            _plain(
                {
                    "consistency_predicted": check.predicted.rate,
                    "images_predicted": check.predicted.checked,
                    "ambiguous_predicted": check.predicted.ambiguous,
                    "consistency_truth": check.truth.rate,
                    "images_truth": check.truth.checked,
                    "ambiguous_truth": check.truth.ambiguous,
                    "by_class": check.by_class.to_dict(orient="records"),
                }
            ),
            f"emfacs/consistency_{split}.json",
        )
        tracking.log_table(check.contradictions, f"emfacs/contradictions_{split}.csv")
    if split in FIGURE_SPLITS:
        start = time.perf_counter()
        for path in draw_figures(analysis, Path(tmp) / "analysis").values():
            tracking.log_figure_file(path, "plots")
        analysis.seconds["figures"] = time.perf_counter() - start
