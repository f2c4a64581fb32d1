"""A tune worker killed with SIGKILL leaves nothing RUNNING once the study is resumed.

The unit tests drive `ckrun.tune.liveness` directly on SQLite and journal storages (the
journal has no Optuna heartbeats, so the worker records are all there is); the slow test
kills a real `ckrun tune` mid-trial and resumes the study at once, before any heartbeat could
expire: the dead worker is recognised by its process id (same machine).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient

from ckrun import tracking, tune
from ckrun.tune.attrs import RETRY_OF_RUN_ATTR, WORKER_ATTR
from ckrun.tune.liveness import SEEN_PREFIX, WorkerId, death_reason, reap_dead_workers, signs_of_life
from ckrun.tune.storage import open_storage, resolve_storage


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def record(host: str, pid: int, *, seen_ago: float = 0.0, started: float = 0.0, **extra: Any) -> dict[str, Any]:
    me = WorkerId.this_process()
    return {"host": host, "boot": me.boot, "pid": pid, "started": started, "seen": time.time() - seen_ago, **extra}


def test_death_is_judged_by_process_on_this_machine_and_by_silence_elsewhere() -> None:
    me = WorkerId.this_process()
    here = socket.gethostname()
    assert death_reason(record(here, os.getpid(), started=me.started), me, 180) is None
    assert "is gone" in (death_reason(record(here, dead_pid()), me, 180) or "")
    # a live pid that belongs to another process (pid reused after a reboot or a crash)
    assert "is gone" in (death_reason(record(here, os.getpid(), started=(me.started or 0.0) - 3600), me, 180) or "")
    assert death_reason(record("elsewhere", 12345, seen_ago=60), me, 180) is None
    assert "not seen for" in (death_reason(record("elsewhere", 12345, seen_ago=600), me, 180) or "")
    assert death_reason(record(here, dead_pid(), ended=True), me, 180) is None  # finished normally


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_dead_workers_trial_is_retried_and_its_runs_end_killed(mlflow_store: Path, kind: str) -> None:
    url = f"sqlite:///{mlflow_store}/optuna.db" if kind == "sqlite" else f"journal://{mlflow_store}/study.log"
    study = optuna.create_study(storage=open_storage(resolve_storage(url)), study_name="s", direction="maximize")
    experiment = tracking.experiment_id()  # points MLflow at this test's store first
    client = MlflowClient()
    parent = client.create_run(experiment, run_name="study-s").info.run_id
    trial_run = client.create_run(experiment, run_name="trial-0", tags={"mlflow.parentRunId": parent}).info.run_id
    dead = "deadhost:1:abc"
    trial = study.ask()  # the dead worker asked, suggested, started its run ... and was killed
    trial.suggest_float("l2", 1e-5, 1e-1, log=True)
    trial.set_user_attr(WORKER_ATTR, dead)
    trial.set_user_attr(tune.RUN_ID_ATTR, trial_run)
    study.set_user_attr(SEEN_PREFIX + dead, record(socket.gethostname(), dead_pid(), run_id=parent))
    alive = study.ask()  # a live worker's trial (this process) must be left alone
    alive.set_user_attr(WORKER_ATTR, "me")
    study.set_user_attr(SEEN_PREFIX + "me", WorkerId.this_process().record(parent_run_id=""))

    reaped = reap_dead_workers(study, WorkerId.this_process(), grace_period=180, max_retry=2)

    assert reaped == [f"{socket.gethostname()}:{study.user_attrs[SEEN_PREFIX + dead]['pid']}"]
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "RUNNING", "WAITING"]
    retry = trials[2]
    assert retry.params == trials[0].params and retry.system_attrs["retry_history"] == [0]
    assert tune.RUN_ID_ATTR not in retry.user_attrs and WORKER_ATTR not in retry.user_attrs
    assert retry.user_attrs[RETRY_OF_RUN_ATTR] == trial_run
    for run_id in (trial_run, parent):
        run = client.get_run(run_id)
        assert run.info.status == "KILLED" and "is gone" in run.data.tags["ckrun.end_reason"]
    assert study.user_attrs[SEEN_PREFIX + dead]["ended"] is True
    # a second worker doing the same clean-up changes nothing
    assert reap_dead_workers(study, WorkerId.this_process(), grace_period=180, max_retry=2) == []
    assert len(study.get_trials()) == 3


def test_a_worker_that_would_stop_waits_out_a_silent_workers_grace_period(
    mlflow_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stopping before another machine's silent worker is declared dead would leave its runs RUNNING."""
    from types import SimpleNamespace

    from ckrun.tune.options import TuneOptions
    from ckrun.tune.worker import wait_for_silent_workers

    study = optuna.create_study(
        storage=open_storage(resolve_storage(f"journal://{mlflow_store}/study.log")), direction="maximize"
    )
    experiment = tracking.experiment_id()
    client = MlflowClient()
    parent = client.create_run(experiment, run_name="study-s").info.run_id
    gone, quiet_but_alive = "elsewhere:7:abc", "elsewhere:8:def"
    trial = study.ask()
    trial.set_user_attr(WORKER_ATTR, gone)
    study.set_user_attr(SEEN_PREFIX + gone, record("elsewhere", 7, seen_ago=2.5, run_id=parent))
    me = WorkerId.this_process()
    options = TuneOptions(heartbeat_interval=1, grace_period=4, register=False)
    worker: Any = SimpleNamespace(study=study, options=options, me=me)

    start = time.monotonic()
    assert wait_for_silent_workers(worker) is True
    waited = time.monotonic() - start

    assert 1.0 <= waited < 4.0  # until its grace period ran out (4 s after it was last seen), not longer
    assert [t.state.name for t in study.get_trials()] == ["FAIL", "WAITING"]  # its trial is queued again
    assert client.get_run(parent).info.status == "KILLED"
    said = capsys.readouterr().out
    assert re.search(r"waiting up to [12]s for worker\(s\) elsewhere:7: not seen for [23]s", said), said
    assert "worker elsewhere:7 is gone" in said
    # Nobody silent: no wait. One that speaks again within its grace period is not reaped.
    assert wait_for_silent_workers(worker) is False
    study.set_user_attr(SEEN_PREFIX + quiet_but_alive, record("elsewhere", 8, seen_ago=2.5))
    beat = threading.Timer(0.5, lambda: study.set_user_attr(SEEN_PREFIX + quiet_but_alive, record("elsewhere", 8)))
    beat.start()
    assert wait_for_silent_workers(worker) is False
    beat.join()
    assert "ended" not in study.user_attrs[SEEN_PREFIX + quiet_but_alive]
    study.set_user_attr(
        SEEN_PREFIX + quiet_but_alive, {**study.user_attrs[SEEN_PREFIX + quiet_but_alive], "ended": True}
    )
    # A silent worker on this machine whose process lives is never reaped: the grace period still ends the wait.
    here = record(socket.gethostname(), os.getpid(), seen_ago=2.5, started=me.started)
    study.set_user_attr(SEEN_PREFIX + "here:1:x", here)
    start = time.monotonic()
    assert wait_for_silent_workers(worker) is False
    assert time.monotonic() - start < 5.0


