"""One model at a time: `ckrun schema`, `train`, `baseline`, `evaluate`, `predict`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ckrun.baselines import C_GRID, DEFAULT_MODEL, MODEL_CHOICES
from ckrun.cli.common import (
    TRAINED_CONFIG_SPELLINGS,
    config_options,
    data_option,
    friendly_errors,
    load_cfg,
    require_data,
    require_writable,
)


@click.command("schema")
def schema() -> None:
    """Print the JSON schema of the run configuration (every --set key)."""
    from ckrun.config import config_schema

    click.echo(json.dumps(config_schema(), indent=2))


def _cv_folds(ctx: click.Context, param: click.Parameter, value: int) -> int:
    """K of --cv, refused at once: the data layer would say so only after importing the data."""
    if value in (1, 2):
        raise click.BadParameter(f"{value}: cross-validation needs K >= 3 (one fold each for val and test), or 0")
    return value


@click.command("train")
@data_option
@config_options
@click.option(
    "--cv",
    type=click.IntRange(min=0),
    default=0,
    callback=_cv_folds,
    help="K-fold subject-exclusive cross-validation, K >= 3 (0 = off)",
)
@click.option(
    "--ensemble", is_flag=True, help="with --cv K: also log one model on the CV run averaging the K fold models"
)
@click.option("--system-metrics", is_flag=True, help="log CPU/memory/GPU usage with MLflow's system metrics")
@click.option("--run-name", default=None, help="MLflow run name  [default: train-<timestamp>]")
@friendly_errors
def train_cmd(
    data: Path | None,
    experiment: str | None,
    config_file: Path | None,
    overrides: tuple[str, ...],
    cv: int,
    ensemble: bool,
    system_metrics: bool,
    run_name: str | None,
) -> None:
    """Train the two-headed network (the pretrained one by default) and log a complete MLflow run."""
    if ensemble and not cv:
        raise click.UsageError("--ensemble averages the fold models of a cross-validation: give --cv K too")
    cfg = load_cfg(config_file, overrides)
    require_data(data)
    from ckrun import tracking

    tracking.check_store(experiment)
    from ckrun.data.loader import prepare_for_config

    prepared = prepare_for_config(data, cfg)
    if cv:
        from ckrun.crossval import cross_validate

        folds = cross_validate(
            cfg, prepared, cv, experiment=experiment, system_metrics=system_metrics, ensemble=ensemble
        )
        click.echo(f"cv run {folds.run_id}: " + folds.summary_line())
        if folds.model_uri:
            click.echo(f"model: {folds.model_uri}")
        _echo_cv_verdict(folds.run_id, experiment)
        return
    from ckrun.train import train

    result = train(cfg, prepared, experiment=experiment, run_name=run_name, system_metrics=system_metrics)
    click.echo(f"run id: {result.run_id}")
    click.echo(f"model: {result.model_uri}")


@click.command("baseline")
@data_option
@config_options
@click.option(
    "--model",
    type=click.Choice(MODEL_CHOICES),
    default=DEFAULT_MODEL,
    help="logistic regression or linear SVM on 48 px pixels, linear SVM on HOG or on LBP histograms, "
    "or the best of them on val",
)
@click.option(
    "--c-grid",
    default=",".join(f"{c:g}" for c in C_GRID),
    metavar="C,C,...",
    help="regularisation strengths tried for each head (comma-separated, positive)",
)
@click.option(
    "--cv",
    type=click.IntRange(min=0),
    default=0,
    callback=_cv_folds,
    help="K-fold subject-exclusive cross-validation on the folds `ckrun train --cv K` uses, K >= 3 (0 = off)",
)
@friendly_errors
def baseline_cmd(
    data: Path | None,
    experiment: str | None,
    config_file: Path | None,
    overrides: tuple[str, ...],
    model: str,
    c_grid: str,
    cv: int,
) -> None:
    """Tuned linear baselines (C chosen on val) on the same split, logged as a run."""
    from ckrun.baselines.selection import check_grid

    try:
        grid = list(check_grid([float(c) for c in c_grid.split(",") if c.strip()]))
    except ValueError:  # checked before the data is read
        raise click.BadParameter(
            f"expected comma-separated positive numbers, received {c_grid!r}", param_hint="--c-grid"
        ) from None
    cfg = load_cfg(config_file, overrides)
    require_data(data)
    from ckrun import tracking

    tracking.check_store(experiment)
    from ckrun.baseline import run_baseline
    from ckrun.data.loader import prepare_for_config

    prepared = prepare_for_config(data, cfg)
    if cv:
        from ckrun.crossval import cross_validate_baseline

        folds = cross_validate_baseline(cfg, prepared, cv, experiment=experiment, model=model, c_grid=grid)
        click.echo(f"cv run {folds.run_id}: " + folds.summary_line())
        _echo_cv_verdict(folds.run_id, experiment)
        return
    result = run_baseline(cfg, prepared, experiment=experiment, model=model, c_grid=grid)
    click.echo(f"run id: {result.run_id}")


def _echo_cv_verdict(run_id: str, experiment: str | None) -> None:
    """The cross-validated network against the cross-validated floor on the same folds, once both exist."""
    from ckrun.report.collect import collect_runs, cv_verdict_lines

    for line in cv_verdict_lines(collect_runs(experiment).table, run_id):
        click.echo(line)


@click.command("evaluate")
@click.argument("model_uri")
@data_option
@click.option("--split", type=click.Choice(["train", "val", "test", "all"]), default="test", help="split to score")
@click.option("--experiment", default=None, help="MLflow experiment for the evaluation run")
@click.option(
    "--sequences",
    is_flag=True,
    help="also score every frame of the split's CK+ sequences (neutral to apex): curves, onset of a correct answer",
)
@friendly_errors
def evaluate_cmd(model_uri: str, data: Path | None, split: str, experiment: str | None, sequences: bool) -> None:
    """Score a logged model (runs:/… or models:/…) on DATA and log an evaluation run."""
    require_data(data)
    from ckrun import tracking

    tracking.check_store(experiment)
    from ckrun.errors import spell_options
    from ckrun.evaluate import evaluate_model_uri

    with spell_options(TRAINED_CONFIG_SPELLINGS):
        result = evaluate_model_uri(model_uri, data, split=split, experiment=experiment, sequences=sequences)
    for key, value in sorted(result.metrics.items()):
        click.echo(f"{key:32s} {value:.4f}")
    click.echo(f"run id: {result.run_id}")


def _require_images(images: tuple[Path, ...], neutral: Path | None) -> None:
    """Every image (and --neutral) an existing file: a folder is named as one, not as a missing image."""
    for path, hint in [*((p, "IMAGES") for p in images), *([(neutral, "--neutral")] if neutral else [])]:
        if path.is_dir():
            raise click.BadParameter(f"{path} is a folder, not an image file", param_hint=hint)
        if not path.is_file():
            raise click.BadParameter(f"image not found: {path}", param_hint=hint)


@click.command("predict")
@click.argument("model_uri")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", help="output format")
@click.option(
    "--neutral",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="the person's neutral face, read beside each image by a model trained with reference=neutral",
)
@friendly_errors
def predict_cmd(model_uri: str, images: tuple[Path, ...], fmt: str, neutral: Path | None) -> None:
    """Emotion and AU predictions for IMAGES with a logged model's own preprocessing."""
    _require_images(images, neutral)
    from ckrun import tracking

    predictor = tracking.load_predictor(model_uri)
    table = predictor.predict_paths(list(images), neutral=neutral)
    if fmt == "csv":
        click.echo(table.to_csv(index=False), nl=False)
    else:
        click.echo(json.dumps(json.loads(table.to_json(orient="records")), indent=2))


@click.command("explain")
@click.argument("model_uri")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("explanations"),
    show_default=True,
    help="folder for the overlays (NN_<image>.png), region_shares.csv and summary.json; never replaces a file",
)
@click.option(
    "--neutral",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="the person's neutral face, read beside each image by a model trained with reference=neutral",
)
@friendly_errors
def explain_cmd(model_uri: str, images: tuple[Path, ...], out: Path, neutral: Path | None) -> None:
    """Grad-CAM of the emotion and each predicted AU on IMAGES, and AU facial-region shares (CK+ landmarks)."""
    _require_images(images, neutral)
    require_writable(out, "--out", folder=True)
    from ckrun.explanations import explain_model_uri

    written = explain_model_uri(model_uri, list(images), out, neutral)
    for path in written.overlays:
        click.echo(f"overlay: {path}")
    click.echo(f"region shares: {written.shares_csv}")
    share = written.summary.get("macro_share")
    if share is not None:
        click.echo(f"mean share of predicted AUs' attribution inside their region: {share:.1%}")
