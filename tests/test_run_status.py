"""Every run ends with an honest status, whenever the interruption or failure comes.

In-process and fast: the CLI's signal handler is installed around a run, and a signal is
sent at the moments between ckrun's code and MLflow's (while the run is created, while it
is ended) that a Ctrl-C can hit as well as any other.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pytest

from ckrun import errors, tracking
from ckrun.cli.common import _signals_raise_interrupted


def _signal_inside(monkeypatch: pytest.MonkeyPatch, name: str, *, after_call: bool) -> list[bool]:
    """Send SIGTERM from inside `mlflow.<name>` (before or after the real call), once; the list records it."""
    real: Callable[..., Any] = getattr(mlflow, name)
    sent: list[bool] = []

    def with_signal(*args: Any, **kwargs: Any) -> Any:
        if not after_call and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        result = real(*args, **kwargs)
        if after_call and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(mlflow, name, with_signal)
    return sent


def _statuses() -> dict[str, tuple[str, str | None]]:
    runs = tracking.search_runs()
    reasons = runs.get("tags.ckrun.end_reason", [None] * len(runs))
    return {
        name: (status, reason if isinstance(reason, str) else None)
        for name, status, reason in zip(runs["tags.mlflow.runName"], runs["status"], reasons, strict=True)
    }


def test_a_signal_while_the_run_is_created_ends_it_killed(mlflow_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _signal_inside(monkeypatch, "start_run", after_call=True)
    body = []
    with (
        _signals_raise_interrupted(),
        pytest.raises(errors.Interrupted) as raised,
        tracking.start_run(kind="train", run_name="just-created"),
    ):
        body.append(True)
    assert sent and not body and raised.value.exit_code == 143
    assert _statuses() == {"just-created": ("KILLED", "Interrupted: SIGTERM")}


def test_a_signal_while_a_trial_is_created_ends_it_and_its_study_killed(
    mlflow_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        _signals_raise_interrupted(),
        pytest.raises(errors.Interrupted),
        tracking.start_run(kind="study", run_name="study"),
    ):
        _signal_inside(monkeypatch, "start_run", after_call=True)
        with tracking.start_run(kind="trial", run_name="trial-0"):
            pass
    assert mlflow.active_run() is None
    assert _statuses() == {
        "study": ("KILLED", "Interrupted: SIGTERM"),
        "trial-0": ("KILLED", "Interrupted: SIGTERM"),
    }


def test_a_signal_while_a_finished_run_is_ended_still_records_it_then_stops(
    mlflow_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _signal_inside(monkeypatch, "end_run", after_call=False)
    with (
        _signals_raise_interrupted(),
        pytest.raises(errors.Interrupted) as raised,
        tracking.start_run(kind="train", run_name="done"),
    ):
        tracking.log_metrics({"objective": 0.5})
    assert sent and raised.value.exit_code == 143
    assert _statuses() == {"done": ("FINISHED", None)}  # its work was all done and logged


def test_a_signal_while_a_failed_run_is_ended_still_records_it_failed(
    mlflow_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _signal_inside(monkeypatch, "end_run", after_call=False)
    with (
        _signals_raise_interrupted(),
        pytest.raises(RuntimeError, match="a bug"),
        tracking.start_run(kind="train", run_name="broken"),
    ):
        raise RuntimeError("a bug in the scoring")
    assert sent
    assert _statuses() == {"broken": ("FAILED", None)}
    assert tracking.search_runs()["tags.ckrun.error"].tolist() == ["RuntimeError: a bug in the scoring"]
