"""A node serves at most `sftp.max_connections` connections, `sftp.max_connections_per_address`
from one client address, and `sftp.max_sessions_per_connection` sessions on one connection. A
connection past a limit is told why before its key exchange; one that ends frees its place."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import asyncssh
import httpx
import pytest

from tests.conftest import require_binary
from tests.sftp.conftest import Server, run
from tests.sftp.test_transfers import wait_for


async def _count_settles(server: Server, expected: int) -> None:
    """Wait until the front has seen connections end (it hears of a close after the client)."""
    await wait_for(lambda: server.app.sftp.connection_count == expected)


async def _start_when_free(conn: asyncssh.SSHClientConnection) -> asyncssh.SFTPClient:
    """A new SFTP session, once the server has heard that an earlier one closed (a moment
    after the client closed it)."""
    async with asyncio.timeout(5):
        while True:
            try:
                return await conn.start_sftp_client()
            except asyncssh.ChannelOpenError as exc:
                assert "sessions open" in exc.reason
                await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def _held(server: Server, count: int, **kwargs: object) -> AsyncIterator[list[object]]:
    conns = [await server.connect(**kwargs) for _ in range(count)]
    try:
        yield conns
    finally:
        for conn in conns:
            conn.close()
            await conn.wait_closed()


async def test_one_address_gets_at_most_its_limit_of_connections(server: Server) -> None:
    server.app.settings.sftp.max_connections_per_address = 2
    async with _held(server, 2):
        assert server.app.sftp.connection_count == 2
        with pytest.raises(asyncssh.DisconnectError) as refused:
            await server.connect()
        assert refused.value.code == asyncssh.DISC_TOO_MANY_CONNECTIONS
        assert "too many connections from 127.0.0.1 (the limit is 2)" in refused.value.reason
        # OpenSSH's client shows the reason to its user.
        sftp = require_binary("sftp")
        result = await run(
            [sftp, "-b", "-", "-P", str(server.port), *server.ssh_options(), "alice@127.0.0.1"],
            stdin=b"ls\n",
        )
        assert result.returncode != 0
        assert "too many connections from 127.0.0.1" in result.stderr
        # A refused connection holds no place.
        assert server.app.sftp.connection_count == 2
    await _count_settles(server, 0)
    # Ended connections free their places: two at once again.
    async with _held(server, 2) as conns:
        sftp_client = await conns[0].start_sftp_client()  # type: ignore[attr-defined]
        await sftp_client.mkdir("works")
        sftp_client.exit()
    assert (server.root / "works").is_dir()


async def test_the_node_serves_at_most_its_limit_of_connections_in_all(server: Server) -> None:
    server.app.settings.sftp.max_connections = 2
    server.app.settings.sftp.max_connections_per_address = 0
    sock = socket.create_connection(("127.0.0.1", server.port), source_address=("127.0.0.2", 0))
    sock.setblocking(False)
    async with _held(server, 1), await server.connect(sock=sock):
        # Another address is refused too: the limit is the node's.
        with pytest.raises(asyncssh.DisconnectError, match="its limit of 2 connections"):
            other = socket.create_connection(
                ("127.0.0.1", server.port), source_address=("127.0.0.3", 0)
            )
            other.setblocking(False)
            await server.connect(sock=other)
    await _count_settles(server, 0)
    async with _held(server, 2):
        pass


async def test_a_connection_holds_at_most_its_limit_of_sessions(server: Server) -> None:
    server.app.settings.sftp.max_sessions_per_connection = 2
    (server.root / "f").write_bytes(b"data")
    async with await server.connect() as conn:
        first = await conn.start_sftp_client()
        second = await conn.start_sftp_client()
        with pytest.raises(asyncssh.ChannelOpenError) as refused:
            await conn.start_sftp_client()
        assert refused.value.code == asyncssh.OPEN_RESOURCE_SHORTAGE
        assert "already has 2 sessions open" in refused.value.reason
        # The sessions it has still work, and a closed one frees its place.
        assert await (await first.open("f", "rb")).read() == b"data"
        second.exit()
        await second.wait_closed()
        third = await _start_when_free(conn)
        assert await third.listdir(".") is not None
        # An SCP or a refused command is a session too, and frees its place when it ends.
        third.exit()
        await third.wait_closed()
        with pytest.raises(asyncssh.ChannelOpenError, match="Session request failed"):
            await conn.run("ls")
        fourth = await _start_when_free(conn)
        fourth.exit()
        first.exit()


async def test_connections_that_never_log_in_hold_at_most_their_own_limit(server: Server) -> None:
    cfg = server.app.settings.sftp
    cfg.max_logging_in = 2
    front = server.app.sftp
    # Logged-in connections do not count against it.
    async with _held(server, 3):
        assert front.logging_in_count == 0
        # Two that say hello and then nothing more, as a flood would.
        stalled = []
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"SSH-2.0-stalling\r\n")
            assert (await reader.readline()).startswith(b"SSH-2.0-")
            stalled.append(writer)
        await wait_for(lambda: front.logging_in_count == 2)
        with pytest.raises(asyncssh.DisconnectError, match="too many connections are logging in"):
            await server.connect()
        # The ones logged in go on.
        assert front.connection_count == 5
        for writer in stalled:
            writer.close()
            await writer.wait_closed()
        await wait_for(lambda: front.logging_in_count == 0)
        async with await server.connect():
            assert front.logging_in_count == 0
    await _count_settles(server, 0)


async def test_refused_connections_that_never_say_hello_are_dropped_soon(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused connection waits for the client's version line to say why: one that never
    sent it was kept, uncounted by any limit, until `login_timeout`, so one address past its
    limit could still hold any number of connections open."""
    from sftphook.sftp import server as sftp_server

    monkeypatch.setattr(sftp_server, "REFUSED_GRACE", 0.5, raising=False)
    server.app.settings.sftp.max_connections_per_address = 1
    front = server.app.sftp
    async with _held(server, 1):
        silent = []
        for _ in range(20):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            assert (await reader.readline()).startswith(b"SSH-2.0-")
            silent.append((reader, writer))
        async with asyncio.timeout(5):
            for reader, _writer in silent:
                assert await reader.read() == b""  # closed by the server
        await wait_for(lambda: len(front._connections) == 1)
        for _reader, writer in silent:
            writer.close()
        # A client that says hello at once still hears why.
        with pytest.raises(asyncssh.DisconnectError, match="too many connections from"):
            await server.connect()
    await _count_settles(server, 0)


