"""What every command shares: option decorators, the config loader and one-line errors.

Kept apart from the commands so each command module imports only this and its library
functions; nothing here imports TensorFlow, MLflow or Optuna.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ckrun.config import TrainConfig

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}


_debug = False  # set by `ckrun --debug`


def set_debug(enabled: bool) -> None:
    global _debug
    _debug = enabled


def debug_enabled() -> bool:
    """``ckrun --debug`` or ``CKRUN_DEBUG=1``: show tracebacks instead of one-line errors."""
    return _debug or os.environ.get("CKRUN_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


# MLflow's SQL store logs every failed statement with its traceback at ERROR, before raising the
# error that the one-line message already names; on a full disk that is hundreds of lines.
_NOISY_LOGGERS = ("mlflow.store.db.utils",)


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """One line on stderr and an exit status, whatever ends the command.

    CkrunError (bad input) and any other exception print ``error: ...`` and exit 1 (the
    traceback only with --debug or CKRUN_DEBUG=1); SIGINT, SIGTERM and SIGHUP raise
    `Interrupted` where the process is, so every open run ends KILLED on the way out, and
    exit 128 + the signal number (130, 143, 129). Usage errors stay click's (status 2).
    """

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ckrun.errors import CkrunError, Interrupted

        debug = debug_enabled()
        saved = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
        if not debug:
            for name in _NOISY_LOGGERS:
                logging.getLogger(name).setLevel(logging.CRITICAL)
        try:
            with _signals_raise_interrupted():
                return func(*args, **kwargs)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt as exc:
            code = exc.exit_code if isinstance(exc, Interrupted) else 130
            name = f" by {exc.args[0]}" if isinstance(exc, Interrupted) and exc.args else ""
            click.echo(f"interrupted{name}", err=True)
            sys.exit(code)
        except CkrunError as exc:
            _fail(exc, _first_line(str(exc)) or type(exc).__name__, debug)
        except Exception as exc:  # a bug or an unforeseen failure: still one line, the traceback on request
            text = _first_line(str(exc))
            message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            _fail(exc, message if debug else f"{message}  (ckrun --debug shows the traceback)", debug)
        finally:
            for name, level in saved.items():
                logging.getLogger(name).setLevel(level)

    return wrapper


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _fail(exc: BaseException, message: str, debug: bool) -> None:
    if debug:
        traceback.print_exception(exc)
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


_EXIT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def _signals_raise_interrupted() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise `Interrupted` in the main thread while the command runs.

    A second signal while the runs are being ended is only acknowledged (ending them is what
    keeps the store honest); a third exits at once.
    """
    from ckrun.errors import Interrupted, forget_signals, note_signal, signals_deferred

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        if len(received) == 1:
            note_signal(signum)  # training re-raises it if this raise is lost (ckrun.errors)
            if signals_deferred():
                return  # inside a fit: raised between batches (ckrun.errors.deferred_signals)
            raise Interrupted(signum)
        if len(received) == 2:
            sys.stderr.write("still ending the open MLflow runs; signal once more to exit at once\n")
            return
        os._exit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in _EXIT_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        forget_signals()


# Commands that take DATA but no --set (evaluate, report) split it with the trained run's config.
TRAINED_CONFIG_SPELLINGS = {
    setting: f"--set {setting} when training the model"
    for setting in ("split_method=random", "split_method=subject", "allow_subject_overlap=true", "require_emotion=true")
}


def quiet_tensorflow() -> None:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # oneDNN is turned off by `import ckrun`
    # OpenCV logs a WARN line for a file its reader refuses (Pillow reads it instead, or the error names it).
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")


def data_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--data",
        type=click.Path(path_type=Path),
        default=None,
        help="CK+ root, manifest CSV or folder-per-class tree  [default: the embedded synthetic CK+]",
    )(func)


def require_data(data: Path | None) -> None:
    """Fail on a `--data` path that does not exist before MLflow is imported (seconds) and a store opened."""
    if data is not None and not data.exists():
        from ckrun.errors import DataError

        raise DataError(f"{data}: no such file or folder")


def require_writable(path: Path | None, option: str, *, folder: bool = False) -> None:
    """Fail on an output path that cannot be created before any work is done.

    A file where a folder of the path must go, or a folder the user cannot write in, would
    otherwise surface as an OSError at the very end (after an import, a comparison, a report),
    printed like a bug. `folder`: the path is an output folder, so it must not be a file either.
    """
    if path is None:
        return
    from ckrun.errors import CkrunError

    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None:
        return
    if (existing != path or folder) and not existing.is_dir():
        raise CkrunError(f"{option} {path}: {existing} is a file, not a folder")
    parent = existing if existing.is_dir() else existing.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CkrunError(f"{option} {path}: cannot write in the folder {parent} (permission denied or read-only)")


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
