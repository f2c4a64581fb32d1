"""A hostile new user: every bad input ends with one line, its exit status, and harm to nothing.

One parametrised matrix runs the CLI in-process (click's CliRunner) on broken data, configs,
search spaces, model URIs and options. Each case asserts the single ``error:`` (or
``warning:``) line and what it names, the exit status, that no MLflow run was left RUNNING,
and that none of the user's input files changed. The cases marked "issue 12" are the ones
that failed before: a train split without a class, a leaky predefined split, duplicate rows,
a hint naming an option `train` lacks, an input CSV overwritten by `data import`, a report
deleting a user's file, `mlartifacts` a file, `keras_model` not loading, the postgres driver.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from ckplus_fixture import corrupt, write_ckplus, write_image
from click.testing import CliRunner
from conftest import use_store
from mlflow.tracking import MlflowClient

from ckrun import tracking
from ckrun.cli import cli
from ckrun.config import load_config
from ckrun.data import ckformat

TINY = ["--set", "preset=tiny", "--set", "epochs=1", "--set", "explain_images_per_class=0"]
_PROGRESS = re.compile(r"\d+%\||\d+/\d+ \[|it/s\]|img/s\]|seq/s\]|subject/s\]")


@dataclass
class Env:
    """What a case can build on: its own folder (the cwd), an inputs folder, a trained model."""

    tmp: Path
    inputs: Path
    request: pytest.FixtureRequest
    store_uri: str

    def trained(self) -> Any:
        """The module's trained run; its store becomes the one this case uses."""
        model = self.request.getfixturevalue("trained_model")
        self.store_uri = model.uri
        return model

    def ck(self, name: str = "ck") -> Path:
        return write_ckplus(self.inputs / name)

    def images(self, names: list[str], folder: str = "img", size: tuple[int, int] = (32, 24)) -> list[Path]:
        return [write_image(self.inputs / folder / n, size=size) for n in names]

    def csv(self, rows: list[dict[str, Any]], name: str = "data.csv") -> Path:
        path = self.inputs / name
        pd.DataFrame(rows).to_csv(path, index=False)
        return path

    def text(self, name: str, content: str) -> Path:
        path = self.inputs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        return path


@dataclass
class Case:
    id: str
    build: Callable[[Env], list[str]]  # writes the inputs, returns the command line
    code: int
    needles: tuple[str, ...]  # what the one error/warning line must name
    absent: tuple[str, ...] = ()  # what it must not say (a wrong hint, a password)
    kind: str = "error"  # "error", "warning" (exit 0 with a warning line) or "usage" (click's, exit 2)


# --------------------------------------------------------------------------------------
# Inputs


def _split_rows(env: Env, layout: dict[str, list[tuple[str, str]]]) -> list[dict[str, Any]]:
    """Rows of a predefined-split CSV: split -> [(subject, emotion), ...], one image each."""
    rows = []
    for split, items in layout.items():
        for i, (subject, emotion) in enumerate(items):
            image = env.images([f"{subject}_00{i}_0000000{i + 1}.png"], folder=f"img_{split}")[0]
            rows.append({"path": str(image), "subject": subject, "emotion": emotion, "split": split})
    return rows


ALL = [("negative", "a"), ("positive", "b"), ("surprise", "c")]


def predefined(env: Env, *, train: list[str], overlap: bool = False) -> Path:
    """A predefined split: train has the classes `train`, val and test have all three."""
    layout = {
        "train": [(f"S10{i}", c) for i, c in enumerate(train)],
        "val": [(f"S20{i}", c) for i, (c, _) in enumerate(ALL)],
        "test": [(f"S30{i}", c) for i, (c, _) in enumerate(ALL)],
    }
    if overlap:
        layout["test"][0] = ("S100", layout["test"][0][1])  # S100 also trains
    return env.csv(_split_rows(env, layout))


def folders_without_ck_names(env: Env) -> Path:
    for emotion in ("happy", "surprise", "anger"):
        env.images([f"face{i}.png" for i in range(3)], folder=f"classes/{emotion}")
    return env.inputs / "classes"


def duplicated_manifest(env: Env) -> Path:
    images = env.images([f"S{i:03d}_001_00000001.png" for i in range(10)])
    rows = [{"path": str(p), "emotion": "happy"} for p in images]
    return env.csv(rows + rows[:4], name="dup.csv")


def predict_target(env: Env) -> list[str]:
    model = env.trained()
    return ["predict", f"runs:/{model.run_id}/model"]


