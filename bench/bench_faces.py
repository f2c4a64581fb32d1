"""What `crop: auto` / `align: auto` decide on each dataset, and what deciding and decoding cost.

    .venv/bin/python bench/bench_faces.py [DATA ...] [--crop auto] [--align auto] [--image-size 96]

For each DATA (default: the embedded synthetic CK+), without and then with its landmark files
hidden (`--no-hide` skips that): the one-line decision, the time the survey takes, and the time
to place and decode every face once (what the face cache then keeps). Hiding the landmarks shows
the full-frame, detector-only case on the same images. Nothing is logged.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="*", default=[None])
    parser.add_argument("--crop", default="auto")
    parser.add_argument("--align", default="auto")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--no-hide", action="store_true", help="do not repeat without landmark files")
    args = parser.parse_args()

    from ckrun.data import crop_policy
    from ckrun.data.loader import prepare_data
    from ckrun.data.pipeline import FaceCache, Preprocessing

    for data in args.data:
        manifest = prepare_data(data, progress=False).manifest
        variants = [("as given", manifest)]
        if not args.no_hide and manifest["landmarks"].notna().any():
            variants.append(("landmarks hidden", manifest.assign(landmarks=None)))
        for label, table in variants:
            start, cpu = time.perf_counter(), time.process_time()
            decision = crop_policy.decide(
                table["path"].tolist(), table["landmarks"].tolist(), args.crop, args.align, 0.15
            )
            t_decide, c_decide = time.perf_counter() - start, time.process_time() - cpu
            prep = Preprocessing(args.image_size, 1, args.crop, 0.15, align=args.align).with_geometry(decision.geometry)
            start, cpu = time.perf_counter(), time.process_time()
            FaceCache().images(table, prep)
            t_decode, c_decode = time.perf_counter() - start, time.process_time() - cpu
            print(f"{data or 'synthetic default'} ({label}, {len(table)} images):")
            print(f"  {decision.line()}")
            print(
                f"  decision {t_decide:.2f} s wall, {c_decide:.2f} s CPU; placement + decode at "
                f"{args.image_size} px {t_decode:.1f} s wall, {c_decode:.1f} s CPU "
                f"({len(table) / t_decode:.0f} images/s)"
            )


if __name__ == "__main__":
    main()
