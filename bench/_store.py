"""Shared by the benchmarks that log: a throw-away MLflow store, so no bench touches ./mlflow.db."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def throwaway_store(prefix: str) -> Path:
    """A temp folder made the working directory, with MLflow's sqlite store (and mlartifacts/) in it."""
    store = Path(tempfile.mkdtemp(prefix=prefix))
    os.chdir(store)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}/mlflow.db"
    return store
