"""Recipe options inside a real Keras fit: weight averaging and epoch selection restore exactly
the weights they name, with the regularisers and the AU losses switched on.

Small random arrays stand in for faces (no decoding, no MLflow); a recorder callback keeps
the weights after every step, and the expected weights are recomputed from that record.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest

from ckrun.arrays import SplitArrays
from ckrun.config import load_config
from ckrun.data.pipeline import Preprocessing
from ckrun.train import fit_model

pytestmark = pytest.mark.slow

AUS = ("AU1", "AU2")
PREP = Preprocessing(32, 1, "none", 0.0, (128.0,), (64.0,), aus=AUS)


def _arrays(n: int, seed: int) -> SplitArrays:
    rng = np.random.default_rng(seed)
    emotion = np.eye(3, dtype="float32")[rng.integers(0, 3, n)]
    emotion[::5] = 0.0  # some unlabelled rows
    aus = rng.integers(0, 2, (n, len(AUS))).astype("float32")
    aus[::4, 0] = -1.0  # some unknown AU entries
    return SplitArrays(rng.integers(0, 255, (n, 32, 32, 1)).astype("uint8"), {"emotion": emotion, "aus": aus})


ARRAYS = {"train": _arrays(24, 0), "val": _arrays(12, 1), "test": _arrays(4, 2)}


class Recorder(keras.callbacks.Callback):
    """The weights after every training step, and after the last step of every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[list[np.ndarray]] = []
        self.epochs: list[list[np.ndarray]] = []

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.steps.append(self.model.get_weights())

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.epochs.append(self.steps[-1])


def _fit(*overrides: str) -> tuple[Any, Recorder]:
    cfg = load_config(overrides=["preset=tiny", "batch_size=8", *overrides])
    recorder = Recorder()
    return fit_model(cfg, ARRAYS, PREP, callbacks=[recorder], verbose=False), recorder


def test_ema_weights_are_the_moving_average_of_the_recorded_steps() -> None:
    outcome, recorder = _fit("epochs=2", "weight_averaging=ema", "ema_momentum=0.8", "selection=last")
    assert len(recorder.steps) == 6  # 24 images / batch 8, two epochs
    expected = [np.array(w, dtype="float64") for w in recorder.steps[0]]
    for step in recorder.steps[1:]:
        expected = [0.8 * e + 0.2 * w for e, w in zip(expected, step, strict=True)]
    for got, want in zip(outcome.model.get_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert outcome.best_epoch == 2


def test_swa_with_regularisers_and_asl_keeps_the_mean_of_epoch_weights_with_refreshed_batchnorm() -> None:
    outcome, recorder = _fit(
        "epochs=3", "weight_averaging=swa", "swa_start=0.5", "selection=last",  # averages epochs 2 and 3
        "mixup=0.4", "label_smoothing=0.1", "drop_path=0.2", "au_loss=asl",
    )  # fmt: skip
    model = outcome.model
    trainable = [w.trainable for w in model.weights]
    final = model.get_weights()
    mean = [(a + b) / 2 for a, b in zip(recorder.epochs[1], recorder.epochs[2], strict=True)]
    for got, want, is_trainable in zip(final, mean, trainable, strict=True):
        if is_trainable:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    statistics = [(g, w) for g, w, t in zip(final, mean, trainable, strict=True) if not t]
    assert statistics and all(np.isfinite(g).all() for g, _ in statistics)
    assert not all(np.allclose(g, w) for g, w in statistics)  # re-estimated, not averaged
    assert np.isfinite(outcome.history["train_loss"]).all()


def test_smoothed_selection_restores_the_epoch_of_the_best_centred_mean(monkeypatch: pytest.MonkeyPatch) -> None:
    import ckrun.model.callbacks

    # A scripted val objective, so the selected epoch is not the last (where restoring is a no-op).
    script = iter([0.2, 0.9, 0.8, 0.1])
    monkeypatch.setattr(ckrun.model.callbacks.names, "objective", lambda *a, **k: next(script))
    outcome, recorder = _fit("epochs=4", "selection=smoothed", "selection_window=3")
    curve = pd.Series(outcome.history["val_objective"])
    smoothed = curve.rolling(3, center=True, min_periods=1).mean()
    assert outcome.best_epoch == int(smoothed.idxmax()) + 1 == 2
    assert outcome.selection_score == pytest.approx(smoothed.max())
    x = (ARRAYS["val"].images.astype("float32") - 128.0) / 64.0
    reference = keras.models.clone_model(outcome.model)
    reference.set_weights(recorder.epochs[outcome.best_epoch - 1])
    got, want = outcome.model.predict(x, verbose=0), reference.predict(x, verbose=0)
    for key in ("emotion", "aus"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6)


def test_early_stopping_ends_the_fit_says_so_and_keeps_the_best_epoch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import ckrun.model.callbacks

    # Best at epoch 2, then three epochs without a better one: a patience of 3 stops after epoch 5.
    script = iter([0.5, 0.7, 0.6, 0.7, 0.65, 0.95, 0.95, 0.95])
    monkeypatch.setattr(ckrun.model.callbacks.names, "objective", lambda *a, **k: next(script))
    cfg = load_config(overrides=["preset=tiny", "batch_size=8", "epochs=8", "early_stopping=3"])
    recorder = Recorder()
    outcome = fit_model(cfg, ARRAYS, PREP, callbacks=[recorder], verbose=True)
    assert len(outcome.history["val_objective"]) == len(recorder.epochs) == 5
    assert (outcome.best_epoch, outcome.selection_score) == (2, pytest.approx(0.7))
    for got, want in zip(outcome.model.get_weights(), recorder.epochs[1], strict=True):
        np.testing.assert_array_equal(got, want)
    out = capsys.readouterr().out
    assert "stopped after epoch 5 of 8: no better val objective for 3 epochs (early_stopping); keeping epoch 2" in out


def test_no_variable_is_created_inside_a_traced_step() -> None:
    """The loss and metric state exists before the first trace: TensorFlow traces a step that creates
    variables twice, which cost about 4 s of every fit and trial (mixup on, so the
    mixed dataset's shapes are the ones built from)."""
    import tensorflow as tf

    created_inside: list[str] = []

    def record(next_creator: Any, **kwargs: Any) -> Any:
        if tf.inside_function():
            created_inside.append(str(kwargs.get("name")))
        return next_creator(**kwargs)

    with tf.variable_creator_scope(record):
        outcome, _ = _fit("epochs=1", "mixup=0.2", "augment=false")
    assert outcome.history["train_loss"] and created_inside == []
