"""End to end: a tiny config trains on a tiny synthetic CK+ and leaves a complete MLflow run."""

from __future__ import annotations

import io
import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from ckrun import names, tracking
from ckrun.baselines import objective_metric
from ckrun.baselines.families import FAMILIES
from ckrun.cli import cli
from ckrun.config import load_config
from ckrun.data.loader import prepare_for_config

pytestmark = pytest.mark.slow

TINY = ["preset=tiny", "epochs=2", "min_au_count=3", "threshold_min_positives=3"]

CONTRACT_ARTIFACTS = {
    "confusion_matrix/emotion_val.png",
    "confusion_matrix/emotion_val.json",
    "confusion_matrix/emotion_test.png",
    "confusion_matrix/emotion_test.json",
    "au/per_au_val.json",
    "au/per_au_test.json",
    "plots/learning_curves.png",
    "diagnosis.md",
    "config.yaml",
    "data/split.csv",
    "predictions/val.csv",
    "predictions/test.csv",
    "uncertainty/intervals_test.json",
    "au/curves_test.json",
    "calibration/reliability_test.json",
    "emfacs/consistency_test.json",
    "emfacs/contradictions_test.csv",
    "plots/au_pr_curves_test.png",
    "plots/au_threshold_f1_test.png",
    "plots/reliability_test.png",
    "plots/emfacs_test.png",
}
HEADLINE = ("emotion_accuracy", "emotion_f1", "au_f1", "au_f1_weighted")


def _artifacts(run_id: str, path: str = "") -> set[str]:
    client = MlflowClient()
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            found |= _artifacts(run_id, item.path)
        else:
            found.add(item.path)
    return found


@pytest.fixture(scope="module")
def trained(store: Path, tiny_ckplus: Path):
    from ckrun.train import train

    cfg = load_config(overrides=[*TINY, "calibrate=true"])
    data = prepare_for_config(tiny_ckplus, cfg, progress=False)
    result = train(cfg, data, experiment="unit", verbose=False)
    return cfg, data, result


def test_run_has_every_named_param_metric_tag_and_artifact(trained) -> None:
    cfg, data, result = trained
    run = tracking.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith("train-")
    params = run.data.params
    for key in (
        "l2",
        "learning_rate",
        "epochs",
        "filters",
        "blocks",
        "image_size",
        "batch_size",
        "seed",
        "data_digest",
    ):
        assert key in params
    assert json.loads(params["filters"]) == list(cfg.filters)
    assert params["data_digest"] == data.digest
    assert (params["crop_resolved"], params["align_resolved"]) == ("landmarks", "landmarks")  # decided per dataset
    metrics = run.data.metrics
    for split in names.SPLITS:
        for name in ("emotion_accuracy", "emotion_f1", "au_f1", "au_f1_micro", "au_precision_weighted",
                     "au_recall_weighted", "au_f1_weighted"):  # fmt: skip
            assert f"{split}_{name}" in metrics, f"{split}_{name} missing"
            assert 0.0 <= metrics[f"{split}_{name}"] <= 1.0
    for key in ("best_epoch", "fit_gap", "majority_emotion_accuracy"):
        assert key in metrics
    assert 1 <= metrics["best_epoch"] <= cfg.epochs
    # The latest (shown) value of a shared name is the restored model's final score.
    assert metrics["val_emotion_f1"] == pytest.approx(result.metrics["val_emotion_f1"])
    tags = run.data.tags
    assert tags["ckrun.kind"] == "train"
    assert tags["fit_diagnosis"] in {"overfitting", "underfitting", "balanced"}
    assert tags["mlflow.note.content"].startswith("Two-headed ResNet")
    assert _artifacts(result.run_id) >= CONTRACT_ARTIFACTS
    assert run.inputs.dataset_inputs[0].dataset.digest == data.digest


