"""What every kind of run logs the same way: its name stamp, description, params and results.

The ResNet run, cross-validation, the linear baseline, `ckrun evaluate` and tuning all log
through these helpers, so their params, metrics, tags and artifacts carry the same names
(the MLflow naming contract of docs/architecture.md) and the compare view and reports can
line them up.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ckrun import tracking
from ckrun.calibration import Temperatures
from ckrun.config import TrainConfig
from ckrun.data.labels import EMOTION_CLASSES
from ckrun.data.loader import PreparedData
from ckrun.metrics import Diagnosis, SplitEvaluation
from ckrun.prediction_logging import log_prediction_analysis


def timestamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def describe_network(cfg: TrainConfig) -> str:
    if cfg.backbone == "fer_xception":
        return f"Two-headed mini-Xception pretrained on FER2013 ({cfg.image_size}px x1)"
    return (
        f"Two-headed ResNet (filters {list(cfg.filters)}, blocks {list(cfg.blocks)}, {cfg.image_size}px "
        f"x{cfg.channels})"
    )


def _epochs(cfg: TrainConfig) -> str:
    if 0 < cfg.early_stopping < cfg.epochs:  # a patience as long as the fit can never end it
        return f"up to {cfg.epochs} epochs (stopping after {cfg.early_stopping} without a better val objective)"
    return f"{cfg.epochs} epochs"


def describe_run(cfg: TrainConfig, data: PreparedData) -> str:
    seeds = f", {cfg.ensemble_seeds} seeds averaged" if cfg.ensemble_seeds > 1 else ""
    return (
        f"{describe_network(cfg)} with l2={cfg.l2:g}, lr={cfg.learning_rate:g} ({_rate_note(cfg)}), "
        f"{_epochs(cfg)}{seeds}, "
        f"on {data.name} ({len(data.manifest)} images, digest {data.digest})."
    )


def _rate_note(cfg: TrainConfig) -> str:
    if cfg.scales_pretrained_lr:
        return f"{cfg.lr_schedule}; pretrained layers at {cfg.pretrained_lr_scale:g}x"
    return cfg.lr_schedule


def run_params(cfg: TrainConfig, data: PreparedData, aus: Sequence[str]) -> dict[str, Any]:
    counts = data.manifest["split"].value_counts()
    return {
        **cfg.params(),
        "model": cfg.backbone,
        "data_source": data.source,
        "data_format": data.source_format,
        "data_digest": data.digest,
        "n_train": int(counts.get("train", 0)),
        "n_val": int(counts.get("val", 0)),
        "n_test": int(counts.get("test", 0)),
        "n_aus": len(aus),
        "au_list": ",".join(aus),
    }


def log_data_caveats(data: PreparedData) -> None:
    """Tag a run whose split was accepted with a subject in several splits (allow_subject_overlap).

    The config param says it was allowed; the tag says it happened and to whom, so the runs
    whose scores carry identity leakage can be filtered out (``tags.ckrun.subject_overlap``).
    """
    from ckrun.data.split import overlapping_subjects

    overlap = overlapping_subjects(data.manifest)
    if overlap:
        tracking.set_tags({"ckrun.subject_overlap": ",".join(sorted(overlap))[:5000]})


def log_evaluation_artifacts(evaluations: dict[str, SplitEvaluation], tmp: str | Path) -> None:
    """Confusion matrices (PNG + JSON), per-class and per-AU tables, per-image predictions and their analysis."""
    from ckrun.figures.confusion import plot_confusion

    for split in ("val", "test"):
        ev = evaluations.get(split)
        if ev is None:
            continue
        if ev.n_emotion:
            png = plot_confusion(
                ev.confusion,
                EMOTION_CLASSES,
                Path(tmp) / f"emotion_{split}.png",
                f"Emotion confusion matrix ({split}, n={ev.n_emotion})",
            )
            tracking.log_figure_file(png, "confusion_matrix")
            tracking.log_dict(ev.confusion_json(), f"confusion_matrix/emotion_{split}.json")
            tracking.log_table(ev.per_class.reset_index(names="class"), f"emotion/per_class_{split}.json")
        if len(ev.per_au):
            tracking.log_table(ev.per_au, f"au/per_au_{split}.json")
        log_prediction_analysis(ev, tmp)


def log_calibration(temperatures: Temperatures, aus: Sequence[str]) -> dict[str, float]:
    """``calibration.json`` (every temperature) and the metrics a calibrated run logs."""
    tracking.log_dict(
        {
            "emotion": temperatures.emotion,
            "au_shared": temperatures.shared_au,
            "aus": dict(zip(aus, temperatures.aus, strict=True)),
        },
        "calibration.json",
    )
    return {"temperature_emotion": temperatures.emotion, "temperature_au": temperatures.shared_au}


def log_results(
    result_metrics: dict[str, float],
    diagnosis: Diagnosis,
    history: dict[str, list[float]],
    best_epoch: int,
    evaluations: dict[str, SplitEvaluation],
) -> None:
    """Everything after fitting that the ResNet run and the baseline log alike."""
    from ckrun.figures.curves import plot_learning_curves

    epochs_run = len(history.get("train_loss", [])) or 1
    tracking.log_metrics(result_metrics, step=tracking.final_metric_step(epochs_run))
    tracking.set_tags({"fit_diagnosis": diagnosis.verdict})
    tracking.log_text(diagnosis.markdown(), "diagnosis.md")
    tracking.log_dict({k: v for k, v in result_metrics.items() if np.isfinite(v)}, "metrics.json")
    with tempfile.TemporaryDirectory() as tmp:
        log_evaluation_artifacts(evaluations, tmp)
        if history.get("train_loss"):
            tracking.log_table(
                pd.DataFrame(
                    {"epoch": range(1, epochs_run + 1), **{k: v for k, v in history.items() if len(v) == epochs_run}}
                ),
                "history.csv",
            )
            png = plot_learning_curves(
                history,
                Path(tmp) / "learning_curves.png",
                best_epoch=best_epoch,
                title=f"Learning curves ({diagnosis.verdict})",
            )
            tracking.log_figure_file(png, "plots")


def headline(metrics: dict[str, float], diagnosis: Diagnosis, best_epoch: int | None = None) -> str:
    """The one line a run prints when it ends: the test and val scores that matter, and the fit."""
    parts = []
    for key in ("test_emotion_accuracy", "test_emotion_f1", "test_au_f1", "val_emotion_f1", "val_au_f1"):
        if key in metrics and np.isfinite(metrics[key]):
            parts.append(f"{key} {metrics[key]:.3f}")
    if best_epoch:
        parts.append(f"best_epoch {best_epoch}")
    parts.append(f"fit {diagnosis.verdict} (gap {diagnosis.fit_gap:+.3f})")
    return "  ".join(parts)
