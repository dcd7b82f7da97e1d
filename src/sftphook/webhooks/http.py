"""The HTTP/1.1 client transport of webhook attempts: asyncio protocols and the llhttp parser.

A webhook attempt needs a small part of HTTP: one POST with a body, a status, headers and a
capped body back, over a kept-alive connection. A general client pays per request for features
this never uses, so this transport writes the request head itself, parses the response with
`httptools` (llhttp, in C) and keeps a small pool of connections.

Safety lives at connect time: a host name is resolved through `resolve_safe` for every new
connection and only the addresses it returned are dialled (no DNS rebinding); an IP-literal host
is checked against the policy once per URL. No redirect is followed, nothing is decompressed,
and at most `max_body` bytes of a response are kept before the connection is dropped; a response
whose head (status line and headers) exceeds `MAX_HEAD` is an invalid response, and its
connection is dropped as well.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit

import httptools

from sftphook.errors import UnsafeDestination
from sftphook.webhooks.sender import (
    LITERAL_CACHE_SIZE,
    Response,
    TransportError,
    literal_refusal,
    tls_context,
)
from sftphook.webhooks.urlsafety import IPAddress, Lookup, UrlPolicy, resolve_safe, system_lookup

# An idle kept-alive connection is closed after this long (servers drop theirs at 5 to 75 s).
IDLE_SECONDS = 30.0
MAX_ERROR_LENGTH = 500
# The most a response's status line and headers may take (interim answers included): they are
# kept whole in the attempt log, so a receiver must not be able to send them without end.
MAX_HEAD = 64 * 1024
# Characters a request target keeps as they are; anything else (spaces, non-ASCII) is escaped.
_TARGET_SAFE = "/:@!$&'()*+,;=?%~-._"


@dataclasses.dataclass(frozen=True, slots=True)
class _Target:
    """What a URL means for sending, worked out once per URL string."""

    # Connections are shared between URLs with the same key (scheme, host and port).
    key: str
    host: str
    port: int
    tls: bool
    # The request line and the Host header, encoded.
    head: bytes
    # Why no request may go there (a forbidden IP literal, a malformed URL); None when it may.
    refusal: str | None = None


def _target(url: str, policy: UrlPolicy) -> _Target:
    """Parse `url` into a `_Target`; a URL that cannot be sent gets a target with a refusal."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return _refused(f"invalid url: {exc}")
    if parts.scheme not in ("http", "https"):
        return _refused(f"invalid url: the scheme must be http or https, not {parts.scheme!r}")
    host = parts.hostname or ""
    if not host:
        return _refused("invalid url: it has no host")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        return _refused("invalid url: it contains spaces or control characters")
    reason = literal_refusal(url, policy)
    if reason:
        return _refused(f"refused: {reason}")
    if port == 0:
        return _refused("invalid url: port 0")
    tls = parts.scheme == "https"
    default = 443 if tls else 80
    port = port or default
    try:
        ascii_host = host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError:
        return _refused(f"invalid url: {host!r} is not a valid host name")
    authority = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
    if port != default:
        authority += f":{port}"
    path = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_TARGET_SAFE)
    head = f"POST {path} HTTP/1.1\r\nHost: {authority}\r\n".encode("ascii")
    return _Target(f"{parts.scheme}://{authority}:{port}", ascii_host, port, tls, head)


def _refused(reason: str) -> _Target:
    return _Target("", "", 0, False, b"", reason)


def _encode(target: _Target, headers: Mapping[str, str], body: bytes) -> bytes:
    """The whole request in one bytes object, so it leaves in one write."""
    lines = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    count = len(headers)
    # One line break per header, or a name or value carries its own (header injection).
    if lines.count("\n") != count or lines.count("\r") != count:
        bad = next(n for n, v in headers.items() if "\r" in n + v or "\n" in n + v)
        raise TransportError(f"refused: header {bad[:100]!r} contains a line break")
    return b"%bContent-Length: %d\r\n\r\n%b" % (target.head + lines.encode(), len(body), body)


