"""Do the two heads agree? The EMFACS check of predicted emotions against predicted AUs.

FACS describes what the face does; EMFACS (Friesen & Ekman 1983, "EMFACS-7: Emotional
Facial Action Coding System", unpublished manual, University of California San Francisco)
lists which AU combinations express which basic emotion. Lucey et al. 2010 ("The Extended
Cohn-Kanade Dataset (CK+)", CVPR Workshops, Table 2) turned it into the minimal criteria a
CK+ sequence had to meet to keep its emotion label:

- anger: AU23 and AU24 must be present;
- disgust: either AU9 or AU10;
- fear: AU1+2+4 (AU4 may be absent if AU5 is at intensity E);
- happiness: AU12 (the full prototype is AU6+12);
- sadness: either AU1+4+15 or AU11 (exception: AU6+15);
- surprise: either AU1+2 or AU5, AU5 no stronger than B (full prototype 1+2+5B+26/27);
- contempt: AU14, uni- or bilateral.

`PROTOTYPES` holds these as data, with the fuller EMFACS prototype beside each for the
report. ckrun predicts three classes, so a class is supported when any of its CK+ emotions'
criteria holds (negative = anger, contempt, disgust, fear, sadness).

How a criterion is matched, given what the model outputs:
- AU outputs are binary, so intensity conditions are dropped: AU5 at any intensity counts
  for surprise, and fear's "AU5 at E" exception cannot be seen and is not used.
- Only AUs the model predicts can count. An alternative is usable only if every AU in it is
  one of the model's outputs; an alternative naming an AU the model does not predict is
  left out (never shortened, which would make it looser than EMFACS). A class none of whose
  alternatives is usable cannot be checked, and its images are left out of the rate.
- Ground truth is checked on the same AUs (the model's outputs), so the data's own
  consistency and the model's compare like with like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ckrun.data.labels import CK_TO_CLASS, EMOTION_CLASSES, au_code
from ckrun.predictions import Predictions


@dataclass(frozen=True)
class Prototype:
    """One CK+ emotion: minimal criteria (any alternative, all AUs within it) and the full prototype."""

    emotion: str
    criteria: tuple[tuple[int, ...], ...]
    prototype: str
    rule: str


PROTOTYPES: tuple[Prototype, ...] = (
    Prototype("anger", ((23, 24),), "4+5+7+23 (or 24)", "AU23 and AU24"),
    Prototype("contempt", ((14,),), "R12A+R14A", "AU14 (uni- or bilateral)"),
    Prototype("disgust", ((9,), (10,)), "9+15+16 or 10+15+16", "AU9 or AU10"),
    Prototype("fear", ((1, 2, 4),), "1+2+4+5+20+26", "AU1+2+4 (the AU5-at-E exception needs intensities)"),
    Prototype("happy", ((12,),), "6+12", "AU12"),
    Prototype("sadness", ((1, 4, 15), (11,), (6, 15)), "1+4+15", "AU1+4+15, or AU11, or AU6+15"),
    Prototype("surprise", ((1, 2), (5,)), "1+2+5B+26/27", "AU1+2, or AU5 (intensity ignored)"),
)


def class_criteria(aus: Sequence[str]) -> dict[str, list[list[int]]]:
    """Per emotion class, the usable alternatives as column indices into `aus` (may be empty)."""
    column = {au_code(a): j for j, a in enumerate(aus)}
    criteria: dict[str, list[list[int]]] = {c: [] for c in EMOTION_CLASSES}
    for proto in PROTOTYPES:
        for alternative in proto.criteria:
            if all(code in column for code in alternative):
                criteria[CK_TO_CLASS[proto.emotion]].append([column[code] for code in alternative])
    return criteria


def supported_classes(present: np.ndarray, aus: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(n, classes) whether each AU set supports each class, and (classes,) which are checkable."""
    present = np.asarray(present, bool)
    criteria = class_criteria(aus)
    support = np.zeros((len(present), len(EMOTION_CLASSES)), bool)
    for k, name in enumerate(EMOTION_CLASSES):
        for alternative in criteria[name]:
            support[:, k] |= present[:, alternative].all(axis=1)
    return support, np.array([bool(criteria[c]) for c in EMOTION_CLASSES])


