"""A throw-away PostgreSQL server for the tests that share a study (or an MLflow store) through it.

Debian's `postgresql` package is installed when no `initdb`/`pg_ctl` is found (CI is a fresh
Debian machine running as root, with the package mirror reachable), `initdb` runs into a
temporary folder as the `postgres` user (initdb refuses root), and the server listens on a
free loopback port with a password-protected role. It is stopped and deleted afterwards.
URLs are plain ``postgresql://`` — the driver the `postgres` extra installs (psycopg 3).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from system_packages import apt_install

PASSWORD = "Pg-s3cret-7c1e94b2"  # distinctive, so a leak cannot hide behind a common word
USER = "ckrun"


@dataclass(frozen=True)
class PostgresServer:
    port: int
    user: str = USER
    password: str = PASSWORD
    host: str = "127.0.0.1"

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres", password: str | None = None):
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password if password is None else password,
            dbname=database,
            autocommit=True,
        )

    def create_database(self, name: str) -> str:
        """A new empty database (dropped first if a previous test left it); its URL."""
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def pg_bindir() -> Path | None:
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    for initdb in [shutil.which("initdb"), *installed]:
        if initdb and (Path(initdb).resolve().parent / "pg_ctl").exists():
            return Path(initdb).resolve().parent
    return None


def _as_postgres() -> list[str]:
    """Command prefix that runs as a non-root user when the tests run as root (initdb refuses root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "postgres"], check=True)
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--"]
    return ["su", "postgres", "-s", "/bin/sh", "-c", '"$0" "$@"']  # su runs a shell command: pass argv through


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    bindir = pg_bindir()
    if bindir is None:
        apt_install("postgresql", lambda: pg_bindir() is not None)
        bindir = pg_bindir()
    if bindir is None:
        pytest.fail(
            "PostgreSQL is not installed and could not be installed (needs root and apt-get: "
            '`apt-get install -y postgresql`); deselect this test explicitly with -m "not postgres"',
            pytrace=False,
        )
    prefix = _as_postgres()
    home = Path(tempfile.mkdtemp(prefix="ckrun-pg-"))  # under /tmp: pytest's tmp_path is private to root
    data, pwfile, port = home / "data", home / "pwfile", free_port()
    pwfile.write_text(PASSWORD + "\n")
    if prefix:
        shutil.chown(home, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")

    def pg(*argv: str) -> None:
        done = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=120, cwd=home)
        assert done.returncode == 0, f"{argv[0]} failed: {done.stdout}{done.stderr}"

    pg(str(bindir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}", "--auth=scram-sha-256")
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
    pg(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(home / "server.log"),
        "-w",
        "-t",
        "60",
        "-o",
        options,
        "start",
    )
    try:
        yield PostgresServer(port)
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], timeout=120)
        shutil.rmtree(home, ignore_errors=True)