class _StaleConnection(TransportError):
    """A kept-alive connection that the server had closed: the request may go again, once."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: sends a request, parses its response, tells whether it can be
    used again. One parser serves every response of the connection."""

    def __init__(self, pool: _Pool, key: str, max_body: int) -> None:
        self.key = key
        self.pool = pool
        self.max_body = max_body
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        # Whether this connection counts against the pool's limit (it is the pool's to close).
        self.holds_slot = False
        self.closed = False
        # Waiting in the pool, since `idle_since` (the loop's clock).
        self.idle = False
        self.idle_since = 0.0
        self.responses = 0
        # Set after a complete response that allows another request on this connection.
        self.reusable = False
        self._waiter: asyncio.Future[Response] | None = None
        self._received = False
        self._final = False
        # Two lower bounds of the current response's head size: the headers parsed, and the
        # bytes received while it was not complete (a header still being read is in neither).
        self._head_parsed = 0
        self._head_size = 0
        self._head_done = False
        self._status = 0
        self._headers: dict[str, str] = {}
        self._names: dict[bytes, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._truncated = False

    # The pool's side

    def request(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        waiter: asyncio.Future[Response] = self.pool.loop.create_future()
        self._waiter = waiter
        self._received = False
        self._final = False
        self._head_parsed = 0
        self._head_size = 0
        self._head_done = False
        self.reusable = False
        self.transport.write(data)
        return waiter

    def close(self) -> None:
        """Close politely (a complete response that forbids reuse, an idle connection)."""
        self._end(abort=False)

    def abort(self) -> None:
        """Drop at once: an error, a cancelled request, or a body we will not read."""
        self._end(abort=True)

    def _end(self, *, abort: bool) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                if abort:
                    self.transport.abort()
                else:
                    self.transport.close()
            self.pool.discard(self)

    def shut(self, reason: str) -> None:
        """Close on our own initiative; a request waiting for its response fails with `reason`."""
        self._fail(reason)
        self.close()

    # asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            # Bytes nobody asked for: this connection no longer speaks in step with us.
            self.abort()
            return
        self._received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # A 101 answer: what follows is not HTTP. The response (if complete) stands.
            self._fail("invalid HTTP response: the server switched protocols")
            self.abort()
        except httptools.HttpParserError as exc:
            self._fail(f"invalid HTTP response: {_parser_reason(exc)}")
            self.abort()
            return
        if not self._head_done and self._waiter is not None:
            # Counted after parsing, so a chunk that ends the head and holds the body is not.
            self._head_size += len(data)
            if self._head_size > MAX_HEAD:
                self._head_too_large()
                self.abort()

    def eof_received(self) -> bool | None:
        if self._waiter is not None and self._final and not self._framed():
            # A body without length or chunks ends when the server closes the connection.
            self._complete(reusable=False)
        else:
            self._lost(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(exc)
        if not self.closed:
            self.closed = True
            self.pool.discard(self)

    # llhttp's side (called from feed_data)

    def on_message_begin(self) -> None:
        if self._waiter is None:
            raise TransportError("a response nobody asked for")
        self._final = False
        self._status = 0
        self._headers = {}
        self._names = {}
        self._body = []
        self._size = 0
        self._truncated = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_parsed += len(name) + len(value) + 4
        if self._head_parsed > MAX_HEAD:
            self._head_too_large()
            raise TransportError("response headers too large")  # stops the parser
        text = value.decode("utf-8", "replace")
        lower = name.lower()
        key = self._names.get(lower)
        if key is None:
            key = name.decode("latin-1")
            self._names[lower] = key
            self._headers[key] = text
        else:
            self._headers[key] += ", " + text

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        self._status = status
        # 1xx answers (100 Continue, 103 Early Hints) come before the real one; 101 is final.
        self._final = not (100 <= status < 200) or status == 101
        self._head_done = self._final

    def on_body(self, body: bytes) -> None:
        if self._truncated:
            return
        room = self.max_body - self._size
        if len(body) > room:
            # Keep what fits and hang up rather than read the rest.
            if room > 0:
                self._body.append(body[:room])
            self._size = self.max_body
            self._truncated = True
            self._complete(reusable=False)
            self.abort()
            return
        self._body.append(body)
        self._size += len(body)

    def on_message_complete(self) -> None:
        if not self._final:
            return
        if self._truncated:
            return
        self._complete(reusable=self.parser.should_keep_alive())

    # Inner workings

    def _complete(self, *, reusable: bool) -> None:
        waiter = self._waiter
        self._waiter = None
        self.responses += 1
        self.reusable = reusable
        if waiter is not None and not waiter.done():
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            waiter.set_result(Response(self._status, self._headers, body, self._truncated))

    def _head_too_large(self) -> None:
        self._fail(f"invalid HTTP response: its headers exceed {MAX_HEAD // 1024} KiB")

    def _fail(self, message: str, *, peer_closed: bool = False) -> None:
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            if peer_closed and self.responses and not self._received:
                waiter.set_exception(_StaleConnection(message))
            else:
                waiter.set_exception(TransportError(message[:MAX_ERROR_LENGTH]))

    def _lost(self, exc: Exception | None) -> None:
        if self._waiter is None:
            return
        if isinstance(exc, ConnectionResetError):
            self._fail("connection reset by peer", peer_closed=True)
        elif isinstance(exc, ssl.SSLError):
            self._fail(f"TLS error: {_tls_reason(exc)}")
        elif exc is not None:
            self._fail(f"connection lost: {_os_reason(exc)}", peer_closed=True)
        elif self._received:
            self._fail("server closed the connection in the middle of the response")
        else:
            self._fail("server closed the connection without a response", peer_closed=True)

    def _framed(self) -> bool:
        """Whether the response says where its body ends (a length, or chunks)."""
        if b"content-length" in self._names:
            return True
        encoding = self._names.get(b"transfer-encoding")
        return encoding is not None and "chunked" in self._headers[encoding].lower()


class _Pool:
    """Kept-alive connections by destination, at most `limit` open in all.

    A send takes an idle connection to its destination, or a slot to open one; when every slot
    is taken it waits in line. A connection that comes back goes to the first in line (or, for
    another destination, closes and gives that one its slot), else waits idle.
    """

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        self.limit = max(1, limit)
        self.loop = loop
        self._used = 0
        self._idle: dict[str, list[_Connection]] = {}
        self._waiters: deque[tuple[str, asyncio.Future[_Connection | None]]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self.connections: set[_Connection] = set()
        self.closed = False

    async def acquire(self, key: str, *, fresh: bool = False) -> _Connection | None:
        """An idle connection to `key`, or None: the caller then holds a slot to open one."""
        if not fresh:
            idle = self._idle.get(key)
            while idle:
                conn = idle.pop()
                conn.idle = False
                transport = conn.transport
                if not conn.closed and transport is not None and not transport.is_closing():
                    return conn
                conn.abort()
        if self._used >= self.limit and not self._waiters:
            self._evict_oldest_idle()
        if self._used < self.limit and not self._waiters:
            self._used += 1
            return None
        waiter: asyncio.Future[_Connection | None] = self.loop.create_future()
        self._waiters.append((key, waiter))
        try:
            handed = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Handed a slot or a connection just as the wait ended: pass it on.
                handed = waiter.result()
                if handed is None:
                    self.free_slot()
                else:
                    self.release(handed)
            raise
        if handed is not None and fresh:
            # A retry wants a new connection: this one closes and its slot is ours.
            self._hand_over(handed)
            return None
        return handed

    def adopt(self, conn: _Connection) -> None:
        """A new connection takes over the slot its opener held."""
        conn.holds_slot = True
        self.connections.add(conn)

    def release(self, conn: _Connection) -> None:
        """Take back a connection whose response allows another request."""
        if conn.closed:
            return
        if self.closed:
            conn.close()
            return
        while self._waiters:
            key, waiter = self._waiters.popleft()
            if waiter.done():
                continue
            if key == conn.key:
                waiter.set_result(conn)
            else:
                # Another destination is waiting: its request needs this slot more.
                self._hand_over(conn)
                waiter.set_result(None)
            return
        conn.idle = True
        conn.idle_since = self.loop.time()
        self._idle.setdefault(conn.key, []).append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(IDLE_SECONDS, self._sweep)

    def discard(self, conn: _Connection) -> None:
        """Forget a closed connection and free its slot."""
        if not conn.holds_slot:
            return
        conn.holds_slot = False
        self.connections.discard(conn)
        if conn.idle:
            conn.idle = False
            self._idle[conn.key].remove(conn)
        self.free_slot()

    def free_slot(self) -> None:
        """A slot came free: the first in line gets it, or it goes back to the pool."""
        while self._waiters:
            _key, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._used -= 1

    def close(self) -> None:
        """Close every connection, in use or idle; a request still waiting fails."""
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self.connections):
            conn.shut("the webhook sender was closed")
        self._idle.clear()

    def _hand_over(self, conn: _Connection) -> None:
        """Close `conn` but keep its slot counted: the caller gives the slot to someone else."""
        conn.holds_slot = False
        self.connections.discard(conn)
        conn.abort()

    def _evict_oldest_idle(self) -> None:
        oldest: _Connection | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].idle_since < oldest.idle_since):
                oldest = idle[0]
        if oldest is not None:
            oldest.close()

    def _sweep(self) -> None:
        self._sweeper = None
        now = self.loop.time()
        expired = [
            conn
            for idle in self._idle.values()
            for conn in idle
            if now - conn.idle_since >= IDLE_SECONDS - 0.01
        ]
        for conn in expired:
            conn.close()
        remaining = [conn.idle_since for idle in self._idle.values() for conn in idle]
        if remaining:
            delay = max(0.1, min(remaining) + IDLE_SECONDS - now)
            self._sweeper = self.loop.call_later(delay, self._sweep)


class HttpTransport:
    """The engine's transport: see the module docstring for what it does and refuses."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        timeout: float = 10.0,
        ca_bundle: Path | None = None,
        max_body: int = 64 * 1024,
        connections: int = 64,
        lookup: Lookup = system_lookup,
    ) -> None:
        self._policy = policy
        self._lookup = lookup
        self._timeout = timeout
        self._ssl = tls_context(ca_bundle)
        self._max_body = max_body
        self._connections = connections
        # What each URL means, parsed and checked once: the policy is fixed for our life.
        self._targets: dict[str, _Target] = {}
        self._pool: _Pool | None = None

    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, *, time_limit: float | None = None
    ) -> Response:
        target = self._targets.get(url)
        if target is None:
            target = self._remember(url)
        if target.refusal is not None:
            raise TransportError(target.refusal)
        request = _encode(target, headers, body)
        limit = self._timeout if time_limit is None else time_limit
        loop = asyncio.get_running_loop()
        pool = self._pool
        if pool is None or pool.loop is not loop:
            pool = self._pool = _Pool(self._connections, loop)
        try:
            async with asyncio.timeout(limit):
                return await self._exchange(pool, target, request)
        except TimeoutError:
            raise TransportError(f"timed out after {limit:g} s") from None

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _remember(self, url: str) -> _Target:
        if len(self._targets) >= LITERAL_CACHE_SIZE:
            self._targets.clear()
        target = self._targets[url] = _target(url, self._policy)
        return target

    async def _exchange(self, pool: _Pool, target: _Target, request: bytes) -> Response:
        conn = await pool.acquire(target.key)
        if conn is not None:
            try:
                return await _roundtrip(pool, conn, request)
            except _StaleConnection:
                # The server closed it while it sat idle; this request never reached it.
                await pool.acquire(target.key, fresh=True)
        conn = await self._open(pool, target)
        return await _roundtrip(pool, conn, request)

    async def _open(self, pool: _Pool, target: _Target) -> _Connection:
        """A new connection to `target`; the caller's slot goes to it, or back on failure."""
        try:
            conn = await self._dial(pool, target)
        except BaseException:
            pool.free_slot()
            raise
        if conn.closed:
            pool.free_slot()
            raise TransportError("server closed the connection without a response")
        pool.adopt(conn)
        return conn

    async def _dial(self, pool: _Pool, target: _Target) -> _Connection:
        """Connect to the first address that answers, of those the safe resolver returned."""
        try:
            addresses = await resolve_safe(target.host, target.port, self._policy, self._lookup)
        except UnsafeDestination as exc:
            raise TransportError(exc.message[:MAX_ERROR_LENGTH]) from exc
        failure = "no address to connect to"
        for address in addresses:
            try:
                return await self._dial_one(pool, target, address)
            except ssl.SSLError as exc:
                # A certificate problem is not about reachability: another address won't help.
                raise TransportError(f"TLS error: {_tls_reason(exc)}") from exc
            except OSError as exc:
                failure = _connect_failure(exc, address, target.port)
        raise TransportError(failure)

    async def _dial_one(self, pool: _Pool, target: _Target, address: IPAddress) -> _Connection:
        conn = _Connection(pool, target.key, self._max_body)
        if target.tls:
            await pool.loop.create_connection(
                lambda: conn, str(address), target.port, ssl=self._ssl, server_hostname=target.host
            )
        else:
            await pool.loop.create_connection(lambda: conn, str(address), target.port)
        return conn


async def _roundtrip(pool: _Pool, conn: _Connection, request: bytes) -> Response:
    """One request on `conn`; the connection goes back to the pool only after a clean answer."""
    try:
        response = await conn.request(request)
    except BaseException:
        conn.abort()
        raise
    if conn.reusable:
        pool.release(conn)
    else:
        conn.close()
    return response


def _connect_failure(exc: OSError, address: IPAddress, port: int) -> str:
    where = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused: {where}"
    if isinstance(exc, ConnectionResetError):
        return f"connection reset by peer: {where}"
    return f"cannot connect to {where}: {_os_reason(exc)}"[:MAX_ERROR_LENGTH]


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _tls_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"[:MAX_ERROR_LENGTH]
    return (exc.reason or _os_reason(exc))[:MAX_ERROR_LENGTH]


def _parser_reason(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__)[:200]
