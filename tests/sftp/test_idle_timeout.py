"""A logged-in connection that moves no SFTP or SCP data for `sftp.idle_timeout` seconds is
closed, with a reason the client shows; one that keeps working is not, keepalives or not, nor
one waiting for the answer to a request the server takes longer than that to answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from sftphook.config import Settings
from sftphook.storage.local import LocalStorage, LocalWriteHandle
from tests.conftest import require_binary
from tests.sftp.conftest import Server, run
from tests.sftp.test_transfers import wait_for

TIMEOUT = 1.0
# A storage call that takes this long: the client waits for its answer, sending nothing.
SLOW = 2.5 * TIMEOUT


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.sftp.idle_timeout = TIMEOUT
    return settings


async def test_an_idle_session_is_closed_and_its_place_freed(server: Server) -> None:
    async with await server.connect() as conn:
        sftp = await conn.start_sftp_client()
        await sftp.listdir(".")
        started = time.monotonic()
        async with asyncio.timeout(10):
            await conn.wait_closed()
        # Closed after the timeout (checked every quarter of it), not before.
        assert TIMEOUT <= time.monotonic() - started < 3 * TIMEOUT
        with pytest.raises((asyncssh.SFTPError, asyncssh.Error, OSError)):
            await sftp.listdir(".")
    await wait_for(lambda: server.app.sftp.connection_count == 0)


async def test_a_connection_without_a_session_is_closed_too(server: Server) -> None:
    async with await server.connect() as conn:
        async with asyncio.timeout(10):
            await conn.wait_closed()


async def test_a_working_session_stays_open(server: Server) -> None:
    (server.root / "f").write_bytes(b"x")
    async with await server.connect(keepalive_interval=0.2) as conn:
        sftp = await conn.start_sftp_client()
        # Three timeouts long, a request every third of one.
        for _ in range(9):
            await asyncio.sleep(TIMEOUT / 3)
            assert (await sftp.stat("f")).size == 1
        # Keepalives alone are not work.
        async with asyncio.timeout(10):
            await conn.wait_closed()


def slow(monkeypatch: pytest.MonkeyPatch, server: Server, cls: type, name: str) -> None:
    """Make `cls.name` take `SLOW` seconds, in an I/O thread as a network store's calls run."""
    original: Callable[..., Any] = getattr(cls, name)

    def slowly(*args: Any, **kwargs: Any) -> Any:
        time.sleep(SLOW)
        return original(*args, **kwargs)

    monkeypatch.setattr(cls, name, slowly)
    monkeypatch.setattr(server.app.sftp.offload, "blocking", True)


async def test_a_request_the_server_works_on_for_long_is_answered(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    (server.root / "d").mkdir()
    slow(monkeypatch, server, LocalStorage, "rename")
    async with await server.connect() as conn:
        sftp = await conn.start_sftp_client()
        started = time.monotonic()
        await sftp.rename("d", "e")
        answered = time.monotonic()
        assert answered - started >= SLOW
        assert (server.root / "e").is_dir()
        # The idle clock starts again at the answer, not at the request.
        await asyncio.sleep(TIMEOUT / 2)
        assert (await sftp.stat("e")).type == asyncssh.FILEXFER_TYPE_DIRECTORY
        answered = time.monotonic()
        async with asyncio.timeout(10):
            await conn.wait_closed()
        assert time.monotonic() - answered >= TIMEOUT
    assert server.app.sftp.closed_idle == 1


async def test_an_scp_upload_the_server_commits_for_long_is_kept(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    local = tmp_path / "f.bin"
    local.write_bytes(b"x" * 100_000)
    slow(monkeypatch, server, LocalWriteHandle, "commit")
    async with await server.connect() as conn:
        started = time.monotonic()
        await asyncssh.scp(str(local), (conn, "f.bin"))
        assert time.monotonic() - started >= SLOW
        assert not conn.is_closed()
    assert (server.root / "f.bin").read_bytes() == local.read_bytes()
    assert server.app.sftp.closed_idle == 0


async def test_an_scp_client_silent_after_its_data_is_closed_idle(server: Server) -> None:
    # The server waits for the byte that ends a file before it keeps it: a client that never
    # sends it is idle, not a request in flight.
    async with await server.connect() as conn:
        proc = await conn.create_process("scp -t /", encoding=None)
        assert await proc.stdout.readexactly(1) == b"\0"
        proc.stdin.write(b"C0644 5 silent.bin\n")
        assert await proc.stdout.readexactly(1) == b"\0"
        proc.stdin.write(b"hello")
        async with asyncio.timeout(10):
            await conn.wait_closed()
    await wait_for(lambda: server.app.sftp.connection_count == 0)
    assert not (server.root / "silent.bin").exists()
    assert await server.events() == []


async def test_openssh_shows_why(server: Server) -> None:
    sftp = require_binary("sftp")
    # The reason is shown at OpenSSH's default log level, which the other tests turn down.
    options = ["LogLevel=INFO" if o == "LogLevel=ERROR" else o for o in server.ssh_options()]
    # `sftp -b` sends nothing while a local command runs.
    result = await run(
        [sftp, "-b", "-", "-P", str(server.port), *options, "alice@127.0.0.1"],
        stdin=b"ls\n!sleep 3\nls\n",
    )
    assert result.returncode != 0
    assert "idle for 1 s: connection closed" in result.stderr
