"""MLflow → plain tables: the runs of an experiment (or study) and the artifacts of one run.

Everything the report says about runs is read back from the tracking store through
`ckrun.tracking`, never from memory, so a report generated tomorrow on another machine
shows the same numbers as one written right after training.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ckrun import names, tracking
from ckrun.baselines import FAMILY_LABELS, family_label, objective_metric
from ckrun.baselines.verdict import Verdict, compare
from ckrun.data.labels import EMOTION_CLASSES
from ckrun.predictions import Predictions, read_predictions_csv

# Runs that are compared; study parents and evaluation runs feed other columns.
COMPARED_KINDS = ("train", "trial", "baseline", "cv")
TRAINED_KINDS = ("train", "trial")
PARAM_COLUMNS = ("backbone", "l2", "learning_rate", "epochs", "filters", "blocks", "objective_kind")
METRIC_COLUMNS: tuple[str, ...] = (
    "best_epoch",
    "epochs_run",
    "train_emotion_accuracy",
    "val_emotion_accuracy",
    "val_emotion_f1",
    "val_au_f1",
    "test_emotion_accuracy",
    "test_emotion_f1",
    "test_au_f1",
    "test_au_precision_weighted",
    "test_au_recall_weighted",
    "test_au_f1_weighted",
    "objective",
    "fit_gap",
    "majority_emotion_accuracy",
)
# Bootstrap bounds of the headline test metrics (runs), and the fold spread (cv parents).
INTERVAL_COLUMNS = tuple(
    f"test_{m}{suffix}"
    for m in ("emotion_accuracy", "emotion_f1", "au_f1", "au_f1_weighted")
    for suffix in (*names.INTERVAL_SUFFIXES, "_std")
)
METRIC_COLUMNS = (*METRIC_COLUMNS, *INTERVAL_COLUMNS)
# Each family's val objective in a `best` baseline run: which features read these faces best.
FAMILY_OBJECTIVE_COLUMNS = tuple(objective_metric(f) for f in FAMILY_LABELS)
TEST_METRICS = tuple(m for m in METRIC_COLUMNS if m.startswith("test_") and not m.endswith("_std"))


@dataclass
class RunSet:
    """The compared runs (one row each, best objective first) and what was left out."""

    experiment: str
    table: pd.DataFrame
    left_out: list[str] = field(default_factory=list)
    study_parent_ids: list[str] = field(default_factory=list)


@dataclass
class RunDiagnosis:
    """A run's logged `diagnosis.md`, parsed: the verdict, the rule's reasons and its numbers."""

    verdict: str
    reasons: list[str]
    numbers: dict[str, float]


# %% Runs


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _float(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


STUDY_TAG = "tags.ckrun.study_name"  # set by ckrun.tune on the study's parent run and every trial


def _matches_study(row: pd.Series, study: str) -> bool:
    values = (row.get(STUDY_TAG), row.get("params.tune.study_name"), row.get("tags.mlflow.runName"))
    return any(isinstance(v, str) and v in (study, f"study-{study}") for v in values)


def collect_runs(experiment: str | None = None, study: str | None = None) -> RunSet:
    """One row per compared run of `experiment`; with `study`, only that study's trials.

    Trials belong to a study through their ``ckrun.study_name`` tag (what `ckrun tune` sets)
    or their parent run (``ckrun.kind=study``, tagged or named ``study-<name>``). Runs that did not
    finish (pruned or failed trials) have no final metrics and are listed in `left_out`.
    Test metrics missing from a run are taken from its latest `ckrun evaluate` run of the test split.
    """
    name = experiment or tracking.DEFAULT_EXPERIMENT
    runs = tracking.search_runs(experiment)
    left_out: list[str] = []
    if runs.empty:
        return RunSet(name, _empty_table(), left_out)
    kind = _column(runs, "tags.ckrun.kind").fillna("")
    parents: list[str] = []
    if study is not None:
        is_parent = (kind == "study") & runs.apply(lambda r: _matches_study(r, study), axis=1)
        parents = runs.loc[is_parent, "run_id"].tolist()
        parent_of = _column(runs, "tags.mlflow.parentRunId")
        in_study = parent_of.isin(parents) | (_column(runs, STUDY_TAG) == study)
        other_trials = (kind == "trial") & ~in_study
        runs, kind = runs.loc[~other_trials], kind.loc[~other_trials]
        if not parents and not in_study.any():
            left_out.append(f"no MLflow run of study {study!r} found in experiment {name!r}; trials are not shown")
    evaluations = runs.loc[kind == "evaluate"]
    compared = runs.loc[kind.isin(COMPARED_KINDS)]
    if "tags.ckrun.fold" in compared.columns:  # folds are summarised by their cv parent
        compared = compared.loc[compared["tags.ckrun.fold"].isna()]
    unfinished = compared["status"] != "FINISHED"
    for _, row in compared.loc[unfinished].iterrows():
        state = row.get("tags.ckrun.trial_state")
        state = state if isinstance(state, str) else str(row["status"])
        left_out.append(f"{row.get('tags.mlflow.runName')} not compared: {state.lower()}, no final metrics")
    compared = compared.loc[~unfinished]
    table = _table(compared)
    table = _fill_test_metrics(table, evaluations)
    return RunSet(name, sort_by_objective(table), left_out, parents)


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame(columns=["run_id", "run", "kind", *PARAM_COLUMNS, *METRIC_COLUMNS, "fit_diagnosis"])


def _table(runs: pd.DataFrame) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "run_id": runs["run_id"].to_numpy(),
            "run": _column(runs, "tags.mlflow.runName").to_numpy(),
            "kind": _column(runs, "tags.ckrun.kind").to_numpy(),
            "parent_run_id": _column(runs, "tags.mlflow.parentRunId").to_numpy(),
            "start_time": _column(runs, "start_time").to_numpy(),
            "description": _column(runs, "tags.mlflow.note.content").to_numpy(),
        }
    )
    for key in ("l2", "learning_rate", "epochs"):
        table[key] = [_float(v) for v in _column(runs, f"params.{key}")]
    for key in ("filters", "blocks"):
        table[key] = [_json_list(v) for v in _column(runs, f"params.{key}")]
    # Runs logged before the pretrained backbone existed trained the ResNet; baselines have none.
    deep = np.isin(table["kind"].to_numpy(), ("train", "trial", "cv"))
    table["backbone"] = _column(runs, "params.backbone").fillna("").to_numpy()
    table.loc[deep & (table["backbone"] == ""), "backbone"] = "resnet"
    table["objective_kind"] = _column(runs, "params.objective").to_numpy()
    table["data_digest"] = _column(runs, "params.data_digest").to_numpy()
    table["cv_folds"] = [_float(v) for v in _column(runs, "params.cv_folds")]  # NaN: a single split
    table["seed"] = _column(runs, "params.seed").to_numpy()
    for key in ("baseline_model", "baseline_C", "baseline_C_au"):
        table[key] = _column(runs, f"params.{key}").to_numpy()
    for key in (*METRIC_COLUMNS, *FAMILY_OBJECTIVE_COLUMNS):
        table[key] = [_float(v) for v in _column(runs, f"metrics.{key}")]
    table["fit_diagnosis"] = _column(runs, "tags.fit_diagnosis").fillna("").to_numpy()
    table["train_data"] = _column(runs, f"tags.{names.TRAIN_DATA_TAG}").fillna("").to_numpy()
    table["test_source"] = np.where(table["test_emotion_accuracy"].notna(), "run", "")
    return table.reset_index(drop=True)


def _json_list(value: Any) -> tuple[int, ...] | None:
    """``"[8, 16]"`` → (8, 16); params store lists as JSON text."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return None
    return tuple(int(v) for v in parsed) if isinstance(parsed, list) else None


