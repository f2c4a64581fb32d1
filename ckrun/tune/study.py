"""The Optuna study itself: open or create it, check a resumed one still matches, count its trials.

A study outlives any one `ckrun tune`: workers join it and later invocations resume it, so
the objective, search space and base config it was created with are stored on it and checked
on every open.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import optuna
import pandas as pd
import yaml

from ckrun.errors import ConfigError
from ckrun.tune.attrs import PARETO_TARGETS, RUN_ID_ATTR, SKIPPED_ATTR
from ckrun.tune.cap import superseded
from ckrun.tune.sampling import make_pruner, make_sampler
from ckrun.tune.space import SearchSpace
from ckrun.tune.storage import StorageSpec, open_storage

if TYPE_CHECKING:
    from optuna.study import Study

    from ckrun.config import TrainConfig
    from ckrun.tune.options import TuneOptions


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Our progress line replaces Optuna's INFO lines (study created, trial finished); warnings stay."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def open_study(
    options: TuneOptions, spec: StorageSpec, space: SearchSpace, base_cfg: TrainConfig, data_digest: str | None = None
) -> Study:
    """Create the study, or load it (resume / join other workers) when it exists."""
    storage = open_storage(
        spec,
        heartbeat_interval=options.heartbeat_interval,
        grace_period=options.grace_period,
        max_retry=options.max_retry,
    )
    directions: list[Literal["maximize"]] = ["maximize"] * (2 if options.pareto else 1)
    seed = base_cfg.seed if options.seed is None else options.seed
    study = optuna.create_study(
        storage=storage,
        study_name=options.study_name,
        sampler=make_sampler(options.sampler, seed, space.startup_trials),
        pruner=make_pruner(options.pruner, space, space.max_epochs(base_cfg)),
        directions=directions,
        load_if_exists=True,
    )
    _check_study_matches(study, options, space, base_cfg, data_digest)
    return study


def check_resumable(options: TuneOptions, spec: StorageSpec, space: SearchSpace, base_cfg: TrainConfig) -> None:
    """Refuse now, not after hours of other work, to resume a study created with other settings."""
    storage = open_storage(spec, heartbeat_interval=options.heartbeat_interval, grace_period=options.grace_period)
    try:
        study = optuna.load_study(study_name=options.study_name, storage=storage)
    except KeyError:
        return  # created when the study starts
    if "ckrun.objective" in study.user_attrs:
        _check_study_matches(study, options, space, base_cfg)


def _check_study_matches(
    study: Study, options: TuneOptions, space: SearchSpace, base_cfg: TrainConfig, data_digest: str | None = None
) -> None:
    """A resumed study must keep its objective, the space its trials are drawn from, its base config and data.

    Trials drawn from another space or trained on another base config score on another scale:
    mixed into one study, the sampler would model them together and the best trial, hence the
    champion, could come from either. A changed description, ``startup_trials`` or
    ``warmup_epochs`` only steers the sampler and pruner, so it is accepted.
    """
    attrs = study.user_attrs
    if "ckrun.objective" not in attrs:  # the objective goes last: a worker that sees it sees the rest
        study.set_user_attr("ckrun.search_space", space.text)
        study.set_user_attr("ckrun.base_config", _base_yaml(base_cfg, space))
        if data_digest:
            study.set_user_attr("ckrun.data_digest", data_digest)
        study.set_user_attr("ckrun.objective", options.objective)
        return
    again = "resume it with the settings it was created with, or pick another --study-name"
    if attrs["ckrun.objective"] != options.objective:
        raise ConfigError(
            f"study {options.study_name!r} optimises --objective {attrs['ckrun.objective']}, not {options.objective}; "
            "pick another --study-name"
        )
    stored_data = attrs.get("ckrun.data_digest")
    if data_digest and stored_data and stored_data != data_digest:
        # Other images or another split: the trials' val objectives would not compare. The digest
        # hashes paths relative to the data's folder, so workers may keep the data anywhere.
        raise ConfigError(
            f"study {options.study_name!r} was created on other data (digest {stored_data}, this data "
            f"{data_digest}): {again}"
        )
    stored_space = _drawn_from(attrs.get("ckrun.search_space"))
    if stored_space is not None and stored_space != space.model_dump(include={"params", "stages"}):
        raise ConfigError(
            f"study {options.study_name!r} was created with a different search space (params or stages): {again}"
        )
    changed = _changed_keys(attrs.get("ckrun.base_config"), base_cfg, space)
    if changed:
        raise ConfigError(
            f"study {options.study_name!r} was created with a different base config ({'; '.join(changed[:3])}): {again}"
        )


# Settings that change how a trial runs or what it reports, never its validation objective: workers
# on several machines may differ in them (a cache folder of their own).
_NOT_COMPARED = (
    "cache",
    "strategy",
    "log_model",
    "deterministic",
    "explain_images_per_class",
    "bootstrap_samples",
    "confidence_level",
    "calibration_bins",
    "overfit_gap",
    "underfit_score",
)


def _drawn_from(text: str | None) -> dict[str, Any] | None:
    """The part of a space file that decides what trials are drawn (None when unreadable)."""
    try:
        data = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        return SearchSpace.model_validate(data).model_dump(include={"params", "stages"})
    except ValueError:
        return None


def _changed_keys(stored: str | None, base_cfg: TrainConfig, space: SearchSpace) -> list[str]:
    """``key: old -> new`` for each compared base-config key the study was created with otherwise.

    Keys only one side has (a study from a ckrun with fewer config keys) are not compared.
    """
    try:
        before = yaml.safe_load(stored) if stored else None
    except yaml.YAMLError:
        return []
    if not isinstance(before, dict):
        return []
    now = yaml.safe_load(_base_yaml(base_cfg, space))
    keys = sorted(k for k in before.keys() & now.keys() if k not in _NOT_COMPARED and before[k] != now[k])
    return [f"{k}: {before[k]!r} -> {now[k]!r}" for k in keys]


def _base_yaml(base_cfg: TrainConfig, space: SearchSpace) -> str:
    fixed = {k: v for k, v in base_cfg.model_dump().items() if k not in space.params and k != "objective"}
    return yaml.safe_dump({k: list(v) if isinstance(v, tuple) else v for k, v in fixed.items()}, sort_keys=True)


def load_existing_study(options: TuneOptions, spec: StorageSpec) -> Study:
    """The study for --finalize; an error naming the storage if it does not exist."""
    storage = open_storage(spec, heartbeat_interval=options.heartbeat_interval, grace_period=options.grace_period)
    try:
        return optuna.load_study(study_name=options.study_name, storage=storage)
    except KeyError:
        raise ConfigError(f"no study named {options.study_name!r} in {spec.label}") from None


def trial_counts(study: Study) -> dict[str, int]:
    trials = study.get_trials(deepcopy=False)
    counts = dict.fromkeys(("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"), 0)
    replaced = superseded(trials)
    for t in trials:
        if t.user_attrs.get(SKIPPED_ATTR):
            counts["SKIPPED"] = counts.get("SKIPPED", 0) + 1
        elif t.number not in replaced:
            counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def trials_table(study: Study) -> pd.DataFrame:
    """Every trial: number, state, value(s), params, run id, error or skip reason, durations."""
    multi = len(study.directions) > 1
    attrs = ("number", "values" if multi else "value", "state", "datetime_start", "duration", "params", "user_attrs")
    frame = study.trials_dataframe(attrs=attrs)
    if multi:
        frame = frame.rename(columns={"values_0": PARETO_TARGETS[0], "values_1": PARETO_TARGETS[1]})
    return frame.rename(columns={f"user_attrs_{RUN_ID_ATTR}": "run_id"})
