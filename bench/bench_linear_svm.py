"""A tuned linear floor: scikit-learn's LinearSVC on 48 px grey face pixels, C chosen on val.

    .venv/bin/python bench/bench_linear_svm.py [--data DATA] [--seeds 0 1] [--set KEY=VALUE ...]

What a reviewer compares a deep model against (on the maintainers' real CK+ this floor is within about
0.02 emotion accuracy of the default ResNet). Same import, crop, subject split (the seed picks
it), AU selection and 48 px faces as a ckrun run; features standardised on train. Emotion: one
multi-class LinearSVC per C in the grid, the C with the best val macro-F1 kept. AUs: one
class-balanced LinearSVC per AU, one C for all chosen on val AU macro-F1, decision > 0. Prints
test emotion accuracy and macro-F1 and AU weighted and macro F1 per seed. It states no target:
the figures go beside `bench_quality.py`'s (README, "The embedded synthetic CK+").
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

C_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
SIZE = 48


def _fit_emotion(x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
    from sklearn.metrics import f1_score
    from sklearn.svm import LinearSVC

    best: tuple[float, float, np.ndarray] | None = None
    for c in C_GRID:
        model = LinearSVC(C=c, max_iter=5000).fit(x["train"], y["train"])
        score = f1_score(y["val"], model.predict(x["val"]), average="macro")
        if best is None or score > best[0]:
            best = (score, c, model.predict(x["test"]))
    assert best is not None
    return best[1], best[2]


def _fit_aus(x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
    from sklearn.metrics import f1_score
    from sklearn.svm import LinearSVC

    best: tuple[float, float, np.ndarray] | None = None
    for c in C_GRID:
        val, test = np.zeros_like(y["val"]), np.zeros_like(y["test"])
        for j in range(y["train"].shape[1]):
            if len(np.unique(y["train"][:, j])) < 2:
                continue
            model = LinearSVC(C=c, class_weight="balanced", max_iter=5000).fit(x["train"], y["train"][:, j])
            val[:, j], test[:, j] = model.predict(x["val"]), model.predict(x["test"])
        score = f1_score(y["val"], val, average="macro", zero_division=0)
        if best is None or score > best[0]:
            best = (score, c, test)
    assert best is not None
    return best[1], best[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="DATA as for ckrun train [default: the embedded synthetic CK+]")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.preprocessing import StandardScaler

    from ckrun.arrays import build_arrays, select_aus
    from ckrun.config import load_config
    from ckrun.data.loader import prepare_for_config
    from ckrun.data.pipeline import FaceCache
    from ckrun.metrics import emotion_targets

    warnings.simplefilter("ignore", ConvergenceWarning)
    for seed in args.seeds:
        cfg = load_config(overrides=[*args.overrides, f"seed={seed}"])
        data = prepare_for_config(args.data, cfg, progress=False)
        aus = select_aus(data.part("train"), cfg, data.au_columns)
        arrays, _ = build_arrays(cfg, data, aus, FaceCache(cfg.cache), image_size=SIZE, channels=1)
        flat = {s: a.images.reshape(len(a.images), -1).astype(np.float32) / 255 for s, a in arrays.items()}
        scaler = StandardScaler().fit(flat["train"])
        x = {s: scaler.transform(v) for s, v in flat.items()}
        emotion = {s: emotion_targets(a.labels["emotion"]) for s, a in arrays.items()}
        known = {s: e >= 0 for s, e in emotion.items()}
        c_emotion, predicted = _fit_emotion({s: x[s][known[s]] for s in x}, {s: emotion[s][known[s]] for s in x})
        truth = emotion["test"][known["test"]]
        au = {s: a.labels["aus"].astype(int) for s, a in arrays.items()}
        if any((v < 0).any() for v in au.values()):  # CK+ and synthetic CK+ code every sequence
            raise SystemExit("error: some images have no AU labels; this benchmark needs every image FACS-coded")
        c_au, au_test = _fit_aus(x, au)
        sys.stdout.write(
            f"seed {seed}: linear SVM 48 px | test emotion acc {accuracy_score(truth, predicted):.3f} "
            f"F1 {f1_score(truth, predicted, average='macro'):.3f} (C={c_emotion:g}) | "
            f"AU weighted F1 {f1_score(au['test'], au_test, average='weighted', zero_division=0):.3f} "
            f"macro F1 {f1_score(au['test'], au_test, average='macro', zero_division=0):.3f} (C={c_au:g}) | "
            f"n_train {len(x['train'])} n_test {len(x['test'])} AUs {len(aus)}\n"
        )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
