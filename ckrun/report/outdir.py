"""The report folder: written whole or not at all, and never a file ckrun did not write.

A report is built in a temporary folder and then moved into ``--out``. The folder keeps a
list of the files the last report wrote (`MARKER`); the next report replaces those and only
those, so a file a user keeps beside the report (notes, a figure of their own) survives, and
a non-empty folder without the list is not taken for a report at all.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from ckrun.errors import CkrunError

MARKER = ".ckrun-report.json"


def written_before(out_dir: Path) -> list[str]:
    """The files (relative to `out_dir`) the previous report wrote; refuses a folder that is not a report."""
    if not out_dir.exists():
        return []
    if not out_dir.is_dir():
        raise CkrunError(f"--out {out_dir} is a file, not a folder; choose a folder for the report")
    marker = out_dir / MARKER
    if not marker.is_file():
        if any(out_dir.iterdir()):
            raise CkrunError(
                f"--out {out_dir} is a non-empty folder that is not a ckrun report (no {MARKER}); "
                "choose a new or empty folder, so nothing in it is overwritten"
            )
        return []
    try:
        files = json.loads(marker.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise CkrunError(
            f"{marker} is unreadable; remove it and the report files by hand, or choose another --out"
        ) from None
    return [str(f) for f in files if isinstance(f, str) and ".." not in Path(f).parts and not Path(f).is_absolute()]


@contextlib.contextmanager
def staged(out_dir: Path) -> Iterator[Path]:
    """A fresh folder to build the report in, published into `out_dir` when the block succeeds."""
    written_before(out_dir)  # refuse before any work is done
    staging = Path(tempfile.mkdtemp(prefix="ckrun-report-"))
    try:
        yield staging
        publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, out_dir: Path) -> list[str]:
    """Move the staged report into `out_dir`, replacing only the files the previous report wrote."""
    previous = set(written_before(out_dir))
    new = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
    clash = [f for f in new if (out_dir / f).exists() and f not in previous]
    if clash:
        raise CkrunError(
            f"the report would overwrite {out_dir / clash[0]}, which ckrun did not write; move it away "
            "or choose another --out"
        )
    for stale in sorted(previous - set(new)):
        path = out_dir / stale
        if path.is_file() or path.is_symlink():
            path.unlink()
            _remove_empty_parents(path.parent, out_dir)
    for name in new:
        target = out_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging / name), str(target))
    (out_dir / MARKER).write_text(
        json.dumps({"generated": datetime.now().isoformat(timespec="seconds"), "files": new}, indent=1) + "\n"
    )
    return new


def _remove_empty_parents(folder: Path, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            return
        folder = folder.parent
