"""The ``--max-trials`` cap across any number of concurrent workers.

The exact guarantee of ``--max-trials N`` with any number of concurrent workers: at most N
*counted* trials are ever trained. Every trial counts, whatever its state (COMPLETE, PRUNED,
FAIL, RUNNING, WAITING), except (a) a trial failed by the heartbeat check whose retry was
queued (the retry counts instead) and (b) a trial skipped at the cap. A worker checks the cap
before asking for a trial (it stops when the cap is reached and no retry is queued) and again
right after asking, counting only the trials numbered before its own (numbers are unique and
increasing). A worker that lost that race ends its fresh trial FAIL with the user attribute
``ckrun.skipped = max_trials``, with no run and no training, and stops. So besides the N
counted trials the study may hold at most one skipped trial per worker that raced at the cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ckrun.tune.attrs import SKIPPED_ATTR

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


def superseded(trials: Sequence[FrozenTrial]) -> set[int]:
    """Trial numbers replaced by a heartbeat retry (the retry counts instead)."""
    out: set[int] = set()
    for t in trials:
        out.update(int(n) for n in t.system_attrs.get("retry_history", []))
    return out


def _counts(trial: FrozenTrial, superseded: set[int]) -> bool:
    return trial.number not in superseded and not trial.user_attrs.get(SKIPPED_ATTR)


def counted_trials(trials: Sequence[FrozenTrial]) -> int:
    """Trials that count towards --max-trials: all states, minus retried-stale and skipped ones."""
    replaced = superseded(trials)
    return sum(_counts(t, replaced) for t in trials)


def over_cap(trials: Sequence[FrozenTrial], number: int, cap: int) -> bool:
    """True when `cap` counted trials are numbered before `number` (checked right after asking).

    Trial numbers are unique and increasing, so of several workers racing at the cap only
    those whose trial still fits go on; the others skip without training.
    """
    replaced = superseded(trials)
    return sum(t.number < number and _counts(t, replaced) for t in trials) >= cap


def cap_reached(trials: Sequence[FrozenTrial], cap: int) -> bool:
    """No room for a new trial and no queued (WAITING) trial, such as a heartbeat retry, left to run."""
    return counted_trials(trials) >= cap and not any(t.state.name == "WAITING" for t in trials)


class MaxTrialsReached(Exception):
    """Raised inside a trial that was asked for after the study reached --max-trials."""
