"""The linear floors: HOG and LBP features, C chosen on validation only, `best` across families, SVM
probabilities and thresholds, the beats-the-baseline verdict, and the `--model` option.

Everything runs on constructed 48 px faces (stripes, brightness, noise) whose answer is
known, with a two-value C grid, so no test trains for more than a few seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from ckrun.arrays import SplitArrays
from ckrun.baselines.families import calibration_folds, family, fit_classifier, row_space
from ckrun.baselines.features import (
    HOG_BINS,
    LBP_BINS,
    LBP_GRID,
    LBP_PATTERN_BIN,
    hog_features,
    hog_shape,
    lbp_codes,
    lbp_features,
    pixel_features,
)
from ckrun.baselines.selection import fit_family, select_family
from ckrun.baselines.verdict import compare
from ckrun.cli import cli
from ckrun.config import load_config
from ckrun.metrics import tune_thresholds

CFG = load_config(overrides=["preset=tiny", "threshold_min_positives=3"])
SIZE = 48
GRID = (1e-4, 100.0)


def _split(images: np.ndarray, classes: np.ndarray, aus: np.ndarray) -> SplitArrays:
    onehot = np.eye(3)[classes]
    return SplitArrays(images[..., None].astype(np.uint8), {"emotion": onehot, "aus": aus.astype(float)})


def _stripes(orientation: int, rng: np.random.Generator) -> np.ndarray:
    """Stripes at 0, 90 or 45 degrees with a random phase and brightness: orientation is all that
    tells the classes apart, which HOG reads and no fixed pixel weighting can."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    coord = (y, x, (x + y) / np.sqrt(2))[orientation]
    wave = np.sin(2 * np.pi * coord / 8 + rng.uniform(0, 2 * np.pi))
    image = rng.uniform(90, 160) + 60 * wave + rng.normal(0, 10, (SIZE, SIZE))
    return np.clip(image, 0, 255)


def _brightness(level: int, rng: np.random.Generator) -> np.ndarray:
    """Flat noisy faces whose mean brightness is the class: pixels read it, HOG (block-normalised
    gradient orientations) is blind to it."""
    return np.clip(rng.normal(70 + 60 * level, 25, (SIZE, SIZE)), 0, 255)


def _dataset(make, seed: int = 0, per_class: tuple[int, int, int] = (20, 10, 10)) -> dict[str, SplitArrays]:
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in zip(("train", "val", "test"), per_class, strict=True):
        classes = np.repeat(np.arange(3), n)
        images = np.stack([make(int(c), rng) for c in classes])
        aus = np.column_stack([classes == 0, classes == 2])
        out[split] = _split(images, classes, aus)
    return out


def _groups(arrays: dict[str, SplitArrays]) -> np.ndarray:
    return np.arange(len(arrays["train"].images)) // 2  # two frames per subject


# --------------------------------------------------------------------------------------
# Features


