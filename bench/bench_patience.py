"""What early stopping would have changed in fits already logged: epochs saved, epochs kept.

    .venv/bin/python bench/bench_patience.py STORE [STORE ...] [--patience 8 10 12 15] [--min-epochs 30]

Each STORE is an MLflow tracking URI (e.g. ``sqlite:///mlflow.db`` of a `bench_recipe.py`
or `ckrun run` store). For every run of the pretrained network (`backbone=fer_xception`) that
logged at least `--min-epochs` epochs, each val objective curve (a seed ensemble's members
too) is replayed through ckrun's own epoch selection (`ckrun.model.selection.EpochSelection`,
rule `best_epoch`) with each patience. A fit's weights and its val curve up to any epoch do not
depend on where it will stop (the learning-rate schedule is set by `epochs`, not by the stop),
so the replay says exactly which epoch a run with that patience would have kept and how many
epochs it would have trained; only runs that would keep another epoch lose anything, and the
val objective they give up is printed. Nothing is trained or logged.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass
class Curve:
    store: str
    run: str
    key: str
    values: np.ndarray


class _Model:
    """What EpochSelection touches of a Keras model: the stop flag and the weights it keeps."""

    def __init__(self) -> None:
        self.stop_training = False
        self.epoch = 0

    def get_weights(self) -> list[np.ndarray]:
        return [np.array(self.epoch)]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.epoch = int(weights[0])


def replay(values: np.ndarray, patience: int) -> tuple[int, int]:
    """(epochs trained, epoch kept) for a fit with this val curve and patience (0 = off)."""
    from ckrun.model.selection import EpochSelection

    selection, model = EpochSelection("best_epoch", patience=patience), _Model()
    selection.set_model(model)
    selection.on_train_begin()
    trained = 0
    for epoch, value in enumerate(values):
        model.epoch, trained = epoch + 1, epoch + 1
        selection.on_epoch_end(epoch, {"val_objective": float(value)})
        if model.stop_training:
            break
    selection.on_train_end()
    return trained, selection.selected_epoch


def curves(store: str, min_epochs: int) -> list[Curve]:
    from _store import logged_runs

    from ckrun import tracking

    out: list[Curve] = []
    for run in logged_runs(store, "params.backbone = 'fer_xception'"):
        for key in sorted(k for k in run.data.metrics if k.endswith("val_objective") and k != "unfused_val_objective"):
            values = np.array([value for _, value in tracking.metric_history(run.info.run_id, key)], float)
            if len(values) >= min_epochs:
                out.append(Curve(store, run.info.run_id, key, values))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="+", help="MLflow tracking URIs")
    parser.add_argument("--patience", type=int, nargs="+", default=[8, 10, 12, 15])
    parser.add_argument("--min-epochs", type=int, default=30, help="curves shorter than this are left out")
    args = parser.parse_args()

    found = [c for store in args.stores for c in curves(store, args.min_epochs)]
    if not found:
        raise SystemExit(f"no val objective curve of {args.min_epochs}+ epochs of backbone=fer_xception runs")
    print(f"{len(found)} curves of {args.min_epochs}+ epochs from {len(args.stores)} store(s)\n")
    print("| patience | same epoch kept | epochs trained (share of full fits) | val objective given up (mean, max) |")
    print("|---|---|---|---|")
    for patience in args.patience:
        full = [replay(c.values, 0) for c in found]
        stopped = [replay(c.values, patience) for c in found]
        same = sum(f[1] == s[1] for f, s in zip(full, stopped, strict=True))
        share = sum(s[0] for s in stopped) / sum(f[0] for f in full)
        lost = [float(c.values[f[1] - 1] - c.values[s[1] - 1]) for c, f, s in zip(found, full, stopped, strict=True)]
        print(f"| {patience} | {same}/{len(found)} | {share:.0%} | {np.mean(lost):.4f}, {np.max(lost):.3f} |")
    kept = sorted(replay(c.values, 0)[1] for c in found)
    print(f"\nepochs kept by the full fits: {kept}")


if __name__ == "__main__":
    main()
