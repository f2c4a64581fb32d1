"""Whatever ends the process, every run ends with a final status and the user reads one line.

SIGTERM (a scheduler, `kill`) and SIGHUP (a closed terminal) end runs KILLED like Ctrl-C, with
what was logged kept, and exit 128 + the signal number. Ctrl-C during `ckrun tune` prints no
Optuna traceback. Signals need a real process: these tests start `ckrun` as a subprocess
(SIGHUP is also checked in-process, where the handler is installed by the command itself).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from ckrun import tracking
from ckrun.cli import cli
from ckrun.tune import RUN_ID_ATTR

pytestmark = pytest.mark.slow

TINY = ["--set", "preset=tiny", "--set", "min_au_count=3", "--set", "explain_images_per_class=0"]


def ckrun(store: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_RUN")}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}/mlflow.db"
    return subprocess.Popen(
        [sys.executable, "-m", "ckrun.cli", *args],
        cwd=store,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"ckrun exited ({process.returncode}) before {what}: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def user_lines(stderr: str) -> list[str]:
    """What stderr says, without progress bars and TensorFlow's start-up chatter."""
    lines = [part.strip() for chunk in stderr.splitlines() for part in chunk.split("\r")]
    return [ln for ln in lines if ln.startswith(("error", "warning", "interrupted", "Traceback", "Trial "))]


def test_sigterm_during_train_ends_the_run_killed_with_its_curves(mlflow_store: Path, tiny_ckplus: Path) -> None:
    """Case 1: `kill -TERM` after epoch 1 left the run RUNNING forever."""
    process = ckrun(mlflow_store, "train", "--data", str(tiny_ckplus), *TINY, "--set", "epochs=200", "--run-name", "t")
    assert process.stdout is not None
    for line in process.stdout:  # one line per epoch, printed before that epoch's metrics are logged
        if line.startswith("epoch   2/"):  # so epoch 1 is in the store by now
            break
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)

    assert process.returncode == 143, stderr[-3000:]
    assert user_lines(stderr) == ["interrupted by SIGTERM"], stderr[-3000:]
    runs = tracking.search_runs()
    assert runs["status"].tolist() == ["KILLED"]
    run = tracking.get_run(runs["run_id"].iloc[0])
    assert run.data.tags["ckrun.end_reason"] == "Interrupted: SIGTERM"
    assert [step for step, _ in tracking.metric_history(run.info.run_id, "val_loss")][:1] == [1]  # kept
    assert tracking.read_artifact_text(run.info.run_id, "config.yaml")


