"""Per-image predictions and what is computed from them, on constructed data with known answers:
subject-level intervals, the paired test, calibration, temperature scaling, skew-normalised F1,
the EMFACS check, and the report's interval formatting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ckrun.au_evaluation import evaluate_aus, skew_normalised_f1
from ckrun.calibration import (
    apply_temperatures,
    emotion_reliability,
    expected_calibration_error,
    fit_temperatures,
    reliability_bins,
)
from ckrun.compare import align
from ckrun.data.labels import EMOTION_CLASSES
from ckrun.emfacs import consistency, emfacs_check
from ckrun.errors import CkrunError
from ckrun.metrics import evaluate_split
from ckrun.predictions import Predictions, prediction_table, read_predictions, read_predictions_csv
from ckrun.uncertainty import bootstrap_intervals, paired_comparison

AUS = ["AU1", "AU2", "AU12"]


def _table(
    subjects: list[str],
    emotion_true: np.ndarray,
    emotion_pred: np.ndarray,
    au_true: np.ndarray | None = None,
    au_prob: np.ndarray | None = None,
    aus: list[str] = AUS,
    prefix: str = "img",
) -> pd.DataFrame:
    """A predictions table with confident emotion probabilities for `emotion_pred`."""
    n = len(subjects)
    onehot = np.zeros((n, 3), np.float32)
    onehot[np.arange(n), emotion_true] = 1
    probs = np.full((n, 3), 0.1)
    probs[np.arange(n), emotion_pred] = 0.8
    au_true = np.zeros((n, len(aus))) if au_true is None else au_true
    au_prob = np.full((n, len(aus)), 0.2) if au_prob is None else au_prob
    rows = pd.DataFrame({"path": [f"/{prefix}/{i}.png" for i in range(n)], "subject": subjects, "sequence": "001"})
    return prediction_table(rows, {"emotion": onehot, "aus": au_true}, {"emotion": probs, "aus": au_prob}, aus,
                            np.full(len(aus), 0.5))  # fmt: skip


def _clustered(n_subjects: int, per_subject: int, correct_subjects: int, seed: int = 0) -> Predictions:
    """Every image of the first `correct_subjects` subjects right, every image of the others wrong."""
    rng = np.random.default_rng(seed)
    subjects = [f"S{s:03d}" for s in range(n_subjects) for _ in range(per_subject)]
    truth = rng.integers(0, 3, len(subjects))
    right = np.repeat(np.arange(n_subjects) < correct_subjects, per_subject)
    pred = np.where(right, truth, (truth + 1) % 3)
    au_true = rng.integers(0, 2, (len(subjects), len(AUS))).astype(float)
    au_prob = np.where(right[:, None], au_true * 0.6 + 0.2, 0.8 - au_true * 0.6)
    return read_predictions(_table(subjects, truth, pred, au_true, au_prob))


# --------------------------------------------------------------------------------------
# Predictions table


def test_predictions_table_round_trips_through_csv_with_masks() -> None:
    au_true = np.array([[1, 0, -1], [0, -1, 1]], float)
    au_prob = np.array([[0.7, 0.4, 0.9], [0.2, 0.6, 0.55]])
    table = _table(["S1", "S2"], np.array([0, 2]), np.array([0, 1]), au_true, au_prob)
    table.loc[1, "emotion_true"] = pd.NA  # an image without an emotion label
    assert list(table.columns[:10]) == ["path", "subject", "sequence", "frame", "ck_emotion", "emotion_true",
                                        "emotion", "p_negative", "p_positive", "p_surprise"]  # fmt: skip
    assert list(table.columns[10:14]) == ["AU1_true", "AU1_prob", "AU1", "AU1_threshold"]
    back = read_predictions_csv(table.to_csv(index=False), "t.csv")
    assert back.aus == AUS
    assert back.emotion_targets.tolist() == [0, -1]
    assert back.au_targets.tolist() == au_true.tolist()
    assert back.au_decisions.tolist() == [[1, 0, 1], [0, 1, 1]]
    assert back.subjects.tolist() == ["S1", "S2"]
    with pytest.raises(CkrunError, match="not a ckrun predictions table"):
        read_predictions(table.drop(columns=["subject"]), "x.csv")


# --------------------------------------------------------------------------------------
# Subject-level bootstrap


@pytest.mark.parametrize("classes", [3, 2])  # 2: one class absent from truth and predictions
def test_interval_estimates_equal_the_logged_metrics(classes: int) -> None:
    rng = np.random.default_rng(3)
    n = 60
    au_true = rng.integers(0, 2, (n, 3)).astype(float)
    au_true[rng.random((n, 3)) < 0.1] = -1  # masked entries
    au_true[:, 2] = np.where(au_true[:, 2] == 1, 0, au_true[:, 2])  # an AU without positives
    table = _table([f"S{i % 9}" for i in range(n)], rng.integers(0, classes, n), rng.integers(0, classes, n),
                   au_true, rng.random((n, 3)))  # fmt: skip
    table.loc[::7, "emotion_true"] = pd.NA  # images without an emotion label
    pred = read_predictions(table)
    ci = bootstrap_intervals(pred, samples=200, seed=1).set_index("metric")
    ev = evaluate_split("test", pred.labels(), pred.probs(), aus=AUS, thresholds=pred.thresholds)
    for metric in ("emotion_accuracy", "emotion_f1", "au_f1", "au_f1_weighted"):
        assert ci.loc[metric, "estimate"] == pytest.approx(ev.metrics[f"test_{metric}"]), metric
        assert ci.loc[metric, "ci_low"] <= ci.loc[metric, "estimate"] <= ci.loc[metric, "ci_high"]


def test_identical_subjects_give_a_zero_width_interval() -> None:
    subjects = [f"S{s}" for s in range(12) for _ in range(4)]
    truth = np.tile([0, 1, 2, 0], 12)
    pred = np.tile([0, 1, 0, 2], 12)  # every subject: 2 of 4 right, the same confusions
    au_true = np.tile([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], (12, 1)).astype(float)
    au_prob = np.tile([[0.9, 0.1, 0.2], [0.6, 0.7, 0.1], [0.8, 0.2, 0.3], [0.1, 0.1, 0.9]], (12, 1))
    ci = bootstrap_intervals(read_predictions(_table(subjects, truth, pred, au_true, au_prob)), samples=300)
    assert len(ci) == 4
    assert np.allclose(ci["ci_low"], ci["estimate"]) and np.allclose(ci["ci_high"], ci["estimate"])


def test_subject_bootstrap_is_wider_than_image_bootstrap_when_subjects_cluster() -> None:
    pred = _clustered(n_subjects=20, per_subject=10, correct_subjects=14)
    by_subject = bootstrap_intervals(pred, samples=1000, seed=0).set_index("metric")
    by_image = bootstrap_intervals(pred, samples=1000, seed=0, unit="image").set_index("metric")
    width_subject = by_subject["ci_high"] - by_subject["ci_low"]
    width_image = by_image["ci_high"] - by_image["ci_low"]
    # 200 images but only 20 independent subjects: the honest interval is ~sqrt(10) times wider.
    assert width_subject["emotion_accuracy"] > 2 * width_image["emotion_accuracy"]
    assert by_subject.loc["emotion_accuracy", "estimate"] == pytest.approx(0.7)
    assert by_subject.loc["emotion_accuracy", "ci_low"] < 0.6 < 0.8 < by_subject.loc["emotion_accuracy", "ci_high"]


def test_bootstrap_is_seeded_and_deterministic() -> None:
    pred = _clustered(15, 4, 9)
    first, again = bootstrap_intervals(pred, seed=7), bootstrap_intervals(pred, seed=7)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(bootstrap_intervals(pred, seed=8))


# --------------------------------------------------------------------------------------
# Paired test


def test_paired_test_detects_a_real_difference() -> None:
    good, bad = _clustered(30, 5, 27, seed=1), _clustered(30, 5, 12, seed=1)
    result = paired_comparison(good, bad, samples=500, permutations=2000, seed=0).table.set_index("metric")
    row = result.loc["emotion_accuracy"]
    assert row["difference"] == pytest.approx(0.5)
    assert row["p_value"] < 0.01 and row["significant"]
    assert 0 < row["ci_low"] <= row["difference"] <= row["ci_high"]
    reverse = paired_comparison(bad, good, samples=500, permutations=2000).table.set_index("metric")
    assert reverse.loc["emotion_accuracy", "difference"] == pytest.approx(-0.5) and reverse.loc[
        "emotion_accuracy", "significant"]  # fmt: skip


def _equally_good_runs(seed: int, n_subjects: int = 20, per_subject: int = 5) -> tuple[Predictions, Predictions]:
    """Two runs right on each image with the same probability (0.75), independently: no real difference."""
    rng = np.random.default_rng(seed)
    subjects = [f"S{s:03d}" for s in range(n_subjects) for _ in range(per_subject)]
    truth = rng.integers(0, 3, len(subjects))
    runs = []
    for _ in range(2):
        right = rng.random(len(subjects)) < 0.75
        au_true = np.tile([[1.0, 0.0, 1.0]], (len(subjects), 1))
        au_prob = np.where(rng.random((len(subjects), 3)) < 0.75, au_true * 0.6 + 0.2, 0.8 - au_true * 0.6)
        runs.append(
            read_predictions(_table(subjects, truth, np.where(right, truth, (truth + 1) % 3), au_true, au_prob))
        )
    return runs[0], runs[1]


def test_paired_test_finds_no_difference_where_there_is_none() -> None:
    a, _ = _equally_good_runs(0)
    same = paired_comparison(a, a, samples=200).table
    assert (same["difference"] == 0).all() and (same["p_value"] == 1.0).all() and not same["significant"].any()
    assert (same["ci_low"] == 0).all() and (same["ci_high"] == 0).all()  # paired: the same subjects score both
    # Equally good runs: at alpha 0.05 the test may cry wolf about 5% of the time, not more.
    rejections = []
    for seed in range(40):
        result = paired_comparison(*_equally_good_runs(seed), samples=50, permutations=1000, seed=seed).table
        rejections.append(result.set_index("metric").loc["emotion_accuracy", "significant"])
    assert np.mean(rejections) <= 0.15


def test_paired_test_enumerates_every_swap_for_few_subjects() -> None:
    result = paired_comparison(_clustered(5, 3, 5), _clustered(5, 3, 0), samples=100)
    assert result.exact and result.permutations == 2**5
    assert result.table.set_index("metric").loc["emotion_accuracy", "p_value"] == pytest.approx(2 / 32)


def test_compare_refuses_different_test_splits_and_subjects() -> None:
    a = _clustered(6, 3, 4)
    other_images = read_predictions(a.frame.assign(path=a.frame["path"].str.replace("img", "other")))
    with pytest.raises(CkrunError, match="different test splits"):
        align(a, other_images, "A", "B", "test")
    other_subjects = read_predictions(a.frame.assign(subject="S999"))
    with pytest.raises(CkrunError, match="different subjects"):
        align(a, other_subjects, "A", "B", "test")
    shuffled = read_predictions(a.frame.iloc[::-1])
    left, right = align(a, shuffled, "A", "B", "test")
    assert (right.frame["path"] == left.frame["path"]).all()
    assert paired_comparison(left, right, samples=50).table["difference"].abs().max() == 0


# --------------------------------------------------------------------------------------
# Calibration


def test_reliability_bins_and_ece_by_hand() -> None:
    confidence = np.array([0.25, 0.25, 0.25, 0.25, 0.85, 0.85, 0.85, 0.85, 1.0, 0.1])
    outcome = np.array([1, 0, 0, 0, 1, 1, 0, 0, 1, 0])
    bins = reliability_bins(confidence, outcome, n_bins=10)
    assert bins["count"].tolist() == [1, 0, 4, 0, 0, 0, 0, 0, 4, 1]  # 0.1 in [0, 0.1], 1.0 in the last bin
    assert bins.loc[2, "frequency"] == 0.25 and bins.loc[8, "frequency"] == 0.5
    # |0.25-0.25|*4 + |0.5-0.85|*4 + |1-1|*1 + |0-0.1|*1, over 10
    assert expected_calibration_error(bins) == pytest.approx((0.35 * 4 + 0.1) / 10)


def test_emotion_ece_is_top_label_over_known_rows() -> None:
    probs = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    targets = np.array([0, 1, 1, 1, -1])  # the last row has no emotion label
    bins = emotion_reliability(targets, probs, n_bins=10)
    assert bins["count"].sum() == 4
    assert expected_calibration_error(bins) == pytest.approx((abs(0.5 - 0.9) * 2 + abs(1.0 - 0.7) * 2) / 4)


def test_temperature_scaling_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(0)
    n, true_t = 20000, 2.5
    logits = rng.normal(0, 1.5, (n, 3))
    p_true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    targets = (rng.random(n)[:, None] > np.cumsum(p_true, axis=1)).sum(axis=1)
    overconfident = np.exp(logits * true_t) / np.exp(logits * true_t).sum(axis=1, keepdims=True)
    au_logits = rng.normal(0, 1.5, (n, 2))
    au_targets = (rng.random((n, 2)) < 1 / (1 + np.exp(-au_logits))).astype(float)
    au_probs = 1 / (1 + np.exp(-au_logits * true_t))
    temps = fit_temperatures(targets, overconfident, au_targets, au_probs)
    assert temps.emotion == pytest.approx(true_t, rel=0.05)
    assert temps.shared_au == pytest.approx(true_t, rel=0.05) and temps.aus == (temps.shared_au,) * 2
    scaled = apply_temperatures({"emotion": overconfident, "aus": au_probs}, temps.emotion, temps.aus)
    assert np.allclose(scaled["emotion"], p_true, atol=0.02) and np.allclose(
        scaled["aus"], 1 / (1 + np.exp(-au_logits)), atol=0.02
    )
    assert (scaled["emotion"].argmax(axis=1) == overconfident.argmax(axis=1)).all()  # accuracy never changes
    # Per AU: a second AU twice as overconfident gets its own temperature.
    au_probs[:, 1] = 1 / (1 + np.exp(-au_logits[:, 1] * 5.0))
    per_au = fit_temperatures(targets, overconfident, au_targets, au_probs, per_au=True, min_positives=10)
    assert per_au.aus[0] == pytest.approx(true_t, rel=0.05) and per_au.aus[1] == pytest.approx(5.0, rel=0.05)


# --------------------------------------------------------------------------------------
# Skew-normalised F1 and per-AU evaluation


def test_skew_normalised_f1_against_a_hand_computation() -> None:
    # 10 positives (8 found), 90 negatives (9 false alarms): TPR 0.8, FPR 0.1, skew 9.
    assert skew_normalised_f1(8, 9, 2, 81) == pytest.approx(2 * 0.8 / (1 + 0.8 + 0.1))  # 0.8421
    assert skew_normalised_f1(8, 9, 2, 81, skew=9) == pytest.approx(16 / 27)  # the raw F1 at the observed skew
    assert np.isnan(skew_normalised_f1(0, 3, 0, 10))
    y = np.array([1] * 10 + [0] * 90, float)
    p = np.array([0.9] * 8 + [0.1] * 2 + [0.8] * 9 + [0.2] * 81)
    table = evaluate_aus(y[:, None], p[:, None], ["AU9"], np.array([0.5])).table.iloc[0]
    assert table["f1"] == pytest.approx(16 / 27) and table["f1_skew_normalised"] == pytest.approx(1.6 / 1.9)
    assert table["skew"] == 9 and table["positives"] == 10
    assert table["average_precision"] == pytest.approx(
        __import__("sklearn.metrics", fromlist=["x"]).average_precision_score(y, p)
    )


# --------------------------------------------------------------------------------------
# EMFACS


EMFACS_AUS = ["AU1", "AU2", "AU4", "AU5", "AU6", "AU12", "AU15", "AU23", "AU24"]


def _present(*sets: tuple[int, ...], aus: list[str] = EMFACS_AUS) -> np.ndarray:
    return np.array([[int(a[2:]) in s for a in aus] for s in sets])


def test_emfacs_consistency_on_constructed_label_sets() -> None:
    neg, pos, sur = (EMOTION_CLASSES.index(c) for c in ("negative", "positive", "surprise"))
    emotion = np.array([pos, pos, sur, sur, neg, neg, neg, sur])
    present = _present((6, 12), (6,), (1, 2), (5,), (23,), (23, 24), (1, 4, 15), (4,))
    result = consistency(emotion, present, EMFACS_AUS)
    assert result.supported.tolist() == [True, False, True, True, False, True, True, False]
    assert result.rate == pytest.approx(5 / 8) and result.checked == 8
    # Without AU24 the anger criterion (AU23+24) cannot be used: AU23 alone never counts for it.
    no24 = [a for a in EMFACS_AUS if a != "AU24"]
    assert not consistency(np.array([neg]), _present((23,), aus=no24), no24).supported[0]
    # Without AU12 positive cannot be checked: its images leave the denominator.
    no12 = [a for a in EMFACS_AUS if a != "AU12"]
    partial = consistency(np.array([pos, sur]), _present((6,), (1, 2), aus=no12), no12)
    assert partial.checked == 1 and partial.rate == 1.0


def test_emfacs_check_lists_contradicting_images() -> None:
    aus = ["AU1", "AU2", "AU12"]
    truth = np.array([1, 2, 2])  # positive, surprise, surprise
    pred = np.array([1, 2, 1])
    au_true = np.array([[0, 0, 1], [1, 1, 0], [1, 1, 0]], float)
    au_prob = np.array(
        [[0.1, 0.1, 0.9], [0.9, 0.9, 0.1], [0.9, 0.8, 0.1]]
    )  # image 3: predicts positive, AUs say surprise
    check = emfacs_check(read_predictions(_table(["S1", "S2", "S3"], truth, pred, au_true, au_prob, aus=aus)))
    assert check.truth.rate == 1.0 and check.predicted.rate == pytest.approx(2 / 3)
    assert check.contradictions["path"].tolist() == ["/img/2.png"]
    row = check.contradictions.iloc[0]
    assert row["emotion"] == "positive" and row["predicted_aus"] == "AU1+AU2" and row["aus_support"] == "surprise"


# --------------------------------------------------------------------------------------
# Report formatting


def test_report_shows_intervals_and_cv_spread() -> None:
    from ckrun.report.uncertainty import fmt_interval

    row = {"test_emotion_f1": 0.9081, "test_emotion_f1_ci_low": 0.8712, "test_emotion_f1_ci_high": 0.9423}
    assert fmt_interval(row, "test_emotion_f1") == "0.908 [0.87, 0.94]"
    assert fmt_interval({"test_au_f1": 0.9, "test_au_f1_std": 0.0213}, "test_au_f1") == "0.900 ± 0.021"
    assert fmt_interval({"test_au_f1": 0.9}, "test_au_f1") == "0.900"
    assert fmt_interval({}, "test_au_f1") == "–"


def test_cv_section_shows_mean_sd_and_the_per_fold_table(monkeypatch: pytest.MonkeyPatch) -> None:
    from ckrun.report import collect
    from ckrun.report.uncertainty import cv_blocks

    parent = {"run_id": "p1", "run": "cv3-x", "kind": "cv", "test_emotion_f1": 0.9, "test_emotion_f1_std": 0.05,
              "test_au_f1": 0.8, "test_au_f1_std": 0.1}  # fmt: skip
    table = pd.DataFrame([parent, {"run_id": "t1", "run": "train-x", "kind": "train", "test_emotion_f1": 0.7}])
    folds = pd.DataFrame(
        {"fold": [1, 2], "fit_diagnosis": ["balanced", "overfitting"], "test_emotion_f1": [0.85, 0.95],
         "test_emotion_f1_ci_low": [0.7, 0.9], "test_emotion_f1_ci_high": [0.9, 1.0]}
    )  # fmt: skip
    monkeypatch.setattr(collect, "cv_folds", lambda run_id: folds if run_id == "p1" else None)
    blocks = cv_blocks(table)
    tables = [b for b in blocks if type(b).__name__ == "Table"]
    summary = tables[0].frame.set_index("metric")["mean ± SD over folds"]
    assert summary["emotion macro-F1"] == "0.900 ± 0.050" and summary["AU macro-F1"] == "0.800 ± 0.100"
    per_fold = tables[1].frame
    assert per_fold["emotion macro-F1"].tolist() == ["0.850 [0.70, 0.90]", "0.950 [0.90, 1.00]"]
    assert per_fold["fit"].tolist() == ["balanced", "overfitting"]
    assert cv_blocks(table.loc[table["kind"] != "cv"]) == []
