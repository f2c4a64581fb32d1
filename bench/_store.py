"""Shared by the benchmarks that log: a throw-away MLflow store, so no bench touches ./mlflow.db."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def throwaway_store(prefix: str, reuse: str | None = None) -> Path:
    """A temp folder (or `reuse`, kept) made the working directory, with MLflow's sqlite store in it."""
    store = Path(reuse).resolve() if reuse else Path(tempfile.mkdtemp(prefix=prefix))
    store.mkdir(parents=True, exist_ok=True)
    os.chdir(store)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}/mlflow.db"
    return store


def logged_runs(store: str, filter_string: str = "") -> list[Any]:
    """Every run of every experiment in the MLflow store at URI `store` that matches `filter_string`.

    Points ckrun's tracking readers (`ckrun.tracking`, `ckrun.report.collect`) at that store
    too, so a bench that replays logged runs reads them the way the report does.
    """
    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_TRACKING_URI"] = store
    client = MlflowClient(tracking_uri=store)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(experiments, filter_string, max_results=5000)) if experiments else []


def add_replay_arguments(parser: Any) -> None:
    """The arguments every replay bench takes: stores, a run-name filter and the runs' threshold rule."""
    parser.add_argument("stores", nargs="+", help="MLflow tracking URIs of bench_recipe.py or ckrun stores")
    parser.add_argument("--name-like", default="%", help="SQL LIKE pattern on run names (default: every run)")
    parser.add_argument("--min-positives", type=int, default=10, help="threshold_min_positives of the runs")
    parser.add_argument("--shrinkage", type=float, default=0.5, help="threshold_shrinkage of the runs")


def replayed_rows(
    stores: list[str], name_like: str, replay: Callable[[str], dict[str, float] | None]
) -> list[dict[str, Any]]:
    """`replay(run id)` for every run with a logged test AU F1, as rows of run name, that F1 and the result.

    Runs `replay` cannot use (it returns None: no logged predictions, e.g. a baseline) are left out;
    no row at all is an error, since a replay of nothing would print an empty table.
    """
    rows = []
    for store in stores:
        for run in logged_runs(store, f"attributes.run_name LIKE '{name_like}'"):
            if "test_au_f1" not in run.data.metrics:
                continue
            result = replay(run.info.run_id)
            if result is not None:
                rows.append({"run": run.info.run_name, "logged": run.data.metrics["test_au_f1"], **result})
    if not rows:
        raise SystemExit("no run with logged val/test predictions and a test AU F1 in the given stores")
    return rows
