"""How received bytes become packets: the SSH connection's input buffer (`InputBuffer`) and the
SFTP channel's packet reader (`PacketReader`)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import asyncssh
import pytest
from asyncssh.sftp import MAX_SFTP_PACKET_LEN, MAX_SFTP_READ_LEN
from hypothesis import given
from hypothesis import strategies as st

from sftphook.sftp.handler import REPLY_BUFFER, PacketReader, ReplyPacker
from sftphook.sftp.wire import (
    LARGE_INPUT,
    SOCKET_BUFFER,
    InputBuffer,
    lean_input_buffer,
    write_pressure,
)
from tests.sftp.conftest import Server

# One step on a buffer: ("add", bytes), ("take", n) for buf[:n], ("copy", i, j) for buf[i:j],
# ("drop", n) for `buf = buf[n:]`, ("find", byte).
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.binary(max_size=64)),
        st.tuples(st.just("take"), st.integers(0, 80)),
        st.tuples(st.just("copy"), st.integers(0, 80), st.integers(0, 80)),
        st.tuples(st.just("drop"), st.integers(0, 80)),
        st.tuples(st.just("find"), st.binary(min_size=1, max_size=1)),
    ),
    max_size=60,
)


@given(_steps)
def test_the_input_buffer_answers_as_bytes_would(steps: list[tuple[Any, ...]]) -> None:
    model = b""
    buf: Any = InputBuffer()
    for step in steps:
        if step[0] == "add":
            model += step[1]
            buf += step[1]
        elif step[0] == "take":
            assert buf[: step[1]] == model[: step[1]]
        elif step[0] == "copy":
            assert buf[step[1] : step[2]] == model[step[1] : step[2]]
        elif step[0] == "drop":
            model = model[step[1] :]
            buf = buf[step[1] :]
        else:
            assert buf.find(step[1], 0, 40) == model.find(step[1], 0, 40)
        assert len(buf) == len(model)
        assert bool(buf) == bool(model)
        assert bytes(buf) == model


def test_the_input_buffer_drops_its_front_in_place() -> None:
    buf = InputBuffer()
    buf += b"0123456789"
    assert buf[4:] is buf
    assert bytes(buf) == b"456789"
    assert isinstance(buf[:2], bytes)
    with pytest.raises(ValueError):
        buf[-2:]


class _Connection:
    """asyncssh's use of its input buffer, with packets of 100 bytes."""

    def __init__(self) -> None:
        self._inpbuf: Any = b""
        self.parsed_from: list[str] = []

    def data_received(self, data: bytes) -> None:
        self._inpbuf += data
        self._recv_data()

    def _recv_data(self) -> None:
        self.parsed_from.append(type(self._inpbuf).__name__)
        while len(self._inpbuf) >= 100:
            self._inpbuf = self._inpbuf[100:]


def test_a_connection_parses_large_input_from_an_input_buffer_and_small_from_bytes() -> None:
    conn = _Connection()
    lean_input_buffer(conn)
    conn.data_received(b"x" * 150)
    conn.data_received(b"x" * LARGE_INPUT)
    assert type(conn._inpbuf) is bytes
    assert len(conn._inpbuf) == (150 + LARGE_INPUT) % 100
    conn.data_received(b"x" * 30)
    assert conn.parsed_from == ["bytes", "InputBuffer", "bytes"]


async def test_an_upload_through_the_lean_input_buffer_arrives_whole(server: Server) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        (front,) = server.app.sftp._connections
        assert "_recv_data" in vars(front._conn)  # lean_input_buffer's
        async with sftp.open("big.bin", "wb") as fh:
            await fh.write(data)
        async with sftp.open("big.bin", "rb") as fh:
            assert await fh.read() == data
    events = await server.events()
    created = [(e.path, e.sha256) for e in events if e.topic == "file.created"]
    assert created == [("big.bin", hashlib.sha256(data).hexdigest())]


