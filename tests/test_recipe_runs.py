"""Recipe options end to end in MLflow: a two-seed ensemble with flip TTA, and a CV fold ensemble.

The logged pyfunc model, `ckrun predict` and `ckrun evaluate` must give exactly the numbers the
run logged, TTA and averaging included, because they all predict through one `Predictor`.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ckrun import names, tracking
from ckrun.cli import cli
from ckrun.config import load_config
from ckrun.data.loader import prepare_for_config
from ckrun.predict import Predictor

pytestmark = pytest.mark.slow

TINY = ["preset=tiny", "epochs=1", "min_au_count=3", "threshold_min_positives=3", "explain_images_per_class=0"]


@pytest.fixture(scope="module")
def ensemble_run(store: Path, tiny_ckplus: Path):
    from ckrun.train import train

    cfg = load_config(overrides=[*TINY, "tta=flip", "ensemble_seeds=2"])
    data = prepare_for_config(tiny_ckplus, cfg, progress=False)
    return cfg, data, train(cfg, data, experiment="recipe", verbose=False)


def _member_mean(predictor: Predictor, faces: np.ndarray) -> dict[str, np.ndarray]:
    """Mean over members of mean(image, mirror), each member run by hand on its own normalisation."""
    total: dict[str, list[np.ndarray]] = {"emotion": [], "aus": []}
    for model, prep in zip(predictor.models, predictor.member_preps, strict=True):
        for view in (faces, faces[:, :, ::-1]):
            out = model.predict((view.astype("float32") - prep.mean[0]) / prep.std[0], verbose=0)
            total["emotion"].append(np.asarray(out["emotion"]))
            columns = [prep.aus.index(a) for a in predictor.prep.aus]
            total["aus"].append(np.asarray(out["aus"])[:, columns])
    return {key: np.mean(values, axis=0) for key, values in total.items()}


def test_seed_ensemble_logs_members_under_their_own_names(ensemble_run) -> None:
    _, _, result = ensemble_run
    run = tracking.get_run(result.run_id)
    assert run.data.params["ensemble_seeds"] == "2" and run.data.params["tta"] == "flip"
    metrics = run.data.metrics
    assert metrics["ensemble_members"] == 2
    assert {"member1_objective", "member2_objective", "member2_best_epoch", "selected_val_objective"} <= set(metrics)
    # The run's own curves keep their names (member 1); member 2's are prefixed.
    assert [s for s, _ in tracking.metric_history(result.run_id, "member2_val_loss")] == [1]
    assert [s for s, _ in tracking.metric_history(result.run_id, "val_loss")] == [1]
    assert len(result.models) == 2


def test_logged_ensemble_predicts_like_the_run_scored_it(ensemble_run, tmp_path: Path) -> None:
    _, data, result = ensemble_run
    predictor = tracking.load_predictor(result.model_uri)
    assert len(predictor.models) == 2 and predictor.prep.tta == "flip"
    assert predictor.prep.thresholds == result.preprocessing.thresholds
    test = data.part("test")
    faces = predictor.faces(test["path"].tolist(), test["landmarks"].tolist())
    probs = predictor.probabilities(faces)
    expected = _member_mean(predictor, faces)
    for key in ("emotion", "aus"):
        np.testing.assert_allclose(probs[key], expected[key], rtol=1e-5, atol=1e-6)
    # The pyfunc (what `mlflow models serve` loads) and `ckrun predict` give the same table.
    paths = test["path"].head(3).tolist()
    frame = mlflow.pyfunc.load_model(result.model_uri).predict(pd.DataFrame({"image": paths}))
    out = CliRunner().invoke(cli, ["predict", result.model_uri, *paths])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    np.testing.assert_allclose(frame["p_negative"], [r["p_negative"] for r in rows], atol=1e-6)
    np.testing.assert_allclose(frame["p_negative"], probs["emotion"][:3, 0], atol=1e-5)
    # An ensemble has no single-Keras flavour.
    assert tracking.run_model_uri(result.run_id, tracking.KERAS_MODEL_NAME) is None


def test_evaluate_on_the_ensemble_reproduces_the_logged_test_metrics(ensemble_run, tiny_ckplus: Path) -> None:
    _, _, result = ensemble_run
    out = CliRunner().invoke(cli, ["evaluate", result.model_uri, "--data", str(tiny_ckplus), "--experiment", "recipe"])
    assert out.exit_code == 0, out.output
    assert "inflated" not in out.output  # a seed ensemble was fitted on the train split only
    evaluated = tracking.get_run(out.output.strip().splitlines()[-1].split()[-1]).data.metrics
    for key in ("test_emotion_f1", "test_emotion_accuracy", "test_au_f1", "test_au_roc_auc_macro"):
        assert evaluated[key] == pytest.approx(result.metrics[key], abs=1e-6), key


def test_cross_validation_logs_folds_and_mean_std_and_averages_the_fold_models(store: Path, tiny_ckplus: Path) -> None:
    """One CV run (3 folds) checks both the fold logging and the ensemble of the fold models."""
    from ckrun.crossval import cross_validate

    cfg = load_config(overrides=[*TINY, "log_model=false", "tta=flip"])
    data = prepare_for_config(tiny_ckplus, cfg, progress=False)
    result = cross_validate(cfg, data, 3, experiment="recipe-cv", ensemble=True)
    parent = tracking.get_run(result.run_id)
    assert parent.data.tags["ckrun.kind"] == "cv"
    children = tracking.child_runs(result.run_id)
    assert len(children) == 3 and set(children["tags.ckrun.fold"]) == {"1", "2", "3"}
    values = children["metrics.test_emotion_f1"].to_numpy()
    assert parent.data.metrics["test_emotion_f1"] == pytest.approx(values.mean())
    assert parent.data.metrics["test_emotion_f1_std"] == pytest.approx(values.std(ddof=1))
    assert not [k for k in parent.data.metrics if names.is_interval(k)]  # fold intervals are not averaged
    folds_table = pd.read_csv(tracking.download_artifact(result.run_id, "cv_folds.csv", store / "cv"))
    assert (folds_table["test_emotion_f1_ci_low"] <= folds_table["test_emotion_f1"]).all()
    tested = [set(pd.read_csv(tracking.download_artifact(r, "data/split.csv", store / r)).query(
        "split == 'test'")["subject"]) for r in children["run_id"]]  # fmt: skip
    assert set.union(*tested) == set(data.manifest["subject"]) and sum(map(len, tested)) == data.manifest[
        "subject"].nunique()  # fmt: skip

    # The fold models, averaged into one logged model.
    assert result.model_uri and tracking.model_run_id(result.model_uri) == result.run_id
    assert parent.data.params["cv_ensemble"] == "True" and parent.data.params["ensemble_members"] == "3"
    predictor = tracking.load_predictor(result.model_uri)
    folds = [r.preprocessing for r in result.folds]
    assert [p.mean for p in predictor.member_preps] == [p.mean for p in folds]  # each fold's own normalisation
    aus = predictor.prep.aus
    assert set(aus) == set.intersection(*(set(p.aus) for p in folds))
    for j, au in enumerate(aus):
        assert predictor.prep.thresholds[j] == pytest.approx(np.mean([p.thresholds[p.aus.index(au)] for p in folds]))
    test = data.part("test")
    faces = predictor.faces(test["path"].tolist(), test["landmarks"].tolist())
    fold_models = Predictor([m for r in result.folds for m in r.models], predictor.prep, member_preps=folds)
    expected = _member_mean(fold_models, faces)
    got = predictor.probabilities(faces)
    for key in ("emotion", "aus"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6)
    out = CliRunner().invoke(cli, ["evaluate", result.model_uri, "--data", str(tiny_ckplus), "--experiment", "recipe"])
    assert out.exit_code == 0, out.output
    assert "in the training split of all but one of them, so these scores are inflated" in out.output


def test_ensemble_flag_needs_cross_validation(bare_mlflow_store: Path, tiny_ckplus: Path) -> None:
    args = ["train", "--data", str(tiny_ckplus), "--ensemble"] + [a for o in TINY for a in ("--set", o)]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 2 and "--cv" in out.output
    assert not (bare_mlflow_store / "mlflow.db").exists()
