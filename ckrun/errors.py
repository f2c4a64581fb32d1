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
