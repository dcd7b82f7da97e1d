"""Behind a TCP load balancer: the client's address comes from the PROXY header, and only a
trusted balancer may send one. Through it, clients from any address, IPv6 included: the
addresses of one IPv6 network share its connection limit and its ban."""

from __future__ import annotations

import asyncio
import socket

import asyncssh
import pytest
from sqlalchemy import select

from sftphook.config import Settings
from sftphook.sftp import proxyproto
from sftphook.store.audit import EVERY_ORGANIZATION
from sftphook.store.models import LoginFailure
from tests.sftp.conftest import PASSWORD, Server
from tests.sftp.test_transfers import wait_for


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.sftp.proxy_protocol = True
    settings.sftp.trusted_proxies = ["127.0.0.1/32"]
    settings.sftp.ban_threshold = 2
    return settings


def _socket(port: int, header: bytes, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
    if header:
        sock.sendall(header)
    sock.setblocking(False)
    return sock


async def _upload(server: Server, sock: socket.socket, name: str, password: str = PASSWORD):
    async with (
        asyncssh.connect(
            sock=sock,
            username="alice",
            password=password,
            known_hosts=None,
            client_keys=None,
            encryption_algs=["aes128-gcm@openssh.com"],
        ) as conn,
        conn.start_sftp_client() as sftp,
        sftp.open(name, "wb") as f,
    ):
        await f.write(b"via the balancer\n")


@pytest.mark.parametrize("make", [proxyproto.v1_header, proxyproto.v2_header])
async def test_the_client_address_comes_from_the_header(server: Server, make) -> None:
    header = make("203.0.113.9", 50123, "127.0.0.1", server.port)
    await _upload(server, _socket(server.port, header), "a.txt")
    (event,) = [e for e in await server.events() if e.path == "a.txt"]
    assert event.client_ip == "203.0.113.9"


async def test_ipv6_clients_and_headers_split_across_packets(server: Server) -> None:
    header = proxyproto.v1_header("2001:db8::7", 40000, "::1", server.port)
    sock = _socket(server.port, header[:9])
    await asyncio.sleep(0.05)
    sock.sendall(header[9:])
    await _upload(server, sock, "b.txt")
    (event,) = [e for e in await server.events() if e.path == "b.txt"]
    assert event.client_ip == "2001:db8::7"


async def test_bans_hit_the_client_not_the_balancer(server: Server) -> None:
    attacker = proxyproto.v2_header("198.51.100.66", 1, "127.0.0.1", server.port)
    for _ in range(2):
        with pytest.raises(asyncssh.PermissionDenied):
            await _upload(server, _socket(server.port, attacker), "x", password="wrong")
    with pytest.raises((asyncssh.Error, OSError)):
        await _upload(server, _socket(server.port, attacker), "x")
    # Another client through the same balancer still gets in.
    other = proxyproto.v1_header("203.0.113.10", 2, "127.0.0.1", server.port)
    await _upload(server, _socket(server.port, other), "c.txt")


def _from(server: Server, client: str) -> socket.socket:
    """A connection through the balancer from `client`."""
    balancer = "127.0.0.1" if ":" not in client else "::1"
    return _socket(server.port, proxyproto.v2_header(client, 1, balancer, server.port))


async def _login(sock: socket.socket) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        sock=sock,
        username="alice",
        password=PASSWORD,
        known_hosts=None,
        client_keys=None,
        encryption_algs=["aes128-gcm@openssh.com"],
    )


@pytest.mark.parametrize(
    ("clients", "counted"),
    [
        (["2001:db8:1:2::a", "2001:db8:1:2:ffff::b", "2001:db8:1:2:1234::c"], "2001:db8:1:2::/64"),
        (["198.51.100.7", "::ffff:198.51.100.7", "198.51.100.7"], "198.51.100.7"),
    ],
)
async def test_the_addresses_of_one_ipv6_network_share_the_per_address_limit(
    server: Server, clients: list[str], counted: str
) -> None:
    server.app.settings.sftp.max_connections_per_address = 2
    async with await _login(_from(server, clients[0])), await _login(_from(server, clients[1])):
        with pytest.raises(asyncssh.DisconnectError) as refused:
            await _login(_from(server, clients[2]))
        assert refused.value.code == asyncssh.DISC_TOO_MANY_CONNECTIONS
        assert f"too many connections from {counted} (the limit is 2)" in refused.value.reason
        # The next network has places of its own.
        async with await _login(_from(server, "2001:db8:1:3::a")):
            assert server.app.sftp.connection_count == 3
    await wait_for(lambda: server.app.sftp.connection_count == 0)


