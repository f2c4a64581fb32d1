"""The embedded default dataset: synthetic CK+ generated once into a cache folder.

Every command that takes DATA falls back to this, so a fresh machine needs no download. It is
the `realistic` difficulty (what `make run` and the benchmarks measure); the cache folder is
keyed on the generator version, the difficulty, the seed and the number of subjects.
Generation happens into a temporary sibling folder that is renamed into place, under a file
lock, so concurrent workers (several `ckrun tune` processes) neither race nor see half a set.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from ckrun.errors import DataError

DEFAULT_SEED = 0


def cache_dir() -> Path:
    """``$CKRUN_CACHE``, else ``$XDG_CACHE_HOME/ckrun``, else ``~/.cache/ckrun``."""
    if os.environ.get("CKRUN_CACHE"):
        return Path(os.environ["CKRUN_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ckrun"


def default_dataset(
    *, seed: int = DEFAULT_SEED, subjects: int | None = None, difficulty: str | None = None, progress: bool = True
) -> Path:
    """Path of the synthetic CK+ for (difficulty, seed, subjects), generating it on first use."""
    from ckrun.data import synth

    subjects = synth.DEFAULT_SUBJECTS if subjects is None else subjects
    difficulty = difficulty or synth.DEFAULT_DIFFICULTY
    params = synth.SynthParams.preset(difficulty)  # refuses an unknown difficulty before any folder exists
    root = cache_dir() / f"synth-v{synth.SYNTH_VERSION}-{difficulty}-seed{seed}-n{subjects}"
    if (root / synth.MARKER_FILE).is_file():
        return root
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        source = "$CKRUN_CACHE" if os.environ.get("CKRUN_CACHE") else "the cache folder"
        reason = "a file is in the way" if isinstance(exc, FileExistsError | NotADirectoryError) else exc.strerror
        raise DataError(f"{source} {root.parent}: cannot hold the default dataset ({reason})") from None
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / synth.MARKER_FILE).is_file():  # another process finished meanwhile
            return root
        # Under the lock nobody else is writing this set: any temporary folder of it is left
        # from a generation that was killed (hundreds of MB for the default set).
        for stale in root.parent.glob(f".{root.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
        try:
            synth.generate_synthetic_ckplus(tmp, subjects=subjects, seed=seed, params=params, progress=progress)
            shutil.rmtree(root, ignore_errors=True)
            tmp.rename(root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # a generation cut short (signal, full disk)
    return root


def resolve_data(data: Path | str | None, *, progress: bool = True) -> Path:
    """The user's DATA path, or the default synthetic set when omitted."""
    if data is None or str(data) == "":
        return default_dataset(progress=progress)
    return Path(data).expanduser()
