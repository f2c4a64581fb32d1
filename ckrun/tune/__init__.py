"""Optuna study over a search space: every trial one `train()` run, nested under one parent run.

`ckrun tune` replaces the seed's four hand-judged runs with a study: a search space read from
YAML (`search_spaces/*.yaml`), a seeded sampler, pruning on the per-epoch validation objective,
and storage that one laptop (SQLite, journal file) or several machines (PostgreSQL) share.
Every trial is a child MLflow run with the same params, curves and final metrics as
`ckrun train`; the parent run gets the best params and metrics, the trials table and Optuna's
plots, and the best model is registered as ``models:/<name>@champion``.

Several workers (`ckrun tune` started N times with the same ``--storage`` and
``--study-name``, on one machine or several) share the study; each trains its own trials, and
every trial is one child run of that worker's parent run. ``--max-trials N`` holds across all
of them; `cap.py` states the exact guarantee.

The package, in the order a study uses it:

- `options.py`   TuneOptions (what to do) and StudyResult (what was done)
- `space.py`     search-space YAML: format, validation, the one `suggest_config`
- `storage.py`   storage URL → StorageSpec (password never printed) → Optuna storage
- `sampling.py`  the per-trial-seeded sampler and the pruner
- `study.py`     open/create/load the study, consistency checks, trial counts, trials table
- `cap.py`       the ``--max-trials`` cap across concurrent workers
- `worker.py`    one worker's loop: objective, one trial, after-trial progress line
- `liveness.py`  workers' signs of life; failing, retrying and ending the runs of dead ones
- `champion.py`  best trial, parent-run artifacts, registration, one test evaluation
- `plots.py`     Optuna's study plots as artifacts
- `attrs.py`     the user attributes ckrun writes on trials
- `run.py`       `run_tune`: the whole command, start to end

Submodules import each other directly, never through this package; importing it loads
Optuna but not TensorFlow, and the CLI imports it only inside the ``tune`` command.
"""

from __future__ import annotations

from ckrun.tune.attrs import ERROR_ATTR, PARETO_TARGETS, RUN_ID_ATTR, SKIPPED_ATTR
from ckrun.tune.cap import MaxTrialsReached, cap_reached, counted_trials, over_cap
from ckrun.tune.options import StudyResult, TuneOptions
from ckrun.tune.run import run_tune
from ckrun.tune.sampling import make_sampler
from ckrun.tune.space import SearchSpace, check_space, load_search_space, suggest_config
from ckrun.tune.storage import StorageSpec, open_storage, resolve_storage
from ckrun.tune.study import check_resumable

__all__ = [
    "ERROR_ATTR",
    "PARETO_TARGETS",
    "RUN_ID_ATTR",
    "SKIPPED_ATTR",
    "MaxTrialsReached",
    "SearchSpace",
    "StorageSpec",
    "StudyResult",
    "TuneOptions",
    "cap_reached",
    "check_resumable",
    "check_space",
    "counted_trials",
    "load_search_space",
    "make_sampler",
    "open_storage",
    "over_cap",
    "resolve_storage",
    "run_tune",
    "suggest_config",
]
