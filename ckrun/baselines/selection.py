"""Choosing a baseline on validation: C per head within a family, then the family for `best`.

The emotion head and the AU head are separate linear models, and the validation objective
(`names.objective`) is the mean of their scores, so choosing each head's C by its own part of
the objective (emotion macro-F1; AU macro-F1 with the ResNet's val-tuned thresholds) is the
pair of Cs with the best objective. All AUs share one C: a rare AU has only a handful of
positive frames in a ~200-image validation split, and choosing a C for each of ~19 AUs on them
(on top of thresholds tuned on the same rows) would fit validation noise; one shared C is one
decision over every AU's rows.
Ties go to the smaller C (stronger regularisation). Test rows are predicted only once the
choice is made, so they cannot influence it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from joblib import cpu_count
from sklearn.preprocessing import StandardScaler

from ckrun import names
from ckrun.arrays import SplitArrays
from ckrun.baselines import C_GRID
from ckrun.baselines.export import LinearBaseline, LinearHead, compose, export_head
from ckrun.baselines.families import (
    Family,
    class_probabilities,
    family,
    fit_classifier,
    quiet_single_blas,
    row_space,
)
from ckrun.config import TrainConfig
from ckrun.data.labels import EMOTION_CLASSES
from ckrun.metrics import SplitEvaluation, emotion_targets
from ckrun.scoring import score_splits

Probs = dict[str, dict[str, np.ndarray]]


@dataclass
class FamilyFit:
    """One family with its Cs chosen: probabilities of every split and the grid it searched."""

    family: str
    c_emotion: float | None
    c_au: float | None
    probs: Probs
    objective: float
    val_metrics: dict[str, float]
    candidates: pd.DataFrame  # one row per C: the val scores had that C been used for both heads
    seconds: float
    evaluations: dict[str, SplitEvaluation]
    model: LinearBaseline  # the chosen heads as plain arrays (what a fused ResNet model carries)


@dataclass
class Selection:
    """Every family fitted, and the one kept (the best validation objective)."""

    kept: FamilyFit
    fits: list[FamilyFit]
    seconds: float  # wall time of all the fits (families run side by side)

    def families_table(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "family": f.family,
                    "C_emotion": f.c_emotion,
                    "C_au": f.c_au,
                    "val_emotion_accuracy": f.val_metrics.get("val_emotion_accuracy"),
                    "val_emotion_f1": f.val_metrics.get("val_emotion_f1"),
                    "val_au_f1": f.val_metrics.get("val_au_f1"),
                    "val_objective": f.objective,
                    "seconds": round(f.seconds, 2),
                    "kept": f is self.kept,
                }
                for f in self.fits
            ]
        )

    def candidates_table(self) -> pd.DataFrame:
        return pd.concat([f.candidates for f in self.fits], ignore_index=True)


def check_grid(grid: Sequence[float]) -> tuple[float, ...]:
    values = tuple(sorted(float(c) for c in grid))
    if not values or not all(np.isfinite(c) and c > 0 for c in values):
        raise ValueError(f"the C grid needs positive finite values, got {list(grid)}")
    return values


def objective_kind(cfg: TrainConfig, aus: Sequence[str]) -> str:
    return cfg.objective if aus else "emotion"


def _pick(grid: Sequence[float], scores: Sequence[float]) -> int:
    """Index of the best finite score, the smallest C on ties; the grid's middle if none is finite."""
    finite = [(s, -i) for i, s in enumerate(scores) if s is not None and np.isfinite(s)]
    return -max(finite)[1] if finite else len(grid) // 2


def _val_only(arrays: dict[str, SplitArrays]) -> dict[str, SplitArrays]:
    def empty(a: SplitArrays) -> SplitArrays:
        return SplitArrays(a.images[:0], {k: v[:0] for k, v in a.labels.items()})

    return {s: arrays[s] if s == "val" else empty(arrays[s]) for s in names.SPLITS}


