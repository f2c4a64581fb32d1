"""The exceptions users see as a one-line message, and how a hint names the fix.

Library code raises `CkrunError` for anything the user can fix (bad input, bad option,
unreachable store); the CLI prints it as ``error: ...`` and exits non-zero without a
traceback. `Interrupted` is how a signal (Ctrl-C, SIGTERM, SIGHUP) travels up the stack, so
every open MLflow run on the way ends KILLED before the process exits.

A message that suggests a setting (split at random, accept an overlapping split) must name
an option the running command has: `ckrun train` spells it ``--set split_method=random``,
`ckrun data import` ``--split random``. The data layer asks `option_hint` for the spelling;
each command registers its own with `spell_options`.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator, Mapping
from contextvars import ContextVar


class CkrunError(Exception):
    """A problem with the user's input, named precisely enough to fix it."""


class DataError(CkrunError):
    """A dataset, image or label file that cannot be used."""


class ConfigError(CkrunError):
    """An invalid configuration value or option."""


class StoreWriteError(CkrunError):
    """The MLflow store itself (database or artifact folder) refused a write: disk full, read-only."""


class Interrupted(KeyboardInterrupt):
    """A signal that ends the process, raised where the process is; a KeyboardInterrupt for everyone else.

    Subclassing KeyboardInterrupt keeps the behaviour Ctrl-C always had (runs end KILLED,
    Optuna fails the trial, Keras stops) for SIGTERM and SIGHUP too; `exit_code` is the
    shell's ``128 + signal number``.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_SPELLINGS: ContextVar[Mapping[str, str] | None] = ContextVar("ckrun_option_spellings", default=None)


def option_hint(setting: str) -> str:
    """How the running command lets the user change `setting` (``key=value``); ``--set key=value`` by default."""
    return (_SPELLINGS.get() or {}).get(setting) or f"--set {setting}"


@contextlib.contextmanager
def spell_options(spellings: Mapping[str, str]) -> Iterator[None]:
    """Within the block, hints for these settings name the running command's own options."""
    token = _SPELLINGS.set({**(_SPELLINGS.get() or {}), **spellings})
    try:
        yield
    finally:
        _SPELLINGS.reset(token)


# Signals received while a command runs. Python runs a signal handler between any two
# bytecodes, also inside a ``__del__`` that garbage collection calls (TensorFlow frees
# functions that way all through a fit); an exception raised there is printed as "Exception
# ignored" and lost. So the CLI's handler records the signal here as well, and training
# checks between batches (`raise_if_interrupted`), which makes an interruption stick.
_received: list[int] = []


def note_signal(signum: int) -> None:
    _received.append(signum)


def forget_signals() -> None:
    _received.clear()


_deferring: list[bool] = []


@contextlib.contextmanager
def deferred_signals(*, raise_after: bool = True) -> Iterator[None]:
    """While a fit runs, the CLI's handler only records a signal, and `StopOnSignal` raises it
    between batches: an exception raised asynchronously inside TensorFlow's C++ code comes out
    garbled (a ``SystemError``, with a traceback printed on the way). Raised on leaving, too,
    unless `raise_after` is false (the caller raises it where it can be handled)."""
    _deferring.append(True)
    try:
        yield
    finally:
        _deferring.pop()
    if raise_after:
        raise_if_interrupted()


def signals_deferred() -> bool:
    return bool(_deferring)


def signals_received() -> int:
    return len(_received)


def raise_if_interrupted(since: int = 0) -> None:
    """Raise `Interrupted` for a signal whose first `Interrupted` may have been swallowed
    (only for signals received after the first `since`, when given)."""
    if len(_received) > since:
        raise Interrupted(_received[0])


def as_interruption(exc: BaseException) -> BaseException:
    """The `Interrupted` that `exc` really is, when a signal arrived before it was raised.

    A handler's exception raised while C code runs (TensorFlow converting a batch, say) can
    surface as a ``SystemError`` from the interpreter instead; after a signal, any exception
    is taken for the interruption it most likely is, so the run ends KILLED, not FAILED.
    """
    if _received and not isinstance(exc, KeyboardInterrupt):
        return Interrupted(_received[0])
    return exc