@dataclass
class Consistency:
    """How often the AU set supports the emotion: overall, per class, and per row."""

    rate: float
    checked: int
    supported: np.ndarray  # (n,) bool; False also where unchecked
    checked_rows: np.ndarray  # (n,) bool
    support: np.ndarray  # (n, classes)
    ambiguous: float  # share of checked rows whose AUs support more than one class (cheap agreement)


def consistency(emotion: np.ndarray, present: np.ndarray, aus: Sequence[str]) -> Consistency:
    """Share of rows (emotion index >= 0, class checkable) whose AU set supports their emotion.

    An AU set that fires everything supports every class; `ambiguous` says how much of the
    agreement is of that cheap kind.
    """
    emotion = np.asarray(emotion, int)
    support, checkable = supported_classes(present, aus)
    rows = np.arange(len(emotion))
    checked = (emotion >= 0) & checkable[np.clip(emotion, 0, None)] if len(emotion) else np.zeros(0, bool)
    supported = checked & support[rows, np.clip(emotion, 0, None)] if len(emotion) else np.zeros(0, bool)
    rate = float(supported.sum() / checked.sum()) if checked.any() else float("nan")
    ambiguous = float((support[checked].sum(axis=1) > 1).mean()) if checked.any() else float("nan")
    return Consistency(rate, int(checked.sum()), supported, checked, support, ambiguous)


@dataclass
class EmfacsCheck:
    truth: Consistency  # true emotion vs true AUs (fully coded rows only)
    predicted: Consistency  # predicted emotion vs predicted AU decisions
    by_class: pd.DataFrame  # class, rule, images_truth, consistency_truth, images_predicted, consistency_predicted
    contradictions: pd.DataFrame  # the images where the heads disagree


def _au_names(present: np.ndarray, aus: Sequence[str]) -> list[str]:
    return ["+".join(a for a, on in zip(aus, row, strict=True) if on) or "none" for row in present]


def emfacs_check(pred: Predictions) -> EmfacsCheck:
    aus = pred.aus
    fully_coded = (pred.au_targets >= 0).all(axis=1) if aus else np.zeros(len(pred.frame), bool)
    true_emotion = np.where(fully_coded, pred.emotion_targets, -1)
    truth = consistency(true_emotion, pred.au_targets == 1, aus)
    decided = pred.au_decisions.astype(bool)
    predicted = consistency(pred.emotion_predictions, decided, aus)
    rules = {c: "; ".join(p.rule for p in PROTOTYPES if CK_TO_CLASS[p.emotion] == c) for c in EMOTION_CLASSES}
    rows = []
    for k, name in enumerate(EMOTION_CLASSES):
        t_rows = truth.checked_rows & (true_emotion == k)
        p_rows = predicted.checked_rows & (pred.emotion_predictions == k)
        rows.append(
            {
                "class": name,
                "rule": rules[name],
                "images_truth": int(t_rows.sum()),
                "consistency_truth": float(truth.supported[t_rows].mean()) if t_rows.any() else float("nan"),
                "images_predicted": int(p_rows.sum()),
                "consistency_predicted": float(predicted.supported[p_rows].mean()) if p_rows.any() else float("nan"),
            }
        )
    bad = predicted.checked_rows & ~predicted.supported
    frame = pred.frame
    supports = [
        ", ".join(c for c, on in zip(EMOTION_CLASSES, row, strict=True) if on) or "none"
        for row in predicted.support[bad]
    ]
    emotion_prob = pred.emotion_probs[bad, pred.emotion_predictions[bad]] if bad.any() else np.zeros(0)
    contradictions = pd.DataFrame(
        {
            "path": frame["path"].to_numpy()[bad],
            "subject": frame["subject"].to_numpy()[bad],
            "emotion": [EMOTION_CLASSES[i] for i in pred.emotion_predictions[bad]],
            "emotion_prob": emotion_prob,
            "predicted_aus": _au_names(decided[bad], aus),
            "aus_support": supports,
            "emotion_true": frame["emotion_true"].to_numpy()[bad],
            "true_aus": _au_names(pred.au_targets[bad] == 1, aus),
        }
    )
    return EmfacsCheck(truth, predicted, pd.DataFrame(rows), contradictions)
