"""A full disk under the tracking store: one line naming the store, and the run still ends FAILED.

The real thing needs a tiny filesystem: a 2 MiB tmpfs mounted for the test when it runs as
root with `mount` available (the sqlite store alone takes ~1 MiB, so the run starts and the
disk fills while it logs its model). Elsewhere (CI without root) the same failure is raised
where MLflow copies the model into the artifact store: an OSError ENOSPC naming a file in it.
Either way the test runs and says which it used; it is never skipped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from ckrun.cli import cli
from ckrun.errors import StoreWriteError
from ckrun.tracking import faults


@contextlib.contextmanager
def tiny_filesystem(folder: Path, size: str = "2m") -> Iterator[bool]:
    """A tmpfs of `size` at `folder` when this process may mount one; yields whether it did."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = False
    if os.geteuid() == 0 and shutil.which("mount"):
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
        mounted = done.returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def _enospc_in_the_artifact_store(monkeypatch: pytest.MonkeyPatch, store: Path) -> None:
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    real = LocalArtifactRepository.log_artifacts

    def full(self: LocalArtifactRepository, local_dir: str, artifact_path: str | None = None) -> None:
        if Path(local_dir, "MLmodel").exists():  # the first model: the disk is full by now
            target = Path(self.artifact_dir, artifact_path or "", "model.keras")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
        real(self, local_dir, artifact_path)

    monkeypatch.setattr(LocalArtifactRepository, "log_artifacts", full)


@pytest.mark.slow
def test_a_full_disk_fails_the_run_in_one_line(
    tmp_path: Path, tiny_ckplus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 2: 886 lines of output, 22 tracebacks, and the run left RUNNING."""
    store = tmp_path / "store"
    with tiny_filesystem(store) as mounted:
        print("full disk:", "a 2 MiB tmpfs" if mounted else "OSError(ENOSPC) raised in the artifact store (no mount)")
        if not mounted:
            _enospc_in_the_artifact_store(monkeypatch, store)
        monkeypatch.chdir(store)
        uri = f"sqlite:///{store}/mlflow.db"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        result = CliRunner().invoke(
            cli,
            ["train", "--data", str(tiny_ckplus), "--set", "preset=tiny", "--set", "epochs=1", "--run-name", "full"],
        )
        runs = MlflowClient(uri).search_runs([e.experiment_id for e in MlflowClient(uri).search_experiments()])
        reserves = list(store.glob(".mlflow.db.ckrun-reserve-*"))

    assert result.exit_code == 1, result.output[-3000:]
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [f"error: cannot write to the MLflow store {uri} (artifacts in {store / 'mlartifacts'}): "
                      f"{os.strerror(errno.ENOSPC)}"], result.stderr[-3000:]  # fmt: skip
    said = [ln for ln in re.split(r"[\r\n]", result.stderr) if ln.strip() and not re.search(r"\d+%\|", ln)]
    assert "Traceback" not in result.output and said == errors, said
    assert [(r.info.run_name, r.info.status) for r in runs] == [("full", "FAILED")]
    assert "ckrun.error" in runs[0].data.tags and "val_loss" in runs[0].data.metrics  # what was logged is kept
    assert reserves == []  # the room kept for ending the run was given back


def test_store_problems_are_told_apart_from_other_files(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    artifacts = (tmp_path / "mlartifacts").as_uri()
    in_store = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "mlartifacts" / "m" / "model.keras"))
    elsewhere = OSError(errno.ENOSPC, "No space left on device", "/var/tmp/keras-save/model.keras")
    assert faults.store_write_problem(in_store, uri, artifacts) == (
        f"cannot write to the MLflow store {uri} (artifacts in {tmp_path / 'mlartifacts'}): No space left on device"
    )
    assert faults.store_write_problem(elsewhere, uri, artifacts) is None
    try:  # how MLflow reports sqlite failing: three layers, the cause at the bottom
        try:
            raise RuntimeError("(sqlite3.OperationalError) database or disk is full")
        except RuntimeError as inner:
            raise ValueError("MlflowException: could not log") from inner
    except ValueError as outer:
        assert "No space left on device" in (faults.store_write_problem(outer, uri, artifacts) or "")
    assert faults.store_write_problem(RuntimeError("attempt to write a readonly database"), uri, None) == (
        f"cannot write to the MLflow store {uri}: the database is read-only"
    )
    assert faults.store_write_problem(KeyError("anything else"), uri, artifacts) is None
    assert issubclass(StoreWriteError, Exception)


def test_the_space_reserve_is_held_released_and_cleaned_after_a_dead_process(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    left_over = tmp_path / f".mlflow.db.ckrun-reserve-{os.uname().nodename}-{_dead_pid()}"
    left_over.write_bytes(b"\0" * 10)
    reserve = faults.SpaceReserve()
    reserve.hold(uri)
    assert reserve.path is not None and reserve.path.stat().st_size == faults.RESERVE_BYTES
    assert not left_over.exists()  # a killed process's reserve is removed by the next one
    assert reserve.release() and reserve.path is None and not list(tmp_path.glob(".mlflow.db.ckrun-reserve-*"))
    assert not reserve.release()
    faults.SpaceReserve().hold("http://127.0.0.1:5000")  # a server keeps its own disk: nothing to hold
    assert not list(tmp_path.glob(".*reserve*"))


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
