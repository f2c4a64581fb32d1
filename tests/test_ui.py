"""`ckrun ui`: the MLflow server command line, and a real start that must listen on loopback only."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ckrun import ui
from ckrun.cli import cli


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_command_binds_loopback_and_serves_the_store_artifacts(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    command = ui.ui_command(uri, port=5055)
    assert command[1:4] == ["-m", "mlflow", "server"]
    assert _option(command, "--host") == "127.0.0.1"
    assert _option(command, "--port") == "5055"
    assert _option(command, "--backend-store-uri") == uri
    # Artifacts beside the db, where `ckrun train` writes them.
    assert _option(command, "--artifacts-destination") == (tmp_path / "mlartifacts").as_uri()
    assert _option(command, "--default-artifact-root") == (tmp_path / "mlartifacts").as_uri()


def test_one_server_worker_unless_asked_for_more(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _option(ui.ui_command("sqlite:///x.db"), "--workers") == "1"
    started: list[list[str]] = []

    class Server:  # stands in for the mlflow server process: records its command line, exits at once
        def __init__(self, command: list[str], env: dict[str, str]) -> None:
            started.append(command)

        def wait(self, timeout: float | None = None) -> int:
            return 0

    monkeypatch.setattr(ui.subprocess, "Popen", Server)
    monkeypatch.setattr(ui, "check_listenable", lambda host, port: None)  # port 5000 may be taken here
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///:memory:")
    for argv in (["ui"], ["ui", "--workers", "3"]):
        assert CliRunner().invoke(cli, argv).exit_code == 0
    assert [_option(c, "--workers") for c in started] == ["1", "3"]
    assert CliRunner().invoke(cli, ["ui", "--workers", "0"]).exit_code == 2


def test_cli_default_host_is_loopback_and_other_hosts_must_be_explicit() -> None:
    params = {p.name: p for p in cli.commands["ui"].params}
    assert params["host"].default == "127.0.0.1"
    assert "0.0.0.0" in CliRunner().invoke(cli, ["ui", "--help"]).output
    assert _option(ui.ui_command("sqlite:///x.db", host="0.0.0.0"), "--host") == "0.0.0.0"


def test_server_env_disables_the_genai_job_runner_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)
    assert ui.server_env("sqlite:///a.db")["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "true")
    assert ui.server_env("sqlite:///a.db")["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"


def test_urls_open_the_model_training_view() -> None:
    assert ui.experiment_url("http://localhost:5000", "3").endswith(
        "/#/experiments/3/runs?workflowType=machine_learning"
    )
    url = ui.compare_url("http://localhost:5000", "3", ["a", "b"])
    assert '#/compare-runs?runs=["a","b"]&experiments=["3"]' in url


# The real start (a server over a store with two runs) is checked in tests/test_browser.py, which
# shares that server with the browser test: one start instead of two.
