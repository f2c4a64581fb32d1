"""The active run: how it starts and ends, and everything logged into it.

Runs nest (trials under their study, the stages of `ckrun run` under an `mlflow run` parent)
and always end with an honest status. What is logged here carries the names of the MLflow
naming contract in docs/architecture.md; callers hand plain values (dicts, DataFrames, paths).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from ckrun.console import warn
from ckrun.errors import (
    StoreWriteError,
    as_interruption,
    deferred_signals,
    raise_if_interrupted,
    signals_received,
)
from ckrun.tracking import faults
from ckrun.tracking.store import configure, experiment_id
from ckrun.tracking.store import local_path as store_local_path

KIND_TAG = "ckrun.kind"
KINDS = ("train", "trial", "study", "baseline", "evaluate", "cv", "pipeline")
MAX_PARAM_LENGTH = 6000


@dataclass
class RunHandle:
    run_id: str
    experiment_id: str
    name: str


def _env_run_id() -> str | None:
    return os.environ.get("MLFLOW_RUN_ID") or None


@contextlib.contextmanager
def start_run(
    *,
    kind: str,
    run_name: str,
    experiment: str | None = None,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
    system_metrics: bool = False,
    killed_on: tuple[type[BaseException], ...] = (),
) -> Iterator[RunHandle]:
    """A run that ends FINISHED, FAILED (exception, logged as `ckrun.error`) or KILLED.

    A run started while another is active becomes its child, so trials nest under their
    study and the stages of `ckrun run` under an `mlflow run` parent. At top level, a run id
    exported by `mlflow run` is adopted instead of creating a duplicate. KeyboardInterrupt
    (Ctrl-C, and SIGTERM/SIGHUP through `ckrun.errors.Interrupted`) and the `killed_on`
    exceptions (e.g. a pruned trial) end the run KILLED with everything already logged kept.
    When the store itself refuses a write (full disk, read-only database), the run is still
    ended FAILED if at all possible and the error becomes a `StoreWriteError` naming the store.
    """
    uri = configure()
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r}")
    parent = mlflow.active_run()
    nested = parent is not None
    all_tags = {KIND_TAG: kind, **(tags or {})}
    if description:
        all_tags["mlflow.note.content"] = description
    if not nested:
        faults.reserve.hold(uri)
    try:
        # A signal while the run is being created would leave it RUNNING (or FINISHED, by
        # MLflow's exit hook): held until the run exists, then raised inside it, so it ends KILLED.
        signals = signals_received()
        with deferred_signals(raise_after=False):
            run = _create_run(parent, experiment, run_name, all_tags, system_metrics)
    except Exception as exc:
        if not nested:
            faults.reserve.release()
        _raise_store_problem(exc, uri, None)
        raise
    handle = RunHandle(run.info.run_id, run.info.experiment_id, run_name)
    killed: tuple[type[BaseException], ...] = (*killed_on, KeyboardInterrupt)
    try:
        try:
            raise_if_interrupted(since=signals)
            yield handle
        except BaseException as exc:
            interruption = as_interruption(exc)
            if interruption is exc:
                raise
            raise interruption from exc  # a signal's exception garbled in C code: still an interruption
    except killed as exc:
        with deferred_signals(raise_after=False):  # a signal must not cut the ending short either
            _end_run(handle, "KILLED", {"ckrun.end_reason": _reason(exc)})
            if not nested:
                faults.reserve.release()
        raise
    except BaseException as exc:
        with deferred_signals(raise_after=False):
            problem = faults.store_write_problem(exc, uri, _artifact_root(handle, run.info.artifact_uri))
            if problem:
                faults.reserve.release()  # room for the writes that end the run
            left = _end_run(handle, "FAILED", {"ckrun.error": f"{type(exc).__name__}: {exc}"[:5000]})
            if not nested:
                faults.reserve.release()
        if problem:
            raise StoreWriteError(
                problem + (f"; run {handle.run_id} is still RUNNING ({left})" if left else "")
            ) from exc
        raise
    else:
        with deferred_signals():  # the work is done: the run ends FINISHED, then a signal is raised
            left = _end_run(handle, "FINISHED", {})
            if left and faults.reserve.release():
                left = _end_run(handle, "FINISHED", {})
            if not nested:
                faults.reserve.release()
        if left:
            raise StoreWriteError(f"run {handle.run_id} finished, but the store did not record it: {left}")


def _create_run(
    parent: Any, experiment: str | None, run_name: str, tags: dict[str, str], system_metrics: bool
) -> mlflow.ActiveRun:
    if parent is not None or not _env_run_id():
        exp_id = parent.info.experiment_id if parent is not None else experiment_id(experiment)
        return mlflow.start_run(
            experiment_id=exp_id,
            run_name=run_name,
            nested=parent is not None,
            tags=tags,
            log_system_metrics=system_metrics or None,
        )
    run = mlflow.start_run(log_system_metrics=system_metrics or None)  # adopts MLFLOW_RUN_ID
    mlflow.set_tags(tags)
    MlflowClient().set_tag(run.info.run_id, "mlflow.runName", run_name)
    return run


def _artifact_root(handle: RunHandle, fallback: str) -> str:
    """The experiment's artifact location: runs and logged models both write below it."""
    try:
        return str(MlflowClient().get_experiment(handle.experiment_id).artifact_location)
    except Exception:
        return fallback