CASES = [
    # ---- data: formats, files, labels (passed before issue 12; guarded now) --------------------
    Case("empty-folder", lambda e: ["data", "import", str(e.inputs), "--out", "m.csv"], 1, ("not a dataset",)),
    Case(
        "folder-of-non-images",
        lambda e: ["data", "import", str(e.text("stuff/happy/notes.txt", "hi").parent.parent), "--out", "m.csv"],
        1,
        ("not a dataset",),
    ),
    Case(
        "truncated-image",
        lambda e: [
            "data",
            "import",
            str(_truncate(e.ck(), keep=40)),
            "--out",
            "m.csv",
        ],
        1,
        ("corrupt or unreadable image",),
    ),
    Case(
        "zero-byte-image",
        lambda e: ["data", "import", str(_truncate(e.ck(), keep=0)), "--out", "m.csv"],
        1,
        ("corrupt or unreadable image",),
    ),
    Case(
        "not-an-image",
        lambda e: ["data", "import", str(_corrupt_first(e.ck())), "--out", "m.csv"],
        1,
        ("corrupt or unreadable image", "not an image format"),
    ),
    Case(
        "bad-emotion-file",
        lambda e: ["data", "import", str(_garble(e.ck(), ckformat.EMOTION_DIR, "seven\n")), "--out", "m.csv"],
        1,
        ("_emotion.txt",),
    ),
    Case(
        "bad-facs-file",
        lambda e: ["data", "import", str(_garble(e.ck(), ckformat.FACS_DIR, "4 x y z\n")), "--out", "m.csv"],
        1,
        ("_facs.txt",),
    ),
    Case(
        "bad-landmarks-file",
        lambda e: ["data", "import", str(_garble(e.ck(), ckformat.LANDMARKS_DIR, "1 2\n3\n")), "--out", "m.csv"],
        1,
        ("_landmarks.txt", "unusable landmark file"),
    ),
    Case(
        "csv-without-path",
        lambda e: ["data", "import", str(e.csv([{"file": "a.png", "emotion": "happy"}])), "--out", "m.csv"],
        1,
        ("missing column(s) path", "found: file, emotion"),
    ),
    Case(
        "unknown-emotion-label",
        lambda e: [
            "data",
            "import",
            str(e.csv([{"path": str(e.images(["S001_001_00000001.png"])[0]), "emotion": "bored"}])),
            "--out",
            "m.csv",
        ],
        1,
        ("row 1", "bored"),
    ),
    Case(
        "bad-split-value",
        lambda e: [
            "data",
            "import",
            str(e.csv([{"path": str(e.images(["S001_001_00000001.png"])[0]), "emotion": "happy", "split": "dev"}])),
            "--out",
            "m.csv",
        ],
        1,
        ("invalid split 'dev'", "expected one of train, val, test"),
    ),
    Case(
        "non-utf8-csv",
        lambda e: ["data", "import", str(_latin1_csv(e)), "--out", "m.csv"],
        1,
        ("latin.csv", "not a readable CSV file"),
    ),
    Case(
        "directory-as-csv",
        lambda e: ["data", "import", str(_mkdir(e.inputs / "folder.csv")), "--format", "csv", "--out", "m.csv"],
        1,
        ("folder.csv", "manifest CSV not found"),
    ),
    Case(
        "unknown-class-folder",
        lambda e: ["data", "import", str(_class_tree(e, "bored")), "--format", "folders", "--out", "m.csv"],
        1,
        ("bored", "not an emotion class"),
    ),
    Case(
        "missing-image-in-csv",
        lambda e: ["data", "import", str(e.csv([{"path": "S001_001_00000001.png", "emotion": "happy"}]))],
        1,
        ("S001_001_00000001.png", "image not found"),
    ),
    Case(
        "folder-as-image-in-csv",
        lambda e: [
            "data",
            "import",
            str(e.csv([{"path": str(_mkdir(e.inputs / "S001_001_00000001.png")), "emotion": "happy"}])),
        ],
        1,
        ("S001_001_00000001.png", "a folder, not an image file"),
    ),
    Case(
        "negative-au-value",
        lambda e: [
            "data",
            "import",
            str(e.csv([{"path": str(e.images(["S001_001_00000001.png"])[0]), "AU4": -1}])),
            "--out",
            "m.csv",
        ],
        1,
        ("AU4", "is negative"),
    ),
    Case(
        "missing-data-path",
        lambda e: ["data", "import", str(e.inputs / "nowhere"), "--out", "m.csv"],
        1,
        ("nowhere", "no such file or folder"),
    ),
    Case(
        "text-file-as-data",
        lambda e: ["data", "import", str(e.text("notes.txt", "hello")), "--out", "m.csv"],
        1,
        ("notes.txt", "not a dataset"),
    ),
    Case(
        "unknown-format", lambda e: ["data", "import", str(e.inputs), "--format", "xml"], 2, ("--format",), (), "usage"
    ),
    Case(
        "synth-into-foreign-folder",
        lambda e: ["data", "synth", str(e.text("mine/notes.txt", "mine").parent), "--subjects", "1"],
        1,
        ("not empty", "not a synthetic CK+ set"),
    ),
    # ---- issue 12: data integrity and honest hints -------------------------------------------
    Case(
        "case6-train-split-without-surprise",
        lambda e: ["train", "--data", str(predefined(e, train=["negative", "positive"])), *TINY],
        1,
        ("leaves no surprise", "train split", "fix the split column", "--set split_method=subject"),
    ),
    Case(
        "case10-subject-in-train-and-test",
        lambda e: [
            "train",
            "--data",
            str(predefined(e, train=["negative", "positive", "surprise"], overlap=True)),
            *TINY,
        ],
        1,
        ("subject S100 is in both train and test", "--set allow_subject_overlap=true"),
    ),
    Case(
        "case10-subject-overlap-at-import",
        lambda e: [
            "data",
            "import",
            str(predefined(e, train=["negative", "positive", "surprise"], overlap=True)),
            "--out",
            "m.csv",
        ],
        1,
        ("subject S100", "--allow-subject-overlap"),
        ("--set",),
    ),
    Case(
        "case10-overlap-accepted-knowingly",
        lambda e: [
            "data",
            "import",
            str(predefined(e, train=["negative", "positive", "surprise"], overlap=True)),
            "--out",
            "m.csv",
            "--allow-subject-overlap",
        ],
        0,
        (),
        (),
        "none",
    ),
    Case(
        "case11-duplicated-rows",
        lambda e: ["data", "import", str(duplicated_manifest(e)), "--out", "m.csv", "--split", "random"],
        0,
        ("4 duplicate row(s) dropped",),
        (),
        "warning",
    ),
    Case(
        "conflicting-duplicate-labels",
        lambda e: ["data", "import", str(_conflicting_rows(e)), "--out", "m.csv", "--split", "random"],
        1,
        ("listed 2 times with different labels",),
    ),
    Case(
        "faces-smaller-than-16-px",
        lambda e: ["data", "import", str(_tiny_faces(e)), "--out", "m.csv", "--split", "random"],
        0,
        ("3 image(s) have a face smaller than 16 px",),
        (),
        "warning",
    ),
    Case(
        "case12-folders-without-subjects-train",
        lambda e: ["train", "--data", str(folders_without_ck_names(e)), *TINY],
        1,
        ("no subject for 9 image(s)", "--set split_method=random"),
        ("--split random",),
    ),
    Case(
        "case12-folders-without-subjects-import",
        lambda e: ["data", "import", str(folders_without_ck_names(e)), "--out", "m.csv"],
        1,
        ("no subject for 9 image(s)", "--split random"),
        ("--set",),
    ),
    Case(
        "case12-folders-without-subjects-describe",
        lambda e: ["data", "describe", str(folders_without_ck_names(e)), "--out", "desc"],
        1,
        ("--split random",),
        ("--set",),
    ),
    Case(
        "train-one-emotion-class",
        lambda e: ["train", "--data", str(_labelled(e, ["happy"])), *TINY],
        1,
        ("the train split has one emotion class (positive", "needs at least two"),
        ("emotion_loss_weight",),  # no AU labels: training the AU head alone is no way out
    ),
    Case(
        "baseline-without-any-label",
        lambda e: ["baseline", "--data", str(_labelled(e, [None])), "--set", "preset=tiny"],
        1,
        ("nothing to learn", "no emotion label and no AU label"),
    ),
    Case(
        "train-au-listed-twice",
        lambda e: ["train", "--data", str(e.request.getfixturevalue("tiny_ckplus")), *TINY, "--set", "aus=[1,1]"],
        1,
        ("aus: AU1 listed more than once",),
    ),
    Case(
        "import-require-emotion-leaves-nothing",
        lambda e: ["data", "import", str(_labelled(e, [None])), "--require-emotion", "--out", "m.csv"],
        1,
        ("labelled.csv: no images left with an emotion label (--require-emotion)",),
    ),
    Case(
        "train-require-emotion-leaves-nothing",
        lambda e: ["train", "--data", str(_labelled(e, [None])), "--set", "require_emotion=true", *TINY],
        1,
        ("no images left with an emotion label (--set require_emotion=true)",),
    ),
    # ---- issue 12: never overwrite what ckrun did not write -----------------------------------
    Case(
        "case3-import-onto-its-own-csv",
        lambda e: ["data", "import", _chdir_to_csv(e)],
        1,
        ("--out manifest.csv is the input manifest.csv",),
    ),
    Case(
        "import-out-is-the-input-explicitly",
        lambda e: ["data", "import", str(p := _user_csv(e)), "--out", str(p)],
        1,
        ("is the input",),
    ),
    Case(
        "import-out-inside-the-dataset",
        lambda e: ["data", "import", str(ck := e.ck()), "--out", str(ck / "manifest.csv")],
        1,
        ("inside the dataset folder",),
    ),
    Case(
        "import-out-is-a-foreign-file",
        lambda e: ["data", "import", str(e.ck()), "--out", str(e.text("notes.csv", "a,b\n1,2\n"))],
        1,
        ("exists and is not a manifest ckrun wrote",),
    ),
    Case(
        "case9-report-into-a-users-folder",
        lambda e: ["report", "--out", str(e.text("mine/figures/plot.png", "my own figure").parent.parent)],
        1,
        ("not a ckrun report", ".ckrun-report.json"),
    ),
    Case(
        "report-out-is-a-file",
        lambda e: ["report", "--out", str(e.text("report.txt", "mine"))],
        1,
        ("is a file, not a folder",),
    ),
    # ---- an output path with a file where a folder must go: named before any work ------------
    Case(
        "import-out-under-a-file",
        lambda e: ["data", "import", str(e.ck()), "--out", str(_a_file(e) / "m.csv")],
        1,
        ("--out", "notes.txt is a file, not a folder"),
    ),
    Case(
        "describe-out-is-a-file",
        lambda e: ["data", "describe", str(e.ck()), "--out", str(_a_file(e)), "--faces-per-class", "0"],
        1,
        ("--out", "notes.txt is a file, not a folder"),
    ),
    Case(
        "synth-out-under-a-file",
        lambda e: ["data", "synth", str(_a_file(e) / "ck"), "--subjects", "1"],
        1,
        ("OUT", "notes.txt is a file, not a folder"),
    ),
    Case(
        "explain-out-under-a-file",
        lambda e: ["explain", "runs:/0123/model", str(e.images(["a.png"])[0]), "--out", str(_a_file(e) / "x")],
        1,
        ("--out", "notes.txt is a file, not a folder"),
    ),
    Case(
        "report-out-under-a-file",
        lambda e: ["report", "--out", str(_a_file(e) / "report")],
        1,
        ("--out", "notes.txt is a file, not a folder"),
    ),
    Case(
        "compare-out-under-a-file",
        lambda e: ["compare", "a" * 32, "b" * 32, "--out", str(_a_file(e) / "t.csv")],
        1,
        ("--out", "notes.txt is a file, not a folder"),
    ),
    Case(
        "compare-out-exists-refused-before-comparing",
        lambda e: ["compare", "a" * 32, "b" * 32, "--out", str(_a_file(e))],
        1,
        ("notes.txt exists; choose another --out",),
    ),
    Case(
        "cache-setting-under-a-file",
        lambda e: ["train", "--data", str(e.request.getfixturevalue("tiny_ckplus")), *TINY, *_cache_set(e)],
        1,
        ("cache=", "notes.txt/faces: cannot make the cache folder (a file is in the way)"),
    ),
    Case(
        "ckrun-cache-is-a-file",
        lambda e: ["data", "describe", "--out", "described"] if _cache_env(e, _a_file(e)) else [],
        1,
        ("$CKRUN_CACHE", "notes.txt: cannot hold the default dataset (a file is in the way)"),
    ),
    Case(
        "tune-journal-under-a-file",
        lambda e: ["tune", "--storage", f"journal://{_a_file(e)}/study.log", "--n-trials", "1", *TINY],
        1,
        ("cannot open Optuna storage journal://", "notes.txt: a file is in the way of the folder"),
    ),
    # ---- configs, search spaces, storage ------------------------------------------------------
    Case("negative-l2", lambda e: ["train", "--set", "l2=-1"], 1, ("l2", "greater than or equal to 0")),
    Case("unknown-key", lambda e: ["train", "--set", "nonsense=1"], 1, ("unknown config key(s): nonsense",)),
    Case("set-without-equals", lambda e: ["train", "--set", "noequals"], 1, ("--set expects key=value",)),
    Case("unparseable-set-value", lambda e: ["train", "--set", "filters=[8,"], 1, ("--set filters", "YAML")),
    Case("cv-two-folds", lambda e: ["train", "--cv", "2"], 2, ("--cv", "K >= 3"), (), "usage"),
    Case("baseline-cv-one-fold", lambda e: ["baseline", "--cv", "1"], 2, ("--cv", "K >= 3"), (), "usage"),
    Case("unknown-preset", lambda e: ["train", "--set", "preset=huge"], 1, ("unknown preset 'huge'",)),
    Case(
        "stage-lists-disagree",
        lambda e: ["train", "--set", "filters=[8,16]", "--set", "blocks=[1]", "--set", "strides=[1,2]"],
        1,
        ("one value per stage",),
    ),
    Case(
        "invalid-yaml-config",
        lambda e: ["train", "--config", str(e.text("run.yaml", "l2: [unclosed\n"))],
        1,
        ("run.yaml", "not valid YAML"),
    ),
    Case(
        "config-not-a-mapping",
        lambda e: ["train", "--config", str(e.text("run.yaml", "- l2\n"))],
        1,
        ("run.yaml", "expected a mapping"),
    ),
    Case(
        "config-file-key-typo",
        lambda e: ["train", "--config", str(e.text("run.yaml", "l2: 1.0e-3\nepochz: 3\n"))],
        1,
        ("run.yaml: unknown config key(s): epochz",),
    ),
    Case(
        "config-file-not-utf8",
        lambda e: ["train", "--config", str(_binary(e, "run.yaml"))],
        1,
        ("run.yaml: not valid YAML",),
        ("--debug",),
    ),
    Case(
        "search-space-not-utf8",
        lambda e: ["tune", "--search-space", str(_binary(e, "space.yaml")), *TINY],
        1,
        ("space.yaml: not valid YAML",),
        ("--debug",),
    ),
    Case("missing-config", lambda e: ["train", "--config", "nope.yaml"], 1, ("config file not found: nope.yaml",)),
    Case(
        "search-space-not-yaml",
        lambda e: ["tune", "--search-space", str(e.text("space.yaml", "params: [x")), *TINY],
        1,
        ("space.yaml", "not valid YAML"),
    ),
    Case(
        "search-space-unknown-key",
        lambda e: ["tune", "--search-space", str(e.text("space.yaml", "params:\n  l2x: {low: 0.1, high: 1}\n"))],
        1,
        ("params.l2x: not a config key",),
    ),
    Case("missing-search-space", lambda e: ["tune", "--search-space", "nope.yaml"], 1, ("search space not found",)),
    Case(
        "storage-not-a-url",
        lambda e: ["tune", "--storage", "optuna.db", *TINY],
        1,
        ("--storage 'optuna.db'", "expected an Optuna storage URL"),
    ),
    Case(
        "case5-postgresql-url-uses-the-installed-driver",
        lambda e: ["tune", "--storage", "postgresql://ckrun:Sup3rSecret@127.0.0.1:9/optuna", "--no-register", *TINY],
        1,
        ("cannot open Optuna storage postgresql://ckrun:***@127.0.0.1:9/optuna",),
        ("Sup3rSecret", "driver"),
    ),
    Case(
        "storage-driver-not-installed",
        lambda e: ["tune", "--storage", "postgresql+pg8000://u:pw7@127.0.0.1:9/db", *TINY],
        1,
        ("pg8000", "pip install 'ckrun[postgres]'"),
        ("pw7",),
    ),
    Case(
        "grace-period-not-above-heartbeat",
        lambda e: ["tune", "--heartbeat", "10", "--grace-period", "5"],
        2,
        ("--grace-period",),
        (),
        "usage",
    ),
    Case(
        "store-uri-unsupported-report",
        lambda e: [*_store(e, "garbage://x"), "report"],
        1,
        ("MLflow tracking store garbage://x ($MLFLOW_TRACKING_URI) is not reachable", "unsupported URI"),
        ("--debug",),
    ),
    Case(
        "store-uri-unsupported-compare",
        lambda e: [*_store(e, "garbage://x"), "compare", "a" * 32, "b" * 32],
        1,
        ("MLflow tracking store garbage://x ($MLFLOW_TRACKING_URI) is not reachable",),
        ("no MLflow run",),
    ),
    Case(
        "store-uri-unsupported-ui",
        lambda e: ["ui", "--tracking-uri", "garbage://x", "--port", "1"],
        1,
        ("MLflow tracking store garbage://x (--tracking-uri) is not reachable",),
        ("MLflow UI for",),
    ),
    Case(
        "report-on-a-deleted-experiment",
        lambda e: ["report", "--experiment", _deleted_experiment(e)],
        1,
        ("experiment 'gone' is deleted",),
    ),
    Case(
        "train-into-a-deleted-experiment-before-reading-data",
        lambda e: ["train", "--data", str(e.ck()), "--experiment", _deleted_experiment(e), *TINY],
        1,
        ("experiment 'gone' is deleted",),
    ),
    Case(
        "ui-host-unresolvable",
        lambda e: ["ui", "--host", "256.1.1.1", "--port", "5996"],
        1,
        ("--host 256.1.1.1: not an address this machine can listen on",),
        ("MLflow UI for",),
    ),
    Case(
        "ui-port-in-use",
        lambda e: ["ui", "--port", str(_listening_port(e))],
        1,
        ("cannot listen there (Address already in use)",),
        ("MLflow UI for",),
    ),
    Case(
        "mlflow-experiment-id-unknown",
        lambda e: [*_env(e, "MLFLOW_EXPERIMENT_ID", "999"), "train", "--data", str(e.ck()), *TINY],
        1,
        ("$MLFLOW_EXPERIMENT_ID=999: no MLflow experiment with that id",),
    ),
    Case(
        "mlflow-run-id-unknown",
        lambda e: [*_env(e, "MLFLOW_RUN_ID", "0" * 32), "baseline", "--data", str(e.ck())],
        1,
        (f"$MLFLOW_RUN_ID={'0' * 32}: no MLflow run with that id",),
    ),
    Case(
        "case8-mlartifacts-is-a-file",
        lambda e: ["train", "--data", str(e.ck()), *TINY] if _artifacts_as_file(e) else [],
        1,
        ("mlartifacts is a file, not a folder",),
    ),
    # ---- models: missing runs, non-images, the Keras flavour ----------------------------------
    Case(
        "predict-missing-run",
        lambda e: ["predict", "runs:/0123456789abcdef0123456789abcdef/model", str(e.images(["a.png"])[0])],
        1,
        ("cannot load model 'runs:/0123456789abcdef0123456789abcdef/model'",),
    ),
    Case(
        "predict-missing-registered-model",
        lambda e: ["predict", "models:/no-such-model@champion", str(e.images(["a.png"])[0])],
        1,
        ("cannot load model 'models:/no-such-model@champion'",),
    ),
    Case(
        "evaluate-missing-run",
        lambda e: ["evaluate", "runs:/0123456789abcdef0123456789abcdef/model", "--data", str(e.ck())],
        1,
        ("cannot load model",),
    ),
    Case(
        "predict-model-folder-typo",
        lambda e: ["predict", "modle", str(e.images(["a.png"])[0])],
        1,
        ("cannot load model 'modle': no such file or folder", "runs:/<run_id>/model"),
    ),
    Case(
        "explain-model-file-uri-missing",
        lambda e: ["explain", "file:///no/such/model", str(e.images(["a.png"])[0])],
        1,
        ("cannot load model 'file:///no/such/model': no such file or folder",),
    ),
    Case(
        "evaluate-unlabelled-data",
        lambda e: ["evaluate", f"runs:/{e.trained().run_id}/model", "--data", str(_labelled(e, [None]))],
        1,
        ("split 'test' of", "labelled.csv has no emotion label nor any of the model's AUs", "nothing to score"),
    ),
    Case(
        "predict-a-folder-of-images",
        lambda e: ["predict", "runs:/x/model", str(e.images(["a.png"])[0].parent)],
        2,
        ("IMAGES", "img is a folder, not an image file"),
        ("not found",),
        "usage",
    ),
    Case(
        "predict-32-bit-float-tiff",
        lambda e: [*predict_target(e), str(_float_tiff(e))],
        0,
        (),
        (),
        "none",
    ),
    Case("predict-missing-image", lambda e: ["predict", "runs:/x/model", "gone.png"], 2, ("gone.png",), (), "usage"),
    Case(
        "predict-non-image",
        lambda e: [*predict_target(e), str(e.text("notes.png", "not really a png"))],
        1,
        ("notes.png",),
    ),
    Case(
        "case7-predict-with-keras-model",
        lambda e: ["predict", f"runs:/{e.trained().run_id}/keras_model", e.trained().image],
        0,
        (),
        (),
        "none",
    ),
]


