"""The baseline families: which features, which linear model, and how it yields probabilities.

Every family standardises its features on the training split and fits one classifier for
the emotion (multinomial, or one-vs-rest for the SVM) and one per AU (class-balanced, since
most AUs are rare). The ResNet's rules need probabilities (AU thresholds are tuned on them,
0.5 is the fallback), so the SVM's margins are Platt-scaled by `CalibratedClassifierCV` on
subject-grouped folds of the training split: validation and test never calibrate anything,
and frames of one subject never sit on both sides of a calibration fold (they are near
duplicates, which would make the SVM look surer than it is on new faces).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit, softmax
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.svm import SVC

from ckrun.baselines import FAMILY_LABELS
from ckrun.baselines.features import hog_features, lbp_features, pixel_features

CALIBRATION_FOLDS = 3


@dataclass(frozen=True)
class Family:
    """A feature extractor and a linear model; `loss` is 'logistic' or 'hinge' (linear SVM)."""

    name: str
    features: Callable[[np.ndarray], np.ndarray]
    loss: str
    what: str  # the features, in prose

    @property
    def label(self) -> str:
        return FAMILY_LABELS[self.name]

    @property
    def description(self) -> str:
        model = "logistic regression" if self.loss == "logistic" else "linear SVM (Platt-scaled on train folds)"
        return f"{model} on standardised {self.what}"


FAMILIES: dict[str, Family] = {
    "logreg": Family("logreg", pixel_features, "logistic", "raw pixels"),
    "svm": Family("svm", pixel_features, "hinge", "raw pixels"),
    "hog-svm": Family("hog-svm", hog_features, "hinge", "HOG descriptors"),
    "lbp-svm": Family("lbp-svm", lbp_features, "hinge", "uniform-LBP histograms"),
}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"unknown baseline family {name!r} (expected one of: {', '.join(FAMILIES)})")
    return FAMILIES[name]


def calibration_folds(
    y: np.ndarray, groups: np.ndarray | None, seed: int, n_splits: int = CALIBRATION_FOLDS
) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """A partition of the training rows for Platt scaling, subject-exclusive when it can be.

    Every fold's fitting part must hold every class, else the SVM cannot be fitted on it:
    subject-grouped stratified folds first, plain stratified folds when the subjects are too
    few, and None when a class has fewer than two rows (no honest calibration exists then).
    """
    counts = np.unique(y, return_counts=True)[1]
    if len(counts) < 2 or counts.min() < 2:
        return None
    classes = len(counts)
    attempts: list[Any] = []
    if groups is not None and len(np.unique(groups)) >= 2:
        splits = min(n_splits, len(np.unique(groups)))
        attempts.append((StratifiedGroupKFold(splits, shuffle=True, random_state=seed), groups))
    attempts.append((StratifiedKFold(min(n_splits, int(counts.min())), shuffle=True, random_state=seed), None))
    for splitter, group_arg in attempts:
        folds = list(splitter.split(np.zeros(len(y)), y, group_arg))
        if all(len(np.unique(y[fit])) == classes and len(held) for fit, held in folds):
            return folds
    return None


class MarginSigmoid:
    """Fallback when no calibration fold exists: the SVM's margin through a logistic (softmax).

    Only used for a head whose rarest class has a single training row; its threshold then
    stays at 0.5 on the margin's sign, which is what the SVM itself would predict.
    """

    def __init__(self, svm: SVC) -> None:
        self.svm = svm
        self.classes_ = svm.classes_

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        margin = self.svm.decision_function(x)
        if margin.ndim == 1:
            p = expit(margin)
            return np.column_stack([1 - p, p])
        return softmax(margin, axis=1)


def fit_classifier(
    fam: Family,
    x: np.ndarray,
    y: np.ndarray,
    c: float,
    *,
    seed: int,
    balanced: bool,
    groups: np.ndarray | None = None,
    warm: Any = None,
) -> Any:
    """One fitted head of `fam` at regularisation `c`, with `predict_proba` and `classes_`.

    `warm`, the same head fitted at the previous (smaller) C of a grid, starts the logistic
    solver from its weights: the path along the grid then costs a fraction of cold fits.
    Callers silence the solvers' convergence warnings (`quiet_single_blas`): warning filters
    are process-wide, so a head fitted on a worker thread must not toggle them.
    """
    class_weight = "balanced" if balanced else None
    if fam.loss == "logistic":
        if isinstance(warm, LogisticRegression):
            return copy.deepcopy(warm).set_params(C=c, warm_start=True).fit(x, y)
        return LogisticRegression(C=c, class_weight=class_weight, max_iter=1000, random_state=seed).fit(x, y)
    # libsvm's SMO on the few hundred row-space coordinates converges in milliseconds at
    # every C, where liblinear's coordinate descent (LinearSVC) needs thousands of passes
    # near C = 1; both fit the same kind of model, a hinge-loss linear SVM.
    svm = SVC(C=c, kernel="linear", class_weight=class_weight, random_state=seed)
    folds = calibration_folds(y, groups, seed)
    if folds is None:
        return MarginSigmoid(svm.fit(x, y))
    return CalibratedClassifierCV(svm, method="sigmoid", cv=folds, ensemble=False).fit(x, y)


@contextmanager
def quiet_single_blas() -> Iterator[None]:
    """One BLAS thread and no solver convergence warnings, for fitting heads.

    BLAS runs single-threaded: the problems are a few hundred rows wide, where threads only
    spin against each other (measured: 4-5x less CPU for the same fits on 2 cores). A
    convergence warning at the weak end of the C grid says nothing the val scores do not.
    Both settings are process-wide, so the thread that starts the fits sets them once.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def row_space(x_train: np.ndarray) -> np.ndarray | None:
    """Orthonormal basis (features x rank) of the training rows, or None when it saves nothing.

    An L2-regularised linear model's weights lie in the span of its training rows (the
    representer theorem), so fitting on the coordinates `x @ basis` gives exactly the same
    predictions on every split with rank <= n_train columns instead of 2,304 pixels: a few
    times faster and better conditioned when faces are fewer than features, as in CK+.
    """
    n, d = x_train.shape
    if n >= d:
        return None
    _, s, vt = np.linalg.svd(x_train, full_matrices=False)
    keep = s > s[0] * 1e-10 if len(s) else np.zeros(0, bool)
    return np.ascontiguousarray(vt[keep].T)


def class_probabilities(model: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, n_classes) probabilities; classes absent from training get 0."""
    out = np.zeros((len(x), n_classes))
    if len(x):
        out[:, np.asarray(model.classes_, int)] = model.predict_proba(x)
    return out
