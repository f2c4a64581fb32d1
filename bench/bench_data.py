"""Data-layer figures on a dataset: import time, face decode rate, training-pipeline images/s.

    .venv/bin/python bench/bench_data.py [DATA] [--image-size 96] [--epochs 3]

DATA defaults to the embedded synthetic CK+ (generated into the cache on first use). Reports:
- import: `ckrun data import`'s library call (layout walk, label parsing, image checks);
- decode: landmark crop boxes plus tf.data decode/crop/resize of every labelled image (the
  one-off cost that FaceCache keeps for every later run and trial);
- pipeline: batches per second of the training dataset (shuffle, augmentation, normalise,
  batch 16) over several epochs once the faces are decoded.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=None)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    from ckrun.data.default import resolve_data
    from ckrun.data.importers import import_dataset

    root = resolve_data(args.data)
    start = time.perf_counter()
    result = import_dataset(root)
    t_import = time.perf_counter() - start
    manifest = result.manifest
    print(f"import: {len(manifest)} images from {root} in {t_import:.2f}s ({len(manifest) / t_import:.0f} images/s)")

    from ckrun.data.labels import au_columns
    from ckrun.data.pipeline import Augmentation, FaceCache, Preprocessing, encode_labels, make_dataset

    prep = Preprocessing(args.image_size, 1, "auto", 0.15, mean=(128.0,), std=(64.0,))
    start = time.perf_counter()
    images = FaceCache().images(manifest, prep)
    t_decode = time.perf_counter() - start
    rate = len(images) / t_decode
    print(f"decode: {len(images)} faces at {args.image_size}px in {t_decode:.2f}s ({rate:.0f} images/s)")

    labels = encode_labels(manifest, au_columns(list(manifest.columns)))
    ds = make_dataset(images, labels, prep, batch_size=16, training=True, seed=0, augmentation=Augmentation())
    for _ in ds.take(2):  # build and warm the graph
        pass
    start = time.perf_counter()
    seen = 0
    for _ in range(args.epochs):
        for x, _ in ds:
            seen += int(x.shape[0])
    t_pipe = time.perf_counter() - start
    rate = seen / t_pipe
    print(f"pipeline: {seen} augmented images over {args.epochs} epochs in {t_pipe:.2f}s ({rate:.0f} images/s)")


if __name__ == "__main__":
    main()
