"""How a study picks the next trial (sampler) and stops a poor one early (pruner).

The sampler is seeded per trial number, not per worker, so concurrent workers and a resumed
study each draw their own suggestions and a rerun with the same seed repeats them. Pruning
acts on the per-epoch validation objective, one step per epoch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.samplers import BaseSampler

from ckrun.errors import ConfigError

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.pruners import BasePruner
    from optuna.study import Study
    from optuna.trial import FrozenTrial, TrialState

    from ckrun.tune.space import SearchSpace


def _mix_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class TrialSeededSampler(BaseSampler):
    """Delegates to a fresh sampler seeded with (seed, trial number).

    One seeded sampler per worker would make concurrent workers, and a resumed study,
    replay the same random start-up suggestions; seeding per trial number keeps the study
    reproducible and gives every trial its own draw, whichever worker runs it. TPE keeps
    no state besides its RNG (it reads the history from the study), so nothing is lost.
    """

    def __init__(self, factory: Callable[[int | None], BaseSampler], seed: int | None) -> None:
        self._factory, self._seed = factory, seed
        self._current: tuple[int, BaseSampler] | None = None

    def _for(self, trial: FrozenTrial) -> BaseSampler:
        if self._current is None or self._current[0] != trial.number:
            seed = None if self._seed is None else _mix_seed(self._seed, trial.number)
            self._current = (trial.number, self._factory(seed))
        return self._current[1]

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._for(trial).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._current = None


def make_sampler(kind: str, seed: int | None, startup_trials: int) -> TrialSeededSampler:
    """TPE (constant liar, so concurrent workers spread out) or random, seeded per trial."""

    def factory(trial_seed: int | None) -> BaseSampler:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if kind == "random":
                return optuna.samplers.RandomSampler(seed=trial_seed)
            return optuna.samplers.TPESampler(seed=trial_seed, n_startup_trials=startup_trials, constant_liar=True)

    if kind not in ("tpe", "random"):
        raise ConfigError(f"unknown sampler {kind!r} (expected tpe or random)")
    return TrialSeededSampler(factory, seed)


def make_pruner(kind: str, space: SearchSpace, max_epochs: int) -> BasePruner:
    """Median or Hyperband on the per-epoch validation objective (steps are epochs)."""
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=space.startup_trials, n_warmup_steps=space.warmup_epochs)
    if kind == "hyperband":
        top = max(2, max_epochs)
        return optuna.pruners.HyperbandPruner(
            min_resource=min(max(1, space.warmup_epochs), top - 1), max_resource=top, reduction_factor=3
        )
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {kind!r} (expected median, hyperband or none)")
