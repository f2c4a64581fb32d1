"""One training run end to end: data → fit → evaluate → diagnose → MLflow.

`train(cfg, data)` is the single entry point that `ckrun train`, cross-validation, every
Optuna trial and the main job reuse. It reads as the run's story: choose the AU outputs,
build arrays and normalisation from the training split, fit (one model, or the members of
a seed ensemble) keeping the epoch the selection rule names, score clean train / val / test
(with the run's test-time augmentation), tune AU thresholds on val, diagnose the fit, and log
it all. The steps live beside it: `ckrun.arrays` (labels, arrays, weights),
`ckrun.model.callbacks`, `.averaging` and `.selection` (what runs on every epoch),
`ckrun.scoring` (probabilities to scores), `ckrun.ensemble` (members) and `ckrun.run_logging`
(what every kind of run logs alike). TensorFlow is imported only inside the functions that
fit, so importing this module stays cheap.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ckrun import names, tracking
from ckrun.arrays import (
    SplitArrays,
    au_positive_weights,
    au_repeat_factors,
    build_arrays,
    emotion_class_weights,
    repeat_counts,
    resampled,
    select_aus,
)
from ckrun.config import TrainConfig
from ckrun.console import echo
from ckrun.data.labels import EMOTION_CLASSES
from ckrun.data.loader import PreparedData
from ckrun.errors import ConfigError, deferred_signals
from ckrun.metrics import Diagnosis, SplitEvaluation, diagnose_fit
from ckrun.run_logging import (
    describe_run,
    headline,
    log_calibration,
    log_data_caveats,
    log_results,
    run_params,
    timestamp,
)
from ckrun.scoring import calibrate_probabilities, predict_arrays, score_splits, summary_metrics

if TYPE_CHECKING:
    from ckrun.data.pipeline import FaceCache, Preprocessing
    from ckrun.fusion import Fusion

# --------------------------------------------------------------------------------------
# Fit


@dataclass
class FitOutcome:
    model: Any
    prep: Preprocessing  # thresholds filled after evaluation
    history: dict[str, list[float]]
    best_epoch: int
    arrays: dict[str, SplitArrays]
    seconds: float
    selection_score: float = float("nan")  # the selection rule's val objective at best_epoch
    images_per_epoch: int = 0  # training images one epoch went through (more than the split under au_sampling)


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
    lr: Any = cfg.learning_rate
    if cfg.lr_schedule == "cosine":
        warmup = min(cfg.warmup_epochs * steps_per_epoch, total - 1)
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=cfg.learning_rate * (0.1 if warmup else 1.0),
            decay_steps=max(1, total - warmup),
            alpha=0.01,
            warmup_target=cfg.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    if cfg.scales_pretrained_lr:
        from ckrun.model.optimizer import PrefixScaledAdam
        from ckrun.model.xception import PREFIX

        return PrefixScaledAdam(learning_rate=lr, prefix=PREFIX, scale=cfg.pretrained_lr_scale)
    return keras.optimizers.Adam(learning_rate=lr)


def training_arrays(cfg: TrainConfig, train: SplitArrays) -> SplitArrays:
    """What the network trains on: the training split, or it resampled (`au_sampling`).

    Only the fit sees the repeats; scoring, thresholds and the fit diagnosis read the split as
    it is. Drawn once per fit from the run's seed, so a run is reproducible.
    """
    if cfg.au_sampling == "none" or "aus" not in train.labels or not train.labels["aus"].shape[1]:
        return train
    factors = au_repeat_factors(train.labels["aus"], cfg.au_repeat_threshold)
    return resampled(train, repeat_counts(factors, cfg.seed))


def fit_model(
    cfg: TrainConfig,
    arrays: dict[str, SplitArrays],
    prep: Preprocessing,
    *,
    callbacks: Sequence[Any] = (),
    verbose: bool = True,
    prefix: str = "",
) -> FitOutcome:
    """Compile and fit the two-headed ResNet; returns it with the selected epoch's weights."""
    import keras

    from ckrun.data.pipeline import Augmentation, make_dataset
    from ckrun.model.averaging import WeightAveraging
    from ckrun.model.callbacks import EpochLine, ObjectiveAndRate, StopOnSignal
    from ckrun.model.losses import au_loss
    from ckrun.model.objectives import MaskedAccuracy, MaskedCategoricalCrossentropy, MaskedMacroF1
    from ckrun.model.resnet import AU_HEAD, EMOTION_HEAD, FINE_EMOTION_HEAD, build_model, two_headed
    from ckrun.model.selection import EpochSelection

    set_seeds(cfg.seed, cfg.deterministic)
    train, val = training_arrays(cfg, arrays["train"]), arrays["val"]
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
        weights=train.weights,  # frame weights (frame_weight_decay); mixup mixes them too
        mixup=cfg.mixup,
    )
    val_ds = make_dataset(val.images, val.labels, prep, batch_size=max(cfg.batch_size, 64), replicas=replicas)
    steps = int(train_ds.cardinality())  # batches per epoch (fewer when replicas drop the short batch)

    fine = train.labels.get(FINE_EMOTION_HEAD)
    with strategy.scope():
        model = build_model(cfg, n_classes, n_aus, (prep.mean[0], prep.std[0]), 0 if fine is None else fine.shape[1])
        class_w = emotion_class_weights(train.labels["emotion"]) if cfg.class_weights else None
        pos_w = au_positive_weights(train.labels["aus"]) if cfg.au_pos_weights and n_aus else None
        metrics = {EMOTION_HEAD: [MaskedAccuracy(False, n_classes), MaskedMacroF1(False, n_classes)]}
        if n_aus:
            metrics[AU_HEAD] = [MaskedAccuracy(True, n_aus), MaskedMacroF1(True, n_aus)]
        losses = {
            EMOTION_HEAD: MaskedCategoricalCrossentropy(class_w, label_smoothing=cfg.label_smoothing),
            AU_HEAD: au_loss(cfg, pos_w),
        }
        weights = {EMOTION_HEAD: cfg.emotion_loss_weight, AU_HEAD: cfg.au_loss_weight if n_aus else 0.0}
        if fine is not None:
            fine_w = emotion_class_weights(fine) if cfg.class_weights else None
            losses[FINE_EMOTION_HEAD] = MaskedCategoricalCrossentropy(fine_w, label_smoothing=cfg.label_smoothing)
            weights[FINE_EMOTION_HEAD] = cfg.fine_emotion_weight
        model.compile(optimizer=_optimizer(cfg, steps), loss=losses, loss_weights=weights, metrics=metrics)
        _build_before_tracing(model, train_ds)
    averaging = None
    if cfg.weight_averaging != "none":
        swa_from = min(cfg.epochs, math.floor(cfg.swa_start * cfg.epochs) + 1)
        averaging = WeightAveraging(
            cfg.weight_averaging, momentum=cfg.ema_momentum, start_epoch=swa_from, bn_batches=train_ds
        )
    selection = EpochSelection(
        cfg.selection, cfg.selection_window, cfg.early_stopping, averaging.candidate if averaging else None
    )
    cbs: list[Any] = [
        StopOnSignal(),
        ObjectiveAndRate(cfg.objective, n_aus > 0),
        *([averaging] if averaging else []),
        selection,
    ]
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
    with deferred_signals():  # a signal stops the fit between batches, never inside TensorFlow
        history = model.fit(
            train_ds, validation_data=val_ds, epochs=cfg.epochs, callbacks=cbs, verbose=0, shuffle=False
        )
    seconds = time.perf_counter() - start
    if verbose and selection.stopped_epoch:
        echo(
            f"{prefix}stopped after epoch {selection.stopped_epoch} of {cfg.epochs}: no better val objective for "
            f"{cfg.early_stopping} epochs (early_stopping); keeping epoch {selection.selected_epoch}"
        )
    renamed: dict[str, list[float]] = {}
    for key, values in history.history.items():
        renamed[names.keras_to_mlflow(key) if key != "val_objective" else key] = [float(v) for v in values]
    epoch = selection.selected_epoch or len(history.epoch)
    return FitOutcome(
        two_headed(model), prep, renamed, epoch, arrays, seconds, selection.selected_score, len(train.images)
    )


