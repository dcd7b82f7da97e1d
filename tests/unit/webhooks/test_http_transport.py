"""The HTTP/1.1 transport against real sockets on the loopback: framing, reuse, limits, safety."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer

from sftphook.webhooks import http
from sftphook.webhooks.http import HttpTransport
from sftphook.webhooks.sender import TransportError
from sftphook.webhooks.urlsafety import UrlPolicy
from tests.unit.webhooks.fake_dns import HostsLookup

LOOPBACK = UrlPolicy.from_settings(True, ["127.0.0.0/8", "::1/128"])
STRICT = UrlPolicy.from_settings(True, [])
HEADERS = {"Content-Type": "application/json", "User-Agent": "sftphook/test"}


def answer(status: str = "200 OK", body: bytes = b"", headers: str = "") -> bytes:
    """A response that gives its body's length (other framings are written out in full)."""
    return f"HTTP/1.1 {status}\r\n{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body


@dataclasses.dataclass
class Request:
    head: bytes
    body: bytes
    # Its place on its connection, from 0.
    number: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


# Given each request; returns the bytes to answer with, or None to hang up without answering.
Answer = Callable[[Request], Awaitable[bytes | None]]


class RawServer:
    """A loopback server that reads whole requests and answers as the test says, counting
    connections (in all, and open at once) and keeping every request's raw bytes."""

    def __init__(self, reply: Answer) -> None:
        self.reply = reply
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.requests: list[Request] = []
        self.port = 0
        self.hung_up = asyncio.Event()
        self.received = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self, host: str, tls: ssl.SSLContext | None) -> None:
        self._server = await asyncio.start_server(self._serve, host, 0, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            for number in range(1000):
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                request = Request(head, body, number, reader, writer)
                self.requests.append(request)
                self.received.set()
                try:
                    reply = await self.reply(request)
                    if reply is None:
                        return
                    writer.write(reply)
                    await writer.drain()
                except ConnectionError:
                    return
                if b"connection: close" in reply.split(b"\r\n\r\n")[0].lower():
                    return
        finally:
            self.open -= 1
            self.hung_up.set()
            writer.close()
            self._tasks.discard(task)


async def ok(request: Request) -> bytes:
    return answer(body=b"ok")


async def never(request: Request) -> None:
    """Never answer: wait for the client to hang up."""
    await request.reader.read()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[RawServer]]]:
    servers: list[RawServer] = []

    async def start(
        reply: Answer = ok, *, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ) -> RawServer:
        server = RawServer(reply)
        await server.start(host, tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def transport() -> AsyncIterator[Callable[..., HttpTransport]]:
    made: list[HttpTransport] = []

    def make(policy: UrlPolicy = LOOPBACK, **options: Any) -> HttpTransport:
        options.setdefault("timeout", 2)
        made.append(HttpTransport(policy, **options))
        return made[-1]

    yield make
    for each in made:
        await each.close()


def url(server: RawServer, path: str = "/hook") -> str:
    return f"http://127.0.0.1:{server.port}{path}"


# Response framing


async def exchange(serve, transport, raw: bytes, *, times: int = 1, **options):
    """`times` sends through one transport (`options`) to a server answering each with `raw`:
    the responses and the server."""

    async def reply(request: Request) -> bytes:
        return raw

    server = await serve(reply)
    sender = transport(**options)
    responses = [await sender.send(url(server), HEADERS, b"{}") for _ in range(times)]
    return responses, server


async def test_a_body_with_a_content_length_is_read_whole(serve, transport):
    raw = answer("201 Created", b'{"id": 7}', "Content-Type: application/json\r\n")
    (response,), _server = await exchange(serve, transport, raw)
    assert response.status == 201
    assert response.body == b'{"id": 7}'
    assert response.headers == {"Content-Type": "application/json", "Content-Length": "9"}
    assert not response.truncated


async def test_a_chunked_body_is_joined_and_the_connection_kept(serve, transport):
    chunks = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    responses, server = await exchange(serve, transport, raw, times=2)
    for response in responses:
        assert (response.status, response.body) == (200, b"hello world")
    assert server.connections == 1


async def test_a_body_without_length_ends_when_the_server_closes(serve, transport):
    raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"
    responses, server = await exchange(serve, transport, raw, times=2)
    for response in responses:
        assert (response.status, response.body) == (200, b"until the end")
    # The end of the body was the end of the connection: each send needed its own.
    assert server.connections == 2


async def test_a_body_over_the_limit_is_cut_and_its_connection_dropped(serve, transport):
    responses, server = await exchange(
        serve, transport, answer(body=b"x" * 5000), times=2, max_body=1000
    )
    assert responses[0].body == b"x" * 1000 and responses[0].truncated
    assert server.connections == 2


async def test_an_endless_body_is_not_drained(serve, transport):
    async def reply(request: Request) -> bytes | None:
        request.writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n")
        while True:  # until the client hangs up
            request.writer.write(b"y" * 65536)
            await request.writer.drain()

    server = await serve(reply)
    started = time.monotonic()
    response = await transport(max_body=100).send(url(server), HEADERS, b"{}")
    assert response.truncated and response.body == b"y" * 100
    assert time.monotonic() - started < 1
    await asyncio.wait_for(server.hung_up.wait(), 1)


async def test_an_interim_answer_is_skipped(serve, transport):
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    (first, second), server = await exchange(
        serve, transport, interim + answer(body=b"final"), times=2
    )
    assert (first.status, first.body) == (200, b"final")
    assert "Link" not in first.headers
    assert second.body == b"final"
    assert server.connections == 1


async def test_a_204_has_no_body_and_keeps_the_connection(serve, transport):
    raw = b"HTTP/1.1 204 No Content\r\n\r\n"
    responses, server = await exchange(serve, transport, raw, times=3)
    for response in responses:
        assert (response.status, response.body) == (204, b"")
    assert server.connections == 1


async def test_a_redirect_is_returned_not_followed(serve, transport):
    raw = answer("302 Found", headers="Location: http://127.0.0.1:9/elsewhere\r\n")
    (response,), server = await exchange(serve, transport, raw)
    assert response.status == 302
    assert response.headers["Location"] == "http://127.0.0.1:9/elsewhere"
    assert len(server.requests) == 1


async def test_repeated_response_headers_are_joined(serve, transport):
    raw = answer(headers="Vary: Accept\r\nX-Seen: a\r\nvary: Origin\r\nX-Seen: b\r\n")
    (response,), _server = await exchange(serve, transport, raw)
    assert response.headers["Vary"] == "Accept, Origin"
    assert response.headers["X-Seen"] == "a, b"


@pytest.mark.parametrize("line", [b"X-Pad: %b\r\n" % (b"a" * 16000), b"a" * 16000])
async def test_endless_response_headers_are_not_read(serve, transport, line):
    """Ever more header lines, or one header value without end."""

    async def reply(request: Request) -> bytes | None:
        request.writer.write(b"HTTP/1.1 200 OK\r\nX-Pad: ")
        while True:  # until the client hangs up
            request.writer.write(line)
            await request.writer.drain()

    server = await serve(reply)
    started = time.monotonic()
    with pytest.raises(TransportError, match="^invalid HTTP response: .*headers exceed 64 KiB"):
        await transport(timeout=10).send(url(server), HEADERS, b"{}")
    assert time.monotonic() - started < 1
    await asyncio.wait_for(server.hung_up.wait(), 1)


async def test_response_headers_are_kept_up_to_64_kib(serve, transport):
    pad = "".join(f"X-Pad-{n}: {'a' * 990}\r\n" for n in range(60))
    (response,), _server = await exchange(serve, transport, answer(headers=pad))
    assert response.status == 200 and len(response.headers) == 61
    with pytest.raises(TransportError, match="headers exceed 64 KiB"):
        await exchange(serve, transport, answer(headers=pad * 2))


async def test_garbage_is_an_invalid_response(serve, transport):
    async def reply(request: Request) -> bytes:
        return b"SSH-2.0-OpenSSH_9.6\r\n\r\n"

    server = await serve(reply)
    with pytest.raises(TransportError, match="^invalid HTTP response: "):
        await transport().send(url(server), HEADERS, b"{}")


# The request


async def test_the_request_head_is_exactly_what_was_asked(serve, transport):
    server = await serve()
    headers = {**HEADERS, "webhook-id": "msg_1", "Authorization": "Bearer t"}
    await transport().send(url(server, "/in/hook?a=1&b=%20"), headers, b'{"k": 1}')
    (request,) = server.requests
    assert request.head == (
        b"POST /in/hook?a=1&b=%20 HTTP/1.1\r\n"
        + f"Host: 127.0.0.1:{server.port}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        b"User-Agent: sftphook/test\r\n"
        b"webhook-id: msg_1\r\n"
        b"Authorization: Bearer t\r\n"
        b"Content-Length: 8\r\n\r\n"
    )
    assert request.body == b'{"k": 1}'


async def test_a_request_without_headers_still_has_host_and_length(serve, transport):
    server = await serve()
    await transport().send(f"http://localhost:{server.port}", {}, b"")
    assert server.requests[0].head == (
        f"POST / HTTP/1.1\r\nHost: localhost:{server.port}\r\nContent-Length: 0\r\n\r\n".encode()
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer secret\r\nX-Injected: 1"},
        {"Authorization": "Bearer secret\nX-Injected: 1"},
        {"X-Evil\r\nX-Injected": "secret"},
    ],
)
async def test_a_line_break_in_a_header_is_refused_and_not_repeated(serve, transport, headers):
    server = await serve()
    with pytest.raises(TransportError, match="line break") as refused:
        await transport().send(url(server), headers, b"{}")
    assert "secret" not in str(refused.value)
    assert server.connections == 0


