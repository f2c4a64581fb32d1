"""Everything that talks to MLflow, in one place.

Other modules hand plain values (dicts, DataFrames, file paths, Keras models) to the
functions here; nothing else imports mlflow. That keeps the naming scheme of DESIGN.md
enforceable, lets tests point a single place at a temporary store, and isolates the MLflow 3
specifics: sqlite default store, `name=` for models, aliases in the registry, and the
`MLFLOW_RUN_ID` / `MLFLOW_EXPERIMENT_ID` that `mlflow run` exports.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import mlflow
import pandas as pd
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from ckrun import names
from ckrun.errors import CkrunError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "ckrun"
MODEL_NAME = "model"  # pyfunc wrapper: preprocessing + Keras model, DataFrame out
KERAS_MODEL_NAME = "keras_model"  # plain mlflow.keras flavour, preprocessing in its metadata
KIND_TAG = "ckrun.kind"
KINDS = ("train", "trial", "study", "baseline", "evaluate", "cv", "pipeline")
MAX_PARAM_LENGTH = 6000

_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------
# Store and experiment


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


def _local_artifact_root(uri: str) -> str | None:
    """``mlartifacts/`` beside a local sqlite store (MLflow's server uses the same folder)."""
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
        return client.create_experiment(name, artifact_location=_local_artifact_root(uri))
    except mlflow.exceptions.MlflowException:  # created by a concurrent worker meanwhile
        return client.get_experiment_by_name(name).experiment_id


# --------------------------------------------------------------------------------------
# Runs


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
    """A run that ends FINISHED, FAILED (exception, logged as `error`) or KILLED.

    A run started while another is active becomes its child, so trials nest under their
    study and the stages of `ckrun run` under an `mlflow run` parent. At top level, a run id
    exported by `mlflow run` is adopted instead of creating a duplicate. KeyboardInterrupt
    and the `killed_on` exceptions (e.g. a pruned trial) end the run KILLED with everything
    already logged kept.
    """
    configure()
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r}")
    nested = mlflow.active_run() is not None
    all_tags = {KIND_TAG: kind, **(tags or {})}
    if description:
        all_tags["mlflow.note.content"] = description
    if nested or not _env_run_id():
        exp_id = experiment_id(experiment) if not nested else mlflow.active_run().info.experiment_id
        run = mlflow.start_run(
            experiment_id=exp_id,
            run_name=run_name,
            nested=nested,
            tags=all_tags,
            log_system_metrics=system_metrics or None,
        )
    else:
        run = mlflow.start_run(log_system_metrics=system_metrics or None)  # adopts MLFLOW_RUN_ID
        mlflow.set_tags(all_tags)
        MlflowClient().set_tag(run.info.run_id, "mlflow.runName", run_name)
    handle = RunHandle(run.info.run_id, run.info.experiment_id, run_name)
    try:
        yield handle
    except (*killed_on, KeyboardInterrupt) as exc:
        with contextlib.suppress(Exception):
            mlflow.set_tag("ckrun.end_reason", type(exc).__name__)
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException as exc:
        with contextlib.suppress(Exception):
            mlflow.set_tag("ckrun.error", f"{type(exc).__name__}: {exc}"[:5000])
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    else:
        mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))


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


def log_text(text: str, artifact_file: str) -> None:
    mlflow.log_text(text, artifact_file)


def log_dict(data: Any, artifact_file: str) -> None:
    mlflow.log_dict(data, artifact_file)


def log_artifact(path: Path | str, artifact_path: str | None = None) -> None:
    mlflow.log_artifact(str(path), artifact_path)


def log_table(frame: pd.DataFrame, artifact_file: str) -> None:
    """A DataFrame as CSV (or JSON records when `artifact_file` ends in .json)."""
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
        dataset = mlflow.data.from_pandas(manifest, source=source, name=name, digest=digest)
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


# --------------------------------------------------------------------------------------
# Keras callback (per-epoch metrics, step = epoch)


def epoch_logger():
    """A Keras callback logging each epoch's metrics under the DESIGN.md names."""
    import keras

    class _EpochLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
            log_metrics(names.epoch_metrics(logs or {}), step=epoch + 1)

    return _EpochLogger()


# --------------------------------------------------------------------------------------
# Models


def _requirements() -> list[str]:
    """Pinned to what is installed, so serving environments match training."""
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for dist in ("tensorflow-cpu", "keras", "numpy", "pandas", "pillow", "opencv-python-headless", "mlflow"):
        with contextlib.suppress(PackageNotFoundError):
            reqs.append(f"{dist}=={version(dist)}")
    if not any(r.startswith("tensorflow") for r in reqs):
        with contextlib.suppress(PackageNotFoundError):
            reqs.insert(0, f"tensorflow=={version('tensorflow')}")
    return reqs


