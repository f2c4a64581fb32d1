"""Late fusion with the linear baseline: the exported heads, the weight choice, the fused model.

The logged model must give the numbers the run logged, so the baseline it carries as arrays
must reproduce scikit-learn's probabilities, and `predict`, `evaluate` and the pyfunc must
fuse exactly as training did.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from ckrun import names, tracking
from ckrun.arrays import SplitArrays
from ckrun.baselines.export import LinearBaseline, baseline_faces, export_head
from ckrun.baselines.families import FAMILIES, MarginSigmoid
from ckrun.baselines.selection import fit_family
from ckrun.cli import cli
from ckrun.config import load_config
from ckrun.errors import ConfigError
from ckrun.fusion import Fusion, fuse, fuse_all
from ckrun.fusion_fit import _val_objective, choose_head_weights, choose_weight

AUS = ["AU1", "AU2", "AU4", "AU12"]


def _split(rng: np.random.Generator, n: int) -> SplitArrays:
    """Faces whose emotion brightens one corner and whose AU1 darkens another: learnable, noisy."""
    images = rng.integers(0, 255, (n, 48, 48), dtype=np.uint8)
    emotion = rng.integers(0, 3, n)
    onehot = np.eye(3)[emotion]
    images[emotion == 0, :12, :12] = 230
    images[emotion == 2, -12:, -12:] = 230
    aus = (rng.random((n, len(AUS))) < 0.3).astype(float)
    images[aus[:, 0] == 1, :12, -12:] = 10
    return SplitArrays(images, {"emotion": onehot, "aus": aus})


@pytest.fixture(scope="module")
def arrays() -> dict[str, SplitArrays]:
    rng = np.random.default_rng(0)
    return {"train": _split(rng, 90), "val": _split(rng, 40), "test": _split(rng, 40)}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_exported_baseline_reproduces_scikit_learns_probabilities(family: str, arrays) -> None:
    cfg = load_config(overrides=["preset=tiny"])
    fit = fit_family(family, arrays, AUS, cfg, groups=np.repeat(np.arange(30), 3))
    for split in ("val", "test"):
        got = fit.model.probabilities(arrays[split].images)
        for key in ("emotion", "aus"):
            np.testing.assert_allclose(got[key], fit.probs[split][key], atol=1e-6, err_msg=f"{family} {key}")
    assert fit.model.family == family and fit.model.aus == tuple(AUS)


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("kind", ["logistic", "platt", "margin"])
def test_each_head_kind_exports_exactly(kind: str, classes: int) -> None:
    rng = np.random.default_rng(classes)
    x = rng.normal(size=(60, 7))
    y = np.arange(60) % classes
    x[:, 0] += y
    if kind == "logistic":
        model = LogisticRegression(C=0.5).fit(x, y)
    elif kind == "platt":
        model = CalibratedClassifierCV(SVC(kernel="linear", C=0.1), method="sigmoid", cv=3, ensemble=False).fit(x, y)
    else:
        model = MarginSigmoid(SVC(kernel="linear", C=0.1).fit(x, y))
    head = export_head(model, 7)
    probe = rng.normal(size=(25, 7)) * 3
    np.testing.assert_allclose(head.probabilities(probe), model.predict_proba(probe), atol=1e-9)


def test_a_saved_baseline_loads_without_pickle_and_predicts_the_same(arrays, tmp_path: Path) -> None:
    cfg = load_config(overrides=["preset=tiny"])
    baseline = fit_family("svm", arrays, AUS, cfg).model
    file = tmp_path / "baseline.npz"
    baseline.save(file)
    with np.load(file, allow_pickle=False) as stored:  # raises on any object array
        assert "meta" in stored.files
    loaded = LinearBaseline.load(file)
    faces = arrays["test"].images
    for key in ("emotion", "aus"):
        np.testing.assert_array_equal(loaded.probabilities(faces)[key], baseline.probabilities(faces)[key])


def test_a_head_fitted_on_one_class_is_kept_as_none_and_predicts_zero(arrays, tmp_path: Path) -> None:
    cfg = load_config(overrides=["preset=tiny"])
    one_class = {**arrays}
    train = arrays["train"]
    aus = train.labels["aus"].copy()
    aus[:, 3] = 0  # AU12 never present in training
    one_class["train"] = SplitArrays(train.images, {**train.labels, "aus": aus})
    baseline = fit_family("logreg", one_class, AUS, cfg).model
    assert baseline.au_heads[3] is None and baseline.au_heads[0] is not None
    file = tmp_path / "b.npz"
    baseline.save(file)
    probs = LinearBaseline.load(file).probabilities(arrays["test"].images)
    assert (probs["aus"][:, 3] == 0).all() and probs["aus"][:, 0].std() > 0


def _truth_and_noise(val: SplitArrays) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Probabilities close to val's labels, and random ones: a good and a useless model on both heads."""
    truth = {"emotion": val.labels["emotion"] * 0.8 + 0.2 / 3, "aus": val.labels["aus"] * 0.8 + 0.1}
    rng = np.random.default_rng(1)
    noise = {"emotion": rng.dirichlet(np.ones(3), len(val.images)), "aus": rng.random((len(val.images), len(AUS)))}
    return truth, noise