def fit_family(
    fam: Family | str,
    arrays: dict[str, SplitArrays],
    aus: Sequence[str],
    cfg: TrainConfig,
    *,
    groups: np.ndarray | None = None,
    grid: Sequence[float] = C_GRID,
) -> FamilyFit:
    """Fit `fam` at every C of `grid` on train, keep each head's best C on val, predict every split."""
    with quiet_single_blas():
        return _fit_family(family(fam) if isinstance(fam, str) else fam, arrays, aus, cfg, groups, grid)


class _Stopped(Exception):
    """A family's fit ended early because `select_family` is being interrupted."""


@dataclass
class _Heads:
    """The models of one C: the emotion classifier and one per AU (None where a head has one class)."""

    emotion: Any
    aus: list[Any]

    def predict(self, x: np.ndarray, n_aus: int) -> dict[str, np.ndarray]:
        n = len(x)
        out = {"emotion": np.zeros((n, len(EMOTION_CLASSES))), "aus": np.zeros((n, n_aus))}
        if n and self.emotion is not None:
            out["emotion"] = class_probabilities(self.emotion, x, len(EMOTION_CLASSES))
        for j, head in enumerate(self.aus):
            if n and head is not None:
                out["aus"][:, j] = class_probabilities(head, x, 2)[:, 1]
        return out


def _fit_heads(
    fam: Family,
    x: np.ndarray,
    labels: dict[str, np.ndarray],
    c: float,
    cfg: TrainConfig,
    groups: np.ndarray | None,
    warm: _Heads | None,
    stop: threading.Event | None = None,
) -> _Heads:
    """Every head at one C, on the training rows whose label is known; `stop` set ends it early."""

    def fit(rows: np.ndarray, y: np.ndarray, balanced: bool, previous: Any) -> Any:
        if stop is not None and stop.is_set():
            raise _Stopped
        if len(np.unique(y[rows])) < 2:
            return None
        part = None if groups is None else groups[rows]
        return fit_classifier(fam, x[rows], y[rows], c, seed=cfg.seed, balanced=balanced, groups=part, warm=previous)

    emotion = emotion_targets(labels["emotion"])
    aus = labels["aus"]
    return _Heads(
        fit(emotion >= 0, emotion, cfg.class_weights, warm and warm.emotion),
        [fit(aus[:, j] >= 0, aus[:, j].astype(int), True, warm and warm.aus[j]) for j in range(aus.shape[1])],
    )


