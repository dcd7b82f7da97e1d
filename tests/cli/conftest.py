"""Run the `sftphook` command as a user does: a separate process on the test's data directory."""

from __future__ import annotations

import fcntl
import os
import re
import select
import socket
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sftphook.config import Settings

SRC = Path(__file__).resolve().parents[2] / "src"

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    """The environment of a command that shares the `settings` fixture's data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFTPHOOK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env["SFTPHOOK_DATA_DIR"] = str(settings.data_dir)
    env["NO_COLOR"] = "1"
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sftphook", *args]


@pytest.fixture
def cli(cli_env: dict[str, str]) -> Cli:
    """`cli("users", "list", input="...")`: stdin is a pipe (never a terminal)."""

    def run(*args: str, input: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command(*args), input=input, env=cli_env, capture_output=True, text=True, timeout=60
        )

    return run


class Terminal:
    """A command attached to a pseudo-terminal, as when a person types it."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        env = {**env, "COLUMNS": "160", "TERM": "xterm"}
        env.pop("NO_COLOR", None)

        def become_controlling_terminal() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.process = subprocess.Popen(
            args,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=become_controlling_terminal,
        )
        os.close(slave)
        self.output = b""

    def expect(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(remaining):
                raise AssertionError(f"{text!r} never came; got {self.output.decode()!r}")
        return self.output.decode()

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def wait(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while self._read(max(0.0, deadline - time.monotonic())):
            pass
        code = self.process.wait(timeout=max(1.0, deadline - time.monotonic()))
        os.close(self.master)
        return code

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # the other side closed: the command ended
            return False
        self.output += chunk
        return bool(chunk)


@pytest.fixture
def terminal(cli_env: dict[str, str]) -> Iterator[Callable[..., Terminal]]:
    started: list[Terminal] = []

    def start(*args: str) -> Terminal:
        term = Terminal(command(*args), cli_env)
        started.append(term)
        return term

    yield start
    for term in started:
        if term.process.poll() is None:
            term.process.kill()
            term.process.wait()


def table_rows(result: subprocess.CompletedProcess[str]) -> list[dict[str, str]]:
    """The rows of a listing a command printed without a terminal (a header line, then one
    tab-separated line a row), each as {column: value}."""
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    columns = header.split("\t")
    return [dict(zip(columns, line.split("\t"), strict=True)) for line in lines]


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command writes on stderr."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


# A line of the log that `serve` writes on stderr before its one error line.
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


def serve_error(result: subprocess.CompletedProcess[str]) -> tuple[list[str], str]:
    """A `serve` that failed to start: the log lines before its error, and the error line. It
    printed no banner and no traceback (everything before the error is a log line)."""
    assert result.returncode == 1, result.stderr
    *logged, last = result.stderr.splitlines()
    assert all(LOG_LINE.match(line) for line in logged), result.stderr
    assert result.stdout == ""
    return logged, last


def serve_on_a_taken_port(
    cli: Cli, cli_env: dict[str, str], setting: str, *args: str
) -> tuple[int, list[str], str]:
    """`sftphook serve ARGS` with the port `setting` names taken by another socket (the other
    ports free): the port, and `serve_error`'s log lines and error line."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cli_env["SFTPHOOK_SFTP__HOST"] = "127.0.0.1"
        cli_env["SFTPHOOK_SFTP__PORT"] = "0"
        cli_env["SFTPHOOK_HTTP__HOST"] = "127.0.0.1"
        cli_env["SFTPHOOK_HTTP__PORT"] = "0"
        cli_env[setting] = str(port)
        result = cli("serve", *args)
    return (port, *serve_error(result))