def test_sighup_ends_the_run_killed_and_exits_129(
    mlflow_store: Path, tiny_ckplus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ckrun.train

    def hang_up(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGHUP)  # the terminal closed mid-fit
        time.sleep(30)
        raise AssertionError("SIGHUP did not interrupt the fit")

    monkeypatch.setattr(ckrun.train, "fit_model", hang_up)
    previous = signal.getsignal(signal.SIGHUP)
    result = CliRunner().invoke(cli, ["train", "--data", str(tiny_ckplus), *TINY, "--set", "epochs=1"])
    assert result.exit_code == 129, result.output
    assert result.stderr.strip().splitlines()[-1] == "interrupted by SIGHUP"
    assert signal.getsignal(signal.SIGHUP) == previous  # the command puts the old handler back
    runs = tracking.search_runs()
    assert runs["status"].tolist() == ["KILLED"] and runs["tags.ckrun.end_reason"].tolist() == ["Interrupted: SIGHUP"]


def test_ctrl_c_during_tune_kills_the_runs_without_a_traceback(mlflow_store: Path, tiny_ckplus: Path) -> None:
    """Case 14: runs ended correctly but Optuna printed a 28-line traceback."""
    space = mlflow_store / "space.yaml"
    space.write_text("params:\n  l2: {low: 1.0e-5, high: 1.0e-1, log: true}\n")
    storage = f"sqlite:///{mlflow_store}/optuna.db"
    args = ["tune", "--data", str(tiny_ckplus), *TINY, "--set", "epochs=200", "--search-space", str(space)]
    process = ckrun(mlflow_store, *args, "--storage", storage, "--study-name", "c", "--no-register")

    def trial_has_a_run() -> bool:
        try:
            trials = optuna.load_study(study_name="c", storage=storage).get_trials(deepcopy=False)
        except Exception:
            return False
        return any(RUN_ID_ATTR in t.user_attrs for t in trials)

    wait_for(trial_has_a_run, "the first trial's run", process)
    time.sleep(3)  # into the fit
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)

    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and user_lines(stderr) == ["interrupted by SIGINT"], stderr[-3000:]
    runs = tracking.search_runs()
    assert sorted(runs["tags.ckrun.kind"]) == ["study", "trial"]
    assert set(runs["status"]) == {"KILLED"}
    trial = optuna.load_study(study_name="c", storage=storage).trials[0]
    assert trial.state.name == "FAIL"  # Optuna's own record of the interrupted trial


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the lost raise, on purpose
def test_a_signal_lost_inside_a_del_still_stops_training(mlflow_store: Path, tiny_ckplus: Path) -> None:
    """Python can run the handler inside a ``__del__`` during garbage collection, where its raise is
    swallowed ("Exception ignored in …"); the recorded signal stops the fit at the next batch anyway."""
    from ckrun import errors
    from ckrun.config import load_config
    from ckrun.data.loader import prepare_for_config
    from ckrun.train import train

    class Collected:
        def __del__(self) -> None:
            errors.note_signal(signal.SIGTERM)
            raise errors.Interrupted(signal.SIGTERM)  # lost: raised in a finaliser

    cfg = load_config(None, ["preset=tiny", "min_au_count=3", "epochs=50", "log_model=false"])
    data = prepare_for_config(tiny_ckplus, cfg, progress=False)
    try:
        Collected()  # the "handler" runs in its finaliser; the raise goes nowhere
        with pytest.raises(errors.Interrupted) as raised:
            train(cfg, data, run_name="lost-signal", verbose=False)
    finally:
        errors.forget_signals()
    assert raised.value.exit_code == 143
    runs = tracking.search_runs()
    assert runs["status"].tolist() == ["KILLED"] and runs["tags.ckrun.end_reason"].tolist() == ["Interrupted: SIGTERM"]
    assert "metrics.train_loss" not in runs  # stopped in its first epoch, before any curve point


def test_an_exception_garbled_by_a_signal_still_ends_the_runs_killed(mlflow_store: Path) -> None:
    """A handler's raise inside C code can reach Python as a ``SystemError`` (seen under TensorFlow's
    batch conversion): after a signal, the run and its parent end KILLED and `Interrupted` is raised."""
    from ckrun import errors

    try:
        errors.note_signal(signal.SIGINT)
        with (
            pytest.raises(errors.Interrupted) as raised,
            tracking.start_run(kind="study", run_name="parent"),
            tracking.start_run(kind="trial", run_name="child"),
        ):
            raise SystemError("Objects/listobject.c:338: bad argument to internal function")
    finally:
        errors.forget_signals()
    assert raised.value.exit_code == 130 and isinstance(raised.value.__cause__, SystemError)
    runs = tracking.search_runs()
    assert runs["status"].tolist() == ["KILLED", "KILLED"]
    assert set(runs["tags.ckrun.end_reason"]) == {"Interrupted: SIGINT"}

    # Without a signal, the same exception fails the run.
    with pytest.raises(SystemError), tracking.start_run(kind="train", run_name="plain"):
        raise SystemError("a real bug")
    assert tracking.search_runs()["status"].tolist().count("FAILED") == 1


def test_during_a_fit_the_handler_only_records_the_signal_and_it_is_raised_after() -> None:
    """An exception raised asynchronously inside TensorFlow's C++ code comes out garbled (seen:
    ``SystemError ... returned a result with an exception set`` with a printed traceback), so
    during a fit the handler records the signal and `StopOnSignal` or the fit's end raises it."""
    from ckrun import errors
    from ckrun.cli.common import _signals_raise_interrupted

    reached = []
    with _signals_raise_interrupted(), pytest.raises(errors.Interrupted) as raised, errors.deferred_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        reached.append(True)  # the handler ran and returned: nothing was raised inside the "fit"
    assert reached and raised.value.exit_code == 143
    with _signals_raise_interrupted(), pytest.raises(errors.Interrupted):  # outside a fit: raised at once
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        reached.append(False)
    assert reached == [True]
