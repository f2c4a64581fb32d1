"""MLproject and conda.yaml: entry points that parse, dependencies in step with pyproject.toml,
and `mlflow run -e train / -e tune` logging into the run that `mlflow run` created.

The slow tests run `mlflow run` on a copy of the project (no git, nothing written into the
checkout) with a sqlite store in tmp_path and the local environment (no network).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import optuna
import pytest
import tomllib
import yaml
from mlflow.projects._project_spec import load_project
from mlflow.tracking import MlflowClient

from ckrun import tracking
from ckrun.cli import cli
from ckrun.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {"main", "synth", "train", "baseline", "tune", "evaluate", "report"}
MLFLOW_TYPES = {"string", "float", "path", "uri"}


def command_args(entry: str, params: dict[str, str] | None = None) -> list[str]:
    """The argv the entry point hands to `python -m ckrun.cli`, expanded by bash as `mlflow run` does."""
    command = load_project(str(REPO)).get_entry_point(entry).compute_command(params or {}, None)
    assert "python -m ckrun.cli " in command
    printed = subprocess.run(
        ["bash", "-c", command.replace("python -m ckrun.cli", "printf '%s\\0'")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return printed.split("\0")[:-1]


def parse(args: list[str]) -> click.Context:
    """Resolve the subcommand and let click parse (and type-check) its options, without running it."""
    command: click.Command = cli
    while isinstance(command, click.Group):
        name, args = args[0], args[1:]
        assert name in command.commands, f"no command {name!r}"
        command = command.commands[name]
    return command.make_context(command.name, list(args))


def test_entry_points_are_typed_with_defaults() -> None:
    spec = yaml.safe_load((REPO / "MLproject").read_text())
    assert set(spec["entry_points"]) == ENTRY_POINTS and spec["conda_env"] == "conda.yaml"
    for name, entry in spec["entry_points"].items():
        for param, decl in (entry.get("parameters") or {}).items():
            assert decl["type"] in MLFLOW_TYPES and "default" in decl, f"{name}.{param}"


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_entry_point_parses_with_its_defaults(entry: str) -> None:
    args = command_args(entry)
    assert "--data" not in args  # empty data = the embedded default, not the current folder
    parse(args)


def test_values_reach_the_cli_quoted_and_typed() -> None:
    args = command_args("tune", {"data": "/tmp/a b", "n_trials": "3", "storage": "journal:///tmp/x.log"})
    ctx = parse(args)
    assert ctx.params["data"] == Path("/tmp/a b") and ctx.params["n_trials"] == 3
    assert ctx.params["storage"] == "journal:///tmp/x.log" and ctx.params["max_trials"] == 0
    assert ctx.params["overrides"] == ()  # preset and image size: the config's defaults decide
    train = parse(command_args("train", {"preset": "tiny", "epochs": "2"}))
    assert train.params["overrides"] == ("preset=tiny", "epochs=2")
    sized = parse(command_args("tune", {"image_size": "48"}))
    assert sized.params["overrides"] == ("image_size=48",)
    assert parse(command_args("train")).params["cv"] == 0
    assert parse(command_args("train", {"cv": "5"})).params["cv"] == 5
    floor = parse(command_args("baseline", {"cv": "5", "model": "hog-svm"}))
    assert (floor.params["cv"], floor.params["model"]) == (5, "hog-svm")
    assert parse(command_args("baseline")).params["model"] == "best"


@pytest.mark.parametrize("entry", ["train", "tune"])
def test_config_keys_default_to_the_config(entry: str) -> None:
    """One source of truth: `mlflow run -e train` trains what `ckrun train` trains (no second default)."""
    spec = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"][entry]["parameters"]
    keys = set(spec) & set(TrainConfig.model_fields) - {"objective"}  # tune's --objective is a study option
    assert keys >= {"preset", "image_size"}
    assert {k: spec[k]["default"] for k in keys} == dict.fromkeys(keys, "")
    assert parse(command_args(entry)).params["overrides"] == ()


def test_conda_env_lists_the_pyproject_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "conda.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(pip) == sorted(project["dependencies"] + project["optional-dependencies"]["postgres"])
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    minimum = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.removeprefix("python=").split("."))) >= tuple(map(int, minimum.split(".")))


# --------------------------------------------------------------------------------------
# mlflow run, for real


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "project"
    dst.mkdir()
    for name in ("MLproject", "conda.yaml", "pyproject.toml"):
        shutil.copy(REPO / name, dst / name)
    shutil.copytree(REPO / "ckrun", dst / "ckrun", ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def mlflow_run(project: Path, entry: str, experiment: str, *params: str) -> subprocess.CompletedProcess[str]:
    """`mlflow run` with the local environment; `python` on PATH is this interpreter."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    argv = [sys.executable, "-m", "mlflow", "run", str(project), "-e", entry, "--env-manager", "local"]
    argv += ["--experiment-name", experiment]
    for p in params:
        argv += ["-P", p]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


