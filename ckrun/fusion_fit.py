"""Fitting a run's late fusion (`ckrun.fusion`): the baseline on the run's split, its weight on val.

The baseline is `ckrun baseline --model best` on 48 px grey versions of the faces the ResNet
reads, fitted on train and chosen on val exactly as that command chooses; the weight is the
grid value with the best val objective (AU thresholds tuned on the fused val probabilities, as
`ckrun.scoring` tunes them), ties to the smaller weight. With ``fusion_heads: separate`` the
emotion head's weight is the one with the best val emotion macro-F1 and the AU head's the one
with the best val AU macro-F1: the objective is the mean of the two, and each head's fused
probabilities (and the AU thresholds) depend on its own weight only, so this is the best val
objective over every pair of weights. A study's trials share a split, so the
baseline is fitted once per process for the same faces and labels.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ckrun import names
from ckrun.arrays import SplitArrays
from ckrun.baselines.export import LinearBaseline, baseline_faces
from ckrun.baselines.selection import objective_kind, select_family
from ckrun.config import TrainConfig
from ckrun.fusion import Fusion, Probs, fuse
from ckrun.metrics import evaluate_split
from ckrun.scoring import val_thresholds

# Up to one half: the floor corrects the ResNet where they disagree, it never leads it. Val
# (~200 images) also chose the ResNet's epoch and the baseline's C, so it flatters both, and a
# weight chosen on it overshoots (bench/README.md, "Late fusion").
WEIGHT_GRID: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(6))
_CACHE: OrderedDict[str, LinearBaseline] = OrderedDict()  # kept baselines by their inputs' digest
_CACHE_SIZE = 4


@dataclass
class FusionFit:
    fusion: Fusion | None  # None when the weight is 0: the model is the ResNet alone
    probs: dict[str, Probs]  # fused probabilities of every split
    family: str
    metrics: dict[str, float]


def _val_objective(
    val: SplitArrays, probs: Probs, aus: Sequence[str], cfg: TrainConfig, kind: str | None = None
) -> float:
    """The val objective a run would log for `probs` (AU thresholds tuned on them); `kind` overrides the run's."""
    thresholds = val_thresholds(val, probs, aus, cfg)
    metrics = evaluate_split("val", val.labels, probs, aus=aus, thresholds=thresholds).metrics
    return names.objective(metrics, "val", kind or objective_kind(cfg, aus))


def _best(scores: Sequence[float]) -> float:
    """The grid weight of the best finite score; ties go to the smaller weight."""
    finite = [round(s, 9) if np.isfinite(s) else -np.inf for s in scores]
    return WEIGHT_GRID[int(np.argmax(finite))]


def choose_weight(val: SplitArrays, resnet: Probs, baseline: Probs, aus: Sequence[str], cfg: TrainConfig) -> float:
    """The grid weight with the best val objective; ties go to the smaller weight."""
    return _best([_val_objective(val, fuse(resnet, baseline, w), aus, cfg) for w in WEIGHT_GRID])


def choose_head_weights(
    val: SplitArrays, resnet: Probs, baseline: Probs, aus: Sequence[str], cfg: TrainConfig
) -> dict[str, float]:
    """Each head's grid weight by its own val macro-F1 (ties to the smaller); a run without AUs fuses emotion only."""
    emotion = _best([_val_objective(val, fuse(resnet, baseline, w), aus, cfg, "emotion") for w in WEIGHT_GRID])
    if not aus:
        return {"emotion": emotion, "aus": emotion}
    au = _best([_val_objective(val, fuse(resnet, baseline, w), aus, cfg, "au") for w in WEIGHT_GRID])
    return {"emotion": emotion, "aus": au}


def _digest(faces: Mapping[str, SplitArrays], aus: Sequence[str], cfg: TrainConfig, groups: np.ndarray | None) -> str:
    h = hashlib.sha1()
    for split in names.SPLITS:
        part = faces[split]
        h.update(np.ascontiguousarray(part.images).tobytes())
        for key in sorted(part.labels):
            h.update(np.ascontiguousarray(part.labels[key]).tobytes())
    settings = (list(aus), cfg.seed, cfg.class_weights, cfg.objective, cfg.threshold_min_positives,
                cfg.threshold_shrinkage, None if groups is None else groups.tolist())  # fmt: skip
    h.update(repr(settings).encode())
    return h.hexdigest()


def select_baseline(
    faces: dict[str, SplitArrays], aus: Sequence[str], cfg: TrainConfig, groups: np.ndarray | None
) -> LinearBaseline:
    """`ckrun baseline --model best` on these faces, remembered for the same inputs in this process
    (the trials of a study share a split, so only the first pays for the fit)."""
    key = _digest(faces, aus, cfg, groups)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    kept = select_family("best", faces, aus, cfg, groups=groups).kept.model
    _CACHE[key] = kept
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return kept


def fit_fusion(
    cfg: TrainConfig, arrays: dict[str, SplitArrays], aus: Sequence[str], resnet: dict[str, Probs]
) -> FusionFit:
    """Fit the baseline on this split, choose its weight on val, fuse every split."""
    faces = {s: SplitArrays(baseline_faces(a.images, cfg.channels), a.labels, rows=a.rows) for s, a in arrays.items()}
    train_rows = arrays["train"].rows
    groups = train_rows["subject"].astype(str).to_numpy() if train_rows is not None else None
    baseline = select_baseline(faces, aus, cfg, groups)
    base = {s: baseline.probabilities(faces[s].images) for s in arrays}
    base = {s: {"emotion": p["emotion"], "aus": p["aus"][:, : len(aus)]} for s, p in base.items()}
    if cfg.fusion_weight is not None:
        weights = dict.fromkeys(("emotion", "aus"), cfg.fusion_weight)
    elif cfg.fusion_heads == "separate":
        weights = choose_head_weights(arrays["val"], resnet["val"], base["val"], aus, cfg)
    else:
        weights = dict.fromkeys(("emotion", "aus"), choose_weight(arrays["val"], resnet["val"], base["val"], aus, cfg))
    fused = {s: fuse(resnet[s], base[s], weights) for s in arrays}
    metrics = {
        "fusion_weight_chosen": float(weights["emotion"]),
        "fusion_au_weight_chosen": float(weights["aus"]),
        "fusion_baseline_val_objective": _val_objective(arrays["val"], base["val"], aus, cfg),
        **unfused_scores(resnet, arrays, aus, cfg),
    }
    fusion = Fusion(baseline, float(weights["emotion"]), float(weights["aus"])) if max(weights.values()) > 0 else None
    return FusionFit(fusion, fused, baseline.family, metrics)


def unfused_scores(
    resnet: dict[str, Probs], arrays: dict[str, SplitArrays], aus: Sequence[str], cfg: TrainConfig
) -> dict[str, float]:
    """The ResNet alone on every split (``unfused_*``): what fusion added, and what the fit diagnosis judges."""
    thresholds = val_thresholds(arrays["val"], resnet["val"], aus, cfg)
    out: dict[str, float] = {}
    keep = ("emotion_accuracy", "emotion_f1", "au_f1", "au_f1_weighted")
    for split in names.SPLITS:
        if not len(arrays[split].images):
            continue
        metrics = evaluate_split(split, arrays[split].labels, resnet[split], aus=aus, thresholds=thresholds).metrics
        out |= {f"unfused_{split}_{k}": float(metrics[f"{split}_{k}"]) for k in keep if f"{split}_{k}" in metrics}
        if split == "val":
            out["unfused_val_objective"] = names.objective(metrics, "val", objective_kind(cfg, aus))
    return out
