"""Many runs at once: `ckrun tune` (an Optuna study) and `ckrun run` (the main job)."""

from __future__ import annotations

from pathlib import Path

import click

from ckrun.cli.common import config_options, data_option, friendly_errors, load_cfg, require_data


@click.command("tune")
@data_option
@config_options
@click.option(
    "--search-space",
    default="cpu",
    show_default=True,
    help="search-space YAML file, or the name of a bundled one (cpu: centred on the default recipe; quick; seed)",
)
@click.option("--n-trials", type=click.IntRange(min=1), default=10, help="trials this worker runs")
@click.option(
    "--max-trials",
    type=click.IntRange(min=0),
    default=None,
    help="cap on the study's total trials across all workers; racing workers never train more (0 = no cap)",
)
@click.option("--timeout", type=click.FloatRange(min=1), default=None, help="stop starting trials after SECONDS")
@click.option(
    "--storage",
    default=None,
    help="Optuna storage: an RDB URL (postgresql://user@host/db for several machines), or a journal file "
    "for several processes on one machine (journal:///path/study.log, or a path ending in .log/.journal); "
    "keep passwords out of command lines with $CKRUN_STORAGE or PGPASSWORD  "
    "[default: $CKRUN_STORAGE, else sqlite:///optuna.db beside mlflow.db]",
)
@click.option("--study-name", default="ckrun-study", help="study name; an existing study is resumed")
@click.option(
    "--objective",
    type=click.Choice(["mean", "emotion", "au", "pareto"]),
    default="mean",
    help="validation objective; pareto = two objectives (emotion F1, AU F1)",
)
@click.option("--sampler", type=click.Choice(["tpe", "random"]), default="tpe", help="Optuna sampler (seeded)")
@click.option(
    "--pruner",
    type=click.Choice(["median", "hyperband", "none"]),
    default="median",
    help="prune trials on the per-epoch validation objective",
)
@click.option("--register-name", default="ckplus-resnet", help="registered model name for the best trial")
@click.option("--register/--no-register", default=True, help="register the best trial's model as @champion")
@click.option("--retrain", is_flag=True, help="retrain the best config on train+val before registering")
@click.option("--finalize", is_flag=True, help="only register/evaluate the best trial of an existing study")
@click.option(
    "--heartbeat",
    type=click.IntRange(min=1),
    default=60,
    help="seconds between this worker's signs of life in the storage (trial heartbeats and worker record)",
)
@click.option(
    "--grace-period",
    type=click.IntRange(min=2),
    default=180,
    help="seconds without a sign of life after which another worker takes this one for dead: its trial "
    "is failed and retried and its runs end KILLED (same-machine workers are checked by process id at once)",
)
@friendly_errors
def tune_cmd(
    data: Path | None,
    experiment: str | None,
    config_file: Path | None,
    overrides: tuple[str, ...],
    search_space: str,
    n_trials: int,
    max_trials: int | None,
    timeout: float | None,
    storage: str | None,
    study_name: str,
    objective: str,
    sampler: str,
    pruner: str,
    register_name: str,
    register: bool,
    retrain: bool,
    finalize: bool,
    heartbeat: int,
    grace_period: int,
) -> None:
    """Optuna study over the search space; every trial a child MLflow run of one parent."""
    if grace_period <= heartbeat:
        raise click.BadParameter(
            f"{grace_period} must be longer than --heartbeat {heartbeat}", param_hint="--grace-period"
        )
    cfg = load_cfg(config_file, overrides)
    require_data(data)
    from ckrun import tracking

    tracking.check_store(experiment)
    from ckrun.tune import TuneOptions, run_tune

    options = TuneOptions(
        search_space=search_space,
        n_trials=n_trials,
        max_trials=max_trials or None,
        timeout=timeout,
        storage=storage,
        study_name=study_name,
        objective=objective,
        sampler=sampler,
        pruner=pruner,
        register_name=register_name,
        register=register,
        retrain=retrain,
        finalize_only=finalize,
        experiment=experiment,
        heartbeat_interval=heartbeat,
        grace_period=grace_period,
    )
    result = run_tune(cfg, data, options)
    click.echo(result.summary())


@click.command("run")
@data_option
@config_options
@click.option(
    "--n-trials",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Optuna trials of the study (0 = none); one keeps `make run` under 15 minutes on 2 cores",
)
@click.option(
    "--search-space",
    default="cpu",
    show_default=True,
    help="search space of the study: a YAML file or a bundled one (cpu, quick, seed)",
)
@click.option("--study-name", default="ckrun-cpu", help="study name (resumed when it exists)")
@click.option(
    "--storage", default=None, help="Optuna storage URL  [default: $CKRUN_STORAGE, else optuna.db beside mlflow.db]"
)
@click.option("--report/--no-report", default=True, help="write the report at the end")
@friendly_errors
def run_cmd(
    data: Path | None,
    experiment: str | None,
    config_file: Path | None,
    overrides: tuple[str, ...],
    n_trials: int,
    search_space: str,
    study_name: str,
    storage: str | None,
    report: bool,
) -> None:
    """The main job: data, baseline, the default run, a short study with the champion registered, report."""
    cfg = load_cfg(config_file, overrides)
    require_data(data)
    from ckrun.main_job import run_main

    run_main(
        cfg,
        data,
        experiment=experiment,
        n_trials=n_trials,
        search_space=search_space,
        study_name=study_name,
        storage=storage,
        report=report,
    )
