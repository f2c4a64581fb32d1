"""What every command shares: option decorators, the config loader and one-line errors.

Kept apart from the commands so each command module imports only this and its library
functions; nothing here imports TensorFlow, MLflow or Optuna.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ckrun.config import TrainConfig

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
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


def quiet_tensorflow() -> None:
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


def load_cfg(config_file: Path | None, overrides: tuple[str, ...]) -> TrainConfig:
    from ckrun.config import load_config

    return load_config(config_file, overrides)