class _Channel:
    """What a `PacketReader` uses of its channel, recording pauses."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.calls: list[str] = []
        self.logger = None
        self.kept: list[bytes] = []
        self.reader: PacketReader | None = None

    def get_recv_window(self) -> int:
        return self.window

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")
        # A channel hands over what it kept while paused, from inside this call.
        assert self.reader is not None
        kept, self.kept = self.kept, []
        for data in kept:
            self.reader.feed(data)


def _packet(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def _reader(window: int = 1 << 20) -> tuple[PacketReader, _Channel]:
    chan = _Channel(window)
    reader = chan.reader = PacketReader(chan)  # type: ignore[arg-type]
    return reader, chan


async def test_packets_are_cut_whatever_the_chunks() -> None:
    bodies = [os.urandom(n) for n in (1, 0, 5, 300, 70_000, 2, 4)]
    stream = b"".join(_packet(b) for b in bodies)
    for size in (1, 3, 4, 7, 1000, len(stream)):
        reader, _chan = _reader()
        for i in range(0, len(stream), size):
            reader.feed(stream[i : i + size])
        reader.eof_received()
        assert [await reader.next_packet() for _ in bodies] == bodies
        with pytest.raises(EOFError):
            await reader.next_packet()


async def test_a_waiting_handler_wakes_on_a_whole_packet_only() -> None:
    reader, _chan = _reader()
    task = asyncio.create_task(reader.next_packet())
    reader.feed(_packet(b"hello")[:6])
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not task.done()
    reader.feed(_packet(b"hello")[6:])
    assert await asyncio.wait_for(task, 5) == b"hello"


async def test_the_channel_pauses_past_the_window_and_resumes_below_it() -> None:
    reader, chan = _reader(window=1000)
    reader.feed(_packet(b"a" * 600))
    assert chan.calls == []
    reader.feed(_packet(b"b" * 600))
    assert chan.calls == ["pause"]
    chan.kept.append(_packet(b"c" * 10))  # arrived while paused: the channel keeps it
    assert await reader.next_packet() == b"a" * 600
    assert chan.calls == ["pause", "resume"]
    assert await reader.next_packet() == b"b" * 600
    assert await reader.next_packet() == b"c" * 10


async def test_a_packet_larger_than_the_window_still_arrives() -> None:
    # Only whole packets count: one still arriving never pauses the channel for good.
    reader, chan = _reader(window=1000)
    body = os.urandom(5000)
    for i in range(0, 5004, 500):
        reader.feed(_packet(body)[i : i + 500])
        if i < 4500:
            assert chan.calls == []
    assert await reader.next_packet() == body


async def test_an_oversized_packet_ends_the_session_after_the_packets_before_it() -> None:
    reader, _chan = _reader()
    reader.feed(_packet(b"first") + (MAX_SFTP_PACKET_LEN + 1).to_bytes(4, "big") + b"xx")
    reader.feed(_packet(b"ignored"))
    assert await reader.next_packet() == b"first"
    with pytest.raises(asyncssh.SFTPBadMessage):
        await reader.next_packet()


async def test_a_lost_connection_raises_its_error_after_the_queued_packets() -> None:
    reader, _chan = _reader()
    reader.feed(_packet(b"one"))
    lost = ConnectionResetError("gone")
    reader.connection_lost(lost)
    reader.connection_lost(None)  # the first end stands
    assert await reader.next_packet() == b"one"
    with pytest.raises(ConnectionResetError):
        await reader.next_packet()


# Replies: `ReplyPacker`


class _Writer:
    """A channel's writer: what was written, one entry per write."""

    def __init__(self, packet_size: int) -> None:
        self.writes: list[bytes] = []
        self.channel = self
        self._send_pktsize = packet_size
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing


class _Queue:
    waiting = False


def _packer(packet_size: int = 100) -> tuple[ReplyPacker, _Writer, _Queue]:
    writer, queue = _Writer(packet_size), _Queue()
    return ReplyPacker(writer, queue), writer, queue  # type: ignore[arg-type]


async def test_a_reply_to_a_lone_request_is_written_at_once() -> None:
    packer, writer, _queue = _packer()
    packer.send(b"a" * 250)
    packer.send(b"b" * 10)
    assert writer.writes == [b"a" * 250, b"b" * 10]


async def test_replies_to_queued_requests_are_written_in_whole_packets() -> None:
    packer, writer, queue = _packer(packet_size=100)
    queue.waiting = True
    packer.send(b"a" * 60)
    assert writer.writes == []
    packer.send(b"b" * 60)
    packer.send(b"c" * 90)
    assert writer.writes == [b"a" * 60 + b"b" * 40, b"b" * 20 + b"c" * 80]
    # The last request's reply takes the rest with it.
    queue.waiting = False
    packer.send(b"d" * 5)
    assert writer.writes[2:] == [b"c" * 10 + b"d" * 5]


async def test_gathered_replies_leave_by_the_end_of_the_loop_turn() -> None:
    packer, writer, queue = _packer()
    queue.waiting = True  # the handler then waits on something slow: no reply follows
    packer.send(b"x" * 30)
    packer.send(b"y" * 30)
    assert writer.writes == []
    await asyncio.sleep(0)
    assert writer.writes == [b"x" * 30 + b"y" * 30]
    # Nothing is written on a channel that is closing.
    packer.send(b"z")
    writer.closing = True
    await asyncio.sleep(0)
    assert writer.writes == [b"x" * 30 + b"y" * 30]


