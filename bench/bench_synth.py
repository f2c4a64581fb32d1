"""Time the synthetic CK+ generator: wall and CPU seconds, frames per second, bytes on disk.

    .venv/bin/python bench/bench_synth.py [--subjects 40] [--workers 2] [--out DIR]

The default (40 subjects, 2 workers) is the embedded dataset every fresh machine builds once,
so this is the number to keep well under a minute on two cores.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from ckrun.data.synth import DEFAULT_SUBJECTS, generate_synthetic_ckplus


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=DEFAULT_SUBJECTS)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="kept afterwards; default: a temporary folder")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="ckrun-synth-bench-")) / "set"
    cpu, wall = _cpu_seconds(), time.perf_counter()
    summary = generate_synthetic_ckplus(out, subjects=args.subjects, seed=args.seed, workers=args.workers)
    cpu, wall = _cpu_seconds() - cpu, time.perf_counter() - wall
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(
        f"subjects={summary.subjects} sequences={summary.sequences} frames={summary.frames} "
        f"with_emotion={summary.sequences_with_emotion}"
    )
    print(f"wall={wall:.1f}s cpu={cpu:.1f}s frames/s={summary.frames / wall:.0f} disk={size / 2**20:.0f} MiB")
    if args.out is None:
        shutil.rmtree(out.parent)


if __name__ == "__main__":
    main()
