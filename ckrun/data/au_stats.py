"""Action-unit statistics of a manifest: frequency, co-occurrence, and which AUs mark which class.

AU values are 1 (present), 0 (absent) or NaN (not coded); every rate is over the images
whose AU is known, so partly coded sets are not diluted by their unknowns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import pandas as pd

from ckrun.data.labels import EMOTION_CLASSES, au_label

# AUs with fewer positives are left out of the strongest-pair lists (chance correlations).
MIN_PAIR_POSITIVES = 3


class StrongestPairs(NamedTuple):
    """Most positively and most negatively correlated AU pairs, strongest first.

    Each frame has columns ``au_a, au_b, label_a, label_b, r``.
    """

    positive: pd.DataFrame
    negative: pd.DataFrame


def au_frequency(aus: pd.DataFrame) -> pd.DataFrame:
    """Per AU: positives, negatives, unknown, and the positive rate among known rows."""
    positives = (aus == 1).sum()
    negatives = (aus == 0).sum()
    known = aus.notna().sum()
    rate = positives / known.where(known > 0)
    frame = pd.DataFrame(
        {
            "label": [au_label(c) for c in aus.columns],
            "positives": positives.astype(int),
            "negatives": negatives.astype(int),
            "unknown": (len(aus) - known).astype(int),
            "rate": rate.astype(float),
        },
        index=pd.Index(aus.columns, name="au"),
    )
    return frame


def au_correlation(aus: pd.DataFrame) -> pd.DataFrame:
    """Pearson (phi on 0/1) between AUs over rows where both are known.

    Constant AUs (never or always present) have no defined correlation and stay NaN.
    """
    return aus.astype(float).corr(method="pearson", min_periods=2)


def strongest_pairs(
    corr: pd.DataFrame,
    positives: Mapping[str, int] | pd.Series | None = None,
    *,
    n: int = 5,
    min_positives: int = MIN_PAIR_POSITIVES,
) -> StrongestPairs:
    """Top `n` positive and negative AU pairs of `corr`, skipping rare AUs.

    An AU seen only once or twice correlates perfectly with whatever co-occurred by
    chance; `min_positives` (needs `positives`, counts per AU) keeps those out.
    """
    cols = list(corr.columns)
    if positives is not None:
        cols = [c for c in cols if int(positives.get(c, 0)) >= min_positives]
    rows = []
    for i, a in enumerate(cols):
        for b in cols[i + 1 :]:
            r = corr.at[a, b]
            if pd.notna(r):
                rows.append((a, b, au_label(a), au_label(b), float(r)))
    pairs = pd.DataFrame(rows, columns=["au_a", "au_b", "label_a", "label_b", "r"])
    pos = pairs[pairs["r"] > 0].sort_values("r", ascending=False, kind="stable")
    neg = pairs[pairs["r"] < 0].sort_values("r", ascending=True, kind="stable")
    return StrongestPairs(pos.head(n).reset_index(drop=True), neg.head(n).reset_index(drop=True))


def emotion_au_rates(aus: pd.DataFrame, emotions: pd.Series) -> pd.DataFrame | None:
    """Positive rate of each AU within each class (rows: classes, plus an ``images`` column).

    Rates are over images whose AU is known, so AU-unknown rows do not dilute them.
    """
    mask = emotions.notna() & aus.notna().any(axis=1)
    if not mask.any():
        return None
    rates = aus[mask].groupby(emotions[mask].astype(str)).mean()
    rates.insert(0, "images", aus[mask].groupby(emotions[mask].astype(str)).size())
    order = [c for c in EMOTION_CLASSES if c in rates.index]
    order += sorted(c for c in rates.index if c not in order)
    rates = rates.loc[order]
    rates.index.name = "emotion"
    return rates
