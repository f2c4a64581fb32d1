"""One training run end to end: data → fit → evaluate → diagnose → MLflow.

`train(cfg, data)` is the single entry point that `ckrun train`, cross-validation, every
Optuna trial and the main job reuse. It reads as the run's story: choose the AU outputs,
build arrays and normalisation from the training split, fit with best-epoch restore, score
clean train / val / test, tune AU thresholds on val, diagnose the fit, and log it all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from ckrun import names, tracking
from ckrun.config import TrainConfig
from ckrun.console import echo
from ckrun.data.labels import EMOTION_CLASSES, au_code
from ckrun.data.loader import PreparedData
from ckrun.errors import ConfigError, DataError
from ckrun.metrics import Diagnosis, SplitEvaluation, diagnose_fit, evaluate_split, majority_accuracy, tune_thresholds

# --------------------------------------------------------------------------------------
# Labels and weights from the training split


def select_aus(train: pd.DataFrame, cfg: TrainConfig, available: Sequence[str]) -> list[str]:
    """AU outputs: the explicit list, or AUs with >= min_au_count positives in train."""
    if cfg.aus is not None:
        wanted = [f"AU{int(a)}" for a in cfg.aus]
        missing = [a for a in wanted if a not in available]
        if missing:
            raise ConfigError(f"aus: {', '.join(missing)} not in the data (it has {', '.join(available) or 'no AUs'})")
        return wanted
    counts = {c: int((pd.to_numeric(train[c], errors="coerce") > 0).sum()) for c in available}
    return sorted((c for c, n in counts.items() if n >= cfg.min_au_count), key=au_code)


def emotion_class_weights(onehot: np.ndarray) -> list[float]:
    """Inverse-frequency weights (mean 1 over present classes), 1 for absent classes."""
    counts = onehot.sum(axis=0)
    present = counts > 0
    weights = np.ones(len(counts))
    if present.any():
        weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return [float(w) for w in weights]


def au_positive_weights(au: np.ndarray) -> list[float]:
    """Negative/positive ratio per AU, clipped to [1, 10] so rare AUs are not ignored."""
    pos = (au == 1).sum(axis=0)
    neg = (au == 0).sum(axis=0)
    return [float(np.clip(n / max(p, 1), 1.0, 10.0)) for p, n in zip(pos, neg, strict=True)]


# --------------------------------------------------------------------------------------
# Fit


@dataclass
class SplitArrays:
    images: np.ndarray
    labels: dict[str, np.ndarray]


@dataclass
class FitOutcome:
    model: Any
    prep: Any  # ckrun.data.pipeline.Preprocessing (thresholds filled after evaluation)
    history: dict[str, list[float]]
    best_epoch: int
    arrays: dict[str, SplitArrays]
    seconds: float


def set_seeds(seed: int, deterministic: bool) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def _strategy(name: str) -> Any:
    import tensorflow as tf

    if name != "mirrored":
        return tf.distribute.get_strategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy(devices=[d.name for d in devices])


def _optimizer(cfg: TrainConfig, steps_per_epoch: int) -> Any:
    import keras

    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.lr_schedule == "cosine":
        warmup = min(cfg.warmup_epochs * steps_per_epoch, total - 1)
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=cfg.learning_rate * (0.1 if warmup else 1.0),
            decay_steps=max(1, total - warmup),
            alpha=0.01,
            warmup_target=cfg.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
        return keras.optimizers.Adam(learning_rate=lr)
    return keras.optimizers.Adam(learning_rate=cfg.learning_rate)


def build_arrays(
    cfg: TrainConfig,
    data: PreparedData,
    aus: Sequence[str],
    face_cache: Any,
    *,
    image_size: int | None = None,
    channels: int | None = None,
) -> tuple[dict[str, SplitArrays], Any]:
    """Decoded faces and labels per split, and the Preprocessing with train-split statistics."""
    from ckrun.data.pipeline import Preprocessing, encode_labels, normalisation_stats

    size, chans = image_size or cfg.image_size, channels or cfg.channels
    prep = Preprocessing(size, chans, cfg.crop, cfg.crop_margin, aus=tuple(aus))
    images = face_cache.images(data.manifest, prep)
    arrays = {}
    for split in names.SPLITS:
        mask = (data.manifest["split"] == split).to_numpy()
        arrays[split] = SplitArrays(np.asarray(images[mask]), encode_labels(data.manifest.loc[mask], aus))
    if len(arrays["train"].images) == 0 or len(arrays["val"].images) == 0:
        raise DataError("the train and val splits must both hold images")
    mean, std = normalisation_stats(arrays["train"].images)
    return arrays, Preprocessing(size, chans, cfg.crop, cfg.crop_margin, mean, std, aus=tuple(aus))


def fit_model(
    cfg: TrainConfig,
    arrays: dict[str, SplitArrays],
    prep: Any,
    *,
    callbacks: Sequence[Any] = (),
    verbose: bool = True,
    prefix: str = "",
) -> FitOutcome:
    """Compile and fit the two-headed ResNet; returns it with the best epoch restored."""
    import keras

    from ckrun.data.pipeline import Augmentation, make_dataset
    from ckrun.model.callbacks import BestEpoch, EpochLine, ObjectiveAndRate
    from ckrun.model.objectives import (
        MaskedAccuracy,
        MaskedBinaryCrossentropy,
        MaskedCategoricalCrossentropy,
        MaskedMacroF1,
    )
    from ckrun.model.resnet import AU_HEAD, EMOTION_HEAD, build_model

    set_seeds(cfg.seed, cfg.deterministic)
    train, val = arrays["train"], arrays["val"]
    n_aus, n_classes = len(prep.aus), len(EMOTION_CLASSES)
    augmentation = (
        Augmentation(cfg.rotation, cfg.shift, cfg.zoom, cfg.flip, cfg.brightness, cfg.contrast) if cfg.augment else None
    )
    strategy = _strategy(cfg.strategy)
    replicas = int(strategy.num_replicas_in_sync)
    if replicas > 1 and (cfg.batch_size % replicas or len(train.images) < cfg.batch_size):
        raise ConfigError(
            f"strategy={cfg.strategy} on {replicas} devices needs batch_size divisible by {replicas} and at "
            f"least batch_size training images (batch_size={cfg.batch_size}, {len(train.images)} images)"
        )
    train_ds = make_dataset(
        train.images,
        train.labels,
        prep,
        batch_size=cfg.batch_size,
        training=True,
        seed=cfg.seed,
        augmentation=augmentation,
        replicas=replicas,
    )
    val_ds = make_dataset(val.images, val.labels, prep, batch_size=max(cfg.batch_size, 64), replicas=replicas)
    steps = int(train_ds.cardinality())  # batches per epoch (fewer when replicas drop the short batch)

    with strategy.scope():
        model = build_model(cfg, n_classes, n_aus)
        class_w = emotion_class_weights(train.labels["emotion"]) if cfg.class_weights else None
        pos_w = au_positive_weights(train.labels["aus"]) if cfg.au_pos_weights and n_aus else None
        metrics = {EMOTION_HEAD: [MaskedAccuracy(False, n_classes), MaskedMacroF1(False, n_classes)]}
        if n_aus:
            metrics[AU_HEAD] = [MaskedAccuracy(True, n_aus), MaskedMacroF1(True, n_aus)]
        model.compile(
            optimizer=_optimizer(cfg, steps),
            loss={EMOTION_HEAD: MaskedCategoricalCrossentropy(class_w), AU_HEAD: MaskedBinaryCrossentropy(pos_w)},
            loss_weights={EMOTION_HEAD: cfg.emotion_loss_weight, AU_HEAD: cfg.au_loss_weight if n_aus else 0.0},
            metrics=metrics,
        )
    best = BestEpoch(cfg.early_stopping)
    cbs = [ObjectiveAndRate(cfg.objective, n_aus > 0), best]
    if cfg.lr_schedule == "plateau":
        cbs.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_objective", mode="max", factor=0.5, patience=3, min_lr=cfg.learning_rate / 100
            )
        )
    if verbose:
        cbs.append(EpochLine(cfg.epochs, prefix))
    cbs.extend(callbacks)
    start = time.perf_counter()
    history = model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, callbacks=cbs, verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    renamed: dict[str, list[float]] = {}
    for key, values in history.history.items():
        renamed[names.keras_to_mlflow(key) if key != "val_objective" else key] = [float(v) for v in values]
    return FitOutcome(model, prep, renamed, best.best_epoch or len(history.epoch), arrays, seconds)


# --------------------------------------------------------------------------------------
# Evaluate


def predict_arrays(model: Any, arrays: SplitArrays, prep: Any) -> dict[str, np.ndarray]:
    from ckrun.data.pipeline import make_dataset

    if len(arrays.images) == 0:
        return {"emotion": np.zeros((0, len(EMOTION_CLASSES))), "aus": np.zeros((0, len(prep.aus)))}
    n = len(arrays.images)
    replicas = int(model.distribute_strategy.num_replicas_in_sync)
    ds = make_dataset(arrays.images, arrays.labels, prep, batch_size=64, replicas=replicas).map(lambda x, y: x)
    out = model.predict(ds, verbose=0)
    return {"emotion": np.asarray(out["emotion"])[:n], "aus": np.asarray(out["aus"])[:n]}


def score_splits(
    probs: dict[str, dict[str, np.ndarray]], arrays: dict[str, SplitArrays], aus: Sequence[str], cfg: TrainConfig
) -> tuple[dict[str, SplitEvaluation], np.ndarray]:
    """Tune AU thresholds on val, then score every split with them (and at 0.5)."""
    thresholds = (
        tune_thresholds(
            arrays["val"].labels["aus"][:, : len(aus)],
            probs["val"]["aus"][:, : len(aus)],
            min_positives=cfg.threshold_min_positives,
            shrinkage=cfg.threshold_shrinkage,
        )
        if aus
        else np.zeros(0)
    )
    evaluations = {
        split: evaluate_split(split, arrays[split].labels, probs[split], aus=aus, thresholds=thresholds)
        for split in names.SPLITS
        if len(arrays[split].images)
    }
    return evaluations, thresholds


def summary_metrics(
    evaluations: dict[str, SplitEvaluation], arrays: dict[str, SplitArrays], cfg: TrainConfig, has_aus: bool
) -> tuple[dict[str, float], str]:
    """Flat final metrics plus the fit diagnosis (shared by the ResNet and the baseline)."""
    from ckrun.metrics import emotion_targets

    metrics: dict[str, float] = {}
    for ev in evaluations.values():
        metrics.update(ev.metrics)
    eval_split = "test" if "test" in evaluations else "val"
    metrics["majority_emotion_accuracy"] = majority_accuracy(
        emotion_targets(arrays["train"].labels["emotion"]), emotion_targets(arrays[eval_split].labels["emotion"])
    )
    objective_kind = cfg.objective if has_aus else "emotion"
    metrics["objective"] = names.objective(metrics, "val", objective_kind)
    return metrics, objective_kind


# --------------------------------------------------------------------------------------
# The run


@dataclass
class TrainResult:
    run_id: str | None
    metrics: dict[str, float]
    diagnosis: Diagnosis
    history: dict[str, list[float]]
    best_epoch: int
    model_uri: str | None
    preprocessing: Any
    evaluations: dict[str, SplitEvaluation] = field(default_factory=dict)
    model: Any = None


def timestamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def describe_run(cfg: TrainConfig, data: PreparedData) -> str:
    return (
        f"Two-headed ResNet (filters {list(cfg.filters)}, blocks {list(cfg.blocks)}, {cfg.image_size}px "
        f"x{cfg.channels}) with l2={cfg.l2:g}, lr={cfg.learning_rate:g} ({cfg.lr_schedule}), {cfg.epochs} epochs, "
        f"on {data.name} ({len(data.manifest)} images, digest {data.digest})."
    )


def run_params(cfg: TrainConfig, data: PreparedData, aus: Sequence[str]) -> dict[str, Any]:
    counts = data.manifest["split"].value_counts()
    return {
        **cfg.params(),
        "model": "resnet",
        "data_source": data.source,
        "data_format": data.source_format,
        "data_digest": data.digest,
        "n_train": int(counts.get("train", 0)),
        "n_val": int(counts.get("val", 0)),
        "n_test": int(counts.get("test", 0)),
        "n_aus": len(aus),
        "au_list": ",".join(aus),
    }


def log_evaluation_artifacts(evaluations: dict[str, SplitEvaluation], tmp: Any) -> None:
    """Confusion matrices (PNG + JSON), per-class and per-AU tables for val and test."""
    from pathlib import Path

    from ckrun.plots import plot_confusion

    for split in ("val", "test"):
        ev = evaluations.get(split)
        if ev is None:
            continue
        if ev.n_emotion:
            png = plot_confusion(
                ev.confusion,
                EMOTION_CLASSES,
                Path(tmp) / f"emotion_{split}.png",
                f"Emotion confusion matrix ({split}, n={ev.n_emotion})",
            )
            tracking.log_figure_file(png, "confusion_matrix")
            tracking.log_dict(ev.confusion_json(), f"confusion_matrix/emotion_{split}.json")
            tracking.log_table(ev.per_class.reset_index(names="class"), f"emotion/per_class_{split}.json")
        if len(ev.per_au):
            tracking.log_table(ev.per_au, f"au/per_au_{split}.json")


def log_results(
    result_metrics: dict[str, float],
    diagnosis: Diagnosis,
    history: dict[str, list[float]],
    best_epoch: int,
    evaluations: dict[str, SplitEvaluation],
) -> None:
    """Everything after fitting that the ResNet run and the baseline log alike."""
    import tempfile
    from pathlib import Path

    from ckrun.plots import plot_learning_curves

    epochs_run = len(history.get("train_loss", [])) or 1
    tracking.log_metrics(result_metrics, step=tracking.final_metric_step(epochs_run))
    tracking.set_tags({"fit_diagnosis": diagnosis.verdict})
    tracking.log_text(diagnosis.markdown(), "diagnosis.md")
    tracking.log_dict({k: v for k, v in result_metrics.items() if np.isfinite(v)}, "metrics.json")
    with tempfile.TemporaryDirectory() as tmp:
        log_evaluation_artifacts(evaluations, tmp)
        if history.get("train_loss"):
            tracking.log_table(
                pd.DataFrame(
                    {"epoch": range(1, epochs_run + 1), **{k: v for k, v in history.items() if len(v) == epochs_run}}
                ),
                "history.csv",
            )
            png = plot_learning_curves(
                history,
                Path(tmp) / "learning_curves.png",
                best_epoch=best_epoch,
                title=f"Learning curves ({diagnosis.verdict})",
            )
            tracking.log_figure_file(png, "plots")


def train(
    cfg: TrainConfig,
    data: PreparedData,
    *,
    experiment: str | None = None,
    run_name: str | None = None,
    kind: str = "train",
    tags: dict[str, str] | None = None,
    callbacks: Sequence[Any] = (),
    face_cache: Any = None,
    system_metrics: bool = False,
    killed_on: tuple[type[BaseException], ...] = (),
    verbose: bool = True,
    on_run_start: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train `cfg` on `data` inside one MLflow run and return its scores."""
    from ckrun.data.pipeline import FaceCache
    from ckrun.model.callbacks import MlflowEpochLogger

    face_cache = face_cache or FaceCache(cfg.cache)
    aus = select_aus(data.part("train"), cfg, data.au_columns)
    run_name = run_name or f"{kind}-{timestamp()}"
    with tracking.start_run(
        kind=kind,
        run_name=run_name,
        experiment=experiment,
        tags=tags,
        description=describe_run(cfg, data),
        system_metrics=system_metrics,
        killed_on=killed_on,
    ) as run:
        if on_run_start:
            on_run_start(run.run_id)
        tracking.log_params(run_params(cfg, data, aus))
        tracking.log_text(cfg.to_yaml(), "config.yaml")
        tracking.log_table(data.manifest.drop(columns=["landmarks"], errors="ignore"), "data/split.csv")
        tracking.log_dataset(data.manifest, source=data.source, digest=data.digest, name=data.name)
        if verbose:
            echo(f"run {run.name} ({run.run_id}): {describe_run(cfg, data)}")

        arrays, prep = build_arrays(cfg, data, aus, face_cache)
        outcome = fit_model(cfg, arrays, prep, callbacks=[*callbacks, MlflowEpochLogger()], verbose=verbose)
        probs = {s: predict_arrays(outcome.model, arrays[s], prep) for s in names.SPLITS}
        evaluations, thresholds = score_splits(probs, arrays, aus, cfg)
        metrics, objective_kind = summary_metrics(evaluations, arrays, cfg, bool(aus))
        diagnosis = diagnose_fit(
            metrics,
            metrics,
            outcome.history,
            objective=objective_kind,
            overfit_gap=cfg.overfit_gap,
            underfit_score=cfg.underfit_score,
        )
        epochs_run = len(outcome.history.get("train_loss", []))
        metrics.update(
            best_epoch=outcome.best_epoch,
            epochs_run=epochs_run,
            fit_gap=diagnosis.fit_gap,
            fit_seconds=outcome.seconds,
        )
        log_results(metrics, diagnosis, outcome.history, outcome.best_epoch, evaluations)
        prep = type(prep)(**{**prep.__dict__, "thresholds": tuple(float(t) for t in thresholds)})
        model_uri = tracking.log_model(outcome.model, prep.to_json(), cfg.to_yaml()) if cfg.log_model else None
        if verbose:
            echo(headline(metrics, diagnosis, outcome.best_epoch))
    return TrainResult(
        run.run_id, metrics, diagnosis, outcome.history, outcome.best_epoch, model_uri, prep, evaluations, outcome.model
    )


def headline(metrics: dict[str, float], diagnosis: Diagnosis, best_epoch: int | None = None) -> str:
    parts = []
    for key in ("test_emotion_accuracy", "test_emotion_f1", "test_au_f1", "val_emotion_f1", "val_au_f1"):
        if key in metrics and np.isfinite(metrics[key]):
            parts.append(f"{key} {metrics[key]:.3f}")
    if best_epoch:
        parts.append(f"best_epoch {best_epoch}")
    parts.append(f"fit {diagnosis.verdict} (gap {diagnosis.fit_gap:+.3f})")
    return "  ".join(parts)
