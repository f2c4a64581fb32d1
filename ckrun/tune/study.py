"""The Optuna study itself: open or create it, check a resumed one still matches, count its trials.

A study outlives any one `ckrun tune`: workers join it and later invocations resume it, so
the objective, search space and base config it was created with are stored on it and checked
on every open.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

import optuna
import pandas as pd
import yaml

from ckrun.console import warn
from ckrun.errors import ConfigError
from ckrun.tune.attrs import PARETO_TARGETS, RUN_ID_ATTR, SKIPPED_ATTR
from ckrun.tune.cap import superseded
from ckrun.tune.sampling import make_pruner, make_sampler
from ckrun.tune.storage import StorageSpec, open_storage

if TYPE_CHECKING:
    from optuna.study import Study

    from ckrun.config import TrainConfig
    from ckrun.tune.options import TuneOptions
    from ckrun.tune.space import SearchSpace


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Our progress line replaces Optuna's INFO lines (study created, trial finished); warnings stay."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def open_study(options: TuneOptions, spec: StorageSpec, space: SearchSpace, base_cfg: TrainConfig) -> Study:
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
    _check_study_matches(study, options, space, base_cfg)
    return study


def _check_study_matches(study: Study, options: TuneOptions, space: SearchSpace, base_cfg: TrainConfig) -> None:
    """A resumed study must keep its objective; a changed space or base config is warned about."""
    attrs = study.user_attrs
    base_yaml = _base_yaml(base_cfg, space)
    if "ckrun.objective" not in attrs:  # the objective goes last: a worker that sees it sees the rest
        study.set_user_attr("ckrun.search_space", space.text)
        study.set_user_attr("ckrun.base_config", base_yaml)
        study.set_user_attr("ckrun.objective", options.objective)
        return
    if attrs["ckrun.objective"] != options.objective:
        raise ConfigError(
            f"study {options.study_name!r} optimises --objective {attrs['ckrun.objective']}, not {options.objective}; "
            "pick another --study-name"
        )
    if attrs.get("ckrun.search_space") != space.text:
        warn(f"study {options.study_name!r} was created with a different search space; trials may not line up")
    if attrs.get("ckrun.base_config") != base_yaml:
        warn(f"study {options.study_name!r} was created with a different base config (--config/--set)")


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
