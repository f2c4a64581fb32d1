"""Looking at results: `ckrun report` and `ckrun ui`."""

from __future__ import annotations

from pathlib import Path

import click

from ckrun.cli.common import TRAINED_CONFIG_SPELLINGS, data_option, friendly_errors


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
@friendly_errors
def ui_cmd(host: str, port: int, tracking_uri: str | None) -> None:
    """Start the MLflow UI on the project's tracking store."""
    from ckrun.ui import serve_ui

    serve_ui(host=host, port=port, tracking_uri=tracking_uri)
