"""Installing the Debian packages some tests need (PostgreSQL, Chromium) on a fresh CI machine.

Tests run in two pytest-xdist workers, so two apt-get runs could meet on dpkg's lock; an
exclusive file lock serialises them (the second one usually finds its package installed).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

LOCK = Path(tempfile.gettempdir()) / "ckrun-tests-apt.lock"


def can_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def apt_install(package: str, installed: Callable[[], bool]) -> bool:
    """`apt-get install -y PACKAGE` (after `apt-get update` if the first try fails); True once `installed()`."""
    if installed():
        return True
    if not can_install():
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for command in (["install", "-y", "-q", package], ["update", "-q"], ["install", "-y", "-q", package]):
            if installed():
                break
            subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", *command], env=env,
                           check=False, capture_output=True, timeout=900)  # fmt: skip
    return installed()