# Keep-alive and the pool


async def test_sequential_sends_share_one_connection(transport):
    # A real server this time: aiohttp's, with its own keep-alive rules.
    peers: set[int] = set()

    async def handle(request: web.Request) -> web.Response:
        peers.add(id(request.transport))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        sender = transport()
        for _ in range(10):
            assert (await sender.send(f"{server.make_url('/hook')}", HEADERS, b"{}")).status == 200
    finally:
        await server.close()
    assert len(peers) == 1


async def test_a_connection_the_server_closed_while_idle_is_not_used(serve, transport):
    async def reply(request: Request) -> bytes:
        # Answer, then drop the connection soon after, while it sits idle in the pool.
        asyncio.get_running_loop().call_later(0.05, request.writer.close)
        return answer(body=b"ok")

    server = await serve(reply)
    sender = transport()
    await sender.send(url(server), HEADERS, b"{}")
    await asyncio.sleep(0.2)
    assert (await sender.send(url(server), HEADERS, b"{}")).status == 200
    assert len(server.requests) == 2 and server.connections == 2


@pytest.mark.parametrize("first", [answer(body=b"ok"), b"HTTP/1.1 204 No Content\r\n\r\n"])
async def test_a_kept_alive_connection_found_dead_is_retried_once_on_a_new_one(
    serve, transport, first
):
    async def reply(request: Request) -> bytes | None:
        # The second request on a connection meets a server that has just given up on it.
        return first if request.number == 0 else None

    server = await serve(reply)
    sender = transport()
    status = (await sender.send(url(server), HEADERS, b"{}")).status
    assert (await sender.send(url(server), HEADERS, b"{}")).status == status
    assert server.connections == 2
    assert [r.number for r in server.requests] == [0, 1, 0]


