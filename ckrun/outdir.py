"""Folders ckrun writes whole (a report, a dataset description), never over a file it did not write.

The contents are built in a temporary folder and then moved into ``--out``. The folder keeps
a list of the files ckrun last wrote there (the kind's marker); the next run replaces those
and only those, so a file a user keeps beside them (notes, a figure of their own) survives,
and a non-empty folder without the list is not taken for ckrun's at all. The list is written
before anything moves, naming old and new files alike, so a move cut short (a full disk, a
signal) leaves a folder the next run still recognises as its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ckrun.errors import CkrunError


@dataclass(frozen=True)
class FolderKind:
    noun: str  # what the folder holds, for messages: "report"
    marker: str  # the file listing what ckrun wrote there


REPORT = FolderKind("report", ".ckrun-report.json")
DESCRIPTION = FolderKind("dataset description", ".ckrun-describe.json")


def taken(path: Path) -> bool:
    """Whether something is at `path`, a dangling symlink included (writing would follow it)."""
    return path.exists() or path.is_symlink()


def written_before(out_dir: Path, kind: FolderKind = REPORT) -> list[str]:
    """The files (relative to `out_dir`) ckrun last wrote there; refuses a folder that is not ckrun's."""
    if not taken(out_dir):
        return []
    if not out_dir.is_dir():
        raise CkrunError(f"--out {out_dir} is a file, not a folder; choose a folder for the {kind.noun}")
    marker = out_dir / kind.marker
    if not marker.is_file():
        if any(out_dir.iterdir()):
            raise CkrunError(
                f"--out {out_dir} is a non-empty folder that is not a ckrun {kind.noun} (no {kind.marker}); "
                "choose a new or empty folder, so nothing in it is overwritten"
            )
        return []
    try:
        files = json.loads(marker.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise CkrunError(
            f"{marker} is unreadable; remove it and the {kind.noun} files by hand, or choose another --out"
        ) from None
    return [str(f) for f in files if isinstance(f, str) and ".." not in Path(f).parts and not Path(f).is_absolute()]


@contextlib.contextmanager
def staged(out_dir: Path, kind: FolderKind = REPORT) -> Iterator[Path]:
    """A fresh folder to build in, published into `out_dir` when the block succeeds."""
    written_before(out_dir, kind)  # refuse before any work is done
    staging = Path(tempfile.mkdtemp(prefix="ckrun-out-"))
    try:
        yield staging
        publish(staging, out_dir, kind)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, out_dir: Path, kind: FolderKind = REPORT) -> list[str]:
    """Move the staged files into `out_dir`, replacing only the files ckrun last wrote there."""
    previous = set(written_before(out_dir, kind))
    new = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
    clash = [f for f in new if taken(out_dir / f) and f not in previous]
    if clash:
        raise CkrunError(
            f"the {kind.noun} would overwrite {out_dir / clash[0]}, which ckrun did not write; move it away "
            "or choose another --out"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_marker(out_dir, kind, sorted(previous | set(new)))  # whatever happens next, these are ckrun's
    for stale in sorted(previous - set(new)):
        path = out_dir / stale
        if path.is_file() or path.is_symlink():
            path.unlink()
            _remove_empty_parents(path.parent, out_dir)
    for name in new:
        target = out_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging / name), str(target))
    _write_marker(out_dir, kind, new)
    return new


def _write_marker(out_dir: Path, kind: FolderKind, files: list[str]) -> None:
    text = json.dumps({"generated": datetime.now().isoformat(timespec="seconds"), "files": files}, indent=1) + "\n"
    with replacing(out_dir / kind.marker) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A new file beside `path` to write, renamed over `path` when the block succeeds, removed when not.

    For files ckrun may replace (the caller has checked): a full disk or a signal half-way
    then leaves the old file whole rather than half a new one that the next run would take
    for a file it did not write. A symlink at `path` stays; the file it points to is replaced.
    """
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        tmp.touch(exist_ok=False)  # created here, with the user's umask, never over anything
        yield tmp
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def _remove_empty_parents(folder: Path, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            return
        folder = folder.parent
