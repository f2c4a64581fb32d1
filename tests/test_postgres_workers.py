"""Two `ckrun tune` workers on one study in a real PostgreSQL server (tests/postgres_server.py).

Checked: the --max-trials cap holds exactly across concurrent workers, no trial runs twice,
every trial has exactly one child run (linked both ways), and the storage password appears
in no MLflow param, tag, artifact or stored byte, nor in the workers' output. The storage
URL is plain ``postgresql://``, as the README writes it, with the `postgres` extra's driver.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psycopg
import pytest
from mlflow.tracking import MlflowClient
from postgres_server import PASSWORD, PostgresServer

from ckrun import tracking
from ckrun.tune import ERROR_ATTR, RUN_ID_ATTR, SKIPPED_ATTR, counted_trials

DATABASE = "optuna"
N_TRIALS, MAX_TRIALS = 2, 3  # two workers could run 4: the cap must stop them at 3

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def postgres_url(postgres: PostgresServer) -> str:
    return postgres.create_database(DATABASE)


def test_password_role_is_enforced(postgres: PostgresServer, postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql://")  # no +driver: SQLAlchemy picks psycopg 3
    with pytest.raises(psycopg.OperationalError, match="password"):
        postgres.connect(DATABASE, password="wrong")


def test_two_workers_share_one_study(postgres_url: str, mlflow_store: Path, tiny_ckplus: Path) -> None:
    space = mlflow_store / "space.yaml"
    space.write_text("params:\n  l2: {low: 1.0e-5, high: 1.0e-1, log: true}\n  dropout: {low: 0.0, high: 0.5}\n")
    # Create the MLflow store up front: two fresh processes would race on its schema migration.
    tracking.experiment_id("workers")
    common = [
        "--data", str(tiny_ckplus), "--search-space", str(space), "--study-name", "shared",
        "--n-trials", str(N_TRIALS), "--max-trials", str(MAX_TRIALS), "--experiment", "workers",
        "--no-register", "--pruner", "none",
        "--set", "preset=tiny", "--set", "image_size=32", "--set", "epochs=1", "--set", "log_model=false",
        "--set", "explain_images_per_class=0",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID"}
    # one worker gets the URL on the command line, the other through $CKRUN_STORAGE
    argv = [sys.executable, "-m", "ckrun.cli", "tune", *common]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
    workers = [
        subprocess.Popen([*argv, "--storage", postgres_url], env=env, **pipes),
        subprocess.Popen(argv, env={**env, "CKRUN_STORAGE": postgres_url}, **pipes),
    ]
    start = time.perf_counter()
    outputs = [w.communicate(timeout=900)[0].decode() for w in workers]
    for w, out in zip(workers, outputs, strict=True):
        assert w.returncode == 0, out[-4000:]
    elapsed = time.perf_counter() - start

    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.get_trials()
    ran = [t for t in trials if not t.user_attrs.get(SKIPPED_ATTR)]
    skipped = [t for t in trials if t.user_attrs.get(SKIPPED_ATTR)]
    # the documented guarantee: exactly min(cap, workers x n_trials) counted trials, all trained;
    # each worker asks at most --n-trials times, so the asks beyond the cap, each a skipped (never
    # trained) trial of a worker that lost the race, number at most 2 x 2 - 3 = 1
    assert counted_trials(trials) == MAX_TRIALS and len(ran) == MAX_TRIALS, [t.state for t in trials]
    states = [(t.number, t.state.name, t.user_attrs.get(ERROR_ATTR)) for t in trials]
    assert all(t.state.name == "COMPLETE" for t in ran), (states, [o[-2000:] for o in outputs])
    assert len(skipped) <= 2 * N_TRIALS - MAX_TRIALS == 1 and len(trials) == len(ran) + len(skipped), states
    assert all(t.state.name == "FAIL" and RUN_ID_ATTR not in t.user_attrs for t in skipped)
    # no trial twice: distinct numbers, distinct runs, distinct suggestions
    assert len({t.number for t in ran}) == len({t.user_attrs[RUN_ID_ATTR] for t in ran}) == MAX_TRIALS
    assert len({t.params["l2"] for t in ran}) == MAX_TRIALS

    runs = tracking.search_runs("workers")
    trial_runs = runs[runs["tags.ckrun.kind"] == "trial"]
    parents = runs[runs["tags.ckrun.kind"] == "study"]
    assert len(parents) == 2 and set(parents["tags.ckrun.storage_kind"]) == {"postgresql"}
    assert sorted(trial_runs["tags.ckrun.trial_number"].astype(int)) == sorted(t.number for t in ran)
    assert set(trial_runs["run_id"]) == {t.user_attrs[RUN_ID_ATTR] for t in ran}
    assert set(trial_runs["tags.mlflow.parentRunId"]) <= set(parents["run_id"])
    assert set(trial_runs["tags.ckrun.trial_state"]) == {"COMPLETE"}
    assert all("***" in label for label in parents["tags.ckrun.storage"])
    assert sum(out.count("COMPLETE") for out in outputs) >= MAX_TRIALS

    _assert_password_nowhere(mlflow_store, runs, outputs)
    print(f"two workers, {MAX_TRIALS} trials: {elapsed:.0f}s")


def _assert_password_nowhere(store: Path, runs, outputs: list[str]) -> None:
    client = MlflowClient()
    for run_id in runs["run_id"]:
        run = client.get_run(run_id)
        for key, value in {**run.data.params, **run.data.tags}.items():
            assert PASSWORD not in key and PASSWORD not in value, f"{run_id}: {key}"
    files = [store / "mlflow.db", *(p for p in (store / "mlartifacts").rglob("*") if p.is_file())]
    assert len(files) > 10
    for path in files:
        assert PASSWORD.encode() not in path.read_bytes(), path
    for out in outputs:
        assert PASSWORD not in out