def _fill_test_metrics(table: pd.DataFrame, evaluations: pd.DataFrame) -> pd.DataFrame:
    if evaluations.empty or "tags.ckrun.evaluated_run_id" not in evaluations.columns:
        return table
    # Only a scoring of the test split stands in for a run's test scores: `ckrun evaluate --split
    # val` (or all) logs no test_* metric, and as the latest evaluation it would blank them.
    split = _column(evaluations, "params.split")
    evaluations = evaluations.loc[split.isna() | (split == "test")]
    latest = evaluations.sort_values("start_time").groupby("tags.ckrun.evaluated_run_id").tail(1)
    by_run = latest.set_index("tags.ckrun.evaluated_run_id")
    for i, row in table.iterrows():
        if not math.isnan(row["test_emotion_accuracy"]) or row["run_id"] not in by_run.index:
            continue
        found = by_run.loc[row["run_id"]]
        for key in TEST_METRICS:
            table.at[i, key] = _float(found.get(f"metrics.{key}"))
        table.at[i, "test_source"] = "evaluate run"
    return table


def sort_by_objective(table: pd.DataFrame) -> pd.DataFrame:
    """Best validation objective first; runs without one last, then by start time."""
    if table.empty:
        return table
    order = table.assign(_missing=table["objective"].isna()).sort_values(
        ["_missing", "objective", "start_time"], ascending=[True, False, True], kind="stable"
    )
    return order.drop(columns="_missing").reset_index(drop=True)


