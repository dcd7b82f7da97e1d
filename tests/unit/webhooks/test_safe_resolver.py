"""The connect-time check: aiohttp requests through a connector whose resolver is SafeResolver."""

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sftphook.errors import UnsafeDestination
from sftphook.webhooks.urlsafety import SafeResolver, UrlPolicy, check_destination, check_url
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


async def _post(url: str, resolver: SafeResolver) -> int:
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(url, data=b"{}", allow_redirects=False) as response,
    ):
        return response.status


async def test_a_name_that_rebinds_after_the_check_is_refused_at_connect_time(receiver):
    lookup = HostsLookup({"rebind.test": [["8.8.8.8"], ["127.0.0.1"]]})
    url = f"http://rebind.test:{receiver.port}/hook"
    saved = await check_destination(url, PLAIN_HTTP, lookup=lookup)
    assert [str(a) for a in saved] == ["8.8.8.8"]

    with pytest.raises(UnsafeDestination, match=r"127\.0\.0\.1 is a loopback address"):
        await _post(url, SafeResolver(PLAIN_HTTP, lookup))
    assert lookup.calls == ["rebind.test", "rebind.test"]
    assert receiver.hits == 0


async def test_the_same_request_arrives_when_the_network_is_allowed(receiver):
    # The control for the test above: the resolver's answer is where aiohttp connects.
    lookup = HostsLookup({"rebind.test": [["8.8.8.8"], ["127.0.0.1"]]})
    url = f"http://rebind.test:{receiver.port}/hook"
    await check_destination(url, LOOPBACK_ALLOWED, lookup=lookup)
    assert await _post(url, SafeResolver(LOOPBACK_ALLOWED, lookup)) == 200
    assert receiver.hits == 1


async def test_a_real_name_for_loopback_is_refused_by_the_system_resolver(receiver):
    with pytest.raises(UnsafeDestination, match="loopback"):
        await _post(f"http://localhost:{receiver.port}/", SafeResolver(PLAIN_HTTP))
    assert receiver.hits == 0
    both = UrlPolicy.from_settings(True, ["127.0.0.0/8", "::1/128"])
    assert await _post(f"http://localhost:{receiver.port}/", SafeResolver(both)) == 200


async def test_unusual_ipv4_spellings_never_reach_a_socket(receiver):
    for host in ("0x7f.1", "0177.0.0.1", "2130706433", "127.1"):
        with pytest.raises((UnsafeDestination, aiohttp.InvalidUrlClientError)):
            await _post(f"http://{host}:{receiver.port}/", SafeResolver(LOOPBACK_ALLOWED))
    assert receiver.hits == 0


async def test_ip_literal_hosts_bypass_the_resolver_so_senders_run_check_url(receiver):
    # aiohttp connects to a dotted-quad or IPv6 literal without asking the resolver: the pure
    # check_url before each attempt is what refuses those.
    url = f"http://127.0.0.1:{receiver.port}/"
    assert await _post(url, SafeResolver(PLAIN_HTTP)) == 200
    with pytest.raises(UnsafeDestination):
        check_url(url, PLAIN_HTTP)


async def test_every_answer_is_checked_whatever_family_is_asked_for():
    lookup = HostsLookup({"dual.test": ["8.8.8.8", "fd00::1"]})
    with pytest.raises(UnsafeDestination, match="unique-local"):
        await SafeResolver(PLAIN_HTTP, lookup).resolve("dual.test", 443, socket.AF_INET)


async def test_the_resolver_answers_the_family_asked_for():
    lookup = HostsLookup({"dual.test": ["8.8.8.8", "2606:4700:4700::1111"]})
    resolver = SafeResolver(PLAIN_HTTP, lookup)
    v4 = await resolver.resolve("dual.test", 443, socket.AF_INET)
    assert [(r["host"], r["family"], r["port"]) for r in v4] == [("8.8.8.8", socket.AF_INET, 443)]
    v6 = await resolver.resolve("dual.test", 443, socket.AF_INET6)
    assert [r["host"] for r in v6] == ["2606:4700:4700::1111"]
    both = await resolver.resolve("dual.test", 443, socket.AF_UNSPEC)
    assert len(both) == 2
    only_v6 = SafeResolver(PLAIN_HTTP, HostsLookup({"v6.test": ["2606:4700:4700::1111"]}))
    with pytest.raises(UnsafeDestination, match="no address of the requested family"):
        await only_v6.resolve("v6.test", 443, socket.AF_INET)