def _labelled(env: Env, emotions: list[str | None]) -> Path:
    """Six subjects, two images each, labelled in turn with `emotions` (None: no label)."""
    names = [f"S00{i}_001_0000000{k}.png" for i in range(1, 7) for k in (1, 2)]
    rows = [
        {"path": str(p), "subject": p.name[:4], "emotion": emotions[i % len(emotions)]}
        for i, p in enumerate(env.images(names, folder="labelled"))
    ]
    return env.csv(rows, name="labelled.csv")


def _binary(env: Env, name: str) -> Path:
    path = env.inputs / name
    path.write_bytes(b"\xff\xfe\x00l2: 1")
    return path


def _cache_set(env: Env) -> list[str]:
    return ["--set", f"cache={_a_file(env)}/faces"]


def _env(env: Env, name: str, value: str) -> list[str]:
    env.request.getfixturevalue("monkeypatch").setenv(name, value)
    return []


def _cache_env(env: Env, path: Path) -> bool:
    _env(env, "CKRUN_CACHE", str(path))
    return True


def _float_tiff(env: Env) -> Path:
    """A 32-bit float grey TIFF: Pillow (the import's reader) takes it, OpenCV's reader does not."""
    from PIL import Image

    path = env.inputs / "float.tiff"
    Image.fromarray(np.linspace(0, 255, 32 * 24, dtype=np.float32).reshape(24, 32)).save(path)  # mode F
    return path


