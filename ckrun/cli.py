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
    from ckrun.data.manifest import format_summary, import_dataset, save_manifest, summarize

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
    from ckrun.data.explore import describe
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
    from ckrun.evaluation_run import evaluate_model_uri

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


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
