"""Metrics against scikit-learn, per-AU thresholds, split evaluation keys and the fit diagnosis."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    roc_auc_score,
)

from ckrun import names
from ckrun.data.labels import EMOTION_CLASSES
from ckrun.metrics import (
    RULE_TEXT,
    au_scores,
    binary_roc_auc,
    diagnose_fit,
    emotion_scores,
    emotion_targets,
    evaluate_split,
    majority_accuracy,
    tune_thresholds,
)

AUS = ["AU1", "AU4", "AU12", "AU25"]


def _au_data(seed: int, n: int = 80, k: int = 4, masked: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Targets (0/1, -1 where masked) and probabilities that carry some signal."""
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=(n, k)) < rng.uniform(0.2, 0.6, k)).astype(float)
    p = np.clip(0.35 * y + rng.uniform(0, 0.7, (n, k)), 0, 1)
    if masked:
        y[rng.uniform(size=(n, k)) < masked] = -1
    return y, p


# %% thresholds


def _threshold_case(n_pos: int = 20, n_neg: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """One AU whose F1 is perfect at 0.3 and only there on the grid."""
    pos = np.linspace(0.32, 0.45, n_pos)
    neg = np.linspace(0.05, 0.28, n_neg)  # some negatives at 0.25-0.28 make 0.25 worse
    return np.r_[np.ones(n_pos), np.zeros(n_neg)][:, None], np.r_[pos, neg][:, None]


@pytest.mark.parametrize(("shrinkage", "expected"), [(0.0, 0.3), (0.5, 0.4), (0.25, 0.35), (1.0, 0.5)])
def test_tuned_threshold_is_shrunk_towards_one_half(shrinkage: float, expected: float) -> None:
    y, p = _threshold_case()
    assert f1_score(y[:, 0], p[:, 0] >= 0.3) == 1.0 and f1_score(y[:, 0], p[:, 0] >= 0.25) < 1.0
    tuned = tune_thresholds(y, p, min_positives=10, shrinkage=shrinkage)
    assert tuned.shape == (1,)
    assert tuned[0] == pytest.approx(0.5 + (1 - shrinkage) * (0.3 - 0.5))
    assert tuned[0] == pytest.approx(expected)


def test_too_few_positives_keep_one_half() -> None:
    y, p = _threshold_case(n_pos=9)
    assert tune_thresholds(y, p, min_positives=10, shrinkage=0.0)[0] == 0.5
    assert tune_thresholds(y, p, min_positives=9, shrinkage=0.0)[0] == pytest.approx(0.3)


def test_thresholds_per_au_and_masks() -> None:
    y, p = _threshold_case()  # 50 rows
    # AU 0: the 0.3 case plus 40 masked rows that would pull the optimum down if they counted as positives.
    au0_y, au0_p = np.r_[y[:, 0], -np.ones(40)], np.r_[p[:, 0], np.full(40, 0.2)]
    # AU 1: the same shape with only 5 positives (below min_positives).
    few_y, few_p = _threshold_case(n_pos=5, n_neg=85)
    # AU 2: every labelled entry positive (no threshold to tune).
    all_y, all_p = np.ones(90), np.r_[p[:, 0], np.ones(40)]
    targets = np.column_stack([au0_y, few_y[:, 0], all_y])
    probs = np.column_stack([au0_p, few_p[:, 0], all_p])
    tuned = tune_thresholds(targets, probs, min_positives=10, shrinkage=0.0)
    np.testing.assert_allclose(tuned, [0.3, 0.5, 0.5])
    unmasked = np.where(targets < 0, 1, targets)
    assert tune_thresholds(unmasked, probs, min_positives=10, shrinkage=0.0)[0] < 0.3


def test_full_shrinkage_always_gives_one_half() -> None:
    y, p = _au_data(0, n=200)
    np.testing.assert_array_equal(tune_thresholds(y, p, min_positives=1, shrinkage=1.0), 0.5)
    free = tune_thresholds(y, p, min_positives=1, shrinkage=0.0)
    assert set(np.round(free, 2)) <= set(np.round(np.arange(0.1, 0.91, 0.05), 2))
    assert (free != 0.5).any()


# %% AU scores


@pytest.mark.parametrize("seed", [0, 1])
def test_au_scores_match_sklearn_without_masks(seed: int) -> None:
    y, p = _au_data(seed)
    thresholds = np.array([0.5, 0.4, 0.6, 0.45])
    pred = (p >= thresholds).astype(int)
    metrics, table = au_scores(y, p, thresholds, AUS)
    pr, rc, f1, support = precision_recall_fscore_support(y, pred, zero_division=0)
    np.testing.assert_allclose(table["precision"], pr)
    np.testing.assert_allclose(table["recall"], rc)
    np.testing.assert_allclose(table["f1"], f1)
    np.testing.assert_array_equal(table["support"], support)
    np.testing.assert_allclose(table["roc_auc"], [roc_auc_score(y[:, j], p[:, j]) for j in range(4)])
    np.testing.assert_allclose(table["threshold"], thresholds)
    assert list(table["au"]) == AUS
    assert table.loc[2, "name"] == "AU12 lip corner puller"
    assert metrics["au_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert metrics["au_f1_micro"] == pytest.approx(f1_score(y, pred, average="micro"))
    assert metrics["au_f1_weighted"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert metrics["au_precision_weighted"] == pytest.approx(precision_score(y, pred, average="weighted"))
    assert metrics["au_recall_weighted"] == pytest.approx(recall_score(y, pred, average="weighted"))
    assert metrics["au_subset_accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert metrics["au_roc_auc_macro"] == pytest.approx(roc_auc_score(y, p, average="macro"))


@pytest.mark.parametrize("decimals", [None, 1, 0])
def test_roc_auc_equals_sklearns_with_and_without_ties(decimals: int | None) -> None:
    rng = np.random.default_rng(7)
    for n, rate in ((12, 0.25), (97, 0.1), (400, 0.5)):
        y = (rng.random(n) < rate).astype(int)
        y[:2] = [0, 1]
        p = np.clip(rng.normal(0.4 + 0.2 * y, 0.25), 0, 1)
        p = p if decimals is None else np.round(p, decimals)  # 0 decimals: nearly all tied
        assert binary_roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert binary_roc_auc(np.array([0, 1, 1]), np.array([0.3, 0.3, 0.3])) == 0.5


def test_au_scores_ignore_masked_entries() -> None:
    y, p = _au_data(3, n=120, masked=0.25)
    thresholds = np.full(4, 0.5)
    pred = (p >= 0.5).astype(int)
    metrics, table = au_scores(y, p, thresholds, AUS)
    tp = fp = fn = 0
    for j in range(4):
        known = y[:, j] >= 0
        yj, pj = y[known, j], pred[known, j]
        prf = precision_recall_fscore_support(yj, pj, average="binary", zero_division=0)
        assert table.loc[j, ["precision", "recall", "f1"]].tolist() == pytest.approx(list(prf[:3]))
        assert table.loc[j, "support"] == yj.sum()
        assert table.loc[j, "roc_auc"] == pytest.approx(roc_auc_score(yj, p[known, j]))
        tp += int(((yj == 1) & (pj == 1)).sum())
        fp += int(((yj == 0) & (pj == 1)).sum())
        fn += int(((yj == 1) & (pj == 0)).sum())
    pooled = y >= 0
    assert metrics["au_f1_micro"] == pytest.approx(f1_score(y[pooled], pred[pooled]))
    assert metrics["au_f1_micro"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert metrics["au_f1"] == pytest.approx(table["f1"].mean())
    weights = table["support"] / table["support"].sum()
    assert metrics["au_recall_weighted"] == pytest.approx(float((table["recall"] * weights).sum()))
    fully_known = (y >= 0).all(axis=1)
    assert metrics["au_subset_accuracy"] == pytest.approx((pred[fully_known] == y[fully_known]).all(axis=1).mean())


def test_au_without_positives_or_labels() -> None:
    y = np.array([[1, 0, -1], [0, 0, -1], [1, 0, -1], [0, 0, -1]], float)
    p = np.array([[0.9, 0.1, 0.9], [0.2, 0.2, 0.9], [0.7, 0.3, 0.9], [0.6, 0.1, 0.9]])
    metrics, table = au_scores(y, p, np.full(3, 0.5), ["AU1", "AU2", "AU4"])
    assert table["support"].tolist() == [2, 0, 0]
    assert np.isnan(table.loc[1, "f1"]) and np.isnan(table.loc[2, "f1"])  # nothing to score
    assert np.isnan(table.loc[1, "roc_auc"])
    assert metrics["au_f1"] == pytest.approx(0.8)  # AU1 only: tp 2, fp 1
    assert metrics["au_f1_weighted"] == pytest.approx(0.8)
    assert metrics["au_subset_accuracy"] != metrics["au_subset_accuracy"]  # NaN: no fully labelled row


def test_au_scores_suffix_and_empty() -> None:
    y, p = _au_data(4)
    metrics, _ = au_scores(y, p, np.full(4, 0.5), AUS, suffix="_05")
    assert set(metrics) == {"au_f1_05", "au_f1_micro_05"}
    metrics, table = au_scores(np.zeros((0, 4)), np.zeros((0, 4)), np.full(4, 0.5), AUS)
    assert metrics == {} and table.empty and "roc_auc" in table.columns
    assert au_scores(y[:, :0], p[:, :0], np.zeros(0), [])[0] == {}


# %% emotion


def test_emotion_scores_match_sklearn_and_ignore_unknown_rows() -> None:
    rng = np.random.default_rng(5)
    targets = rng.integers(-1, 3, 90)
    probs = rng.dirichlet(np.ones(3), 90)
    probs[targets >= 0, targets[targets >= 0]] += 0.3  # some signal
    known = targets >= 0
    y, pred = targets[known], probs[known].argmax(axis=1)
    metrics, table, cm = emotion_scores(targets, probs)
    np.testing.assert_array_equal(cm, confusion_matrix(y, pred, labels=[0, 1, 2]))
    assert cm.sum() == known.sum()
    assert metrics["emotion_accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert metrics["emotion_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert list(table.index) == list(EMOTION_CLASSES)
    np.testing.assert_array_equal(table["support"], np.bincount(y, minlength=3))
    np.testing.assert_allclose(table["f1"], f1_score(y, pred, average=None, labels=[0, 1, 2]))


def test_confusion_counts_on_a_small_case() -> None:
    targets = np.array([0, 0, 1, 2, -1, 2])
    probs = np.eye(3)[[0, 1, 1, 0, 2, 2]]
    metrics, _, cm = emotion_scores(targets, probs)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [1, 0, 1]])
    assert metrics["emotion_accuracy"] == pytest.approx(3 / 5)
    # A class neither present nor predicted does not drag the macro F1 down.
    metrics, _, _ = emotion_scores(np.array([0, 0, 1]), np.eye(3)[[0, 0, 1]])
    assert metrics["emotion_f1"] == 1.0


def test_emotion_scores_without_labels() -> None:
    metrics, table, cm = emotion_scores(np.full(4, -1), np.full((4, 3), 1 / 3))
    assert metrics == {}
    assert cm.shape == (3, 3) and cm.sum() == 0
    assert list(table.index) == list(EMOTION_CLASSES)


def test_emotion_targets_from_one_hot() -> None:
    onehot = np.array([[0, 1, 0], [0, 0, 0], [0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(emotion_targets(onehot), [1, -1, 2, 0])


def test_majority_accuracy() -> None:
    train = np.array([0, 0, 0, 1, 2, -1, -1, -1, -1, -1])  # unknown rows are not a class
    assert majority_accuracy(train, np.array([0, 1, 1, -1])) == pytest.approx(1 / 3)
    assert majority_accuracy(np.array([2, 2, 1]), np.array([2, 2, 0, 1])) == pytest.approx(0.5)
    assert np.isnan(majority_accuracy(np.array([-1]), np.array([0])))
    assert np.isnan(majority_accuracy(np.array([0]), np.array([-1, -1])))


# %% one split


def test_evaluate_split_keys_and_counts() -> None:
    rng = np.random.default_rng(6)
    n = 40
    emotion = np.eye(3)[rng.integers(0, 3, n)]
    emotion[:5] = 0  # five rows without an emotion
    aus, au_probs = _au_data(6, n=n, k=5)
    aus[:3] = -1  # three rows without any AU label
    labels = {"emotion": emotion, "aus": aus}
    probs = {"emotion": rng.dirichlet(np.ones(3), n), "aus": au_probs}
    result = evaluate_split("val", labels, probs, aus=AUS, thresholds=np.full(4, 0.4))  # the model's 4 AUs
    assert set(result.metrics) == {names.split_metric("val", m) for m in names.SPLIT_METRICS}
    assert all(key.startswith("val_") for key in result.metrics)
    assert result.n_emotion == 35 and result.n_au_rows == 37
    assert len(result.per_au) == 4
    expected_f1 = au_scores(aus[:, :4], au_probs[:, :4], np.full(4, 0.4), AUS)[0]["au_f1"]
    assert result.metrics["val_au_f1"] == pytest.approx(expected_f1)
    expected_05 = au_scores(aus[:, :4], au_probs[:, :4], np.full(4, 0.5), AUS)[0]["au_f1"]
    assert result.metrics["val_au_f1_05"] == pytest.approx(expected_05)
    cm_json = result.confusion_json()
    assert cm_json["classes"] == list(EMOTION_CLASSES)
    assert np.sum(cm_json["counts"]) == 35
    for row, normalised in zip(cm_json["counts"], cm_json["row_normalised"], strict=True):
        if sum(row):
            assert sum(normalised) == pytest.approx(1.0, abs=1e-3)


# %% fit diagnosis


def _metrics(split: str, emotion_f1: float, au_f1: float) -> dict[str, float]:
    return {f"{split}_emotion_f1": emotion_f1, f"{split}_au_f1": au_f1, f"{split}_emotion_accuracy": emotion_f1}


def test_underfitting_when_clean_train_is_low() -> None:
    diagnosis = diagnose_fit(_metrics("train", 0.5, 0.6), _metrics("val", 0.3, 0.4), underfit_score=0.7)
    assert diagnosis.verdict == "underfitting"
    assert diagnosis.train_score == pytest.approx(0.55)
    assert diagnosis.fit_gap == pytest.approx(0.2)  # a big gap, yet underfitting comes first
    assert "0.550 < underfit_score 0.70" in diagnosis.reasons[0]


def test_overfitting_by_gap() -> None:
    diagnosis = diagnose_fit(_metrics("train", 0.96, 0.94), _metrics("val", 0.82, 0.78), overfit_gap=0.07)
    assert diagnosis.verdict == "overfitting"
    assert diagnosis.fit_gap == pytest.approx(0.15)
    assert diagnosis.val_score == pytest.approx(0.8)
    assert "gap 0.150 > overfit_gap 0.07" in diagnosis.reasons[0]
    # A looser threshold makes the same run balanced.
    assert diagnose_fit(_metrics("train", 0.96, 0.94), _metrics("val", 0.82, 0.78), overfit_gap=0.2).verdict == (
        "balanced"
    )


def test_an_undefined_score_is_undetermined_not_balanced() -> None:
    nan = float("nan")
    diagnosis = diagnose_fit(_metrics("train", 0.9, 0.88), _metrics("val", nan, nan))  # val without labels
    assert diagnosis.verdict == "undetermined" and "no labels to score" in diagnosis.reasons[0]
    assert diagnose_fit(_metrics("train", nan, nan), _metrics("val", 0.8, 0.8)).verdict == "undetermined"


def test_a_fit_that_diverges_is_judged_on_the_epochs_before_its_losses_turn_nan() -> None:
    nan = float("nan")
    rising = {"train_loss": [1.2, 0.9, 0.7, 0.5, 0.4, nan], "val_loss": [1.1, 0.8, 0.7, 0.9, 1.0, nan]}
    diagnosis = diagnose_fit(_metrics("train", 0.9, 0.88), _metrics("val", 0.87, 0.86), rising)
    assert diagnosis.verdict == "overfitting" and diagnosis.numbers["val_loss_rise"] == pytest.approx(0.3 / 0.7)
    falling = {"train_loss": [1.2, 0.9, 0.7, 0.5, nan], "val_loss": [1.1, 0.8, 0.7, 0.6, nan]}
    assert diagnose_fit(_metrics("train", 0.9, 0.88), _metrics("val", 0.87, 0.86), falling).verdict == "balanced"


def test_overfitting_by_rising_validation_loss() -> None:
    history = {"train_loss": [1.2, 0.9, 0.7, 0.5, 0.4], "val_loss": [1.1, 0.8, 0.7, 0.9, 1.0]}
    diagnosis = diagnose_fit(_metrics("train", 0.9, 0.88), _metrics("val", 0.87, 0.86), history)
    assert diagnosis.verdict == "overfitting"
    assert diagnosis.numbers["val_loss_rise"] == pytest.approx(0.3 / 0.7)
    assert "43% above its minimum" in diagnosis.reasons[0]


def test_rising_validation_loss_without_falling_train_loss_is_not_overfitting() -> None:
    history = {"train_loss": [1.2, 0.9, 0.7, 0.8, 0.9], "val_loss": [1.1, 0.8, 0.7, 0.9, 1.0]}
    diagnosis = diagnose_fit(_metrics("train", 0.9, 0.88), _metrics("val", 0.87, 0.86), history)
    assert diagnosis.verdict == "balanced"
    assert diagnosis.numbers["val_loss_rise"] == 0.0
    # Too short a history is not judged at all.
    short = diagnose_fit(
        _metrics("train", 0.9, 0.88), _metrics("val", 0.87, 0.86), {"train_loss": [1, 0.5], "val_loss": [1, 2]}
    )
    assert short.verdict == "balanced" and "val_loss_rise" not in short.numbers


def test_balanced_and_its_markdown() -> None:
    diagnosis = diagnose_fit(_metrics("train", 0.92, 0.88), _metrics("val", 0.88, 0.86))
    assert diagnosis.verdict == "balanced"
    assert diagnosis.fit_gap == pytest.approx(0.03)
    text = diagnosis.markdown()
    assert text.startswith("# Fit diagnosis: balanced\n")
    assert "| fit_gap | 0.0300 |" in text
    assert "| train_score | 0.9000 |" in text and "| val_score | 0.8700 |" in text
    assert "| train_emotion_f1 | 0.9200 |" in text and "| val_au_f1 | 0.8600 |" in text
    assert RULE_TEXT in text
    assert f"- {diagnosis.reasons[0]}" in text


def test_objective_kind_picks_the_score() -> None:
    train, val = _metrics("train", 0.95, 0.5), _metrics("val", 0.9, 0.45)
    assert diagnose_fit(train, val, objective="emotion").verdict == "balanced"
    assert diagnose_fit(train, val, objective="au").verdict == "underfitting"
    assert diagnose_fit(train, val, objective="mean").train_score == pytest.approx(0.725)
    # No AU head: the emotion score alone.
    only_emotion = diagnose_fit({"train_emotion_f1": 0.8}, {"val_emotion_f1": 0.6})
    assert only_emotion.verdict == "overfitting" and only_emotion.fit_gap == pytest.approx(0.2)