def test_predictions_intervals_and_analysis_are_logged(trained, tmp_path: Path) -> None:
    from ckrun.metrics import evaluate_split
    from ckrun.predictions import read_predictions_csv

    _, data, result = trained
    metrics = tracking.get_run(result.run_id).data.metrics
    for name in HEADLINE:
        low, value, high = (metrics[f"test_{name}{s}"] for s in ("_ci_low", "", "_ci_high"))
        assert low - 1e-9 <= value <= high + 1e-9, name  # (the counts and sklearn round differently)
    for name in ("emotion_ece", "au_ece", "au_average_precision_macro", "au_f1_skew_normalised", "emfacs_consistency",
                 "emfacs_consistency_truth"):  # fmt: skip
        assert 0.0 <= metrics[f"test_{name}"] <= 1.0 and f"val_{name}" in metrics, name
    text = tracking.read_artifact_text(result.run_id, "predictions/test.csv")
    pred = read_predictions_csv(text, "predictions/test.csv")
    test = data.part("test")
    assert pred.frame["path"].tolist() == test["path"].tolist()
    assert pred.frame["subject"].tolist() == test["subject"].tolist()
    assert pred.aus == list(result.preprocessing.aus)
    assert np.allclose(pred.thresholds, result.preprocessing.thresholds)
    # The logged table alone reproduces the logged test scores (what compare and the report rely on).
    rescored = evaluate_split("test", pred.labels(), pred.probs(), aus=pred.aus, thresholds=pred.thresholds).metrics
    for name in (*HEADLINE, "au_f1_05", "au_roc_auc_macro"):
        assert rescored[f"test_{name}"] == pytest.approx(metrics[f"test_{name}"], abs=1e-6), name
    per_au = pd.read_json(tracking.download_artifact(result.run_id, "au/per_au_test.json", tmp_path))
    assert {"average_precision", "f1_05", "f1_skew_normalised", "skew", "ece"} <= set(per_au.columns)


def test_calibration_is_fitted_logged_and_applied_by_predict(trained) -> None:
    from ckrun.predictions import read_predictions_csv

    _, data, result = trained
    prep = result.preprocessing
    metrics = tracking.get_run(result.run_id).data.metrics
    assert metrics["temperature_emotion"] == pytest.approx(prep.emotion_temperature)
    assert prep.emotion_temperature != 1.0 and len(prep.au_temperatures) == len(prep.aus)
    assert json.loads(tracking.read_artifact_text(result.run_id, "calibration.json"))["emotion"] == pytest.approx(
        prep.emotion_temperature)  # fmt: skip
    logged = read_predictions_csv(tracking.read_artifact_text(result.run_id, "predictions/test.csv"), "t").frame
    paths = data.part("test")["path"].head(4).tolist()
    predicted = tracking.load_predictor(result.model_uri).predict_paths(paths)  # the served model scales too
    columns = ["p_negative", "p_positive", "p_surprise", *(f"{au}_prob" for au in prep.aus)]
    assert np.allclose(predicted[columns].to_numpy(), logged[columns].head(4).to_numpy(), atol=1e-4)


def test_compare_pairs_runs_on_their_logged_predictions(trained, tiny_ckplus: Path, tmp_path: Path) -> None:
    _, _, result = trained
    out = CliRunner().invoke(cli, ["evaluate", result.model_uri, "--data", str(tiny_ckplus), "--experiment", "unit"])
    evaluation = out.output.strip().splitlines()[-1].split()[-1]
    assert "predictions/test.csv" in _artifacts(evaluation)
    same = CliRunner().invoke(cli, ["compare", result.run_id, evaluation, "--out", str(tmp_path / "cmp.csv")])
    assert same.exit_code == 0, same.output
    assert "emotion_f1: no significant difference at 0.05 (difference +0.000, p = 1.000)." in same.output
    table = pd.read_csv(tmp_path / "cmp.csv")
    assert set(table["metric"]) == set(HEADLINE) and (table["difference"] == 0).all()
    again = CliRunner().invoke(cli, ["compare", result.run_id, evaluation, "--out", str(tmp_path / "cmp.csv")])
    assert again.exit_code == 1 and "exists" in again.output  # nothing the user wrote is overwritten
    with tracking.start_run(kind="train", run_name="no-predictions", experiment="unit") as bare:
        pass
    missing = CliRunner().invoke(cli, ["compare", result.run_id, bare.run_id])
    assert (
        missing.exit_code == 1 and missing.output.startswith("error:") and "no predictions/test.csv" in missing.output
    )
    assert len(missing.output.strip().splitlines()) == 1


