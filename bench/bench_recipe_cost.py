"""What each recipe option costs in time: fit and evaluation seconds against the plain recipe.

    .venv/bin/python bench/bench_recipe_cost.py [--data DATA] [--epochs 40] [--variant NAME ...]

Trains the default config (one split, seed 0; the embedded synthetic set when --data is
omitted) once per variant, each option at its natural setting and everything else default,
and prints a Markdown table of fit and evaluation (predicting train, val and test through
`Predictor`, where test-time augmentation and ensembles cost) seconds, wall and CPU, with the
extra CPU time against `off` (CPU seconds of this process: less disturbed than wall time by
other load on a shared machine). `off` runs first and last, so drift from other load on the
machine shows as the difference between its two rows. Costs only: which option helps is the
recipe benchmark's question (quality on a synthetic set says nothing about real faces).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VARIANTS: dict[str, dict[str, object]] = {
    "off": {},
    "label_smoothing": {"label_smoothing": 0.1},
    "mixup": {"mixup": 0.2},
    "drop_path": {"drop_path": 0.1},
    "ema": {"weight_averaging": "ema"},
    "swa": {"weight_averaging": "swa"},
    "smoothed": {"selection": "smoothed"},
    "focal": {"au_loss": "focal"},
    "asl": {"au_loss": "asl"},
    "tta_flip": {"tta": "flip"},
    "tta_flip_shift": {"tta": "flip_shift"},
    "ensemble_2": {"ensemble_seeds": 2},
    "ensemble_3": {"ensemble_seeds": 3},
    "grid_pool": {"pooling": "grid"},
    "grid_au": {"pooling": "grid_au"},
    "fusion": {"fusion": "baseline"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="dataset  [default: the embedded synthetic CK+]")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="repeatable  [default: all]")
    args = parser.parse_args()

    import dataclasses

    from ckrun.arrays import build_arrays, select_aus
    from ckrun.config import load_config
    from ckrun.data.loader import prepare_for_config
    from ckrun.data.pipeline import FaceCache
    from ckrun.scoring import predict_arrays
    from ckrun.train import fit_model

    base = load_config(overrides=[f"epochs={args.epochs}"])
    data = prepare_for_config(args.data, base, progress=False)
    aus = select_aus(data.part("train"), base, data.au_columns)
    arrays, prep = build_arrays(base, data, aus, FaceCache("memory"))
    names = args.variant or [n for n in VARIANTS if n != "off"]
    order = ["off", *[n for n in names if n != "off"], "off"]
    rows = []
    for name in order:
        cfg = base.updated(**VARIANTS[name])
        run_prep = dataclasses.replace(prep, tta=cfg.tta)
        wall, cpu = time.perf_counter(), time.process_time()
        models = [
            fit_model(cfg.updated(seed=cfg.seed + k), arrays, run_prep, verbose=False).model
            for k in range(cfg.ensemble_seeds)
        ]
        fit_wall, fit_cpu = time.perf_counter() - wall, time.process_time() - cpu
        wall, cpu = time.perf_counter(), time.process_time()
        for split in ("train", "val", "test"):
            predict_arrays(models, arrays[split], run_prep)
        rows.append((name, fit_wall, fit_cpu, time.perf_counter() - wall, time.process_time() - cpu))
        print(f"{name}: fit {fit_wall:.1f} s wall, {fit_cpu:.1f} s CPU; evaluation {rows[-1][3]:.1f} s wall, "
              f"{rows[-1][4]:.1f} s CPU", flush=True)  # fmt: skip

    off_fit = (rows[0][2] + rows[-1][2]) / 2
    off_eval = (rows[0][4] + rows[-1][4]) / 2
    n_images = sum(len(a.images) for a in arrays.values())
    print(f"\n{len(arrays['train'].images)} training images, {n_images} evaluated, {args.epochs} epochs\n")
    print("| variant | fit s (wall) | fit s (CPU) | extra fit CPU | evaluation s (wall / CPU) | extra evaluation CPU |")
    print("|---|---|---|---|---|---|")
    for name, fit_wall, fit_cpu, eval_wall, eval_cpu in rows:
        print(
            f"| {name} | {fit_wall:.0f} | {fit_cpu:.0f} | {fit_cpu / off_fit - 1:+.0%} "
            f"| {eval_wall:.1f} / {eval_cpu:.1f} | {eval_cpu / off_eval - 1:+.0%} |"
        )


if __name__ == "__main__":
    main()
