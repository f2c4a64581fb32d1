"""The one exception type users see as a one-line message.

Library code raises `CkrunError` for anything the user can fix (bad input, bad option,
unreachable store); the CLI prints it as ``error: ...`` and exits non-zero without a
traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class CkrunError(Exception):
    """A problem with the user's input, named precisely enough to fix it."""


class DataError(CkrunError):
    """A dataset, image or label file that cannot be used."""


class ConfigError(CkrunError):
    """An invalid configuration value or option."""
