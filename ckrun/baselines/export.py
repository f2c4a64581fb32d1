"""A fitted linear baseline as plain arrays, so a logged model can carry it without a pickle.

Late fusion (`ckrun.fusion`) averages the kept baseline's probabilities into the ResNet's, and
`predict`, `evaluate` and `mlflow models serve` must give the numbers training logged. ckrun's
models load without unpickling anything (models-from-code, Keras safe mode), so the baseline
travels as numbers: every family is standardisation, an optional row-space projection and a
linear map, which compose into one affine map of the raw features per head, followed by the
head's own link (softmax or sigmoid for logistic regression, Platt's sigmoid per decision for
the calibrated SVM, one-vs-one votes turned one-vs-rest as scikit-learn's `SVC` does). The
affine part is read by probing the fitted model (its decisions at the origin and at each unit
vector of its input space), so it holds for whatever solver scikit-learn used; the tests
check the arrays against scikit-learn's own `predict_proba`.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit, softmax

from ckrun.baselines.features import BASELINE_SIZE

LINKS = ("logistic", "platt", "margin")


@dataclass(frozen=True)
class LinearHead:
    """One classifier: decisions = features @ weights + bias, then its link to probabilities.

    `classes` are the class indices the classifier saw in training (scikit-learn's `classes_`);
    `ovo` marks one-vs-one SVM decisions (more than two classes); `platt` holds each
    calibrator's (a, b) for link 'platt'.
    """

    link: str
    classes: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    ovo: bool = False
    platt: np.ndarray | None = None

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(N, len(classes)) probabilities, as the fitted scikit-learn head's `predict_proba`."""
        decision = np.asarray(x, np.float64) @ self.weights + self.bias
        k = len(self.classes)
        if self.ovo:
            decision = _ovr_from_ovo(decision, k)
        if self.link == "logistic" or (self.link == "margin" and not self.ovo):
            if k == 2:
                p = expit(decision[:, 0])
                return np.column_stack([1 - p, p])
            return softmax(decision, axis=1)
        if self.link == "margin":
            return softmax(decision, axis=1)
        assert self.platt is not None
        calibrated = expit(-(self.platt[:, 0] * decision + self.platt[:, 1]))
        if k == 2:
            return np.column_stack([1 - calibrated[:, 0], calibrated[:, 0]])
        total = calibrated.sum(axis=1, keepdims=True)
        out = np.divide(calibrated, total, out=np.full_like(calibrated, 1 / k), where=total != 0)
        out[(out > 1.0) & (out <= 1.0 + 1e-5)] = 1.0
        return out


def _ovr_from_ovo(decision: np.ndarray, k: int) -> np.ndarray:
    """scikit-learn's one-vs-rest view of one-vs-one SVM decisions: votes plus scaled confidences."""
    votes = np.zeros((len(decision), k))
    confidence = np.zeros((len(decision), k))
    pair = 0
    for i in range(k):
        for j in range(i + 1, k):
            d = decision[:, pair]
            confidence[:, i] += d
            confidence[:, j] -= d
            votes[d >= 0, i] += 1
            votes[d < 0, j] += 1
            pair += 1
    return votes + confidence / (3 * (np.abs(confidence) + 1))


def _affine(decide: Any, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    """(weights, bias) of an affine decision function, from its values at 0 and each unit vector."""
    origin = np.atleast_1d(np.asarray(decide(np.zeros((1, n_inputs))), np.float64).reshape(1, -1)[0])
    units = np.asarray(decide(np.eye(n_inputs)), np.float64).reshape(n_inputs, -1)
    return units - origin, origin


def export_head(model: Any, n_inputs: int) -> LinearHead:
    """A `LinearHead` of a fitted family head (`ckrun.baselines.families.fit_classifier`)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression

    from ckrun.baselines.families import MarginSigmoid

    classes = np.asarray(model.classes_, int)
    if isinstance(model, LogisticRegression):
        weights, bias = _affine(model.decision_function, n_inputs)
        return LinearHead("logistic", classes, weights, bias)
    if isinstance(model, CalibratedClassifierCV):
        (calibrated,) = model.calibrated_classifiers_  # ensemble=False: one refit on all rows
        svm, platt = calibrated.estimator, np.array([[c.a_, c.b_] for c in calibrated.calibrators], float)
        link = "platt"
    elif isinstance(model, MarginSigmoid):
        svm, platt, link = model.svm, None, "margin"
    else:
        raise TypeError(f"cannot export a {type(model).__name__} baseline head")
    ovo = len(classes) > 2
    weights, bias = _affine(lambda x: _raw_svm_decision(svm, x), n_inputs)
    return LinearHead(link, classes, weights, bias, ovo, platt)


def _raw_svm_decision(svm: Any, x: np.ndarray) -> np.ndarray:
    """The SVM's decisions before scikit-learn's one-vs-rest transform (affine in `x`)."""
    shape = svm.decision_function_shape
    try:
        svm.decision_function_shape = "ovo"
        return np.asarray(svm.decision_function(x))
    finally:
        svm.decision_function_shape = shape


def compose(head: LinearHead, projection: np.ndarray, offset: np.ndarray) -> LinearHead:
    """`head` fitted on ``features @ projection + offset``, rewritten to read the raw features.

    A 1-D `projection` is a diagonal (standardisation alone).
    """
    weights = projection[:, None] * head.weights if projection.ndim == 1 else projection @ head.weights
    return LinearHead(
        head.link,
        head.classes,
        weights,
        offset @ head.weights + head.bias,
        head.ovo,
        head.platt,
    )


@dataclass(frozen=True)
class LinearBaseline:
    """The kept baseline family's heads on raw features of 48 px grey faces."""

    family: str
    aus: tuple[str, ...]
    n_classes: int
    emotion: LinearHead | None
    au_heads: tuple[LinearHead | None, ...]

    def probabilities(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        """Both heads' probabilities for (N, 48, 48) grey faces; a head fitted on one class gives 0."""
        from ckrun.baselines.families import family

        n = len(faces)
        out = {"emotion": np.zeros((n, self.n_classes)), "aus": np.zeros((n, len(self.aus)))}
        if not n:
            return out
        x = family(self.family).features(faces)
        if self.emotion is not None:
            out["emotion"][:, self.emotion.classes] = self.emotion.probabilities(x)
        for j, head in enumerate(self.au_heads):
            if head is not None:
                probs = head.probabilities(x)
                positive = np.flatnonzero(head.classes == 1)
                if len(positive):
                    out["aus"][:, j] = probs[:, positive[0]]
        return out

    # ----------------------------------------------------------------------------------
    # One .npz file: arrays by name and a JSON description (no pickle either way)

    def save(self, file: Path) -> None:
        arrays: dict[str, Any] = {}
        heads: dict[str, Any] = {}
        for name, head in [("emotion", self.emotion), *((f"au{j}", h) for j, h in enumerate(self.au_heads))]:
            if head is None:
                heads[name] = None
                continue
            heads[name] = {"link": head.link, "ovo": head.ovo, "platt": head.platt is not None}
            arrays |= {f"{name}.classes": head.classes, f"{name}.weights": head.weights, f"{name}.bias": head.bias}
            if head.platt is not None:
                arrays[f"{name}.platt"] = head.platt
        meta = {"family": self.family, "aus": list(self.aus), "n_classes": self.n_classes, "heads": heads}
        buffer = io.BytesIO()
        np.savez_compressed(buffer, meta=np.array(json.dumps(meta)), **arrays)
        Path(file).write_bytes(buffer.getvalue())

    @classmethod
    def load(cls, file: Path) -> LinearBaseline:
        with np.load(file, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))

            def head(name: str) -> LinearHead | None:
                spec = meta["heads"][name]
                if spec is None:
                    return None
                if spec["link"] not in LINKS:
                    raise ValueError(f"{file}: unknown head link {spec['link']!r}")
                return LinearHead(
                    spec["link"],
                    stored[f"{name}.classes"],
                    stored[f"{name}.weights"],
                    stored[f"{name}.bias"],
                    bool(spec["ovo"]),
                    stored[f"{name}.platt"] if spec["platt"] else None,
                )

            aus = tuple(meta["aus"])
            return cls(
                meta["family"],
                aus,
                int(meta["n_classes"]),
                head("emotion"),
                tuple(head(f"au{j}") for j in range(len(aus))),
            )


def baseline_faces(images: np.ndarray, channels: int) -> np.ndarray:
    """(N, 48, 48) grey faces from the ResNet's input: its own face (not a stacked neutral
    reference), in grey, resized by area averaging.

    Deriving the baseline's faces from the ResNet's input (rather than decoding the images
    again at 48 px) keeps one decode per prediction and makes training and `predict` read
    the same pixels by construction.
    """
    import cv2

    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    own = images[..., :channels]
    out = np.empty((len(own), BASELINE_SIZE, BASELINE_SIZE), np.uint8)
    for i, face in enumerate(own):
        grey = cv2.cvtColor(np.ascontiguousarray(face), cv2.COLOR_RGB2GRAY) if channels == 3 else face[..., 0]
        if grey.shape != (BASELINE_SIZE, BASELINE_SIZE):
            grey = cv2.resize(grey, (BASELINE_SIZE, BASELINE_SIZE), interpolation=cv2.INTER_AREA)
        out[i] = grey
    return out
