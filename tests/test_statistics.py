"""The statistics users publish, against independent references on random data.

Each test recomputes a number by another route (scikit-learn, a brute-force loop, the
definition in the cited paper) and checks ckrun agrees, including the edge cases a small
split produces: a class or AU absent, one value per fold, few subjects.
"""

from __future__ import annotations

import statistics
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, f1_score

from ckrun.au_evaluation import evaluate_aus, skew_normalised_f1
from ckrun.calibration import (
    _au_logits,
    _emotion_logits,
    expected_calibration_error,
    fit_temperatures,
    reliability_bins,
)
from ckrun.crossval import aggregate
from ckrun.data.labels import EMOTION_CLASSES
from ckrun.emfacs import supported_classes
from ckrun.metrics import au_scores, emotion_scores
from ckrun.predictions import Predictions, prediction_table, read_predictions
from ckrun.uncertainty import _weighted, group_counts, paired_comparison

AUS = ["AU1", "AU2", "AU4", "AU12"]


def _predictions(seed: int, n_subjects: int, per_subject: int = 4, *, skill: float = 0.3) -> Predictions:
    """Random labels with some masked AUs, and probabilities carrying `skill` signal."""
    rng = np.random.default_rng(seed)
    n = n_subjects * per_subject
    subjects = [f"S{s:03d}" for s in range(n_subjects) for _ in range(per_subject)]
    truth = rng.integers(0, 3, n)
    onehot = np.eye(3, dtype=np.float32)[truth]
    onehot[rng.random(n) < 0.1] = 0  # some images without an emotion label
    emotion = rng.dirichlet(np.ones(3), n)
    emotion[np.arange(n), truth] += skill
    au_true = (rng.random((n, len(AUS))) < 0.4).astype(float)
    au_true[rng.random((n, len(AUS))) < 0.1] = -1
    au_prob = np.clip(skill * (au_true == 1) + rng.random((n, len(AUS))) * (1 - skill), 0, 1)
    rows = pd.DataFrame({"path": [f"/img/{i}.png" for i in range(n)], "subject": subjects, "sequence": "001"})
    labels = {"emotion": onehot, "aus": au_true}
    probs = {"emotion": emotion / emotion.sum(axis=1, keepdims=True), "aus": au_prob}
    return read_predictions(prediction_table(rows, labels, probs, AUS, np.full(len(AUS), 0.5)))


def _rescored(pred: Predictions, rows: np.ndarray) -> dict[str, float]:
    """The headline metrics of the images `rows` (repeats allowed), scored by ckrun.metrics."""
    emo, _, _ = emotion_scores(pred.emotion_targets[rows], pred.emotion_probs[rows])
    au, _ = au_scores(pred.au_targets[rows], pred.au_probs[rows], pred.thresholds, pred.aus)
    return {**emo, "au_f1": au["au_f1"], "au_f1_weighted": au["au_f1_weighted"]}


# --------------------------------------------------------------------------------------
# Emotion and AU averages: which classes and AUs enter


def test_emotion_macro_f1_with_a_class_absent_matches_sklearns_default() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 60)  # the third class never occurs in truth...
    probs = rng.dirichlet(np.ones(3), 60)  # ...but is sometimes predicted
    pred = probs.argmax(axis=1)
    assert (pred == 2).any()
    metrics, _, _ = emotion_scores(truth, probs)
    assert metrics["emotion_f1"] == pytest.approx(f1_score(truth, pred, average="macro"))
    metrics, _, _ = emotion_scores(truth, np.eye(3)[truth] + 0.0)  # never predicted, never true: left out
    assert metrics["emotion_f1"] == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(4))
def test_au_macro_f1_averages_the_aus_with_a_positive_or_a_predicted_positive(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random((40, 5)) < 0.4).astype(float)
    p = rng.random((40, 5))
    y[:, 1] = 0  # no positive but predicted positives: F1 0, counted
    y[:, 3], p[:, 3] = 0, 0.1  # no positive and none predicted: F1 undefined, left out
    pred = (p >= 0.5).astype(int)
    metrics, table = au_scores(y, p, np.full(5, 0.5), [f"AU{i}" for i in (1, 2, 4, 5, 6)])
    entering = [0, 1, 2, 4]
    assert metrics["au_f1"] == pytest.approx(f1_score(y[:, entering], pred[:, entering], average="macro"))
    assert np.isnan(table.loc[3, "f1"]) and table.loc[1, "f1"] == 0
    # Weighted by support, an AU without positives weighs nothing, as in scikit-learn.
    assert metrics["au_f1_weighted"] == pytest.approx(f1_score(y, pred, average="weighted", zero_division=0))


