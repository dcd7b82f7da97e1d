"""asyncssh's SFTP packet handler and stream session, adjusted for the clients people use.

- A successful close (`SSH_FXP_CLOSE`) commits a transfer; a handle still open when the session
  ends is aborted, so an interrupted upload never becomes a file.
- `SSH_FXP_WRITE` ignores bytes after the data, as OpenSSH does (rclone sends some).
- `SSH_FXP_OPENDIR` reports a missing or forbidden directory at once, not at the first read.
- The channel ends with exit status 0, which OpenSSH's `scp` (SFTP mode) waits for.
- Only the extensions this server implements safely are announced.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

import asyncssh
from asyncssh.packet import PacketDecodeError, SSHPacket
from asyncssh.sftp import FXP_CLOSE, FXP_INIT, FXP_OPENDIR, FXP_WRITE, SFTPServerHandler
from asyncssh.stream import SSHServerStreamSession

from sftphook.sftp.wire import quiet_packet_logs

if TYPE_CHECKING:
    from sftphook.sftp.session import SFTPSession


_PACKETS_PER_TURN = 8

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


class SessionHandler(SFTPServerHandler):
    _extensions = _EXTENSIONS

    _server: SFTPSession

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._init_read = False
        if not logging.getLogger("asyncssh.sftp").isEnabledFor(logging.DEBUG):
            self._logger = cast(Any, _QuietDebugLogger(self._logger))
        quiet_packet_logs(self)

    async def recv_packet(self) -> SSHPacket:
        packet = await super().recv_packet()
        if not self._init_read:
            self._init_read = True
            data = packet.get_full_payload()
            # A client asking for SFTP 0-2 is answered with version 3, as OpenSSH's server
            # does: asyncssh would take the lower number and then fail on every request whose
            # attributes it decodes (it has no table for those versions).
            if len(data) >= 5 and data[0] == FXP_INIT and int.from_bytes(data[1:5], "big") < 3:
                return SSHPacket(bytes([FXP_INIT]) + (3).to_bytes(4, "big"))
        return packet

    async def recv_packets(self) -> None:
        # asyncssh's loop, plus a turn for the other sessions every few packets: requests a
        # client pipelines are already buffered, so without it one download runs dozens of
        # reads back to back while another session's `stat` waits.
        count = 0
        try:
            while self._reader:
                packet = await self.recv_packet()
                pkttype = packet.get_byte()
                pktid = packet.get_uint32()
                self.log_received_packet(pkttype, pktid, packet)
                await self._process_packet(pkttype, pktid, packet)
                count += 1
                if count % _PACKETS_PER_TURN == 0:
                    await asyncio.sleep(0)
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
                channel.exit(0)
        await super()._cleanup(exc)

    _packet_handlers = {
        **SFTPServerHandler._packet_handlers,
        FXP_CLOSE: cast(Any, _process_close),
        FXP_WRITE: cast(Any, _process_write),
        FXP_OPENDIR: cast(Any, _process_opendir),
    }
    for _name in (b"copy-data", b"ranges@asyncssh.com"):
        _packet_handlers.pop(_name, None)
    del _name


class StreamSession(SSHServerStreamSession[bytes]):
    """A session channel that serves the `sftp` subsystem with `SessionHandler`, and `scp`."""

    def session_started(self) -> None:
        chan = self._chan
        conn = self._conn
        if chan is not None:
            quiet_packet_logs(chan)
        if chan is not None and conn is not None and chan.get_subsystem() == "sftp":
            # Bytes from the first packet on: the server object is made later, in the task.
            chan.set_encoding(None)
            self._encoding = None
            stdin = asyncssh.SSHReader[bytes](self, chan)
            stdout = asyncssh.SSHWriter[bytes](self, chan)
            conn.create_task(self._run_sftp(stdin, stdout), stdin.logger)
            return
        super().session_started()

    async def _run_sftp(
        self, reader: asyncssh.SSHReader[bytes], writer: asyncssh.SSHWriter[bytes]
    ) -> None:
        server = self._init_sftp_server()
        if inspect.isawaitable(server):
            server = await server
        try:
            await SessionHandler(server, reader, writer, 3).run()
        finally:
            # However the session ended, its open files are discarded and it is forgotten.
            result = server.exit()
            if inspect.isawaitable(result):
                await result


__all__ = ["SessionHandler", "StreamSession"]
