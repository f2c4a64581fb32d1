"""`ckrun run`'s champion: the better of the default run and the study's best trial, by logged val objective.

Runs are logged directly with known `objective` values and a stand-in pyfunc model (no
training), so the expected champion is known by construction, not recomputed with the rule
under test.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import mlflow
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from ckrun import tracking
from ckrun.main_job import register_champion
from ckrun.tune import RUN_ID_ATTR, StudyResult
from ckrun.tune.champion import best_trials

NAME = "ckplus-test"


class _Echo(mlflow.pyfunc.PythonModel):
    """A stand-in model: registration needs a logged model, not a trained one."""

    def predict(self, model_input: list[str]) -> list[str]:
        return model_input


def _run(name: str, objective: float, *, model: bool = True, kind: str = "trial") -> str:
    with tracking.start_run(kind=kind, run_name=name, experiment="champion") as run:
        tracking.log_metrics({"objective": objective, "val_emotion_f1": objective})
        if model:
            mlflow.pyfunc.log_model(name=tracking.MODEL_NAME, python_model=_Echo(), pip_requirements=[])
    return run.run_id


def _default_run(objective: float, *, model: bool = True) -> Any:
    run_id = _run("train-default", objective, model=model, kind="train")
    return SimpleNamespace(run_id=run_id, metrics={"objective": objective})


def _study(values: list[Any], run_ids: list[str], *, pareto: bool = False) -> StudyResult:
    """A finished study whose trials scored `values`, each linked to its run, as run_tune leaves it."""
    study = optuna.create_study(study_name="s", directions=["maximize"] * (2 if pareto else 1))
    for value, run_id in zip(values, run_ids, strict=True):
        trial = study.ask()
        trial.set_user_attr(RUN_ID_ATTR, run_id)
        study.tell(trial, value)
    best, front = best_trials(study, pareto)
    assert best is not None
    return StudyResult("s", "memory", None, {}, [], best, best.user_attrs[RUN_ID_ATTR], pareto_front=front)


def _champion() -> tuple[str | None, dict[str, str]]:
    version = MlflowClient().get_model_version_by_alias(NAME, "champion")
    return version.run_id, version.tags


def test_the_higher_logged_val_objective_wins_and_the_version_says_why(mlflow_store: Path) -> None:
    trials = [_run("trial-0", 0.55), _run("trial-1", 0.71), _run("trial-2", 0.60)]
    study = _study([0.55, 0.71, 0.60], trials)

    assert register_champion(_default_run(0.62), study, NAME) == f"models:/{NAME}@champion"
    run_id, tags = _champion()
    assert run_id == trials[1]
    assert tags == {"ckrun.source_run_id": trials[1], "ckrun.val_objective": "0.7100", "ckrun.study_name": "s",
                    "ckrun.trial_number": "1"}  # fmt: skip

    better_default = _default_run(0.80)
    register_champion(better_default, study, NAME)
    run_id, tags = _champion()
    assert run_id == better_default.run_id
    assert tags == {"ckrun.source_run_id": better_default.run_id, "ckrun.val_objective": "0.8000"}


def test_a_best_trial_without_a_model_leaves_the_registrable_default_run(
    mlflow_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trials = [_run("trial-0", 0.55), _run("trial-1", 0.71, model=False)]
    default = _default_run(0.62)
    assert register_champion(default, _study([0.55, 0.71], trials), NAME) == f"models:/{NAME}@champion"
    assert _champion()[0] == default.run_id
    assert "trial 1 of s (val objective 0.710) logged no model" in capsys.readouterr().err

    # Nothing registrable at all: nothing registered, no alias, and no error.
    other = "ckplus-none"
    assert register_champion(_default_run(0.9, model=False), _study([0.71], trials[1:]), other) is None
    assert tracking.alias_run_id(other) is None


def test_a_pareto_study_competes_with_its_best_front_members_logged_objective(mlflow_store: Path) -> None:
    # Front: trials 0 and 1 (trial 2 is dominated); the study's best is trial 1 (mean F1 0.75).
    values = [(0.9, 0.5), (0.6, 0.9), (0.5, 0.6)]
    trials = [_run(f"trial-{n}", sum(v) / 2) for n, v in enumerate(values)]
    study = _study(values, trials, pareto=True)
    assert study.best_trial.number == 1 and {t.number for t in study.pareto_front} == {0, 1}

    register_champion(_default_run(0.70), study, NAME)
    assert _champion() == (trials[1], {"ckrun.source_run_id": trials[1], "ckrun.val_objective": "0.7500",
                                       "ckrun.study_name": "s", "ckrun.trial_number": "1"})  # fmt: skip
    default = _default_run(0.80)
    register_champion(default, study, NAME)
    assert _champion()[0] == default.run_id


def test_ckrun_runs_study_scores_its_trials_on_the_default_runs_objective(
    mlflow_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `objective=emotion` the default run logs val emotion F1 as `objective`; trials scored on
    the mean of both heads would be ranked against it on another scale. Here the trial has the
    higher mean (0.70) but the lower emotion F1 (0.50 < 0.60), so only an emotion-scored study
    leaves the default run as champion. Stages are stand-ins: the choice is what is tested."""
    from ckrun import names
    from ckrun.config import build_config
    from ckrun.main_job import run_main

    default_val = {"val_emotion_f1": 0.60, "val_au_f1": 0.20}
    with tracking.start_run(kind="train", run_name="train-default", experiment="champion") as run:
        tracking.log_metrics({**default_val, "objective": 0.60})
        mlflow.pyfunc.log_model(name=tracking.MODEL_NAME, python_model=_Echo(), pip_requirements=[])
    default = SimpleNamespace(run_id=run.run_id, metrics={**default_val, "objective": 0.60})

    def study(cfg: Any, prepared: Any, options: Any) -> StudyResult:  # what the worker logs for one trial
        trial_val = {"val_emotion_f1": 0.50, "val_au_f1": 0.90}
        value = names.objective(trial_val, "val", options.objective)
        with tracking.start_run(kind="trial", run_name="trial-0", experiment="champion") as trial:
            tracking.log_metrics({**trial_val, "objective": value})
            mlflow.pyfunc.log_model(name=tracking.MODEL_NAME, python_model=_Echo(), pip_requirements=[])
        return _study([value], [trial.run_id])

    prepared = SimpleNamespace(manifest=pd.DataFrame({"subject": ["s1"]}), source="stand-in", digest="d")
    monkeypatch.setattr("ckrun.data.loader.prepare_for_config", lambda data, cfg: prepared)
    monkeypatch.setattr(
        "ckrun.baseline.run_baseline", lambda *a, **k: SimpleNamespace(run_id="b", metrics={}, model="hog-svm")
    )
    monkeypatch.setattr("ckrun.train.train", lambda *a, **k: default)
    monkeypatch.setattr("ckrun.tune.run_tune", study)

    cfg = build_config({"preset": "tiny", "objective": "emotion"})
    run_main(cfg, None, experiment="champion", register_name=NAME, report=False)
    assert _champion()[0] == default.run_id


def test_tied_trials_give_the_earliest_best_whatever_order_the_storage_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL orders tied values arbitrarily; the best trial (so the champion) must not flip."""
    study = optuna.create_study(direction="maximize")
    for value in (0.5, 0.7, 0.7, 0.6):
        study.tell(study.ask(), value)
    last_tied = study.trials[2]
    monkeypatch.setattr(type(study._storage), "get_best_trial", lambda self, study_id: last_tied)
    best, front = best_trials(study, pareto=False)
    assert best is not None and best.number == 1 and front == []
    low = optuna.create_study(direction="minimize")
    for value in (0.5, 0.2, 0.2):
        low.tell(low.ask(), value)
    assert best_trials(low, pareto=False)[0].number == 1  # type: ignore[union-attr]