def strongest_baseline(
    table: pd.DataFrame, digest: Any = None, cv_folds: float = math.nan, seed: Any = None
) -> pd.Series | None:
    """The baseline run with the best validation objective, on data `digest` when one is given.

    A deep run is only measured against a baseline fitted on the same images and split (same
    `data_digest`); runs logged without a digest match any baseline. A cross-validated run
    (`cv_folds` K) is measured against a baseline cross-validated on the same folds (same
    digest, K and seed: `ckrun baseline --cv K`), a single-split run against a single-split one.
    """
    baselines = table.loc[(table["kind"] == "baseline") & table["objective"].notna()]
    if isinstance(digest, str) and digest and "data_digest" in baselines.columns:
        same = baselines["data_digest"].map(lambda d: not isinstance(d, str) or not d or d == digest)
        baselines = baselines.loc[same]
    if "cv_folds" in baselines.columns:
        folds = baselines["cv_folds"].astype(float)
        if math.isnan(_float(cv_folds)):
            baselines = baselines.loc[folds.isna()]
        else:
            baselines = baselines.loc[(folds == float(cv_folds)) & (baselines["seed"].astype(str) == str(seed))]
    if baselines.empty:
        return None
    return baselines.sort_values("objective", ascending=False, kind="stable").iloc[0]


def baseline_verdicts(table: pd.DataFrame) -> dict[str, tuple[pd.Series, Verdict]]:
    """Run id -> (its strongest baseline, the verdict on test) for every train run, trial and cv parent.

    A cv parent is judged on its mean test scores against a baseline cross-validated on the
    same folds, and only that (its folds average other test subjects than any single split).
    """
    out = {}
    for _, row in table.loc[table["kind"].isin((*TRAINED_KINDS, "cv"))].iterrows():
        folds = row.get("cv_folds", math.nan) if row["kind"] == "cv" else math.nan
        baseline = strongest_baseline(table, row.get("data_digest"), folds, row.get("seed"))
        if baseline is not None:
            out[str(row["run_id"])] = (baseline, compare(row, baseline))
    return out


