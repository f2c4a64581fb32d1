"""The Keras callback that reports each epoch's objective to Optuna and prunes a poor trial.

Its own module because it imports Keras (so TensorFlow) at the top: the worker imports it only
when a trial trains, which keeps TensorFlow out of `ckrun --help` and `ckrun tune --finalize`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import keras
import optuna

if TYPE_CHECKING:
    from optuna.trial import Trial


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
            raise optuna.TrialPruned(f"pruned at epoch {self.pruned_at}")
