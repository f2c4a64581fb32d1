"""Training throughput of the two-headed ResNet: images per second per config, on random data.

    .venv/bin/python bench/bench_train_step.py [--set KEY=VALUE ...] [--steps 30] [--batch 16]

Isolates the model from data loading and MLflow: builds the config like `ckrun train`
(preset + overrides), compiles it with the real losses and metrics, runs warm-up steps (graph
tracing) and then times `--steps` training steps. Compare variants by passing `--set` lists,
e.g. `--set preset=default --set stem_stride=2`.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--aus", type=int, default=17)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from ckrun.config import load_config
    from ckrun.model.objectives import (
        MaskedAccuracy,
        MaskedBinaryCrossentropy,
        MaskedCategoricalCrossentropy,
        MaskedMacroF1,
    )
    from ckrun.model.resnet import build_model

    cfg = load_config(overrides=args.overrides)
    model = build_model(cfg, 3, args.aus)
    model.compile(
        optimizer="adam",
        loss={"emotion": MaskedCategoricalCrossentropy(), "aus": MaskedBinaryCrossentropy()},
        metrics={"emotion": [MaskedAccuracy(False, 3), MaskedMacroF1(False, 3)],
                 "aus": [MaskedAccuracy(True, args.aus), MaskedMacroF1(True, args.aus)]},
    )  # fmt: skip
    rng = np.random.default_rng(0)
    n = cfg.batch_size * (args.steps + args.warmup)
    x = rng.normal(size=(n, cfg.image_size, cfg.image_size, cfg.channels)).astype("float32")
    y = {
        "emotion": np.eye(3, dtype="float32")[rng.integers(0, 3, n)],
        "aus": (rng.random((n, args.aus)) > 0.7).astype("float32"),
    }
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(cfg.batch_size).cache()
    warm = ds.take(args.warmup)
    timed = ds.skip(args.warmup)
    start = time.perf_counter()
    model.fit(warm, epochs=1, verbose=0)
    trace = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(timed, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    images = args.steps * cfg.batch_size
    print(
        f"config: {' '.join(args.overrides) or 'default'}  params: {model.count_params():,}\n"
        f"warm-up (tracing) {trace:.1f}s; {args.steps} steps of {cfg.batch_size} in {seconds:.2f}s: "
        f"{images / seconds:.1f} images/s, {seconds / args.steps * 1000:.0f} ms/step"
    )


if __name__ == "__main__":
    main()
