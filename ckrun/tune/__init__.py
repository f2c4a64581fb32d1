"""Optuna study over a search space: every trial one `train()` run, nested under one parent run.

`ckrun tune` replaces the seed's four hand-judged runs with a study: a search space read from
YAML (`search_spaces/*.yaml`), a seeded sampler, pruning on the per-epoch validation objective,
and storage that one laptop (SQLite, journal file) or several machines (PostgreSQL) share.
Every trial is a child MLflow run with the same params, curves and final metrics as
`ckrun train`; the parent run gets the best params and metrics, the trials table and Optuna's
plots, and the best model is registered as ``models:/<name>@champion``.

Several workers (`ckrun tune` started N times with the same ``--storage`` and
``--study-name``, on one machine or several) share the study; each trains its own trials, and
every trial is one child run of that worker's parent run.

The exact guarantee of ``--max-trials N`` with any number of concurrent workers: at most N
*counted* trials are ever trained. Every trial counts, whatever its state (COMPLETE, PRUNED,
FAIL, RUNNING, WAITING), except (a) a trial failed by the heartbeat check whose retry was
queued (the retry counts instead) and (b) a trial skipped at the cap. A worker checks the cap
before asking for a trial (it stops when the cap is reached and no retry is queued) and again
right after asking, counting only the trials numbered before its own (numbers are unique and
increasing). A worker that lost that race ends its fresh trial FAIL with the user attribute
``ckrun.skipped = max_trials``, with no run and no training, and stops. So besides the N
counted trials the study may hold at most one skipped trial per worker that raced at the cap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ckrun import names, tracking
from ckrun.config import TrainConfig, build_config
from ckrun.console import echo, warn
from ckrun.errors import CkrunError, ConfigError
from ckrun.tune.space import SearchSpace, check_space, load_search_space, suggest_config

RUN_ID_ATTR = "mlflow_run_id"
SKIPPED_ATTR = "ckrun.skipped"
ERROR_ATTR = "ckrun.error"
PARETO_TARGETS = ("val_emotion_f1", "val_au_f1")
MAX_CONSECUTIVE_FAILURES = 3

# --------------------------------------------------------------------------------------
# Storage: SQLite beside mlflow.db, any RDB URL, or a journal file


@dataclass(frozen=True)
class StorageSpec:
    url: str  # may hold a password: never log or print it; use `label`
    kind: str  # sqlite | postgresql | mysql | journal | ...
    label: str  # safe to print, tag and log

    @property
    def is_journal(self) -> bool:
        return self.kind == "journal"


def default_storage_url() -> str:
    """``sqlite:///optuna.db`` beside a local ``mlflow.db`` (or in the working directory)."""
    uri = tracking.configure()
    folder = Path(uri.removeprefix("sqlite:///")).resolve().parent if uri.startswith("sqlite:///") else Path.cwd()
    return f"sqlite:///{folder / 'optuna.db'}"


def _safe_label(url: str) -> str:
    return tracking.redact_uri(url.split("?", 1)[0])


def resolve_storage(storage: str | None) -> StorageSpec:
    """``--storage`` (or ``$CKRUN_STORAGE``) to a spec; journal files as ``journal:///path`` or ``*.log``."""
    url = (storage or os.environ.get("CKRUN_STORAGE") or "").strip() or default_storage_url()
    if url.startswith("journal://"):
        path = url.removeprefix("journal://")
        return StorageSpec(str(Path(path).expanduser()), "journal", f"journal://{path}")
    if "://" not in url:
        if url.endswith((".log", ".journal")):
            return StorageSpec(str(Path(url).expanduser()), "journal", f"journal://{url}")
        raise ConfigError(
            f"--storage {url!r}: expected an Optuna storage URL (sqlite:///optuna.db, postgresql://user@host/db), "
            "journal:///path/file.log, or a path ending in .log/.journal"
        )
    kind = url.split("://", 1)[0].split("+", 1)[0]
    return StorageSpec(url, kind, _safe_label(url))


def open_storage(
    spec: StorageSpec, *, heartbeat_interval: int = 60, grace_period: int = 180, max_retry: int = 2
) -> Any:
    """An Optuna storage; RDB storages get heartbeats so a crashed worker's trial is failed and retried."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    if spec.is_journal:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        Path(spec.url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(spec.url))
    if spec.kind == "sqlite" and spec.url.startswith("sqlite:///"):
        Path(spec.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = {"connect_args": {"timeout": 60}} if spec.kind == "sqlite" else {"pool_pre_ping": True}
    for attempt in range(4):
        try:
            with warnings.catch_warnings():  # heartbeats and the retry callback are "experimental" since Optuna 2.8
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    spec.url,
                    engine_kwargs=engine,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
                )
        except ImportError as exc:
            raise CkrunError(f"storage {spec.label} needs a database driver: {exc}") from None
        except Exception as exc:  # workers starting together race to create the tables: retry
            if attempt == 3:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise CkrunError(f"cannot open Optuna storage {spec.label}: {_scrub(first, spec.url)}") from None
            time.sleep(0.5 + np.random.default_rng().random() * 1.5)
    raise AssertionError("unreachable")


def _scrub(text: str, url: str) -> str:
    """Remove the storage URL's password from a message (drivers sometimes echo it)."""
    from urllib.parse import urlsplit

    with contextlib.suppress(ValueError):
        password = urlsplit(url).password
        if password:
            text = text.replace(password, "***")
    return text


