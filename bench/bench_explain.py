"""What explanations, sequences and face grids cost: seconds per part.

    .venv/bin/python bench/bench_explain.py [--epochs 1] [--data DATA] [--repeats 3] [--set KEY=VALUE ...]

Fits the default config briefly (the costs depend on image size, model depth and image counts,
not on how long the model trained), then times, each the median of `--repeats` (wall and CPU):
the end-of-run explanations of `explain_images_per_class` test faces per class (Grad-CAM of
every output, region masks, overlays, logging into a throw-away MLflow store) — the only part
`ckrun train` pays by default; `ckrun evaluate --sequences`' extra work (every frame of the
test sequences decoded and scored, curves, onsets, tables and the figure); and the three face
grids of `ckrun data describe`. Prints one table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _store import throwaway_store

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def timed(repeats: int, func: Callable[[], Any]) -> tuple[float, float, Any]:
    """Median wall and CPU seconds of `repeats` calls, and the last result."""
    wall, cpu, out = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = func()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--data", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    throwaway_store("ckrun-explain-")

    from ckrun import console, tracking
    from ckrun.arrays import build_arrays, select_aus
    from ckrun.config import load_config
    from ckrun.data.face_grid import write_face_grids
    from ckrun.data.loader import prepare_for_config
    from ckrun.data.pipeline import FaceCache
    from ckrun.data.sequences import sequence_frames
    from ckrun.explanations import log_run_explanations
    from ckrun.predict import Predictor
    from ckrun.sequence_evaluation import evaluate_sequences, log_sequence_analysis
    from ckrun.train import fit_model

    console.set_quiet(True)
    cfg = load_config(overrides=[f"epochs={args.epochs}", *args.overrides])
    data = prepare_for_config(args.data, cfg, progress=False)
    aus = select_aus(data.part("train"), cfg, data.au_columns)
    arrays, prep = build_arrays(cfg, data, aus, FaceCache(cfg.cache))
    outcome = fit_model(cfg, arrays, prep, verbose=False)
    test = data.part("test")
    n, rows = args.repeats, []

    with tracking.start_run(kind="train", run_name="bench-explain", experiment="bench"):
        wall, cpu, shares = timed(
            n, lambda: log_run_explanations([outcome.model], prep, arrays["test"], cfg.explain_images_per_class)
        )
        rows.append((f"explanations at the end of a train run ({cfg.explain_images_per_class} per class)", wall, cpu))
        predictor = Predictor(outcome.model, prep)

        def sequences() -> Any:
            analysis = evaluate_sequences(predictor, test, "test")
            with tempfile.TemporaryDirectory() as tmp:
                log_sequence_analysis(analysis, "test", tmp)
            return analysis

        wall, cpu, analysis = timed(n, sequences)
        rows.append(("evaluate --sequences: extra work", wall, cpu))
    with tempfile.TemporaryDirectory() as tmp:
        wall, cpu, _ = timed(n, lambda: write_face_grids(data.manifest, cfg, Path(tmp) / "grids", per_class=6))
    rows.append(("face grids of data describe (6 per class)", wall, cpu))

    frames = sequence_frames(test)
    print(
        f"{len(data.manifest)} images; {len(test)} test peak frames in {test.groupby(['subject', 'sequence']).ngroups} "
        f"sequences = {len(frames)} sequence frames; {cfg.image_size} px, {len(aus)} AUs; fit {outcome.seconds:.0f} s "
        f"for {args.epochs} epoch(s) ({outcome.seconds / args.epochs:.0f} s per epoch); median of {n}; "
        f"test_gradcam_region_share {shares.get('test_gradcam_region_share', float('nan')):.3f}, "
        f"test_sequence_onset {analysis.metrics.get('test_sequence_onset', float('nan')):.3f}"
    )
    print("| part | wall seconds | CPU seconds |\n|---|---|---|")
    for name, wall, cpu in rows:
        print(f"| {name} | {wall:.2f} | {cpu:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
