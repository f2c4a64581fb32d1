"""Time the synthetic CK+ generator: wall and CPU seconds, frames per second, bytes on disk.

    .venv/bin/python bench/bench_synth.py [--subjects 40] [--workers 2] [--difficulty realistic] [--out DIR]

The default (40 subjects, 2 workers, realistic) is the embedded dataset every fresh machine
builds once, so this is the number to keep under a minute on two cores. Target: CPU seconds per
worker <= 60 s per 40 subjects (the wall time on idle cores; CPU time stays honest when other
jobs share the machine). Exits 1 when it is missed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from ckrun.data.synth import DEFAULT_DIFFICULTY, DEFAULT_SUBJECTS, DIFFICULTIES, generate_synthetic_ckplus

TARGET_S_PER_40_SUBJECTS = 60.0


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=DEFAULT_SUBJECTS)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--difficulty", choices=DIFFICULTIES, default=DEFAULT_DIFFICULTY)
    parser.add_argument("--out", type=Path, default=None, help="kept afterwards; default: a temporary folder")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="ckrun-synth-bench-")) / "set"
    cpu, wall = _cpu_seconds(), time.perf_counter()
    summary = generate_synthetic_ckplus(
        out, subjects=args.subjects, seed=args.seed, workers=args.workers, difficulty=args.difficulty
    )
    cpu, wall = _cpu_seconds() - cpu, time.perf_counter() - wall
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(
        f"subjects={summary.subjects} sequences={summary.sequences} frames={summary.frames} "
        f"with_emotion={summary.sequences_with_emotion}"
    )
    print(f"wall={wall:.1f}s cpu={cpu:.1f}s frames/s={summary.frames / wall:.0f} disk={size / 2**20:.0f} MiB")
    if args.out is None:
        shutil.rmtree(out.parent)
    workers = min(args.workers or min(2, os.cpu_count() or 1), args.subjects)
    per_worker, target = cpu / workers, TARGET_S_PER_40_SUBJECTS * args.subjects / 40
    met = per_worker <= target
    print(f"{args.difficulty}: cpu/worker={per_worker:.1f}s target <= {target:.0f}s: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
