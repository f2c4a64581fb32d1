"""Time the synthetic CK+ generator: wall and CPU seconds, frames per second, bytes on disk, peak memory.

    .venv/bin/python bench/bench_synth.py [--subjects 40] [--workers 2] [--repeats 3] [--out DIR]

The default (40 subjects, 2 workers) is the embedded dataset every fresh machine builds once,
so this is the number to keep well under a minute on two cores. Generates the set --repeats
times (each into a fresh temporary folder), prints every run and the median, min and max wall
time, and checks the target: median wall time under 60 s. Exits 1 when it is missed. The
target is for the default size on two cores; with other --subjects or --workers it is still
checked, so read it as the default's.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ckrun.data.synth import DEFAULT_SUBJECTS, generate_synthetic_ckplus

WALL_TARGET_SECONDS = 60.0


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_mib() -> float:
    """Largest resident set of this process or any finished worker process so far (Linux: KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=DEFAULT_SUBJECTS)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="generate the set this many times (median wall)")
    parser.add_argument("--out", type=Path, default=None, help="kept afterwards (needs --repeats 1); default: temp")
    args = parser.parse_args()
    if args.repeats < 1 or (args.out is not None and args.repeats != 1):
        parser.error("--repeats must be >= 1, and 1 with --out")

    walls = []
    for repeat in range(args.repeats):
        out = args.out or Path(tempfile.mkdtemp(prefix="ckrun-synth-bench-")) / "set"
        cpu, wall = _cpu_seconds(), time.perf_counter()
        summary = generate_synthetic_ckplus(out, subjects=args.subjects, seed=args.seed, workers=args.workers)
        cpu, wall = _cpu_seconds() - cpu, time.perf_counter() - wall
        walls.append(wall)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        if repeat == 0:
            print(
                f"subjects={summary.subjects} sequences={summary.sequences} frames={summary.frames} "
                f"with_emotion={summary.sequences_with_emotion}"
            )
        print(
            f"run {repeat + 1}/{args.repeats}: wall={wall:.1f}s cpu={cpu:.1f}s frames/s={summary.frames / wall:.0f} "
            f"disk={size / 2**20:.0f} MiB"
        )
        if args.out is None:
            shutil.rmtree(out.parent)
    median = statistics.median(walls)
    meets = median < WALL_TARGET_SECONDS
    print(
        f"wall median {median:.1f}s (min {min(walls):.1f}, max {max(walls):.1f}) over {len(walls)} run(s), "
        f"peak {_peak_mib():.0f} MiB | meets target (median < {WALL_TARGET_SECONDS:g}s): {meets}"
    )
    sys.stdout.flush()
    return 0 if meets else 1


if __name__ == "__main__":
    raise SystemExit(main())
