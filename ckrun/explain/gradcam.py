"""Grad-CAM (Selvaraju et al. 2017) for the two heads of a ckrun model.

The map of one output is the ReLU of the last convolutional block's channels weighted by the
spatial mean of that output's gradient, upsampled to the input size: where in the face the
features that raise the output sit. Gradients are taken of the head's logit (its Dense layer
before softmax/sigmoid), as in the paper, so a saturated probability still has a map.

Works on any Keras model with the two named heads (``emotion``, ``aus``) as Dense layers and
a rank-4 feature map somewhere before them, which is what `ckrun.model.resnet` builds and
what the tests construct by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

EMOTION_HEAD = "emotion"
AU_HEAD = "aus"

Target = tuple[str, int]  # (head, output index)


def last_feature_layer(model: Any) -> Any:
    """The last layer whose output is a spatial (N, H, W, C) map: the last conv block's output.

    Pooling layers are passed over: a grid pool's few cells would give a map of a few pixels,
    and the gradient reaches the block before it through the pool anyway.
    """
    import keras

    pools = (keras.layers.AveragePooling2D, keras.layers.MaxPooling2D)
    for layer in reversed(model.layers):
        if isinstance(layer, pools):
            continue
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if len(shape) == 4 and (shape[1] or 0) > 1:
            return layer
    raise ValueError(f"model {model.name!r} has no spatial feature map for Grad-CAM")


def gradcam(model: Any, x: np.ndarray, targets: Sequence[Target]) -> np.ndarray:
    """(N, T, H, W) maps in [0, 1] of each target for each image of the normalised batch `x`.

    Each map is divided by its own maximum (an all-zero map stays zero), so maps show where,
    not how strongly; shares of a map inside a region are unaffected by the scaling.
    """
    import keras
    import tensorflow as tf

    x = np.asarray(x, np.float32)
    n, height, width = x.shape[0], x.shape[1], x.shape[2]
    if n == 0 or not targets:
        return np.zeros((n, len(targets), height, width), np.float32)
    heads = {name: model.get_layer(name) for name in {head for head, _ in targets}}
    feature = last_feature_layer(model)
    probe = keras.Model(model.inputs, [feature.output, *(heads[h].input for h in heads)])
    with tf.GradientTape(persistent=True) as tape:
        features, *head_inputs = probe(tf.constant(x), training=False)
        logits = {
            name: tf.matmul(inputs, heads[name].kernel) + (heads[name].bias if heads[name].use_bias else 0.0)
            for name, inputs in zip(heads, head_inputs, strict=True)
        }
        chosen = [logits[head][:, index] for head, index in targets]
    maps = []
    for score in chosen:
        grads = tape.gradient(score, features)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1, keepdims=True))
        cam = tf.image.resize(cam, (height, width), method="bilinear")[..., 0]
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        maps.append(tf.where(peak > 0, cam / tf.where(peak > 0, peak, 1.0), 0.0))
    del tape
    return np.stack([m.numpy() for m in maps], axis=1).astype(np.float32)
