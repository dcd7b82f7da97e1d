"""How received bytes become packets: the SSH connection's input buffer (`InputBuffer`) and the
SFTP channel's packet reader (`PacketReader`)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import asyncssh
import pytest
from asyncssh.sftp import MAX_SFTP_PACKET_LEN
from hypothesis import given
from hypothesis import strategies as st

from sftphook.sftp.handler import PacketReader, ReplyPacker
from sftphook.sftp.wire import LARGE_INPUT, InputBuffer, lean_input_buffer
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

    class Session(asyncssh.SSHClientSession[bytes]):
        def __init__(self) -> None:
            self.chunks: list[bytes] = []
            self.arrived = asyncio.Event()

        def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
            self.chunks.append(data)
            self.arrived.set()

    async def replies(session: Session, size: int) -> list[bytes]:
        while sum(map(len, session.chunks)) < size:
            session.arrived.clear()
            await asyncio.wait_for(session.arrived.wait(), 10)
        chunks, session.chunks = session.chunks, []
        return chunks

    def request(kind: int, req_id: int, body: bytes) -> bytes:
        payload = bytes([kind]) + req_id.to_bytes(4, "big") + body
        return len(payload).to_bytes(4, "big") + payload

    async with await server.connect() as conn:
        chan, session = await conn.create_session(Session, subsystem="sftp", encoding=None)
        chan.write(_packet(bytes([1]) + (3).to_bytes(4, "big")))  # SSH_FXP_INIT, version 3
        await replies(session, 9)
        name = b"blob.bin"
        chan.write(request(3, 1, len(name).to_bytes(4, "big") + name + bytes(8)))  # OPEN, read
        opened = b"".join(await replies(session, 13))
        assert opened[4] == 102  # SSH_FXP_HANDLE
        handle = opened[9 : 9 + 4 + int.from_bytes(opened[9:13], "big")]
        reads = b"".join(
            request(5, 10 + i, handle + (i * 32768).to_bytes(8, "big") + (32768).to_bytes(4, "big"))
            for i in range(16)
        )
        chan.write(reads)  # SSH_FXP_READ x 16, in one SSH packet
        chunks = await replies(session, 16 * (13 + 32768))
        chan.close()
    got = b"".join(chunks)
    assert b"".join(got[i + 13 : i + 13 + 32768] for i in range(0, len(got), 13 + 32768)) == data
    assert len(chunks) <= 19
