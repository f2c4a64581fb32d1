"""ckrun.tune: search-space files, suggestions, storage, the trial cap, and studies.

Most study tests swap `ckrun.train.train` for a fast stand-in that still opens a real MLflow
run through `tracking.start_run`, so the bookkeeping (child runs, tags, cap, resume, retries,
pareto front, parent artifacts) is checked in seconds; one slow test trains for real to cover
pruning through Keras, a failing trial, registration and prediction with the champion.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from ckrun import names, tracking, tune
from ckrun.config import load_config
from ckrun.data.loader import manifest_digest
from ckrun.errors import CkrunError, ConfigError
from ckrun.tune import TuneOptions, counted_trials, over_cap, resolve_storage, run_tune
from ckrun.tune import space as ss
from ckrun.tune.space import load_search_space, suggest_config

REPO = Path(__file__).resolve().parents[1]

TINY_SPACE = {
    "description": "tiny test space",
    "startup_trials": 1,
    "warmup_epochs": 0,
    "params": {
        "l2": {"type": "float", "low": 1.0e-5, "high": 1.0e-1, "log": True},
        "filters": {"choices": [4, 8], "per_stage": True},
    },
}


def write_space(folder: Path, data: Any, name: str = "space.yaml") -> Path:
    path = folder / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def tiny_cfg(*extra: str) -> Any:
    return load_config(None, ["preset=tiny", "image_size=32", "epochs=2", "explain_images_per_class=0", *extra])


# --------------------------------------------------------------------------------------
# Search-space files


def test_bundled_spaces_load_and_match_the_documented_path() -> None:
    seed = load_search_space("seed")
    quick = load_search_space("quick")
    assert seed.stages == 2
    assert seed.params["l2"].log and (seed.params["l2"].low, seed.params["l2"].high) == (1e-5, 1e-1)
    assert seed.params["filters"].choices == [64, 128, 256] and seed.params["filters"].per_stage
    assert seed.params["blocks"].choices == [3, 4, 6] and seed.params["blocks"].per_stage
    epochs = seed.params["epochs"]
    assert {15, 50, 75} <= set(range(epochs.low, epochs.high + 1, epochs.step)) and (epochs.low, epochs.high) == (
        10,
        100,
    )
    assert seed.params["learning_rate"].low < 1e-3 < seed.params["learning_rate"].high
    assert quick.params and quick.source.endswith("quick.yaml")
    # the documented top-level path is a relative symlink to the package data
    link = REPO / "search_spaces"
    assert link.is_symlink() and not Path(link.readlink()).is_absolute()
    assert load_search_space(link / "seed.yaml").text == seed.text
    # both fit the ResNet presets (the pretrained default has no widths to vary: see below)
    for cfg in (load_config(None, ["preset=resnet"]), tiny_cfg()):
        ss.check_space(seed, cfg)
        ss.check_space(quick, cfg)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ({**TINY_SPACE, "sampler": "tpe"}, "sampler"),
        ({"params": {"l2x": {"low": 1.0e-4, "high": 1.0e-2}}}, "params.l2x: not a config key"),
        ({"params": {"dropout": {"type": "categorical", "choices": []}}}, "params.dropout.choices"),
        ({"params": {"l2": {"low": 1.0e-2, "high": 1.0e-4}}}, "params.l2: low must be below high"),
        ({"params": {"l2": {"low": 0.0, "high": 1.0e-2, "log": True}}}, "log=true needs low > 0"),
        ({"params": {"l2": {"low": 1.0e-4, "high": 1.0e-2, "extra": 1}}}, "params.l2.extra"),
        ({"params": {"seed": {"low": 0, "high": 9}}}, "params.seed: cannot be searched"),
        ({"params": {"filters": {"choices": [8, 16]}}}, "params.filters: has one value per stage"),
        ({"params": {"l2": {"low": 1.0e-4, "high": 1.0e-2, "per_stage": True}}}, "per_stage is only for"),
        ({"params": {}}, "params"),
        ("params: [unclosed", "not valid YAML"),
        ("- a list", "expected a mapping"),
    ],
)
def test_invalid_space_files_are_one_line_errors_naming_file_and_key(
    tmp_path: Path, content: Any, fragment: str
) -> None:
    path = write_space(tmp_path, content)
    with pytest.raises(ConfigError) as err:
        load_search_space(path)
    message = str(err.value)
    assert str(path) in message and fragment in message and "\n" not in message


def test_missing_space_and_bounds_the_config_rejects(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"search space not found: nope\.yaml.*quick"):
        load_search_space("nope.yaml")
    space = load_search_space(write_space(tmp_path, {"params": {"dropout": {"low": 0.1, "high": 1.5}}}))
    with pytest.raises(ConfigError, match=r"params.dropout: 1.5 is not usable"):
        ss.check_space(space, tiny_cfg())


def test_a_float_param_on_an_integer_key_is_refused_before_any_trial(tmp_path: Path) -> None:
    """Whole-number bounds suit `epochs`, but suggest_float would draw 2.37 and fail every trial."""
    space = load_search_space(write_space(tmp_path, {"params": {"epochs": {"type": "float", "low": 2, "high": 3}}}))
    with pytest.raises(ConfigError, match=r"params.epochs: type float draws values epochs does not take.*use type int"):
        ss.check_space(space, tiny_cfg())
    stepped = {"params": {"epochs": {"type": "float", "low": 2, "high": 4, "step": 1}}}
    ss.check_space(load_search_space(write_space(tmp_path, stepped)), tiny_cfg())  # only whole numbers drawn


def test_types_are_inferred_and_numeric_strings_accepted(tmp_path: Path) -> None:
    space = load_search_space(
        write_space(tmp_path, "params:\n  l2: {low: 1e-5, high: 1e-2, log: true}\n  epochs: {low: 2, high: 8}\n")
    )
    assert isinstance(space.params["l2"], ss.FloatParam) and space.params["l2"].low == 1e-5
    assert isinstance(space.params["epochs"], ss.IntParam)


def test_a_space_that_shapes_the_resnet_needs_the_resnet() -> None:
    """The quick and seed spaces vary widths and depths, which the pretrained default does not have."""
    for name, first in (("quick", "params.filters"), ("seed", "params.filters")):
        with pytest.raises(ConfigError, match=f"search space .*{name}.yaml: {first} shapes the ResNet only") as err:
            ss.check_space(load_search_space(name), load_config(None, []))
        assert "--set preset=resnet" in str(err.value)
        ss.check_space(load_search_space(name), load_config(None, ["preset=resnet"]))
    ss.check_space(load_search_space("cpu"), load_config(None, []))


def test_suggest_config_suggests_one_value_per_stage() -> None:
    space = load_search_space("seed")
    base = load_config(None, ["preset=resnet"])  # 3 stages; the seed space has 2
    fixed = {"l2": 1e-3, "filters_1": 64, "filters_2": 256, "blocks_1": 3, "blocks_2": 6, "epochs": 15}
    cfg = suggest_config(optuna.trial.FixedTrial({**fixed, "learning_rate": 1e-3}), space, base)
    assert (cfg.filters, cfg.blocks, cfg.strides) == ((64, 256), (3, 6), (1, 2))
    assert (cfg.l2, cfg.epochs, cfg.image_size) == (1e-3, 15, base.image_size)
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    suggest_config(trial, load_search_space("quick"), base)
    assert {"filters_1", "filters_2", "filters_3", "blocks_3", "l2", "epochs"} <= set(trial.params)


# --------------------------------------------------------------------------------------
# Storage, sampler, cap


def test_resolve_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/store/mlflow.db")
    monkeypatch.delenv("CKRUN_STORAGE", raising=False)
    assert resolve_storage(None).url == f"sqlite:///{tmp_path}/store/optuna.db"
    assert resolve_storage("").kind == "sqlite"
    journal = resolve_storage(f"journal://{tmp_path}/s.log")
    assert (journal.kind, journal.url) == ("journal", f"{tmp_path}/s.log")
    assert resolve_storage("runs/study.journal").kind == "journal"
    pg = resolve_storage("postgresql+psycopg2://ckrun:hunter2@db.example:5432/optuna?password=hunter2")
    assert pg.kind == "postgresql" and "hunter2" not in pg.label and "db.example:5432/optuna" in pg.label
    monkeypatch.setenv("CKRUN_STORAGE", "mysql://u:pw@h/db")
    assert resolve_storage(None).kind == "mysql"
    with pytest.raises(ConfigError, match="expected an Optuna storage URL"):
        resolve_storage("optuna.db")


def test_sampler_is_seeded_per_trial_number() -> None:
    """Two workers with one seed must not replay each other's suggestions; a rerun must repeat them."""

    def draws(n: int) -> list[float]:
        study = optuna.create_study(sampler=tune.make_sampler("tpe", 7, 10), direction="maximize")
        out = []
        for _ in range(n):
            trial = study.ask()
            out.append(trial.suggest_float("l2", 1e-5, 1e-1, log=True))
            study.tell(trial, 0.0)
        return out

    first, again = draws(3), draws(3)
    assert first == again and len(set(first)) == 3


