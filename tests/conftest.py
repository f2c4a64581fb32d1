"""Shared fixtures: tiny synthetic CK+ sets generated once per session, and isolated stores.

Every test that logs to MLflow gets its own sqlite store and artifact folder under
tmp_path (via `mlflow_store`), and CKRUN_CACHE points at a temporary folder so nothing
touches the user's cache or the working tree.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Test modules may import keras before ckrun, whose import sets this too: with oneDNN on,
# TF 2.21 segfaults training the pretrained network.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

TINY_SUBJECTS = 6


def _shared_synthetic_set(tmp_path_factory: pytest.TempPathFactory, name: str, **options: str) -> Path:
    """A tiny synthetic CK+ tree generated once per test session, by whichever xdist worker asks first.

    Under pytest-xdist each worker has its own base temp folder inside one per-session parent;
    the set goes there, behind a lock, so two workers do not each spend ~10 CPU s making the
    same bytes. Tests only read these trees.
    """
    from ckrun.data.synth import generate_synthetic_ckplus

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    home = shared / f"shared_{name}"
    with open(shared / f"shared_{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (home / "complete").is_file():
            shutil.rmtree(home, ignore_errors=True)  # a worker that died half-way
            generate_synthetic_ckplus(home / "CK+", subjects=TINY_SUBJECTS, seed=0, progress=False, **options)
            (home / "complete").touch()
    return home / "CK+"


@pytest.fixture(scope="session")
def tiny_ckplus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-subject synthetic CK+ tree in the official layout (generated once, ~10 s)."""
    return _shared_synthetic_set(tmp_path_factory, "tiny_ckplus")


@pytest.fixture(scope="session")
def tiny_ckplus_easy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same 6 subjects at the `easy` difficulty: for tests that need a tiny model to learn.

    On the realistic default a 6-subject set is too hard for the tiny preset to fit or overfit
    in a few epochs, so tests that assert a fit diagnosis train on this one.
    """
    return _shared_synthetic_set(tmp_path_factory, "tiny_ckplus_easy", difficulty="easy")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CKRUN_CACHE", str(tmp_path_factory.getbasetemp() / "ckrun-cache"))


_STORE_TEMPLATE: list[Path] = []  # set by the `_store_template_home` fixture


@pytest.fixture(scope="session", autouse=True)
def _store_template_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    _STORE_TEMPLATE.append(tmp_path_factory.getbasetemp() / "empty-mlflow-store" / "mlflow.db")


def _empty_store() -> Path:
    """An empty, fully migrated MLflow sqlite store, made once per worker on first use.

    MLflow creates a new sqlite store by running its ~50 schema migrations: ~4 CPU s each
    time, ~150 CPU s over the suite, which gives each test a fresh store. A copy of one
    migrated store is the same empty store at 0.05 s.
    """
    template = _STORE_TEMPLATE[0]
    if not template.is_file():
        from mlflow.tracking import MlflowClient

        template.parent.mkdir(parents=True, exist_ok=True)
        made = template.with_name("making.db")
        MlflowClient(f"sqlite:///{made}").search_experiments()  # creates and migrates it
        made.rename(template)
    return template


def empty_store_in(root: Path) -> None:
    """``root/mlflow.db``, when missing, as a copy of the empty store: its Default experiment's
    artifact folder where a new store in `root` would put it."""
    if (root / "mlflow.db").exists():
        return
    shutil.copyfile(_empty_store(), root / "mlflow.db")
    with contextlib.closing(sqlite3.connect(root / "mlflow.db")) as db, db:
        default = str(root / "mlruns" / "0")
        db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", (default,))


def use_store(mp: pytest.MonkeyPatch, root: Path, *, bare: bool = False) -> Path:
    """Point MLflow at a sqlite store in `root`, with the cwd there so mlartifacts/ lands too.

    The store is a copy of an empty migrated one (`empty_store_in`); ``bare=True`` leaves
    `root` empty, for tests that check a command created no store at all.
    """
    if not bare:
        empty_store_in(root)
    mp.chdir(root)
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        mp.delenv(var, raising=False)
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Path]:
    """One MLflow store for a test module's end-to-end runs (trained once, read by several tests)."""
    root = tmp_path_factory.mktemp(f"{request.module.__name__.removeprefix('test_')}_store")
    with pytest.MonkeyPatch.context() as mp:
        use_store(mp, root)
        yield root


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLflow sqlite store in tmp_path (function scope)."""
    return use_store(monkeypatch, tmp_path)


@pytest.fixture
def bare_mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MLflow pointed at a sqlite store in tmp_path that does not exist yet."""
    return use_store(monkeypatch, tmp_path, bare=True)


@pytest.fixture(scope="session")
def mlflow_ui(tmp_path_factory: pytest.TempPathFactory):
    """`ckrun ui` on a loopback port over a temp store with two tiny runs (shared: a start costs ~10-40 s)."""
    from mlflow_ui_fixture import start_ui

    store = tmp_path_factory.mktemp("mlflow_ui")
    empty_store_in(store)
    server = start_ui(store)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL server (installed with apt when missing); tests create their own databases."""
    from postgres_server import running_postgres

    with running_postgres() as server:
        yield server


# The longest files first (by measured wall time per file, heaviest first): `make test` gives each
# xdist worker whole files (--dist loadfile) in collection order (--no-loadscope-reorder; xdist
# would otherwise order files by their number of tests, which put the one-test multi-machine and
# main-job files last and left one worker idle for minutes at the end).
LONG_FILES = (
    "test_multi_machine.py",
    "test_report.py",
    "test_main_job.py",
    "test_mlproject.py",
    "test_tune.py",
    "test_recipe_runs.py",
    "test_crashed_workers.py",
    "test_signals.py",
    "test_postgres_workers.py",
    "test_bad_input.py",
    "test_train.py",
    "test_scale_out.py",
    "test_browser.py",
    "test_pruners.py",
    "test_val_only.py",
    "test_reference.py",
    "test_recipe_fit.py",
    "test_disk_full.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))  # stable: file order kept otherwise
