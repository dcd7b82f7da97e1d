"""What an SSH connection puts on the wire, made cheaper without changing what it means.

- **Coalesced socket writes** (`coalesce_writes`): the packets of one event-loop turn in one send.

  asyncssh writes every SSH packet to its transport as soon as it is built, so a client
  uploading in 32 KiB writes gets one `send` (and one wake-up) per STATUS reply and window
  adjust, and a download one per DATA packet. `CoalescingTransport` sits between an asyncssh
  connection and its socket transport: the first packet of a turn of the loop goes to the
  socket at once (a reply to a lone request, as in a small-file transfer, is not held back: a
  turn later, the client's next request came 30-70 us later here), and the ones after it in
  the same turn are gathered and handed to the socket in one `write` at the turn's end.
- **No empty SSH_MSG_IGNORE before every packet** (`skip_ignore_padding`): asyncssh sends one
  ahead of each packet after the key exchange, the old defence of CBC ciphers against a chosen
  plaintext attack on their predictable IVs (RFC 4251 section 9.3.1). The counter-mode and AEAD
  ciphers (`*-ctr`, `*-gcm@openssh.com`, `chacha20-poly1305@openssh.com`) have no such IVs, and
  OpenSSH sends no such packets; the empty ones are dropped unless a CBC cipher was negotiated.
  It halves the packets (each encrypted, logged and decrypted by the client) of a small request.
- **Received bytes not copied again for every packet** (`lean_input_buffer`): asyncssh keeps
  what the socket gave it in a `bytes` object, appends to it with `+=` and takes each packet off
  its front with a slice: every packet copied the rest of the buffer, and a socket read of 256
  KiB holds eight packets of an upload. That was six copies of each byte received before its
  decryption (0.5 s of the loop's CPU per 512 MiB uploaded, here). `InputBuffer` gives asyncssh
  the same operations on a `bytearray`, whose front is dropped without moving the rest; it is
  used while 64 KiB or more wait to be parsed (a small request's few hundred bytes are quicker
  to slice as `bytes`).
- **Sessions wait for a socket that is behind** (`WritePressure`): asyncssh ignores its
  transport's pause and resume, so a client that asks for data and does not read it (with an
  SSH window large enough) had every reply kept in the process. The connection now tracks
  them, and an SFTP session takes no new request while the socket holds more than
  `SOCKET_BUFFER` bytes it could not send.
- **No packet log lines built to be dropped** (`quiet_packet_logs`): asyncssh formats a line for
  every packet it sends or receives (the type's name, the size, a copy of the payload), on the
  connection, the channel and the SFTP handler, before its logger checks the level. While
  packet logging is off (asyncssh's debug level below 3, or its logger not at DEBUG) those calls
  are skipped. Raising the level later applies to connections made after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Any

from asyncssh.constants import MSG_IGNORE

_EMPTY_STRING = b"\x00\x00\x00\x00"


# A connection's unparsed input from this size on is kept in an `InputBuffer` (`lean_input_buffer`).
LARGE_INPUT = 64 * 1024


class InputBuffer:
    """The bytes an asyncssh connection has received and not yet parsed, as the connection uses
    them: `+=` appends, `buf[:n]` and `buf[i:j]` are copies (`bytes`), and `buf[n:]`, which
    asyncssh only ever assigns back to the buffer, drops the first `n` bytes in place and returns
    the buffer itself."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data = bytearray()

    def __iadd__(self, data: bytes) -> InputBuffer:
        self._data += data
        return self

    def __len__(self) -> int:
        return len(self._data)

    def find(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        return self._data.find(sub, start, len(self._data) if end is None else end)

    def __getitem__(self, key: slice) -> bytes | InputBuffer:
        if key.stop is None and key.step is None:
            start = key.start or 0
            if start < 0:
                raise ValueError("InputBuffer drops bytes from its front only")
            # A bytearray drops its front by moving its start, not its bytes.
            del self._data[:start]
            return self
        with memoryview(self._data) as view:
            return bytes(view[key])

    def __bytes__(self) -> bytes:
        return bytes(self._data)


def lean_input_buffer(conn: Any) -> None:
    """Have asyncssh connection `conn` parse a large amount of received bytes (`LARGE_INPUT` or
    more: several packets of an upload) from an `InputBuffer`, and a small one as it does, from
    `bytes` (its slices cost less than an `InputBuffer`'s Python calls for a packet of a few
    hundred bytes). Called from the connection's `connection_made`."""
    recv_data = conn._recv_data

    def parse() -> None:
        if len(conn._inpbuf) >= LARGE_INPUT and type(conn._inpbuf) is bytes:
            buf = InputBuffer()
            buf += conn._inpbuf
            conn._inpbuf = buf
        recv_data()
        buf = conn._inpbuf
        if type(buf) is InputBuffer and len(buf) < LARGE_INPUT:
            conn._inpbuf = bytes(buf)

    conn._recv_data = parse


class CoalescingTransport:
    """Wraps a transport; a turn's writes after its first are deferred to the end of the turn,
    all else passes."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._pending_size = 0
        # Whether this turn of the loop has written (its flush is then due at the turn's end).
        self._in_turn = False

    def write(self, data: bytes) -> None:
        if not self._in_turn:
            # The turn's first packet leaves at once: a lone reply is not held back a turn.
            self._in_turn = True
            self._loop.call_soon(self.flush)
            if not self._transport.is_closing():
                with contextlib.suppress(ConnectionError):
                    self._transport.write(data)
            return
        self._pending.append(data)
        self._pending_size += len(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Hand what was written so far to the socket transport."""
        self._in_turn = False
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self._pending_size = 0
        if not self._transport.is_closing():
            # asyncssh ignores a connection reset at write time too; the read side reports it.
            with contextlib.suppress(ConnectionError):
                self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._pending_size

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        # asyncssh aborts right after sending its disconnect message: send it first.
        self.flush()
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


# What a connection's socket transport may hold unsent before sessions stop taking requests.
SOCKET_BUFFER = 1024 * 1024
# While paused, how often a waiting session checks that the connection is still open.
_PAUSE_POLL = 1.0


class WritePressure:
    """Whether an asyncssh connection's socket transport is behind on what it was given.

    The transport calls the connection's `pause_writing` and `resume_writing` (asyncssh does
    nothing with them); `watch_write_pressure` routes them here, and a session awaits
    `writable()` before it takes another request."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.paused = False
        self._resumed: asyncio.Future[None] | None = None

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        resumed, self._resumed = self._resumed, None
        if resumed is not None and not resumed.done():
            resumed.set_result(None)

    async def writable(self) -> None:
        """Return once the socket has room; `BrokenPipeError` if the connection closed."""
        while self.paused:
            if self._conn.is_closed():
                raise BrokenPipeError("connection closed")
            if self._resumed is None or self._resumed.done():
                self._resumed = asyncio.get_running_loop().create_future()
            # A connection lost while paused never resumes: looked at again every second.
            await asyncio.wait([self._resumed], timeout=_PAUSE_POLL)


_PRESSURE: weakref.WeakKeyDictionary[Any, WritePressure] = weakref.WeakKeyDictionary()


def watch_write_pressure(conn: Any) -> WritePressure:
    """Track the pauses of asyncssh connection `conn`'s transport (its buffer limits raised to
    `SOCKET_BUFFER`). Called from the connection's `connection_made`, after `coalesce_writes`."""
    pressure = WritePressure(conn)
    conn.pause_writing = pressure.pause
    conn.resume_writing = pressure.resume
    transport = conn._transport
    if transport is not None:
        transport.set_write_buffer_limits(high=SOCKET_BUFFER)
    _PRESSURE[conn] = pressure
    return pressure


