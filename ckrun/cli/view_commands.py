"""Looking at results: `ckrun report`, `ckrun compare` and `ckrun ui`."""

from __future__ import annotations

from pathlib import Path

import click

from ckrun.cli.common import TRAINED_CONFIG_SPELLINGS, data_option, friendly_errors, require_data, require_writable


@click.command("report")
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
@friendly_errors
def report_cmd(
    experiment: str | None, study: str | None, storage: str | None, out: Path | None, data: Path | None
) -> None:
    """Write report.md and a self-contained report.html from what MLflow holds."""
    require_data(data)
    require_writable(out, "--out", folder=True)
    from ckrun.errors import spell_options
    from ckrun.report import generate_report

    with spell_options(TRAINED_CONFIG_SPELLINGS):
        path = generate_report(experiment=experiment, study=study, storage=storage, out=out, data=data)
    click.echo(f"report: {path}")


@click.command("ui")
@click.option("--host", default="127.0.0.1", help="interface to bind (0.0.0.0 exposes the UI to your network)")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, help="port")
@click.option(
    "--tracking-uri",
    default=None,
    help="the store to browse (sqlite:///…, postgresql://…); for a tracking server (http://…) its address "
    "is printed  [default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db]",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="server processes (one serves a person's browser; more for a shared UI)",
)
@friendly_errors
def ui_cmd(host: str, port: int, tracking_uri: str | None, workers: int) -> None:
    """Start the MLflow UI on the project's tracking store."""
    from ckrun.ui import serve_ui

    serve_ui(host=host, port=port, tracking_uri=tracking_uri, workers=workers)


@click.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--split", default="test", help="split whose logged predictions are compared (predictions/SPLIT.csv)")
@click.option("--samples", type=click.IntRange(min=100), default=1000, help="paired subject-bootstrap samples (CI)")
@click.option(
    "--permutations",
    type=click.IntRange(min=100),
    default=10000,
    help="random subject swaps for the p-value above 16 test subjects (up to 16, every swap is enumerated)",
)
@click.option("--level", type=click.FloatRange(0.5, 0.999), default=0.95, help="confidence level of the interval")
@click.option("--alpha", type=click.FloatRange(0.001, 0.5), default=0.05, help="significance level")
@click.option("--seed", type=click.IntRange(min=0), default=0, help="seed of the bootstrap and the swaps")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="also write the table as CSV (new file)")
@friendly_errors
def compare_cmd(
    run_a: str,
    run_b: str,
    split: str,
    samples: int,
    permutations: int,
    level: float,
    alpha: float,
    seed: int,
    out: Path | None,
) -> None:
    """Paired subject-level test of two runs on the same test images (from their logged predictions)."""
    require_writable(out, "--out")
    from ckrun.compare import check_comparison_out, compare_runs, write_comparison

    if out is not None:
        check_comparison_out(out)  # the comparison takes a while: refuse before it, not after
    result = compare_runs(
        run_a, run_b, split=split, samples=samples, permutations=permutations, level=level, alpha=alpha, seed=seed
    )
    for line in result.lines():
        click.echo(line)
    if out is not None:
        click.echo(f"table: {write_comparison(result, out)}")