def test_the_weight_is_chosen_on_val_and_ties_go_to_the_resnet(arrays) -> None:
    cfg = load_config(overrides=["preset=tiny", "threshold_min_positives=3"])
    val = arrays["val"]
    truth, noise = _truth_and_noise(val)
    assert choose_weight(val, truth, noise, AUS, cfg) == 0.0  # a baseline that only adds noise gets nothing
    assert choose_weight(val, noise, truth, AUS, cfg) == 0.5  # a far better baseline: half, never more
    assert choose_weight(val, truth, truth, AUS, cfg) == 0.0  # nothing to gain on val: the ResNet alone


def test_separate_weights_follow_each_heads_own_val_score(arrays) -> None:
    """A baseline that is good on one head only: one weight must compromise, two need not."""
    cfg = load_config(overrides=["preset=tiny", "threshold_min_positives=3"])
    val = arrays["val"]
    truth, noise = _truth_and_noise(val)
    network = {"emotion": truth["emotion"], "aus": noise["aus"]}  # right on emotion, guessing AUs
    baseline = {"emotion": noise["emotion"], "aus": truth["aus"]}  # the other way round
    assert choose_head_weights(val, network, baseline, AUS, cfg) == {"emotion": 0.0, "aus": 0.5}
    assert choose_head_weights(val, baseline, network, AUS, cfg) == {"emotion": 0.5, "aus": 0.0}
    shared = choose_weight(val, network, baseline, AUS, cfg)
    separate = choose_head_weights(val, network, baseline, AUS, cfg)
    assert _val_objective(val, fuse(network, baseline, separate), AUS, cfg) > _val_objective(
        val, fuse(network, baseline, shared), AUS, cfg
    )
    # Without AUs only the emotion head is fused, and its weight stands for both.
    none = np.zeros((len(val.images), 0))
    no_aus = SplitArrays(val.images, {"emotion": val.labels["emotion"], "aus": none})
    emotion_only = {"emotion": baseline["emotion"], "aus": none}
    assert choose_head_weights(no_aus, emotion_only, {"emotion": truth["emotion"], "aus": none}, [], cfg) == {
        "emotion": 0.5,
        "aus": 0.5,
    }


def test_fusing_with_a_weight_per_head(arrays) -> None:
    rng = np.random.default_rng(4)
    a = {"emotion": rng.dirichlet(np.ones(3), 5), "aus": rng.random((5, 2))}
    b = {"emotion": rng.dirichlet(np.ones(3), 5), "aus": rng.random((5, 2))}
    fused = fuse(a, b, {"emotion": 0.5, "aus": 0.1})
    np.testing.assert_allclose(fused["emotion"], 0.5 * a["emotion"] + 0.5 * b["emotion"])
    np.testing.assert_allclose(fused["aus"], 0.9 * a["aus"] + 0.1 * b["aus"])
    baseline = fit_family("logreg", arrays, AUS, load_config(overrides=["preset=tiny"])).model
    assert Fusion(baseline, 0.3).weights == {"emotion": 0.3, "aus": 0.3}  # one weight: both heads
    assert Fusion(baseline, 0.3, 0.0).weights == {"emotion": 0.3, "aus": 0.0}


