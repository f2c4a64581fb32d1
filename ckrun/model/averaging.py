"""Weight averaging during a fit: an exponential moving average per step, or SWA per epoch.

On ~600 training images the weights of consecutive steps and epochs wander; averaging them
gives a flatter, better-generalising solution (Polyak averaging; SWA, Izmailov et al. 2018).
Each epoch the averaged weights are what validation scores (they are swapped in for
Keras's validation pass and swapped out after), so the epoch curves, the epoch selection
(`ckrun.model.selection`) and the weights finally kept all describe the averaged model.

Keras optimizers offer ``use_ema`` (with the ``SwapEMAWeights`` callback), but that average
covers trainable variables only, lives in private optimizer state, and is written back only
when a fit reaches its last epoch (not when early stopping or a pruner ends it); here the
average is a plain list of arrays any epoch can hand to the selection.

- ``ema``: after every training step, avg ← m·avg + (1-m)·w over all weights, BatchNorm
  statistics included (as timm's ModelEmaV2 does), starting from a copy of the first step's
  weights.
- ``swa``: from epoch `start_epoch` on, the running mean of the epoch-end weights. The
  BatchNorm statistics of the averaged weights are then re-estimated with one pass over
  the training batches (the SWA paper's "bn update"), since averaged weights do not match
  any epoch's statistics.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


class WeightAveraging(keras.callbacks.Callback):
    """Maintains the averaged weights and evaluates validation with them each epoch."""

    def __init__(self, mode: str, *, momentum: float = 0.99, start_epoch: int = 1, bn_batches: Any = None) -> None:
        super().__init__()
        if mode not in ("ema", "swa"):
            raise ValueError(f"unknown weight averaging {mode!r} (expected ema or swa)")
        self.mode, self.momentum, self.start_epoch = mode, float(momentum), int(start_epoch)
        self.bn_batches = bn_batches
        self.average: list[np.ndarray] | None = None
        self.count = 0  # SWA: epochs averaged
        self._epoch = 0
        self._updated_epoch = -1
        self._raw: list[np.ndarray] | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.average, self.count, self._updated_epoch = None, 0, -1

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.mode != "ema":
            return
        weights = self.model.get_weights()
        if self.average is None:
            self.average = [np.array(w, copy=True) for w in weights]
            return
        m = self.momentum
        for avg, w in zip(self.average, weights, strict=True):
            if np.issubdtype(avg.dtype, np.floating):
                avg *= m
                avg += (1.0 - m) * w
            else:
                avg[...] = w

    def _update_swa(self) -> None:
        """Fold this epoch's end weights into the SWA mean (once per epoch), then refresh BN."""
        if self.mode != "swa" or self._epoch < self.start_epoch or self._updated_epoch == self._epoch:
            return
        self._updated_epoch = self._epoch
        weights = self.model.get_weights()
        self.count += 1
        if self.average is None:
            self.average = [np.array(w, copy=True) for w in weights]
        else:
            for avg, w in zip(self.average, weights, strict=True):
                if np.issubdtype(avg.dtype, np.floating):
                    avg += (w - avg) / self.count
        if self.bn_batches is not None:
            raw = self.model.get_weights()
            self.model.set_weights(self.average)
            refresh_batchnorm(self.model, self.bn_batches)
            self.average = [np.array(w, copy=True) for w in self.model.get_weights()]
            self.model.set_weights(raw)

    def candidate(self) -> list[np.ndarray] | None:
        """The averaged weights as of now (None before there are any: the raw weights stand)."""
        return None if self.average is None else [np.array(w, copy=True) for w in self.average]

    # Validation during fit sees the averaged weights; training continues from the raw ones.
    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._update_swa()
        if self.average is not None and self._raw is None:
            self._raw = self.model.get_weights()
            self.model.set_weights(self.average)

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._raw is not None:
            self.model.set_weights(self._raw)
            self._raw = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._update_swa()  # when no validation pass ran this epoch


def refresh_batchnorm(model: keras.Model, batches: Any) -> None:
    """Re-estimate every BatchNormalization layer's statistics as the mean over `batches`.

    Each batch runs in training mode with momentum 0, so the moving statistics become that
    batch's; their running mean over the batches is assigned at the end (the equal-weight
    average torch.optim.swa_utils.update_bn computes with momentum=None).
    """
    # Keras lists nested layers (a ResidualBlock's BatchNorms) only through _flatten_layers.
    layers = model._flatten_layers(include_self=False, recursive=True)
    bns = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns:
        return
    momenta = [bn.momentum for bn in bns]
    sums = [[np.zeros(bn.moving_mean.shape), np.zeros(bn.moving_variance.shape)] for bn in bns]
    seen = 0
    try:
        for bn in bns:
            bn.momentum = 0.0
        for batch in batches:
            images = batch[0] if isinstance(batch, tuple | list) else batch
            model(images, training=True)
            seen += 1
            for (mean, var), bn in zip(sums, bns, strict=True):
                mean += keras.ops.convert_to_numpy(bn.moving_mean)
                var += keras.ops.convert_to_numpy(bn.moving_variance)
    finally:
        for bn, momentum in zip(bns, momenta, strict=True):
            bn.momentum = momentum
    if seen:
        for (mean, var), bn in zip(sums, bns, strict=True):
            bn.moving_mean.assign((mean / seen).astype("float32"))
            bn.moving_variance.assign((var / seen).astype("float32"))
