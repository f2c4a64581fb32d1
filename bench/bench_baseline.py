"""The linear floors side by side: each `ckrun baseline` family on one split, time and scores.

    .venv/bin/python bench/bench_baseline.py [--data DATA] [--models logreg svm hog-svm lbp-svm best] [--set K=V ...]

Runs `ckrun baseline --model M` for each model into a throw-away MLflow store and prints a
Markdown table: the Cs chosen on validation, the validation objective, test emotion accuracy /
macro-F1, AU weighted-F1 / macro-F1 and the wall and CPU time of each run (CPU time of this
process: what it costs on a machine shared with other jobs; the faces are cropped and decoded
once beforehand, timed on their own line). Numbers on the synthetic set are not
real-face results.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from _store import throwaway_store

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

COLUMNS = (
    ("objective", "val objective"),
    ("test_emotion_accuracy", "test emotion acc"),
    ("test_emotion_f1", "test emotion F1"),
    ("test_au_f1_weighted", "test AU weighted-F1"),
    ("test_au_f1", "test AU macro-F1"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--models", nargs="+", default=["logreg", "svm", "hog-svm", "lbp-svm", "best"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    store = throwaway_store("ckrun-baseline-")

    from ckrun import console
    from ckrun.baseline import run_baseline
    from ckrun.baselines.features import BASELINE_SIZE
    from ckrun.config import load_config
    from ckrun.data.loader import prepare_for_config
    from ckrun.data.pipeline import FaceCache, Preprocessing

    console.set_quiet(True)
    cfg = load_config(overrides=args.overrides)
    data = prepare_for_config(args.data, cfg, progress=False)
    cache = FaceCache(cfg.cache)
    start = time.perf_counter()
    cache.images(data.manifest, Preprocessing(BASELINE_SIZE, 1, cfg.crop, cfg.crop_margin))
    decode = time.perf_counter() - start
    header = ["model", "kept", "C emotion", "C AU", *(label for _, label in COLUMNS), "wall s", "CPU s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    sys.stdout.write(
        f"{data.source}: {len(data.manifest)} images, digest {data.digest}; crop+decode {decode:.0f} s\n\n"
    )
    for model in args.models:
        start, cpu = time.perf_counter(), time.process_time()
        result = run_baseline(cfg, data, experiment="bench-baseline", face_cache=cache, model=model)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        m = result.metrics
        cells = [model, result.model, *("–" if c is None else f"{c:g}" for c in (result.c_emotion, result.c_au))]
        cells += [f"{m[key]:.3f}" if key in m else "–" for key, _ in COLUMNS]
        lines.append("| " + " | ".join([*cells, f"{seconds:.0f}", f"{cpu:.0f}"]) + " |")
        sys.stdout.write(lines[-1] + "\n")
        sys.stdout.flush()
    sys.stdout.write("\n" + "\n".join(lines) + f"\n\nstore: {store}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