# --------------------------------------------------------------------------------------
# Subject-level bootstrap and the paired test


def test_each_bootstrap_resample_equals_rescoring_the_resampled_images() -> None:
    pred = _predictions(0, n_subjects=9)
    counts = group_counts(pred, pred.subjects)
    rng = np.random.default_rng(5)
    weights = rng.multinomial(len(counts.groups), np.full(len(counts.groups), 1 / len(counts.groups)), size=6)
    weights[0] = 0
    weights[0, 3] = len(counts.groups)  # one subject drawn every time
    values = _weighted(weights.astype(float), counts)
    for b, w in enumerate(weights):
        rows = np.concatenate(
            [np.repeat(np.flatnonzero(pred.subjects == g), k) for g, k in zip(counts.groups, w, strict=True)]
        )
        expected = _rescored(pred, rows)
        for metric, value in expected.items():
            assert values[metric][b] == pytest.approx(value), (b, metric)


def _swap(x: Predictions, y: Predictions, rows: np.ndarray) -> Predictions:
    """`x` with `y`'s probabilities on `rows`."""
    emotion = np.where(rows[:, None], y.emotion_probs, x.emotion_probs)
    aus = np.where(rows[:, None], y.au_probs, x.au_probs)
    return Predictions(x.frame, x.aus, x.emotion_targets, emotion, x.au_targets, aus, x.thresholds)


def _swapped_p(a: Predictions, b: Predictions) -> dict[str, float]:
    """Exact two-sided p by brute force: swap the runs' predictions for every set of subjects and re-score."""
    groups, every = np.unique(a.subjects), np.arange(len(a.frame))
    observed = pd.Series(_rescored(a, every)) - pd.Series(_rescored(b, every))
    extreme = 0 * observed
    for pattern in range(2 ** len(groups)):
        rows = np.isin(a.subjects, groups[[(pattern >> i) & 1 == 1 for i in range(len(groups))]])
        diff = pd.Series(_rescored(_swap(a, b, rows), every)) - pd.Series(_rescored(_swap(b, a, rows), every))
        extreme += diff.abs() >= observed.abs() - 1e-12
    return (extreme / 2 ** len(groups)).to_dict()


def test_exact_paired_p_value_equals_brute_force_swapping() -> None:
    a = _predictions(1, n_subjects=6, skill=0.4)
    rng, n = np.random.default_rng(3), len(a.frame)
    noisy_emotion = 0.5 * a.emotion_probs + 0.5 * rng.dirichlet(np.ones(3), n)
    noisy_aus = 0.5 * a.au_probs + 0.5 * rng.random((n, len(AUS)))
    b = Predictions(a.frame, a.aus, a.emotion_targets, noisy_emotion, a.au_targets, noisy_aus, a.thresholds)
    result = paired_comparison(a, b, samples=50)
    assert result.exact
    table = result.table.set_index("metric")
    expected = _swapped_p(a, b)
    for metric in ("emotion_accuracy", "emotion_f1", "au_f1", "au_f1_weighted"):
        p = table.loc[metric, "p_value"]
        assert p == pytest.approx(expected[metric]), metric
        assert p >= 2 / 2**6  # the observed assignment and its mirror image are always as extreme
    assert len(set(table["p_value"])) > 1  # p-values of different sizes, not all at the floor


@pytest.mark.parametrize("n_subjects", [10, 16])
def test_the_paired_test_enumerates_every_swap_up_to_16_subjects(n_subjects: int) -> None:
    a, b = _predictions(2, n_subjects, per_subject=2, skill=0.5), _predictions(2, n_subjects, per_subject=2, skill=0)
    result = paired_comparison(a, b, samples=20, permutations=100)
    assert result.exact and result.permutations == 2**n_subjects
    # Exact p-values are multiples of 1 / 2^G.
    counts = result.table["p_value"].to_numpy() * 2**n_subjects
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)


def test_a_random_permutation_p_value_is_never_below_one_over_n_plus_one() -> None:
    good = _predictions(3, n_subjects=40, skill=3.0)
    bad = Predictions(good.frame, good.aus, good.emotion_targets, np.roll(good.emotion_probs, 1, axis=1),
                      good.au_targets, 1 - good.au_probs, good.thresholds)  # fmt: skip
    result = paired_comparison(good, bad, samples=20, permutations=500)
    assert not result.exact
    assert (result.table["p_value"] >= 1 / 501 - 1e-12).all()
    assert result.table.set_index("metric").loc["emotion_accuracy", "p_value"] == pytest.approx(1 / 501)


