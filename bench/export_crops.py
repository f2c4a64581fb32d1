"""Pre-cropped faces from any dataset: small grey PNGs and a manifest CSV, without landmarks.

    .venv/bin/python bench/export_crops.py DATA OUT [--size 48] [--seed 0] [--no-split] [--set KEY=VALUE ...]

The maintainers' real CK+ benchmark set is of this kind: 48 x 48 grey face crops, no landmark
files, real labels, a predefined subject-exclusive `split` column, given to ckrun as a manifest
CSV. This writes the same kind of set from DATA (the embedded synthetic CK+ when DATA is
`default`), so benchmarks can run ckrun in that setting. Faces are cut with ckrun's own crop
(`crop`, `crop_margin`: landmarks when DATA has them, else the face detector) and resized to
--size; the split is ckrun's subject-exclusive split for --seed (left out with --no-split, so
ckrun splits the export itself). OUT must not exist or be empty: nothing is overwritten.

Writes OUT/images/NNNNN_<name>.png and OUT/manifest.csv (path relative to OUT, subject,
sequence, frame, emotion, ck_emotion, AU columns, demographics when present, split), then prints
the counts. Never present results on a synthetic export as real-face results.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def export_crops(data: str | None, out: Path, *, size: int, seed: int, split: bool, overrides: list[str]) -> Path:
    import numpy as np
    from PIL import Image

    from ckrun.config import load_config
    from ckrun.data.loader import prepare_for_config
    from ckrun.data.pipeline import FaceCache, Preprocessing
    from ckrun.errors import DataError

    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out} is not empty; export_crops writes only into a new or empty folder")
    cfg = load_config(overrides=[*overrides, f"seed={seed}"])
    prepared = prepare_for_config(data, cfg, progress=False)
    manifest = prepared.manifest.reset_index(drop=True)
    faces = FaceCache("memory").images(manifest, Preprocessing(size, 1, cfg.crop, cfg.crop_margin))
    (out / "images").mkdir(parents=True)
    names = []
    for i, (path, face) in enumerate(zip(manifest["path"].astype(str), faces, strict=True)):
        name = f"images/{i:05d}_{Path(path).stem}.png"
        Image.fromarray(np.asarray(face)[..., 0]).save(out / name)
        names.append(name)
    table = manifest.drop(columns=["landmarks", "emotion_num"], errors="ignore").assign(path=names)
    if not split:
        table = table.drop(columns=["split"])
    table.to_csv(out / "manifest.csv", index=False)
    counts = manifest["split"].value_counts().to_dict() if split else {"unsplit": len(manifest)}
    sys.stdout.write(
        f"wrote {len(manifest)} {size}x{size} grey crops of {manifest['subject'].nunique()} subjects from "
        f"{prepared.source} (crop {cfg.crop}, margin {cfg.crop_margin}) to {out / 'manifest.csv'}; split {counts}\n"
    )
    return out / "manifest.csv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="dataset folder or manifest CSV; 'default' for the embedded synthetic CK+")
    parser.add_argument("out", type=Path, help="new (or empty) output folder")
    parser.add_argument("--size", type=int, default=48, help="crop side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subject-exclusive split")
    parser.add_argument("--no-split", dest="split", action="store_false", help="leave the split column out")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    from ckrun.errors import CkrunError

    try:
        export_crops(None if args.data == "default" else args.data, args.out, size=args.size, seed=args.seed,
                     split=args.split, overrides=args.overrides)  # fmt: skip
    except CkrunError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