def _build_before_tracing(model: Any, dataset: Any) -> None:
    """Create the compiled loss's and metrics' state before the first traced step.

    Without a distribution strategy Keras builds it inside the first traced train step, and a
    variable created there makes TensorFlow trace the step a second time (about 4 s of every
    fit, every trial). Under a strategy Keras does this symbolic build itself, from the data's
    shapes alone; here it is done the same way. A Keras without it only costs the extra trace.
    """
    build = getattr(model, "_symbolic_build", None)
    if build is not None and getattr(model, "_distribute_strategy", None) is None:
        build(data_batch=dataset.element_spec)


def fit_members(
    cfg: TrainConfig, arrays: dict[str, SplitArrays], prep: Preprocessing, *, callbacks: Sequence[Any], verbose: bool
) -> list[FitOutcome]:
    """`cfg.ensemble_seeds` fits on the same split, seeds cfg.seed, cfg.seed + 1, ...

    The first member is the run's own fit: its curves carry the run's metric names and it
    alone gets `callbacks` (an Optuna pruner judges a trial by it). The others log their
    curves as ``member<k>_<name>``.
    """
    from ckrun.model.callbacks import MlflowEpochLogger

    n = cfg.ensemble_seeds
    first = [*callbacks, MlflowEpochLogger()]
    fits = [fit_model(cfg, arrays, prep, callbacks=first, verbose=verbose, prefix=f"member 1/{n} " if n > 1 else "")]
    for k in range(2, n + 1):
        member_cfg = cfg.updated(seed=cfg.seed + k - 1)
        logger = MlflowEpochLogger(prefix=f"member{k}_")
        fits.append(fit_model(member_cfg, arrays, prep, callbacks=[logger], verbose=verbose, prefix=f"member {k}/{n} "))
    return fits


