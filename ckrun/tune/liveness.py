"""Which workers of a study are alive, and cleaning up after the ones that died.

A worker killed mid-trial (SIGKILL, a lost machine, an out-of-memory kill) cannot end its
runs. The others, or the next `ckrun tune` on the study, do it for it:

- Every worker writes a sign of life into the study, a user attribute
  ``ckrun.worker_seen.<worker id>`` holding its host, pid, process start time, parent run and
  the time it was last seen, refreshed every ``--heartbeat`` seconds by a thread. Study
  attributes live in the Optuna storage itself, so this works across machines that share
  nothing but the storage, and on every storage kind (RDB and journal file).
- A worker on the same machine (same host name and boot id) is dead when its process is gone;
  one on another machine when it has not been seen for ``--grace-period`` seconds.
- At start and before each trial, a worker looks for dead ones. Each dead worker's RUNNING
  trials are failed and retried (as Optuna's RDB heartbeat does, which keeps working
  alongside for trials of workers that never wrote a record), their child runs end KILLED,
  and its ``study-*`` parent run ends KILLED with the reason in ``ckrun.end_reason``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from ckrun import tracking
from ckrun.tune.attrs import RETRY_OF_RUN_ATTR, RUN_ID_ATTR, WORKER_ATTR

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

SEEN_PREFIX = "ckrun.worker_seen."


def _boot_id() -> str:
    """Changes at every boot: tells a pid of this boot from one of an earlier boot or another machine."""
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return ""


def _process_start(pid: int) -> float | None:
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(process.create_time())
    except psutil.Error:
        return None


@dataclass(frozen=True)
class WorkerId:
    """One `ckrun tune` invocation: where it runs and which process it is."""

    key: str  # unique per invocation; the suffix of its ckrun.worker_seen attribute
    host: str
    boot: str
    pid: int
    started: float | None  # the process's start time, so a reused pid is not mistaken for it

    @classmethod
    def this_process(cls) -> WorkerId:
        host, pid = socket.gethostname(), os.getpid()
        return cls(f"{host}:{pid}:{uuid.uuid4().hex[:8]}", host, _boot_id(), pid, _process_start(pid))

    @property
    def name(self) -> str:
        return f"{self.host}:{self.pid}"

    def record(self, parent_run_id: str, *, ended: bool = False) -> dict[str, Any]:
        return {
            "host": self.host,
            "boot": self.boot,
            "pid": self.pid,
            "started": self.started,
            "run_id": parent_run_id,
            "seen": time.time(),
            "ended": ended,
        }


def death_reason(record: dict[str, Any], me: WorkerId, grace_period: float) -> str | None:
    """Why the worker of `record` is dead, or None while it may be alive."""
    if record.get("ended"):
        return None
    same_machine = record.get("host") == me.host and (record.get("boot") or "") == me.boot
    if same_machine:
        started = _process_start(int(record.get("pid", -1)))
        recorded = record.get("started")
        if started is None or (recorded is not None and abs(started - float(recorded)) > 1.0):
            return f"its process {record.get('pid')} on {me.host} is gone"
        return None
    silent = time.time() - float(record.get("seen", 0))
    if silent > grace_period:
        return f"not seen for {silent:.0f}s (grace period {grace_period:g}s)"
    return None


def _other_workers(study: Study, me: WorkerId) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(attribute, worker key, record) of every worker record in the study but this worker's."""
    for attr, record in study.user_attrs.items():
        key = attr.removeprefix(SEEN_PREFIX)
        if attr.startswith(SEEN_PREFIX) and isinstance(record, dict) and key != me.key:
            yield attr, key, record


def _worker_name(record: dict[str, Any]) -> str:
    return f"{record.get('host')}:{record.get('pid')}"


def silent_workers(study: Study, me: WorkerId, quiet: float) -> dict[str, float]:
    """Workers not seen for more than `quiet` seconds and not yet found dead: name -> seconds silent.

    A live worker refreshes its record every heartbeat, so one silent for a few heartbeats is
    probably gone, but another machine's worker is only declared dead after the grace period.
    """
    silent = {}
    for _, _, record in _other_workers(study, me):
        seconds = time.time() - float(record.get("seen", 0))
        if not record.get("ended") and seconds > quiet:
            silent[_worker_name(record)] = seconds
    return silent


