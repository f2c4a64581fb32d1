"""`ckrun ui`: the MLflow UI on the project's tracking store, local-only unless asked.

Runs, trials and baselines share metric and param names, so selecting them in the UI and
pressing Compare lines them up side by side. The server binds to 127.0.0.1 by default: an
MLflow server has no authentication, and anyone who can reach it can read and delete runs.
Only an explicit ``--host`` exposes it.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from ckrun import tracking
from ckrun.console import echo, warn
from ckrun.errors import CkrunError

LOOPBACK = "127.0.0.1"


def artifact_destination(uri: str) -> str:
    """``mlartifacts/`` beside a sqlite store (where runs write), else ``./mlartifacts``."""
    return tracking.local_artifact_root(uri) or Path("mlartifacts").resolve().as_uri()


def ui_command(uri: str, *, host: str = LOOPBACK, port: int = 5000, workers: int = 1) -> list[str]:
    """The ``mlflow server`` command line (the same mlflow as this Python), without starting it.

    MLflow 3's security middleware already accepts Host headers and CORS origins for
    localhost/127.0.0.1 and private addresses, so no ``--allowed-hosts`` is needed locally.
    One worker by default, not MLflow's four: each worker is a process that imports all of
    MLflow (about 15 CPU seconds and 300 MB each), and one person's browser is served well by
    one worker's request threads.
    """
    artifacts = artifact_destination(uri)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--default-artifact-root",
        artifacts,
        "--artifacts-destination",
        artifacts,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    return command


def ui_address(host: str, port: int) -> str:
    shown = "localhost" if host in (LOOPBACK, "localhost", "0.0.0.0", "::") else host
    return f"http://{shown}:{port}"


def experiment_url(address: str, experiment_id: str) -> str:
    """The experiment's run table in MLflow 3's "Model training" view (it opens on GenAI otherwise)."""
    return f"{address}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def compare_url(address: str, experiment_id: str, run_ids: list[str]) -> str:
    """The Compare view of `run_ids`, what the UI opens after selecting runs and pressing Compare."""
    runs = ",".join(f'"{r}"' for r in run_ids)
    return f'{address}/#/compare-runs?runs=[{runs}]&experiments=["{experiment_id}"]&workflowType=machine_learning'


def server_env(uri: str) -> dict[str, str]:
    """The server's environment: our store, and no GenAI job runner (a second process ckrun never uses)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return env


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _interrupt_on_sigterm() -> Any:
    """SIGTERM (e.g. from a service manager) stops the server like Ctrl-C, not orphaning it."""

    def handler(signum: int, frame: Any) -> None:
        from ckrun.errors import Interrupted

        raise Interrupted(signum)  # a KeyboardInterrupt that exits 143, not 130

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


def check_listenable(host: str, port: int) -> None:
    """Refuse a --host/--port the server cannot listen on before starting it.

    MLflow's server prints an unresolvable host's error among its log lines and exits with
    status 0, so ckrun said nothing and exited 0 too; a port in use is named here as well.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise CkrunError(f"--host {host}: not an address this machine can listen on ({exc})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is no clash
        try:
            probe.bind(address)
        except OSError as exc:
            raise CkrunError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def point_at_server(uri: str) -> None:
    """A tracking server serves its own UI: say where, with the default experiment's runs."""
    address = uri.rstrip("/")
    echo(
        f"{tracking.redact_uri(address)} is an MLflow tracking server: open {tracking.redact_uri(address)} in a browser"
    )
    experiment = tracking.experiment_id_by_name(os.environ.get("MLFLOW_EXPERIMENT_NAME") or tracking.DEFAULT_EXPERIMENT)
    if experiment is not None:
        echo(f"runs of the default experiment: {tracking.redact_uri(experiment_url(address, experiment))}")


def serve_ui(*, host: str = LOOPBACK, port: int = 5000, tracking_uri: str | None = None, workers: int = 1) -> None:
    """Start the MLflow UI on ``$MLFLOW_TRACKING_URI`` (default sqlite:///mlflow.db) until Ctrl-C.

    `tracking_uri` overrides the environment. A tracking server (``http://…``) already serves
    the UI, so nothing is started: the address to open is printed.
    """
    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    uri = tracking.configure()
    if is_server(uri):
        point_at_server(uri)
        return
    # Before announcing an address the server would never serve.
    tracking.check_store(writes=False, source="--tracking-uri" if tracking_uri else "$MLFLOW_TRACKING_URI")
    check_listenable(host, port)
    if not _is_loopback(host):
        warn(f"binding to {host}: the MLflow UI has no login; anyone on that network can read and delete runs")
    address = ui_address(host, port)
    echo(f"MLflow UI for {tracking.redact_uri(uri)} at {address} (Ctrl-C to stop)")
    experiment = tracking.experiment_id_by_name(os.environ.get("MLFLOW_EXPERIMENT_NAME") or tracking.DEFAULT_EXPERIMENT)
    if experiment is not None:
        echo(f"runs of the default experiment: {experiment_url(address, experiment)}")
    process = subprocess.Popen(ui_command(uri, host=host, port=port, workers=workers), env=server_env(uri))
    previous = _interrupt_on_sigterm()
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if code:
        raise CkrunError(f"mlflow server exited with status {code} (is port {port} already in use?)")
