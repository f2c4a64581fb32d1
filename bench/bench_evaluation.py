"""What the per-image evaluation adds to `ckrun train`: seconds per part, on the default set.

    .venv/bin/python bench/bench_evaluation.py [--epochs 2] [--data DATA] [--repeats 3] [--set KEY=VALUE ...]

Fits the default config for a few epochs (the evaluation's cost does not depend on how long
the model trained, only on the number of val/test images and AUs), then times, each the
median of `--repeats`: temperature scaling on val (`calibrate=true`), the scoring of every
split without and with the analysis of val and test, the analysis's parts (subject-level
bootstrap with B = `bootstrap_samples`, per-AU curves and calibration bins, EMFACS), and the
logging of a run's evaluation artifacts without and with the predictions, their JSON
artifacts and the four figures (into a throw-away MLflow store). Prints one table.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _store import throwaway_store

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


CPU_SECONDS: dict[str, float] = {}  # CPU time of the last `timed` call per label (robust to a busy machine)


def timed(repeats: int, func: Callable[[], Any], label: str = "") -> tuple[float, Any]:
    """Median wall seconds of `repeats` calls (and their median CPU seconds under `label`)."""
    seconds, cpu, out = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = func()
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU_SECONDS[label] = statistics.median(cpu)
    return statistics.median(seconds), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--data", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    throwaway_store("ckrun-evaluation-")

    from ckrun import console, tracking
    from ckrun.arrays import build_arrays, select_aus
    from ckrun.config import load_config
    from ckrun.data.loader import prepare_for_config
    from ckrun.data.pipeline import FaceCache
    from ckrun.run_logging import log_evaluation_artifacts
    from ckrun.scoring import calibrate_probabilities, predict_arrays, score_splits
    from ckrun.train import fit_model

    console.set_quiet(True)
    cfg = load_config(overrides=[f"epochs={args.epochs}", "calibrate=true", *args.overrides])
    data = prepare_for_config(args.data, cfg, progress=False)
    aus = select_aus(data.part("train"), cfg, data.au_columns)
    arrays, prep = build_arrays(cfg, data, aus, FaceCache(cfg.cache))
    outcome = fit_model(cfg, arrays, prep, verbose=False)
    probs = {s: predict_arrays(outcome.model, arrays[s], prep) for s in ("train", "val", "test")}
    plain_arrays = {s: dataclasses.replace(a, rows=None) for s, a in arrays.items()}  # no per-image analysis

    n = args.repeats
    rows: list[tuple[str, float]] = []
    calibration, (scaled, temps) = timed(n, lambda: calibrate_probabilities(probs, arrays, aus, cfg), "calibration")
    rows.append(("temperature scaling on val (calibrate=true)", calibration))
    plain, (plain_evals, _) = timed(n, lambda: score_splits(scaled, plain_arrays, aus, cfg), "plain")
    full, (full_evals, _) = timed(n, lambda: score_splits(scaled, arrays, aus, cfg), "full")
    rows.append(("scoring alone (3 splits)", plain))
    rows.append(("scoring with the val + test analysis", full))
    for split in ("val", "test"):
        for part, seconds in full_evals[split].analysis.seconds.items():
            rows.append((f"  {split}: {part}", seconds))
    with tracking.start_run(kind="train", run_name="bench-evaluation", experiment="bench"):
        before, _ = timed(n, lambda: _log(log_evaluation_artifacts, plain_evals), "log_before")
        after, _ = timed(n, lambda: _log(log_evaluation_artifacts, full_evals), "log_after")
    rows.append(("logging artifacts without predictions, JSON and figures", before))
    rows.append(("logging artifacts with predictions, JSON and figures", after))
    rows.append(("  of which the 4 test figures", full_evals["test"].analysis.seconds.get("figures", float("nan"))))
    extra = calibration + (full - plain) + (after - before)
    rows.append(("extra per `ckrun train` run (calibrate=true)", extra))
    rows.append(("extra per run without calibration", extra - calibration))
    c = CPU_SECONDS
    cpu_extra = c["calibration"] + (c["full"] - c["plain"]) + (c["log_after"] - c["log_before"])

    parts = _part_cpu_seconds(full_evals["test"].analysis, n)
    test = arrays["test"].rows
    assert test is not None
    print(
        f"default set: {len(data.manifest)} images, {len(arrays['val'].images)} val / {len(test)} test images, "
        f"{test['subject'].nunique()} test subjects, {len(aus)} AUs; B = {cfg.bootstrap_samples}; "
        f"temperatures emotion {temps.emotion:.2f}, AUs {temps.shared_au:.2f}; fit {outcome.seconds:.0f} s "
        f"for {args.epochs} epochs; median of {n}"
    )
    print("| part | wall seconds |\n|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} |")
    print(
        f"CPU seconds: calibration {c['calibration']:.3f}, analysis {c['full'] - c['plain']:.3f}, "
        f"logging {c['log_after'] - c['log_before']:.3f}, extra per run {cpu_extra:.3f} "
        f"({cpu_extra - c['calibration']:.3f} without calibration)"
    )
    print("CPU seconds per part on the test split: " + ", ".join(f"{k} {v:.3f}" for k, v in parts.items()))
    return 0


def _part_cpu_seconds(analysis: Any, repeats: int) -> dict[str, float]:
    """Median CPU seconds of each library call the analysis makes, on one split's predictions."""
    from ckrun.au_evaluation import evaluate_aus
    from ckrun.calibration import au_reliability, emotion_reliability
    from ckrun.emfacs import emfacs_check
    from ckrun.split_analysis import draw_figures
    from ckrun.uncertainty import bootstrap_intervals, paired_comparison

    pred = analysis.predictions
    calls: dict[str, Callable[[], Any]] = {
        "bootstrap B=1000 (subjects)": lambda: bootstrap_intervals(pred, samples=1000),
        "bootstrap B=1000 (images)": lambda: bootstrap_intervals(pred, samples=1000, unit="image"),
        "paired test (compare)": lambda: paired_comparison(pred, pred),
        "AU curves + ECE": lambda: (
            evaluate_aus(pred.au_targets, pred.au_probs, pred.aus, pred.thresholds),
            emotion_reliability(pred.emotion_targets, pred.emotion_probs),
            au_reliability(pred.au_targets, pred.au_probs),
        ),
        "EMFACS": lambda: emfacs_check(pred),
    }
    out = {}
    for name, call in calls.items():
        timed(repeats, call, name)
        out[name] = CPU_SECONDS[name]
    with tempfile.TemporaryDirectory() as tmp:
        timed(repeats, lambda: draw_figures(analysis, Path(tmp)), "figures")
    out["4 figures"] = CPU_SECONDS["figures"]
    return out


def _log(log: Callable[[Any, Any], None], evaluations: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log(evaluations, Path(tmp))


if __name__ == "__main__":
    raise SystemExit(main())
