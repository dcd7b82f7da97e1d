"""The PROXY protocol header (versions 1 and 2) a TCP load balancer puts before the SSH stream.

Behind HAProxy or nginx in TCP mode every connection comes from the balancer's address: without
the header, events would name the balancer as the client, and the brute-force protection would
ban it, and with it every user. `parse` reads the client's address from the header; the SFTP
front accepts it only from `sftp.trusted_proxies`.
"""

from __future__ import annotations

import ipaddress
import struct

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX = 107  # the longest v1 line, CRLF included
# v2: 16 bytes of header and up to 216 of addresses (UNIX), plus TLVs a balancer may add.
MAX_HEADER = 16 + 4096


class ProxyHeaderError(ValueError):
    """The connection did not start with a valid PROXY header."""


def parse(data: bytes) -> tuple[str | None, int] | None:
    """(client address, or None when the balancer speaks for itself; header length), or None
    while `data` is too short to tell."""
    if data.startswith(V2_SIGNATURE[: len(data)]) and len(data) < len(V2_SIGNATURE):
        return None
    if data.startswith(V2_SIGNATURE):
        return _parse_v2(data)
    if V1_PREFIX.startswith(data[:6]) and len(data) < len(V1_PREFIX):
        return None
    if data.startswith(V1_PREFIX):
        return _parse_v1(data)
    raise ProxyHeaderError("no PROXY header")


def _parse_v1(data: bytes) -> tuple[str | None, int] | None:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise ProxyHeaderError("PROXY v1 line too long")
        return None
    fields = data[:end].decode("ascii", "replace").split(" ")
    if len(fields) >= 2 and fields[1] == "UNKNOWN":
        return None, end + 2
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError("malformed PROXY v1 line")
    source = fields[2]
    try:
        address = ipaddress.ip_address(source)
        for port in fields[4:6]:
            if not port.isdigit() or not 0 <= int(port) <= 65535:
                raise ValueError(port)
    except ValueError:
        raise ProxyHeaderError("malformed PROXY v1 addresses") from None
    if address.version != (4 if fields[1] == "TCP4" else 6):
        raise ProxyHeaderError("PROXY v1 address of the wrong family")
    return str(address), end + 2


def _parse_v2(data: bytes) -> tuple[str | None, int] | None:
    if len(data) < 16:
        return None
    version_command, family, length = struct.unpack("!BBH", data[12:16])
    if version_command >> 4 != 2:
        raise ProxyHeaderError("unknown PROXY header version")
    total = 16 + length
    if total > MAX_HEADER:
        raise ProxyHeaderError("PROXY v2 header too long")
    if len(data) < total:
        return None
    command = version_command & 0x0F
    if command == 0:  # LOCAL: the balancer's own connection (a health check)
        return None, total
    if command != 1:
        raise ProxyHeaderError("unknown PROXY v2 command")
    body = data[16:total]
    if family >> 4 == 1 and length >= 12:  # AF_INET
        return str(ipaddress.IPv4Address(body[:4])), total
    if family >> 4 == 2 and length >= 36:  # AF_INET6
        return str(ipaddress.IPv6Address(body[:16])), total
    if family >> 4 in (0, 3):  # unspecified, or a UNIX socket: no client address
        return None, total
    raise ProxyHeaderError("malformed PROXY v2 addresses")


def v1_header(client: str, client_port: int, server: str, server_port: int) -> bytes:
    """A v1 header as a balancer sends it (for tests and tools)."""
    family = "TCP4" if ipaddress.ip_address(client).version == 4 else "TCP6"
    return f"PROXY {family} {client} {server} {client_port} {server_port}\r\n".encode()


def v2_header(client: str, client_port: int, server: str, server_port: int) -> bytes:
    """A v2 PROXY header for a TCP connection (for tests and tools)."""
    source, target = ipaddress.ip_address(client), ipaddress.ip_address(server)
    if source.version == 4:
        family, body = 0x11, source.packed + target.packed
    else:
        family, body = 0x21, source.packed + target.packed
    body += struct.pack("!HH", client_port, server_port)
    return V2_SIGNATURE + struct.pack("!BBH", 0x21, family, len(body)) + body