def test_a_model_logged_before_per_head_weights_loads_with_its_one_weight(arrays, tmp_path: Path) -> None:
    from ckrun.predict import FUSION_ARTIFACT, _read_fusions

    baseline = fit_family("logreg", arrays, AUS, load_config(overrides=["preset=tiny"])).model
    baseline.save(tmp_path / "b.npz")
    artifacts = {FUSION_ARTIFACT: str(tmp_path / "fusion.json"), f"{FUSION_ARTIFACT}_0": str(tmp_path / "b.npz")}
    (tmp_path / "fusion.json").write_text(json.dumps([{"weight": 0.4}]))
    (old,) = _read_fusions(artifacts)
    assert old is not None and old.weights == {"emotion": 0.4, "aus": 0.4}
    (tmp_path / "fusion.json").write_text(json.dumps([{"weight": 0.4, "au_weight": 0.1}]))
    (new,) = _read_fusions(artifacts)
    assert new is not None and new.weights == {"emotion": 0.4, "aus": 0.1}


def test_fusing_averages_and_a_fold_without_fusion_counts_as_the_resnet(arrays) -> None:
    cfg = load_config(overrides=["preset=tiny"])
    baseline = fit_family("logreg", arrays, AUS, cfg).model
    faces = arrays["test"].images
    rng = np.random.default_rng(2)
    resnet = {"emotion": rng.dirichlet(np.ones(3), len(faces)), "aus": rng.random((len(faces), 2))}
    aus = ["AU4", "AU1"]  # the ResNet's AU order differs from the baseline's: matched by name
    base = baseline.probabilities(faces)
    base = {"emotion": base["emotion"], "aus": base["aus"][:, [2, 0]]}
    fusion = Fusion(baseline, 0.4)
    one = fuse_all(resnet, [fusion], faces[..., None], 1, aus)
    for key in ("emotion", "aus"):
        np.testing.assert_allclose(one[key], 0.6 * resnet[key] + 0.4 * base[key])
    folds = fuse_all(resnet, [fusion, None], faces[..., None], 1, aus)
    expected = fuse(resnet, base, 0.2)  # mean of the fused fold and the plain one
    for key in ("emotion", "aus"):
        np.testing.assert_allclose(folds[key], expected[key])


def test_baseline_faces_are_the_resnets_own_face_in_grey_at_48_px() -> None:
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 255, (2, 96, 96, 1), dtype=np.uint8)
    expected = np.stack([cv2.resize(f[..., 0], (48, 48), interpolation=cv2.INTER_AREA) for f in grey])
    np.testing.assert_array_equal(baseline_faces(grey, 1), expected)
    neutral = rng.integers(0, 255, (2, 96, 96, 1), dtype=np.uint8)
    stacked = np.concatenate([grey, neutral], axis=-1)  # reference=neutral: the face, then its neutral frame
    np.testing.assert_array_equal(baseline_faces(stacked, 1), expected)
    colour = rng.integers(0, 255, (2, 48, 48, 3), dtype=np.uint8)
    np.testing.assert_array_equal(baseline_faces(colour, 3)[0], cv2.cvtColor(colour[0], cv2.COLOR_RGB2GRAY))


def test_a_fusion_weight_without_fusion_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="fusion_weight"):
        load_config(overrides=["preset=tiny", "fusion_weight=0.3"])
    assert load_config(overrides=["preset=tiny", "fusion=baseline", "fusion_weight=0.3"]).fusion_weight == 0.3
    with pytest.raises(ConfigError, match="fusion_heads=separate"):
        load_config(overrides=["preset=tiny", "fusion=baseline", "fusion_weight=0.3", "fusion_heads=separate"])
    with pytest.raises(ConfigError, match="fusion_heads"):
        load_config(overrides=["preset=tiny", "fusion_heads=both"])


# --------------------------------------------------------------------------------------
# End to end in MLflow

TINY = ["preset=tiny", "epochs=1", "min_au_count=3", "threshold_min_positives=3", "explain_images_per_class=0"]