def cv_verdict_lines(table: pd.DataFrame, run_id: str) -> list[str]:
    """What `--cv` prints last: the cross-validated network against the floor on the same folds.

    For a network's cv parent, its verdict (or how to get one); for a baseline's, the verdict
    of every network cross-validated on its folds. Each adds fold-by-fold wins from both
    parents' `cv_folds.csv`, since a mean can hide a fold the network loses.
    """
    rows = table.loc[table["run_id"].astype(str) == run_id]
    if rows.empty:
        return []
    row = rows.iloc[0]
    verdicts = baseline_verdicts(table)
    if row["kind"] == "cv":
        if run_id not in verdicts:
            k = int(row["cv_folds"]) if not math.isnan(_float(row.get("cv_folds"))) else "K"
            return [
                f"no baseline cross-validated on these folds yet: `ckrun baseline --cv {k}` on the same data "
                "(and seed) measures the floor on the same test subjects"
            ]
        judged = {run_id: verdicts[run_id]}
    else:
        judged = {r: v for r, v in verdicts.items() if str(v[0]["run_id"]) == run_id}  # cv floors judge cv runs only
    names_by_id = dict(zip(table["run_id"].astype(str), table["run"].astype(str), strict=False))
    lines = []
    for deep_id, (baseline, verdict) in judged.items():
        sentence = verdict.sentence(names_by_id.get(deep_id, deep_id), family_label(baseline.get("baseline_model")))
        where = f"on the mean of the same {int(baseline['cv_folds'])} folds (baseline run {baseline['run']}): "
        wins = _fold_wins(deep_id, str(baseline["run_id"]))
        lines.append(("FLAG: " if verdict.judged and not verdict.beats else "") + where + sentence + wins)
    return lines


def _fold_wins(deep_id: str, baseline_id: str) -> str:
    """' Fold by fold, higher on: emotion accuracy 4/5, AU macro-F1 5/5.' from both cv_folds.csv."""
    deep, floor = cv_folds(deep_id), cv_folds(baseline_id)
    if deep is None or floor is None or "fold" not in deep.columns or "fold" not in floor.columns:
        return ""
    paired = deep.merge(floor, on="fold", suffixes=("", "_floor"))
    parts = []
    for key, label in (("test_emotion_accuracy", "emotion accuracy"), ("test_au_f1", "AU macro-F1")):
        if key in paired.columns and f"{key}_floor" in paired.columns:
            both = paired[[key, f"{key}_floor"]].dropna()
            if len(both):
                parts.append(f"{label} {int((both[key] > both[f'{key}_floor']).sum())}/{len(both)}")
    return f" Fold by fold, higher on: {', '.join(parts)}." if parts else ""


def held_out_val(table: pd.DataFrame) -> pd.Series:
    """True for the runs whose validation images were not trained on (all but a retrain on train+val)."""
    if "train_data" not in table.columns:
        return pd.Series(True, index=table.index)
    return table["train_data"] != names.TRAINED_ON_VAL


def ranked_runs(table: pd.DataFrame) -> pd.DataFrame:
    """The trained runs (train or trial) their validation objective can rank, in table order."""
    return table.loc[table["kind"].isin(TRAINED_KINDS) & table["objective"].notna() & held_out_val(table)]


def best_run(table: pd.DataFrame) -> pd.Series | None:
    """The trained run (train or trial) with the highest validation objective on held-out val."""
    trained = ranked_runs(table)
    if trained.empty:
        return None
    return trained.sort_values("objective", ascending=False, kind="stable").iloc[0]


# %% One run's artifacts


def diagnosis(run_id: str) -> RunDiagnosis | None:
    """Parse the run's ``diagnosis.md`` (written by `evaluate.Diagnosis.markdown`)."""
    text = tracking.read_artifact_text(run_id, "diagnosis.md")
    if not text:
        return None
    verdict = re.search(r"^# Fit diagnosis: (\w+)", text, re.MULTILINE)
    why = re.search(r"## Why\n(.*?)\n## ", text, re.DOTALL)
    reasons = [line[2:].strip() for line in (why.group(1) if why else "").splitlines() if line.startswith("- ")]
    numbers = {}
    for key, value in re.findall(r"^\| (\w+) \| ([-+0-9.eE]+|nan|inf) \|$", text, re.MULTILINE):
        numbers[key] = _float(value)
    return RunDiagnosis(verdict.group(1) if verdict else "", reasons, numbers)