class CkrunPyfunc(mlflow.pyfunc.PythonModel):
    """Serving wrapper: image paths or base64 bytes in, a labelled DataFrame out.

    Plain Keras pyfunc returns a dict of arrays and knows nothing of cropping or
    normalisation; this applies the model's own preprocessing first.
    """

    def load_context(self, context: Any) -> None:
        from ckrun.predict import Predictor

        self.predictor = Predictor.from_files(
            Path(context.artifacts["keras_model"]),
            Path(context.artifacts["preprocessing"]),
            Path(context.artifacts["config"]) if "config" in context.artifacts else None,
        )

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return self.predictor.predict_frame(model_input)


def _signature(prep_json: str) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    prep = json.loads(prep_json)
    outputs = [ColSpec("string", "emotion")]
    outputs += [ColSpec("double", f"p_{c}") for c in prep["classes"]]
    for au in prep["aus"]:
        outputs += [ColSpec("double", f"{au}_prob"), ColSpec("long", au)]
    inputs = Schema([ColSpec("string", "image"), ColSpec("string", "landmarks", required=False)])
    return ModelSignature(inputs=inputs, outputs=Schema(outputs))


def log_model(keras_model: Any, preprocessing_json: str, config_yaml: str) -> str:
    """Log the pyfunc wrapper (`model`) and the Keras flavour (`keras_model`); returns the runs:/ URI."""
    import ckrun

    run_id = mlflow.active_run().info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        keras_file = Path(tmp) / "model.keras"
        keras_model.save(keras_file)
        prep_file = Path(tmp) / "preprocessing.json"
        prep_file.write_text(preprocessing_json)
        cfg_file = Path(tmp) / "config.yaml"
        cfg_file.write_text(config_yaml)
        quiet = ("mlflow.pyfunc", "mlflow.models.model", "mlflow.keras.save", "mlflow.utils.requirements_utils")
        with _quiet_loggers(quiet), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=CkrunPyfunc(),
                artifacts={"keras_model": str(keras_file), "preprocessing": str(prep_file), "config": str(cfg_file)},
                code_paths=[str(Path(ckrun.__file__).parent)],
                signature=_signature(preprocessing_json),
                pip_requirements=_requirements(),
            )
            mlflow.keras.log_model(
                keras_model,
                name=KERAS_MODEL_NAME,
                pip_requirements=_requirements(),
                metadata={"ckrun_preprocessing": json.loads(preprocessing_json), "ckrun_config": config_yaml},
            )
    return f"runs:/{run_id}/{MODEL_NAME}"


@contextlib.contextmanager
def _quiet_loggers(loggers: Sequence[str]) -> Iterator[None]:
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def load_predictor(model_uri: str) -> Any:
    """A `ckrun.predict.Predictor` for a `runs:/`, `models:/` or local model URI."""
    from ckrun.predict import Predictor

    configure()
    try:
        with _quiet_loggers(("mlflow.pyfunc", "mlflow.models.model")), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CkrunError(f"cannot load model {model_uri!r}: {first}") from None
    meta = loaded.metadata
    flavors = meta.flavors if meta else {}
    if "keras" in flavors and (meta.metadata or {}).get("ckrun_preprocessing"):
        import yaml

        from ckrun.data.pipeline import Preprocessing

        prep = Preprocessing.from_json(json.dumps(meta.metadata["ckrun_preprocessing"]))
        config = yaml.safe_load(meta.metadata.get("ckrun_config") or "{}")
        return Predictor(loaded.get_raw_model(), prep, config)
    try:
        wrapper = loaded.unwrap_python_model()
    except Exception:
        wrapper = None
    if not isinstance(wrapper, CkrunPyfunc):
        raise CkrunError(f"{model_uri!r} is not a ckrun model (no ckrun preprocessing found)")
    return wrapper.predictor


def model_run_id(model_uri: str) -> str | None:
    """The run that logged a model URI (for `models:/name@alias` too)."""
    configure()
    try:
        from mlflow.models import get_model_info

        return get_model_info(model_uri).run_id
    except Exception:
        return None


def download_artifact(run_id: str, path: str, dst: Path) -> Path | None:
    """One artifact of a run into `dst`, or None when the run does not have it."""
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(dst)))
    except Exception:
        return None


def register_model(model_uri: str, name: str, alias: str = "champion") -> str:
    """Register `model_uri` under `name` and point `alias` at the new version."""
    configure()
    with _quiet_loggers(("mlflow.tracking._model_registry.client", "mlflow.store.model_registry")):
        version = mlflow.register_model(model_uri, name)
    MlflowClient().set_registered_model_alias(name, alias, version.version)
    return str(version.version)


# --------------------------------------------------------------------------------------
# Queries (reports, tuning, tests)


def get_run(run_id: str) -> Any:
    configure()
    return MlflowClient().get_run(run_id)


