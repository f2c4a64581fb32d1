"""Where a study lives: SQLite beside mlflow.db, any RDB URL (PostgreSQL, MySQL), or a journal file.

A storage URL may hold a database password. It is resolved once into a `StorageSpec` whose
`label` is the only form ever printed, tagged or logged, and driver messages are scrubbed of
the password before they reach an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np
import optuna

from ckrun import tracking
from ckrun.errors import CkrunError, ConfigError
from ckrun.tune.liveness import RetryStaleTrial

if TYPE_CHECKING:
    from optuna.storages import BaseStorage


@dataclass(frozen=True)
class StorageSpec:
    url: str  # may hold a password: never log or print it; use `label`
    kind: str  # sqlite | postgresql | mysql | journal | ...
    label: str  # safe to print, tag and log

    @property
    def is_journal(self) -> bool:
        return self.kind == "journal"


def default_storage_url() -> str:
    """``sqlite:///optuna.db`` beside a local ``mlflow.db`` (or in the working directory)."""
    uri = tracking.configure()
    folder = Path(uri.removeprefix("sqlite:///")).resolve().parent if uri.startswith("sqlite:///") else Path.cwd()
    return f"sqlite:///{folder / 'optuna.db'}"


def _safe_label(url: str) -> str:
    return tracking.redact_uri(url.split("?", 1)[0])


def resolve_storage(storage: str | None) -> StorageSpec:
    """``--storage`` (or ``$CKRUN_STORAGE``) to a spec; journal files as ``journal:///path`` or ``*.log``."""
    url = (storage or os.environ.get("CKRUN_STORAGE") or "").strip() or default_storage_url()
    if url.startswith("journal://"):
        path = url.removeprefix("journal://")
        return StorageSpec(str(Path(path).expanduser()), "journal", f"journal://{path}")
    if "://" not in url:
        if url.endswith((".log", ".journal")):
            return StorageSpec(str(Path(url).expanduser()), "journal", f"journal://{url}")
        raise ConfigError(
            f"--storage {url!r}: expected an Optuna storage URL (sqlite:///optuna.db, postgresql://user@host/db), "
            "journal:///path/file.log, or a path ending in .log/.journal"
        )
    kind = url.split("://", 1)[0].split("+", 1)[0]
    return StorageSpec(url, kind, _safe_label(url))


def open_storage(
    spec: StorageSpec, *, heartbeat_interval: int = 60, grace_period: int = 180, max_retry: int = 2
) -> BaseStorage:
    """An Optuna storage; RDB storages get heartbeats so a crashed worker's trial is failed and retried."""
    if spec.is_journal:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        _make_folder(Path(spec.url).parent, spec)
        refuse_foreign_journal(Path(spec.url), spec)
        return JournalStorage(JournalFileBackend(spec.url))
    if spec.kind == "sqlite" and spec.url.startswith("sqlite:///"):
        path = Path(spec.url.removeprefix("sqlite:///").split("?", 1)[0])
        _make_folder(path.parent, spec)
        refuse_foreign_database(path, spec)
    engine = {"connect_args": {"timeout": 60}} if spec.kind == "sqlite" else {"pool_pre_ping": True}
    for attempt in range(4):
        try:
            with warnings.catch_warnings():  # heartbeats and the retry callback are "experimental" since Optuna 2.8
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    spec.url,
                    engine_kwargs=engine,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=RetryStaleTrial(max_retry),
                )
        except ImportError as exc:
            raise CkrunError(missing_driver(spec, exc)) from None
        except Exception as exc:  # workers starting together race to create the tables: retry
            if attempt == 3:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise CkrunError(f"cannot open Optuna storage {spec.label}: {_scrub(first, spec.url)}") from None
            time.sleep(0.5 + np.random.default_rng().random() * 1.5)
    raise AssertionError("unreachable")


def refuse_foreign_database(path: Path, spec: StorageSpec) -> None:
    """Refuse a SQLite file that holds tables but no Optuna study storage.

    Optuna adds its dozen tables to whatever database it is given and only then finds the
    schema foreign: ``--storage sqlite:///mlflow.db`` wrote into the MLflow store and then
    failed with a message about upgrading Optuna.
    """
    what = foreign_database(path)
    if what:
        raise CkrunError(
            f"--storage {spec.label}: {path} is {what}, and Optuna would add its tables to it; "
            f"give the study a file of its own, e.g. sqlite:///{path.parent / 'optuna.db'}"
        )


def refuse_foreign_journal(path: Path, spec: StorageSpec) -> None:
    """Refuse a file that is not an Optuna journal: the journal backend parses every line as a
    journal entry, so a user's notes.log failed with a bare JSONDecodeError naming no file."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb") as file:
        first = file.readline(1 << 16)
    try:
        entry = json.loads(first)
    except ValueError:
        entry = None
    if not isinstance(entry, dict) or "op_code" not in entry:
        raise CkrunError(
            f"--storage {spec.label}: {path} is not an Optuna journal (its first line is no journal entry); "
            f"give the study a file of its own, e.g. {path.with_name('optuna-journal.log')}"
        )


def foreign_database(path: Path) -> str | None:
    """What `path` is when it is a SQLite database with tables but no Optuna ones; None otherwise."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        return None  # not a database at all: Optuna says so, and writes nothing
    if not tables or "studies" in tables:
        return None
    return "the MLflow store" if {"experiments", "runs"} <= tables else "a database without Optuna's tables"


def _make_folder(folder: Path, spec: StorageSpec) -> None:
    """The storage file's folder, or a one-line error naming the storage (not a bare OSError)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileExistsError | NotADirectoryError):
            reason = "a file is in the way of the folder"
        raise CkrunError(f"cannot open Optuna storage {spec.label}: cannot create {folder}: {reason}") from None


def missing_driver(spec: StorageSpec, exc: ImportError) -> str:
    """Which package to install for the storage's database driver."""
    module = exc.name or str(exc)
    if spec.kind == "postgresql":
        driver = spec.url.split("://", 1)[0].partition("+")[2] or "psycopg"
        if driver == "psycopg":
            return (
                f"storage {spec.label} needs the PostgreSQL driver psycopg 3 ({module} is missing): "
                "pip install 'ckrun[postgres]'"
            )
        return (
            f"storage {spec.label} asks for the driver {driver} ({module} is missing): install it, or write "
            "postgresql:// to use psycopg 3 from pip install 'ckrun[postgres]'"
        )
    return f"storage {spec.label} needs a database driver that is not installed: {module}"


def _scrub(text: str, url: str) -> str:
    """Remove the storage URL's password from a message (drivers sometimes echo it)."""
    with contextlib.suppress(ValueError):
        password = urlsplit(url).password
        if password:
            text = text.replace(password, "***")
    return text
