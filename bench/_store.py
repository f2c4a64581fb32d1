"""Shared by the benchmarks that log: a throw-away MLflow store, so no bench touches ./mlflow.db."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def throwaway_store(prefix: str, reuse: str | None = None) -> Path:
    """A temp folder (or `reuse`, kept) made the working directory, with MLflow's sqlite store in it."""
    store = Path(reuse).resolve() if reuse else Path(tempfile.mkdtemp(prefix=prefix))
    store.mkdir(parents=True, exist_ok=True)
    os.chdir(store)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}/mlflow.db"
    return store