@pytest.fixture(scope="module")
def fused_run(store: Path, tiny_ckplus: Path):
    from ckrun.data.loader import prepare_for_config
    from ckrun.train import train

    cfg = load_config(overrides=[*TINY, "tta=flip", "fusion=baseline", "fusion_weight=0.5"])
    data = prepare_for_config(tiny_ckplus, cfg, progress=False)
    return data, train(cfg, data, experiment="fusion", verbose=False)


@pytest.mark.slow
def test_a_fused_run_logs_the_weight_and_the_resnet_alone(fused_run) -> None:
    _, result = fused_run
    run = tracking.get_run(result.run_id)
    assert run.data.params["fusion"] == "baseline" and run.data.params["fusion_family"] in FAMILIES
    metrics = run.data.metrics
    assert metrics["fusion_weight_chosen"] == 0.5
    assert {"unfused_val_objective", "unfused_test_emotion_accuracy", "unfused_test_au_f1"} <= set(metrics)
    # The fit diagnosis judges the ResNet alone, not the baseline's fit to its own training rows.
    alone = {k.removeprefix("unfused_"): v for k, v in metrics.items() if k.startswith("unfused_")}
    gap = names.objective(alone, "train") - names.objective(alone, "val")
    assert metrics["fit_gap"] == pytest.approx(gap)
    assert metrics["fit_gap"] != pytest.approx(names.objective(metrics, "train") - names.objective(metrics, "val"))
    assert result.fusion is not None and result.fusion.weight == 0.5
    # The Keras flavour would be the ResNet alone, which is not the model the run scored.
    assert tracking.run_model_uri(result.run_id, tracking.KERAS_MODEL_NAME) is None


@pytest.mark.slow
def test_the_logged_fused_model_predicts_what_the_run_logged(fused_run, store: Path, tiny_ckplus: Path) -> None:
    data, result = fused_run
    predictor = tracking.load_predictor(result.model_uri)
    assert len(predictor.fusions) == 1 and predictor.fusions[0] is not None
    assert predictor.fusions[0].weight == 0.5
    test = data.part("test")
    logged = pd.read_csv(tracking.download_artifact(result.run_id, "predictions/test.csv", store / "p"))
    probs = predictor.probabilities(predictor.faces(test["path"].tolist(), test["landmarks"].tolist()))
    np.testing.assert_allclose(probs["emotion"], logged[["p_negative", "p_positive", "p_surprise"]], atol=1e-5)
    au = predictor.prep.aus[0]
    np.testing.assert_allclose(probs["aus"][:, 0], logged[f"{au}_prob"], atol=1e-5)
    # Half of it is the baseline: the unfused ResNet gives other probabilities.
    alone = type(predictor)(predictor.models, predictor.prep)
    plain = alone.probabilities(predictor.faces(test["path"].tolist(), test["landmarks"].tolist()))
    assert np.abs(plain["emotion"] - probs["emotion"]).max() > 1e-3
    # The pyfunc (what `mlflow models serve` loads) and `ckrun predict` fuse the same way.
    paths = test["path"].head(3).tolist()
    frame = mlflow.pyfunc.load_model(result.model_uri).predict(pd.DataFrame({"image": paths}))
    out = CliRunner().invoke(cli, ["predict", result.model_uri, *paths])
    assert out.exit_code == 0, out.output
    np.testing.assert_allclose(frame["p_negative"], [r["p_negative"] for r in json.loads(out.output)], atol=1e-6)
    np.testing.assert_allclose(frame["p_negative"], probs["emotion"][:3, 0], atol=1e-5)
    # `ckrun evaluate` reproduces the logged test metrics.
    out = CliRunner().invoke(cli, ["evaluate", result.model_uri, "--data", str(tiny_ckplus), "--experiment", "fusion"])
    assert out.exit_code == 0, out.output
    evaluated = tracking.get_run(out.output.strip().splitlines()[-1].split()[-1]).data.metrics
    for key in ("test_emotion_accuracy", "test_au_f1"):
        assert evaluated[key] == pytest.approx(result.metrics[key], abs=1e-6), key