def _trial(number: int, state: str, *, skipped: bool = False, retry_of: list[int] | None = None) -> Any:
    return SimpleNamespace(
        number=number,
        state=getattr(optuna.trial.TrialState, state),
        user_attrs={tune.SKIPPED_ATTR: "max_trials"} if skipped else {},
        system_attrs={"failed_trial": retry_of[0], "retry_history": retry_of} if retry_of else {},
    )


def test_cap_counts_every_state_except_retried_and_skipped_trials() -> None:
    trials = [
        _trial(0, "COMPLETE"),
        _trial(1, "PRUNED"),
        _trial(2, "FAIL"),  # a failed trial used its budget
        _trial(3, "FAIL"),  # stale (crashed worker) ...
        _trial(4, "RUNNING"),
        _trial(5, "WAITING", retry_of=[3]),  # ... retried: counts once
        _trial(6, "FAIL", skipped=True),  # lost the race at the cap
    ]
    assert counted_trials(trials) == 5
    assert not tune.cap_reached(trials, 5)  # the queued retry still runs
    assert tune.cap_reached([t for t in trials if t.number != 5], 4)
    assert not over_cap(trials, 5, cap=5)  # 0, 1, 2, 4 come before the retry
    assert over_cap(trials, 6, cap=5)
    assert not over_cap(trials, 6, cap=6)


