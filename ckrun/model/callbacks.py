"""The Keras callbacks of a ckrun fit: objective, progress line, MLflow curves, Optuna pruning.

They run in order on every epoch's logs: `ObjectiveAndRate` adds `val_objective` and
`learning_rate` first, so weight averaging and epoch selection (`ckrun.model.averaging`,
`ckrun.model.selection`), the progress line, the MLflow logger (and the Optuna pruner of a
trial, `PruneOnObjective`) all read the same numbers. Importing this module imports Keras, so
only code that fits a model imports it, inside the function that fits: `ckrun --help` stays
free of TensorFlow.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import keras

from ckrun import names, tracking
from ckrun.console import echo
from ckrun.errors import raise_if_interrupted

if TYPE_CHECKING:
    from optuna.trial import Trial


class StopOnSignal(keras.callbacks.Callback):
    """Raise a signal's `Interrupted` between batches: the CLI's handler only records a signal
    during a fit, and a raise lost inside a ``__del__`` is recorded too (see `ckrun.errors`)."""

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        raise_if_interrupted()

    def on_test_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        raise_if_interrupted()

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        raise_if_interrupted()


class ObjectiveAndRate(keras.callbacks.Callback):
    """Adds `val_objective` and `learning_rate` to each epoch's logs, before anyone reads them."""

    def __init__(self, kind: str, has_aus: bool) -> None:
        super().__init__()
        self.kind, self.has_aus = kind, has_aus

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is None:
            return
        if not self.has_aus:
            for key in [k for k in logs if "aus_" in k]:
                logs.pop(key)
        renamed = names.epoch_metrics(logs)
        logs["val_objective"] = names.objective(renamed, "val", self.kind if self.has_aus else "emotion")
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class EpochLine(keras.callbacks.Callback):
    """One progress line per epoch with the key train/val numbers and the time."""

    def __init__(self, epochs: int, prefix: str = "") -> None:
        super().__init__()
        self.epochs, self.prefix, self.start = epochs, prefix, 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        m = names.epoch_metrics(logs or {})
        parts = [f"{self.prefix}epoch {epoch + 1:>3}/{self.epochs}"]
        for key, label in (
            ("train_loss", "loss"),
            ("val_loss", "val_loss"),
            ("val_emotion_accuracy", "val_emo_acc"),
            ("val_emotion_f1", "val_emo_f1"),
            ("val_au_f1", "val_au_f1"),
            ("learning_rate", "lr"),
        ):
            if key in m:
                parts.append(f"{label} {m[key]:.2e}" if key == "learning_rate" else f"{label} {m[key]:.3f}")
        parts.append(f"{time.perf_counter() - self.start:.1f}s")
        echo("  ".join(parts))


class MlflowEpochLogger(keras.callbacks.Callback):
    """Logs each epoch's metrics to the active run under the names of docs/architecture.md (step = epoch).

    A `prefix` keeps the curves of an ensemble's extra members apart (``member2_val_loss``).
    """

    def __init__(self, prefix: str = "") -> None:
        super().__init__()
        self.prefix = prefix

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        metrics = names.epoch_metrics(logs or {})
        tracking.log_metrics({f"{self.prefix}{k}": v for k, v in metrics.items()}, step=epoch + 1)


class PruneOnObjective(keras.callbacks.Callback):
    """Reports `monitor` each epoch; a pruned trial stops after that epoch's metrics are logged.

    optuna_integration's KerasPruningCallback raises inside on_epoch_end, which train() runs
    before its MLflow epoch logger, so the pruned epoch would be missing from the run's curves.
    This one asks Keras to stop and raises TrialPruned from on_train_end instead. The last
    epoch is reported but never pruned: it would discard a finished trial and save no epoch.
    """

    def __init__(self, trial: Trial, monitor: str = "val_objective") -> None:
        super().__init__()
        self.trial, self.monitor = trial, monitor
        self.pruned_at: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        self.trial.report(float(value), step=epoch + 1)
        last = epoch + 1 >= (self.params or {}).get("epochs", math.inf)
        if not last and self.trial.should_prune():  # stopping after the last epoch saves nothing
            self.pruned_at = epoch + 1
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.pruned_at is not None:
            import optuna  # only trials of a study get here

            raise optuna.TrialPruned(f"pruned at epoch {self.pruned_at}")
