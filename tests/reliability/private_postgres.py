"""A throwaway PostgreSQL cluster of the test's own (initdb, pg_ctl) that the test may stop and
start at will, unlike the shared server every other test uses. It runs as the `postgres` user in
a temporary directory, on a free port, and is stopped by the PID in its `postmaster.pid`."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.reliability.fault_receiver import free_port

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


class PrivatePostgres:
    def __init__(self, directory: Path, port: int, bindir: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = port
        self.bindir = bindir

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        self._as_postgres(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
            str(self.directory / "server.log"), "-w", "-t", "30",
            "-o", f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=100",
            "start",
        )  # fmt: skip

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def stop(self, sig: int = signal.SIGINT, within: float = 30) -> None:
        """SIGINT is PostgreSQL's fast shutdown: sessions are cut, nothing committed is lost."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    problem = None
    if not BIN_DIRS:
        problem = "PostgreSQL's server binaries are not installed (/usr/lib/postgresql/*/bin)"
    elif os.geteuid() != 0:
        problem = "a private PostgreSQL cluster needs root (to run initdb as the postgres user)"
    else:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            problem = "there is no postgres user to run a private PostgreSQL cluster"
    if problem is not None:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
    directory = Path(tempfile.mkdtemp(prefix="sftphook-pg-"))
    shutil.chown(directory, "postgres", "postgres")
    cluster = PrivatePostgres(directory, free_port(), BIN_DIRS[0])
    try:
        cluster._as_postgres(
            str(cluster.bindir / "initdb"), "-D", str(cluster.data), "-A", "trust",
            "-U", "postgres", "--no-sync",
        )  # fmt: skip
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
