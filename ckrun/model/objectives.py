"""Masked losses and metrics for the two heads.

CK+ images often carry only one kind of label (a third of sequences have no emotion; CSV
datasets may have no AUs). Labels encode "missing" in-band — an all-zero emotion row, or
-1 for an AU — and everything here ignores those entries and averages over the labelled
ones only, so missing labels neither train nor dilute the other head.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

_EPS = 1e-7


@keras.saving.register_keras_serializable(package="ckrun")
class MaskedCategoricalCrossentropy(keras.losses.Loss):
    """Cross-entropy over one-hot rows; all-zero rows are unlabelled and ignored.

    With `label_smoothing` ε a labelled row's target becomes (1-ε)·y + ε/K; its class
    weight stays that of its (soft, under mixup) label, and unlabelled rows stay masked.
    """

    def __init__(
        self,
        class_weights: Sequence[float] | None = None,
        name: str = "masked_cce",
        label_smoothing: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(name=name, **kwargs)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(y_true, y_pred.dtype)
        labelled = ops.cast(ops.sum(y_true, axis=-1) > 0, y_pred.dtype)
        target = y_true
        if self.label_smoothing:
            k = ops.cast(ops.shape(y_true)[-1], y_pred.dtype)
            target = y_true * (1.0 - self.label_smoothing) + self.label_smoothing / k
        if self.class_weights is not None:
            row_weight = ops.sum(y_true * ops.convert_to_tensor(self.class_weights), axis=-1, keepdims=True)
            target = target * row_weight
        per_sample = -ops.sum(target * ops.log(ops.clip(y_pred, _EPS, 1.0)), axis=-1)
        # Rescale so the batch mean Keras takes is a mean over labelled rows only.
        batch = ops.cast(ops.shape(y_true)[0], y_pred.dtype)
        return per_sample * labelled * batch / ops.maximum(ops.sum(labelled), 1.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "class_weights": self.class_weights, "label_smoothing": self.label_smoothing}


class MaskedAULoss(keras.losses.Loss):
    """Masking and reduction shared by the AU-head losses: entries labelled -1 are unknown and
    contribute nothing, and the batch value is a mean over the known entries. A subclass gives
    the per-entry term (`entries`) with the per-AU positive weights `pos`."""

    def __init__(self, pos_weights: Sequence[float] | None, name: str, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.pos_weights = None if pos_weights is None else [float(w) for w in pos_weights]

    def entries(self, target: Any, p: Any, pos: Any) -> Any:
        raise NotImplementedError

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(y_true, y_pred.dtype)
        known = ops.cast(y_true >= 0, y_pred.dtype)
        target = ops.maximum(y_true, 0.0)
        p = ops.clip(y_pred, _EPS, 1.0 - _EPS)
        pos = 1.0 if self.pos_weights is None else ops.convert_to_tensor(self.pos_weights)
        per_entry = self.entries(target, p, pos) * known
        # Rescale so the batch mean Keras takes is a mean over known entries only.
        batch = ops.cast(ops.shape(y_true)[0], y_pred.dtype)
        return ops.sum(per_entry, axis=-1) * batch / ops.maximum(ops.sum(known), 1.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pos_weights": self.pos_weights}


@keras.saving.register_keras_serializable(package="ckrun")
class MaskedBinaryCrossentropy(MaskedAULoss):
    """Per-AU binary cross-entropy, positives weighted per AU; entries labelled -1 are ignored."""

    def __init__(self, pos_weights: Sequence[float] | None = None, name: str = "masked_bce", **kwargs: Any):
        super().__init__(pos_weights, name=name, **kwargs)

    def entries(self, target: Any, p: Any, pos: Any) -> Any:
        return -(pos * target * ops.log(p) + (1.0 - target) * ops.log(1.0 - p))


class _MaskedCounts(keras.metrics.Metric):
    """Accumulates per-output tp/fp/fn/tn over labelled entries only."""

    def __init__(self, multilabel: bool, n_outputs: int, name: str, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.multilabel, self.n_outputs = bool(multilabel), int(n_outputs)
        shape = (self.n_outputs,)
        self.tp = self.add_variable(shape=shape, initializer="zeros", name="tp")
        self.fp = self.add_variable(shape=shape, initializer="zeros", name="fp")
        self.fn = self.add_variable(shape=shape, initializer="zeros", name="fn")
        self.tn = self.add_variable(shape=shape, initializer="zeros", name="tn")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        if self.multilabel:
            known = ops.cast(y_true >= 0, "float32")
            truth = ops.maximum(y_true, 0.0)
            pred = ops.cast(y_pred > 0.5, "float32")
        else:
            known = ops.expand_dims(ops.cast(ops.sum(y_true, axis=-1) > 0, "float32"), -1)
            truth = y_true
            pred = ops.one_hot(ops.argmax(y_pred, axis=-1), self.n_outputs)
        self.tp.assign_add(ops.sum(known * truth * pred, axis=0))
        self.fp.assign_add(ops.sum(known * (1 - truth) * pred, axis=0))
        self.fn.assign_add(ops.sum(known * truth * (1 - pred), axis=0))
        self.tn.assign_add(ops.sum(known * (1 - truth) * (1 - pred), axis=0))

    def reset_state(self) -> None:
        for v in (self.tp, self.fp, self.fn, self.tn):
            v.assign(ops.zeros_like(v))

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "multilabel": self.multilabel, "n_outputs": self.n_outputs}


@keras.saving.register_keras_serializable(package="ckrun")
class MaskedMacroF1(_MaskedCounts):
    """Macro F1 over classes (emotion) or AUs, like scikit-learn's average='macro'.

    Classes that never occur and are never predicted are left out of the average.
    """

    def __init__(self, multilabel: bool, n_outputs: int, name: str = "f1", **kwargs: Any):
        super().__init__(multilabel, n_outputs, name=name, **kwargs)

    def result(self) -> Any:
        denom = 2 * self.tp + self.fp + self.fn
        f1 = ops.where(denom > 0, 2 * self.tp / ops.maximum(denom, 1.0), 0.0)
        active = ops.cast(denom > 0, "float32")
        return ops.sum(f1) / ops.maximum(ops.sum(active), 1.0)


@keras.saving.register_keras_serializable(package="ckrun")
class MaskedAccuracy(_MaskedCounts):
    """Accuracy over labelled rows (emotion) or labelled AU entries (binary accuracy)."""

    def __init__(self, multilabel: bool, n_outputs: int, name: str = "accuracy", **kwargs: Any):
        super().__init__(multilabel, n_outputs, name=name, **kwargs)

    def result(self) -> Any:
        if self.multilabel:
            total = ops.sum(self.tp + self.fp + self.fn + self.tn)
            return ops.sum(self.tp + self.tn) / ops.maximum(total, 1.0)
        labelled = ops.sum(self.tp + self.fn)  # every labelled row is a tp or fn of its class
        return ops.sum(self.tp) / ops.maximum(labelled, 1.0)
