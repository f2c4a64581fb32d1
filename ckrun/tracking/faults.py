"""When the store itself fails: recognising a refused write, and keeping room to record it.

A full disk or a read-only database surfaces as a chain of MLflow, SQLAlchemy, sqlite3 and
OSError exceptions, each logged with its traceback. `store_write_problem` reads that chain
once and names the cause in one line (``cannot write to the MLflow store …: No space left on
device``); an OSError about any other file (a temporary folder, the data) is not the store's.

A run that fails because its store is full still has to be marked FAILED, and that is a
write too: sqlite needs room for its rollback journal. `SpaceReserve` keeps a small file
beside a local sqlite database for the life of a top-level run and deletes it when a write
fails, which leaves exactly the room that ending the run needs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from pathlib import Path

from ckrun.tracking.store import local_path, redact_uri, sqlite_path

RESERVE_BYTES = 256 * 1024  # far more than sqlite's journal needs to end a run and set its tags
_STORE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
_DB_MESSAGES = {
    "database or disk is full": os.strerror(errno.ENOSPC),
    "no space left on device": os.strerror(errno.ENOSPC),
    "attempt to write a readonly database": "the database is read-only",
    "unable to open database file": "cannot open the database file",
    "disk i/o error": "disk I/O error",
}


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and every exception it was raised from or during, outermost first."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 50:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
    return seen


def _inside(path: str | bytes | None, folders: list[Path]) -> bool:
    if not path:
        return False
    resolved = Path(os.fsdecode(path)).resolve()
    return any(resolved == f or f in resolved.parents for f in folders)


def store_write_problem(exc: BaseException, tracking_uri: str, artifact_uri: str | None = None) -> str | None:
    """``cannot write to the MLflow store …: <reason>`` when `exc` is the store refusing a write, else None."""
    db = sqlite_path(tracking_uri)
    artifacts = local_path(artifact_uri)
    store_folders = [f for f in (artifacts, db.parent if db else None) if f is not None]
    reason = None
    chain = _chain(exc)
    if any(type(err).__module__.startswith("optuna") for err in chain):
        return None  # the study's database, not MLflow's
    for err in chain:
        if isinstance(err, OSError) and err.errno in _STORE_ERRNOS:
            if _inside(err.filename, store_folders) or _inside(err.filename2, store_folders):
                reason = err.strerror or os.strerror(err.errno)
                break
            continue
        if isinstance(err, OSError):
            continue  # some other file (a temporary folder, the data): not the store's problem
        text = str(err).lower()
        found = next((why for needle, why in _DB_MESSAGES.items() if needle in text), None)
        if found is not None:
            reason = found
            # keep walking: an OSError further down names the exact cause of a database error
    if reason is None:
        return None
    where = redact_uri(tracking_uri) + (f" (artifacts in {artifacts})" if artifacts is not None else "")
    return f"cannot write to the MLflow store {where}: {reason}"


class SpaceReserve:
    """A small file beside a local sqlite store, given back when the store runs out of room.

    One per process, held by the outermost run. A reserve left by a process that was killed
    (same host, pid gone) is removed by the next one.
    """

    def __init__(self) -> None:
        self.path: Path | None = None

    def hold(self, tracking_uri: str) -> None:
        db = sqlite_path(tracking_uri)
        if db is None or self.path is not None or not db.parent.is_dir():
            return
        host = socket.gethostname()
        _remove_dead_reserves(db, host)
        path = db.parent / f".{db.name}.ckrun-reserve-{host}-{os.getpid()}"
        try:
            with path.open("wb") as file:
                file.write(b"\0" * RESERVE_BYTES)
                file.flush()
                os.fsync(file.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                path.unlink()
            return  # no room even for the reserve: the store's first write will say so
        self.path = path

    def release(self) -> bool:
        """Delete the reserve (True when there was one), so the next write has room."""
        path, self.path = self.path, None
        if path is None:
            return False
        with contextlib.suppress(OSError):
            path.unlink()
        return True


def _remove_dead_reserves(db: Path, host: str) -> None:
    for stale in db.parent.glob(f".{db.name}.ckrun-reserve-{host}-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                stale.unlink()


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (a zombie counts as gone)."""
    try:
        import psutil

        return bool(psutil.pid_exists(pid)) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


reserve = SpaceReserve()
