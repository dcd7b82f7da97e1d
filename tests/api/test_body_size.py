"""Request bodies of the API are bounded: a body larger than any valid request is refused with a
413 problem once the bound is passed, before a token is checked, without reading the rest. Bodies
used to be read whole first: one unauthenticated 200 MiB POST grew the server by 600 MB."""

from __future__ import annotations

import asyncio
import json

from sftphook.api.limits import MAX_BODY
from tests.api.conftest import Tenant, assert_problem


async def _raw(port: int, head: bytes, body_parts: list[bytes]) -> tuple[int, dict, bytes]:
    """Send a request by hand (the body may be cut short) and read the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for part in body_parts:
            writer.write(part)
            await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    header, _, body = raw.partition(b"\r\n\r\n")
    lines = header.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return status, headers, body


def _check_413(status: int, headers: dict, body: bytes) -> None:
    assert status == 413, body
    assert headers["content-type"].startswith("application/problem+json")
    problem = json.loads(body)
    assert problem["status"] == 413 and f"{MAX_BODY:,}" in problem["detail"], problem


async def test_a_body_declared_too_large_is_refused_before_it_is_read(http_app) -> None:
    head = (
        b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (200 * 1024 * 1024)
    )
    _check_413(*await _raw(http_app.http_port, head, []))


async def test_a_chunked_body_is_refused_once_it_passes_the_bound(http_app) -> None:
    head = (
        b"POST /api/v1/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    chunk = b"a" * 65536
    # One chunk past the bound, and no more: the server reads all that was sent, so its answer
    # is not lost to a reset of the connection.
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (MAX_BODY // len(chunk) + 1)
    _check_413(*await _raw(http_app.http_port, head, parts))


async def test_the_dashboards_forms_are_bounded_too(http_app) -> None:
    # The login form takes no token at all: the first thing anyone can post to.
    head = (
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (200 * 1024 * 1024)
    )
    _check_413(*await _raw(http_app.http_port, head, []))


async def test_the_largest_valid_bodies_are_not_refused_for_their_size(alpha: Tenant) -> None:
    """A user may have 100 keys of up to 16,384 characters: such a body reaches validation."""
    body = {"username": "many-keys", "public_keys": ["x" * 16384] * 100}
    resp = await alpha.client.post("/api/v1/users", json=body)
    problem = assert_problem(resp, 422)
    assert problem["errors"][0]["field"] == "public_keys"