def write_pressure(conn: Any) -> WritePressure | None:
    """`conn`'s `WritePressure`, if `watch_write_pressure` was called for it."""
    return _PRESSURE.get(conn)


def coalesce_writes(conn: Any) -> None:
    """Route the writes of asyncssh connection `conn` through a `CoalescingTransport`.

    Called from the connection's `connection_made`, before asyncssh sends its version line.
    """
    transport = conn._transport
    if transport is not None and not isinstance(transport, CoalescingTransport):
        conn._transport = CoalescingTransport(transport, asyncio.get_running_loop())


def skip_ignore_padding(conn: Any) -> None:
    """Have asyncssh connection `conn` send its empty SSH_MSG_IGNORE packets only while a CBC
    cipher encrypts what it sends. Called from the connection's `connection_made`."""
    send_packet = conn.send_packet

    def send(pkttype: int, *args: bytes, handler: Any = None) -> None:
        if (
            pkttype == MSG_IGNORE
            and args == (_EMPTY_STRING,)
            and b"-cbc" not in getattr(conn, "_enc_alg_sc", b"-cbc")
        ):
            return
        send_packet(pkttype, *args, handler=handler)

    conn.send_packet = send


def _no_packet_log(*args: object) -> None:
    return None


def packet_logging_on(logger: Any) -> bool:
    """Whether asyncssh's `logger` (an `SSHLogger`) writes packet lines (debug level 3)."""
    return getattr(logger, "_debug_level", 3) >= 3 and logger.isEnabledFor(logging.DEBUG)


def quiet_packet_logs(packet_handler: Any) -> bool:
    """Skip `packet_handler`'s per-packet log calls (an asyncssh connection, channel or SFTP
    handler) while packet logging is off; whether they are skipped."""
    if packet_logging_on(packet_handler.logger):
        return False
    packet_handler.log_sent_packet = _no_packet_log
    packet_handler.log_received_packet = _no_packet_log
    return True


__all__ = [
    "CoalescingTransport",
    "LARGE_INPUT",
    "SOCKET_BUFFER",
    "InputBuffer",
    "WritePressure",
    "coalesce_writes",
    "lean_input_buffer",
    "packet_logging_on",
    "quiet_packet_logs",
    "skip_ignore_padding",
    "watch_write_pressure",
    "write_pressure",
]
