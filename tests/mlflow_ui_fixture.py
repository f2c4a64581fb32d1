"""An MLflow UI started the way users start it (`ckrun ui`), over a temp store with two tiny runs.

The runs are logged directly through `ckrun.tracking` (no training: the UI only needs names,
params and metrics), with the names and metric keys real runs use, so the browser test
checks what a user would see after `ckrun train` and `ckrun baseline`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

TRAIN_RUN = "train-20260101-120000"
BASELINE_RUN = "baseline"
EXPERIMENT = "ui-check"


@dataclass
class UiServer:
    url: str
    port: int
    store: Path
    experiment_id: str
    run_ids: dict[str, str]
    process: subprocess.Popen
    log: Path
    stdout: list[str] = field(default_factory=list)

    def stop(self) -> None:
        """Stop `ckrun ui` and the mlflow server it started (their own process group, nothing else)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_two_runs(store: Path) -> tuple[str, dict[str, str]]:
    """A train run and a baseline with the documented MLflow names, logged into `store`."""
    from ckrun import tracking

    saved = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}/mlflow.db"
    try:
        return _log(store)
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved
        tracking.configure()


def _log(store: Path) -> tuple[str, dict[str, str]]:
    from ckrun import tracking

    ids = {}
    for name, kind, metrics in (
        (TRAIN_RUN, "train", {"val_emotion_f1": 0.71, "test_au_f1": 0.52, "val_au_f1": 0.48, "objective": 0.595}),
        (BASELINE_RUN, "baseline", {"val_emotion_f1": 0.44, "test_au_f1": 0.31, "val_au_f1": 0.30, "objective": 0.37}),
    ):
        with tracking.start_run(kind=kind, run_name=name, experiment=EXPERIMENT, description=f"tiny {kind} run") as run:
            tracking.log_params({"l2": 1e-4, "learning_rate": 1e-3, "epochs": 2, "data_digest": "abc123"})
            tracking.log_metrics(metrics, step=tracking.final_metric_step(2))
            tracking.set_tags({"fit_diagnosis": "balanced"})
            ids[name] = run.run_id
        experiment_id = run.experiment_id
    return experiment_id, ids


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start_ui(store: Path, *, timeout: float = 180.0) -> UiServer:
    """`python -m ckrun.cli ui --port P` in `store`, waited on until /health answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    experiment_id, run_ids = log_two_runs(store)
    env.update(MLFLOW_TRACKING_URI=f"sqlite:///{store}/mlflow.db", MLFLOW_EXPERIMENT_NAME=EXPERIMENT)
    port = free_port()
    log = store / "ui.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ckrun.cli", "ui", "--port", str(port)],
            cwd=store,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one process group: stop() ends the server with it
        )
    server = UiServer(f"http://127.0.0.1:{port}", port, store, experiment_id, run_ids, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"`ckrun ui` exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if _healthy(server.url):
            return server
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"`ckrun ui` did not answer on {server.url} within {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def listening_addresses(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses with a LISTEN socket on `port`, from /proc/net/tcp{,6}."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        path = Path(table)
        if not path.is_file():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if int(port_hex, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                found.add(_decode(address, width))
    return found


def _decode(hex_address: str, width: int) -> str:
    if width == 8:
        return socket.inet_ntop(socket.AF_INET, bytes.fromhex(hex_address)[::-1])
    raw = bytes.fromhex(hex_address)
    return socket.inet_ntop(socket.AF_INET6, b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))
