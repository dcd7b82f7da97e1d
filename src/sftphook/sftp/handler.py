"""asyncssh's SFTP packet handler and stream session, adjusted for the clients people use.

- A successful close (`SSH_FXP_CLOSE`) commits a transfer; a handle still open when the session
  ends is aborted, so an interrupted upload never becomes a file.
- `SSH_FXP_WRITE` ignores bytes after the data, as OpenSSH does (rclone sends some).
- `SSH_FXP_OPENDIR` reports a missing or forbidden directory at once, not at the first read.
- The channel ends with exit status 0, which OpenSSH's `scp` (SFTP mode) waits for.
- Only the extensions this server implements safely are announced.
- Requests are cut from the channel's bytes as they arrive (`PacketReader`), not read through
  asyncssh's general-purpose stream reader: a lock, a buffer walk and two reads per request
  there, one `deque` pop here.
- Replies are packed into full SSH packets while more requests wait (`ReplyPacker`).
- A client that does not read its replies is served no further until it does: the replies
  waiting for it stay bounded (`REPLY_BUFFER`, `StreamSession.drain`).
- A request the server is still working on keeps its connection from counting as idle
  (`StreamSession.requests`), however long it takes; so does an SCP session's call into its
  files (`_SCPFiles`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import asyncssh
from asyncssh.packet import PacketDecodeError, SSHPacket
from asyncssh.sftp import (
    FXP_CLOSE,
    FXP_INIT,
    FXP_OPEN,
    FXP_OPENDIR,
    FXP_WRITE,
    MAX_SFTP_PACKET_LEN,
    MAX_SFTP_READ_LEN,
    MAX_SFTP_WRITE_LEN,
    SFTPServerHandler,
)
from asyncssh.stream import SSHServerStreamSession

from sftphook.sftp.wire import WritePressure, quiet_packet_logs, write_pressure

if TYPE_CHECKING:
    from sftphook.sftp.session import SFTPSession

_T = TypeVar("_T")

_PACKETS_PER_TURN = 8
# The replies an SFTP channel may hold beyond the client's window before it takes no more
# requests (asyncssh's write buffer high-water mark for the channel).
REPLY_BUFFER = 1024 * 1024

_EXTENSIONS: list[tuple[bytes, bytes]] = [
    (b"newline", b"\n"),
    (b"posix-rename@openssh.com", b"1"),
    (b"statvfs@openssh.com", b"2"),
    (b"fstatvfs@openssh.com", b"2"),
    (b"hardlink@openssh.com", b"1"),
    (b"fsync@openssh.com", b"1"),
    (b"lsetstat@openssh.com", b"1"),
    (b"limits@openssh.com", b"1"),
]


def _view_string(packet: SSHPacket) -> memoryview:
    size = packet.get_uint32()
    start = packet._idx
    if start + size > packet._len:
        raise PacketDecodeError("Incomplete packet")
    packet._idx = start + size
    return memoryview(packet._packet)[start : start + size]


class _QuietDebugLogger:
    """asyncssh's logger with `debug1` off: asyncssh formats its arguments for every packet and
    every listed name before the level is checked (a fifth of the time of a large listing)."""

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def debug1(self, *args: object, **kwargs: object) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


def _close_listing(listing: object) -> None:
    close = getattr(listing, "close", None)
    if close is not None:
        close()


class PacketReader:
    """The SFTP packets of one channel, cut from its bytes as they arrive.

    The channel's session hands it every chunk of data (`feed`), and its end (`eof_received`,
    `connection_lost`); the handler takes one whole packet at a time (`next_packet`, the bytes
    after the length). The packets waiting for the handler are bounded by the channel's window:
    past it the channel stops reading, so the client stops sending until the handler catches up.
    A packet still arriving is not counted (it may be larger than the window, and is bounded by
    the largest packet allowed).
    """

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._chan = chan
        self._limit = chan.get_recv_window()
        self._pending = bytearray()
        self._packets: deque[bytes] = deque()
        self._held = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        # What `next_packet` raises once the packets before it are taken.
        self._end: BaseException | None = None

    @property
    def logger(self) -> Any:
        return self._chan.logger

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._chan.get_extra_info(name, default)

    @property
    def waiting(self) -> bool:
        """Whether whole packets wait to be taken."""
        return bool(self._packets)

    def feed(self, data: bytes) -> None:
        if self._end is not None:
            return
        pending = self._pending
        pending += data
        start = 0
        size = len(pending)
        with memoryview(pending) as view:
            while size - start >= 4:
                length = int.from_bytes(view[start : start + 4], "big")
                if length > MAX_SFTP_PACKET_LEN:
                    self._finish(asyncssh.SFTPBadMessage("Max packet size exceeded"))
                    break
                end = start + 4 + length
                if end > size:
                    break
                self._packets.append(bytes(view[start + 4 : end]))
                self._held += length
                start = end
        if start:
            del pending[:start]
        if self._held >= self._limit and not self._paused:
            self._paused = True
            self._chan.pause_reading()
        if self._packets:
            self._wake()

    def eof_received(self) -> None:
        self._finish(EOFError())

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(exc if exc is not None else EOFError())

    def _finish(self, end: BaseException) -> None:
        if self._end is None:
            self._end = end
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_packet(self) -> bytes:
        packets = self._packets
        while not packets:
            if self._end is not None:
                raise self._end
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        packet = packets.popleft()
        self._held -= len(packet)
        if self._paused and self._held < self._limit:
            self._paused = False
            # May hand over what the channel kept meanwhile (`feed`, re-entered).
            self._chan.resume_reading()
        return packet


class ReplyPacker:
    """The replies of one SFTP channel, written in full SSH packets while more requests wait.

    asyncssh sends each write on a channel as SSH packets of its own. The reply to a 32 KiB read
    is 13 bytes longer than the 32 KiB packets an OpenSSH client accepts, so it went out as two
    packets, one of them 13 bytes; each 28-byte reply to an upload's writes was a packet too, and
    every packet is built, padded, encrypted and sent on its own. A reply to a lone request is
    written at once, as before. While the client's next requests are already queued (a
    pipelined transfer), replies are gathered and written in whole packets, and the rest when no
    request waits any more, or at the end of the loop's turn, whichever comes first.
    """

    def __init__(self, writer: asyncssh.SSHWriter[bytes], packets: PacketReader) -> None:
        self._writer = writer
        self._packets = packets
        # The client's largest packet, fixed when the channel opened.
        self._packet_size: int = getattr(writer.channel, "_send_pktsize", 32768)
        self._pending = bytearray()
        self._scheduled = False

    def send(self, packet: bytes) -> None:
        pending = self._pending
        if not self._packets.waiting:
            if pending:
                pending += packet
                self.flush()
            else:
                self._writer.write(packet)
            return
        pending += packet
        whole = len(pending) - len(pending) % self._packet_size
        if whole:
            self._write(whole)
        if pending and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    def flush(self) -> None:
        """Write what is gathered."""
        if self._pending:
            self._write(len(self._pending))

    def _write(self, size: int) -> None:
        # The channel copies what it is given before it returns: no copy here.
        with memoryview(self._pending) as view, view[:size] as part:
            self._writer.write(cast(bytes, part))
        del self._pending[:size]

    def _flush_soon(self) -> None:
        self._scheduled = False
        if self._pending and not self._writer.channel.is_closing():
            self.flush()


class SessionHandler(SFTPServerHandler):
    _extensions = _EXTENSIONS

    _server: SFTPSession

    def __init__(self, session: StreamSession, *args: Any) -> None:
        super().__init__(*args)
        self._session = session
        self._init_read = False
        if not logging.getLogger("asyncssh.sftp").isEnabledFor(logging.DEBUG):
            self._logger = cast(Any, _QuietDebugLogger(self._logger))
        self._packet_log = not quiet_packet_logs(self)
        self._replies = ReplyPacker(
            cast(asyncssh.SSHWriter[bytes], self._writer), cast(PacketReader, self._reader)
        )

    def send_packet(self, pkttype: int, pktid: int | None, *args: bytes) -> None:
        # asyncssh's, with the packet built in one join (it copied the payload twice), through
        # the packer.
        writer = self._writer
        if not writer:
            raise asyncssh.SFTPNoConnection("Connection not open")
        if writer.channel.is_closing():
            return
        length = 1 + sum(map(len, args))
        packet = b"".join((length.to_bytes(4, "big"), pkttype.to_bytes(1, "big"), *args))
        if self._packet_log:
            self.log_sent_packet(pkttype, pktid, packet[4:])
        self._replies.send(packet)

    async def recv_packet(self) -> SSHPacket:
        data = await cast(PacketReader, self._reader).next_packet()
        if not self._init_read:
            self._init_read = True
            # A client asking for SFTP 0-2 is answered with version 3, as OpenSSH's server
            # does: asyncssh would take the lower number and then fail on every request whose
            # attributes it decodes (it has no table for those versions).
            if len(data) >= 5 and data[0] == FXP_INIT and int.from_bytes(data[1:5], "big") < 3:
                return SSHPacket(bytes([FXP_INIT]) + (3).to_bytes(4, "big"))
        return SSHPacket(data)

    async def recv_packets(self) -> None:
        # asyncssh's loop, plus a turn for the other sessions every few packets: requests a
        # client pipelines are already buffered, so without it one download runs dozens of
        # reads back to back while another session's `stat` waits.
        count = 0
        session = self._session
        writer = cast(asyncssh.SSHWriter[bytes], self._writer)
        channel = writer.channel
        pressure = write_pressure(channel.get_connection())
        try:
            while self._reader:
                packet = await self.recv_packet()
                pkttype = packet.get_byte()
                pktid = packet.get_uint32()
                self.log_received_packet(pkttype, pktid, packet)
                # In flight until answered (`_process_packet` sends the reply): not idle.
                session.requests += 1
                try:
                    await self._process_packet(pkttype, pktid, packet)
                finally:
                    session.requests -= 1
                    if session.overdue:
                        session.answered_late()
                count += 1
                if count % _PACKETS_PER_TURN == 0:
                    await asyncio.sleep(0)
                # A client that asks faster than it reads (or stops reading) is served no
                # further until it catches up (`StreamSession.drain`): what waits for it stays
                # bounded, past its channel window by REPLY_BUFFER, in the socket by
                # wire.SOCKET_BUFFER.
                if channel.get_write_buffer_size() or (pressure is not None and pressure.paused):
                    await writer.drain()
        except PacketDecodeError as exc:
            await self._cleanup(asyncssh.SFTPBadMessage(str(exc)))
        except EOFError:
            await self._cleanup(None)
        except (OSError, asyncssh.Error) as exc:
            await self._cleanup(exc)

    async def _process_close(self, packet: Any) -> None:
        handle = packet.get_string()
        packet.check_end()
        file_obj = self._file_handles.pop(handle, None)
        if file_obj is not None:
            await self._server.finish(file_obj)
            return
        listing = self._dir_handles.pop(handle, None)
        if listing is not None:
            _close_listing(listing)
            return
        raise asyncssh.SFTPInvalidHandle("Invalid file handle")

    async def _process_write(self, packet: Any) -> int:
        handle = packet.get_string()
        offset = packet.get_uint64()
        # A view of the data inside the packet instead of `get_string()`'s copy: uploads keep
        # it until it is written out in an I/O thread. No check_end(): trailing bytes are
        # ignored, as OpenSSH's sftp-server does.
        data = _view_string(packet)
        file_obj = self._file_handles.get(handle)
        if file_obj is None:
            raise asyncssh.SFTPInvalidHandle("Invalid file handle")
        return cast(int, await self._server.write(file_obj, offset, data))

    async def _process_open(self, packet: Any) -> bytes:
        # asyncssh's, for version 3 (the one this server speaks), without the debug line whose
        # arguments it formats before the level is checked (the attributes as text: a tenth of
        # an upload's OPEN).
        path = packet.get_string()
        pflags = packet.get_uint32()
        attrs = asyncssh.SFTPAttrs.decode(packet, self._version)
        packet.check_end()
        file_obj = await self._server.open(path, pflags, attrs)
        handle = cast(bytes, self._get_next_handle())
        self._file_handles[handle] = file_obj
        return handle

    async def _process_limits(self, packet: Any) -> asyncssh.SFTPLimits:
        # asyncssh's, with this session's limit on open handles instead of the process's.
        packet.check_end()
        return asyncssh.SFTPLimits(
            MAX_SFTP_PACKET_LEN, MAX_SFTP_READ_LEN, MAX_SFTP_WRITE_LEN, self._server.max_handles
        )

    async def _process_opendir(self, packet: Any) -> bytes:
        path = packet.get_string()
        packet.check_end()
        names: AsyncIterator[asyncssh.SFTPName] = await self._server.opendir(path)
        handle = cast(bytes, self._get_next_handle())
        self._dir_handles[handle] = names
        return handle

    async def _cleanup(self, exc: Exception | None) -> None:
        # Directory handles the client never closed still hold their directories open.
        for listing in list(self._dir_handles.values()):
            _close_listing(listing)
        self._dir_handles.clear()
        writer = self._writer
        if writer is not None:
            channel = cast(asyncssh.SSHServerChannel[bytes], writer.channel)
            if not channel.is_closing():
                self._replies.flush()
                channel.exit(0)
        await super()._cleanup(exc)

    _packet_handlers = {
        **SFTPServerHandler._packet_handlers,
        FXP_CLOSE: cast(Any, _process_close),
        FXP_WRITE: cast(Any, _process_write),
        FXP_OPEN: cast(Any, _process_open),
        FXP_OPENDIR: cast(Any, _process_opendir),
        b"limits@openssh.com": cast(Any, _process_limits),
    }
    for _name in (b"copy-data", b"ranges@asyncssh.com"):
        _packet_handlers.pop(_name, None)
    del _name


class _SCPFiles:
    """An SCP session's files: the session's server object, each call that asyncssh's SCP
    handler makes (through `SFTPServerFS` and `SFTPServerFile`) a request in flight while it
    runs. SCP has no requests of its own, and its client sends nothing while the server
    creates, looks up or commits a file (completing a large upload to S3 can take minutes)."""

    def __init__(self, files: SFTPSession, session: StreamSession) -> None:
        self._files = files
        self._session = session

    async def _call(self, call: Callable[..., Awaitable[_T]], /, *args: Any) -> _T:
        session = self._session
        session.requests += 1
        try:
            return await call(*args)
        finally:
            session.requests -= 1
            if session.overdue:
                session.answered_late()

    async def stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return await self._call(self._files.stat, path)

    async def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        await self._call(self._files.setstat, path, attrs)

    async def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        await self._call(self._files.mkdir, path, attrs)

    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        return await self._call(self._files.open, path, pflags, attrs)

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        return cast(bytes, await self._call(self._files.read, file_obj, offset, size))

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        return await self._call(self._files.write, file_obj, offset, data)

    async def close(self, file_obj: object) -> None:
        # An upload is kept once its client has ended it well: waiting for that is the
        # client's turn, not the server's work (a client silent there is idle).
        await self._files.scp_file_ended(file_obj)
        await self._call(self._files.close, file_obj)

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        names = self._files.scandir(path)
        try:
            while True:
                try:
                    name = await self._call(anext, names)
                except StopAsyncIteration:
                    return
                yield name
        finally:
            await cast(Any, names).aclose()

    async def exit(self) -> None:
        await self._files.exit()


class StreamSession(SSHServerStreamSession[bytes]):
    """A session channel that serves the `sftp` subsystem with `SessionHandler` (its bytes go
    to a `PacketReader`), and `scp`."""

    _packets: PacketReader | None = None
    _pressure: WritePressure | None = None
    # Called once when the channel closes (the connection counts its sessions).
    on_closed: Callable[[], None] | None = None
    # When data last went either way on the channel, or a request that the idle sweep found
    # running was answered (`time.monotonic()`): idle connections are closed
    # (`sftp.idle_timeout`).
    last_active = 0.0
    # Requests received and not answered yet (SFTP: one at a time; SCP: a call into the files
    # in progress). A connection is not idle while the server works on one.
    requests = 0
    # Whether the idle sweep found a request running (`active_at`): its answer restarts the
    # idle clock (`answered_late`). Only such requests pay for a clock read, not every one; a
    # request no sweep saw lasted less than the sweep's period.
    overdue = False

    def answered_late(self) -> None:
        """A request the idle sweep found running has been answered (or has failed)."""
        if not self.requests:
            self.overdue = False
            self.last_active = time.monotonic()

    def active_at(self, now: float) -> float:
        """When the channel was last active: `now` while a request is in flight."""
        if self.requests:
            self.overdue = True
            return now
        return self.last_active

    def session_started(self) -> None:
        self.last_active = time.monotonic()
        chan = self._chan
        conn = self._conn
        if conn is not None:
            self._pressure = write_pressure(conn)
        if chan is not None:
            quiet_packet_logs(chan)
        if chan is not None and conn is not None and chan.get_subsystem() == "sftp":
            # Bytes from the first packet on: the server object is made later, in the task.
            chan.set_encoding(None)
            chan.set_write_buffer_limits(high=REPLY_BUFFER)
            self._encoding = None
            server_chan = cast(asyncssh.SSHServerChannel[bytes], chan)
            packets = self._packets = PacketReader(server_chan)
            stdout = asyncssh.SSHWriter[bytes](self, chan)
            conn.create_task(self._run_sftp(packets, stdout), chan.logger)
            return
        super().session_started()

    async def drain(self, datatype: asyncssh.DataType) -> None:
        self.last_active = time.monotonic()
        # asyncssh's wait for the channel's window, then for the connection's socket (which
        # asyncssh does not watch): SFTP replies and SCP downloads both wait here.
        await super().drain(datatype)
        pressure = self._pressure
        if pressure is not None and pressure.paused:
            await pressure.writable()

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.last_active = time.monotonic()
        packets = self._packets
        if packets is None:
            super().data_received(data, datatype)
        elif datatype is None:
            # (Extended data from a client has no meaning in an SFTP session: dropped.)
            packets.feed(data)

    def eof_received(self) -> bool:
        if self._packets is not None:
            self._packets.eof_received()
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._packets is not None:
            self._packets.connection_lost(exc)
        closed, self.on_closed = self.on_closed, None
        if closed is not None:
            closed()
        super().connection_lost(exc)

    def _init_sftp_server(self) -> Any:
        server = super()._init_sftp_server()
        if self._packets is not None:
            return server
        return self._scp_files(server)

    async def _scp_files(self, server: Any) -> _SCPFiles:
        if inspect.isawaitable(server):
            server = await server
        return _SCPFiles(server, self)

    async def _run_sftp(self, reader: PacketReader, writer: asyncssh.SSHWriter[bytes]) -> None:
        server = self._init_sftp_server()
        if inspect.isawaitable(server):
            server = await server
        try:
            await SessionHandler(self, server, cast(Any, reader), writer, 3).run()
        finally:
            # However the session ended, its open files are discarded and it is forgotten.
            result = server.exit()
            if inspect.isawaitable(result):
                await result


__all__ = ["PacketReader", "ReplyPacker", "SessionHandler", "StreamSession"]