def _a_file(env: Env) -> Path:
    return env.text("notes.txt", "the user's notes")


def _deleted_experiment(env: Env) -> str:
    client = MlflowClient(tracking_uri=env.store_uri)
    client.delete_experiment(client.create_experiment("gone"))
    return "gone"


def _listening_port(env: Env) -> int:
    """A port another program listens on for the rest of the case."""
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    env.request.addfinalizer(taken.close)
    return int(taken.getsockname()[1])


def _store(env: Env, uri: str) -> list[str]:
    """Point the case's MLFLOW_TRACKING_URI at `uri` (the harness exports `store_uri`)."""
    env.store_uri = uri
    return []


def _artifacts_as_file(env: Env) -> bool:
    (env.tmp / "mlartifacts").write_text("a file where the store's artifact folder goes")
    return True


def _truncate(root: Path, keep: int) -> Path:
    image = sorted((root / ckformat.IMAGES_DIR).rglob("*.png"))[-1]  # a labelled peak frame
    image.write_bytes(image.read_bytes()[:keep])
    return root


def _corrupt_first(root: Path) -> Path:
    corrupt(sorted((root / ckformat.IMAGES_DIR).rglob("*.png"))[-1])
    return root


def _garble(root: Path, folder: str, content: str) -> Path:
    sorted((root / folder).rglob("*.txt"))[-1].write_text(content)
    return root


