"""Search spaces as data: the YAML format, its validation, and the one `suggest_config`.

A study's space lives in a file (``search_spaces/seed.yaml`` is the seed report's space,
``cpu.yaml`` the CPU space centred on the default recipe, ``quick.yaml`` a short one), so it
can be reviewed, versioned and logged with the study instead of being buried in code. The file
is validated once, before any trial: unknown keys, empty choices, bad ranges, keys that would
make trials incomparable, and bounds the run config would reject are one-line errors naming the
file and the key.

Format::

    description: free text
    stages: 2             # optional: stages for per-stage params  [default: the base config's]
    startup_trials: 10    # optional: random trials before TPE / finished trials before pruning
    warmup_epochs: 1      # optional: epochs a trial runs before it can be pruned
    params:
      l2: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}
      epochs: {type: int, low: 10, high: 100, step: 5}
      filters: {type: categorical, choices: [64, 128, 256], per_stage: true}

``type`` may be left out (choices → categorical, integer bounds → int, else float). A
``per_stage`` param (filters, blocks, strides) is suggested once per stage as ``filters_1``,
``filters_2``, ...; every other key is any TrainConfig key (see ``ckrun schema``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from ckrun.config import PRETRAINED_ONLY_KEYS, RESNET_ONLY_KEYS, TrainConfig
from ckrun.errors import ConfigError

if TYPE_CHECKING:
    from optuna.trial import BaseTrial

STAGE_KEYS = ("filters", "blocks", "strides")

# Config keys a study must hold fixed, and why (the error message quotes the reason).
UNSEARCHABLE: dict[str, str] = {
    **dict.fromkeys(
        (
            "peak_frames",
            "require_emotion",
            "split_method",
            "allow_subject_overlap",
            "val_fraction",
            "test_fraction",
            "seed",
        ),
        "it changes the data or the split, so trials would not be comparable",
    ),
    **dict.fromkeys(("aus", "min_au_count"), "it changes which AUs are scored, so AU F1 would not be comparable"),
    "objective": "the study's objective is chosen with --objective",
    "preset": "search the architecture keys (filters, blocks, image_size, ...) instead",
    **dict.fromkeys(
        ("cache", "strategy", "log_model", "deterministic"), "it is an execution setting, not a hyperparameter"
    ),
}


# --------------------------------------------------------------------------------------
# Search space: YAML validated with pydantic


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    per_stage: bool = Field(False, description="one value per stage (filters_1, filters_2, ...)")


class FloatParam(_Param):
    """Uniform (or log-uniform) float between low and high."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check_range(self) -> FloatParam:
        _check_bounds(self.low, self.high, self.log, self.step)
        return self


class IntParam(_Param):
    """Integer between low and high (inclusive), every `step`."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _check_range(self) -> IntParam:
        _check_bounds(self.low, self.high, self.log, None if self.step == 1 else self.step)
        return self


class CategoricalParam(_Param):
    """One of a list of values."""

    type: Literal["categorical"]
    choices: list[bool | int | float | str] = Field(min_length=1)

    @field_validator("choices")
    @classmethod
    def _unique(cls, choices: list[Any]) -> list[Any]:
        if len({repr(c) for c in choices}) != len(choices):
            raise ValueError(f"choices must be distinct (received {choices})")
        return choices


def _check_bounds(low: float, high: float, log: bool, step: float | None) -> None:
    if not low < high:
        raise ValueError(f"low must be below high (received low={low}, high={high}); use choices for a fixed value")
    if log and low <= 0:
        raise ValueError(f"log=true needs low > 0 (received low={low})")
    if log and step is not None:
        raise ValueError("log and step cannot be combined")
    if step is not None and step > high - low:
        raise ValueError(f"step={step} is larger than the range {low}..{high}")


ParamSpec = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class SearchSpace(BaseModel):
    """What a study varies; everything else comes from the base config (--config/--set)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    stages: int | None = Field(None, ge=1, le=8, description="stages of per-stage params  [default: the base config's]")
    startup_trials: int = Field(10, ge=0, description="random trials before TPE, and finished trials before pruning")
    warmup_epochs: int = Field(1, ge=0, description="epochs a trial runs before it can be pruned")
    params: dict[str, ParamSpec] = Field(min_length=1)

    _source: str = PrivateAttr("")
    _text: str = PrivateAttr("")

    @model_validator(mode="before")
    @classmethod
    def _infer_types(cls, data: Any) -> Any:
        """`type` may be left out: choices → categorical, integer bounds → int, else float."""
        if not isinstance(data, Mapping) or not isinstance(data.get("params"), Mapping):
            return data
        params = {}
        for name, spec in data["params"].items():
            if isinstance(spec, Mapping) and "type" not in spec:
                ints = all(isinstance(spec.get(k), int) and not isinstance(spec.get(k), bool) for k in ("low", "high"))
                spec = {**spec, "type": "categorical" if "choices" in spec else "int" if ints else "float"}
            params[name] = spec
        return {**data, "params": params}

    @field_validator("params")
    @classmethod
    def _known_keys(cls, params: dict[str, Any]) -> dict[str, Any]:
        for name, spec in params.items():
            if name not in TrainConfig.model_fields:
                raise ValueError(f"{name}: not a config key (see `ckrun schema`)")
            if name in UNSEARCHABLE:
                raise ValueError(f"{name}: cannot be searched: {UNSEARCHABLE[name]}")
            if name in STAGE_KEYS and not spec.per_stage:
                raise ValueError(f"{name}: has one value per stage; set per_stage: true")
            if name not in STAGE_KEYS and spec.per_stage:
                raise ValueError(f"{name}: per_stage is only for {', '.join(STAGE_KEYS)}")
        return params

    @property
    def source(self) -> str:
        return self._source

    @property
    def text(self) -> str:
        return self._text

    def max_epochs(self, base: TrainConfig) -> int:
        spec = self.params.get("epochs")
        if spec is None:
            return base.epochs
        return int(max(spec.choices) if isinstance(spec, CategoricalParam) else spec.high)