# --------------------------------------------------------------------------------------
# Sampler and pruner


def _mix_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def _trial_seeded_sampler_class() -> type:
    from optuna.samplers import BaseSampler

    class TrialSeededSampler(BaseSampler):
        """Delegates to a fresh sampler seeded with (seed, trial number).

        One seeded sampler per worker would make concurrent workers, and a resumed study,
        replay the same random start-up suggestions; seeding per trial number keeps the study
        reproducible and gives every trial its own draw, whichever worker runs it. TPE keeps
        no state besides its RNG (it reads the history from the study), so nothing is lost.
        """

        def __init__(self, factory: Callable[[int | None], Any], seed: int | None) -> None:
            self._factory, self._seed = factory, seed
            self._current: tuple[int, Any] | None = None

        def _for(self, trial: Any) -> Any:
            if self._current is None or self._current[0] != trial.number:
                seed = None if self._seed is None else _mix_seed(self._seed, trial.number)
                self._current = (trial.number, self._factory(seed))
            return self._current[1]

        def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
            return self._for(trial).infer_relative_search_space(study, trial)

        def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
            return self._for(trial).sample_relative(study, trial, search_space)

        def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
            return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

        def before_trial(self, study: Any, trial: Any) -> None:
            self._for(trial).before_trial(study, trial)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            self._for(trial).after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self._current = None

    return TrialSeededSampler


def make_sampler(kind: str, seed: int | None, startup_trials: int) -> Any:
    """TPE (constant liar, so concurrent workers spread out) or random, seeded per trial."""
    import optuna

    def factory(trial_seed: int | None) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if kind == "random":
                return optuna.samplers.RandomSampler(seed=trial_seed)
            return optuna.samplers.TPESampler(seed=trial_seed, n_startup_trials=startup_trials, constant_liar=True)

    if kind not in ("tpe", "random"):
        raise ConfigError(f"unknown sampler {kind!r} (expected tpe or random)")
    return _trial_seeded_sampler_class()(factory, seed)


def make_pruner(kind: str, space: SearchSpace, max_epochs: int) -> Any:
    """Median or Hyperband on the per-epoch validation objective (steps are epochs)."""
    import optuna

    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=space.startup_trials, n_warmup_steps=space.warmup_epochs)
    if kind == "hyperband":
        top = max(2, max_epochs)
        return optuna.pruners.HyperbandPruner(
            min_resource=min(max(1, space.warmup_epochs), top - 1), max_resource=top, reduction_factor=3
        )
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {kind!r} (expected median, hyperband or none)")


