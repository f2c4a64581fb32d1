"""Mixup (Zhang et al. 2018) within a training batch, respecting ckrun's in-band label masks.

Each batch draws one λ ~ Beta(α, α) and a permutation, and replaces image i by
λ·x_i + (1-λ)·x_perm(i), and its targets by the same convex combination. A mixed target is
only known when both of its parts are: an emotion row stays all-zero (unlabelled) unless
both images carry an emotion, an AU entry stays -1 unless both images know that AU. A
half-known target would be a wrong target, not a soft one. Per-sample loss weights, when
the batch carries them, are mixed the same way (the mixed image is as important as the
mix of its parts).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from ckrun.data.labels import ONE_HOT_LABELS


def _beta(seed: tf.Tensor, alpha: float) -> tf.Tensor:
    """One λ ~ Beta(α, α) as G1 / (G1 + G2) of two Gamma(α) draws (stateless)."""
    g1 = tf.random.stateless_gamma([], seed=seed, alpha=alpha)
    g2 = tf.random.stateless_gamma([], seed=seed + 1, alpha=alpha)
    return g1 / tf.maximum(g1 + g2, 1e-12)


def mix_labels(labels: dict[str, tf.Tensor], lam: tf.Tensor, perm: tf.Tensor) -> dict[str, tf.Tensor]:
    """Convex combination of targets; entries unknown in either part stay masked."""
    out = {}
    for key, value in labels.items():
        value = tf.cast(value, tf.float32)
        other = tf.gather(value, perm)
        mixed = lam * value + (1.0 - lam) * other
        if key in ONE_HOT_LABELS:  # all-zero row = unlabelled
            both = (tf.reduce_sum(value, -1, keepdims=True) > 0) & (tf.reduce_sum(other, -1, keepdims=True) > 0)
            out[key] = tf.where(both, mixed, tf.zeros_like(mixed))
        else:  # -1 entry = unknown AU
            both = (value >= 0) & (other >= 0)
            out[key] = tf.where(both, mixed, -tf.ones_like(mixed))
    return out


def mix_batch(batch: tuple[Any, ...], seed: tf.Tensor, alpha: float) -> tuple[Any, ...]:
    """Mix one (images, labels[, sample_weights]) batch; `seed` is a stateless [2] seed."""
    images, labels, *rest = batch
    images = tf.cast(images, tf.float32)
    n = tf.shape(images)[0]
    lam = _beta(seed, alpha)
    perm = tf.argsort(tf.random.stateless_uniform([n], seed=seed + 2))
    mixed = lam * images + (1.0 - lam) * tf.gather(images, perm)

    def mix(w: Any) -> tf.Tensor:
        w = tf.cast(w, tf.float32)
        return lam * w + (1.0 - lam) * tf.gather(w, perm)

    weights = [tf.nest.map_structure(mix, r) for r in rest]
    return (mixed, mix_labels(labels, lam, perm), *weights)
