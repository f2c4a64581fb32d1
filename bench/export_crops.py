"""Write a pre-cropped grey export of a dataset: small square face crops plus a manifest CSV.

    .venv/bin/python bench/export_crops.py DATA OUT [--size 48] [--margin 0.15] [--peak-frames 3]

This is the maintainers' real-data setting (48 x 48 grey crops, a manifest CSV with subjects
and a predefined subject-exclusive split, no landmark files), rebuilt from any dataset ckrun
reads, so benchmarks and `crop: auto` can be tried on it. Crops come from the 68 CK+ landmarks
(their bounding square grown by `--margin`); an image without a landmark file is cropped by
OpenCV's face detector and counted on the console. The CSV has `path` (relative to OUT, so the
folder can move), `subject`, `sequence`, `frame`, `ck_emotion`, `emotion`, `split` and the AU
columns; `--no-split` leaves `split` out so ckrun splits by subject itself, and
`--peak-distance` adds the frames-before-peak column that `frame_weight_decay` reads (the
maintainers' export has none).

DATA defaults to the embedded synthetic CK+. OUT must not exist yet (nothing is overwritten).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=None, help="dataset (default: the embedded synthetic CK+)")
    parser.add_argument("out", type=Path, help="new folder for images/ and manifest.csv")
    parser.add_argument("--size", type=int, default=48, help="side of the square grey crops in pixels")
    parser.add_argument("--margin", type=float, default=0.15, help="margin around the landmark box (fraction)")
    parser.add_argument("--peak-frames", type=int, default=3, help="last N frames of each CK+ sequence")
    parser.add_argument("--require-emotion", action="store_true", help="keep only images with a 3-class emotion")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subject-exclusive split")
    parser.add_argument("--no-split", action="store_true", help="write no split column")
    parser.add_argument(
        "--peak-distance", action="store_true", help="also write peak_distance (for frame_weight_decay)"
    )
    args = parser.parse_args(argv)

    from ckrun.errors import CkrunError

    try:
        export(args)
    except CkrunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def export(args: argparse.Namespace) -> None:
    import numpy as np
    import pandas as pd
    from PIL import Image

    from ckrun.data import faces
    from ckrun.data.labels import au_columns
    from ckrun.data.loader import prepare_data
    from ckrun.data.manifest import PEAK_DISTANCE
    from ckrun.data.pipeline import decode_faces
    from ckrun.errors import ConfigError

    out = Path(args.out)
    if out.exists():
        raise ConfigError(f"{out}: already exists (choose a new folder; nothing is overwritten)")
    if args.size < 8:
        raise ConfigError(f"--size must be at least 8; received {args.size}")
    data = prepare_data(
        args.data,
        peak_frames=args.peak_frames,
        require_emotion=args.require_emotion,
        split_method="subject",
        seed=args.seed,
    )
    manifest = data.manifest
    paths = manifest["path"].astype(str).tolist()
    landmarks = [None if pd.isna(v) else str(v) for v in manifest["landmarks"]]
    boxes = faces.crop_boxes(paths, landmarks, "auto", args.margin, progress=True)
    crops = decode_faces(paths, boxes, args.size, 1)

    images = out / "images"
    images.mkdir(parents=True)
    relative: list[str] = []
    for i, (path, crop) in enumerate(zip(paths, crops, strict=True)):
        # CK+ names are unique and keep subject/sequence/frame readable; other sets may repeat one.
        name = f"images/{Path(path).stem}.png"
        if (out / name).exists():
            name = f"images/{i:06d}_{Path(path).stem}.png"
        Image.fromarray(np.asarray(crop[..., 0])).save(out / name)
        relative.append(name)
    table = pd.DataFrame({"path": relative})
    columns = ["subject", "sequence", "frame", "ck_emotion", "emotion"]
    if not args.no_split:
        columns.append("split")
    if args.peak_distance and PEAK_DISTANCE in manifest:
        columns.append(PEAK_DISTANCE)
    for column in [*columns, *au_columns(list(manifest.columns))]:
        table[column] = manifest[column].to_numpy()
    table.to_csv(out / "manifest.csv", index=False)
    without = sum(lm is None for lm in landmarks)
    print(
        f"wrote {len(table)} {args.size}x{args.size} grey crops of {manifest['subject'].nunique()} subjects "
        f"to {out} ({without} without landmarks, cropped by the face detector)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
