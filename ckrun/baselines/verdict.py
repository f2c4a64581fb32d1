"""Does a deep run beat the baseline? Head by head, on held-out test subjects.

A ResNet that does not clear a tuned linear model on a head has not earned its complexity
there, however good its own numbers look; researchers check exactly that first. "Beats"
means strictly higher on the test split: emotion accuracy and macro-F1 for the emotion head,
AU macro-F1 for the AU head. A tie does not beat. Heads either side lacks are not judged.
Pure code on metric mappings, so the report, `ckrun run`'s summary and tests share it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ckrun.baselines import family_label

HEADS: tuple[tuple[str, str], ...] = (
    ("test_emotion_accuracy", "emotion accuracy"),
    ("test_emotion_f1", "emotion macro-F1"),
    ("test_au_f1", "AU macro-F1"),
)


def _value(metrics: Mapping[str, Any], key: str) -> float:
    try:
        value = float(metrics.get(key))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return value


@dataclass(frozen=True)
class HeadComparison:
    metric: str
    label: str
    deep: float
    baseline: float

    @property
    def beats(self) -> bool:
        return self.deep > self.baseline

    def words(self) -> str:
        return f"{self.label}: {self.deep:.3f} vs {self.baseline:.3f}"


@dataclass(frozen=True)
class Verdict:
    """A deep run against one baseline; `judged` is False when no head has both test scores."""

    heads: tuple[HeadComparison, ...]

    @property
    def judged(self) -> bool:
        return bool(self.heads)

    @property
    def beats(self) -> bool:
        return self.judged and all(h.beats for h in self.heads)

    @property
    def losses(self) -> tuple[HeadComparison, ...]:
        return tuple(h for h in self.heads if not h.beats)

    def sentence(self, run: str, baseline: str) -> str:
        """'the default run does not beat the HOG-SVM baseline on AU macro-F1: 0.610 vs 0.630.'"""
        if not self.judged:
            return f"{run} cannot be compared with the {baseline} baseline: no test scores on a shared head."
        if self.beats:
            return f"{run} beats the {baseline} baseline on every head ({'; '.join(h.words() for h in self.heads)})."
        return f"{run} does not beat the {baseline} baseline on {'; '.join(h.words() for h in self.losses)}."

    def cell(self) -> str:
        """A table cell: 'beats', or 'no: AU F1 0.610 ≤ 0.630', or '–' when not judged."""
        if not self.judged:
            return "–"
        if self.beats:
            return "beats"
        short = {"emotion accuracy": "emotion acc", "emotion macro-F1": "emotion F1", "AU macro-F1": "AU F1"}
        return "**no**: " + ", ".join(f"{short[h.label]} {h.deep:.3f} ≤ {h.baseline:.3f}" for h in self.losses)


def compare(deep: Mapping[str, Any], baseline: Mapping[str, Any]) -> Verdict:
    heads = []
    for key, label in HEADS:
        d, b = _value(deep, key), _value(baseline, key)
        if not (math.isnan(d) or math.isnan(b)):
            heads.append(HeadComparison(key, label, d, b))
    return Verdict(tuple(heads))


def baseline_name(params_or_row: Mapping[str, Any]) -> str:
    """'HOG-SVM' from a run's `baseline_model` (param or report column)."""
    return family_label(params_or_row.get("baseline_model"))