@given(st.lists(st.tuples(st.binary(max_size=300), st.booleans()), max_size=40))
def test_packed_replies_keep_their_bytes_and_order(steps: list[tuple[bytes, bool]]) -> None:
    async def run() -> None:
        packer, writer, queue = _packer(packet_size=64)
        for reply, waiting in steps:
            queue.waiting = waiting
            before = len(writer.writes)
            packer.send(reply)
            if waiting:  # while requests wait, only whole packets are written
                assert all(len(w) % 64 == 0 for w in writer.writes[before:])
        packer.flush()
        assert b"".join(writer.writes) == b"".join(reply for reply, _ in steps)

    asyncio.run(run())


class _RawSession(asyncssh.SSHClientSession[bytes]):
    """A client channel that keeps what it receives, one entry per SSH packet."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.arrived = asyncio.Event()

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.chunks.append(data)
        self.arrived.set()


def _request(kind: int, req_id: int, body: bytes) -> bytes:
    payload = bytes([kind]) + req_id.to_bytes(4, "big") + body
    return len(payload).to_bytes(4, "big") + payload


async def _open_raw(conn: asyncssh.SSHClientConnection, name: bytes, **kwargs: Any) -> Any:
    """An SFTP channel of raw packets, initialised, with `name` opened for reading: (channel,
    session, the handle as an SFTP string)."""
    chan, session = await conn.create_session(
        _RawSession, subsystem="sftp", encoding=None, **kwargs
    )
    chan.write(_packet(bytes([1]) + (3).to_bytes(4, "big")))  # SSH_FXP_INIT, version 3
    chan.write(_request(3, 1, len(name).to_bytes(4, "big") + name + bytes(8)))  # OPEN, read
    stream = b""
    while True:
        stream = b"".join(session.chunks)
        # Two whole packets: VERSION (with its extensions), then HANDLE.
        if len(stream) >= 4:
            second = 4 + int.from_bytes(stream[:4], "big")
            if len(stream) >= second + 4 and len(stream) >= second + 4 + int.from_bytes(
                stream[second : second + 4], "big"
            ):
                break
        session.arrived.clear()
        await asyncio.wait_for(session.arrived.wait(), 10)
    session.chunks.clear()
    opened = stream[second:]
    assert opened[4] == 102  # SSH_FXP_HANDLE
    return chan, session, opened[9 : 9 + 4 + int.from_bytes(opened[9:13], "big")]


def _read(handle: bytes, req_id: int, offset: int, size: int = 32768) -> bytes:
    return _request(5, 10 + req_id, handle + offset.to_bytes(8, "big") + size.to_bytes(4, "big"))


async def _received(session: _RawSession, size: int) -> bytes:
    """What the channel received, once `size` bytes have come (the chunks are kept)."""
    while sum(map(len, session.chunks)) < size:
        session.arrived.clear()
        await asyncio.wait_for(session.arrived.wait(), 30)
    return b"".join(session.chunks)


async def test_pipelined_reads_come_back_in_full_ssh_packets(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixteen 32 KiB reads sent at once: their replies (13 bytes over the client's 32 KiB packet
    each) fill 17 SSH packets, plus what is written when the handler yields to other sessions
    after eight requests; 32 before, one and a bit per reply."""
    # Reads on the loop whatever this machine's speed (in a thread, the handler would wait for
    # each one, and its reply would leave alone at the turn's end).
    monkeypatch.setattr(server.app.sftp.offload, "inline", lambda kind: True)
    data = os.urandom(16 * 32768)
    (server.root / "blob.bin").write_bytes(data)
    async with await server.connect() as conn:
        chan, session, handle = await _open_raw(conn, b"blob.bin")
        chan.write(b"".join(_read(handle, i, i * 32768) for i in range(16)))  # one SSH packet
        got = await _received(session, 16 * (13 + 32768))
        chan.close()
    assert b"".join(got[i + 13 : i + 13 + 32768] for i in range(0, len(got), 13 + 32768)) == data
    assert len(session.chunks) <= 19


async def test_a_client_that_stops_reading_its_replies_stops_being_served(server: Server) -> None:
    """Reads asked for and never taken (the client's window stays shut): the server holds a
    bounded amount of replies and stops taking requests, as OpenSSH's does, instead of keeping
    every reply in memory; all are served once the client reads again."""
    (server.root / "blob.bin").write_bytes(os.urandom(256 * 1024))
    async with await server.connect() as conn:
        chan, session, handle = await _open_raw(conn, b"blob.bin", window=256 * 1024)
        chan.pause_reading()  # no window adjust: the server's window for this channel runs out
        reads = [_read(handle, i, (i % 8) * 32768) for i in range(400)]
        for i in range(0, len(reads), 40):
            chan.write(b"".join(reads[i : i + 40]))
        await asyncio.sleep(1.0)
        (front,) = server.app.sftp._connections
        assert front._conn is not None
        (server_chan,) = front._conn._channels.values()
        # 400 replies of 32 KiB were asked for (13 MB).
        assert server_chan.get_write_buffer_size() < REPLY_BUFFER + 64 * 1024
        chan.resume_reading()
        assert len(await _received(session, 400 * (13 + 32768))) == 400 * (13 + 32768)
        chan.close()


