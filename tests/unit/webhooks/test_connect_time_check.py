"""The connect-time check: the webhook transport connects only to addresses `resolve_safe` gave,
resolved again for every new connection."""

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sftphook.errors import UnsafeDestination
from sftphook.webhooks.http import HttpTransport
from sftphook.webhooks.sender import TransportError
from sftphook.webhooks.urlsafety import (
    Lookup,
    UrlPolicy,
    check_destination,
    check_url,
    resolve_safe,
    system_lookup,
)
from tests.unit.webhooks.fake_dns import HostsLookup

PLAIN_HTTP = UrlPolicy(allow_http=True)
LOOPBACK_ALLOWED = UrlPolicy.from_settings(True, ["127.0.0.0/8"])


class Receiver:
    """A real HTTP server on 127.0.0.1 that counts the requests that reach it."""

    def __init__(self) -> None:
        self.hits = 0
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    state.port = server.port or 0
    try:
        yield state
    finally:
        await server.close()


async def _post(url: str, policy: UrlPolicy, lookup: Lookup = system_lookup) -> int:
    transport = HttpTransport(policy, timeout=5, lookup=lookup)
    try:
        return (await transport.send(url, {}, b"{}")).status
    finally:
        await transport.close()


async def test_a_name_that_rebinds_after_the_check_is_refused_at_connect_time(receiver):
    lookup = HostsLookup({"rebind.test": [["8.8.8.8"], ["127.0.0.1"]]})
    url = f"http://rebind.test:{receiver.port}/hook"
    saved = await check_destination(url, PLAIN_HTTP, lookup=lookup)
    assert [str(a) for a in saved] == ["8.8.8.8"]

    with pytest.raises(TransportError, match=r"127\.0\.0\.1 is a loopback address"):
        await _post(url, PLAIN_HTTP, lookup)
    assert lookup.calls == ["rebind.test", "rebind.test"]
    assert receiver.hits == 0


async def test_the_same_request_arrives_when_the_network_is_allowed(receiver):
    # The control for the test above: the resolver's answer is where the transport connects.
    lookup = HostsLookup({"rebind.test": [["8.8.8.8"], ["127.0.0.1"]]})
    url = f"http://rebind.test:{receiver.port}/hook"
    await check_destination(url, LOOPBACK_ALLOWED, lookup=lookup)
    assert await _post(url, LOOPBACK_ALLOWED, lookup) == 200
    assert receiver.hits == 1


async def test_a_real_name_for_loopback_is_refused_by_the_system_resolver(receiver):
    with pytest.raises(TransportError, match="loopback"):
        await _post(f"http://localhost:{receiver.port}/", PLAIN_HTTP)
    assert receiver.hits == 0
    both = UrlPolicy.from_settings(True, ["127.0.0.0/8", "::1/128"])
    assert await _post(f"http://localhost:{receiver.port}/", both) == 200


async def test_unusual_ipv4_spellings_never_reach_a_socket(receiver):
    for host in ("0x7f.1", "0177.0.0.1", "2130706433", "127.1"):
        # Allowed as 127.0.0.1 would be, yet refused: what was checked might not be what a
        # resolver reaches.
        with pytest.raises(TransportError):
            await _post(f"http://{host}:{receiver.port}/", LOOPBACK_ALLOWED)
    assert receiver.hits == 0


async def test_ip_literal_hosts_are_checked_by_the_transport_itself(receiver):
    url = f"http://127.0.0.1:{receiver.port}/"
    with pytest.raises(TransportError, match="refused: 127.0.0.1 is a loopback address"):
        await _post(url, PLAIN_HTTP)
    with pytest.raises(UnsafeDestination):
        check_url(url, PLAIN_HTTP)
    assert receiver.hits == 0
    assert await _post(url, LOOPBACK_ALLOWED) == 200


async def test_every_answer_is_checked_one_bad_answer_refuses_the_name():
    lookup = HostsLookup({"dual.test": ["8.8.8.8", "fd00::1"]})
    with pytest.raises(UnsafeDestination, match="unique-local"):
        await resolve_safe("dual.test", 443, PLAIN_HTTP, lookup)
    both = HostsLookup({"dual.test": ["8.8.8.8", "2606:4700:4700::1111"]})
    addresses = await resolve_safe("dual.test", 443, PLAIN_HTTP, both)
    assert [str(a) for a in addresses] == ["8.8.8.8", "2606:4700:4700::1111"]