def search_runs(experiment: str | None = None, filter_string: str = "", max_results: int = 5000) -> pd.DataFrame:
    """Runs of an experiment as a DataFrame (``params.*``, ``metrics.*``, ``tags.*`` columns)."""
    configure()
    exp = MlflowClient().get_experiment_by_name(experiment or DEFAULT_EXPERIMENT)
    if exp is None:
        if experiment is None and os.environ.get("MLFLOW_EXPERIMENT_ID"):
            ids = [os.environ["MLFLOW_EXPERIMENT_ID"]]
        else:
            raise CkrunError(f"no MLflow experiment named {experiment or DEFAULT_EXPERIMENT!r}")
    else:
        ids = [exp.experiment_id]
    return mlflow.search_runs(experiment_ids=ids, filter_string=filter_string, max_results=max_results)


def metric_history(run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of one metric, in step order."""
    configure()
    return sorted((m.step, m.value) for m in MlflowClient().get_metric_history(run_id, key))


def child_runs(parent_run_id: str) -> pd.DataFrame:
    run = get_run(parent_run_id)
    return mlflow.search_runs(
        experiment_ids=[run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'"
    )


def final_metric_step(epochs_run: int) -> int:
    """Step of the final (restored-model) metrics: one past the last epoch.

    Per-epoch curves and final scores share names (DESIGN.md), so the final value sits
    at its own step and is the one MLflow shows as latest in tables and compare views.
    """
    return int(epochs_run) + 1


def log_figure_file(path: Path, artifact_dir: str) -> None:
    mlflow.log_artifact(str(path), artifact_dir)


# --------------------------------------------------------------------------------------
# Report and UI queries (issue 5: `ckrun report`, `ckrun ui`). Read-only helpers; the
# report package turns their plain results into tables and figures.


def local_artifact_root(uri: str) -> str | None:
    """Where a local sqlite store keeps artifacts (``mlartifacts/`` beside the db), else None.

    `ckrun ui` hands this to ``mlflow server --artifacts-destination`` so the UI serves the
    same folder that training wrote.
    """
    return _local_artifact_root(uri)


def read_artifact_text(run_id: str, path: str) -> str | None:
    """One text artifact of a run (JSON, CSV, Markdown), or None when the run lacks it."""
    with tempfile.TemporaryDirectory() as tmp:
        local = download_artifact(run_id, path, Path(tmp))
        if local is None or not local.is_file():
            return None
        return local.read_text()


def copy_artifact(run_id: str, path: str, dst: Path) -> Path | None:
    """One artifact file of a run copied to exactly `dst` (e.g. a PNG a report embeds)."""
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        local = download_artifact(run_id, path, Path(tmp))
        if local is None or not local.is_file():
            return None
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, dst)
        return dst


def experiment_id_by_name(name: str) -> str | None:
    """The id of an existing, non-deleted experiment (for UI links), or None; creates nothing."""
    configure()
    found = MlflowClient().get_experiment_by_name(name)
    return found.experiment_id if found is not None and found.lifecycle_stage != "deleted" else None


# --------------------------------------------------------------------------------------
# Tuning glue (ckrun.tune): runs left by crashed workers, the registry alias of the champion
#
# Trials are ordinary `start_run` runs nested under the study's parent run; this section holds
# only what the study needs beyond that. (optuna_integration.MLflowCallback is deprecated and
# would log a second, differently named run per trial.)


def end_stale_run(run_id: str, reason: str) -> bool:
    """End a run a crashed worker left RUNNING as FAILED, with `reason` as ``ckrun.error``.

    Returns False when the run is already finished (or gone), so a retry never rewrites history.
    """
    configure()
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return False
    if run.info.status != RunStatus.to_string(RunStatus.RUNNING):
        return False
    client.set_tag(run_id, "ckrun.error", reason[:5000])
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
    return True


def _alias_version(name: str, alias: str) -> Any:
    configure()
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        return None


def alias_run_id(name: str, alias: str = "champion") -> str | None:
    """The run whose model `name@alias` points at, or None when there is no such alias."""
    version = _alias_version(name, alias)
    return version.run_id if version is not None else None


def alias_version(name: str, alias: str = "champion") -> str | None:
    version = _alias_version(name, alias)
    return str(version.version) if version is not None else None


def tag_model_version(name: str, version: str, tags: Mapping[str, Any]) -> None:
    """Tags on a registered model version (study, trial number, source run), for the registry UI."""
    configure()
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))


def run_model_uri(run_id: str, name: str = MODEL_NAME) -> str | None:
    """``models:/<model_id>`` of the model `name` that a run logged, or None when it logged none.

    MLflow 3 keeps models as logged-model entities; registering this URI (rather than
    ``runs:/<id>/<name>``) avoids the registry's fallback warning and records the source run.
    """
    configure()
    try:
        run = MlflowClient().get_run(run_id)
        found = mlflow.search_logged_models(
            experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'", output_format="list"
        )
    except Exception:
        return None
    matches = [m for m in found if m.name == name]
    return f"models:/{matches[0].model_id}" if matches else None