@pytest.mark.parametrize("server", [frozenset({"sftp", "http"})], indirect=True)
async def test_metrics_show_connections_sessions_and_refusals(server: Server) -> None:
    server.app.settings.sftp.max_connections_per_address = 1
    url = f"http://127.0.0.1:{server.app.http_port}/metrics"

    async def scrape() -> dict[str, float]:
        async with httpx.AsyncClient() as client:
            text = (await client.get(url)).text
        return {
            name: float(value)
            for name, value in (line.rsplit(" ", 1) for line in text.splitlines())
            if name.startswith("sftphook_sftp_")
        }

    assert (await scrape())["sftphook_sftp_connections"] == 0
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        await sftp.listdir(".")
        with pytest.raises(asyncssh.DisconnectError):
            await server.connect()
        seen = await scrape()
        assert seen["sftphook_sftp_connections"] == 1
        assert seen["sftphook_sftp_sessions"] == 1
        assert seen['sftphook_sftp_connections_refused_total{reason="address_limit"}'] == 1
        assert seen['sftphook_sftp_connections_refused_total{reason="node_limit"}'] == 0
        assert seen["sftphook_sftp_connections_logging_in"] == 0
    await _count_settles(server, 0)
    assert (await scrape())["sftphook_sftp_connections"] == 0