def test_concurrent_asks_at_the_cap_let_exactly_the_lower_numbers_run() -> None:
    study = optuna.create_study(direction="maximize")
    for _ in range(2):
        study.tell(study.ask(), 1.0)
    a, b, c = study.ask(), study.ask(), study.ask()  # three workers asking at once, cap 4
    trials = study.get_trials(deepcopy=False)
    assert [over_cap(trials, t.number, 4) for t in (a, b, c)] == [False, False, True]


def test_pruning_callback_prunes_after_the_epoch_is_logged() -> None:
    """The pruned epoch reaches callbacks that run after ours (train's MLflow epoch logger)."""
    import keras

    from ckrun.model.callbacks import PruneOnObjective

    class FakeTrial:
        def __init__(self) -> None:
            self.reports: list[tuple[int, float]] = []

        def report(self, value: float, step: int) -> None:
            self.reports.append((step, value))

        def should_prune(self) -> bool:
            return len(self.reports) == 2

    class Objective(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs["val_objective"] = 0.1 * (epoch + 1)

    seen: list[int] = []
    logger = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch + 1))
    trial = FakeTrial()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((8, 3), "float32")
    with pytest.raises(optuna.TrialPruned, match="epoch 2"):
        model.fit(x, x[:, :1], epochs=5, verbose=0, callbacks=[Objective(), PruneOnObjective(trial), logger])
    assert seen == [1, 2] and [s for s, _ in trial.reports] == [1, 2]

    # A trial that would be pruned only at its last epoch finishes: that stop saves nothing.
    trial = FakeTrial()
    history = model.fit(x, x[:, :1], epochs=2, verbose=0, callbacks=[Objective(), PruneOnObjective(trial)])
    assert len(history.history["loss"]) == 2 and [s for s, _ in trial.reports] == [1, 2]


