"""The `ckrun` command line: parses options, validates them, calls the library.

Thin on purpose: every command is a few lines over a library function tests call directly.
TensorFlow, MLflow and Optuna are imported inside the commands, never at start-up, so
`--help` and usage errors answer at once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from ckrun import __version__

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}


def _friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn CkrunError into `error: ...` on one line and exit status 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ckrun.errors import CkrunError

        try:
            return func(*args, **kwargs)
        except CkrunError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def _quiet_tensorflow() -> None:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def data_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--data",
        type=click.Path(path_type=Path),
        default=None,
        help="CK+ root, manifest CSV or folder-per-class tree  [default: the embedded synthetic CK+]",
    )(func)


def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="override a config value (YAML-parsed, repeatable), e.g. --set l2=1e-4 --set filters=[32,64]",
    )(func)
    func = click.option(
        "--config",
        "config_file",
        type=click.Path(path_type=Path),
        default=None,
        help="YAML file of config values (see `ckrun schema`)",
    )(func)
    func = click.option(
        "--experiment",
        default=None,
        help="MLflow experiment name  [default: $MLFLOW_EXPERIMENT_ID under mlflow run, else 'ckrun']",
    )(func)
    return func


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="ckrun")
def cli() -> None:
    """Run, track and compare CK+ facial-expression experiments (emotion + FACS action units).

    Every command logs to MLflow ($MLFLOW_TRACKING_URI, default sqlite:///mlflow.db with
    artifacts in ./mlartifacts). Without --data, the embedded synthetic CK+ is used.
    """
    _quiet_tensorflow()


# --------------------------------------------------------------------------------------
# data


@cli.group(context_settings=CONTEXT)
def data() -> None:
    """Generate, import and describe datasets."""


@data.command("synth")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--subjects", type=click.IntRange(min=1), default=40, help="number of synthetic subjects")
@click.option("--seed", type=click.IntRange(min=0), default=0, help="random seed (same seed, same bytes)")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="processes  [default: min(2, CPUs)]")
@_friendly_errors
def data_synth(out: Path, subjects: int, seed: int, workers: int | None) -> None:
    """Write a synthetic CK+ in the official layout to OUT."""
    from ckrun.data.synth import generate_synthetic_ckplus

    summary = generate_synthetic_ckplus(out, subjects=subjects, seed=seed, workers=workers, progress=True)
    click.echo(
        f"wrote {summary.frames} frames of {summary.sequences} sequences "
        f"({summary.sequences_with_emotion} with emotion) for {summary.subjects} subjects to {out} "
        f"in {summary.elapsed_s:.1f}s"
    )


@data.command("import")
@click.argument("data_path", metavar="DATA", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("manifest.csv"), help="manifest CSV to write")
@click.option(
    "--format", "fmt", type=click.Choice(["auto", "ckplus", "csv", "folders"]), default="auto", help="dataset layout"
)
@click.option("--peak-frames", type=click.IntRange(min=1), default=3, help="last N frames of a CK+ sequence labelled")
@click.option("--require-emotion", is_flag=True, help="drop images without an emotion label")
@click.option(
    "--on-bad-image",
    type=click.Choice(["error", "skip"]),
    default="error",
    help="stop at an unreadable image, or skip and list it",
)
@click.option(
    "--split",
    "split_mode",
    type=click.Choice(["subject", "random"]),
    default="subject",
    help="random allows data without subject ids (scores will be optimistic)",
)
@click.option("--path-column", default="path", help="CSV column holding image paths")
@click.option("--emotion-column", default="emotion", help="CSV column holding emotion names")
@click.option("--subject-column", default="subject", help="CSV column holding subject ids")
@click.option("--au-prefix", default="AU", help="prefix of CSV AU columns (e.g. FACS_ maps FACS_12 to AU12)")
@_friendly_errors
def data_import(
    data_path: Path,
    out: Path,
    fmt: str,
    peak_frames: int,
    require_emotion: bool,
    on_bad_image: str,
    split_mode: str,
    path_column: str,
    emotion_column: str,
    subject_column: str,
    au_prefix: str,
) -> None:
    """Import DATA (CK+ root, manifest CSV or folder-per-class tree) into a manifest CSV."""
    from ckrun.data.importers import import_dataset
    from ckrun.data.manifest import save_manifest
    from ckrun.data.summary import format_summary, summarize

    result = import_dataset(
        data_path,
        fmt=fmt,
        peak_frames=peak_frames,
        require_emotion=require_emotion,
        on_bad_image=on_bad_image,
        split_random=split_mode == "random",
        path_column=path_column,
        emotion_column=emotion_column,
        subject_column=subject_column,
        au_prefix=au_prefix,
        progress=True,
    )
    save_manifest(result.manifest, out)
    click.echo(format_summary(summarize(result)))
    click.echo(f"manifest: {out}")


@data.command("describe")
@click.argument("data_path", metavar="DATA", required=False, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports/dataset"), help="output folder")
@click.option("--seed", type=click.IntRange(min=0), default=0, help="split seed (subjects per split)")
@_friendly_errors
def data_describe(data_path: Path | None, out: Path, seed: int) -> None:
    """Counts, image sizes, AU frequency and co-occurrence, splits and bias tables for DATA."""
    from ckrun.data.describe import describe
    from ckrun.data.loader import prepare_data

    prepared = prepare_data(data_path, seed=seed)
    desc = describe(prepared.manifest, out, progress=True)
    click.echo(f"described {len(prepared.manifest)} images from {prepared.source}")
    click.echo(f"summary: {desc.files.get('summary', out / 'summary.md')}")


# --------------------------------------------------------------------------------------
# training, evaluation, prediction


@cli.command("schema")
def schema() -> None:
    """Print the JSON schema of the run configuration (every --set key)."""
    from ckrun.config import config_schema

    click.echo(json.dumps(config_schema(), indent=2))


def _load_cfg(config_file: Path | None, overrides: tuple[str, ...]) -> Any:
    from ckrun.config import load_config

    return load_config(config_file, overrides)


@cli.command("train")
@data_option
@config_options
@click.option("--cv", type=click.IntRange(min=0), default=0, help="K-fold subject-exclusive cross-validation (0 = off)")
@click.option("--system-metrics", is_flag=True, help="log CPU/memory/GPU usage with MLflow's system metrics")
@click.option("--run-name", default=None, help="MLflow run name  [default: train-<timestamp>]")
@_friendly_errors
def train_cmd(
    data: Path | None,
    experiment: str | None,
    config_file: Path | None,
    overrides: tuple[str, ...],
    cv: int,
    system_metrics: bool,
    run_name: str | None,
) -> None:
    """Train the two-headed ResNet and log a complete MLflow run."""
    cfg = _load_cfg(config_file, overrides)
    from ckrun import tracking

    tracking.check_store()
    from ckrun.data.loader import prepare_for_config

    prepared = prepare_for_config(data, cfg)
    if cv:
        from ckrun.crossval import cross_validate

        result = cross_validate(cfg, prepared, cv, experiment=experiment, system_metrics=system_metrics)
        click.echo(f"cv run {result.run_id}: " + result.summary_line())
        return
    from ckrun.train import train

    result = train(cfg, prepared, experiment=experiment, run_name=run_name, system_metrics=system_metrics)
    click.echo(f"run id: {result.run_id}")
    click.echo(f"model: {result.model_uri}")


@cli.command("baseline")
@data_option
@config_options
@_friendly_errors
def baseline_cmd(
    data: Path | None, experiment: str | None, config_file: Path | None, overrides: tuple[str, ...]
) -> None:
    """Logistic regression on downscaled pixels, on the same split, logged as a run."""
    cfg = _load_cfg(config_file, overrides)
    from ckrun import tracking

    tracking.check_store()
    from ckrun.baseline import run_baseline
    from ckrun.data.loader import prepare_for_config

    result = run_baseline(cfg, prepare_for_config(data, cfg), experiment=experiment)
    click.echo(f"run id: {result.run_id}")


@cli.command("evaluate")
@click.argument("model_uri")
@data_option
@click.option("--split", type=click.Choice(["train", "val", "test", "all"]), default="test", help="split to score")
@click.option("--experiment", default=None, help="MLflow experiment for the evaluation run")
@_friendly_errors
def evaluate_cmd(model_uri: str, data: Path | None, split: str, experiment: str | None) -> None:
    """Score a logged model (runs:/… or models:/…) on DATA and log an evaluation run."""
    from ckrun import tracking

    tracking.check_store()
    from ckrun.evaluate import evaluate_model_uri

    result = evaluate_model_uri(model_uri, data, split=split, experiment=experiment)
    for key, value in sorted(result.metrics.items()):
        click.echo(f"{key:32s} {value:.4f}")
    click.echo(f"run id: {result.run_id}")


@cli.command("predict")
@click.argument("model_uri")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", help="output format")
@_friendly_errors
def predict_cmd(model_uri: str, images: tuple[Path, ...], fmt: str) -> None:
    """Emotion and AU predictions for IMAGES with a logged model's own preprocessing."""
    missing = [p for p in images if not p.is_file()]
    if missing:
        raise click.BadParameter(f"image not found: {missing[0]}", param_hint="IMAGES")
    from ckrun import tracking

    predictor = tracking.load_predictor(model_uri)
    table = predictor.predict_paths(list(images))
    if fmt == "csv":
        click.echo(table.to_csv(index=False), nl=False)
    else:
        click.echo(json.dumps(json.loads(table.to_json(orient="records")), indent=2))


