"""One worker's share of a study: ask for a trial, train it as a child run, report, repeat.

Several workers (`ckrun tune` started N times with the same ``--storage`` and
``--study-name``, on one machine or several) share the study; each trains its own trials, and
every trial is one child run of that worker's parent run. The loop stops at ``--n-trials``,
``--timeout``, ``--max-trials`` (see `ckrun.tune.cap`) or after repeated failures.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import optuna

from ckrun import tracking
from ckrun.console import echo
from ckrun.errors import ConfigError, raise_if_interrupted
from ckrun.tune.attrs import ERROR_ATTR, PARETO_TARGETS, RETRY_OF_RUN_ATTR, RUN_ID_ATTR, SKIPPED_ATTR, WORKER_ATTR
from ckrun.tune.cap import MaxTrialsReached, cap_reached, over_cap
from ckrun.tune.champion import best_trials
from ckrun.tune.liveness import WorkerId, reap_dead_workers, silent_workers
from ckrun.tune.space import suggest_config

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial, Trial

    from ckrun.config import TrainConfig
    from ckrun.data.loader import PreparedData
    from ckrun.data.pipeline import FaceCache
    from ckrun.tune.options import TuneOptions
    from ckrun.tune.space import SearchSpace

MAX_CONSECUTIVE_FAILURES = 3


@dataclass
class Worker:
    """Everything a trial needs, loaded once per worker (data, face cache, space, base config)."""

    study: Study
    space: SearchSpace
    base_cfg: TrainConfig
    data: PreparedData
    face_cache: FaceCache
    options: TuneOptions
    parent_run_id: str
    me: WorkerId
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
            "ckrun.worker": self.me.name,
        }


# --------------------------------------------------------------------------------------
# One trial


def objective(trial: Trial, worker: Worker) -> float | Sequence[float]:
    """Suggest a config, train it as a child run (pruned on the epoch objective), return the score."""
    trial.set_user_attr(WORKER_ATTR, worker.me.key)  # lets the others clean up if this worker dies
    trials = worker.study.get_trials(deepcopy=False)
    if worker.options.max_trials and over_cap(trials, trial.number, worker.options.max_trials):
        trial.set_user_attr(SKIPPED_ATTR, "max_trials")
        worker.hidden.add(trial.number)
        raise MaxTrialsReached(f"the study already has {worker.options.max_trials} trials")
    _tag_retried_run(trial)
    try:
        return _train_trial(trial, worker)
    except Exception as exc:
        if not isinstance(exc, optuna.TrialPruned):
            worker.last_error = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                trial.set_user_attr(ERROR_ATTR, worker.last_error[:1000])
        raise


def _tag_retried_run(trial: Trial) -> None:
    """A retry links the run of the trial it replaces (ended KILLED when its worker was found dead)."""
    stale_run = trial.user_attrs.get(RETRY_OF_RUN_ATTR)
    if stale_run:
        reason = f"worker lost; trial retried as trial {trial.number}"
        tracking.end_stale_run(stale_run, reason)  # already ended by whoever found the worker dead, normally
        tracking.set_tags({"ckrun.trial_state": "FAIL", "ckrun.retried_as": str(trial.number)}, run_id=stale_run)


def _train_trial(trial: Trial, worker: Worker) -> float | Sequence[float]:
    import keras

    from ckrun.model.callbacks import PruneOnObjective
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
        callbacks=[PruneOnObjective(trial)] if prune else [],
        face_cache=worker.face_cache,
        killed_on=(optuna.TrialPruned,),
        verbose=worker.options.verbose,
        on_run_start=lambda run_id: trial.set_user_attr(RUN_ID_ATTR, run_id),
    )
    for key in (*PARETO_TARGETS, "best_epoch", "epochs_run"):  # validation only: the test split picks nothing
        value = result.metrics.get(key)
        if value is not None and math.isfinite(float(value)):
            trial.set_user_attr(key, float(value))
    keys = PARETO_TARGETS if worker.options.pareto else ("objective",)
    values = tuple(float(result.metrics.get(k, float("nan"))) for k in keys)
    missing = [k for k, v in zip(keys, values, strict=True) if not math.isfinite(v)]
    if missing:  # Optuna would fail the trial anyway; its run must not stay FINISHED
        error = f"the trial scored no {', '.join(missing)} (NaN or missing)"
        tracking.fail_finished_run(result.run_id, f"ValueError: {error}")
        raise ValueError(error)
    return values if worker.options.pareto else values[0]


def _failed_suggestion_run(trial: Trial, worker: Worker, exc: Exception) -> None:
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


def after_trial(worker: Worker, study: Study, frozen: FrozenTrial) -> None:
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
    if frozen.state.name == "COMPLETE" and len(frozen.values) == 1:  # a pruned trial's value is an epoch's
        tracking.log_metrics({"trial_value": frozen.values[0]}, step=frozen.number)
    if best is not None:
        tracking.log_metrics({"best_value": best[1]}, step=frozen.number)
    echo(progress_line(frozen, best, time.perf_counter() - worker.started, worker.last_error))


def _best_value(study: Study) -> tuple[int, float] | None:
    if len(study.directions) != 1:
        return None
    best, _ = best_trials(study, pareto=False)  # the champion's rule, ties to the earliest trial
    return (best.number, float(best.value)) if best is not None else None  # type: ignore[arg-type]


def progress_line(frozen: FrozenTrial, best: tuple[int, float] | None, elapsed: float, error: str | None = None) -> str:
    """``trial 3  COMPLETE  value 0.5120  best 0.5300 (trial 1)  12.3s  elapsed 45.6s``."""
    parts = [f"trial {frozen.number:>3}", f"{frozen.state.name:<8}"]
    # Optuna gives a pruned trial its last epoch's val_objective as value; it is no final score.
    if frozen.state.name == "PRUNED" and frozen.intermediate_values:
        step = max(frozen.intermediate_values)
        parts.append(f"at epoch {step} ({frozen.intermediate_values[step]:.4f})")
    elif frozen.values:
        parts.append("value " + ", ".join(f"{v:.4f}" for v in frozen.values))
    if best is not None:
        parts.append(f"best {best[1]:.4f} (trial {best[0]})")
    if frozen.duration is not None:
        parts.append(f"{frozen.duration.total_seconds():.1f}s")
    parts.append(f"elapsed {elapsed:.1f}s")
    if frozen.state.name == "FAIL" and error:
        parts.append(error.splitlines()[0][:200])
    return "  ".join(parts)


# --------------------------------------------------------------------------------------
# The loop


class _HideSkippedTrialWarnings(logging.Filter):
    """Optuna warns with a traceback for every failed trial; a skip at the cap is not a failure,
    and an interrupted trial (Ctrl-C, SIGTERM) is reported once, by the CLI, in one line."""

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(
            record.exc_info[1], KeyboardInterrupt | optuna.exceptions.UpdateFinishedTrialError
        ):
            return False  # said once, in one line, by the CLI or by `work`
        message = record.getMessage()
        return not any(message.startswith(f"Trial {n} failed ") for n in self.worker.hidden)


def clean_up_after_dead_workers(worker: Worker) -> list[str]:
    """Fail and retry the trials of workers that died, and end their runs KILLED; who was reaped.

    Two mechanisms: Optuna's RDB heartbeats (a trial whose heartbeat is older than the grace
    period), and ckrun's own worker records (`ckrun.tune.liveness`), which also catch a worker
    that died between trials and work on journal storages.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(worker.study)
    options = worker.options
    reaped = reap_dead_workers(worker.study, worker.me, options.grace_period, options.max_retry)
    for name in reaped:
        echo(f"worker {name} is gone: its trial(s) failed and queued again, its runs ended KILLED")
    return reaped