def test_hog_features_have_the_dalal_triggs_shape_and_follow_the_image() -> None:
    rng = np.random.default_rng(0)
    horizontal, vertical = _stripes(0, rng), _stripes(1, rng)
    features = hog_features(np.stack([horizontal, vertical, horizontal])[..., None])
    blocks = (SIZE - 16) // 8 + 1  # 16 px blocks sliding by one 8 px cell
    assert features.shape == (3, blocks * blocks * 4 * HOG_BINS) == (3, hog_shape(SIZE))
    assert np.array_equal(features[0], features[2])
    assert not np.allclose(features[0], features[1])
    # Horizontal stripes have vertical gradients (90 degrees), vertical stripes horizontal ones (0).
    per_bin = features.reshape(3, -1, HOG_BINS).sum(axis=1)
    middle = slice(HOG_BINS // 2 - 1, HOG_BINS // 2 + 2)
    assert per_bin[0][middle].sum() > per_bin[0].sum() / 2
    assert per_bin[1][[0, -1]].sum() > per_bin[1].sum() / 2
    assert pixel_features(np.stack([horizontal])[..., None]).shape == (1, SIZE * SIZE)


def test_lbp_codes_the_uniform_patterns_of_the_basic_operator() -> None:
    """Ojala et al.: 58 patterns with at most two circular 0/1 transitions, one bin for the rest."""
    assert LBP_BINS == 59 and sorted(set(LBP_PATTERN_BIN.tolist())) == list(range(59))
    assert LBP_PATTERN_BIN[0] == 0 and LBP_PATTERN_BIN[255] == 57  # a bright spot; a flat area
    assert LBP_PATTERN_BIN[0b01010101] == LBP_PATTERN_BIN[0b00100100] == 58  # eight and four transitions
    assert LBP_PATTERN_BIN[0b00001111] != LBP_PATTERN_BIN[0b11110000]  # not rotation invariant
    spot = np.full((1, 5, 5), 50, np.uint8)
    spot[0, 2, 2] = 200
    codes = lbp_codes(spot)[0]  # the 3 x 3 interior
    assert codes[1, 1] == LBP_PATTERN_BIN[0]  # every neighbour darker than the spot
    # The spot's upper-left neighbour sees it at its lower-right (bit 4); the rest is flat (>=).
    assert codes[0, 0] == LBP_PATTERN_BIN[0b11111111]
    # Lower half brighter: the first bright row sees darker neighbours above (bits 0-2) and equal
    # ones beside and below (bits 3-7); the last dark row sees nothing darker.
    step = np.zeros((1, 6, 6), np.uint8)
    step[0, 3:] = 100
    assert lbp_codes(step)[0, 2, 2] == LBP_PATTERN_BIN[0b11111000]
    assert lbp_codes(step)[0, 1, 2] == LBP_PATTERN_BIN[0b11111111]


def test_lbp_features_are_cell_histograms_blind_to_monotonic_lighting() -> None:
    rng = np.random.default_rng(2)
    horizontal, vertical = _stripes(0, rng), _stripes(1, rng)
    faces = np.stack([horizontal, vertical]).astype(np.uint8)
    features = lbp_features(faces[..., None])
    assert features.shape == (2, LBP_GRID * LBP_GRID * LBP_BINS)
    histograms = features.reshape(2, -1, LBP_BINS) ** 2  # the features are their square roots
    np.testing.assert_allclose(histograms.sum(axis=2), 1.0, rtol=1e-5)
    # The cell in the top-left corner, from the codes themselves.
    codes = lbp_codes(faces[:1])[0]
    corner = np.bincount(codes[:8, :8].ravel(), minlength=LBP_BINS) / 64  # 46 interior px: 8 px cells
    np.testing.assert_allclose(histograms[0, 0], corner, rtol=1e-5)
    assert not np.allclose(features[0], features[1])
    # Any strictly increasing change of brightness keeps every comparison, hence every code.
    dim = (faces // 2).astype(np.uint8)
    np.testing.assert_array_equal(lbp_features(dim), lbp_features(2 * dim + 1))
    with pytest.raises(ValueError, match="LBP needs faces"):
        lbp_features(np.zeros((1, 6, 6), np.uint8))


def test_row_space_coordinates_give_the_same_linear_model_predictions() -> None:
    """Fitting on the training rows' span is a speed-up, never a different model."""
    rng = np.random.default_rng(1)
    x, x_new = rng.normal(size=(30, 200)), rng.normal(size=(10, 200))
    y = (x[:, 0] + 0.5 * rng.normal(size=30) > 0).astype(int)
    basis = row_space(x)
    assert basis is not None and basis.shape == (200, 30)
    plain = fit_classifier(family("logreg"), x, y, 0.1, seed=0, balanced=True)
    projected = fit_classifier(family("logreg"), x @ basis, y, 0.1, seed=0, balanced=True)
    assert np.allclose(plain.predict_proba(x_new), projected.predict_proba(x_new @ basis), atol=1e-3)
    assert row_space(rng.normal(size=(50, 20))) is None


# --------------------------------------------------------------------------------------
# Choosing C on validation


def test_c_is_chosen_by_the_validation_objective_where_test_would_choose_otherwise() -> None:
    arrays = _dataset(_brightness, seed=3)
    rng = np.random.default_rng(3)
    for split in arrays.values():  # weak signal: the two Cs then disagree on some faces
        faint = 128 + 0.15 * (split.images.astype(float) - 128) + rng.normal(0, 30, split.images.shape)
        split.images[:] = np.clip(faint, 0, 255)
    at = {c: fit_family("logreg", arrays, ["AU1", "AU2"], CFG, grid=[c]).probs for c in GRID}
    pick = {"val": GRID[0], "test": GRID[1]}  # val labelled as C=1e-4 predicts, test as C=100 does
    for split, c in pick.items():
        predicted = at[c][split]["emotion"].argmax(axis=1)
        other = at[GRID[1] if c == GRID[0] else GRID[0]][split]["emotion"].argmax(axis=1)
        assert (predicted != other).any(), f"construction: both Cs agree on every {split} face"
        arrays[split].labels["emotion"] = np.eye(3)[predicted]
    fit = fit_family("logreg", arrays, ["AU1", "AU2"], CFG, grid=GRID)
    assert fit.c_emotion == GRID[0]
    rows = fit.candidates.set_index("C")
    assert rows.loc[GRID[0], "val_emotion_f1"] == 1.0 > rows.loc[GRID[1], "val_emotion_f1"]
    assert rows["emotion_chosen"].tolist() == [True, False]
    assert rows.loc[fit.c_au, "val_au_f1"] == rows["val_au_f1"].max()
    assert fit.objective >= rows["val_objective"].max() - 1e-12
    assert fit.val_metrics["val_emotion_f1"] == 1.0 and fit.evaluations["test"].metrics["test_emotion_f1"] < 1.0


def test_test_labels_decide_nothing_and_svm_probabilities_are_calibrated_on_train() -> None:
    arrays = _dataset(_stripes, seed=4)
    fit = fit_family("hog-svm", arrays, ["AU1", "AU2"], CFG, groups=_groups(arrays), grid=GRID)
    for split in ("train", "val", "test"):
        for head in ("emotion", "aus"):
            p = fit.probs[split][head]
            assert np.all((p >= 0) & (p <= 1)), (split, head)
        assert np.allclose(fit.probs[split]["emotion"].sum(axis=1), 1.0)
    val = arrays["val"].labels["aus"]
    expected = tune_thresholds(val, fit.probs["val"]["aus"], min_positives=3, shrinkage=CFG.threshold_shrinkage)
    for split in ("val", "test"):
        assert fit.evaluations[split].per_au["threshold"].tolist() == expected.tolist()

    scrambled = {**arrays, "test": SplitArrays(arrays["test"].images, {
        "emotion": arrays["test"].labels["emotion"][::-1], "aus": 1 - arrays["test"].labels["aus"]})}  # fmt: skip
    again = fit_family("hog-svm", scrambled, ["AU1", "AU2"], CFG, groups=_groups(arrays), grid=GRID)
    assert (again.c_emotion, again.c_au, again.objective) == (fit.c_emotion, fit.c_au, fit.objective)
    assert again.evaluations["test"].per_au["threshold"].tolist() == expected.tolist()
    assert again.candidates.equals(fit.candidates)
    assert again.evaluations["test"].metrics["test_au_f1"] != fit.evaluations["test"].metrics["test_au_f1"]

    relabelled = {**arrays, "val": SplitArrays(arrays["val"].images, {
        "emotion": arrays["val"].labels["emotion"][::-1], "aus": 1 - val})}  # fmt: skip
    one_c = [fit.c_emotion]
    same = fit_family("hog-svm", arrays, ["AU1", "AU2"], CFG, groups=_groups(arrays), grid=one_c)
    moved = fit_family("hog-svm", relabelled, ["AU1", "AU2"], CFG, groups=_groups(arrays), grid=one_c)
    assert np.array_equal(same.probs["val"]["aus"], moved.probs["val"]["aus"]), "val labels calibrated the SVM"


def test_calibration_folds_keep_each_subject_on_one_side() -> None:
    y = np.array([0, 1] * 12)
    groups = np.repeat(np.arange(8), 3)
    folds = calibration_folds(y, groups, seed=0)
    assert folds is not None and len(folds) == 3
    held = np.concatenate([h for _, h in folds])
    assert sorted(held) == list(range(len(y)))  # a partition, as Platt scaling needs
    for fit_rows, held_rows in folds:
        assert not set(groups[fit_rows]) & set(groups[held_rows])
        assert set(y[fit_rows]) == {0, 1}
    assert calibration_folds(np.array([0, 0, 0, 1]), None, seed=0) is None


def test_best_keeps_the_family_with_the_best_validation_objective() -> None:
    stripes = _dataset(_stripes, seed=5)
    chosen = select_family("best", stripes, ["AU1", "AU2"], CFG, groups=_groups(stripes), grid=GRID)
    objectives = {f.family: f.objective for f in chosen.fits}
    assert set(objectives) == {"logreg", "svm", "hog-svm", "lbp-svm"}
    assert chosen.kept.family == "hog-svm" == max(objectives, key=objectives.__getitem__)
    assert objectives["hog-svm"] > max(objectives["logreg"], objectives["svm"]) + 0.2
    table = chosen.families_table()
    assert table.loc[table["kept"], "family"].tolist() == ["hog-svm"]
    assert set(chosen.candidates_table()["family"]) == set(objectives)

    bright = _dataset(_brightness, seed=6)
    chosen = select_family("best", bright, ["AU1", "AU2"], CFG, groups=_groups(bright), grid=GRID)
    objectives = {f.family: f.objective for f in chosen.fits}
    assert chosen.kept.family in ("logreg", "svm") and objectives[chosen.kept.family] == max(objectives.values())
    assert max(objectives["hog-svm"], objectives["lbp-svm"]) < objectives[chosen.kept.family]

    alone = select_family("svm", bright, ["AU1", "AU2"], CFG, groups=_groups(bright), grid=GRID)
    assert [f.family for f in alone.fits] == ["svm"] and alone.kept.family == "svm"


def test_families_fitted_side_by_side_match_fits_one_after_the_other_and_leave_no_global_state() -> None:
    """`best` fits families on threads; BLAS threads and warning filters are process-wide."""
    import warnings

    from threadpoolctl import threadpool_info

    arrays = _dataset(_stripes, seed=7)
    hog_features(arrays["train"].images[:1])  # loads OpenCV's BLAS, so both snapshots list it
    filters, blas = list(warnings.filters), {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    chosen = select_family("best", arrays, ["AU1", "AU2"], CFG, groups=_groups(arrays), grid=GRID)
    assert list(warnings.filters) == filters
    after = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    assert {path: after.get(path) for path in blas} == blas
    assert chosen.seconds > 0
    for fit in chosen.fits:
        alone = fit_family(fit.family, arrays, ["AU1", "AU2"], CFG, groups=_groups(arrays), grid=GRID)
        assert (fit.c_emotion, fit.c_au, fit.objective) == (alone.c_emotion, alone.c_au, alone.objective)
        for split, heads in alone.probs.items():
            for head, p in heads.items():
                np.testing.assert_array_equal(fit.probs[split][head], p, err_msg=f"{fit.family} {split} {head}")


def test_a_failure_or_interrupt_while_families_fit_stops_the_others_within_a_head(monkeypatch) -> None:
    """Ctrl-C or SIGTERM reaches the waiting thread; the other families must not run to the end
    of their grids first, or a run waits that long before it is ended KILLED."""
    import threading

    from ckrun.baselines import families, selection

    heads: list[str] = []
    first_head = threading.Event()
    real_fit = selection.fit_classifier

    def counted(fam, *args, **kwargs):
        heads.append(fam.name)
        first_head.set()
        return real_fit(fam, *args, **kwargs)

    def interrupted(images: np.ndarray) -> np.ndarray:
        first_head.wait(10)  # the other family is fitting heads when the interrupt comes
        raise KeyboardInterrupt

    monkeypatch.setattr(selection, "fit_classifier", counted)
    monkeypatch.setitem(families.FAMILIES, "ctrl-c", families.Family("ctrl-c", interrupted, "hinge", "-"))
    monkeypatch.setattr(selection, "cpu_count", lambda: 2)
    arrays = _dataset(_brightness, seed=8)
    grid = tuple(10.0**k for k in range(-4, 3))
    with pytest.raises(KeyboardInterrupt):
        select_family("best", arrays, ["AU1", "AU2"], CFG, grid=grid, families=["ctrl-c", "logreg"])
    assert 0 < heads.count("logreg") < len(grid) * 3  # 3 heads per C: it stopped partway


# --------------------------------------------------------------------------------------
# Verdict and CLI


def test_a_deep_run_beats_the_baseline_only_when_higher_on_every_head() -> None:
    base = {"test_emotion_accuracy": 0.90, "test_emotion_f1": 0.89, "test_au_f1": 0.63}
    better = compare({"test_emotion_accuracy": 0.95, "test_emotion_f1": 0.94, "test_au_f1": 0.70}, base)
    assert better.beats and better.judged
    loses_au = compare({"test_emotion_accuracy": 0.95, "test_emotion_f1": 0.94, "test_au_f1": 0.61}, base)
    assert not loses_au.beats and [h.metric for h in loses_au.losses] == ["test_au_f1"]
    assert loses_au.sentence("the default run", "HOG-SVM") == (
        "the default run does not beat the HOG-SVM baseline on AU macro-F1: 0.610 vs 0.630."
    )
    tie = compare({**base, "test_emotion_accuracy": 0.95, "test_emotion_f1": 0.95}, base)
    assert not tie.beats and [h.metric for h in tie.losses] == ["test_au_f1"]
    no_au = compare({"test_emotion_accuracy": 0.95, "test_emotion_f1": 0.94}, base)
    assert no_au.beats and [h.metric for h in no_au.heads] == ["test_emotion_accuracy", "test_emotion_f1"]
    assert not compare({}, base).judged and compare({}, base).cell() == "–"


def test_an_unknown_baseline_model_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["baseline", "--model", "resnet"])
    assert result.exit_code == 2
    assert "--model" in result.output and "hog-svm" in result.output
    for grid in ("0.1,lots", "0.1,-1", ","):  # refused before the (missing) data is read
        result = CliRunner().invoke(cli, ["baseline", "--c-grid", grid, "--data", "/no/such/data"])
        assert result.exit_code == 2 and "--c-grid" in result.output and "/no/such/data" not in result.output


def test_run_baseline_rejects_a_bad_model_or_grid_before_any_run(tmp_path) -> None:
    from ckrun.baseline import run_baseline
    from ckrun.errors import ConfigError

    with pytest.raises(ConfigError, match="--model"):
        run_baseline(CFG, None, model="knn")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="c_grid"):
        run_baseline(CFG, None, c_grid=[0.1, -1])  # type: ignore[arg-type]
