"""ckrun's real-face targets on one dataset: the default and the strongest linear floor, split and CV.

    .venv/bin/python bench/bench_real_targets.py --data REAL.csv [--cv 5] [--set KEY=VALUE ...]
        [--store DIR] [--no-split] [--no-cv] [--min-sequences 10]

The maintainers judge the default on real faces by two tables on their licensed CK+ export: the default config
against `ckrun baseline` on the set's own subject-exclusive split, and both on ckrun's K folds
(`ckrun train --cv K`, `ckrun baseline --cv K`). This script makes both, in the same layout,
with the default config and no `--set` (the point of the rerun), and checks the targets:

- on the set's split: test emotion accuracy >= 0.96, AU weighted-F1 >= 0.83 and AU macro-F1
  over the AUs coded in >= 10 sequences of the dataset >= 0.72;
- under CV (mean over folds): emotion accuracy >= 0.97, AU weighted-F1 >= 0.84, AU macro-F1
  (ckrun's AU set) >= 0.72;
- in both, ahead of the strongest baseline on both heads (emotion accuracy, emotion macro-F1
  and AU macro-F1, as `ckrun baseline` flags a run).

It exits 1 when a target is missed. The AU macro-F1 over the AUs coded in >= N sequences is the
"19 AUs" figure of the maintainers' export: sequences are the manifest's (subject, sequence) pairs; a manifest
without sequence ids counts images and says so. An AU in that set that ckrun did not model (too
few training positives) counts as F1 0.

Runs go to a throw-away MLflow store (or `--store DIR`, kept; open it with `ckrun ui`). About
30 minutes for ~1,000 images on 2 CPU cores. The targets are real-face targets: on the
embedded synthetic set the script runs, but its verdicts say nothing about real faces.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench_recipe import mean_sd

SPLIT_TARGETS = {"test_emotion_accuracy": 0.96, "test_au_f1_weighted": 0.83, "au_f1_coded": 0.72}
CV_TARGETS = {"test_emotion_accuracy": 0.97, "test_au_f1_weighted": 0.84, "test_au_f1": 0.72}
LABELS = {
    "test_emotion_accuracy": "emotion accuracy",
    "test_emotion_f1": "emotion macro-F1",
    "test_au_f1_weighted": "AU weighted-F1",
    "test_au_f1": "AU macro-F1 (ckrun's AUs)",
    "au_f1_coded": "AU macro-F1 (coded AUs)",
}


def coded_aus(manifest: pd.DataFrame, min_sequences: int) -> tuple[list[str], str]:
    """AU columns positive in >= min_sequences sequences (or images, without sequence ids), and the unit."""
    from ckrun.data.counts import sequence_keys
    from ckrun.data.labels import au_columns

    columns = au_columns(list(manifest.columns))
    keys = sequence_keys(manifest.assign(sequence=manifest["sequence"].replace("", pd.NA)))
    if keys is not None and keys.notna().all():
        counts = {c: keys[manifest[c] > 0].nunique() for c in columns}
        unit = "sequences"
    else:
        counts = {c: int((manifest[c] > 0).sum()) for c in columns}
        unit = "images (no sequence ids)"
    return [c for c in columns if counts[c] >= min_sequences], unit


def macro_f1_over(per_au: pd.DataFrame, aus: list[str]) -> float:
    """Mean test F1 over `aus`; an AU the run did not model counts as 0."""
    f1 = dict(zip(per_au["au"], per_au["f1"], strict=True)) if len(per_au) else {}
    return statistics.fmean(float(f1.get(au, 0.0)) for au in aus) if aus else float("nan")


def network_scores(result: Any, aus: list[str]) -> dict[str, float]:
    scores = {k: float(result.metrics[k]) for k in LABELS if k in result.metrics}
    scores["au_f1_coded"] = macro_f1_over(result.evaluations["test"].per_au, aus)
    return scores


def cell(scores: dict[str, float], key: str) -> str:
    value = scores.get(key)
    return "–" if value is None or value != value else f"{value:.3f}"


def judge(where: str, scores: dict[str, float], targets: dict[str, float], beats: bool, floor: str) -> list[str]:
    """One line per target: the figure, the bar, met or missed."""
    lines = []
    for key, bar in targets.items():
        value = scores.get(key, float("nan"))
        lines.append(f"{where}: {LABELS[key]} {value:.3f} (target {bar:.2f}) {'met' if value >= bar else 'MISSED'}")
    lines.append(f"{where}: ahead of the {floor} floor on both heads: {'met' if beats else 'MISSED'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="dataset (default: the embedded synthetic CK+)")
    parser.add_argument("--cv", type=int, default=5, help="subject-exclusive folds")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="config KEY=VALUE (not for the rerun)"
    )
    parser.add_argument("--store", default=None, help="keep the MLflow store in DIR")
    parser.add_argument("--no-split", action="store_true", help="skip the table on the set's own split")
    parser.add_argument("--no-cv", action="store_true", help="skip the cross-validated table")
    parser.add_argument("--min-sequences", type=int, default=10, help="an AU coded in this many sequences is scored")
    args = parser.parse_args(argv)
    if args.cv < 3:
        parser.error(f"--cv {args.cv}: cross-validation needs at least 3 folds (one each for val and test)")

    from _store import throwaway_store

    from ckrun import console
    from ckrun.baseline import run_baseline
    from ckrun.baselines import family_label
    from ckrun.baselines.verdict import compare
    from ckrun.config import load_config
    from ckrun.crossval import cross_validate, cross_validate_baseline
    from ckrun.data.loader import prepare_for_config
    from ckrun.train import train

    cfg = load_config(overrides=args.overrides)
    data = prepare_for_config(args.data, cfg, progress=False)
    store = throwaway_store("ckrun-real-targets-", args.store)
    aus, unit = coded_aus(data.manifest, args.min_sequences)
    name = args.data or "embedded synthetic CK+"
    print(f"{name}: {len(data.manifest)} images; {len(aus)} AUs coded in >= {args.min_sequences} {unit}: "
          f"{', '.join(aus)}; config overrides: {' '.join(args.overrides) or 'none'}\n", flush=True)  # fmt: skip
    verdicts: list[str] = []

    if not args.no_split:
        print("fitting the baseline and the default on the set's split ...", flush=True)
        console.set_quiet(True)
        start = time.perf_counter()
        base = run_baseline(cfg, data, experiment="real-targets")
        base_s = time.perf_counter() - start
        start = time.perf_counter()
        net = train(cfg, data, experiment="real-targets", verbose=False)
        net_s = time.perf_counter() - start
        console.set_quiet(False)
        scores = network_scores(net, aus)
        floor = {k: float(v) for k, v in base.metrics.items()}
        keys = list(LABELS)
        print("| system | " + " | ".join(f"test {LABELS[k]}" for k in keys) + " | fit s |")
        print("|---|" + "---|" * (len(keys) + 1))
        print("| `ckrun train` (default) | " + " | ".join(cell(scores, k) for k in keys) + f" | {net_s:.0f} |")
        print(f"| `ckrun baseline` ({family_label(base.model)}) | "
              + " | ".join(cell(floor, k) for k in keys) + f" | {base_s:.0f} |\n", flush=True)  # fmt: skip
        beats = compare(net.metrics, base.metrics).beats
        verdicts += judge("split", scores, SPLIT_TARGETS, beats, family_label(base.model))

    if not args.no_cv:
        print(f"fitting the default and the baseline on {args.cv} subject-exclusive folds ...", flush=True)
        console.set_quiet(True)
        start = time.perf_counter()
        cv = cross_validate(cfg, data, args.cv, experiment="real-targets")
        net_s = time.perf_counter() - start
        floor_cv = cross_validate_baseline(cfg, data, args.cv, experiment="real-targets")
        console.set_quiet(False)
        folds = [network_scores(r, aus) for r in cv.folds]
        floors = [{k: float(v) for k, v in r.metrics.items()} for r in floor_cv.folds]
        print("| fold | network emotion acc | baseline emotion acc | network AU weighted-F1 | "
              "network AU macro-F1 (ckrun's AUs) | baseline AU macro-F1 | network AU macro-F1 (coded AUs) | "
              "baseline kept |")  # fmt: skip
        print("|---|" + "---|" * 7)
        for i, (n, b, r) in enumerate(zip(folds, floors, floor_cv.folds, strict=True), 1):
            print(f"| {i} | {cell(n, 'test_emotion_accuracy')} | {cell(b, 'test_emotion_accuracy')} | "
                  f"{cell(n, 'test_au_f1_weighted')} | {cell(n, 'test_au_f1')} | {cell(b, 'test_au_f1')} | "
                  f"{cell(n, 'au_f1_coded')} | {r.model} |")  # fmt: skip
        column = lambda rows, k: mean_sd([r[k] for r in rows])  # noqa: E731
        print(f"| mean ± SD | {column(folds, 'test_emotion_accuracy')} | {column(floors, 'test_emotion_accuracy')} | "
              f"{column(folds, 'test_au_f1_weighted')} | {column(folds, 'test_au_f1')} | "
              f"{column(floors, 'test_au_f1')} | {column(folds, 'au_f1_coded')} | |\n")  # fmt: skip
        print(f"{args.cv} folds in {net_s / 60:.1f} min; fit diagnosis: "
              + ", ".join(r.diagnosis.verdict for r in cv.folds) + "\n", flush=True)  # fmt: skip
        means = {**cv.mean, "au_f1_coded": statistics.fmean(f["au_f1_coded"] for f in folds)}
        beats = compare(cv.mean, floor_cv.mean).beats
        kept = Counter(r.model for r in floor_cv.folds).most_common(1)[0][0]
        verdicts += judge(f"{args.cv}-fold CV", means, CV_TARGETS, beats, family_label(kept))

    print("\n".join(verdicts))
    print(f"store: {store}")
    if args.data is None:
        print("(the embedded synthetic set: these verdicts say nothing about real faces)")
    return 0 if all(v.endswith("met") for v in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
