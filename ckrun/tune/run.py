"""`ckrun tune` from start to end: resolve the storage, open the study, work, finalise.

Every invocation is one parent MLflow run (kind ``study``): ``study-<name>`` for a worker,
``<name>-finalize`` for ``--finalize``. Its params are the fixed part of the base config plus
the study settings; its tags name the study and the storage by its safe label only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ckrun import names, tracking
from ckrun.console import echo
from ckrun.errors import CkrunError, ConfigError
from ckrun.tune.champion import finalize
from ckrun.tune.liveness import WorkerId, reap_dead_workers, signs_of_life
from ckrun.tune.options import StudyResult, TuneOptions
from ckrun.tune.space import SearchSpace, check_space, load_search_space
from ckrun.tune.storage import StorageSpec, resolve_storage
from ckrun.tune.study import load_existing_study, open_study, quiet_optuna
from ckrun.tune.worker import (
    MAX_CONSECUTIVE_FAILURES,
    Worker,
    clean_up_after_dead_workers,
    wait_for_silent_workers,
    work,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from optuna.study import Study

    from ckrun.config import TrainConfig
    from ckrun.data.loader import PreparedData


def _prepare(data: PreparedData | Path | str | None, cfg: TrainConfig) -> PreparedData:
    from ckrun.data.loader import PreparedData, prepare_for_config

    return data if isinstance(data, PreparedData) else prepare_for_config(data, cfg)


def _study_params(
    options: TuneOptions, space: SearchSpace, base_cfg: TrainConfig, data: PreparedData
) -> dict[str, Any]:
    """The parent run's params: the fixed part of the config plus the study settings (never the storage URL)."""
    from ckrun.run_logging import run_params

    fixed = {k: v for k, v in run_params(base_cfg, data, []).items() if k not in space.params and k != "objective"}
    fixed.pop("au_list", None)
    fixed.pop("n_aus", None)
    study = {
        "search_space": str(options.search_space),
        "n_trials": options.n_trials,
        "max_trials": options.max_trials or "none",
        "timeout": options.timeout or "none",
        "objective": options.objective,
        "sampler": options.sampler,
        "pruner": "none" if options.pareto else options.pruner,
        "study_name": options.study_name,
        "sampler_seed": base_cfg.seed if options.seed is None else options.seed,
    }
    return {**fixed, **{f"tune.{k}": v for k, v in study.items()}}


def _start_parent(
    options: TuneOptions, spec: StorageSpec, space: SearchSpace | None, me: WorkerId
) -> AbstractContextManager[tracking.RunHandle]:
    """The study's parent run (under `mlflow run`, the run it created); tags never hold the storage password."""
    tags = {
        "ckrun.study_name": options.study_name,
        "ckrun.storage_kind": spec.kind,
        "ckrun.storage": spec.label,
        "ckrun.worker": me.name,
    }
    if space is None:
        name, what = f"{options.study_name}-finalize", "registration of the best trial"
    else:
        name, what = f"study-{options.study_name}", f"{options.objective} objective over {space.source}"
        tags["ckrun.search_space"] = str(options.search_space)
    return tracking.start_run(
        kind="study",
        run_name=name,
        experiment=options.experiment,
        tags=tags,
        description=f"Optuna study {options.study_name!r} ({spec.kind} storage): {what}.",
    )


def run_tune(cfg: TrainConfig, data: PreparedData | Path | str | None, options: TuneOptions) -> StudyResult:
    """Run (or join, or resume) the study, then register its best model; what `ckrun tune` does.

    `cfg` is the base config (everything the space does not search); `data` is a DATA path
    (None for the synthetic default) or an already prepared dataset, loaded once per worker.
    """
    if options.objective not in (*names.OBJECTIVE_KINDS, "pareto"):
        raise ConfigError(f"unknown objective {options.objective!r} (expected mean, emotion, au or pareto)")
    spec = resolve_storage(options.storage)
    with quiet_optuna():
        if options.finalize_only:
            return _finalize_only(cfg, data, options, spec)
        space = load_search_space(options.search_space)
        check_space(space, cfg)
        prepared = _prepare(data, cfg)
        study = open_study(options, spec, space, cfg, prepared.digest)
        return _run_study(study, cfg, prepared, options, spec, space)


def _run_study(
    study: Study, cfg: TrainConfig, data: PreparedData, options: TuneOptions, spec: StorageSpec, space: SearchSpace
) -> StudyResult:
    # Keras first, before any sign of life: TensorFlow's import holds the GIL (so the heartbeat threads
    # stall) for seconds, enough on a loaded machine for other workers to take this one for dead.
    import keras  # noqa: F401

    from ckrun.data.pipeline import FaceCache

    echo(f"study {options.study_name} on {spec.label}: {options.objective} objective, space {space.source}")
    me = WorkerId.this_process()
    with (
        _start_parent(options, spec, space, me) as parent,
        signs_of_life(study, me, parent.run_id, options.heartbeat_interval),
    ):
        tracking.log_params(_study_params(options, space, cfg, data))
        tracking.log_text(space.text, "search_space.yaml")
        tracking.log_text(cfg.to_yaml(), "base_config.yaml")
        worker = Worker(study, space, cfg, data, FaceCache(cfg.cache), options, parent.run_id, me)
        clean_up_after_dead_workers(worker)
        work(worker)
        wait_for_silent_workers(worker)  # no gone worker's runs left RUNNING, no champion from a pending study
        result = StudyResult(options.study_name, spec.label, parent.run_id, {}, worker.ran)
        finalize(study, lambda: data, options, result)
        if worker.failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
            raise CkrunError(f"study {options.study_name}: {worker.stop_reason}")
    return result


def _finalize_only(
    cfg: TrainConfig, data: PreparedData | Path | str | None, options: TuneOptions, spec: StorageSpec
) -> StudyResult:
    """`ckrun tune --finalize`: register and test the best trial of an existing study, no new trials."""
    study = load_existing_study(options, spec)
    objective = "pareto" if len(study.directions) > 1 else study.user_attrs.get("ckrun.objective", "mean")
    options = dataclasses.replace(options, objective=objective)
    prepared: list[PreparedData] = []

    def lazy_data() -> PreparedData:  # only registration with --retrain and the test evaluation need data
        if not prepared:
            prepared.append(_prepare(data, cfg))
        return prepared[0]

    me = WorkerId.this_process()
    with (
        _start_parent(options, spec, None, me) as parent,
        signs_of_life(study, me, parent.run_id, options.heartbeat_interval),
    ):
        reap_dead_workers(study, me, options.grace_period, options.max_retry)
        tracking.log_params({"tune.study_name": options.study_name, "tune.finalize": True})
        result = StudyResult(options.study_name, spec.label, parent.run_id, {}, [])
        finalize(study, lazy_data, options, result)
    return result