def _latin1_csv(env: Env) -> Path:
    path = env.inputs / "latin.csv"
    path.write_bytes("path,emotion\ncaf\xe9.png,happy\n".encode("latin-1"))
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _class_tree(env: Env, name: str) -> Path:
    env.images(["S001_001_00000001.png"], folder=f"tree/{name}")
    env.images(["S002_001_00000001.png"], folder="tree/happy")
    return env.inputs / "tree"


def _conflicting_rows(env: Env) -> Path:
    image = str(env.images(["S001_001_00000001.png"])[0])
    return env.csv([{"path": image, "emotion": "happy"}, {"path": image, "emotion": "surprise"}])


def _tiny_faces(env: Env) -> Path:
    rows = [{"path": str(p), "emotion": "happy"} for p in env.images([f"S00{i}_001_00000001.png" for i in range(3)])]
    tiny = env.images([f"S01{i}_001_00000001.png" for i in range(3)], folder="tiny", size=(12, 10))
    rows += [{"path": str(p), "emotion": "surprise"} for p in tiny]
    return env.csv(rows)


def _user_csv(env: Env) -> Path:
    images = env.images([f"S00{i}_001_00000001.png" for i in range(3)])
    return env.csv([{"path": str(p), "emotion": "happy", "notes": "my column"} for p in images], name="manifest.csv")