def _reason(exc: BaseException) -> str:
    """``Interrupted: SIGTERM``, ``KeyboardInterrupt``, ``TrialPruned: ...`` for ckrun.end_reason."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:5000] if text else type(exc).__name__


def _end_run(handle: RunHandle, status: str, tags: Mapping[str, str]) -> str | None:
    """Tag and end the active run `handle`; never raises, returns what went wrong (or None).

    Ending must not hide the exception that ended the run, and a failed tag must not keep
    the status from being written.
    """
    problem = None
    client = MlflowClient()
    for key, value in tags.items():
        try:
            client.set_tag(handle.run_id, key, value)
        except Exception as exc:
            problem = _first_line(exc)
    active = mlflow.active_run()
    try:
        if active is not None and active.info.run_id == handle.run_id:
            mlflow.end_run(status)
        else:  # an inner run's failed ending left the stack elsewhere: end ours by id
            client.set_terminated(handle.run_id, status)
    except Exception as exc:
        return _first_line(exc)
    if problem is not None:
        warn(f"run {handle.run_id} ended {status} without its tags: {problem}")
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _raise_store_problem(exc: BaseException, uri: str, artifact_uri: str | None) -> None:
    problem = faults.store_write_problem(exc, uri, artifact_uri)
    if problem:
        raise StoreWriteError(problem) from exc


@contextlib.contextmanager
def parent_for_mlflow_run(run_name: str) -> Iterator[RunHandle | None]:
    """Under `mlflow run`, adopt its run as the `pipeline` parent of every stage; else nothing.

    Without this, the first stage would adopt MLFLOW_RUN_ID and the later ones would land
    as unrelated top-level runs.
    """
    if _env_run_id() and mlflow.active_run() is None:
        with start_run(kind="pipeline", run_name=run_name) as handle:
            yield handle
    else:
        yield None


def active_run_id() -> str | None:
    run = mlflow.active_run()
    return run.info.run_id if run else None


def set_tags(tags: Mapping[str, Any], run_id: str | None = None) -> None:
    clean = {k: str(v) for k, v in tags.items()}
    if run_id:
        for k, v in clean.items():
            MlflowClient().set_tag(run_id, k, v)
    else:
        mlflow.set_tags(clean)


def log_params(params: Mapping[str, Any]) -> None:
    """Flat params; long values truncated to MLflow's limit, never secrets (callers' duty)."""
    mlflow.log_params({k: str(v)[:MAX_PARAM_LENGTH] for k, v in params.items()})


def log_metrics(metrics: Mapping[str, float], step: int | None = None, run_id: str | None = None) -> None:
    clean = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
    if not clean:
        return
    if run_id:
        client = MlflowClient()
        for k, v in clean.items():
            client.log_metric(run_id, k, v, step=step or 0)
    else:
        mlflow.log_metrics(clean, step=step)


def final_metric_step(epochs_run: int) -> int:
    """Step of the final (restored-model) metrics: one past the last epoch.

    Per-epoch curves and final scores share names (docs/architecture.md), so the final value
    sits at its own step and is the one MLflow shows as latest in tables and compare views.
    """
    return int(epochs_run) + 1


@contextlib.contextmanager
def _artifact_write() -> Iterator[None]:
    """Name the run's artifact folder in a write error that names no file.

    A copy into a full disk fails in the middle of writing, and Python's error then carries no
    file name; without one, `faults.store_write_problem` could not tell the store from any
    other file, and the user would read a bare "No space left on device".
    """
    try:
        yield
    except OSError as exc:
        folder = store_local_path(mlflow.get_artifact_uri()) if mlflow.active_run() else None
        if exc.filename is None and exc.errno is not None and folder is not None:
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(folder)) from exc
        raise


def log_text(text: str, artifact_file: str) -> None:
    with _artifact_write():
        mlflow.log_text(text, artifact_file)


def log_dict(data: Any, artifact_file: str) -> None:
    with _artifact_write():
        mlflow.log_dict(data, artifact_file)


def log_artifact(path: Path | str, artifact_path: str | None = None) -> None:
    with _artifact_write():
        mlflow.log_artifact(str(path), artifact_path)


def log_figure_file(path: Path, artifact_dir: str) -> None:
    with _artifact_write():
        mlflow.log_artifact(str(path), artifact_dir)


def log_table(frame: pd.DataFrame, artifact_file: str) -> None:
    """A DataFrame as CSV (or JSON records when `artifact_file` ends in .json)."""
    with _artifact_write():
        if artifact_file.endswith(".json"):
            mlflow.log_dict(json.loads(frame.to_json(orient="records")), artifact_file)
        else:
            mlflow.log_text(frame.to_csv(index=False), artifact_file)


def log_dataset(manifest: pd.DataFrame, *, source: str, digest: str, name: str, context: str = "training") -> None:
    """The manifest as an MLflow dataset input, so runs on the same data line up by digest.

    The SQL store looks a dataset up and inserts it when missing; two workers logging the same
    dataset at once (their first trials) can both insert, and the loser gets a UNIQUE-constraint
    error. The retry finds the winner's row and only links it to this run.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = mlflow.data.from_pandas(manifest, source=source, name=name, digest=digest)  # type: ignore[attr-defined]
        for attempt in range(3):
            try:
                mlflow.log_input(dataset, context=context)
                return
            except mlflow.exceptions.MlflowException as exc:
                if attempt == 2 or not _is_unique_violation(exc):
                    raise
                time.sleep(0.2 * (attempt + 1))


def _is_unique_violation(exc: BaseException) -> bool:
    text = f"{exc} {exc.__cause__ or ''}".lower()
    return "unique" in text or "integrityerror" in text or "duplicate key" in text