def _reset(writer: asyncio.StreamWriter) -> None:
    """Make the coming close a TCP reset."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.parametrize("sent", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart"])
async def test_a_reset_on_a_new_connection_is_an_error_and_not_retried(serve, transport, sent):
    async def reply(request: Request) -> None:
        request.writer.write(sent)
        await request.writer.drain()
        await asyncio.sleep(0.05)
        _reset(request.writer)
        return None

    server = await serve(reply)
    with pytest.raises(TransportError) as failed:
        await transport().send(url(server), HEADERS, b"{}")
    assert str(failed.value) in (
        "connection reset by peer",
        "server closed the connection in the middle of the response",
        "server closed the connection without a response",
    )
    assert server.connections == 1 and len(server.requests) == 1


async def test_no_more_connections_than_the_limit(serve, transport):
    async def reply(request: Request) -> bytes:
        await asyncio.sleep(0.05)
        return answer(body=b"ok")

    server = await serve(reply)
    sender = transport(connections=2)
    responses = await asyncio.gather(*(sender.send(url(server), HEADERS, b"{}") for _ in range(5)))
    assert [r.status for r in responses] == [200] * 5
    assert server.most_open <= 2
    assert len(server.requests) == 5


async def test_a_full_pool_gives_an_idle_connection_up_for_another_destination(serve, transport):
    first, second = await serve(), await serve()
    sender = transport(connections=1)
    await sender.send(url(first), HEADERS, b"{}")
    await sender.send(url(second), HEADERS, b"{}")
    await asyncio.wait_for(first.hung_up.wait(), 1)
    assert first.open == 0 and second.open == 1


async def test_an_idle_connection_is_closed_after_a_while(serve, transport, monkeypatch):
    monkeypatch.setattr(http, "IDLE_SECONDS", 0.1)
    server = await serve()
    await transport().send(url(server), HEADERS, b"{}")
    await asyncio.wait_for(server.hung_up.wait(), 1)
    assert server.open == 0


async def test_a_cancelled_send_gives_its_connection_and_slot_back(serve, transport):
    async def reply(request: Request) -> bytes | None:
        if len(server.requests) == 1:
            return await never(request)  # the first request never gets an answer
        return answer(body=b"ok")

    server = await serve(reply)
    sender = transport(connections=1)
    stuck = asyncio.create_task(sender.send(url(server), HEADERS, b"{}"))
    await asyncio.wait_for(server.received.wait(), 1)
    stuck.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck
    response = await asyncio.wait_for(sender.send(url(server), HEADERS, b"{}"), 1)
    assert response.status == 200
    assert server.connections == 2


async def test_a_send_waiting_for_a_slot_can_be_cancelled(serve, transport):
    async def reply(request: Request) -> bytes:
        await asyncio.sleep(0.1)
        return answer(body=b"ok")

    server = await serve(reply)
    sender = transport(connections=1)
    busy = asyncio.create_task(sender.send(url(server), HEADERS, b"{}"))
    waiting = asyncio.create_task(sender.send(url(server), HEADERS, b"{}"))
    await asyncio.sleep(0.02)
    waiting.cancel()
    assert (await busy).status == 200
    assert (await asyncio.wait_for(sender.send(url(server), HEADERS, b"{}"), 1)).status == 200
    assert server.connections == 1


# Time limits


@pytest.mark.parametrize("given", [{"time_limit": 0.3}, {}])
async def test_a_server_that_never_answers_times_out(serve, transport, given):
    server = await serve(never)
    sender = transport(timeout=0.3 if not given else 5)
    started = time.monotonic()
    with pytest.raises(TransportError) as failed:
        await sender.send(url(server), HEADERS, b"{}", **given)
    assert str(failed.value) == "timed out after 0.3 s"
    assert time.monotonic() - started < 1
    # The connection was closed, not kept for the next request.
    await asyncio.wait_for(server.hung_up.wait(), 1)


# Destinations: names, addresses, TLS


async def test_a_name_resolved_to_an_allowed_address_is_reached(serve, transport):
    server = await serve()
    lookup = HostsLookup({"hooks.test": ["127.0.0.1"]})
    sender = transport(lookup=lookup)
    for _ in range(3):
        response = await sender.send(f"http://hooks.test:{server.port}/hook", HEADERS, b"{}")
        assert response.status == 200
    assert server.requests[0].head.split(b"\r\n")[1] == f"Host: hooks.test:{server.port}".encode()
    # Resolved when the connection opened, not per request.
    assert lookup.calls == ["hooks.test"]


async def test_a_name_resolved_to_a_forbidden_address_gets_no_connection(serve, transport):
    server = await serve()
    sender = transport(STRICT, lookup=HostsLookup({"hooks.test": ["127.0.0.1"]}))
    with pytest.raises(TransportError, match=r"127\.0\.0\.1 is a loopback address"):
        await sender.send(f"http://hooks.test:{server.port}/hook", HEADERS, b"{}")
    assert server.connections == 0


async def test_the_addresses_are_tried_in_order(serve, transport):
    server = await serve()
    # Nothing listens on 127.0.0.2 at that port: refused, then the next address answers.
    lookup = HostsLookup({"hooks.test": ["127.0.0.2", "127.0.0.1"]})
    response = await transport(lookup=lookup).send(
        f"http://hooks.test:{server.port}/hook", HEADERS, b"{}"
    )
    assert response.status == 200


async def test_a_refused_connection_says_where(transport):
    with pytest.raises(TransportError, match=r"^connection refused: 127\.0\.0\.1:9$"):
        await transport().send("http://127.0.0.1:9/hook", HEADERS, b"{}")


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
async def test_an_ipv6_literal_is_reached_with_a_bracketed_host(serve, transport):
    server = await serve(host="::1")
    response = await transport().send(f"http://[::1]:{server.port}/hook", HEADERS, b"{}")
    assert response.status == 200
    assert server.requests[0].head.split(b"\r\n")[1] == f"Host: [::1]:{server.port}".encode()


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def bundle(authority: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def tls_server(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "hooks.test").configure_cert(context)
    return context


async def test_tls_is_verified_against_the_ca_bundle(
    serve, transport, authority, tls_server, tmp_path
):
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    server = await serve(tls=tls_server)
    lookup = HostsLookup({"hooks.test": ["127.0.0.1"]})
    sender = transport(ca_bundle=bundle, lookup=lookup)
    for target in (f"https://127.0.0.1:{server.port}/hook", f"https://hooks.test:{server.port}/"):
        assert (await sender.send(target, HEADERS, b"{}")).status == 200
    assert server.connections == 2


async def test_tls_without_the_ca_bundle_fails(serve, transport, tls_server):
    server = await serve(tls=tls_server)
    with pytest.raises(TransportError, match="^TLS error: certificate verify failed"):
        await transport().send(f"https://127.0.0.1:{server.port}/hook", HEADERS, b"{}")


async def test_tls_for_the_wrong_name_fails(serve, transport, bundle, tls_server):
    server = await serve(tls=tls_server)
    sender = transport(ca_bundle=bundle, lookup=HostsLookup({"other.test": ["127.0.0.1"]}))
    with pytest.raises(TransportError, match="^TLS error: "):
        await sender.send(f"https://other.test:{server.port}/hook", HEADERS, b"{}")


async def test_a_closed_transport_closes_its_connections(serve, transport):
    server = await serve()
    sender = transport()
    await sender.send(url(server), HEADERS, b"{}")
    await sender.close()
    await asyncio.wait_for(server.hung_up.wait(), 1)
    # And it can still send afterwards, on a new connection.
    assert (await sender.send(url(server), HEADERS, b"{}")).status == 200
    assert server.connections == 2


def test_ca_bundle_that_cannot_be_read_fails_at_construction(tmp_path: Path):
    with pytest.raises(OSError):
        HttpTransport(LOOPBACK, ca_bundle=tmp_path / "missing.pem")
