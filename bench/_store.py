"""Shared by the benchmarks that log: a throw-away MLflow store, so no bench touches ./mlflow.db."""

from __future__ import annotations

import os
import tempfile
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
