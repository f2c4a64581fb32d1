"""Quality bar of the default recipe: ResNet vs the strongest linear baseline on the embedded synthetic CK+.

    .venv/bin/python bench/bench_quality.py [--seeds 0 1] [--data DATA] [--set KEY=VALUE ...]

For each seed (which also picks the subject split) trains `ckrun baseline` and `ckrun train`
with the default config (plus any --set) into a throw-away MLflow store, then prints per seed:
test emotion macro-F1 and AU macro-F1 of both models, whether the ResNet beats the baseline
(`ckrun baseline --model best`) on every head, whether it reaches the targets (emotion >= 0.95,
AU >= 0.85), the largest epoch-to-epoch swing of validation emotion accuracy over the last half
of training (target <= 0.15), the fit diagnosis and the training time. Exits 1 when any target
is missed.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

from _store import throwaway_store

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EMOTION_TARGET, AU_TARGET, SWING_TARGET = 0.95, 0.85, 0.15


def last_half_swing(values: list[float]) -> float:
    half = values[len(values) // 2 :]
    return max((abs(b - a) for a, b in itertools.pairwise(half)), default=0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--data", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    store = throwaway_store("ckrun-quality-")

    from ckrun import console
    from ckrun.baseline import run_baseline
    from ckrun.baselines.verdict import compare
    from ckrun.config import load_config
    from ckrun.data.loader import prepare_for_config
    from ckrun.train import train

    console.set_quiet(True)
    rows, ok = [], True
    for seed in args.seeds:
        cfg = load_config(overrides=[*args.overrides, f"seed={seed}"])
        data = prepare_for_config(args.data, cfg, progress=False)
        base = run_baseline(cfg, data, experiment="quality")
        start = time.perf_counter()
        res = train(cfg, data, experiment="quality", verbose=False)
        seconds = time.perf_counter() - start
        m, b = res.metrics, base.metrics
        swing = last_half_swing(res.history["val_emotion_accuracy"])
        beats = compare(m, b).beats  # test emotion accuracy, emotion macro-F1 and AU macro-F1
        meets = m["test_emotion_f1"] >= EMOTION_TARGET and m["test_au_f1"] >= AU_TARGET and swing <= SWING_TARGET
        ok &= beats and meets
        rows.append(
            f"seed {seed}: default run emotion F1 {m['test_emotion_f1']:.3f} AU F1 {m['test_au_f1']:.3f} | "
            f"baseline ({base.model}) emotion F1 {b['test_emotion_f1']:.3f} AU F1 {b['test_au_f1']:.3f} | "
            f"swing {swing:.3f} | {res.diagnosis.verdict} | best epoch {res.best_epoch} | {seconds:.0f}s | "
            f"beats baseline: {beats} | meets targets: {meets}"
        )
        sys.stdout.write(rows[-1] + "\n")
        sys.stdout.flush()
    sys.stdout.write(f"store: {store}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
