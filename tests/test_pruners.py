"""The real pruners through `ckrun tune`: the median pruner with the quick space's settings, Hyperband.

The other study tests replace the pruner or turn it off; here `make_pruner`, the pruning
callback, the worker and Optuna are the real ones, and only the trial's training is a stand-in:
a real Keras fit (of a one-weight model, so it takes milliseconds) whose per-epoch validation
objective is scripted, one level per trial in the order the trials run. Whether a trial is
pruned then depends only on the pruner and its settings.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import optuna
import pytest
import yaml
from click.testing import CliRunner

from ckrun import tracking
from ckrun.cli import cli
from ckrun.config import load_config
from ckrun.errors import ConfigError
from ckrun.tune import RUN_ID_ATTR, TuneOptions, run_tune
from ckrun.tune.space import load_search_space

pytestmark = pytest.mark.slow


class _OneWeightModel:
    """One compiled one-weight Keras model for every stand-in fit (Keras traces its step once)."""

    model: Any = None

    @classmethod
    def fit(cls, level: float, epochs: int, callbacks: list[Any]) -> None:
        """A real Keras fit that reports `level` as every epoch's validation objective, then logs it."""
        import keras

        class Objective(keras.callbacks.Callback):  # runs first, as train()'s objective callback does
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                assert logs is not None
                logs["val_objective"] = level

        def log(epoch: int, logs: dict) -> None:
            tracking.log_metrics({"val_objective": logs["val_objective"]}, step=epoch + 1)

        if cls.model is None:
            cls.model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
            cls.model.compile(optimizer="sgd", loss="mse")
        x = np.zeros((4, 1), "float32")
        logger = keras.callbacks.LambdaCallback(on_epoch_end=log)
        cls.model.fit(x, x, epochs=epochs, verbose=0, callbacks=[Objective(), *callbacks, logger])


@pytest.fixture
def scripted_trials(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """`ckrun.train.train` as a real child run whose objective curve is the next level of the list."""
    levels: list[float] = []
    calls: list[int] = []

    def train(cfg: Any, data: Any, *, run_name: str, kind: str, tags: dict, callbacks: Any, killed_on: Any,
              on_run_start: Any, **_: Any) -> Any:  # fmt: skip
        level = levels[len(calls)]
        calls.append(1)
        with tracking.start_run(kind=kind, run_name=run_name, tags=tags, killed_on=killed_on) as run:
            on_run_start(run.run_id)
            tracking.log_params(cfg.params())
            _OneWeightModel.fit(level, cfg.epochs, list(callbacks))
            metrics = {"objective": level, "val_emotion_f1": level, "val_au_f1": level, "epochs_run": cfg.epochs}
            tracking.log_metrics(metrics)
        return SimpleNamespace(run_id=run.run_id, metrics=metrics, model_uri=None)

    monkeypatch.setattr("ckrun.train.train", train)
    return levels


def _tune(store: Path, data: Path, study: str, space: str, *extra: str) -> Any:
    args = ["tune", "--data", str(data), "--search-space", space, "--study-name", study, "--experiment", "prune",
            "--storage", f"sqlite:///{store}/optuna.db", "--sampler", "random", "--no-register",
            "--set", "preset=tiny", "--set", "image_size=32",
            "--set", "explain_images_per_class=0", *extra]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return optuna.load_study(study_name=study, storage=f"sqlite:///{store}/optuna.db").trials


def _assert_pruned_after(trial: optuna.trial.FrozenTrial, epoch: int) -> None:
    """Pruned at `epoch`: Optuna saw epochs 1..epoch, and the KILLED run's curve ends there too."""
    assert sorted(trial.intermediate_values) == list(range(1, epoch + 1))
    run = tracking.get_run(trial.user_attrs[RUN_ID_ATTR])
    assert run.info.status == "KILLED" and run.data.tags["ckrun.trial_state"] == "PRUNED"
    assert [step for step, _ in tracking.metric_history(run.info.run_id, "val_objective")] == list(range(1, epoch + 1))


def test_median_pruner_with_the_quick_spaces_settings_prunes_the_worse_trial_only(
    mlflow_store: Path, tiny_ckplus: Path, scripted_trials: list[float]
) -> None:
    quick = load_search_space("quick")
    assert quick.startup_trials == 2 and quick.warmup_epochs >= 1  # the settings this test is about
    # Trial 1 is worse than trial 0 but a start-up trial; trial 2 is far below the median; trial 3 above it.
    scripted_trials += [0.6, 0.4, 0.1, 0.9]
    trials = _tune(mlflow_store, tiny_ckplus, "median", "quick", "--n-trials", "4", "--pruner", "median")

    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    assert all(t.params["epochs"] > quick.warmup_epochs for t in trials)  # so each trial could be pruned
    _assert_pruned_after(trials[2], quick.warmup_epochs)  # not before the warm-up ends, at once after it
    assert [t.value for t in trials if t.state.name == "COMPLETE"] == [0.6, 0.4, 0.9]
    for trial in (trials[0], trials[1], trials[3]):
        assert tracking.get_run(trial.user_attrs[RUN_ID_ATTR]).info.status == "FINISHED"
        assert sorted(trial.intermediate_values) == list(range(1, trial.params["epochs"] + 1))
    # the parent's trial_value curve holds final scores only: a pruned trial's value is an epoch's
    (parent,) = tracking.search_runs("prune", filter_string="tags.`ckrun.kind` = 'study'")["run_id"]
    assert tracking.metric_history(parent, "trial_value") == [(0, 0.6), (1, 0.4), (3, 0.9)]


def test_hyperband_prunes_a_trial_below_the_rung_and_keeps_a_better_one(
    mlflow_store: Path, tiny_ckplus: Path, scripted_trials: list[float]
) -> None:
    # Epochs fixed at 6 with 3 warm-up epochs: one bracket (rungs at 3 and 9 epochs), so every trial
    # competes with every earlier one at epoch 3, whatever Optuna's bracket hashing does.
    space = mlflow_store / "space.yaml"
    space.write_text(yaml.safe_dump({"startup_trials": 2, "warmup_epochs": 3,
                                     "params": {"l2": {"low": 1.0e-5, "high": 1.0e-2, "log": True}}}))  # fmt: skip
    scripted_trials += [0.6, 0.1, 0.9]
    trials = _tune(mlflow_store, tiny_ckplus, "hb", str(space), "--n-trials", "3", "--pruner", "hyperband",
                   "--set", "epochs=6")  # fmt: skip

    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "COMPLETE"]
    _assert_pruned_after(trials[1], 3)
    assert sorted(trials[2].intermediate_values) == list(range(1, 7)) and trials[2].value == 0.9


def test_unknown_pruner_is_rejected_before_anything_is_logged(
    bare_mlflow_store: Path, tiny_ckplus: Path, scripted_trials: list[float]
) -> None:
    result = CliRunner().invoke(cli, ["tune", "--data", str(tiny_ckplus), "--pruner", "sha"])
    assert result.exit_code == 2 and "--pruner" in result.output and "'sha' is not one of" in result.output

    # (no scripted level: a trial started anyway fails at once instead of training)
    options = TuneOptions(pruner="sha", storage=f"sqlite:///{bare_mlflow_store}/optuna.db", register=False, n_trials=1)
    with pytest.raises(ConfigError, match=r"unknown pruner 'sha' \(expected median, hyperband or none\)"):
        run_tune(
            load_config(overrides=["preset=tiny", "image_size=32", "explain_images_per_class=0"]), tiny_ckplus, options
        )
    assert not (bare_mlflow_store / "mlflow.db").exists()  # no study run was started