def _chdir_to_csv(env: Env) -> str:
    """`cd` into the folder of a user's manifest.csv (with an extra column) and import it by name."""
    path = _user_csv(env)
    import os

    os.chdir(path.parent)
    return path.name


# --------------------------------------------------------------------------------------
# The harness


@dataclass
class TrainedModel:
    uri: str
    run_id: str
    image: str


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory: pytest.TempPathFactory, tiny_ckplus: Path) -> TrainedModel:
    """One tiny model with both flavours logged, in a store of its own."""
    from ckrun.data.loader import prepare_for_config
    from ckrun.train import train

    root = tmp_path_factory.mktemp("bad_input_model")
    with pytest.MonkeyPatch.context() as mp:
        use_store(mp, root)
        cfg = load_config(overrides=["preset=tiny", "epochs=1", "min_au_count=3", "explain_images_per_class=0"])
        result = train(cfg, prepare_for_config(tiny_ckplus, cfg, progress=False), verbose=False)
    image = str(next((tiny_ckplus / ckformat.IMAGES_DIR).rglob("*.png")))
    return TrainedModel(f"sqlite:///{root}/mlflow.db", result.run_id, image)


def message_lines(stderr: str) -> list[str]:
    """stderr without progress bars: what the user reads."""
    parts = re.split(r"[\r\n]", stderr)
    return [p.strip() for p in parts if p.strip() and not _PROGRESS.search(p)]


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def running_runs(store_uri: str) -> list[str]:
    if not Path(store_uri.removeprefix("sqlite:///")).exists():
        return []  # the command never opened the store (creating it here would only cost time)
    client = MlflowClient(tracking_uri=store_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    return [r.info.run_id for r in client.search_runs(experiments, "attributes.status = 'RUNNING'")]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    work = tmp_path / "work"
    work.mkdir()
    use_store(monkeypatch, work)
    env = Env(work, tmp_path / "inputs", request, f"sqlite:///{work}/mlflow.db")
    env.inputs.mkdir()
    args = case.build(env)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env.store_uri)
    before = _digest(env.inputs)

    result = CliRunner().invoke(cli, args)

    output = result.output
    lines = message_lines(result.stderr)
    assert result.exit_code == case.code, (result.exit_code, output[-3000:], result.exception)
    assert "Traceback" not in output, output[-3000:]
    if case.kind == "usage":
        text = result.stderr
    elif case.kind == "none":
        assert not [ln for ln in lines if ln.startswith("error:")], lines
        text = ""
    else:
        prefix = f"{case.kind}:"
        assert all(ln.startswith(("error:", "warning:")) for ln in lines), lines
        found = [ln for ln in lines if ln.startswith(prefix)]
        assert len(found) == 1, lines
        text = found[0]
    for needle in case.needles:
        assert needle in text, (needle, text)
    for wrong in case.absent:
        assert wrong not in output, (wrong, output[-2000:])
    assert running_runs(env.store_uri) == []
    assert _digest(env.inputs) == before  # nothing of the user's changed, nothing added among it