def bundled_spaces() -> dict[str, Path]:
    """Search spaces shipped with ckrun (`--search-space cpu`, `quick` or `seed`)."""
    folder = resources.files("ckrun") / "search_spaces"
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml")}


def load_search_space(spec: str | Path) -> SearchSpace:
    """A bundled space by name, or a YAML file; one-line ConfigError naming the file and key."""
    bundled = bundled_spaces()
    path = bundled.get(str(spec), Path(spec))
    if not path.is_file():
        raise ConfigError(f"search space not found: {spec} (a YAML file, or one of: {', '.join(sorted(bundled))})")
    try:
        text = path.read_text()
        data = yaml.safe_load(text)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"search space {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"search space {path}: expected a mapping with a 'params' key, got {type(data).__name__}")
    try:
        space = SearchSpace.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_space_error(exc, path)) from None
    space._source, space._text = str(path), text
    return space


def _space_error(exc: ValidationError, path: Path) -> str:
    """One line per problem, keyed like the file (``params.l2.low``), without pydantic's union tags."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p not in ("float", "int", "categorical"))
        msg = err["msg"].removeprefix("Value error, ")
        if loc == "params" and ": " in msg:  # our key checks name the param first: "l2x: not a config key"
            name, msg = msg.split(": ", 1)
            loc = f"params.{name}"
        received = err.get("input")
        detail = f" (received {received!r})" if err["type"] in ("extra_forbidden", "literal_error") else ""
        problems.append(f"{loc}: {msg}{detail}" if loc else msg)
    return f"search space {path}: " + "; ".join(problems)


def check_space(space: SearchSpace, base: TrainConfig) -> None:
    """Every bound and choice must be a valid value of its config key (fail before any trial)."""
    if base.backbone != "resnet" and "backbone" not in space.params:
        inert = [f"params.{name}" for name in space.params if name in RESNET_ONLY_KEYS]
        inert += ["stages"] if space.stages else []
        if inert:
            raise ConfigError(
                f"search space {space.source}: {inert[0]} shapes the ResNet only, and the base config "
                f"fine-tunes backbone={base.backbone}: add --set preset=resnet (or --set backbone=resnet)"
            )
    if base.backbone == "resnet" and "backbone" not in space.params:
        inert = [f"params.{name}" for name in space.params if name in PRETRAINED_ONLY_KEYS]
        if inert:
            raise ConfigError(
                f"search space {space.source}: {inert[0]} applies to a pretrained backbone only, and the base "
                "config trains the ResNet from scratch: drop it, or tune the default preset"
            )
    stages = space.stages or len(base.filters)
    for name, spec in space.params.items():
        values = spec.choices if isinstance(spec, CategoricalParam) else [spec.low, spec.high]
        for value in values:
            reason = _refused(base, stages, name, (value,) * stages if spec.per_stage else value)
            if reason:
                raise ConfigError(f"search space {space.source}: params.{name}: {value!r} is not usable: {reason}")
        if isinstance(spec, FloatParam):
            # Whole-number bounds pass an int key, but suggest_float draws fractions between them, so
            # every trial would fail on its own config: probe one value inside the range as well.
            inside = spec.low + spec.step if spec.step is not None else math.nextafter(spec.low, spec.high)
            reason = _refused(base, stages, name, (inside,) * stages if spec.per_stage else inside)
            if reason:
                raise ConfigError(
                    f"search space {space.source}: params.{name}: type float draws values {name} does not "
                    f"take ({reason}): use type int (or choices)"
                )


def _refused(base: TrainConfig, stages: int, name: str, value: Any) -> str | None:
    """Why the base config refuses `name=value`, or None when it takes it."""
    try:
        base.updated(**{**_stage_defaults(base, stages), name: value})
    except ConfigError as exc:
        return str(exc).removeprefix("invalid config: ")
    return None


# --------------------------------------------------------------------------------------
# Suggest: the one place that calls trial.suggest_*


def _stage_defaults(base: TrainConfig, stages: int) -> dict[str, tuple[int, ...]]:
    """Base per-stage values resized to `stages` (last value repeated; stride 2 after stage 1)."""
    if stages == len(base.filters):
        return {}
    out = {}
    for key in ("filters", "blocks"):
        values = list(getattr(base, key))
        out[key] = tuple((values + [values[-1]] * stages)[:stages])
    out["strides"] = (base.strides[0],) + (2,) * (stages - 1)
    return out


def _suggest(trial: BaseTrial, name: str, spec: FloatParam | IntParam | CategoricalParam) -> Any:
    if isinstance(spec, CategoricalParam):
        return trial.suggest_categorical(name, spec.choices)
    if isinstance(spec, IntParam):
        return trial.suggest_int(name, spec.low, spec.high, step=spec.step, log=spec.log)
    return trial.suggest_float(name, spec.low, spec.high, step=spec.step, log=spec.log)


def suggest_config(trial: BaseTrial, space: SearchSpace, base_cfg: TrainConfig) -> TrainConfig:
    """The trial's config: `base_cfg` with every searched key suggested (per-stage keys as `name_i`)."""
    stages = space.stages or len(base_cfg.filters)
    changes: dict[str, Any] = dict(_stage_defaults(base_cfg, stages))
    for name, spec in space.params.items():
        if spec.per_stage:
            changes[name] = tuple(_suggest(trial, f"{name}_{i}", spec) for i in range(1, stages + 1))
        else:
            changes[name] = _suggest(trial, name, spec)
    return base_cfg.updated(**changes)
