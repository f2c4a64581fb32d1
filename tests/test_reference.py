"""`reference=neutral`: each face read beside its sequence's neutral frame, in training and prediction alike."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import use_store

from ckrun import tracking
from ckrun.cli import cli
from ckrun.config import load_config
from ckrun.data import reference
from ckrun.data.loader import prepare_for_config
from ckrun.data.sequences import frames_in
from ckrun.errors import DataError

TINY = ["preset=tiny", "epochs=1", "min_au_count=3", "threshold_min_positives=3", "explain_images_per_class=1"]


def test_the_neutral_frame_is_the_first_of_the_sequence_unless_the_data_names_one(tiny_ckplus: Path, tmp_path: Path):
    manifest = prepare_for_config(tiny_ckplus, load_config(overrides=["preset=tiny"]), progress=False).manifest
    rows = manifest.head(8)
    found = reference.neutral_paths(rows)
    for path, neutral in zip(rows["path"], found, strict=True):
        frames = frames_in(Path(path).parent)
        assert neutral == str(frames[min(frames)]) and neutral != path  # peak rows are never the first frame
    named = rows.assign(neutral=[None, str(rows["path"].iloc[0]), *[None] * 6])
    assert reference.neutral_paths(named)[1] == rows["path"].iloc[0]  # a `neutral` column wins
    loose = tmp_path / "face.png"
    loose.write_bytes(b"")  # a folder with no CK+ frames in it
    with pytest.raises(DataError, match=r"face\.png: no neutral frame"):
        reference.neutral_paths(pd.DataFrame({"path": [str(loose)]}))
    with pytest.raises(DataError, match="2 neutral images for 3 images"):
        reference.broadcast(["a", "b"], 3)


def test_a_csv_manifest_carries_its_neutral_column(tiny_ckplus: Path, tmp_path: Path) -> None:
    from ckrun.data.importers import import_dataset

    image = next((tiny_ckplus / "cohn-kanade-images").rglob("*.png"))
    (tmp_path / "faces.csv").write_text(f"path,emotion,subject,neutral\n{image},happy,S1,n.png\n")
    manifest = import_dataset(tmp_path / "faces.csv").manifest
    assert manifest["neutral"].tolist() == [str((tmp_path / "n.png").resolve())]  # relative to the CSV, like path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_ckplus: Path):
    from ckrun.train import train

    root = tmp_path_factory.mktemp("reference_store")
    with pytest.MonkeyPatch.context() as mp:
        use_store(mp, root)
        cfg = load_config(overrides=[*TINY, "reference=neutral"])
        data = prepare_for_config(tiny_ckplus, cfg, progress=False)
        yield cfg, data, train(cfg, data, experiment="reference", verbose=False), root


@pytest.mark.slow
def test_training_stacks_the_neutral_face_and_every_consumer_reads_it(
    trained, tiny_ckplus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, data, result, root = trained
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    assert result.models[0].input_shape[-1] == 2 * cfg.channels and result.preprocessing.reference == "neutral"
    run = tracking.get_run(result.run_id)
    assert run.data.params["reference"] == "neutral" and run.info.status == "FINISHED"

    # The model's input is the face, then its neutral face, each decoded as the model decodes faces.
    predictor = tracking.load_predictor(result.model_uri)
    test = data.part("test").reset_index(drop=True)
    stacked = predictor.faces_of(test)
    neutral = reference.neutral_paths(test)
    alone = type(predictor)(predictor.models, replace(predictor.prep, reference="none"))
    np.testing.assert_array_equal(stacked[..., : cfg.channels], alone.faces(test["path"].tolist()))
    np.testing.assert_array_equal(stacked[..., cfg.channels :], alone.faces(neutral))

    # `ckrun evaluate` reproduces the logged test metrics: it reads the same neutral frames.
    out = CliRunner().invoke(cli, ["evaluate", result.model_uri, "--data", str(tiny_ckplus), "--experiment", "r"])
    assert out.exit_code == 0, out.output
    evaluated = tracking.get_run(out.output.strip().splitlines()[-1].split()[-1]).data.metrics
    for key in ("test_emotion_f1", "test_emotion_accuracy", "test_au_f1"):
        assert evaluated[key] == pytest.approx(result.metrics[key], abs=1e-6), key

    # `ckrun predict --neutral` and the pyfunc's `neutral` column give the model's own probabilities.
    face, person = test["path"].iloc[0], neutral[0]
    expected = predictor.probabilities(predictor.faces([face], neutral=person))["emotion"][0]
    said = CliRunner().invoke(cli, ["predict", result.model_uri, face, "--neutral", person])
    assert said.exit_code == 0, said.output
    row = json.loads(said.output)[0]
    np.testing.assert_allclose([row[f"p_{c}"] for c in predictor.prep.classes], expected, atol=1e-5)
    frame = mlflow.pyfunc.load_model(result.model_uri).predict(pd.DataFrame({"image": [face], "neutral": [person]}))
    np.testing.assert_allclose(
        frame.loc[0, [f"p_{c}" for c in predictor.prep.classes]].to_numpy(float), expected, atol=1e-5
    )

    # Without the neutral face the model cannot read a face: one line saying how to give it.
    refused = CliRunner().invoke(cli, ["predict", result.model_uri, face])
    assert refused.exit_code == 1 and "--neutral" in refused.output and "Traceback" not in refused.output
    with pytest.raises(DataError, match="leave out --neutral"):
        alone.faces([face], neutral=person)

    # Explanations show the face itself, not the stacked pair.
    logged = tracking.read_artifact_text(result.run_id, "explanations/summary.json")
    assert json.loads(logged)["overlays"]
