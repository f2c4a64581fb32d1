"""The tracking store: where MLflow writes, whether it answers, and which experiment a run joins.

Every other module of the package calls `configure()` first, so ``$MLFLOW_TRACKING_URI`` (or
the local ``sqlite:///mlflow.db`` default) is honoured no matter which entry point runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import mlflow
from mlflow.entities import Experiment
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


def check_store(experiment: str | None = None, *, writes: bool = True, source: str = "$MLFLOW_TRACKING_URI") -> None:
    """Fail early, before any data is read or any run exists, when the store cannot take a run.

    The database must answer, and where the store is local, the database file and the
    experiment's artifact folder must be writable: a run that trains for an hour and then
    cannot save its model (``mlartifacts`` a file, a read-only folder) loses the hour.
    Commands that only read (`report`, `compare`, `ui`) pass ``writes=False``: an unusable
    ``$MLFLOW_TRACKING_URI`` is then named as such, not taken for a missing run or a bug;
    `source` is where the user gave the URI.
    """
    uri = configure()
    try:
        client = MlflowClient()  # an unsupported scheme or a file that is no database fails here already
        client.search_experiments(max_results=1)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = first.split(" See https://", 1)[0]  # MLflow's unsupported-scheme message ends in a docs link
        if uri.startswith("postgresql") and "No module named" in first:
            first += " (install the PostgreSQL driver: pip install 'ckrun[postgres]')"
        raise CkrunError(f"MLflow tracking store {redact_uri(uri)} ({source}) is not reachable: {first}") from None
    if not writes:
        return
    db = sqlite_path(uri)
    if db is not None and db.exists() and not os.access(db, os.W_OK):
        raise CkrunError(f"cannot write to the MLflow store {redact_uri(uri)}: the database file is read-only")
    if os.environ.get("MLFLOW_RUN_ID"):  # `mlflow run` sets it; the run ckrun then joins must exist
        _named_by_env(client.get_run, "MLFLOW_RUN_ID", "run", uri)
    folder = local_path(_artifact_location(client, uri, experiment))
    if folder is not None:
        _check_writable_folder(folder, uri)


def _named_by_env(get: Callable[[str], Any], variable: str, what: str, uri: str) -> Any:
    """The experiment or run an environment variable names; one line naming the variable when there is none."""
    value = os.environ[variable]
    try:
        return get(value)
    except mlflow.exceptions.MlflowException:
        raise CkrunError(f"${variable}={value}: no MLflow {what} with that id in {redact_uri(uri)}") from None


def _artifact_location(client: MlflowClient, uri: str, experiment: str | None) -> str | None:
    """Where the runs of `experiment` will write artifacts (None when the server decides)."""
    found: Experiment | None
    try:
        if experiment is None and os.environ.get("MLFLOW_EXPERIMENT_ID"):
            found = _named_by_env(client.get_experiment, "MLFLOW_EXPERIMENT_ID", "experiment", uri)
        else:
            name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
            found = client.get_experiment_by_name(name)
    except mlflow.exceptions.MlflowException:
        found = None
    if found is not None:
        refuse_deleted(found)  # said now, not after the data is read
        return str(found.artifact_location)
    return local_artifact_root(uri)


def _check_writable_folder(folder: Path, uri: str) -> None:
    if folder.exists() and not folder.is_dir():
        raise CkrunError(
            f"MLflow artifact location {folder} is a file, not a folder: move the file away, or point "
            "MLFLOW_TRACKING_URI at another store"
        )
    probe = folder / f".ckrun-write-check-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ckrun")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileExistsError | NotADirectoryError):
            reason = "a file is in the way of the folder"
        raise CkrunError(
            f"cannot write to the MLflow store {redact_uri(uri)} (artifacts in {folder}): {reason}"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def local_path(uri: str | None) -> Path | None:
    """The folder behind a ``file:`` URI or a plain path; None for a server or bucket."""
    if not uri:
        return None
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        return Path(unquote(parts.path) if parts.scheme else uri).resolve()
    return None


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a local ``sqlite:///`` store, else None."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri.removeprefix("sqlite:///")).resolve()


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


def refuse_deleted(experiment: Experiment) -> None:
    """A deleted experiment hides its runs: logging into it, or reporting on it, would show nothing."""
    if experiment.lifecycle_stage == "deleted":
        raise CkrunError(f"experiment {experiment.name!r} is deleted; restore it in the MLflow UI or pick another name")


def experiment_id(name: str | None = None) -> str:
    """The experiment to log into: `name`, else ``$MLFLOW_EXPERIMENT_ID`` (mlflow run), else 'ckrun'."""
    uri = configure()
    if name is None and os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    name = name or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        refuse_deleted(found)
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