@pytest.mark.slow
def test_the_fold_ensemble_carries_each_folds_baseline(store: Path, tiny_ckplus: Path) -> None:
    from ckrun.crossval import cross_validate
    from ckrun.data.loader import prepare_for_config

    cfg = load_config(overrides=[*TINY, "log_model=false", "fusion=baseline", "fusion_weight=0.3"])
    data = prepare_for_config(tiny_ckplus, cfg, progress=False)
    result = cross_validate(cfg, data, 3, experiment="fusion-cv", ensemble=True)
    predictor = tracking.load_predictor(result.model_uri)
    assert [f.weight for f in predictor.fusions if f] == [0.3, 0.3, 0.3]
    folds = [r.fusion for r in result.folds]
    test = data.part("test")
    faces = predictor.faces(test["path"].tolist(), test["landmarks"].tolist())
    resnet = type(predictor)(predictor.models, predictor.prep, member_preps=predictor.member_preps)
    expected = fuse_all(resnet.probabilities(faces), folds, faces, predictor.prep.channels, predictor.prep.aus)
    got = predictor.probabilities(faces)
    for key in ("emotion", "aus"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_run_with_a_weight_per_head_logs_and_serves_both(
    store: Path, tiny_ckplus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever val chooses, the run logs each head's weight and its model fuses each head by it."""
    from ckrun import fusion_fit
    from ckrun.data.loader import prepare_for_config
    from ckrun.train import train

    chosen = {"emotion": 0.4, "aus": 0.1}
    monkeypatch.setattr(fusion_fit, "choose_head_weights", lambda *args: dict(chosen))
    cfg = load_config(overrides=[*TINY, "fusion=baseline", "fusion_heads=separate"])
    data = prepare_for_config(tiny_ckplus, cfg, progress=False)
    result = train(cfg, data, experiment="fusion-heads", verbose=False)
    run = tracking.get_run(result.run_id)
    assert run.data.params["fusion_heads"] == "separate"
    assert (run.data.metrics["fusion_weight_chosen"], run.data.metrics["fusion_au_weight_chosen"]) == (0.4, 0.1)
    predictor = tracking.load_predictor(result.model_uri)
    assert predictor.fusions[0] is not None and predictor.fusions[0].weights == chosen
    test = data.part("test")
    logged = pd.read_csv(tracking.download_artifact(result.run_id, "predictions/test.csv", store / "heads"))
    probs = predictor.probabilities(predictor.faces(test["path"].tolist(), test["landmarks"].tolist()))
    np.testing.assert_allclose(probs["emotion"], logged[["p_negative", "p_positive", "p_surprise"]], atol=1e-5)
    for j, au in enumerate(predictor.prep.aus):
        np.testing.assert_allclose(probs["aus"][:, j], logged[f"{au}_prob"], atol=1e-5)


def test_a_study_fits_the_baseline_once_per_split(arrays, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trials share a split: the second trial reuses the kept baseline; another split refits."""
    from ckrun import fusion_fit

    calls: list[int] = []
    real = fusion_fit.select_family

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fusion_fit, "select_family", counting)
    monkeypatch.setattr(fusion_fit, "_CACHE", type(fusion_fit._CACHE)())
    cfg = load_config(overrides=["preset=tiny"])
    first = fusion_fit.select_baseline(arrays, AUS, cfg, None)
    again = fusion_fit.select_baseline(arrays, AUS, cfg, None)
    assert again is first and len(calls) == 1
    other = {
        **arrays,
        "train": SplitArrays(arrays["train"].images[:60], {k: v[:60] for k, v in arrays["train"].labels.items()}),
    }
    fusion_fit.select_baseline(other, AUS, cfg, None)
    fusion_fit.select_baseline(arrays, AUS, cfg.updated(seed=1), None)
    assert len(calls) == 3


def test_a_predictor_refuses_a_baseline_missing_one_of_its_aus(arrays) -> None:
    from ckrun.data.pipeline import Preprocessing
    from ckrun.predict import Predictor

    cfg = load_config(overrides=["preset=tiny"])
    baseline = fit_family("logreg", arrays, AUS[:2], cfg).model  # AU1 and AU2 only
    prep = Preprocessing(48, 1, "none", 0.0, (120.0,), (60.0,), aus=("AU1", "AU4"))
    with pytest.raises(ValueError, match="AU4"):
        Predictor([object()], prep, fusions=[Fusion(baseline, 0.5)])
    assert Predictor([object()], prep, fusions=[None]).fusions == []  # no baseline: the ResNet alone