async def test_failures_from_addresses_of_one_ipv6_network_ban_the_network(
    server: Server,
) -> None:
    app = server.app
    for client in ("2001:db8:1:2::1", "2001:db8:1:2:ffff::2"):
        with pytest.raises(asyncssh.PermissionDenied):
            await _upload(server, _from(server, client), "x", password="wrong")
    # Another address of that /64, with the right password: refused before its key exchange.
    with pytest.raises((asyncssh.Error, OSError)):
        await _upload(server, _from(server, "2001:db8:1:2:abcd::3"), "x")
    assert app.sftp.refused["banned"] == 1
    await _upload(server, _from(server, "2001:db8:1:3::1"), "g.txt")

    # Stored, so that every node bans the network: under its key.
    async def stored() -> list[tuple[str, int | None]]:
        async with app.db.session() as s:
            rows = await s.execute(select(LoginFailure.address, LoginFailure.banned_until))
            return [(r.address, r.banned_until) for r in rows]

    async with asyncio.timeout(10):
        while not any(until for _, until in await stored()):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert [address for address, _ in await stored()] == ["2001:db8:1:2::/64"]
    # The audit line names the network banned and the address whose failure banned it.
    await app.security.flush()
    (line,) = (await app.audit.list(EVERY_ORGANIZATION, actions=["sftp.address_banned"]))[0]
    assert (line.target_type, line.target_id) == ("network", "2001:db8:1:2::/64")
    assert (line.actor_type, line.actor_id) == ("address", "2001:db8:1:2:ffff::2")
    assert line.details["network"] == "2001:db8:1:2::/64"
    assert line.details["address"] == "2001:db8:1:2:ffff::2"
    failed, _ = await app.audit.list(EVERY_ORGANIZATION, actions=["sftp.login_failed"])
    assert {line.actor_id for line in failed} == {"2001:db8:1:2::1", "2001:db8:1:2:ffff::2"}


async def test_with_a_prefix_of_128_each_ipv6_address_is_counted_alone(server: Server) -> None:
    server.app.settings.sftp.ipv6_prefix = 128
    for client in ("2001:db8:1:2::1", "2001:db8:1:2::2"):
        with pytest.raises(asyncssh.PermissionDenied):
            await _upload(server, _from(server, client), "x", password="wrong")
    await _upload(server, _from(server, "2001:db8:1:2::3"), "h.txt")
    with pytest.raises(asyncssh.PermissionDenied):
        await _upload(server, _from(server, "2001:db8:1:2::1"), "x", password="wrong")
    with pytest.raises((asyncssh.Error, OSError)):
        await _upload(server, _from(server, "2001:db8:1:2::1"), "x")


async def test_a_trusted_balancer_must_send_a_header(server: Server) -> None:
    with pytest.raises((asyncssh.Error, OSError)):
        await _upload(server, _socket(server.port, b""), "d.txt")


async def test_an_untrusted_peer_cannot_claim_an_address(server: Server) -> None:
    # 127.0.0.2 is not a trusted balancer: its header is not read, so the SSH handshake fails.
    header = proxyproto.v1_header("203.0.113.11", 3, "127.0.0.1", server.port)
    with pytest.raises((asyncssh.Error, OSError)):
        await _upload(server, _socket(server.port, header, source="127.0.0.2"), "e.txt")
    # Without a header it is a direct client, seen as itself.
    await _upload(server, _socket(server.port, b"", source="127.0.0.2"), "f.txt")
    (event,) = [e for e in await server.events() if e.path == "f.txt"]
    assert event.client_ip == "127.0.0.2"


def test_proxy_protocol_needs_trusted_proxies() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings.load(sftp={"proxy_protocol": True})
    with pytest.raises(ValueError, match="not a CIDR"):
        Settings.load(sftp={"proxy_protocol": True, "trusted_proxies": ["balancer"]})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nSSH-2.0-x", ("192.0.2.1", 36)),
        (b"PROXY UNKNOWN\r\n", (None, 15)),
        (b"PROXY TCP4 192.0.2.1", None),
        (b"PRO", None),
        (proxyproto.V2_SIGNATURE[:5], None),
        (proxyproto.V2_SIGNATURE + b"\x20\x00\x00\x00", (None, 16)),  # LOCAL (health check)
    ],
)
def test_parse(data: bytes, expected) -> None:
    assert proxyproto.parse(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"PROXY TCP4 not-an-ip 192.0.2.2 1 2\r\n",
        b"PROXY TCP4 2001:db8::1 192.0.2.2 1 2\r\n",
        b"PROXY TCP4 192.0.2.1 192.0.2.2 1 99999\r\n",
        b"PROXY " + b"x" * 200,
        proxyproto.V2_SIGNATURE + b"\x31\x11\x00\x0c" + bytes(12),  # version 3
        proxyproto.V2_SIGNATURE + b"\x21\x11\xff\xff",  # longer than any balancer sends
    ],
)
def test_parse_refuses_what_is_not_a_header(data: bytes) -> None:
    with pytest.raises(proxyproto.ProxyHeaderError):
        proxyproto.parse(data)


async def test_the_connection_limit_counts_the_client_address_not_the_balancer(
    server: Server,
) -> None:
    server.app.settings.sftp.max_connections_per_address = 1

    def via_balancer(client: str) -> socket.socket:
        return _socket(server.port, proxyproto.v1_header(client, 40000, "127.0.0.1", server.port))

    async with (
        await server.connect(sock=via_balancer("203.0.113.9")),
        await server.connect(sock=via_balancer("203.0.113.10")),
    ):
        with pytest.raises(asyncssh.DisconnectError, match="too many connections from 203.0.113.9"):
            await server.connect(sock=via_balancer("203.0.113.9"))
