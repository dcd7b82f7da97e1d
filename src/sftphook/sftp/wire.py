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
from typing import Any

from asyncssh.constants import MSG_IGNORE

_EMPTY_STRING = b"\x00\x00\x00\x00"


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


def quiet_packet_logs(packet_handler: Any) -> None:
    """Skip `packet_handler`'s per-packet log calls (an asyncssh connection, channel or SFTP
    handler) while packet logging is off."""
    if not packet_logging_on(packet_handler.logger):
        packet_handler.log_sent_packet = _no_packet_log
        packet_handler.log_received_packet = _no_packet_log


__all__ = [
    "CoalescingTransport",
    "coalesce_writes",
    "packet_logging_on",
    "quiet_packet_logs",
    "skip_ignore_padding",
]