# --------------------------------------------------------------------------------------
# Calibration


def test_reliability_bins_match_a_loop_over_right_closed_bins() -> None:
    rng = np.random.default_rng(4)
    confidence = np.r_[rng.random(300), np.round(np.linspace(0, 1, 11), 1)]  # the edges themselves too
    outcome = (rng.random(len(confidence)) < confidence).astype(float)
    bins = reliability_bins(confidence, outcome, n_bins=10)
    # Guo et al. 2017: bin m holds ((m-1)/M, m/M], 0 goes to the first; decimals compared as written
    # (0.3 is the edge 3/10, whatever its binary float), in exact arithmetic.
    decimal = [Fraction(repr(float(c))) for c in confidence]
    index = np.array([max(0, min(m for m in range(1, 11) if c <= Fraction(m, 10)) - 1) for c in decimal])
    ece = 0.0
    for m in range(10):
        inside = index == m
        assert bins.loc[m, "count"] == inside.sum(), m
        if inside.any():
            assert bins.loc[m, "frequency"] == pytest.approx(outcome[inside].mean())
            assert bins.loc[m, "confidence"] == pytest.approx(confidence[inside].mean())
            ece += inside.sum() / len(confidence) * abs(outcome[inside].mean() - confidence[inside].mean())
    assert expected_calibration_error(bins) == pytest.approx(ece)


def _emotion_nll(t: float, targets: np.ndarray, probs: np.ndarray) -> float:
    z = _emotion_logits(probs) / t
    return float(np.mean(np.logaddexp.reduce(z, axis=1) - z[np.arange(len(targets)), targets]))


def _au_nll(t: float, targets: np.ndarray, probs: np.ndarray) -> float:
    q = 1 / (1 + np.exp(-_au_logits(probs) / t))
    q = np.clip(q, 1e-12, 1 - 1e-12)
    return float(-np.mean(targets * np.log(q) + (1 - targets) * np.log(1 - q)))


def test_fitted_temperatures_minimise_the_validation_nll() -> None:
    rng = np.random.default_rng(6)
    n = 400
    targets = rng.integers(0, 3, n)
    probs = rng.dirichlet(np.full(3, 0.3), n)
    au_targets = (rng.random((n, 2)) < 0.3).astype(float)
    au_probs = np.clip(rng.beta(0.4, 0.4, (n, 2)) * 0.5 + 0.5 * au_targets * rng.random((n, 2)), 0, 1)
    temps = fit_temperatures(targets, probs, au_targets, au_probs, per_au=True, min_positives=10)
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 2001))
    assert _emotion_nll(temps.emotion, targets, probs) <= min(_emotion_nll(t, targets, probs) for t in grid) + 1e-6
    pooled = min(_au_nll(t, au_targets, au_probs) for t in grid)
    assert _au_nll(temps.shared_au, au_targets, au_probs) <= pooled + 1e-6
    for j in range(2):
        best = min(_au_nll(t, au_targets[:, j], au_probs[:, j]) for t in grid)
        assert _au_nll(temps.aus[j], au_targets[:, j], au_probs[:, j]) <= best + 1e-6


def test_a_per_au_temperature_needs_both_classes_else_the_shared_one_is_kept() -> None:
    rng = np.random.default_rng(7)
    n = 300
    au_targets = (rng.random((n, 2)) < 0.5).astype(float)
    au_targets[:, 1] = 1  # every coded entry positive: the NLL only falls towards a bound
    au_probs = np.clip(0.3 * au_targets + 0.7 * rng.random((n, 2)), 0.01, 0.99)
    temps = fit_temperatures(rng.integers(0, 3, n), rng.dirichlet(np.ones(3), n), au_targets, au_probs,
                             per_au=True, min_positives=10)  # fmt: skip
    assert temps.shared_au != 1.0
    assert temps.aus[1] == temps.shared_au


# --------------------------------------------------------------------------------------
# AU evaluation


@pytest.mark.parametrize("decimals", [None, 1])  # 1: many tied scores
def test_average_precision_matches_sklearn_over_coded_entries(decimals: int | None) -> None:
    pred = _predictions(8, n_subjects=20)
    probs = pred.au_probs if decimals is None else np.round(pred.au_probs, decimals)
    targets = pred.au_targets.copy()
    targets[:, 2] = np.where(targets[:, 2] == 1, 0, targets[:, 2])  # no positive: no AP, not averaged
    result = evaluate_aus(targets, probs, AUS, np.full(len(AUS), 0.5))
    expected = []
    for j in range(len(AUS)):
        coded = targets[:, j] >= 0
        if j == 2:
            assert np.isnan(result.table.loc[j, "average_precision"])
            continue
        expected.append(average_precision_score(targets[coded, j], probs[coded, j]))
        assert result.table.loc[j, "average_precision"] == pytest.approx(expected[-1])
    assert result.metrics["au_average_precision_macro"] == pytest.approx(np.mean(expected))