async def test_a_client_whose_socket_is_full_stops_being_served(server: Server) -> None:
    """A wide-open window and a client that does not read its socket: what the server keeps
    unsent stays near `SOCKET_BUFFER`, not the 65 MB asked for."""
    (server.root / "blob.bin").write_bytes(os.urandom(256 * 1024))
    count = 2000
    async with await server.connect() as conn:
        chan, session, handle = await _open_raw(conn, b"blob.bin", window=1 << 30)
        client_transport = conn._transport
        assert client_transport is not None
        client_transport.pause_reading()  # the kernel's buffers fill, then the server's
        reads = [_read(handle, i, (i % 8) * 32768) for i in range(count)]
        for i in range(0, len(reads), 100):
            chan.write(b"".join(reads[i : i + 100]))
        await asyncio.sleep(2.0)
        (front,) = server.app.sftp._connections
        assert front._conn is not None and front._conn._transport is not None
        unsent = front._conn._transport.get_write_buffer_size()
        # Past the limit by at most the replies of one turn of the loop (eight here).
        assert unsent < SOCKET_BUFFER + 8 * (13 + 32768) + 64 * 1024
        pressure = write_pressure(front._conn)
        assert pressure is not None and pressure.paused
        client_transport.resume_reading()
        total = count * (13 + 32768)
        assert len(await _received(session, total)) == total
        chan.close()


async def test_a_legacy_scp_download_to_a_client_that_does_not_read_stays_bounded(
    server: Server,
) -> None:
    """`scp -f` (what `scp -O` runs to download) to a client that stops reading its socket: the
    server stops reading the file near `SOCKET_BUFFER` instead of sending all 32 MiB into it."""
    size = 32 * 1024 * 1024
    data = os.urandom(size)
    (server.root / "big.bin").write_bytes(data)
    async with await server.connect() as conn:
        chan, session = await conn.create_session(
            _RawSession, command="scp -f big.bin", encoding=None, window=1 << 30
        )
        chan.write(b"\0")  # ready
        header = await _received(session, 1)
        while not header.endswith(b"\n"):
            header = await _received(session, len(header) + 1)
        assert header == f"C0644 {size} big.bin\n".encode()
        session.chunks.clear()
        client_transport = conn._transport
        assert client_transport is not None
        client_transport.pause_reading()
        chan.write(b"\0")  # send the file
        await asyncio.sleep(2.0)
        (front,) = server.app.sftp._connections
        assert front._conn is not None and front._conn._transport is not None
        # Past the limit by at most one of asyncssh's 256 KiB blocks.
        assert front._conn._transport.get_write_buffer_size() < SOCKET_BUFFER + 512 * 1024
        client_transport.resume_reading()
        got = await _received(session, size + 1)
        assert got[:size] == data and got[size:] == b"\0"
        chan.write(b"\0")
        chan.close()


async def test_a_read_larger_than_the_announced_limit_returns_the_limit(server: Server) -> None:
    """READ of 64 MiB in one request: the reply carries `MAX_SFTP_READ_LEN` (4 MiB, what
    `limits@openssh.com` announces) and the client asks again for the rest, as with OpenSSH's
    server; the server never holds the whole request's size in memory."""
    data = os.urandom(12 * 1024 * 1024)
    (server.root / "big.bin").write_bytes(data)
    async with await server.connect() as conn:
        chan, session, handle = await _open_raw(conn, b"big.bin")
        chan.write(_read(handle, 0, 0, 64 * 1024 * 1024))
        reply = await _received(session, 13)
        length = int.from_bytes(reply[9:13], "big")
        assert reply[4] == 103 and length == MAX_SFTP_READ_LEN  # SSH_FXP_DATA
        reply = await _received(session, 13 + length)
        assert reply[13:] == data[:length]
        chan.close()
    # What real clients do with a short read: the whole file arrives.
    async with (
        await server.connect() as conn,
        conn.start_sftp_client() as sftp,
        sftp.open("big.bin", "rb", block_size=16 * 1024 * 1024) as fh,
    ):
        assert await fh.read() == data
