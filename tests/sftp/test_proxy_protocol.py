"""Behind a TCP load balancer: the client's address comes from the PROXY header, and only a
trusted balancer may send one."""

from __future__ import annotations

import asyncio
import socket

import asyncssh
import pytest

from sftphook.config import Settings
from sftphook.sftp import proxyproto
from tests.sftp.conftest import PASSWORD, Server


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