def test_signs_of_life_are_refreshed_and_closed(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/o.db", study_name="s")
    me = WorkerId.this_process()
    with signs_of_life(study, me, "parent-run", interval=0.2):
        first = study.user_attrs[SEEN_PREFIX + me.key]["seen"]
        time.sleep(1.0)
        assert study.user_attrs[SEEN_PREFIX + me.key]["seen"] > first
    final = study.user_attrs[SEEN_PREFIX + me.key]
    assert final["ended"] is True and final["run_id"] == "parent-run" and final["pid"] == os.getpid()


@pytest.mark.slow
def test_sigkill_mid_trial_then_resume_leaves_nothing_running(mlflow_store: Path, tiny_ckplus: Path) -> None:
    """Case 4: the dead worker's parent run stayed RUNNING for good, its trial's run until the heartbeat expired."""
    space = mlflow_store / "space.yaml"
    space.write_text("params:\n  l2: {low: 1.0e-5, high: 1.0e-1, log: true}\n")
    storage = f"sqlite:///{mlflow_store}/optuna.db"
    args = [
        sys.executable, "-m", "ckrun.cli", "tune", "--data", str(tiny_ckplus), "--search-space", str(space),
        "--storage", storage, "--study-name", "k", "--max-trials", "1", "--pruner", "none", "--no-register",
        "--set", "preset=tiny", "--set", "min_au_count=3", "--set", "log_model=false",
        "--set", "explain_images_per_class=0", "--set", "epochs=1",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_RUN")}
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True, "cwd": mlflow_store, "env": env}
    # Killed as soon as its trial's run exists, long before even one epoch ends; the resume must use
    # the same base config (a study refuses another), so both train one epoch.
    first = subprocess.Popen([*args, "--n-trials", "1"], **pipes)
    deadline = time.monotonic() + 300
    while True:
        assert first.poll() is None, first.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the first worker never started a trial"
        try:
            trials = optuna.load_study(study_name="k", storage=storage).get_trials(deepcopy=False)
        except Exception:
            trials = []
        if any(tune.RUN_ID_ATTR in t.user_attrs for t in trials):
            break
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()

    second = subprocess.run([*args, "--n-trials", "3"], **pipes, timeout=900, check=False)

    assert second.returncode == 0, second.stdout[-4000:]
    assert f"worker {socket.gethostname()}:{first.pid} is gone" in second.stdout
    runs = tracking.search_runs()
    assert "RUNNING" not in set(runs["status"]), runs[["tags.mlflow.runName", "status"]]
    parents = runs[runs["tags.ckrun.kind"] == "study"].set_index("tags.ckrun.worker")
    killed = parents.loc[f"{socket.gethostname()}:{first.pid}"]
    assert killed["status"] == "KILLED" and "is gone" in killed["tags.ckrun.end_reason"]
    study = optuna.load_study(study_name="k", storage=storage)
    states = [(t.number, t.state.name) for t in study.trials]
    assert states[0] == (0, "FAIL") and [s for _, s in states[1:]] == ["COMPLETE"] * (len(states) - 1)
    assert len(states) == 2 and tune.counted_trials(study.trials) == 1  # the retry took the killed trial's place
    stale = tracking.get_run(study.trials[0].user_attrs[tune.RUN_ID_ATTR])
    assert stale.info.status == "KILLED" and stale.data.tags["ckrun.retried_as"] == "1"
    assert study.trials[1].system_attrs["failed_trial"] == 0