def experiment_runs(name: str) -> list:
    client = MlflowClient()
    return client.search_runs([client.get_experiment_by_name(name).experiment_id])


@pytest.mark.slow
def test_mlflow_run_train_logs_into_the_created_run(mlflow_store: Path, tiny_ckplus: Path, project_copy: Path) -> None:
    tracking.experiment_id("mlproject")  # store and experiment exist before mlflow run (artifacts in tmp_path)
    params = (f"data={tiny_ckplus}", "preset=tiny", "image_size=32", "epochs=1", "set=log_model=false")
    mlflow_run(project_copy, "train", "mlproject", *params)
    (run,) = experiment_runs("mlproject")  # one run: the one mlflow run created, adopted by ckrun
    tags = run.data.tags
    assert tags["mlflow.project.entryPoint"] == "train" and tags["ckrun.kind"] == "train"
    assert run.info.status == "FINISHED" and run.data.params["epochs"] == "1" and run.data.params["preset"] == "tiny"
    assert "test_emotion_f1" in run.data.metrics and run.data.params["set"] == "log_model=false"


@pytest.mark.slow
def test_mlflow_run_baseline_cv_makes_the_created_run_the_cv_parent(
    mlflow_store: Path, tiny_ckplus: Path, project_copy: Path
) -> None:
    tracking.experiment_id("mlproject")
    params = (f"data={tiny_ckplus}", "cv=3", "model=logreg", "set=min_au_count=3")
    mlflow_run(project_copy, "baseline", "mlproject", *params)
    runs = experiment_runs("mlproject")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.tags["mlflow.project.entryPoint"] == "baseline" and parent.data.tags["ckrun.kind"] == "baseline"
    assert parent.info.status == "FINISHED" and parent.data.params["cv_folds"] == "3"
    folds = [r for r in runs if r is not parent]
    assert sorted(r.data.tags["ckrun.fold"] for r in folds) == ["1", "2", "3"]
    assert {r.data.tags["mlflow.parentRunId"] for r in folds} == {parent.info.run_id}
    assert {r.info.status for r in folds} == {"FINISHED"}


@pytest.mark.slow
def test_mlflow_run_tune_makes_the_created_run_the_study_parent(
    mlflow_store: Path, tiny_ckplus: Path, project_copy: Path
) -> None:
    space = mlflow_store / "space.yaml"
    space.write_text("params:\n  l2: {low: 1.0e-5, high: 1.0e-1, log: true}\n")
    tracking.experiment_id("mlproject")
    mlflow_run(
        project_copy,
        "tune",
        "mlproject",
        f"data={tiny_ckplus}",
        f"search_space={space}",
        "n_trials=1",
        "preset=tiny",
        "image_size=32",
        "pruner=none",
        "study_name=mlp",
        "register_name=mlp-model",
        "set=epochs=1",  # undeclared: passed on as --set epochs=1
    )
    runs = experiment_runs("mlproject")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.tags["mlflow.project.entryPoint"] == "tune" and parent.data.tags["ckrun.kind"] == "study"
    assert parent.info.status == "FINISHED" and parent.data.tags["ckrun.study_name"] == "mlp"
    children = {r.data.tags["ckrun.kind"]: r for r in runs if r is not parent}
    assert set(children) == {"trial", "evaluate"}
    assert {r.data.tags["mlflow.parentRunId"] for r in children.values()} == {parent.info.run_id}
    trial = children["trial"]
    assert trial.data.tags["mlflow.runName"] == "trial-0" and trial.data.params["epochs"] == "1"
    assert tracking.alias_run_id("mlp-model") == trial.info.run_id
    assert "champion_test_emotion_f1" in parent.data.metrics
    study = optuna.load_study(study_name="mlp", storage=f"sqlite:///{mlflow_store}/optuna.db")
    assert [t.user_attrs["mlflow_run_id"] for t in study.trials] == [trial.info.run_id]