# --------------------------------------------------------------------------------------
# Failing and retrying a dead worker's trial


def retry_stale_trial(study: Study, trial: FrozenTrial, max_retry: int | None, why: str) -> None:
    """End a failed-as-stale trial's run KILLED and queue its retry (at most `max_retry` times).

    Like Optuna's RetryHeartbeatStaleTrialCallback (same ``failed_trial``/``retry_history``
    system attributes, which the --max-trials cap reads), but the retry does not inherit the
    dead worker's run id or worker id: it gets its own when a worker picks it up.
    """
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    retried = max_retry is None or len(history) <= max_retry
    attrs = {k: v for k, v in trial.user_attrs.items() if k not in (RUN_ID_ATTR, WORKER_ATTR)}
    run_id = trial.user_attrs.get(RUN_ID_ATTR)
    if retried:
        if run_id:
            attrs[RETRY_OF_RUN_ATTR] = run_id
        study.add_trial(
            optuna.create_trial(
                state=optuna.trial.TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs=attrs,
                system_attrs={"failed_trial": history[0], **trial.system_attrs, "retry_history": history},
            )
        )
    if run_id:
        then = "retried" if retried else f"not retried (already retried {max_retry} times)"
        if tracking.end_stale_run(run_id, f"trial {trial.number} lost: {why}; {then}"):
            tracking.set_tags({"ckrun.trial_state": "FAIL"}, run_id=run_id)


class RetryStaleTrial:
    """The RDB storages' heartbeat callback: Optuna failed a trial whose heartbeat stopped."""

    def __init__(self, max_retry: int | None) -> None:
        self.max_retry = max_retry

    def __call__(self, study: Study, trial: FrozenTrial) -> None:
        retry_stale_trial(study, trial, self.max_retry, "its worker stopped sending heartbeats")


def _fail_trial(study: Study, trial: FrozenTrial) -> bool:
    """Mark a RUNNING trial FAIL; False when another worker (or its own) finished it first."""
    try:
        return bool(study._storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


# --------------------------------------------------------------------------------------
# Signs of life and the clean-up


def reap_dead_workers(study: Study, me: WorkerId, grace_period: float, max_retry: int | None) -> list[str]:
    """Fail and retry dead workers' trials, end their runs KILLED; the names of the workers reaped."""
    reaped = []
    for attr, key, record in _other_workers(study, me):
        why = death_reason(record, me, grace_period)
        if why is None:
            continue
        name = _worker_name(record)
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if trial.user_attrs.get(WORKER_ATTR) == key and _fail_trial(study, trial):
                retry_stale_trial(study, study._storage.get_trial(trial._trial_id), max_retry, f"worker {name} {why}")
        parent = record.get("run_id")
        if parent:
            reason = f"worker {name} lost: {why}"
            for child in tracking.running_child_runs(parent):
                tracking.end_stale_run(child, reason)
            tracking.end_stale_run(parent, reason)
        study.set_user_attr(attr, {**record, "ended": True, "reaped_by": me.name, "reason": why})
        reaped.append(name)
    return reaped


@contextlib.contextmanager
def signs_of_life(study: Study, me: WorkerId, parent_run_id: str, interval: float) -> Iterator[None]:
    """Refresh this worker's ``ckrun.worker_seen`` record every `interval` s while the block runs."""
    attr = SEEN_PREFIX + me.key
    study.set_user_attr(attr, me.record(parent_run_id))
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            with contextlib.suppress(Exception):  # a storage hiccup must not kill the worker
                study.set_user_attr(attr, me.record(parent_run_id))

    thread = threading.Thread(target=beat, name="ckrun-worker-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 5)
        with contextlib.suppress(Exception):
            study.set_user_attr(attr, me.record(parent_run_id, ended=True))