def test_the_matrix_is_large_and_covers_the_issue_table() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)
    for number in (3, 5, 6, 7, 8, 9, 10, 11, 12):
        assert any(i.startswith(f"case{number}-") for i in ids), number


def test_a_duplicated_manifest_imports_each_image_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = Env(tmp_path, tmp_path / "in", None, "")  # type: ignore[arg-type]
    env.inputs.mkdir()
    source = duplicated_manifest(env)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["data", "import", str(source), "--out", "m.csv", "--split", "random"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(source)) == 14 and len(pd.read_csv(tmp_path / "m.csv")) == 10
    assert "4  duplicate row" in result.stdout  # the summary lists them with the skipped


def test_an_accepted_overlap_is_tagged_on_the_run(mlflow_store: Path) -> None:
    from ckrun.data.loader import PreparedData
    from ckrun.run_logging import log_data_caveats

    manifest = pd.DataFrame(
        {"path": ["a", "b", "c"], "subject": ["S1", "S1", "S2"], "split": ["train", "test", "val"], "emotion": "happy"}
    )
    with tracking.start_run(kind="train", run_name="leaky") as run:
        log_data_caveats(PreparedData("x", "csv", manifest, "d", []))
    assert tracking.get_run(run.run_id).data.tags["ckrun.subject_overlap"] == "S1"
    cfg = load_config(overrides=["allow_subject_overlap=true"])
    assert cfg.params()["allow_subject_overlap"] == "True"


