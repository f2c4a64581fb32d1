"""The floor under every deep result, as one MLflow run: tuned linear models on 48 px faces.

Same crop, same split, same AU selection, same thresholds rule and the same metric names as
`ckrun train`, logged as a `baseline` run, so the compare view and reports always show what
a properly tuned linear model gets next to the ResNet. The families, the C grid and the
choice on validation live in `ckrun.baselines`; this module fits, scores and logs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ckrun import tracking
from ckrun.arrays import build_arrays, select_aus
from ckrun.baselines import C_GRID, DEFAULT_MODEL, MODEL_CHOICES, family_label, objective_metric
from ckrun.baselines.families import FAMILIES
from ckrun.baselines.features import BASELINE_SIZE
from ckrun.baselines.selection import FamilyFit, Selection, check_grid, select_family
from ckrun.config import TrainConfig
from ckrun.console import echo, warn
from ckrun.data.loader import PreparedData
from ckrun.errors import ConfigError
from ckrun.metrics import Diagnosis, diagnose_fit
from ckrun.run_logging import headline, log_results, run_params
from ckrun.scoring import summary_metrics

if TYPE_CHECKING:
    from ckrun.data.pipeline import FaceCache

# The training-recipe params a baseline shares with `ckrun train` (the rest are ResNet-only).
SHARED_PARAMS = (
    "crop",
    "crop_margin",
    "seed",
    "min_au_count",
    "aus",
    "class_weights",
    "objective",
    "threshold_min_positives",
    "threshold_shrinkage",
    "data_source",
    "data_format",
    "data_digest",
    "n_train",
    "n_val",
    "n_test",
    "n_aus",
    "au_list",
)


@dataclass
class BaselineResult:
    run_id: str
    metrics: dict[str, float]
    diagnosis: Diagnosis
    model: str  # the family kept: logreg | svm | hog-svm | lbp-svm
    c_emotion: float | None
    c_au: float | None
    families: pd.DataFrame  # one row per family fitted, `kept` marks the chosen one
    candidates: pd.DataFrame  # one row per family and C


def check_model(model: str) -> str:
    if model not in MODEL_CHOICES:
        raise ConfigError(f"--model: unknown baseline {model!r} (expected one of: {', '.join(MODEL_CHOICES)})")
    return model


def check_c_grid(c_grid: Sequence[float]) -> tuple[float, ...]:
    """The C grid, sorted and checked, or a one-line config error naming it."""
    try:
        return check_grid(c_grid)
    except ValueError as exc:
        raise ConfigError(f"c_grid: {exc}") from None


def _c_text(c: float | None) -> str:
    return "–" if c is None else f"{c:g}"


def _description(selection: Selection, data: PreparedData) -> str:
    kept = selection.kept
    tried = ", ".join(f.family for f in selection.fits)
    return (
        f"{family_label(kept.family)} baseline: {FAMILIES[kept.family].description} of "
        f"{BASELINE_SIZE}x{BASELINE_SIZE} grey faces, C = {_c_text(kept.c_emotion)} (emotion) and "
        f"{_c_text(kept.c_au)} (AUs) chosen on validation; kept by validation objective among: {tried}. "
        f"A floor for the deep runs on {data.name} (digest {data.digest})."
    )


def run_baseline(
    cfg: TrainConfig,
    data: PreparedData,
    *,
    experiment: str | None = None,
    face_cache: FaceCache | None = None,
    model: str = DEFAULT_MODEL,
    c_grid: Sequence[float] = C_GRID,
    families: Sequence[str] | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> BaselineResult:
    """Fit, choose on val, score and log the baseline; `cfg` supplies crop, seed, AU and threshold rules.

    `model` is a family or 'best' (every family, or `families`, the best validation objective
    kept); `c_grid` the regularisation strengths tried per head. The run is named
    `baseline-<kept family>` unless `run_name` names it (a cross-validation's folds).
    """
    from ckrun.data.pipeline import FaceCache

    check_model(model)
    grid = check_c_grid(c_grid)
    unknown = [f for f in families or () if f not in FAMILIES]
    if unknown or (families is not None and not families):
        raise ConfigError(f"families: expected some of {', '.join(FAMILIES)}, received {list(families or [])}")
    aus = select_aus(data.part("train"), cfg, data.au_columns)
    with tracking.start_run(
        kind="baseline",
        run_name=run_name or f"baseline-{model}",
        experiment=experiment,
        tags=tags,
        description=f"Linear baseline ({model}) on {BASELINE_SIZE} px grey faces of {data.name}; "
        "C chosen on validation.",
    ) as run:
        params = run_params(cfg, data, aus)
        tracking.log_params(
            {k: params[k] for k in SHARED_PARAMS}
            | {
                "image_size": BASELINE_SIZE,
                "channels": 1,
                "baseline_request": model,
                "baseline_C_grid": json.dumps(grid),
            }
        )
        tracking.log_dataset(data.manifest, source=data.source, digest=data.digest, name=data.name)
        # The linear floor reads the face alone: its pixel, HOG and LBP features are of one grey image.
        plain = cfg.updated(reference="none")
        arrays, _ = build_arrays(
            plain, data, aus, face_cache or FaceCache(cfg.cache), image_size=BASELINE_SIZE, channels=1
        )
        groups = data.part("train")["subject"].astype(str).to_numpy()
        selection = select_family(model, arrays, aus, cfg, groups=groups, grid=grid, families=families)
        kept = selection.kept
        evaluations = kept.evaluations
        metrics, kind = summary_metrics(evaluations, arrays, cfg, bool(aus))
        diagnosis = diagnose_fit(
            metrics, metrics, None, objective=kind, overfit_gap=cfg.overfit_gap, underfit_score=cfg.underfit_score
        )
        metrics["fit_gap"] = diagnosis.fit_gap
        metrics["fit_seconds"] = selection.seconds
        for fit in selection.fits:
            if np.isfinite(fit.objective):
                metrics[objective_metric(fit.family)] = fit.objective
        tracking.log_params(
            {
                "model": kept.family,
                "baseline_model": kept.family,
                "baseline_C": _c_text(kept.c_emotion),
                "baseline_C_au": _c_text(kept.c_au),
                "baseline_families": ",".join(f.family for f in selection.fits),
            }
        )
        tracking.set_tags(
            {
                "mlflow.runName": run_name or f"baseline-{kept.family}",
                "mlflow.note.content": _description(selection, data),
            }
        )
        families_table, candidates = selection.families_table(), selection.candidates_table()
        tracking.log_table(families_table, "baseline/families.csv")
        tracking.log_table(candidates, "baseline/candidates.csv")
        log_results(metrics, diagnosis, {}, 0, evaluations)
        echo(_choice_line(selection))
        edge = _edge_note(selection.kept, grid)
        if edge:
            warn(edge)
        echo(f"{run_name or 'baseline-' + kept.family}: " + headline(metrics, diagnosis))
    return BaselineResult(
        run.run_id, metrics, diagnosis, kept.family, kept.c_emotion, kept.c_au, families_table, candidates
    )


def _choice_line(selection: Selection) -> str:
    """'baseline val objective: logreg 0.712 (C 0.01/0.1), ... -> kept hog-svm'."""
    parts = [f"{f.family} {f.objective:.3f} (C {_c_text(f.c_emotion)}/{_c_text(f.c_au)})" for f in selection.fits]
    return f"baseline val objective: {', '.join(parts)} -> kept {selection.kept.family}"


def _edge_note(kept: FamilyFit, grid: Sequence[float]) -> str | None:
    """A warning when a head's C sits at an end of the grid: the optimum may lie beyond it."""
    ends = [
        f"{head} C {c:g}" for head, c in (("emotion", kept.c_emotion), ("AU", kept.c_au)) if c in (grid[0], grid[-1])
    ]
    if not ends or len(grid) < 2:
        return None
    return (
        f"{kept.family}: {' and '.join(ends)} at an end of the C grid; the best value may lie beyond it "
        "(widen it with --c-grid)"
    )
