"""The output folder and the public entry point, `generate_synthetic_ckplus`.

Owns the folder's life cycle (refuse a foreign folder, replace an earlier synthetic set, write
the partial marker first and the complete marker last), subjects.csv and the set's README
(both say which difficulty it is), and spreading the subjects over spawned worker processes.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from ckrun.data import ckformat
from ckrun.data.synth.identity import sample_subject, subject_ids
from ckrun.data.synth.params import (
    DEFAULT_DIFFICULTY,
    DEFAULT_SUBJECTS,
    MARKER_FILE,
    PARTIAL_MARKER_FILE,
    SYNTH_VERSION,
    SubjectCounts,
    SynthParams,
    SynthSummary,
)
from ckrun.data.synth.sequences import generate_subject
from ckrun.errors import ConfigError, DataError

README_FILE = "README.md"

_OWNED_PATHS = (
    ckformat.IMAGES_DIR,
    ckformat.EMOTION_DIR,
    ckformat.FACS_DIR,
    ckformat.LANDMARKS_DIR,
    ckformat.SUBJECTS_FILE,
    README_FILE,
    MARKER_FILE,
    PARTIAL_MARKER_FILE,
)


def is_synthetic_set(path: Path | str) -> bool:
    """Whether `path` holds a complete synthetic CK+ (the marker is written last)."""
    return (Path(path) / MARKER_FILE).is_file()


def _prepare_root(root: Path) -> None:
    """Refuse foreign folders; clear a previous (complete or interrupted) synthetic set."""
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: exists and is not a folder; choose a new or empty folder for the synthetic CK+")
    if root.is_dir() and any(root.iterdir()):
        if not (root / MARKER_FILE).is_file() and not (root / PARTIAL_MARKER_FILE).is_file():
            raise DataError(
                f"{root}: folder is not empty and is not a synthetic CK+ set (no {MARKER_FILE}); "
                "choose a new or empty folder"
            )
        (root / MARKER_FILE).unlink(missing_ok=True)  # first, so a half-replaced set never looks complete
        for name in _OWNED_PATHS:
            target = root / name
            if target.is_dir():
                shutil.rmtree(target)
            elif name != PARTIAL_MARKER_FILE:
                target.unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    (root / PARTIAL_MARKER_FILE).write_text("synthetic CK+ generation in progress\n")


def _check_arguments(subjects: int, seed: int, workers: int | None) -> None:
    if not 1 <= subjects <= 994:
        raise ConfigError(
            f"subjects must be between 1 and 994 (CK+ ids are three digits). Received: subjects={subjects}"
        )
    if seed < 0:
        raise ConfigError(f"seed must be >= 0. Received: seed={seed}")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1. Received: workers={workers}")


def _write_subjects_csv(root: Path, seed: int, ids: list[str], params: SynthParams) -> None:
    """Demographics per subject, plus the set's difficulty (importers ignore extra columns)."""
    with (root / ckformat.SUBJECTS_FILE).open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["subject", "age", "sex", "ethnicity", "synth_difficulty"])
        for index, sid in enumerate(ids):
            demo = sample_subject(seed, index, sid, params)[0].demographics
            writer.writerow([sid, demo.age, demo.sex, demo.ethnicity, params.difficulty])


def _write_readme(root: Path, seed: int, subjects: int, params: SynthParams) -> None:
    """What the folder is, for whoever finds it: synthetic, which generator and difficulty."""
    lines = [
        "# Synthetic CK+ (ckrun)",
        "",
        "Synthetic faces in the layout of the Extended Cohn-Kanade dataset, written by",
        f"`ckrun data synth` (generator version {SYNTH_VERSION}). Not real faces: never report",
        "results on this set as results on CK+.",
        "",
        f"- difficulty: {params.difficulty}",
        f"- seed: {seed}",
        f"- subjects: {subjects}",
        f"- every knob of the generator: `{MARKER_FILE}` (`params`)",
        "",
    ]
    (root / README_FILE).write_text("\n".join(lines))


def _run_subjects(
    root: Path, seed: int, ids: list[str], params: SynthParams, workers: int, progress: bool
) -> list[SubjectCounts]:
    """Draw every subject, in spawned worker processes when workers > 1.

    Spawn rather than fork: the caller may have TensorFlow (and its threads) loaded. Like any
    spawning code, a calling script needs the ``if __name__ == "__main__":`` guard.
    """
    jobs = [(str(root), seed, index, sid, params) for index, sid in enumerate(ids)]
    with tqdm(total=len(jobs), desc="synthetic CK+", unit="subject", disable=not progress) as bar:
        if workers == 1:
            counts = []
            for job in jobs:
                counts.append(generate_subject(*job))
                bar.update()
            return counts
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(generate_subject, *job) for job in jobs]
            try:
                for future in as_completed(futures):
                    future.result()
                    bar.update()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            return [future.result() for future in futures]


def generate_synthetic_ckplus(
    out: Path | str,
    *,
    subjects: int = DEFAULT_SUBJECTS,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    difficulty: str | None = None,
    params: SynthParams | None = None,
) -> SynthSummary:
    """Write a synthetic CK+ into `out` in the official layout; same inputs, same bytes.

    `difficulty` names a preset (`SynthParams.preset`, default realistic); `params` gives every
    knob instead (not both). `out` must be new, empty, or an earlier synthetic set (which is
    replaced). The marker file is written last, so an interrupted run never looks like a
    finished set.
    """
    if params is not None and difficulty is not None:
        raise ConfigError("give either difficulty or params, not both")
    params = params or SynthParams.preset(difficulty or DEFAULT_DIFFICULTY)
    _check_arguments(subjects, seed, workers)
    workers = min(workers or min(2, os.cpu_count() or 1), subjects)
    root = Path(out)
    start = time.perf_counter()
    _prepare_root(root)
    ids = subject_ids(subjects, seed)
    _write_subjects_csv(root, seed, ids, params)
    _write_readme(root, seed, subjects, params)
    counts = _run_subjects(root, seed, ids, params, workers, progress)
    totals = {
        "sequences": sum(c.sequences for c in counts),
        "frames": sum(c.frames for c in counts),
        "sequences_with_emotion": sum(c.with_emotion for c in counts),
    }
    marker = {
        "generator": "ckrun.data.synth",
        "version": SYNTH_VERSION,
        "difficulty": params.difficulty,
        "seed": seed,
        "subjects": subjects,
        "params": params.to_dict(),
        **totals,
    }
    (root / MARKER_FILE).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    (root / PARTIAL_MARKER_FILE).unlink()
    return SynthSummary(root=root, subjects=subjects, elapsed_s=time.perf_counter() - start, **totals)