def history(run_id: str) -> pd.DataFrame | None:
    """Per-epoch metrics (``history.csv``: epoch, train_loss, val_loss, val_emotion_f1, ...)."""
    text = tracking.read_artifact_text(run_id, "history.csv")
    if not text:
        return None
    return pd.read_csv(io.StringIO(text))


def json_artifact(run_id: str, path: str) -> Any:
    """A JSON artifact parsed, or None when the run did not log it (e.g. no test split)."""
    text = tracking.read_artifact_text(run_id, path)
    return json.loads(text) if text else None


def per_au(run_id: str, split: str) -> pd.DataFrame | None:
    """``au/per_au_{split}.json``: au, name, precision, recall, f1, support, roc_auc, threshold."""
    data = json_artifact(run_id, f"au/per_au_{split}.json")
    return pd.DataFrame(data) if data else None


def per_class(run_id: str, split: str) -> pd.DataFrame | None:
    """``emotion/per_class_{split}.json``: class, precision, recall, f1, support."""
    data = json_artifact(run_id, f"emotion/per_class_{split}.json")
    return pd.DataFrame(data) if data else None


def confusion(run_id: str, split: str) -> dict[str, Any] | None:
    """``confusion_matrix/emotion_{split}.json``: classes, counts, row_normalised."""
    return json_artifact(run_id, f"confusion_matrix/emotion_{split}.json")


def split_manifest(run_id: str) -> pd.DataFrame | None:
    """The manifest with its split that the run trained on (``data/split.csv``)."""
    text = tracking.read_artifact_text(run_id, "data/split.csv")
    if not text:
        return None
    return pd.read_csv(io.StringIO(text), dtype={"subject": str, "sequence": str})


def predictions(run_id: str, split: str) -> Predictions | None:
    """``predictions/{split}.csv``: the run's per-image predictions, or None when it logged none."""
    text = tracking.read_artifact_text(run_id, f"predictions/{split}.csv")
    return read_predictions_csv(text, f"run {run_id}: predictions/{split}.csv") if text else None


def cv_folds(run_id: str) -> pd.DataFrame | None:
    """``cv_folds.csv`` of a cross-validation parent: one row per fold with its metrics."""
    text = tracking.read_artifact_text(run_id, "cv_folds.csv")
    return pd.read_csv(io.StringIO(text)) if text else None


def run_config(run_id: str) -> dict[str, Any] | None:
    """The resolved config the run logged (``config.yaml``), to split other data the same way."""
    import yaml

    text = tracking.read_artifact_text(run_id, "config.yaml")
    return yaml.safe_load(text) if text else None


# %% The majority-class reference


def majority_row(manifest: pd.DataFrame) -> dict[str, Any] | None:
    """Scores of always predicting the training split's most frequent class.

    Computed from the run's own split, so it is the floor every model on that split has to
    clear: accuracy equals the majority share, and macro-F1 shows what that is worth.
    """
    if "split" not in manifest.columns or "emotion" not in manifest.columns:
        return None
    labelled = manifest.loc[manifest["emotion"].isin(EMOTION_CLASSES)]
    train = labelled.loc[labelled["split"] == "train", "emotion"]
    if train.empty:
        return None
    majority = train.value_counts().idxmax()
    row: dict[str, Any] = {"run": f"majority class ('{majority}')", "kind": "reference", "fit_diagnosis": ""}
    for split, targets in labelled.groupby("split")["emotion"]:
        accuracy = float((targets == majority).mean())
        f1_major = 2 * accuracy / (1 + accuracy) if accuracy else 0.0
        present = set(targets) | {majority}
        row[f"{split}_emotion_accuracy"] = accuracy
        row[f"{split}_emotion_f1"] = f1_major / len(present)
    return row
