"""Progress output for people at a terminal (one line per epoch, trial or stage).

Library code reports through `echo` rather than print, so the CLI and tests can silence or
capture it in one place.
"""

from __future__ import annotations

import sys

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def echo(message: str = "") -> None:
    if not _quiet:
        sys.stdout.write(message + "\n")
        sys.stdout.flush()


def warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()