def _features(fam: Family, arrays: dict[str, SplitArrays]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Standardised on train, then in the training rows' span (`row_space`) when that is smaller.

    Also the affine map from raw features to these (projection, offset), which `export`
    folds into each head so the kept model reads raw features.
    """
    scaler = StandardScaler().fit(fam.features(arrays["train"].images))
    x = {s: scaler.transform(fam.features(a.images)) if len(a.images) else np.zeros((0, 1)) for s, a in arrays.items()}
    scale = np.asarray(scaler.scale_, np.float64)
    mean = np.asarray(scaler.mean_, np.float64)
    basis = row_space(x["train"])
    if basis is None:
        return x, 1 / scale, -mean / scale  # a diagonal projection, as a vector
    projected = {s: v @ basis if len(v) else np.zeros((0, basis.shape[1])) for s, v in x.items()}
    return projected, basis / scale[:, None], (-mean / scale) @ basis


def _export(
    fam: Family, heads: _Heads, aus: Sequence[str], projection: np.ndarray, offset: np.ndarray
) -> LinearBaseline:
    n_inputs = len(projection) if projection.ndim == 1 else projection.shape[1]

    def one(model: Any) -> LinearHead | None:
        return None if model is None else compose(export_head(model, n_inputs), projection, offset)

    return LinearBaseline(
        fam.name, tuple(aus), len(EMOTION_CLASSES), one(heads.emotion), tuple(one(h) for h in heads.aus)
    )


def _fit_family(
    fam: Family,
    arrays: dict[str, SplitArrays],
    aus: Sequence[str],
    cfg: TrainConfig,
    groups: np.ndarray | None,
    grid: Sequence[float],
    stop: threading.Event | None = None,
) -> FamilyFit:
    grid = check_grid(grid)
    start = time.perf_counter()
    x, projection, offset = _features(fam, arrays)
    labels = {**arrays["train"].labels, "aus": arrays["train"].labels["aus"][:, : len(aus)]}
    kind = objective_kind(cfg, aus)
    val_only = _val_only(arrays)
    models: list[_Heads] = []
    rows = []
    for c in grid:
        heads = _fit_heads(fam, x["train"], labels, c, cfg, groups, models[-1] if models else None, stop)
        models.append(heads)
        probs = {s: heads.predict(x[s][:0], len(aus)) for s in names.SPLITS} | {
            "val": heads.predict(x["val"], len(aus))
        }
        val = score_splits(probs, val_only, aus, cfg)[0]["val"].metrics
        rows.append(
            {
                "family": fam.name,
                "C": c,
                "val_emotion_accuracy": val.get("val_emotion_accuracy"),
                "val_emotion_f1": val.get("val_emotion_f1"),
                "val_au_f1": val.get("val_au_f1"),
                "val_objective": names.objective(val, "val", kind),
            }
        )
    candidates = pd.DataFrame(rows)
    e = _pick(grid, list(candidates["val_emotion_f1"]))
    a = _pick(grid, list(candidates["val_au_f1"])) if aus else e
    fit_emotion = models[e].emotion is not None
    fit_au = any(h is not None for h in models[a].aus)
    candidates["emotion_chosen"] = [i == e and fit_emotion for i in range(len(grid))]
    candidates["au_chosen"] = [i == a and fit_au for i in range(len(grid))]
    chosen = _Heads(models[e].emotion, models[a].aus)  # test rows are predicted from here on
    probs = {s: chosen.predict(x[s], len(aus)) for s in names.SPLITS}
    evaluations, _ = score_splits(probs, arrays, aus, cfg)
    val_metrics = evaluations["val"].metrics
    return FamilyFit(
        fam.name,
        grid[e] if fit_emotion else None,
        grid[a] if fit_au else None,
        probs,
        names.objective(val_metrics, "val", kind),
        val_metrics,
        candidates,
        time.perf_counter() - start,
        evaluations,
        _export(fam, chosen, aus, projection, offset),
    )


def select_family(
    requested: str,
    arrays: dict[str, SplitArrays],
    aus: Sequence[str],
    cfg: TrainConfig,
    *,
    groups: np.ndarray | None = None,
    grid: Sequence[float] = C_GRID,
    families: Sequence[str] | None = None,
) -> Selection:
    """`requested` alone, or for 'best' every family (or `families`), keeping the best val objective.

    Ties keep the earlier family of the list: the simpler model when scores cannot tell.
    Families are fitted side by side, one thread per core: libsvm and OpenCV release the GIL
    (so does most of numpy's work for the logistic solver), and each family's fits are
    independent and seeded, so the choice is the same as one after the other, in a little
    over half the wall time on 2 cores.
    """
    from ckrun.baselines.families import FAMILIES

    wanted = [family(name) for name in (list(families or FAMILIES) if requested == "best" else [requested])]
    start = time.perf_counter()
    # An interrupt (Ctrl-C, SIGTERM) reaches the waiting thread at once; the `stop` flag ends
    # the fits still running within one head, so the run is ended KILLED in a moment, not
    # after every family has finished (a container's grace period before SIGKILL is ~10 s).
    stop = threading.Event()
    # joblib (scikit-learn's own dependency) counts the cores a container may use: affinity and
    # CPU quotas, where os.cpu_count() sees the host's.
    with quiet_single_blas(), ThreadPoolExecutor(max_workers=min(len(wanted), cpu_count())) as pool:
        futures = [pool.submit(_fit_family, fam, arrays, aus, cfg, groups, grid, stop) for fam in wanted]
        try:
            fits = [future.result() for future in futures]
        except BaseException:
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    scores = [f.objective if np.isfinite(f.objective) else -np.inf for f in fits]
    kept = fits[int(np.argmax(scores))]
    return Selection(kept, fits, time.perf_counter() - start)