# --------------------------------------------------------------------------------------
# tuning, reports, UI, the main job


@cli.command("tune")
@data_option
@config_options
@click.option(
    "--search-space",
    default="quick",
    show_default=True,
    help="search-space YAML file, or the name of a bundled one (seed, quick)",
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
@_friendly_errors
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
) -> None:
    """Optuna study over the search space; every trial a child MLflow run of one parent."""
    cfg = _load_cfg(config_file, overrides)
    from ckrun import tracking

    tracking.check_store()
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
    )
    result = run_tune(cfg, data, options)
    click.echo(result.summary())


@cli.command("report")
@click.option("--experiment", default=None, help="MLflow experiment to report on  [default: ckrun]")
@click.option("--study", default=None, help="Optuna study name to include (importance plots)")
@click.option(
    "--storage",
    default=None,
    help="Optuna storage URL of --study  [default: $CKRUN_STORAGE, else optuna.db beside mlflow.db]",
)
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="output folder  [default: reports/<experiment>]"
)
@data_option
@_friendly_errors
def report_cmd(
    experiment: str | None, study: str | None, storage: str | None, out: Path | None, data: Path | None
) -> None:
    """Write report.md and a self-contained report.html from what MLflow holds."""
    from ckrun.report import generate_report

    path = generate_report(experiment=experiment, study=study, storage=storage, out=out, data=data)
    click.echo(f"report: {path}")