def pruning_callback(trial: Any, monitor: str = "val_objective") -> Any:
    """Reports `monitor` each epoch; a pruned trial stops after that epoch's metrics are logged.

    optuna_integration's KerasPruningCallback raises inside on_epoch_end, which train() runs
    before its MLflow epoch logger, so the pruned epoch would be missing from the run's curves.
    This one asks Keras to stop and raises TrialPruned from on_train_end instead. The last
    epoch is reported but never pruned: it would discard a finished trial and save no epoch.
    """
    import keras
    import optuna

    class PruneOnObjective(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.pruned_at: int | None = None

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            value = (logs or {}).get(monitor)
            if value is None or not math.isfinite(float(value)):
                return
            trial.report(float(value), step=epoch + 1)
            last = epoch + 1 >= (self.params or {}).get("epochs", math.inf)
            if not last and trial.should_prune():  # stopping after the last epoch saves nothing
                self.pruned_at = epoch + 1
                self.model.stop_training = True

        def on_train_end(self, logs: dict | None = None) -> None:
            if self.pruned_at is not None:
                raise optuna.TrialPruned(f"pruned at epoch {self.pruned_at}")

    return PruneOnObjective()


# --------------------------------------------------------------------------------------
# The --max-trials cap across workers


def _superseded(trials: list[Any]) -> set[int]:
    """Trial numbers replaced by a heartbeat retry (the retry counts instead)."""
    out: set[int] = set()
    for t in trials:
        out.update(int(n) for n in t.system_attrs.get("retry_history", []))
    return out


def _counts(trial: Any, superseded: set[int]) -> bool:
    return trial.number not in superseded and not trial.user_attrs.get(SKIPPED_ATTR)


def counted_trials(trials: list[Any]) -> int:
    """Trials that count towards --max-trials: all states, minus retried-stale and skipped ones."""
    superseded = _superseded(trials)
    return sum(_counts(t, superseded) for t in trials)


def over_cap(trials: list[Any], number: int, cap: int) -> bool:
    """True when `cap` counted trials are numbered before `number` (checked right after asking).

    Trial numbers are unique and increasing, so of several workers racing at the cap only
    those whose trial still fits go on; the others skip without training.
    """
    superseded = _superseded(trials)
    return sum(t.number < number and _counts(t, superseded) for t in trials) >= cap


def cap_reached(trials: list[Any], cap: int) -> bool:
    """No room for a new trial and no queued (WAITING) trial, such as a heartbeat retry, left to run."""
    return counted_trials(trials) >= cap and not any(t.state.name == "WAITING" for t in trials)


class MaxTrialsReached(Exception):
    """Raised inside a trial that was asked for after the study reached --max-trials."""


# --------------------------------------------------------------------------------------
# Options, results


@dataclass
class TuneOptions:
    """`ckrun tune` options (see the CLI help); the heartbeat settings are for RDB storages."""

    search_space: str | Path = "quick"
    n_trials: int = 10
    max_trials: int | None = None
    timeout: float | None = None
    storage: str | None = None
    study_name: str = "ckrun-study"
    objective: str = "mean"
    sampler: str = "tpe"
    pruner: str = "median"
    register_name: str = "ckplus-resnet"
    register: bool = True
    retrain: bool = False
    finalize_only: bool = False
    experiment: str | None = None
    seed: int | None = None  # sampler seed  [default: the config's seed]
    heartbeat_interval: int = 60
    grace_period: int = 180
    max_retry: int = 2
    verbose: bool = False  # per-epoch lines of every trial

    @property
    def pareto(self) -> bool:
        return self.objective == "pareto"


@dataclass
class StudyResult:
    """What `run_tune` leaves behind: the study, its best trial and the registered model."""

    study_name: str
    storage: str  # redacted label
    parent_run_id: str | None
    counts: dict[str, int]
    ran: list[int]
    best_trial: Any = None  # optuna FrozenTrial
    best_run_id: str | None = None
    model_uri: str | None = None  # models:/<name>@champion
    model_version: str | None = None
    pareto_front: list[Any] = field(default_factory=list)
    test_metrics: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        total = sum(v for k, v in self.counts.items() if k != "SKIPPED")
        states = ", ".join(f"{n} {s.lower()}" for s, n in self.counts.items() if n)
        lines = [
            f"study {self.study_name} ({self.storage}): {total} trials ({states}); this worker ran {len(self.ran)}"
        ]
        best = self.best_trial
        if best is None:
            lines.append("no completed trial yet")
        else:
            value = ", ".join(f"{v:.4f}" for v in best.values)
            lines.append(f"best trial {best.number}: value {value}  run {self.best_run_id}")
            lines.append("  " + "  ".join(f"{k}={_fmt(v)}" for k, v in best.params.items()))
        if self.pareto_front:
            lines.append(f"pareto front: trials {', '.join(str(t.number) for t in self.pareto_front)}")
        if self.model_uri:
            lines.append(f"model: {self.model_uri} (version {self.model_version})")
        shown = [k for k in ("test_emotion_accuracy", "test_emotion_f1", "test_au_f1") if k in self.test_metrics]
        if shown:
            lines.append("  " + "  ".join(f"{k} {self.test_metrics[k]:.3f}" for k in shown))
        if self.parent_run_id:
            lines.append(f"study run: {self.parent_run_id}")
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------------------
# One trial


@dataclass
class _Worker:
    """Everything a trial needs, loaded once per worker (data, face cache, space, base config)."""

    study: Any
    space: SearchSpace
    base_cfg: TrainConfig
    data: Any  # PreparedData
    face_cache: Any
    options: TuneOptions
    parent_run_id: str
    started: float = field(default_factory=time.perf_counter)
    ran: list[int] = field(default_factory=list)
    failures_in_a_row: int = 0
    stop_reason: str | None = None
    last_error: str | None = None
    hidden: set[int] = field(default_factory=set)  # skipped trials whose Optuna warning is hidden

    def trial_tags(self, number: int) -> dict[str, str]:
        return {
            "ckrun.study_name": self.options.study_name,
            "ckrun.trial_number": str(number),
            "ckrun.study_run_id": self.parent_run_id,
            "ckrun.worker": worker_name(),
        }


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def objective(trial: Any, worker: _Worker) -> float | tuple[float, float]:
    """Suggest a config, train it as a child run (pruned on the epoch objective), return the score."""
    trials = worker.study.get_trials(deepcopy=False)
    if worker.options.max_trials and over_cap(trials, trial.number, worker.options.max_trials):
        trial.set_user_attr(SKIPPED_ATTR, "max_trials")
        worker.hidden.add(trial.number)
        raise MaxTrialsReached(f"the study already has {worker.options.max_trials} trials")
    _end_abandoned_run(trial, trials)
    try:
        return _train_trial(trial, worker)
    except Exception as exc:
        if not isinstance(exc, _pruned_type()):
            worker.last_error = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                trial.set_user_attr(ERROR_ATTR, worker.last_error[:1000])
        raise


def _pruned_type() -> type[Exception]:
    import optuna

    return optuna.TrialPruned


def _end_abandoned_run(trial: Any, trials: list[Any]) -> None:
    """A retry of a crashed worker's trial ends that worker's run (left RUNNING) as FAILED."""
    frozen = next((t for t in trials if t.number == trial.number), None)
    original = frozen.system_attrs.get("failed_trial") if frozen is not None else None
    stale_run = trial.user_attrs.get(RUN_ID_ATTR)  # copied from the stale trial by the retry callback
    if original is None or not stale_run:
        return
    tracking.end_stale_run(stale_run, f"worker lost (no heartbeat); trial {original} retried as trial {trial.number}")
    tracking.set_tags({"ckrun.trial_state": "FAIL", "ckrun.retried_as": str(trial.number)}, run_id=stale_run)


def _train_trial(trial: Any, worker: _Worker) -> float | tuple[float, float]:
    import keras

    from ckrun.train import train

    keras.utils.clear_session()  # drop the previous trial's graphs (memory grows otherwise)
    try:
        cfg = suggest_config(trial, worker.space, worker.base_cfg)
    except ConfigError as exc:
        _failed_suggestion_run(trial, worker, exc)
        raise
    if not worker.options.pareto:
        cfg = cfg.updated(objective=worker.options.objective)
    prune = not worker.options.pareto and worker.options.pruner != "none"
    result = train(
        cfg,
        worker.data,
        kind="trial",
        run_name=f"trial-{trial.number}",
        tags=worker.trial_tags(trial.number),
        callbacks=[pruning_callback(trial)] if prune else [],
        face_cache=worker.face_cache,
        killed_on=(_pruned_type(),),
        verbose=worker.options.verbose,
        on_run_start=lambda run_id: trial.set_user_attr(RUN_ID_ATTR, run_id),
    )
    for key in (*PARETO_TARGETS, "best_epoch", "epochs_run"):  # validation only: the test split picks nothing
        value = result.metrics.get(key)
        if value is not None and math.isfinite(float(value)):
            trial.set_user_attr(key, float(value))
    if worker.options.pareto:
        return tuple(float(result.metrics.get(k, float("nan"))) for k in PARETO_TARGETS)
    return float(result.metrics["objective"])


def _failed_suggestion_run(trial: Any, worker: _Worker, exc: Exception) -> None:
    """A suggested combination the config rejects still gets its (FAILED) child run."""
    with (
        contextlib.suppress(type(exc)),
        tracking.start_run(kind="trial", run_name=f"trial-{trial.number}", tags=worker.trial_tags(trial.number)) as run,
    ):
        trial.set_user_attr(RUN_ID_ATTR, run.run_id)
        tracking.log_params({k: str(v) for k, v in trial.params.items()})
        raise exc


# --------------------------------------------------------------------------------------
# After each trial: tags, progress line, parent metrics


def after_trial(worker: _Worker, study: Any, frozen: Any) -> None:
    """Optuna callback: tag the trial's run with its final state and print one progress line."""
    if frozen.user_attrs.get(SKIPPED_ATTR):
        worker.stop_reason = f"the study reached --max-trials {worker.options.max_trials}"
        return
    worker.ran.append(frozen.number)
    run_id = frozen.user_attrs.get(RUN_ID_ATTR)
    if run_id:
        tracking.set_tags({"ckrun.trial_number": frozen.number, "ckrun.trial_state": frozen.state.name}, run_id=run_id)
    if frozen.state.name == "FAIL":
        worker.failures_in_a_row += 1
        if worker.failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
            worker.stop_reason = f"{worker.failures_in_a_row} trials in a row failed (last: {worker.last_error})"
    else:
        worker.failures_in_a_row = 0
    best = _best_value(study)
    if frozen.values and len(frozen.values) == 1:
        tracking.log_metrics({"trial_value": frozen.values[0]}, step=frozen.number)
    if best is not None:
        tracking.log_metrics({"best_value": best[1]}, step=frozen.number)
    echo(progress_line(frozen, best, time.perf_counter() - worker.started, worker.last_error))


def _best_value(study: Any) -> tuple[int, float] | None:
    if len(study.directions) != 1:
        return None
    with contextlib.suppress(ValueError):
        best = study.best_trial
        return best.number, float(best.value)
    return None


def progress_line(frozen: Any, best: tuple[int, float] | None, elapsed: float, error: str | None = None) -> str:
    """``trial 3  COMPLETE  value 0.5120  best 0.5300 (trial 1)  12.3s  elapsed 45.6s``."""
    parts = [f"trial {frozen.number:>3}", f"{frozen.state.name:<8}"]
    if frozen.values:
        parts.append("value " + ", ".join(f"{v:.4f}" for v in frozen.values))
    elif frozen.state.name == "PRUNED" and frozen.intermediate_values:
        step = max(frozen.intermediate_values)
        parts.append(f"at epoch {step} ({frozen.intermediate_values[step]:.4f})")
    if best is not None:
        parts.append(f"best {best[1]:.4f} (trial {best[0]})")
    if frozen.duration is not None:
        parts.append(f"{frozen.duration.total_seconds():.1f}s")
    parts.append(f"elapsed {elapsed:.1f}s")
    if frozen.state.name == "FAIL" and error:
        parts.append(error.splitlines()[0][:200])
    return "  ".join(parts)


class _HideSkippedTrialWarnings(logging.Filter):
    """Optuna warns with a traceback for every failed trial; a skip at the cap is not a failure."""

    def __init__(self, worker: _Worker) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(message.startswith(f"Trial {n} failed ") for n in self.worker.hidden)


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Our progress line replaces Optuna's INFO lines (study created, trial finished); warnings stay."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def _fail_stale_trials(study: Any) -> None:
    """Fail (and queue retries of) trials whose worker stopped sending heartbeats (RDB storages only)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def work(worker: _Worker) -> None:
    """This worker's loop: up to --n-trials trials, stopping at --timeout or --max-trials."""
    options = worker.options
    hide = _HideSkippedTrialWarnings(worker)
    optimize_logger = logging.getLogger("optuna.study._optimize")
    optimize_logger.addFilter(hide)
    try:
        for _ in range(options.n_trials):
            if options.timeout and time.perf_counter() - worker.started >= options.timeout:
                worker.stop_reason = f"--timeout {options.timeout:g}s reached"
                break
            _fail_stale_trials(worker.study)  # before counting: a crashed worker's trial is retried, not counted twice
            if options.max_trials and cap_reached(worker.study.get_trials(deepcopy=False), options.max_trials):
                worker.stop_reason = f"the study reached --max-trials {options.max_trials}"
                break
            # One trial per optimize() call: Optuna fails stale trials of crashed workers and keeps
            # this trial's heartbeat; we check the cap and the stop reasons between trials.
            worker.study.optimize(
                lambda trial: objective(trial, worker),
                n_trials=1,
                catch=(Exception,),
                callbacks=[lambda study, frozen: after_trial(worker, study, frozen)],
            )
            if worker.stop_reason:
                break
    finally:
        optimize_logger.removeFilter(hide)
    if worker.stop_reason:
        echo(f"worker stops: {worker.stop_reason}")


# --------------------------------------------------------------------------------------
# The study, opened or created


def open_study(options: TuneOptions, spec: StorageSpec, space: SearchSpace, base_cfg: TrainConfig) -> Any:
    """Create the study, or load it (resume / join other workers) when it exists."""
    import optuna

    storage = open_storage(
        spec,
        heartbeat_interval=options.heartbeat_interval,
        grace_period=options.grace_period,
        max_retry=options.max_retry,
    )
    directions = ["maximize"] * (2 if options.pareto else 1)
    seed = base_cfg.seed if options.seed is None else options.seed
    study = optuna.create_study(
        storage=storage,
        study_name=options.study_name,
        sampler=make_sampler(options.sampler, seed, space.startup_trials),
        pruner=make_pruner(options.pruner, space, space.max_epochs(base_cfg)),
        directions=directions,
        load_if_exists=True,
    )
    _check_study_matches(study, options, space, base_cfg)
    return study


def _check_study_matches(study: Any, options: TuneOptions, space: SearchSpace, base_cfg: TrainConfig) -> None:
    """A resumed study must keep its objective; a changed space or base config is warned about."""
    attrs = study.user_attrs
    base_yaml = _base_yaml(base_cfg, space)
    if "ckrun.objective" not in attrs:
        study.set_user_attr("ckrun.objective", options.objective)
        study.set_user_attr("ckrun.search_space", space.text)
        study.set_user_attr("ckrun.base_config", base_yaml)
        return
    if attrs["ckrun.objective"] != options.objective:
        raise ConfigError(
            f"study {options.study_name!r} optimises --objective {attrs['ckrun.objective']}, not {options.objective}; "
            "pick another --study-name"
        )
    if attrs.get("ckrun.search_space") != space.text:
        warn(f"study {options.study_name!r} was created with a different search space; trials may not line up")
    if attrs.get("ckrun.base_config") != base_yaml:
        warn(f"study {options.study_name!r} was created with a different base config (--config/--set)")


def _base_yaml(base_cfg: TrainConfig, space: SearchSpace) -> str:
    fixed = {k: v for k, v in base_cfg.model_dump().items() if k not in space.params and k != "objective"}
    return yaml.safe_dump({k: list(v) if isinstance(v, tuple) else v for k, v in fixed.items()}, sort_keys=True)


def load_existing_study(options: TuneOptions, spec: StorageSpec) -> Any:
    """The study for --finalize; an error naming the storage if it does not exist."""
    import optuna

    storage = open_storage(spec, heartbeat_interval=options.heartbeat_interval, grace_period=options.grace_period)
    try:
        return optuna.load_study(study_name=options.study_name, storage=storage)
    except KeyError:
        raise ConfigError(f"no study named {options.study_name!r} in {spec.label}") from None


def trial_counts(study: Any) -> dict[str, int]:
    trials = study.get_trials(deepcopy=False)
    counts = dict.fromkeys(("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"), 0)
    superseded = _superseded(trials)
    for t in trials:
        if t.user_attrs.get(SKIPPED_ATTR):
            counts["SKIPPED"] = counts.get("SKIPPED", 0) + 1
        elif t.number not in superseded:
            counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


# --------------------------------------------------------------------------------------
# Finalize: best trial, parent-run artifacts, registration, one test evaluation


def best_trials(study: Any, pareto: bool) -> tuple[Any, list[Any]]:
    """The best trial and the Pareto front (pareto: the front member with the best mean F1)."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return None, []
    if not pareto:
        return study.best_trial, []
    front = study.best_trials
    return max(front, key=lambda t: float(np.nanmean(t.values))), front


def trials_table(study: Any) -> pd.DataFrame:
    """Every trial: number, state, value(s), params, run id, error or skip reason, durations."""
    multi = len(study.directions) > 1
    attrs = ("number", "values" if multi else "value", "state", "datetime_start", "duration", "params", "user_attrs")
    frame = study.trials_dataframe(attrs=attrs)
    if multi:
        frame = frame.rename(columns={"values_0": PARETO_TARGETS[0], "values_1": PARETO_TARGETS[1]})
    return frame.rename(columns={f"user_attrs_{RUN_ID_ATTR}": "run_id"})


def log_study_plots(study: Any, pareto: bool) -> list[str]:
    """Optuna's history, importance, parallel-coordinate and slice plots (matplotlib) as artifacts."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import optuna
    import optuna.visualization.matplotlib as vis

    plots: dict[str, Callable[[], Any]] = {}
    targets = [(t, i) for i, t in enumerate(PARETO_TARGETS)] if pareto else [("", None)]
    for name, index in targets:
        suffix = f"_{name}" if name else ""
        kw = {"target": (lambda t, i=index: t.values[i]), "target_name": name} if index is not None else {}
        plots[f"optimization_history{suffix}"] = lambda kw=kw: vis.plot_optimization_history(study, **kw)
        plots[f"param_importances{suffix}"] = lambda kw=kw: vis.plot_param_importances(study, **kw)
        plots[f"parallel_coordinate{suffix}"] = lambda kw=kw: vis.plot_parallel_coordinate(study, **kw)
        plots[f"slice{suffix}"] = lambda kw=kw: vis.plot_slice(study, **kw)
    if pareto:
        plots["pareto_front"] = lambda: vis.plot_pareto_front(study, target_names=list(PARETO_TARGETS))
    elif any(t.intermediate_values for t in study.get_trials(deepcopy=False)):  # none without pruning
        plots["intermediate_values"] = lambda: vis.plot_intermediate_values(study)
    logged = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, make in plots.items():
            try:
                axes = make()
                fig = np.asarray(axes).flat[0].figure
                path = Path(tmp) / f"{name}.png"
                fig.savefig(path, dpi=100, bbox_inches="tight")
                plt.close(fig)
                tracking.log_figure_file(path, "plots")
                logged.append(name)
            except (ValueError, RuntimeError, ZeroDivisionError, IndexError, optuna.exceptions.OptunaError) as exc:
                warn(f"study plot {name} skipped: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
                plt.close("all")
    return logged


def log_best(study: Any, best: Any, front: list[Any]) -> str | None:
    """Best params, the best run's final metrics (``best_*``), trials table and plots on the parent run."""
    tracking.log_table(trials_table(study), "trials.csv")
    if front:
        tracking.log_table(
            pd.DataFrame([{"number": t.number, **dict(zip(PARETO_TARGETS, t.values, strict=True))} for t in front]),
            "pareto_front.csv",
        )
    if best is None:
        return None
    run_id = best.user_attrs.get(RUN_ID_ATTR)
    tracking.set_tags({"ckrun.best_trial": best.number, "ckrun.best_run_id": run_id or ""})
    tracking.log_dict({"number": best.number, "values": best.values, "params": best.params}, "best_trial.json")
    if run_id:
        metrics = tracking.get_run(run_id).data.metrics
        tracking.log_metrics({f"best_{k}": v for k, v in metrics.items() if not k.startswith(("system/", "best_"))})
        with tempfile.TemporaryDirectory() as tmp:
            config = tracking.download_artifact(run_id, "config.yaml", Path(tmp))
            if config is not None:
                tracking.log_text(config.read_text(), "best_config.yaml")
    return run_id


def _best_config(run_id: str) -> TrainConfig:
    with tempfile.TemporaryDirectory() as tmp:
        path = tracking.download_artifact(run_id, "config.yaml", Path(tmp))
        if path is None:
            raise CkrunError(f"best run {run_id} has no config.yaml to retrain from")
        return build_config(yaml.safe_load(path.read_text()))


def train_plus_val(data: Any) -> Any:
    """The data with validation images also in train (val stays for the curves and thresholds)."""
    from ckrun.data.loader import PreparedData, manifest_digest

    manifest = data.manifest
    extra = manifest.loc[manifest["split"] == "val"].assign(split="train")
    merged = pd.concat([manifest, extra], ignore_index=True)
    return PreparedData(data.source, data.source_format, merged, manifest_digest(merged), data.skipped)


def retrain_best(best: Any, run_id: str, data: Any, options: TuneOptions) -> str | None:
    """Retrain the best config on train+val for the best trial's number of epochs; its model URI."""
    from ckrun.train import train

    trial_run = tracking.get_run(run_id)
    cfg = _best_config(run_id)
    epochs = int(trial_run.data.metrics.get("best_epoch", cfg.epochs))
    cfg = cfg.updated(epochs=max(1, epochs), early_stopping=0, log_model=True)
    echo(f"retraining trial {best.number}'s config on train+val for {cfg.epochs} epochs")
    result = train(
        cfg,
        train_plus_val(data),
        kind="train",
        run_name=f"{options.study_name}-retrain",
        tags={
            "ckrun.study_name": options.study_name,
            "ckrun.retrained_from": run_id,
            "ckrun.trial_number": str(best.number),
            "ckrun.train_data": "train+val",
        },
        verbose=options.verbose,
    )
    return tracking.run_model_uri(result.run_id) if result.run_id else None


def register_best(best: Any, run_id: str, data: Any, options: TuneOptions) -> tuple[str | None, str | None]:
    """Register the best model (or its train+val retrain) as ``models:/<name>@champion``."""
    logged = tracking.run_model_uri(run_id)
    if logged is None and not options.retrain:
        warn(f"trial {best.number}'s run logged no model (log_model=false?): nothing to register")
        return None, None
    alias_uri = f"models:/{options.register_name}@champion"
    if not options.retrain and tracking.alias_run_id(options.register_name) == run_id:
        version = tracking.alias_version(options.register_name)
        echo(f"{alias_uri} already is trial {best.number} (version {version})")
        return alias_uri, version
    source = retrain_best(best, run_id, data, options) if options.retrain else logged
    if source is None:
        return None, None
    version = tracking.register_model(source, options.register_name, alias="champion")
    tracking.tag_model_version(
        options.register_name,
        version,
        {
            "ckrun.study_name": options.study_name,
            "ckrun.trial_number": best.number,
            "ckrun.trial_run_id": run_id,
            "ckrun.retrained": options.retrain,
        },
    )
    echo(f"registered {source} as {alias_uri} (version {version})")
    return alias_uri, version


def evaluate_champion(model_uri: str, data: Any) -> dict[str, float]:
    """Score the registered model once on the test split (its own evaluate run); ``champion_*`` on the parent."""
    from ckrun.evaluation_run import evaluate_model_uri

    source = data.source if hasattr(data, "source") else data
    result = evaluate_model_uri(model_uri, source, split="test")
    test = {k: v for k, v in result.metrics.items() if k.startswith("test_")}
    tracking.log_metrics({f"champion_{k}": v for k, v in test.items()})
    return test


def finalize(study: Any, worker_data: Callable[[], Any], options: TuneOptions, result: StudyResult) -> StudyResult:
    """Log the best trial on the parent run, then register and test the champion."""
    best, front = best_trials(study, options.pareto)
    result.best_trial, result.pareto_front = best, front
    result.best_run_id = log_best(study, best, front)
    if best is not None:
        log_study_plots(study, options.pareto)
    result.counts = trial_counts(study)
    tracking.log_metrics({f"trials_{k.lower()}": v for k, v in result.counts.items()})
    if best is None:
        warn(f"study {options.study_name!r} has no completed trial yet: nothing to register")
        return result
    if options.register and result.best_run_id:
        data = worker_data()
        result.model_uri, result.model_version = register_best(best, result.best_run_id, data, options)
        if result.model_uri:
            tracking.set_tags({"ckrun.registered_model": result.model_uri, "ckrun.model_version": result.model_version})
            result.test_metrics = evaluate_champion(result.model_uri, data)
    return result


# --------------------------------------------------------------------------------------
# Entry point


def _prepare(data: Any, cfg: TrainConfig) -> Any:
    from ckrun.data.loader import PreparedData, prepare_for_config

    return data if isinstance(data, PreparedData) else prepare_for_config(data, cfg)


def _study_params(options: TuneOptions, space: SearchSpace, base_cfg: TrainConfig, data: Any) -> dict[str, Any]:
    """The parent run's params: the fixed part of the config plus the study settings (never the storage URL)."""
    from ckrun.train import run_params

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


def _start_parent(options: TuneOptions, spec: StorageSpec, space: SearchSpace | None) -> Any:
    """The study's parent run (under `mlflow run`, the run it created); tags never hold the storage password."""
    tags = {
        "ckrun.study_name": options.study_name,
        "ckrun.storage_kind": spec.kind,
        "ckrun.storage": spec.label,
        "ckrun.worker": worker_name(),
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


def run_tune(cfg: TrainConfig, data: Any, options: TuneOptions) -> StudyResult:
    """Run (or join, or resume) the study, then register its best model; what `ckrun tune` does.

    `cfg` is the base config (everything the space does not search); `data` is a DATA path
    (None for the synthetic default) or an already prepared dataset, loaded once per worker.
    """
    if options.objective not in (*names.OBJECTIVE_KINDS, "pareto"):
        raise ConfigError(f"unknown objective {options.objective!r} (expected mean, emotion, au or pareto)")
    spec = resolve_storage(options.storage)
    with _quiet_optuna():
        if options.finalize_only:
            return _finalize_only(cfg, data, options, spec)
        space = load_search_space(options.search_space)
        check_space(space, cfg)
        study = open_study(options, spec, space, cfg)
        return _run_study(study, cfg, _prepare(data, cfg), options, spec, space)


def _run_study(
    study: Any, cfg: TrainConfig, data: Any, options: TuneOptions, spec: StorageSpec, space: SearchSpace
) -> StudyResult:
    from ckrun.data.pipeline import FaceCache

    echo(f"study {options.study_name} on {spec.label}: {options.objective} objective, space {space.source}")
    with _start_parent(options, spec, space) as parent:
        tracking.log_params(_study_params(options, space, cfg, data))
        tracking.log_text(space.text, "search_space.yaml")
        tracking.log_text(cfg.to_yaml(), "base_config.yaml")
        worker = _Worker(study, space, cfg, data, FaceCache(cfg.cache), options, parent.run_id)
        work(worker)
        result = StudyResult(options.study_name, spec.label, parent.run_id, {}, worker.ran)
        finalize(study, lambda: data, options, result)
        if worker.failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
            raise CkrunError(f"study {options.study_name}: {worker.stop_reason}")
    return result


def _finalize_only(cfg: TrainConfig, data: Any, options: TuneOptions, spec: StorageSpec) -> StudyResult:
    """`ckrun tune --finalize`: register and test the best trial of an existing study, no new trials."""
    study = load_existing_study(options, spec)
    objective = "pareto" if len(study.directions) > 1 else study.user_attrs.get("ckrun.objective", "mean")
    options = dataclasses.replace(options, objective=objective)
    prepared: list[Any] = []

    def lazy_data() -> Any:  # only registration with --retrain and the test evaluation need data
        if not prepared:
            prepared.append(_prepare(data, cfg))
        return prepared[0]

    with _start_parent(options, spec, None) as parent:
        tracking.log_params({"tune.study_name": options.study_name, "tune.finalize": True})
        result = StudyResult(options.study_name, spec.label, parent.run_id, {}, [])
        finalize(study, lazy_data, options, result)
    return result
