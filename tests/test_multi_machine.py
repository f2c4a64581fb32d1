"""Tuning across machines that share nothing but two servers: PostgreSQL and an MLflow tracking server.

The set-up the README documents under "Tuning on several machines", for real: a PostgreSQL
server holds the MLflow store and the Optuna study (two databases), `mlflow server
--serve-artifacts` is the only way to MLflow, and two `ckrun tune` workers run each in its
own empty folder (own copy of the data, own cache) with ``MLFLOW_TRACKING_URI=http://…``.
Where the test may (root, `unshare`), each worker also gets its own host name, so the
workers judge each other as separate machines do: by silence, not by process id.

One worker is killed with SIGKILL in the middle of a trial; the other finishes the study
(the killed trial failed, retried and counted once). A resume from a third folder leaves no
run RUNNING, and the champion registered through the server predicts from a fourth, empty
folder via ``models:/ckplus-resnet@champion``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from postgres_server import PASSWORD, PostgresServer, free_port

from ckrun.cli import cli
from ckrun.tune import RUN_ID_ATTR, counted_trials
from ckrun.tune.attrs import WORKER_ATTR

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

MAX_TRIALS = 3
TUNE = [
    "--study-name", "multi", "--experiment", "multi", "--max-trials", str(MAX_TRIALS), "--pruner", "none",
    "--heartbeat", "1", "--grace-period", "30",
    "--set", "preset=tiny", "--set", "image_size=32", "--set", "min_au_count=3", "--set", "epochs=2",
    "--set", "explain_images_per_class=0",
]  # fmt: skip


@pytest.fixture(scope="module")
def tracking_server(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on PostgreSQL with proxied artifacts, on a free loopback port."""
    backend = postgres.create_database("mlflow_multi")
    artifacts = tmp_path_factory.mktemp("server") / "artifacts"
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = (artifacts.parent / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            backend,
            "--artifacts-destination",
            str(artifacts),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=artifacts.parent,
    )
    address = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        assert server.poll() is None, (artifacts.parent / "server.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{address}/health", timeout=5) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "mlflow server did not answer"
        time.sleep(0.5)
    yield address
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


def machine(tmp: Path, name: str, data: Path | None = None) -> Path:
    """An empty folder standing for one machine, with its own copy of the data when given."""
    home = tmp / name
    home.mkdir()
    if data is not None:
        shutil.copytree(data, home / "CK+")
        (home / "space.yaml").write_text("params:\n  l2: {low: 1.0e-5, high: 1.0e-1, log: true}\n")
    return home


def on_machine(home: Path, server: str, *argv: str, host: str | None = None, **popen: object) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CKRUN_"))}
    env.update(MLFLOW_TRACKING_URI=server, CKRUN_CACHE=str(home / "cache"), PYTHONPATH=os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, "-m", "ckrun.cli", *argv]
    if host and _can_rename_host():
        command = ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$0" "$@"', *command]
    return subprocess.Popen(command, cwd=home, env=env, text=True, **popen)  # type: ignore[call-overload]


def _can_rename_host() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--uts", "hostname", "probe"], capture_output=True).returncode == 0


def test_workers_on_two_machines_survive_a_sigkill_and_the_champion_serves_anywhere(
    postgres: PostgresServer, tracking_server: str, tiny_ckplus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = postgres.create_database("optuna_multi")
    start = time.perf_counter()
    homes = [machine(tmp_path, name, tiny_ckplus) for name in ("machine-a", "machine-b")]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
    tune = ["tune", "--data", "CK+", "--search-space", "space.yaml", "--storage", storage, *TUNE]
    workers = [*tune, "--no-register"]  # the resume registers the champion, once
    victim = on_machine(homes[0], tracking_server, *workers, "--n-trials", "3", host="a", **pipes)
    survivor = on_machine(homes[1], tracking_server, *workers, "--n-trials", "4", host="b", **pipes)

    def victims_trial() -> optuna.trial.FrozenTrial | None:
        try:
            trials = optuna.load_study(study_name="multi", storage=storage).get_trials(deepcopy=False)
        except Exception:
            return None
        mine = f":{victim.pid}:"
        return next(
            (t for t in trials if RUN_ID_ATTR in t.user_attrs and mine in str(t.user_attrs.get(WORKER_ATTR))), None
        )

    deadline = time.monotonic() + 600
    while victims_trial() is None:
        assert victim.poll() is None, victim.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the first worker never started a trial"
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)  # its run has started: the trial is mid-way
    victim.wait()
    out, _ = survivor.communicate(timeout=900)
    assert survivor.returncode == 0, out[-4000:]

    # A resume from a third machine: nothing left RUNNING, the champion registered through the server.
    resume = on_machine(machine(tmp_path, "machine-c", tiny_ckplus), tracking_server, *tune, "--n-trials", "1", **pipes)
    resumed, _ = resume.communicate(timeout=600)
    assert resume.returncode == 0, resumed[-4000:]
    assert "as models:/ckplus-resnet@champion" in resumed
    elapsed = time.perf_counter() - start

    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name("multi")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    study = optuna.load_study(study_name="multi", storage=storage)
    trials = study.get_trials()
    killed = [t for t in trials if t.state.name == "FAIL"]
    told = [(t.number, t.state.name, t.user_attrs, t.system_attrs) for t in trials], out[-3000:], resumed[-2000:]
    assert len(killed) == 1 and counted_trials(trials) == MAX_TRIALS, told
    assert all(t.state.name == "COMPLETE" for t in trials if t is not killed[0])
    assert any(t.system_attrs.get("failed_trial") == killed[0].number for t in trials)  # retried
    stale = client.get_run(killed[0].user_attrs[RUN_ID_ATTR])
    assert stale.info.status == "KILLED" and stale.data.tags.get("ckrun.retried_as")
    parents = [r for r in runs if r.data.tags.get("ckrun.kind") == "study"]
    dead_parent = [r for r in parents if r.data.tags["ckrun.worker"].endswith(f":{victim.pid}")]
    assert len(parents) == 3 and [r.info.status for r in dead_parent] == ["KILLED"]
    assert "lost" in dead_parent[0].data.tags["ckrun.end_reason"]
    assert all(PASSWORD not in r.data.tags.get("ckrun.storage", "") for r in parents)
    assert PASSWORD not in out + resumed
    assert "warning" not in out + resumed  # the same study settings everywhere: nothing to warn about

    # The champion, registered through the server, from an empty folder on yet another machine.
    image = next((tiny_ckplus / "cohn-kanade-images").rglob("*.png"))
    user = machine(tmp_path, "laptop")
    shutil.copy(image, user / "face.png")
    predict = on_machine(user, tracking_server, "predict", "models:/ckplus-resnet@champion", "face.png", **pipes)
    answer, _ = predict.communicate(timeout=300)
    assert predict.returncode == 0, answer[-3000:]
    table = json.loads(answer[answer.index("[") :])
    assert table[0]["emotion"] in ("negative", "positive", "surprise") and [p.name for p in user.iterdir()] == [
        "face.png"
    ]

    print(f"multi-machine tuning: two workers, a SIGKILL, a resume and a prediction in {elapsed:.0f}s")

    # `ckrun ui` on a server points at the server's own UI.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)  # restored after the test; ui sets it too
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "multi")
    shown = CliRunner().invoke(cli, ["ui", "--tracking-uri", tracking_server])
    link = f"{tracking_server}/#/experiments/{experiment.experiment_id}/runs"
    assert shown.exit_code == 0 and f"open {tracking_server} in a browser" in shown.output and link in shown.output