# --------------------------------------------------------------------------------------
# Studies with a fast stand-in for train()


def fake_data() -> Any:
    from ckrun.data.loader import PreparedData, manifest_digest

    manifest = pd.DataFrame(
        {
            "path": [f"/faces/S{i:03d}_001.png" for i in range(6)],
            "subject": [f"S{i:03d}" for i in range(6)],
            "emotion": ["happy", "surprise"] * 3,
            "split": ["train", "train", "val", "val", "test", "test"],
        }
    )
    return PreparedData("/faces", "ckplus", manifest, manifest_digest(manifest), [])


def fake_scores(cfg: Any) -> dict[str, float]:
    """Emotion F1 peaks at l2=1e-3; AU F1 rises with l2 (a real trade-off for the pareto front)."""
    x = math.log10(cfg.l2)
    emotion = 0.9 - 0.1 * abs(x + 3) + 0.01 * cfg.filters[0] / 8
    au = 0.3 + 0.1 * (x + 5)
    return {"val_emotion_f1": emotion, "val_au_f1": au, "test_emotion_f1": emotion - 0.05, "best_epoch": 1.0}


@pytest.fixture
def fake_train(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """`ckrun.train.train` replaced by a stand-in that logs a real (tiny) MLflow run."""
    calls: list[Any] = []

    def train(cfg: Any, data: Any, *, run_name: str, kind: str, tags: dict, on_run_start: Any, **_: Any) -> Any:
        with tracking.start_run(kind=kind, run_name=run_name, tags=tags) as run:
            on_run_start(run.run_id)
            tracking.log_params(cfg.params())
            metrics = fake_scores(cfg)
            metrics["objective"] = names.objective(metrics, "val", cfg.objective)
            tracking.log_metrics(metrics)
            tracking.log_text(cfg.to_yaml(), "config.yaml")
        calls.append(cfg)
        return SimpleNamespace(run_id=run.run_id, metrics=metrics, model_uri=None)

    monkeypatch.setattr("ckrun.train.train", train)
    return calls


def options(tmp_path: Path, **changes: Any) -> TuneOptions:
    base = dict(
        search_space=str(write_space(tmp_path, TINY_SPACE)),
        n_trials=3,
        storage=f"sqlite:///{tmp_path}/optuna.db",
        study_name="s",
        register=False,
        sampler="random",
    )
    return TuneOptions(**{**base, **changes})


def runs_of(kind: str) -> pd.DataFrame:
    runs = tracking.search_runs()
    return runs[runs["tags.ckrun.kind"] == kind]


def test_study_runs_are_children_linked_both_ways_and_resume_respects_the_cap(
    mlflow_store: Path, fake_train: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_tune(tiny_cfg(), fake_data(), options(mlflow_store, max_trials=5))
    out = capsys.readouterr().out
    assert result.ran == [0, 1, 2] and len(fake_train) == 3
    assert len([line for line in out.splitlines() if line.startswith("trial ")]) == 3
    assert "best" in out and "elapsed" in out
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{mlflow_store}/optuna.db")
    trials = runs_of("trial")
    assert sorted(trials["tags.mlflow.runName"]) == ["trial-0", "trial-1", "trial-2"]
    assert set(trials["tags.mlflow.parentRunId"]) == {result.parent_run_id}
    for t in study.trials:  # trial -> run (user attr) and run -> trial (tags)
        run = tracking.get_run(t.user_attrs[tune.RUN_ID_ATTR])
        assert run.data.tags["ckrun.trial_number"] == str(t.number)
        assert run.data.tags["ckrun.trial_state"] == "COMPLETE"
        assert float(run.data.params["l2"]) == pytest.approx(t.params["l2"])
    parent = tracking.get_run(result.parent_run_id)
    assert parent.data.tags["ckrun.kind"] == "study" and parent.data.tags["ckrun.storage_kind"] == "sqlite"
    assert parent.data.params["tune.max_trials"] == "5" and "l2" not in parent.data.params
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)
    assert parent.data.metrics["best_val_emotion_f1"] == pytest.approx(study.best_trial.user_attrs["val_emotion_f1"])
    (mlflow_store / "dl").mkdir()
    table = pd.read_csv(tracking.download_artifact(result.parent_run_id, "trials.csv", mlflow_store / "dl"))
    assert list(table["number"]) == [0, 1, 2] and table["run_id"].notna().all()
    assert "s" in result.summary() and "best trial" in result.summary()

    # resume: the same study name continues; --max-trials caps the total across invocations
    again = run_tune(tiny_cfg(), fake_data(), options(mlflow_store, max_trials=5, n_trials=10))
    assert again.ran == [3, 4] and counted_trials(study.get_trials()) == 5
    third = run_tune(tiny_cfg(), fake_data(), options(mlflow_store, max_trials=5))
    assert third.ran == [] and len(study.get_trials()) == 5 and len(runs_of("study")) == 3


def test_a_changed_space_or_base_config_never_joins_the_study(mlflow_store: Path, fake_train: list[Any]) -> None:
    run_tune(tiny_cfg(), fake_data(), options(mlflow_store, n_trials=1))
    wider = {**TINY_SPACE, "params": {**TINY_SPACE["params"], "filters": {"choices": [4, 8, 16], "per_stage": True}}}
    with pytest.raises(ConfigError, match=r"created with a different search space.*another --study-name"):
        run_tune(
            tiny_cfg(), fake_data(), options(mlflow_store, search_space=write_space(mlflow_store, wider, "w.yaml"))
        )
    with pytest.raises(ConfigError, match=r"different base config \(epochs: 2 -> 3\).*another --study-name"):
        run_tune(tiny_cfg("epochs=3"), fake_data(), options(mlflow_store))
    other = fake_data()
    other.manifest.loc[0, "emotion"] = "sadness"  # one label changed: other data
    other = dataclasses.replace(other, digest=manifest_digest(other.manifest))
    with pytest.raises(ConfigError, match=r"created on other data \(digest .*another --study-name"):
        run_tune(tiny_cfg(), other, options(mlflow_store))
    assert len(fake_train) == 1  # nothing trained into the study
    opts = options(mlflow_store)  # `ckrun run` asks before its baseline and default run
    with pytest.raises(ConfigError, match=r"epochs: 2 -> 3"):
        tune.check_resumable(
            opts, resolve_storage(opts.storage), load_search_space(opts.search_space), tiny_cfg("epochs=3")
        )
    # a comment, the description or the sampler/pruner settings, and execution settings, join it
    steering = {**TINY_SPACE, "description": "reworded", "startup_trials": 3}
    path = write_space(mlflow_store, "# a comment\n" + yaml.safe_dump(steering), "s.yaml")
    again = run_tune(
        tiny_cfg("cache=" + str(mlflow_store / "faces")),
        fake_data(),
        options(mlflow_store, search_space=path, n_trials=1),
    )
    assert again.ran == [1]


def test_retrain_uses_the_best_config_and_epoch_and_a_resume_does_not_redo_it(
    mlflow_store: Path, fake_train: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from ckrun.tune.champion import register_best

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, model_input: list[str]) -> list[str]:
            return model_input

    result = run_tune(tiny_cfg(), fake_data(), options(mlflow_store, n_trials=2))
    best = result.best_trial
    retrains: list[tuple[Any, Any]] = []

    def retrain(cfg: Any, data: Any, *, run_name: str, kind: str, tags: dict, **_: Any) -> Any:
        with tracking.start_run(kind=kind, run_name=run_name, tags=tags) as run:
            mlflow.pyfunc.log_model(name=tracking.MODEL_NAME, python_model=Echo(), pip_requirements=[])
        retrains.append((cfg, data))
        return SimpleNamespace(run_id=run.run_id, metrics={}, model_uri=None)

    monkeypatch.setattr("ckrun.train.train", retrain)
    opts = options(mlflow_store, retrain=True, register=True, register_name="ckplus-test")
    uri, version = register_best(best, result.best_run_id, fake_data(), opts)
    assert uri == "models:/ckplus-test@champion" and version == "1" and len(retrains) == 1
    cfg, data = retrains[0]
    assert cfg.l2 == pytest.approx(best.params["l2"]) and cfg.epochs == 1 and cfg.early_stopping == 0  # best_epoch 1
    assert cfg.selection == "last"  # val is in its training data, so it picks no epoch
    assert (data.manifest["split"] == "train").sum() == 4  # train + val
    # the same best trial again (a resume, --finalize): no second retrain, the alias stays
    assert register_best(best, result.best_run_id, fake_data(), opts) == (uri, "1") and len(retrains) == 1


def test_pareto_study_on_a_journal_file_reports_the_front(mlflow_store: Path, fake_train: list[Any]) -> None:
    opts = options(mlflow_store, objective="pareto", n_trials=6, storage=f"journal://{mlflow_store}/study.log")
    result = run_tune(tiny_cfg(), fake_data(), opts)
    assert (mlflow_store / "study.log").is_file() and result.storage.startswith("journal://")
    assert result.pareto_front and result.best_trial in result.pareto_front
    assert result.best_trial.values == max((t.values for t in result.pareto_front), key=np.mean)
    artifacts = {a.path for a in MlflowClient().list_artifacts(result.parent_run_id, "plots")}
    assert "plots/pareto_front.png" in artifacts and "plots/optimization_history_val_au_f1.png" in artifacts
    assert {a.path for a in MlflowClient().list_artifacts(result.parent_run_id)} >= {"pareto_front.csv"}
    with pytest.raises(ConfigError, match="optimises --objective pareto"):
        run_tune(tiny_cfg(), fake_data(), TuneOptions(**{**opts.__dict__, "objective": "mean"}))


@pytest.mark.filterwarnings("ignore:PedAnovaImportanceEvaluator computes")
def test_pareto_importances_rank_the_params_that_raise_the_f1() -> None:
    """Optuna 5's default evaluator reads a `target` as lower-is-better; ckrun's objectives are maximised."""
    from ckrun.tune.plots import importance_target

    study = optuna.create_study(directions=["maximize", "maximize"], sampler=optuna.samplers.RandomSampler(seed=0))

    def f1(trial: optuna.Trial) -> tuple[float, float]:
        x, y = trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)
        return max(x - 0.8, 0.0) - max(0.2 - y, 0.0), 0.5  # x decides the high F1s, y the low ones

    study.optimize(f1, n_trials=200)
    importances = optuna.importance.get_param_importances(study, target=importance_target(0))
    assert importances["x"] > importances["y"]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_heartbeat_marks_a_crashed_workers_trial_failed_and_retries_it(
    mlflow_store: Path, fake_train: list[Any]
) -> None:
    opts = options(mlflow_store, n_trials=1, heartbeat_interval=1, grace_period=1, max_trials=1)
    storage = tune.open_storage(resolve_storage(opts.storage), heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    crashed = study.ask()  # a worker asked, suggested, started its run ... and died
    crashed.suggest_float("l2", 1e-5, 1e-1, log=True)
    exp = tracking.experiment_id()
    stale_run = MlflowClient().create_run(exp, run_name="trial-0").info.run_id
    crashed.set_user_attr(tune.RUN_ID_ATTR, stale_run)
    storage.record_heartbeat(crashed._trial_id)
    time.sleep(2.5)

    result = run_tune(tiny_cfg(), fake_data(), opts)

    first, retry = study.get_trials()
    assert first.state.name == "FAIL" and retry.state.name == "COMPLETE"
    assert retry.system_attrs["failed_trial"] == 0 and retry.params["l2"] == first.params["l2"]
    assert result.ran == [1] and counted_trials(study.get_trials()) == 1  # the retry used the one slot
    old = tracking.get_run(stale_run)
    assert old.info.status == "KILLED" and "stopped sending heartbeats" in old.data.tags["ckrun.end_reason"]
    assert old.data.tags["ckrun.retried_as"] == "1" and old.data.tags["ckrun.trial_state"] == "FAIL"
    assert tune.RUN_ID_ATTR not in first.user_attrs or retry.user_attrs[tune.RUN_ID_ATTR] != stale_run
    assert tracking.get_run(retry.user_attrs[tune.RUN_ID_ATTR]).data.tags["ckrun.trial_number"] == "1"


def test_worker_stops_after_repeated_failures(mlflow_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(cfg: Any, data: Any, *, run_name: str, kind: str, tags: dict, on_run_start: Any, **_: Any) -> Any:
        with tracking.start_run(kind=kind, run_name=run_name, tags=tags) as run:
            on_run_start(run.run_id)
            raise RuntimeError("out of memory")

    monkeypatch.setattr("ckrun.train.train", broken)
    with pytest.raises(CkrunError, match=r"3 trials in a row failed.*out of memory"):
        run_tune(tiny_cfg(), fake_data(), options(mlflow_store, n_trials=5))
    failed = runs_of("trial")
    assert len(failed) == 3 and set(failed["status"]) == {"FAILED"}
    assert set(failed["tags.ckrun.trial_state"]) == {"FAIL"}
    assert runs_of("study")["status"].tolist() == ["FAILED"]


def test_a_trial_that_trains_but_scores_nan_fails_in_optuna_and_in_mlflow(
    mlflow_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unscored(cfg: Any, data: Any, *, run_name: str, kind: str, tags: dict, on_run_start: Any, **_: Any) -> Any:
        with tracking.start_run(kind=kind, run_name=run_name, tags=tags) as run:
            on_run_start(run.run_id)
        return SimpleNamespace(run_id=run.run_id, metrics={"val_emotion_f1": 0.5, "objective": float("nan")})

    monkeypatch.setattr("ckrun.train.train", unscored)
    run_tune(tiny_cfg(), fake_data(), options(mlflow_store, n_trials=1))
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{mlflow_store}/optuna.db")
    (trial,) = study.get_trials()
    assert trial.state.name == "FAIL" and "scored no objective" in trial.user_attrs[tune.ERROR_ATTR]
    run = tracking.get_run(trial.user_attrs[tune.RUN_ID_ATTR])
    assert run.info.status == "FAILED" and "scored no objective" in run.data.tags["ckrun.error"]
    assert run.data.tags["ckrun.trial_state"] == "FAIL"


# --------------------------------------------------------------------------------------
# The real thing: Keras pruning, a failing trial, registration, predict with the champion


@pytest.mark.slow
def test_real_study_prunes_fails_registers_and_predicts(
    mlflow_store: Path, tiny_ckplus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ckrun.train
    import ckrun.tune.study

    class PruneTrialOne(optuna.pruners.BasePruner):
        def prune(self, study: Any, trial: Any) -> bool:
            return trial.number == 1

    real_fit = ckrun.train.fit_model
    fits: list[int] = []

    def fit_then_break(*args: Any, **kwargs: Any) -> Any:
        fits.append(1)
        if len(fits) == 3:
            raise RuntimeError("simulated crash in trial 2")
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(ckrun.tune.study, "make_pruner", lambda *a, **k: PruneTrialOne())
    monkeypatch.setattr(ckrun.train, "fit_model", fit_then_break)
    opts = options(mlflow_store, register=True, register_name="ckplus-test", max_trials=3)
    result = run_tune(tiny_cfg(), tiny_ckplus, opts)

    study = optuna.load_study(study_name="s", storage=opts.storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED", "FAIL"]
    runs = {t.number: tracking.get_run(t.user_attrs[tune.RUN_ID_ATTR]) for t in study.trials}
    assert [runs[n].info.status for n in range(3)] == ["FINISHED", "KILLED", "FAILED"]
    assert [runs[n].data.tags["ckrun.trial_state"] for n in range(3)] == ["COMPLETE", "PRUNED", "FAIL"]
    # same params as `ckrun train`; the pruned run keeps its curve up to the pruned epoch
    assert {"l2", "filters", "epochs", "data_digest", "image_size"} <= set(runs[0].data.params)
    assert [s for s, _ in tracking.metric_history(runs[1].info.run_id, "val_loss")] == [1]
    assert "test_emotion_f1" in runs[0].data.metrics and "test_emotion_f1" not in runs[1].data.metrics
    assert "simulated crash" in runs[2].data.tags["ckrun.error"]
    assert "simulated crash" in study.trials[2].user_attrs[tune.ERROR_ATTR]

    assert result.model_uri == "models:/ckplus-test@champion" and result.best_run_id == runs[0].info.run_id
    assert tracking.alias_run_id("ckplus-test") == runs[0].info.run_id
    parent = tracking.get_run(result.parent_run_id)
    assert "champion_test_emotion_f1" in parent.data.metrics and "best_test_emotion_f1" in parent.data.metrics
    assert len(runs_of("evaluate")) == 1
    image = next((tiny_ckplus / "cohn-kanade-images").rglob("*.png"))
    table = tracking.load_predictor(result.model_uri).predict_paths([image])
    assert table.loc[0, "emotion"] in ("negative", "positive", "surprise")

    # --finalize on the finished study: nothing retrained or re-registered, a finalize run logged
    final = run_tune(tiny_cfg(), tiny_ckplus, TuneOptions(**{**opts.__dict__, "finalize_only": True}))
    assert final.model_version == result.model_version and final.ran == []
    assert tracking.get_run(final.parent_run_id).data.tags["mlflow.runName"] == "s-finalize"


def test_the_default_space_is_centred_on_the_default_recipe() -> None:
    """The space `ckrun tune` and `ckrun run` use contains the default config itself, so a study searches around it."""
    import inspect

    from ckrun.cli.study_commands import tune_cmd
    from ckrun.main_job import run_main
    from ckrun.tune import TuneOptions

    cpu = load_search_space("cpu")
    cli_default = {p.name: p.default for p in tune_cmd.params}["search_space"]
    job_default = inspect.signature(run_main).parameters["search_space"].default
    assert cli_default == TuneOptions().search_space == job_default == "cpu"
    base = load_config(None, [])
    ss.check_space(cpu, base)
    wanted = {
        "epochs",
        "learning_rate",
        "l2",
        "label_smoothing",
        "mixup",
        "weight_averaging",
        "au_loss",
        "pooling",
    }
    assert wanted <= set(cpu.params)
    # The default fine-tunes the pretrained network: keys that only shape the ResNet would change nothing.
    assert base.backbone == "fer_xception" and not {"stem_filters", "filters", "drop_path"} & set(cpu.params)
    for name, spec in cpu.params.items():
        value = getattr(base, name)
        if isinstance(spec, ss.CategoricalParam):
            assert value in spec.choices, (name, value, spec.choices)
        else:
            assert spec.low < value < spec.high, (name, value, spec.low, spec.high)  # inside, not at an edge
    assert cpu.startup_trials >= 2 and 1 <= cpu.warmup_epochs < cpu.params["epochs"].low