@cli.command("ui")
@click.option("--host", default="127.0.0.1", help="interface to bind (0.0.0.0 exposes the UI to your network)")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, help="port")
@_friendly_errors
def ui_cmd(host: str, port: int) -> None:
    """Start the MLflow UI on the project's tracking store."""
    from ckrun.ui import serve_ui

    serve_ui(host=host, port=port)


@cli.command("run")
@data_option
@config_options
@click.option("--n-trials", type=click.IntRange(min=0), default=4, help="Optuna trials of the quick study (0 = none)")
@click.option("--study-name", default="ckrun-quick", help="study name (resumed when it exists)")
@click.option(
    "--storage", default=None, help="Optuna storage URL  [default: $CKRUN_STORAGE, else optuna.db beside mlflow.db]"
)
@click.option("--report/--no-report", default=True, help="write the report at the end")
@_friendly_errors
def run_cmd(
    data: Path | None,
    experiment: str | None,
    config_file: Path | None,
    overrides: tuple[str, ...],
    n_trials: int,
    study_name: str,
    storage: str | None,
    report: bool,
) -> None:
    """The main job: data, baseline, default ResNet, a short study with the champion registered, report."""
    cfg = _load_cfg(config_file, overrides)
    from ckrun.main_job import run_main

    run_main(cfg, data, experiment=experiment, n_trials=n_trials, study_name=study_name, storage=storage, report=report)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