def test_explanations_are_logged_and_ckrun_explain_writes_them(trained, tmp_path: Path) -> None:
    cfg, data, result = trained
    logged = {a for a in _artifacts(result.run_id) if a.startswith("explanations/")}
    overlays = {a for a in logged if a.endswith(".png")}
    test = data.part("test")
    per_class = test["emotion"].dropna().value_counts()
    assert len(overlays) == sum(min(cfg.explain_images_per_class, int(n)) for n in per_class) > 0
    assert {"explanations/region_shares.csv", "explanations/summary.json"} <= logged
    shares = pd.read_csv(io.StringIO(tracking.read_artifact_text(result.run_id, "explanations/region_shares.csv")))
    assert len(shares) and shares["share"].between(0, 1).all() and shares["region_area"].between(0, 1).all()
    summary = json.loads(tracking.read_artifact_text(result.run_id, "explanations/summary.json"))
    metrics = tracking.get_run(result.run_id).data.metrics
    if summary["macro_share"] is not None:
        assert metrics["test_gradcam_region_share"] == pytest.approx(summary["macro_share"])
    images = test["path"].astype(str).tolist()[:2]
    out = tmp_path / "why"
    ran = CliRunner().invoke(cli, ["explain", result.model_uri, *images, "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:02d}_{Path(p).stem}.png" for i, p in enumerate(images)]
    table = pd.read_csv(out / "region_shares.csv")
    assert set(table["path"]) == set(images)  # CK+ frames found their landmarks by path
    again = CliRunner().invoke(cli, ["explain", result.model_uri, images[0], "--out", str(out)])
    assert again.exit_code != 0 and "already exists" in again.output


def test_per_epoch_metrics_are_logged_with_epoch_steps(trained) -> None:
    cfg, _, result = trained
    for key in ("train_loss", "val_loss", "val_emotion_accuracy", "val_emotion_f1", "val_au_f1", "learning_rate"):
        history = tracking.metric_history(result.run_id, key)
        epoch_steps = [s for s, _ in history if s <= cfg.epochs]
        assert epoch_steps == list(range(1, cfg.epochs + 1)), key
    lr = [v for _, v in tracking.metric_history(result.run_id, "learning_rate")]
    assert lr[-1] < lr[0]  # cosine schedule decays


def test_logged_artifacts_hold_consistent_numbers(trained, tmp_path: Path) -> None:
    _, data, result = trained
    cm_file = tracking.download_artifact(result.run_id, "confusion_matrix/emotion_test.json", tmp_path)
    cm = json.loads(cm_file.read_text())
    test = data.part("test")
    assert np.asarray(cm["counts"]).sum() == test["emotion"].notna().sum()
    assert cm["classes"] == ["negative", "positive", "surprise"]
    per_au = pd.read_json(tracking.download_artifact(result.run_id, "au/per_au_test.json", tmp_path))
    assert list(per_au["au"]) == list(result.preprocessing.aus)
    assert set(per_au.columns) >= {"precision", "recall", "f1", "support", "roc_auc", "threshold"}
    for au, support in zip(per_au["au"], per_au["support"], strict=True):
        assert support == int((test[au] == 1).sum())
    diagnosis = tracking.download_artifact(result.run_id, "diagnosis.md", tmp_path).read_text()
    assert result.diagnosis.verdict in diagnosis and "fit_gap" in diagnosis


def test_logged_split_is_the_trained_split_and_subject_exclusive(trained, tmp_path: Path) -> None:
    """`data/split.csv` is what the run trained on; CK+ subjects (several sequences each) sit in one split."""
    _, data, result = trained
    logged = pd.read_csv(tracking.download_artifact(result.run_id, "data/split.csv", tmp_path))
    assert list(logged["path"]) == list(data.manifest["path"]) and list(logged["split"]) == list(data.manifest["split"])
    assert (logged.groupby("subject")["sequence"].nunique() > 1).all()  # the CK+ shape the split must respect
    assert (logged.groupby("subject")["split"].nunique() == 1).all(), logged.groupby("subject")["split"].unique()
    assert set(logged["split"]) == set(names.SPLITS)
    params = tracking.get_run(result.run_id).data.params
    assert [int(params[f"n_{s}"]) for s in names.SPLITS] == [(logged["split"] == s).sum() for s in names.SPLITS]


def test_predict_cli_and_pyfunc_agree(trained, tiny_ckplus: Path) -> None:
    _, data, result = trained
    paths = data.part("test")["path"].head(3).tolist()
    out = CliRunner().invoke(cli, ["predict", result.model_uri, *paths, "--format", "json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    aus = list(result.preprocessing.aus)
    expected = ["path", "emotion", "p_negative", "p_positive", "p_surprise"]
    expected += [c for au in aus for c in (f"{au}_prob", au)]
    assert list(rows[0]) == expected
    assert [r["path"] for r in rows] == paths
    for r in rows:
        assert r["emotion"] in {"negative", "positive", "surprise"}
        assert sum(r[f"p_{c}"] for c in ("negative", "positive", "surprise")) == pytest.approx(1.0, abs=1e-4)
        assert all(r[au] in (0, 1) for au in aus)

    csv = CliRunner().invoke(cli, ["predict", result.model_uri, *paths, "--format", "csv"])
    assert csv.exit_code == 0 and csv.output.splitlines()[0].split(",") == expected

    pyfunc = mlflow.pyfunc.load_model(result.model_uri)
    frame = pyfunc.predict(pd.DataFrame({"image": paths}))
    assert list(frame.columns) == expected[1:]
    assert np.allclose(frame["p_positive"], [r["p_positive"] for r in rows], atol=1e-5)

    # The plain Keras flavour knows its preprocessing too.
    keras_uri = f"runs:/{result.run_id}/{tracking.KERAS_MODEL_NAME}"
    keras_rows = tracking.load_predictor(keras_uri).predict_paths(paths)
    assert np.allclose(keras_rows["p_positive"], frame["p_positive"], atol=1e-5)


def test_pyfunc_accepts_base64_images(trained) -> None:
    import base64

    _, data, result = trained
    path = data.part("test")["path"].iloc[0]
    encoded = base64.b64encode(Path(path).read_bytes()).decode()
    pyfunc = mlflow.pyfunc.load_model(result.model_uri)
    by_path = pyfunc.predict(pd.DataFrame({"image": [path]}))
    by_bytes = pyfunc.predict(pd.DataFrame({"image": [encoded], "landmarks": [data.part("test")["landmarks"].iloc[0]]}))
    assert by_bytes["emotion"].iloc[0] == by_path["emotion"].iloc[0]
    assert by_bytes["p_negative"].iloc[0] == pytest.approx(by_path["p_negative"].iloc[0], abs=1e-5)


def test_evaluate_logs_an_evaluation_run(trained, tiny_ckplus: Path) -> None:
    _, _, result = trained
    out = CliRunner().invoke(cli, ["evaluate", result.model_uri, "--data", str(tiny_ckplus), "--experiment", "unit"])
    assert out.exit_code == 0, out.output
    run_id = out.output.strip().splitlines()[-1].split()[-1]
    run = tracking.get_run(run_id)
    assert run.data.tags["ckrun.kind"] == "evaluate"
    assert run.data.tags["ckrun.evaluated_run_id"] == result.run_id
    # Same split rule as training: the test scores match the training run's.
    assert run.data.metrics["test_emotion_f1"] == pytest.approx(result.metrics["test_emotion_f1"], abs=1e-6)
    assert run.data.metrics["test_au_f1"] == pytest.approx(result.metrics["test_au_f1"], abs=1e-6)


def test_evaluate_sequences_scores_every_frame_of_the_test_sequences(trained, tiny_ckplus: Path) -> None:
    _, data, result = trained
    args = ["evaluate", result.model_uri, "--data", str(tiny_ckplus), "--experiment", "unit", "--sequences"]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    run_id = out.output.strip().splitlines()[-1].split()[-1]
    metrics = tracking.get_run(run_id).data.metrics
    frames = pd.read_csv(io.StringIO(tracking.read_artifact_text(run_id, "sequences/frames_test.csv")))
    test = data.part("test")
    assert set(frames["path"]) > set(test["path"].astype(str))  # the frames before the peaks too
    assert frames.groupby(["subject", "sequence"]).ngroups == test.groupby(["subject", "sequence"]).ngroups
    onsets = pd.read_csv(io.StringIO(tracking.read_artifact_text(run_id, "sequences/onsets_test.csv")))
    assert metrics["test_sequences"] == len(onsets)
    assert metrics["test_sequence_correct_at_apex"] == pytest.approx(onsets["correct_at_apex"].mean())
    if onsets["onset"].notna().any():
        assert metrics["test_sequence_onset"] == pytest.approx(onsets["onset"].mean())
    assert "plots/sequence_curves_test.png" in _artifacts(run_id, "plots")


def test_baseline_logs_the_same_metric_names(trained) -> None:
    from ckrun.baseline import run_baseline

    cfg, data, result = trained
    base = run_baseline(cfg, data, experiment="unit", c_grid=(0.01, 1.0))
    run = tracking.get_run(base.run_id)
    assert run.data.tags["ckrun.kind"] == "baseline" and run.info.run_name == f"baseline-{base.model}"
    final = {k for k in result.metrics if k.split("_")[0] in names.SPLITS and "gradcam" not in k}  # no conv maps
    assert final <= set(run.data.metrics)
    assert "majority_emotion_accuracy" in run.data.metrics
    assert {"confusion_matrix/emotion_test.json", "au/per_au_test.json", "diagnosis.md", "predictions/test.csv",
            "predictions/val.csv"} <= _artifacts(base.run_id)  # fmt: skip
    assert {f"test_{m}_ci_low" for m in HEADLINE} <= set(run.data.metrics)
    from ckrun.compare import compare_runs

    paired = compare_runs(result.run_id, base.run_id, samples=200, permutations=500)
    assert paired.result.n_images == len(data.part("test")) and set(paired.result.table["metric"]) == set(HEADLINE)
    # `best`: every family fitted on the logged grid, the kept one named with its Cs.
    params = run.data.params
    assert params["baseline_request"] == "best" and params["baseline_C_grid"] == "[0.01, 1.0]"
    assert params["baseline_model"] == base.model == params["model"]
    assert params["baseline_C"] == f"{base.c_emotion:g}" and float(params["baseline_C"]) in (0.01, 1.0)
    assert params["image_size"] == "48"
    assert params["au_list"] == tracking.get_run(result.run_id).data.params["au_list"]  # same AU selection
    assert {"baseline/families.csv", "baseline/candidates.csv"} <= _artifacts(base.run_id)
    assert len(base.candidates) == len(FAMILIES) * 2 and base.families["kept"].sum() == 1
    assert set(base.families["family"]) == set(FAMILIES)
    assert run.data.metrics["objective"] == max(base.families["val_objective"])
    assert run.data.metrics["objective"] == run.data.metrics[objective_metric(base.model)]


def test_invalid_config_is_rejected_before_a_run_exists(bare_mlflow_store: Path, tiny_ckplus: Path) -> None:
    for bad, key in ((["l2=-1"], "l2"), (["preset=huge"], "preset"), (["filters=[8,16,32]", "blocks=[1,1]"], "filters"),
                     (["image_size=16", "filters=[8,8,8,8,8]", "blocks=[1,1,1,1,1]"], "image_size")):  # fmt: skip
        args = ["train", "--data", str(tiny_ckplus)] + [a for b in bad for a in ("--set", b)]
        out = CliRunner().invoke(cli, args)
        assert out.exit_code == 1, out.output
        assert out.output.startswith("error:") and key in out.output
        assert len(out.output.strip().splitlines()) == 1
    assert not (bare_mlflow_store / "mlflow.db").exists()


def test_failure_ends_the_run_failed_and_keeps_what_was_logged(
    store: Path, tiny_ckplus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ckrun import train as train_module

    cfg = load_config(overrides=TINY)
    data = prepare_for_config(tiny_ckplus, cfg, progress=False)

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(train_module, "fit_model", boom)
    with pytest.raises(RuntimeError):
        train_module.train(cfg, data, experiment="unit", run_name="doomed", verbose=False)
    monkeypatch.setattr(train_module, "fit_model", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        train_module.train(cfg, data, experiment="unit", run_name="interrupted", verbose=False)
    runs = tracking.search_runs("unit")
    runs = runs[runs["tags.mlflow.runName"].isin(["doomed", "interrupted"])]
    status = dict(zip(runs["tags.mlflow.runName"], runs["status"], strict=True))
    assert status == {"doomed": "FAILED", "interrupted": "KILLED"}
    doomed = runs[runs["tags.mlflow.runName"] == "doomed"].iloc[0]
    assert doomed["params.l2"] == str(cfg.l2) and "disk on fire" in doomed["tags.ckrun.error"]
    assert "config.yaml" in _artifacts(doomed["run_id"])


def test_dataset_input_survives_a_concurrent_insert_of_the_same_dataset(
    mlflow_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers' first trials log one dataset at once: the loser's UNIQUE error is retried."""
    manifest = pd.DataFrame({"path": ["a.png", "b.png"], "emotion": ["happy", "fear"]})
    real, calls = mlflow.log_input, []

    def racing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            real(*args, **kwargs)  # the other worker's insert lands first ...
            raise mlflow.exceptions.MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets")
        return real(*args, **kwargs)  # ... and the retry only links it

    monkeypatch.setattr(mlflow, "log_input", racing)
    with tracking.start_run(kind="train", run_name="racer", experiment="race") as run:
        tracking.log_dataset(manifest, source="/data", digest="abc123", name="tiny")
    inputs = tracking.get_run(run.run_id).inputs.dataset_inputs
    assert len(calls) == 2 and [i.dataset.digest for i in inputs] == ["abc123"]

    monkeypatch.setattr(
        mlflow, "log_input", lambda *a, **k: (_ for _ in ()).throw(mlflow.exceptions.MlflowException("boom"))
    )
    with (
        pytest.raises(mlflow.exceptions.MlflowException, match="boom"),
        tracking.start_run(kind="train", run_name="other", experiment="race"),
    ):
        tracking.log_dataset(manifest, source="/data", digest="abc123", name="tiny")  # other errors are not retried
