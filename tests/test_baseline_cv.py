"""`ckrun baseline --cv K`: the linear floor on the folds `ckrun train --cv K` uses, and the verdict.

Under cross-validation a network's mean test scores can only be set against a floor measured
on the same test subjects; these tests check that the two commands share their folds, that a
cross-validated network is judged against that floor (and a single-split run never is), and
what both commands print.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import use_store

from ckrun import tracking
from ckrun.cli import cli
from ckrun.report import collect

TINY = ["preset=tiny", "epochs=1", "min_au_count=3", "threshold_min_positives=3", "explain_images_per_class=0"]
SETS = [arg for key in [*TINY, "log_model=false"] for arg in ("--set", key)]


def _table(rows: list[dict]) -> pd.DataFrame:
    base = {"objective": 0.5, "data_digest": "d", "cv_folds": math.nan, "seed": "0", "baseline_model": None,
            "test_emotion_accuracy": 0.8, "test_emotion_f1": 0.8, "test_au_f1": 0.6}  # fmt: skip
    return pd.DataFrame([base | r for r in rows])


def test_a_cv_run_is_judged_against_the_baseline_on_its_folds_and_a_single_split_run_never() -> None:
    table = _table(
        [
            {"run_id": "single", "run": "baseline-svm", "kind": "baseline", "objective": 0.5},
            {"run_id": "cv5s0", "run": "baseline-cv5", "kind": "baseline", "cv_folds": 5.0, "objective": 0.7,
             "test_emotion_accuracy": 0.9},
            {"run_id": "cv5s1", "run": "baseline-cv5-seed1", "kind": "baseline", "cv_folds": 5.0, "seed": "1",
             "objective": 0.99},
            {"run_id": "cv3", "run": "baseline-cv3", "kind": "baseline", "cv_folds": 3.0, "objective": 0.98},
            {"run_id": "train", "run": "train-1", "kind": "train"},
            {"run_id": "deep5", "run": "cv5-1", "kind": "cv", "cv_folds": 5.0, "test_emotion_accuracy": 0.95,
             "test_emotion_f1": 0.9, "test_au_f1": 0.7},
            {"run_id": "deep4", "run": "cv4-1", "kind": "cv", "cv_folds": 4.0},
            {"run_id": "other", "run": "cv5-2", "kind": "cv", "cv_folds": 5.0, "data_digest": "e"},
        ]
    )  # fmt: skip
    verdicts = collect.baseline_verdicts(table)
    # The single-split run gets the single-split floor, even though cv floors have better objectives.
    assert verdicts["train"][0]["run_id"] == "single"
    # The 5-fold run gets the 5-fold floor of its own seed and data, judged on the fold means.
    baseline, verdict = verdicts["deep5"]
    assert baseline["run_id"] == "cv5s0" and verdict.beats
    assert {h.metric: (h.deep, h.baseline) for h in verdict.heads}["test_emotion_accuracy"] == (0.95, 0.9)
    # No floor on 4 folds, none on other data: not judged rather than judged against the wrong one.
    assert "deep4" not in verdicts and "other" not in verdicts
    lines = collect.cv_verdict_lines(table, "deep4")
    assert lines == [
        "no baseline cross-validated on these folds yet: `ckrun baseline --cv 4` on the same data (and seed) "
        "measures the floor on the same test subjects"
    ]


@pytest.fixture(scope="module")
def both(store: Path, tiny_ckplus: Path) -> dict[str, str]:
    """`ckrun train --cv 3`, then `ckrun baseline --cv 3`, on the same data and seed: their outputs."""
    runner = CliRunner()
    data = ["--data", str(tiny_ckplus), "--experiment", "cv-floor"]
    deep = runner.invoke(cli, ["train", *data, "--cv", "3", *SETS])
    assert deep.exit_code == 0, deep.output
    floor = runner.invoke(cli, ["baseline", *data, "--cv", "3", *SETS, "--model", "logreg", "--c-grid", "0.01,1"])
    assert floor.exit_code == 0, floor.output
    return {"deep": deep.output, "floor": floor.output}


def _cv_run_id(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("cv run ")).split()[2].rstrip(":")


@pytest.mark.slow
def test_the_baseline_is_cross_validated_on_the_folds_of_train_cv(both: dict[str, str], store: Path) -> None:
    deep_id, floor_id = _cv_run_id(both["deep"]), _cv_run_id(both["floor"])
    floor = tracking.get_run(floor_id)
    assert floor.data.tags["ckrun.kind"] == "baseline"
    assert floor.data.params["cv_folds"] == "3" and floor.data.params["baseline_request"] == "logreg"
    assert floor.data.params["baseline_model"] == "logreg" and floor.data.params["baseline_C_grid"] == "[0.01, 1.0]"
    assert floor.data.params["data_digest"] == tracking.get_run(deep_id).data.params["data_digest"]
    children = tracking.child_runs(floor_id).sort_values("tags.ckrun.fold")
    assert list(children["tags.ckrun.fold"]) == ["1", "2", "3"]
    assert list(children["tags.mlflow.runName"]) == ["baseline-fold-1", "baseline-fold-2", "baseline-fold-3"]
    assert set(children["tags.ckrun.kind"]) == {"baseline"}
    values = children["metrics.test_emotion_accuracy"].to_numpy()
    assert floor.data.metrics["test_emotion_accuracy"] == pytest.approx(values.mean())
    assert floor.data.metrics["test_emotion_accuracy_std"] == pytest.approx(values.std(ddof=1))
    deep_children = tracking.child_runs(deep_id).set_index("tags.ckrun.fold")
    for _, child in children.iterrows():
        twin = deep_children.loc[child["tags.ckrun.fold"], "run_id"]
        mine, theirs = (
            pd.read_csv(tracking.download_artifact(r, "predictions/test.csv", store / f"p-{r}"))
            for r in (child.run_id, twin)
        )
        assert sorted(mine["path"]) == sorted(theirs["path"])  # the same test images, fold by fold
        assert child["params.data_digest"] == deep_children.loc[child["tags.ckrun.fold"], "params.data_digest"]
    folds = pd.read_csv(tracking.download_artifact(floor_id, "cv_folds.csv", store / "floor"))
    assert list(folds["baseline_model"]) == ["logreg"] * 3


@pytest.mark.slow
def test_both_commands_print_the_verdict_on_the_same_folds(both: dict[str, str]) -> None:
    deep_id, floor_id = _cv_run_id(both["deep"]), _cv_run_id(both["floor"])
    # Before the floor existed, train --cv said how to get it.
    assert "no baseline cross-validated on these folds yet: `ckrun baseline --cv 3`" in both["deep"]
    deep_name = tracking.get_run(deep_id).data.tags["mlflow.runName"]
    floor_name = tracking.get_run(floor_id).data.tags["mlflow.runName"]
    line = both["floor"].strip().splitlines()[-1]
    assert line.removeprefix("FLAG: ").startswith(
        f"on the mean of the same 3 folds (baseline run {floor_name}): {deep_name} "
    )
    assert "the logistic-regression baseline" in line.lower()
    wins = line.split("Fold by fold, higher on: ")[1]
    assert wins.startswith("emotion accuracy ") and "/3" in wins
    # The verdict agrees with the parents' logged means, and FLAG marks a loss.
    deep, floor = tracking.get_run(deep_id).data.metrics, tracking.get_run(floor_id).data.metrics
    keys = ("test_emotion_accuracy", "test_emotion_f1", "test_au_f1")
    beats = all(deep[k] > floor[k] for k in keys if k in deep and k in floor)
    assert line.startswith("FLAG: ") is (not beats)
    # The report's comparison table judges the cv row against the same floor.
    table = collect.collect_runs("cv-floor").table
    verdicts = collect.baseline_verdicts(table)
    assert verdicts[deep_id][0]["run_id"] == floor_id
    assert np.isclose(verdicts[deep_id][0]["test_emotion_accuracy"], floor["test_emotion_accuracy"])


def test_bad_cv_input_is_refused_before_any_run(tmp_path: Path, tiny_ckplus: Path, monkeypatch) -> None:
    use_store(monkeypatch, tmp_path)
    runner = CliRunner()
    data = ["--data", str(tiny_ckplus), "--experiment", "cv-bad"]
    out = runner.invoke(cli, ["baseline", *data, "--cv", "2", *SETS])
    assert out.exit_code != 0 and "--cv" in out.output and "cross-validation needs K >= 3" in out.output
    out = runner.invoke(cli, ["baseline", *data, "--cv", "3", *SETS, "--c-grid", "0.1,-1"])
    assert out.exit_code == 2 and "--c-grid" in out.output
    from mlflow.tracking import MlflowClient

    assert MlflowClient().get_experiment_by_name("cv-bad") is None  # not even an experiment was made
