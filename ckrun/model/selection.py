"""Which epoch's weights a fit keeps: the best, the best of a smoothed curve, or the last.

With ~200 validation images the per-epoch objective jumps by a few hundredths from noise
alone, so the single best epoch is partly a lottery won on the validation set (and its
score flatters the model). `smoothed` picks the epoch whose centred moving average of the
objective (window `window`, shorter at the ends of the run) is highest: a stretch of good
epochs rather than one lucky one. `last` keeps the final weights (natural with weight
averaging). Whatever the rule, the weights restored at the end are exactly those of the
epoch it names (`selected_epoch`), and `selected_score` is the rule's value there.

Each epoch's candidate weights are the model's own, or the averaged weights a
`WeightAveraging` callback holds (`candidate`). Optional patience stops a fit once the raw
objective has not improved for that many epochs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

RULES = ("best_epoch", "smoothed", "last")

Weights = list[np.ndarray]


def smoothed_scores(values: list[float], window: int) -> np.ndarray:
    """Centred moving average of `values` (NaNs ignored; truncated windows at both ends)."""
    arr = np.asarray(values, float)
    before, after = (window - 1) // 2, window // 2
    out = np.full(len(arr), np.nan)
    for i in range(len(arr)):
        part = arr[max(0, i - before) : i + after + 1]
        part = part[np.isfinite(part)]
        if len(part) and np.isfinite(arr[i]):
            out[i] = part.mean()
    return out


class EpochSelection(keras.callbacks.Callback):
    """Keeps the weights of the epoch the rule selects and restores them when the fit ends."""

    def __init__(
        self,
        rule: str = "best_epoch",
        window: int = 3,
        patience: int = 0,
        candidate: Callable[[], Weights | None] | None = None,
        monitor: str = "val_objective",
    ) -> None:
        super().__init__()
        if rule not in RULES:
            raise ValueError(f"unknown selection rule {rule!r} (expected one of: {', '.join(RULES)})")
        self.rule, self.window, self.patience, self.monitor = rule, max(1, int(window)), patience, monitor
        self._candidate = candidate
        self.on_train_begin()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.values: list[float] = []
        self.selected_epoch, self.selected_score = 0, float("nan")
        self._selected: Weights | None = None
        self._pending: dict[int, Weights] = {}  # smoothed: epochs whose window is still open
        self._best_raw, self._wait = -np.inf, 0
        self.stopped_epoch = 0  # the epoch after which patience ended the fit (0: it did not)

    def _weights(self) -> Weights:
        averaged = self._candidate() if self._candidate else None
        return averaged if averaged is not None else self.model.get_weights()

    def _offer(self, number: int, score: float, weights: Weights | None = None) -> None:
        if np.isfinite(score) and (self.selected_epoch == 0 or score > self.selected_score):
            self.selected_epoch, self.selected_score = number, float(score)
            self._selected = weights if weights is not None else self._weights()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = float((logs or {}).get(self.monitor, np.nan))
        self.values.append(value)
        number = epoch + 1
        if self.rule == "last":
            self.selected_epoch, self.selected_score, self._selected = number, value, self._weights()
        elif self.rule == "best_epoch":
            self._offer(number, value)
        else:
            self._pending[number] = self._weights()
            self._settle(final=False)
        if np.isfinite(value) and value > self._best_raw:
            self._best_raw, self._wait = value, 0
        else:
            self._wait += 1
            if self.patience and self._wait >= self.patience:
                self.model.stop_training = True
                self.stopped_epoch = number

    def _settle(self, final: bool) -> None:
        """Smoothed rule: score each pending epoch once its window is complete (all at the end)."""
        scores = smoothed_scores(self.values, self.window)
        last_complete = len(self.values) if final else len(self.values) - self.window // 2
        for number in sorted(n for n in self._pending if n <= last_complete):
            self._offer(number, scores[number - 1], self._pending.pop(number))

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.rule == "smoothed":
            self._settle(final=True)
        if self._selected is not None:
            self.model.set_weights(self._selected)
