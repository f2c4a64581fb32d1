"""The tracking store: where MLflow writes, whether it answers, and which experiment a run joins.

Every other module of the package calls `configure()` first, so ``$MLFLOW_TRACKING_URI`` (or
the local ``sqlite:///mlflow.db`` default) is honoured no matter which entry point runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import mlflow
from mlflow.tracking import MlflowClient

from ckrun.errors import CkrunError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "ckrun"


def configure() -> str:
    """Point MLflow at ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db`` and quiet its bars."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    mlflow.set_tracking_uri(uri)
    return uri


def redact_uri(uri: str) -> str:
    """A URI with any password replaced, safe to print, tag or log."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable uri>"
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def check_store() -> None:
    """Fail early, before training, when the tracking store cannot be reached."""
    uri = configure()
    try:
        MlflowClient().search_experiments(max_results=1)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CkrunError(f"MLflow tracking store {redact_uri(uri)} is not reachable: {first}") from None


def local_artifact_root(uri: str) -> str | None:
    """Where a local sqlite store keeps artifacts (``mlartifacts/`` beside the db), else None.

    New experiments of a local store put their artifacts there, and `ckrun ui` hands the same
    folder to ``mlflow server --artifacts-destination`` (MLflow's server uses it too), so the
    UI serves what training wrote.
    """
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri.removeprefix("sqlite:///"))
    return (db.resolve().parent / "mlartifacts").as_uri()


def experiment_id(name: str | None = None) -> str:
    """The experiment to log into: `name`, else ``$MLFLOW_EXPERIMENT_ID`` (mlflow run), else 'ckrun'."""
    uri = configure()
    if name is None and os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    name = name or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise CkrunError(f"experiment {name!r} is deleted; restore it in the MLflow UI or pick another name")
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=local_artifact_root(uri))
    except mlflow.exceptions.MlflowException:  # created by a concurrent worker meanwhile
        created = client.get_experiment_by_name(name)
        if created is None:
            raise
        return created.experiment_id


@contextlib.contextmanager
def quiet_loggers(loggers: Sequence[str]) -> Iterator[None]:
    """MLflow's own loggers at ERROR for a block: logging and registering models is chatty."""
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