# --------------------------------------------------------------------------------------
# The run


@dataclass
class TrainResult:
    run_id: str
    metrics: dict[str, float]
    diagnosis: Diagnosis
    history: dict[str, list[float]]
    best_epoch: int
    model_uri: str | None
    preprocessing: Preprocessing
    evaluations: dict[str, SplitEvaluation] = field(default_factory=dict)
    models: list[Any] = field(default_factory=list)  # the Keras model, or an ensemble's members
    fusion: Fusion | None = None  # the linear baseline averaged in (fusion=baseline, weight > 0)

    @property
    def model(self) -> Any:
        return self.models[0] if self.models else None


def train(
    cfg: TrainConfig,
    data: PreparedData,
    *,
    experiment: str | None = None,
    run_name: str | None = None,
    kind: str = "train",
    tags: dict[str, str] | None = None,
    callbacks: Sequence[Any] = (),
    face_cache: FaceCache | None = None,
    system_metrics: bool = False,
    killed_on: tuple[type[BaseException], ...] = (),
    verbose: bool = True,
    on_run_start: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train `cfg` on `data` inside one MLflow run and return its scores."""
    from ckrun.arrays import face_decision
    from ckrun.data.pipeline import FaceCache
    from ckrun.ensemble import member_metrics

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
        log_data_caveats(data)
        if verbose:
            echo(f"run {run.name} ({run.run_id}): {describe_run(cfg, data)}")

        faces = face_decision(cfg, data, face_cache)
        tracking.log_params(faces.params())
        if verbose:
            echo(faces.line())
        arrays, prep = build_arrays(cfg, data, aus, face_cache)
        prep = dataclasses.replace(prep, tta=cfg.tta)
        fine_metrics = _fine_emotion_check(cfg, arrays["train"], verbose)
        fits = fit_members(cfg, arrays, prep, callbacks=callbacks, verbose=verbose)
        outcome, models = fits[0], [f.model for f in fits]
        probs = {s: predict_arrays(models, arrays[s], prep) for s in names.SPLITS}
        probs, temperatures = calibrate_probabilities(probs, arrays, aus, cfg)
        fusion, fusion_metrics = None, {}
        if cfg.fusion == "baseline":
            from ckrun.fusion import fusion_weight_text
            from ckrun.fusion_fit import fit_fusion

            fused = fit_fusion(cfg, arrays, aus, probs)
            probs, fusion, fusion_metrics = fused.probs, fused.fusion, fused.metrics
            tracking.log_params({"fusion_family": fused.family})
            if verbose:
                echo(
                    f"fusion: {fused.family} baseline weight {fusion_weight_text(fused.metrics)} "
                    f"(val objective: network {fused.metrics['unfused_val_objective']:.3f}, "
                    f"baseline {fused.metrics['fusion_baseline_val_objective']:.3f})"
                )
        evaluations, thresholds = score_splits(probs, arrays, aus, cfg)
        metrics, objective_kind = summary_metrics(evaluations, arrays, cfg, bool(aus))
        # The diagnosis judges the network's fit: a fused baseline fits its own training rows
        # almost perfectly, which would read as overfitting.
        fitted = {k.removeprefix("unfused_"): v for k, v in fusion_metrics.items() if k.startswith("unfused_")}
        diagnosis = diagnose_fit(
            fitted or metrics,
            fitted or metrics,
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
            fit_seconds=sum(f.seconds for f in fits),
            selected_val_objective=outcome.selection_score,
            fit_images_per_epoch=outcome.images_per_epoch,
        )
        metrics.update(fusion_metrics)
        metrics.update(fine_metrics)
        if len(fits) > 1:
            metrics.update(member_metrics(fits, arrays, prep, cfg))
        if cfg.calibrate:
            metrics.update(log_calibration(temperatures, aus))
        log_results(metrics, diagnosis, outcome.history, outcome.best_epoch, evaluations)
        prep = dataclasses.replace(
            prep,
            thresholds=tuple(float(t) for t in thresholds),
            emotion_temperature=temperatures.emotion,
            au_temperatures=temperatures.aus,
        )
        if cfg.explain_images_per_class:
            metrics.update(_log_explanations(models, prep, arrays["test"], cfg, epochs_run))
        fusions = [fusion] if fusion else None
        model_uri = (
            tracking.log_model(models, prep.to_json(), cfg.to_yaml(), fusions=fusions) if cfg.log_model else None
        )
        if verbose:
            echo(headline(metrics, diagnosis, outcome.best_epoch))
    return TrainResult(
        run.run_id,
        metrics,
        diagnosis,
        outcome.history,
        outcome.best_epoch,
        model_uri,
        prep,
        evaluations,
        models,
        fusion,
    )


def _fine_emotion_check(cfg: TrainConfig, train: SplitArrays, verbose: bool) -> dict[str, float]:
    """How many training images teach the fine-emotion head; says so when none do.

    `build_arrays` gives the split fine labels only where they split the negative class
    (`ckrun.arrays.fine_emotion_images`): a manifest of the three classes does not, and the run
    then trains as with `fine_emotion_weight=0`, and says so.
    """
    if cfg.fine_emotion_weight <= 0:
        return {}
    fine = train.labels.get("fine_emotion")
    n = 0 if fine is None else int(fine.any(axis=1).sum())
    if verbose:
        echo(
            f"fine emotion head: {n} training images with a CK+ emotion name (loss weight {cfg.fine_emotion_weight:g})"
            if n
            else "fine emotion head: off, the training split does not name two or more of CK+'s negative emotions "
            "(anger, contempt, disgust, fear, sadness: CK+ names in the emotion column or a ck_emotion column)"
        )
    return {"fit_fine_emotion_images": float(n)}


def _log_explanations(models: Any, prep: Preprocessing, test: SplitArrays, cfg: TrainConfig, epochs_run: int) -> dict:
    """Grad-CAM overlays and AU region shares of a few test faces (``explanations/``)."""
    from ckrun.explanations import log_run_explanations

    shares = log_run_explanations(models, prep, test, cfg.explain_images_per_class)
    tracking.log_metrics(shares, step=tracking.final_metric_step(epochs_run or 1))
    return shares
