"""Which clients count as one for limits, bans and throttles: an IPv6 client by its network.

An IPv6 end site usually gets a /64, 2^64 addresses: a limit or a ban on one address would not
hold a client that can take another for each connection. So an IPv6 address is counted and
banned as its network (the SFTP front: of `sftp.ipv6_prefix` bits; the dashboard's login
throttle: a /64), an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, a dual-stack listener's IPv4
client) as its IPv4 address, and an IPv4 address as itself. Shared by the SFTP front and the
dashboard, so neither imports the other.
"""

from __future__ import annotations

import ipaddress

DEFAULT_IPV6_PREFIX = 64


def address_key(address: str, ipv6_prefix: int = DEFAULT_IPV6_PREFIX) -> str:
    """The key under which the client at `address` is counted and banned.

    `2001:db8:1:2:a:b:c:d` → `2001:db8:1:2::/64` (with `ipv6_prefix` 64; with 128, the address
    itself); `::ffff:192.0.2.1` → `192.0.2.1`; `192.0.2.1` → `192.0.2.1`. A zone (`fe80::1%eth0`)
    is left out of the key. Text that is not an address (`unknown`) is returned unchanged.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    mapped = ip.ipv4_mapped
    if mapped is not None:
        return str(mapped)
    if ipv6_prefix >= 128:
        # Without its zone, if any.
        return str(ipaddress.IPv6Address(int(ip)))
    host_bits = 128 - ipv6_prefix
    network = ipaddress.IPv6Address(int(ip) >> host_bits << host_bits)
    return f"{network}/{ipv6_prefix}"


def describe(key: str, address: str | None = None) -> str:
    """`key` for a log line or a message, with the client's own `address` when it is not the
    key: `address 203.0.113.7`, `address 2001:db8::7 (network 2001:db8::/64)`, or
    `network 2001:db8::/64` when the address is not known (a ban another node made)."""
    if address is not None and address != key:
        return f"address {address} (network {key})"
    return f"network {key}" if "/" in key else f"address {key}"