def test_report_replaces_its_own_files_and_keeps_the_users(
    trained_model: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 9: a user's file in the report folder survives a new report; the old report's files are replaced."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_model.uri)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "report"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "stale.png").write_text("from an older report")
    (out / "report.md").write_text("old report")
    (out / ".ckrun-report.json").write_text('{"files": ["figures/stale.png", "report.md"]}')
    mine = out / "figures" / "my_notes.png"
    mine.write_text("the user's own figure")

    result = CliRunner().invoke(cli, ["report", "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert mine.read_text() == "the user's own figure"
    assert not (out / "figures" / "stale.png").exists() and (out / "report.md").read_text() != "old report"
    import json

    listed = json.loads((out / ".ckrun-report.json").read_text())["files"]
    assert "report.html" in listed and "figures/my_notes.png" not in listed
    assert all((out / f).is_file() for f in listed)


def test_model_code_in_the_store_is_never_run_by_ckrun(
    trained_model: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 13: the pyfunc model is code, not a pickle, and ckrun predict does not execute it."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_model.uri)
    monkeypatch.chdir(tmp_path)
    model_uri = tracking.run_model_uri(trained_model.run_id)
    assert model_uri is not None
    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(tmp_path / "peek")))
    assert not list(folder.rglob("*.pkl")) and (folder / "pyfunc_model.py").is_file()
    # Tamper with the stored code, as someone with write access to the store could.
    stored = Path(tracking.get_run(trained_model.run_id).info.artifact_uri.removeprefix("file://")).parent
    code_files = list(stored.parent.rglob("pyfunc_model.py"))
    assert code_files
    marker = tmp_path / "code-ran"
    for code in code_files:
        code.write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\nraise SystemExit(3)\n")

    result = CliRunner().invoke(cli, ["predict", f"runs:/{trained_model.run_id}/model", trained_model.image])
    assert result.exit_code == 0, result.output
    assert '"emotion"' in result.stdout and not marker.exists()
    # The unsafe way does run it: what the test above guards against is real.
    with pytest.raises(SystemExit):
        mlflow.pyfunc.load_model(f"runs:/{trained_model.run_id}/model")
    assert marker.read_text() == "ran"
    shutil.rmtree(tmp_path / "peek", ignore_errors=True)


@pytest.mark.parametrize("debug", ["", "flag", "env"])
def test_an_unforeseen_exception_fails_the_run_in_one_line_and_debug_shows_the_traceback(
    debug: str, mlflow_store: Path, tiny_ckplus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ckrun.train

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the fit\nwith a second line")

    monkeypatch.setattr(ckrun.train, "fit_model", broken)
    monkeypatch.delenv("CKRUN_DEBUG", raising=False)
    if debug == "env":
        monkeypatch.setenv("CKRUN_DEBUG", "1")
    args = ["--debug"] if debug == "flag" else []
    result = CliRunner().invoke(cli, [*args, "train", "--data", str(tiny_ckplus), "--set", "preset=tiny"])
    assert result.exit_code == 1
    errors = [ln for ln in message_lines(result.stderr) if ln.startswith("error:")]
    assert errors[0].startswith("error: RuntimeError: a bug in the fit") and len(errors) == 1
    assert ("Traceback" in result.stderr) == bool(debug), result.stderr[-2000:]
    if not debug:
        assert errors[0].endswith("(ckrun --debug shows the traceback)")
        assert message_lines(result.stderr) == errors
    runs = tracking.search_runs()
    assert runs["status"].tolist() == ["FAILED"]
    assert runs["tags.ckrun.error"].iloc[0].startswith("RuntimeError: a bug in the fit")


@pytest.mark.parametrize(
    "command", [["train"], ["baseline"], ["tune"], ["run"], ["report"], ["evaluate", "runs:/0123/model"]]
)
def test_a_missing_data_path_fails_before_any_store_is_opened(command: list[str], bare_mlflow_store: Path) -> None:
    missing = bare_mlflow_store / "nowhere"
    result = CliRunner().invoke(cli, [*command, "--data", str(missing)])
    assert result.exit_code == 1, result.output
    assert message_lines(result.stderr) == [f"error: {missing}: no such file or folder"]
    # Checked first (no MLflow import, so at once): the working folder, where the store, a
    # study or a report would go, is as empty as before.
    assert list(bare_mlflow_store.iterdir()) == []


@pytest.mark.parametrize("command", [["train", *TINY], ["report"]])
def test_a_store_uri_naming_a_file_that_is_no_database_is_one_line(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = tmp_path / "notes.db"
    notes.write_text("my notes, not an MLflow database")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{notes}")
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 1, result.output
    assert message_lines(result.stderr) == [
        f"error: MLflow tracking store sqlite:///{notes} ($MLFLOW_TRACKING_URI) is not reachable: "
        "(sqlite3.DatabaseError) file is not a database"
    ]
    assert notes.read_text() == "my notes, not an MLflow database"


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        (["--search-space", "nope.yaml"], "error: search space not found: nope.yaml"),
        (["--storage", "optuna.db"], "error: --storage 'optuna.db': expected an Optuna storage URL"),
        (["--search-space", "quick", "--set", "preset=default"], "error: search space "),  # ResNet-only keys
    ],
)
def test_run_refuses_bad_study_options_before_its_first_stage(
    option: list[str], needle: str, bare_mlflow_store: Path, tiny_ckplus: Path
) -> None:
    """`ckrun run` trains a baseline and the default network before its study: minutes lost to a typo."""
    result = CliRunner().invoke(cli, ["run", "--data", str(tiny_ckplus), *TINY, *option, "--no-report"])
    assert result.exit_code == 1, result.output
    errors = [ln for ln in message_lines(result.stderr) if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(needle), errors
    assert "=== baseline" not in result.stdout
    assert list(bare_mlflow_store.iterdir()) == []  # no store opened, no run logged