@pytest.mark.parametrize("seed", range(5))
def test_skew_normalised_f1_is_f1_with_negatives_reweighted_to_the_positives(seed: int) -> None:
    """Jeni et al. 2013: F1 as if negatives and positives were equally many, i.e. each negative
    weighted P / N. scikit-learn's weighted F1 is an independent route to the same number."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 300))
    y = (rng.random(n) < rng.uniform(0.05, 0.6)).astype(int)
    y[:2] = [0, 1]
    decided = (rng.random(n) < np.where(y == 1, 0.7, 0.2)).astype(int)
    tp, fp = int((decided & y).sum()), int((decided & (1 - y)).sum())
    fn, tn = int(y.sum()) - tp, int((1 - y).sum()) - fp
    weights = np.where(y == 1, 1.0, y.sum() / (1 - y).sum())
    assert skew_normalised_f1(tp, fp, fn, tn) == pytest.approx(f1_score(y, decided, sample_weight=weights))
    observed_skew = (fp + tn) / (tp + fn)  # at the split's own skew it is the raw F1
    assert skew_normalised_f1(tp, fp, fn, tn, skew=observed_skew) == pytest.approx(f1_score(y, decided))


# --------------------------------------------------------------------------------------
# Cross-validation aggregate


def test_cv_aggregate_is_the_mean_and_sample_sd_over_the_folds_that_define_a_metric() -> None:
    rng = np.random.default_rng(9)
    folds = [{"test_emotion_f1": float(v), "test_au_f1": float(w)} for v, w in rng.random((5, 2))]
    folds[2]["test_au_roc_auc_macro"] = 0.8
    for i, fold in enumerate(folds):
        fold.setdefault("test_au_roc_auc_macro", float("nan") if i != 4 else 0.6)
        fold["test_emotion_f1_ci_low"] = 0.1
    folds[1]["test_au_f1"] = float("nan")
    folds[3]["only_here"] = 1.0
    mean, std = aggregate(folds)
    values = [f["test_emotion_f1"] for f in folds]
    assert mean["test_emotion_f1"] == pytest.approx(statistics.mean(values))
    assert std["test_emotion_f1"] == pytest.approx(statistics.stdev(values))  # n - 1
    defined = [f["test_au_f1"] for i, f in enumerate(folds) if i != 1]
    assert mean["test_au_f1"] == pytest.approx(statistics.mean(defined))
    assert std["test_au_f1"] == pytest.approx(statistics.stdev(defined))
    assert mean["test_au_roc_auc_macro"] == pytest.approx(0.7)
    assert "only_here" not in mean and "test_emotion_f1_ci_low" not in mean
    one = [{"m": 0.5}, {"m": float("nan")}, {"m": float("nan")}]
    mean, std = aggregate(one)
    assert mean["m"] == 0.5 and np.isnan(std["m"])  # one value has no sample SD, not a spread of 0


# --------------------------------------------------------------------------------------
# EMFACS


def _lucey_table_2(aus: set[int]) -> dict[str, bool]:
    """Lucey et al. 2010, Table 2, written out independently of ckrun.emfacs (intensities dropped)."""
    emotions = {
        "anger": {23, 24} <= aus,
        "contempt": 14 in aus,
        "disgust": 9 in aus or 10 in aus,
        "fear": {1, 2, 4} <= aus,
        "happy": 12 in aus,
        "sadness": {1, 4, 15} <= aus or 11 in aus or {6, 15} <= aus,
        "surprise": {1, 2} <= aus or 5 in aus,
    }
    return {
        "negative": any(emotions[e] for e in ("anger", "contempt", "disgust", "fear", "sadness")),
        "positive": emotions["happy"],
        "surprise": emotions["surprise"],
    }


def test_emfacs_support_follows_the_ckplus_criteria_on_random_au_sets() -> None:
    codes = [1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 17, 23, 24, 25]
    aus = [f"AU{c}" for c in codes]
    present = np.random.default_rng(10).random((500, len(codes))) < 0.25
    support, checkable = supported_classes(present, aus)
    assert checkable.all()
    for row, supported in zip(present, support, strict=True):
        expected = _lucey_table_2({c for c, on in zip(codes, row, strict=True) if on})
        assert dict(zip(EMOTION_CLASSES, supported.tolist(), strict=True)) == expected, row
