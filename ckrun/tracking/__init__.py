"""Everything that talks to MLflow, in one package.

Other modules hand plain values (dicts, DataFrames, file paths, Keras models) to the
functions here; nothing outside `ckrun/tracking/` imports mlflow. That keeps the MLflow
naming contract of docs/architecture.md enforceable, lets tests point a single place at a
temporary store, and isolates the MLflow 3 specifics: sqlite default store, `name=` for
models, aliases in the registry, and the `MLFLOW_RUN_ID` / `MLFLOW_EXPERIMENT_ID` that
`mlflow run` exports.

Callers use the package as one door (``from ckrun import tracking; tracking.log_metrics(...)``);
the modules behind it split that door by topic:

- `store`: which store and experiment (configure, pre-flight of database and artifacts, artifact root);
- `runs`: the active run, how it ends whatever ends it, and everything logged into it;
- `faults`: a write the store refused, named in one line, and the room kept to end a run anyway;
- `models`: logging a model (the pyfunc wrapper as code, `pyfunc_model`);
- `model_files`: loading a model back as a Predictor from its files, running no stored code;
- `registry`: registered versions, aliases and their tags;
- `queries`: reading runs, metrics and artifacts back; ending a dead process's runs.
"""

from ckrun.tracking.models import (
    KERAS_MODEL_NAME,
    MODEL_NAME,
    CkrunPyfunc,
    load_predictor,
    log_model,
    model_run_id,
    run_model_uri,
)
from ckrun.tracking.queries import (
    child_runs,
    copy_artifact,
    download_artifact,
    end_stale_run,
    experiment_id_by_name,
    fail_finished_run,
    get_run,
    metric_history,
    read_artifact_text,
    running_child_runs,
    search_runs,
)
from ckrun.tracking.registry import alias_run_id, alias_tags, alias_version, register_model, tag_model_version
from ckrun.tracking.runs import (
    KIND_TAG,
    KINDS,
    MAX_PARAM_LENGTH,
    RunHandle,
    active_run_id,
    final_metric_step,
    log_artifact,
    log_dataset,
    log_dict,
    log_figure_file,
    log_metrics,
    log_params,
    log_table,
    log_text,
    parent_for_mlflow_run,
    set_tags,
    start_run,
)
from ckrun.tracking.store import (
    DEFAULT_EXPERIMENT,
    DEFAULT_TRACKING_URI,
    check_store,
    configure,
    experiment_id,
    local_artifact_root,
    redact_uri,
)

__all__ = [
    "DEFAULT_EXPERIMENT",
    "DEFAULT_TRACKING_URI",
    "KERAS_MODEL_NAME",
    "KINDS",
    "KIND_TAG",
    "MAX_PARAM_LENGTH",
    "MODEL_NAME",
    "CkrunPyfunc",
    "RunHandle",
    "active_run_id",
    "alias_run_id",
    "alias_tags",
    "alias_version",
    "check_store",
    "child_runs",
    "configure",
    "copy_artifact",
    "download_artifact",
    "end_stale_run",
    "experiment_id",
    "experiment_id_by_name",
    "fail_finished_run",
    "final_metric_step",
    "get_run",
    "load_predictor",
    "local_artifact_root",
    "log_artifact",
    "log_dataset",
    "log_dict",
    "log_figure_file",
    "log_metrics",
    "log_model",
    "log_params",
    "log_table",
    "log_text",
    "metric_history",
    "model_run_id",
    "parent_for_mlflow_run",
    "read_artifact_text",
    "redact_uri",
    "register_model",
    "run_model_uri",
    "running_child_runs",
    "search_runs",
    "set_tags",
    "start_run",
    "tag_model_version",
]
