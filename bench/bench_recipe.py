"""Recipe variants against the strongest linear baseline on the same subject-exclusive folds.

    .venv/bin/python bench/bench_recipe.py [--data DATA] [--cv 5] [--variant NAME ...]
        [--repeats R] [--set KEY=VALUE ...] [--folds 1 2 ...] [--store DIR] [--json FILE [--resume]]
    .venv/bin/python bench/bench_recipe.py --json FILE --summarise

This is how the default recipe is chosen: every named variant (config overrides on
top of `--set` and the default config) and `ckrun baseline --model best` are trained on each
of ckrun's own subject-exclusive K folds (`ckrun.data.split.kfold_splits`, the folds of
`ckrun train --cv K`), and a Markdown table gives mean ± SD over folds of the test emotion
accuracy and macro-F1, AU weighted-F1 and macro-F1, the fit time, and on how many folds the
variant beats the fold's baseline on both heads (emotion accuracy and AU macro-F1).

One training run is a noisy measurement: the same config on the same fold moves by several
hundredths of emotion accuracy between machines (floating-point order changes the whole
trajectory of a ~600-image fit). `--repeats R` trains every variant R times per fold (seeds
seed, seed+1, …; the folds stay those of the base seed), and a second table gives each
variant's paired difference from the first variant over the same (fold, repeat) runs, with
how many it wins: the comparison to judge a change by.

Runs are logged to a throw-away MLflow store (or `--store DIR`, kept) without models. Results
are appended to `--json` as each run finishes, so an interrupted benchmark keeps what it
measured, and `--summarise` prints the tables of everything a file holds (runs made at
different times, or of variants run one at a time). `--folds` runs a subset of the folds (the
table says how many runs it averages). A benchmark on real faces runs for hours; rerun the same
command with `--resume` after an interruption and it skips every run the file already holds
with the same config on the same fold (each row carries a digest of both), and its tables
cover the runs of both sittings.

A run with `fusion=baseline` (`ckrun.fusion`) also scores its network alone on the same fit; it
is recorded first as "<variant> (unfused)" (before 2026-12-07: "(ResNet alone)"), so the paired
table gives what fusion adds with the fit held fixed.

On the embedded synthetic set this says how the variants rank on cartoon faces only: never
present its figures as real-face results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench_recipe_cost import VARIANTS as OPTION_VARIANTS

from ckrun.config import RECIPES, TrainConfig

# Each variant: config overrides on top of the base config. "default" is the config as shipped
# (the default preset's recipe, `ckrun.config.RECIPES`); "plain" turns that recipe off; the
# single-option variants are the cost benchmark's, so both benchmarks mean the same by a name.
PLAIN = {key: TrainConfig.model_fields[key].default for key in RECIPES["default"]}
# The recipe as first chosen (bench/README's "regularised" rows): the default before pooling=grid_au.
REGULARISED = {**PLAIN, "label_smoothing": 0.1, "drop_path": 0.1, "weight_averaging": "ema", "tta": "flip"}
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "plain": PLAIN,
    **{name: changes for name, changes in OPTION_VARIANTS.items() if name != "off"},
    "crop_none": {"crop": "none"},
    "regularised": REGULARISED,
    "regularised_asl": {**REGULARISED, "au_loss": "asl"},
    "reference_neutral": {"reference": "neutral"},
    # The FER2013-pretrained mini-Xception at the size it was pretrained at, fine-tuned with the recipe.
    "fer_xception": {"backbone": "fer_xception", "image_size": 64},
    # The default before it was the pretrained network: the ResNet from scratch at 96 px, same recipe.
    "resnet": {"preset": "resnet"},
    # The AU head of the pretrained network on a 4 x 4 grid (one cell per pixel of its last map).
    "grid4": {"pool_grid": 4},
    # Fine-tuning budget (bench/README "Fine-tuning budget"): the pretrained network's val emotion
    # accuracy peaks by epoch 5-10 of the default's 40 on the synthetic set. Half the epochs, a
    # lower learning rate (fine-tuning on a domain close to the pretraining one), and two seeds
    # of 20 epochs at the cost of one of 40.
    "epochs20": {"epochs": 20},
    "lr3e-4": {"learning_rate": 3e-4},
    "seeds2_epochs20": {"ensemble_seeds": 2, "epochs": 20},
    # Discriminative fine-tuning (bench/README "Discriminative fine-tuning"): the pretrained
    # layers learn at a tenth (or 0.3) of the heads' rate, so the FER2013 features move less.
    "pretrained_lr0.1": {"pretrained_lr_scale": 0.1},
    "pretrained_lr0.3": {"pretrained_lr_scale": 0.3},
    "fusion_separate": {"fusion_heads": "separate"},
    # Rare AUs by sampling instead of by loss weights (repeat-factor sampling, LVIS).
    "au_repeat": {"au_sampling": "repeat", "au_pos_weights": False},
    # The same with every AU below 30% of the images repeated: the drawn set's rarest AU is in 8.7%
    # of its images, so at the default threshold (0.1) almost nothing is repeated there.
    "au_repeat0.3": {"au_sampling": "repeat", "au_repeat_threshold": 0.3, "au_pos_weights": False},
    # The default's auxiliary head over CK+'s seven emotions (training only; weight 0.3): off, and
    # at the emotion head's weight. Measured before the default had it, as `default` against
    # "fine_emotion0.3", which is today's `fine_emotion_off` against `default` the other way round.
    "fine_emotion_off": {"fine_emotion_weight": 0.0},
    "fine_emotion1": {"fine_emotion_weight": 1.0},
}
UNFUSED = " (unfused)"
COLUMNS = ("test_emotion_accuracy", "test_emotion_f1", "test_au_f1_weighted", "test_au_f1")
HEADER = ("emotion acc", "emotion macro-F1", "AU weighted-F1", "AU macro-F1")


def run_key(system: str, config: TrainConfig, fold_digest: str) -> str:
    """What makes two runs the same measurement: the system, its whole config and the fold's rows."""
    text = json.dumps([system, config.model_dump(mode="json"), fold_digest], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mean_sd(values: list[float]) -> str:
    if not values:
        return "–"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def beats(run: dict[str, float], base: dict[str, float]) -> bool:
    """Higher than the fold's baseline on both heads (emotion accuracy and AU macro-F1)."""
    return all(run.get(k, float("nan")) > base.get(k, float("nan")) for k in ("test_emotion_accuracy", "test_au_f1"))


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: one row per system, mean ± SD over the runs (folds x repeats) it made."""
    baseline = {r["fold"]: r["metrics"] for r in results if r["system"] == "baseline"}
    systems = list(dict.fromkeys(r["system"] for r in results))
    lines = [
        "| system | runs | " + " | ".join(HEADER) + " | fit s (mean) | beats baseline (runs) |",
        "|---|---|" + "---|" * (len(HEADER) + 2),
    ]
    for system in systems:
        rows = [r for r in results if r["system"] == system]
        cells = [mean_sd([r["metrics"][c] for r in rows if c in r["metrics"]]) for c in COLUMNS]
        seconds = statistics.fmean(r["seconds"] for r in rows)
        if system == "baseline":
            wins = "–"
        else:
            judged = [r for r in rows if r["fold"] in baseline]
            wins = f"{sum(beats(r['metrics'], baseline[r['fold']]) for r in judged)}/{len(judged)}"
        lines.append(f"| {system} | {len(rows)} | " + " | ".join(cells) + f" | {seconds:.0f} | {wins} |")
    return "\n".join(lines)


def paired_table(results: list[dict[str, Any]]) -> str:
    """Markdown: each variant minus the first one, over the (fold, repeat) runs both made.

    The first variant is the first fused one where there is one: a fused run records its network
    alone first, and the question is how the others compare with the variant as shipped.
    """
    systems = [s for s in dict.fromkeys(r["system"] for r in results) if s != "baseline"]
    if len(systems) < 2:
        return ""
    keyed = {(r["system"], r["fold"], r.get("repeat", 0)): r["metrics"] for r in results}
    reference = next((s for s in systems if not s.endswith(UNFUSED)), systems[0])
    lines = [
        f"| system − {reference} | pairs | "
        + " | ".join(f"Δ {h}" for h in HEADER)
        + " | wins (emotion acc, AU macro-F1) |",
        "|---|---|" + "---|" * (len(HEADER) + 1),
    ]
    for system in (s for s in systems if s != reference):
        pairs = [
            (m, keyed[(reference, f, r)])
            for (s, f, r), m in keyed.items()
            if s == system and (reference, f, r) in keyed
        ]
        if not pairs:
            continue
        deltas = [mean_sd([a[c] - b[c] for a, b in pairs]) for c in COLUMNS]
        wins = [sum(a[c] > b[c] for a, b in pairs) for c in ("test_emotion_accuracy", "test_au_f1")]
        lines.append(
            f"| {system} | {len(pairs)} | "
            + " | ".join(deltas)
            + f" | {wins[0]}/{len(pairs)}, {wins[1]}/{len(pairs)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="dataset (default: the embedded synthetic CK+)")
    parser.add_argument("--cv", type=int, default=5, help="subject-exclusive folds")
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="repeatable (default: default)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each variant per fold, seeds seed, seed+1, …")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="base config KEY=VALUE")
    parser.add_argument("--folds", type=int, nargs="*", default=None, help="run only these folds (1-based)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline")
    parser.add_argument("--store", default=None, help="keep the MLflow store in DIR")
    parser.add_argument("--json", type=Path, default=None, help="append each result to FILE (JSON lines)")
    parser.add_argument(
        "--summarise", action="store_true", help="only print the tables of every run already in --json FILE"
    )
    parser.add_argument(
        "--resume", action="store_true", help="skip the runs --json FILE already holds (same config, same fold)"
    )
    args = parser.parse_args(argv)
    if args.resume and not args.json:
        parser.error("--resume skips the runs of --json FILE: give --json")
    if args.summarise:
        if not args.json or not args.json.is_file():
            parser.error("--summarise reads the results of --json FILE, which must exist")
        stored = read_results(args.json)
        print(table(stored))
        paired = paired_table(stored)
        if paired:
            print("\n" + paired)
        return 0

    from _store import throwaway_store

    from ckrun.baseline import run_baseline
    from ckrun.config import load_config
    from ckrun.data.loader import PreparedData, manifest_digest, prepare_for_config
    from ckrun.data.pipeline import FaceCache
    from ckrun.data.split import kfold_splits
    from ckrun.train import train

    json_path = args.json.resolve() if args.json else None
    base = load_config(overrides=[*args.overrides, "log_model=false"])
    data = prepare_for_config(args.data, base, progress=False)
    throwaway_store("ckrun-bench-recipe-", args.store)
    folds = kfold_splits(data.manifest, args.cv, seed=base.seed)
    chosen = [i for i in range(1, args.cv + 1) if not args.folds or i in args.folds]
    variants = args.variant or ["default"]
    cache = FaceCache("memory")
    results: list[dict[str, Any]] = []
    earlier = read_results(json_path) if args.resume and json_path and json_path.is_file() else []
    done = {(r["system"], r["key"]) for r in earlier if "key" in r}

    def resumed(system: str, key: str) -> bool:
        """Take the runs an earlier sitting made with this key (with a fused run, its unfused row too)."""
        if (system, key) not in done:
            return False
        rows = [r for r in earlier if r.get("key") == key and r["system"] in (system, system + UNFUSED)]
        results.extend(sorted(rows, key=lambda r: r["system"] == system))
        last = rows[-1]
        print(f"fold {last['fold']}.{last['repeat']} {system}: in {args.json} already, skipped", flush=True)
        return True

    def record(
        system: str, fold: int, metrics: dict[str, float], seconds: float, repeat: int = 0, key: str = ""
    ) -> None:
        row = {"system": system, "fold": fold, "repeat": repeat, "seconds": seconds, "key": key,
               "metrics": {c: metrics[c] for c in COLUMNS}}  # fmt: skip
        results.append(row)
        scores = ", ".join(f"{c} {metrics[c]:.3f}" for c in COLUMNS)
        print(f"fold {fold}.{repeat} {system}: {scores} ({seconds:.0f} s)", flush=True)
        if json_path:
            with json_path.open("a") as out:
                out.write(json.dumps(row) + "\n")

    for i in chosen:
        manifest = folds[i - 1]
        fold = PreparedData(data.source, data.source_format, manifest, manifest_digest(manifest), data.skipped)
        if not args.no_baseline and not resumed("baseline", key := run_key("baseline", base, fold.digest)):
            start = time.perf_counter()
            result = run_baseline(base, fold, face_cache=cache, experiment="bench-recipe")
            record("baseline", i, result.metrics, time.perf_counter() - start, key=key)
        for name in variants:
            for repeat in range(args.repeats):
                cfg = base.updated(**VARIANTS[name], seed=base.seed + repeat)
                if resumed(name, key := run_key(name, cfg, fold.digest)):
                    continue
                start = time.perf_counter()
                trained = train(cfg, fold, run_name=f"{name}-fold{i}.{repeat}", experiment="bench-recipe",
                                face_cache=cache, verbose=False)  # fmt: skip
                seconds = time.perf_counter() - start
                if f"unfused_{COLUMNS[0]}" in trained.metrics:  # a fused run also scored its network alone
                    alone = {c: trained.metrics[f"unfused_{c}"] for c in COLUMNS}
                    record(name + UNFUSED, i, alone, seconds, repeat, key)
                record(name, i, trained.metrics, seconds, repeat, key)

    data_name = args.data or "embedded synthetic CK+"
    print(f"\n{len(chosen)} of {args.cv} subject-exclusive folds of {data_name} ({len(data.manifest)} images); "
          f"base overrides: {' '.join(args.overrides) or 'none'}\n")  # fmt: skip
    print(table(results))
    paired = paired_table(results)
    if paired:
        print("\n" + paired)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
