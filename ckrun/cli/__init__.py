"""The `ckrun` command line: parses options, validates them, calls the library.

Thin on purpose: every command is a few lines over a library function tests call directly.
TensorFlow, MLflow and Optuna are imported inside the commands, never at start-up, so
`--help` and usage errors answer at once. Commands live in one module per family
(`data_commands`, `run_commands`, `study_commands`, `view_commands`); this module assembles
the group.
"""

from __future__ import annotations

import click

from ckrun import __version__
from ckrun.cli.common import CONTEXT, quiet_tensorflow, set_debug
from ckrun.cli.data_commands import data
from ckrun.cli.run_commands import baseline_cmd, evaluate_cmd, explain_cmd, predict_cmd, schema, train_cmd
from ckrun.cli.study_commands import run_cmd, tune_cmd
from ckrun.cli.view_commands import compare_cmd, report_cmd, ui_cmd


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="ckrun")
@click.option("--debug", is_flag=True, help="show the full traceback of an error (also: CKRUN_DEBUG=1)")
def cli(debug: bool) -> None:
    """Run, track and compare CK+ facial-expression experiments (emotion + FACS action units).

    Every command logs to MLflow ($MLFLOW_TRACKING_URI, default sqlite:///mlflow.db with
    artifacts in ./mlartifacts). Without --data, the embedded synthetic CK+ is used.
    """
    set_debug(debug)
    quiet_tensorflow()


for command in (
    data,
    schema,
    train_cmd,
    baseline_cmd,
    evaluate_cmd,
    predict_cmd,
    explain_cmd,
    tune_cmd,
    report_cmd,
    compare_cmd,
    ui_cmd,
    run_cmd,
):
    cli.add_command(command)


def main() -> None:
    cli()
