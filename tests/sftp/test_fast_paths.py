"""The SFTP front's fast paths keep bytes intact: coalesced socket writes, reads that cross the
read-ahead blocks, and uploads kept as packet views until an I/O thread writes them."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from asyncssh.constants import MSG_IGNORE

from sftphook.config import Settings
from sftphook.sftp.offload import Offload
from sftphook.sftp.transfer import INLINE_BYTES, READ_BLOCK, Download
from sftphook.sftp.wire import CoalescingTransport, _no_packet_log
from sftphook.storage.local import LocalStorage
from tests.conftest import serving
from tests.sftp.conftest import PASSWORD, Server, reuse_host_keys
from tests.support.pagecache import cached_file, resident_pages


async def test_coalesced_writes_arrive_whole_in_order_and_before_close() -> None:
    received = bytearray()
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.extend(await reader.read())
        done.set()
        writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    transport, _protocol = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    wrapped = CoalescingTransport(transport, loop)  # type: ignore[arg-type]
    pieces = [bytes([i]) * (1000 + i) for i in range(50)]
    for piece in pieces[:25]:
        wrapped.write(piece)
    # Only the turn's first write has left; the buffer size accounts for the rest.
    pending = wrapped.get_write_buffer_size() - transport.get_write_buffer_size()
    assert pending == sum(map(len, pieces[1:25]))
    await asyncio.sleep(0)
    for piece in pieces[25:]:
        wrapped.write(piece)
    wrapped.close()  # what is still pending goes out before the close
    async with asyncio.timeout(10):
        await done.wait()
    listener.close()
    await listener.wait_closed()
    assert bytes(received) == b"".join(pieces)


class _RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


async def test_a_turns_first_write_leaves_at_once_and_the_rest_in_one_write() -> None:
    socket = _RecordingTransport()
    wrapped = CoalescingTransport(socket, asyncio.get_running_loop())  # type: ignore[arg-type]
    wrapped.write(b"reply")
    assert socket.writes == [b"reply"]
    wrapped.write(b"a")
    wrapped.write(b"b")
    assert socket.writes == [b"reply"]
    await asyncio.sleep(0)
    assert socket.writes == [b"reply", b"ab"]
    # A later turn starts over: its first write is not held back either.
    wrapped.write(b"next")
    assert socket.writes == [b"reply", b"ab", b"next"]
    await asyncio.sleep(0)
    assert socket.writes == [b"reply", b"ab", b"next"]


async def test_reads_across_read_ahead_blocks(server: Server) -> None:
    size = 2 * READ_BLOCK + 12_345
    data = os.urandom(size)
    (server.root / "big.bin").write_bytes(data)
    async with (
        await server.connect() as conn,
        conn.start_sftp_client() as sftp,
        sftp.open("big.bin", "rb") as fh,
    ):
        # Odd sizes and offsets: reads straddle block ends and the end of the file.
        got = bytearray()
        offset = 0
        while chunk := await fh.read(100_003, offset):
            got += chunk
            offset += len(chunk)
        assert bytes(got) == data
        tail = await fh.read(READ_BLOCK + 10, READ_BLOCK - 5)
        assert tail == data[READ_BLOCK - 5 : 2 * READ_BLOCK + 5]


async def test_streamed_upload_is_written_and_hashed_whole(server: Server) -> None:
    data = os.urandom(INLINE_BYTES + 3 * 1024 * 1024 + 777)
    async with (
        await server.connect() as conn,
        conn.start_sftp_client() as sftp,
        sftp.open("up.bin", "wb") as fh,
    ):
        for offset in range(0, len(data), 30_001):
            await fh.write(data[offset : offset + 30_001], offset)
    assert (server.root / "up.bin").read_bytes() == data
    (event,) = await server.events()
    assert event.size == len(data)
    assert event.sha256 == hashlib.sha256(data).hexdigest()


async def test_an_upload_over_a_cached_file_drops_that_cache_while_it_streams(
    server: Server,
) -> None:
    old = server.root / "big.bin"
    cached_file(old, 8 * 1024 * 1024)
    pages = resident_pages(old)
    assert pages == 8 * 1024 * 1024 // mmap.PAGESIZE
    data = os.urandom(INLINE_BYTES + 2 * 1024 * 1024)
    async with (
        await server.connect() as conn,
        conn.start_sftp_client() as sftp,
        sftp.open("big.bin", "wb") as fh,
    ):
        await fh.write(data[:INLINE_BYTES], 0)
        assert resident_pages(old) == pages  # a small upload leaves it alone
        await fh.write(data[INLINE_BYTES:], INLINE_BYTES)
        # Streamed blocks go to an I/O thread; the old file is still in place until the close.
        for _ in range(200):
            if resident_pages(old) < pages // 10:
                break
            await asyncio.sleep(0.01)
        assert resident_pages(old) < pages // 10
    assert old.read_bytes() == data


async def test_a_streamed_download_holds_at_most_two_blocks(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, "org", "/")
    (tmp_path / "org").mkdir(exist_ok=True)
    data = os.urandom(3 * READ_BLOCK + 5)
    (tmp_path / "org" / "f.bin").write_bytes(data)
    with ThreadPoolExecutor(max_workers=2) as executor:
        download = Download(storage.open_read("f.bin"), Offload(executor))
        got = bytearray()
        held = 0
        while chunk := await download.read(len(got), 32768):
            got += chunk
            held = max(held, len(download._blocks))
        await download.close()
    storage.close()
    assert bytes(got) == data
    assert held <= 2


def _count_ignore_packets(conn: asyncssh.SSHClientConnection) -> list[int]:
    """The SSH_MSG_IGNORE packets `conn` receives from now on."""
    seen: list[int] = []
    log_received = conn.log_received_packet

    def counting(pkttype: int, pktid: int | None, packet: object, note: str = "") -> None:
        if pkttype == MSG_IGNORE:
            seen.append(pkttype)
        log_received(pkttype, pktid, packet, note)  # type: ignore[arg-type]

    conn.log_received_packet = counting  # type: ignore[method-assign]
    return seen


async def _requests(conn: asyncssh.SSHClientConnection) -> None:
    async with conn.start_sftp_client() as sftp:
        async with sftp.open("a.txt", "wb") as fh:
            await fh.write(b"hello")
        for _ in range(10):
            await sftp.stat("a.txt")


@pytest.mark.parametrize("cipher", ["aes128-gcm@openssh.com", "aes128-ctr"])
async def test_no_empty_ignore_packets_with_ctr_or_aead_ciphers(
    server: Server, cipher: str
) -> None:
    async with await server.connect(encryption_algs=[cipher]) as conn:
        ignored = _count_ignore_packets(conn)
        await _requests(conn)
    assert ignored == []
    assert (server.root / "a.txt").read_bytes() == b"hello"


async def test_a_cbc_cipher_keeps_an_ignore_packet_before_each_packet(
    settings: Settings, client_key: tuple[Path, str], host_keys_cache: Path
) -> None:
    # CBC's IVs are predictable without them (RFC 4251 9.3.1): asyncssh's defence stays.
    settings.sftp.ciphers = ["aes128-cbc"]
    reuse_host_keys(settings, host_keys_cache)
    async with serving(settings, frozenset({"sftp"})) as app:
        org = await app.accounts.resolve_organization(None)
        await app.accounts.add_user(org.id, "alice", password=PASSWORD)
        (app.settings.files_root / org.id).mkdir(parents=True, exist_ok=True)
        running = Server(app=app, port=app.sftp.port, org_id=org.id, key_file=client_key[0])
        async with await running.connect(encryption_algs=["aes128-cbc"]) as conn:
            ignored = _count_ignore_packets(conn)
            await _requests(conn)
    # One before each SFTP reply at least (open, write, close, ten stats, ...).
    assert len(ignored) >= 13


async def test_packet_log_calls_are_skipped_only_while_packet_logging_is_off(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    def server_connection() -> Any:
        (front,) = server.app.sftp._connections
        return front._conn

    async with await server.connect() as conn:
        await _requests(conn)
        ssh = server_connection()
        assert ssh.log_sent_packet is _no_packet_log
        assert ssh.log_received_packet is _no_packet_log
    caplog.set_level(logging.DEBUG, logger="asyncssh")
    asyncssh.set_debug_level(3)
    try:
        async with await server.connect() as conn:
            ssh = server_connection()
            assert "log_sent_packet" not in vars(ssh)
            await _requests(conn)
            context = ssh.logger._context
    finally:
        asyncssh.set_debug_level(1)
    # The server connection's own packet lines (its logger's context names its connection).
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"[{context},")]
    assert any("Sent MSG_CHANNEL_DATA" in line for line in lines), lines[:5]
    assert any("Received MSG_CHANNEL_DATA" in line for line in lines), lines[:5]
