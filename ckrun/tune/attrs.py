"""The names ckrun writes into an Optuna study, shared by the worker, the cap and the champion.

A trial's user attributes link it to its MLflow run and say why it failed or was skipped;
the bookkeeping (cap, counts, trials table) and other tools (tests, benchmarks) read them
back, so they are spelled once, here.
"""

from __future__ import annotations

RUN_ID_ATTR = "mlflow_run_id"  # the trial's child run
SKIPPED_ATTR = "ckrun.skipped"  # "max_trials": asked for after the study reached --max-trials
ERROR_ATTR = "ckrun.error"  # the exception that failed the trial
PARETO_TARGETS = ("val_emotion_f1", "val_au_f1")  # the two values of a pareto study, in order
WORKER_ATTR = "ckrun.worker_id"  # the worker running the trial (see ckrun.tune.liveness)
RETRY_OF_RUN_ATTR = "ckrun.retry_of_run_id"  # on a retry: the run of the trial it replaces