def wait_for_silent_workers(worker: Worker) -> bool:
    """Before this worker stops: settle the workers that went silent; True if any was found dead.

    A worker on another machine is declared dead only after --grace-period. Stopping before
    then (the study's cap counts its trial, or this worker's trials are done) would leave its
    trial and runs RUNNING with nobody left to end them, and a champion chosen while its trial
    was pending. So a worker silent for two heartbeats is waited for, at most until its grace
    period ends: it is then reaped (its trial queued again) or it has spoken again. (A silent
    worker on this machine whose process lives is never reaped; the same bound ends the wait.)
    """
    options = worker.options
    quiet = 2 * options.heartbeat_interval
    silent = silent_workers(worker.study, worker.me, quiet)
    if not silent:
        return False
    longest = max(0.0, options.grace_period - min(silent.values()))
    echo(
        f"waiting up to {longest:.0f}s for worker(s) {', '.join(sorted(silent))}: not seen for "
        f"{min(silent.values()):.0f}s or more, dead after --grace-period {options.grace_period:g}s"
    )
    deadline = time.monotonic() + longest + options.heartbeat_interval
    reaped: list[str] = []
    while silent and time.monotonic() < deadline:
        time.sleep(min(1.0, options.heartbeat_interval))
        raise_if_interrupted()
        reaped += clean_up_after_dead_workers(worker)
        silent = silent_workers(worker.study, worker.me, quiet)
    return bool(reaped)


def _study_full(worker: Worker) -> bool:
    """--max-trials is reached, not counting the trial of a worker that turned out to be gone."""
    cap = worker.options.max_trials
    if not cap or not cap_reached(worker.study.get_trials(deepcopy=False), cap):
        return False
    # The cap may count a silent worker's trial: once that worker is found dead, the retry is ours.
    return not wait_for_silent_workers(worker) or cap_reached(worker.study.get_trials(deepcopy=False), cap)


def _finished_elsewhere(exc: BaseException) -> bool:
    """Optuna's complaint when another worker failed this worker's trial (it took it for dead)."""
    if isinstance(exc, optuna.exceptions.UpdateFinishedTrialError):
        return True
    return isinstance(exc, ValueError) and str(exc).startswith("Cannot tell a ")


def work(worker: Worker) -> None:
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
            clean_up_after_dead_workers(worker)  # before counting: a dead worker's trial is retried, not counted twice
            if _study_full(worker):
                worker.stop_reason = f"the study reached --max-trials {options.max_trials}"
                break
            # One trial per optimize() call: Optuna fails stale trials of crashed workers and keeps
            # this trial's heartbeat; we check the cap and the stop reasons between trials.
            try:
                worker.study.optimize(
                    lambda trial: objective(trial, worker),
                    n_trials=1,
                    catch=(Exception,),
                    callbacks=[lambda study, frozen: after_trial(worker, study, frozen)],
                )
            except Exception as exc:
                if not _finished_elsewhere(exc):
                    raise
                echo(f"another worker ended this worker's trial (no heartbeat within --grace-period?): {exc}")
            raise_if_interrupted()  # a signal whose Interrupted was lost between trials
            if worker.stop_reason:
                break
    finally:
        optimize_logger.removeFilter(hide)
    if worker.stop_reason:
        echo(f"worker stops: {worker.stop_reason}")
