"""Where webhooks may be sent: URL rules checked at save time and again at connect time.

The connect-time check lives in `SafeResolver`, the resolver of the sender's aiohttp connector:
aiohttp connects to exactly the addresses it returns, so a name cannot resolve to a public
address when saved and to a private one when used (no DNS rebinding).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from sftphook.errors import InvalidInput, UnsafeDestination

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048


@dataclasses.dataclass(frozen=True)
class UrlPolicy:
    allow_http: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, allow_http: bool, allowed_networks: Iterable[str]) -> UrlPolicy:
        return cls(
            allow_http=allow_http,
            allowed_networks=tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks),
        )


def forbidden_reason(address: IPAddress, policy: UrlPolicy) -> str | None:
    """Why an address may not be a destination, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            inner = forbidden_reason(mapped, policy)
            if inner:
                return inner
    if any(address in net for net in policy.allowed_networks):
        return None
    checks = (
        ("loopback", address.is_loopback),
        ("private", address.is_private),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("unspecified", address.is_unspecified),
        ("shared (CGNAT)", address in ipaddress.ip_network("100.64.0.0/10")),
        ("not globally routable", not address.is_global),
    )
    for name, hit in checks:
        if hit:
            return f"{address} is a {name} address"
    return None


def parse_host_literal(host: str) -> IPAddress | None:
    """An IP literal in any spelling a resolver would accept (`2130706433`, `0x7f.1`, `[::1]`)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        # inet_aton accepts the decimal, octal and hexadecimal forms that browsers and libc do.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def check_url(url: str, policy: UrlPolicy) -> str:
    """Check a URL's form and, when its host is an IP literal, its address. Returns the URL."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"url is longer than {MAX_URL_LENGTH} characters", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"url is not valid: {exc}", field="url") from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput("url must be an absolute https:// URL", field="url")
    if parts.scheme == "http" and not policy.allow_http:
        raise InvalidInput(
            "url must use https:// (plain http is refused unless the operator allows it)",
            field="url",
        )
    if parts.username or parts.password:
        raise InvalidInput(
            "url must not carry credentials; use the authorization header instead", field="url"
        )
    if port == 0:
        raise InvalidInput("url has an invalid port", field="url")
    literal = parse_host_literal(parts.hostname)
    if literal is not None:
        reason = forbidden_reason(literal, policy)
        if reason:
            raise UnsafeDestination(f"url is refused: {reason}", field="url")
    return url


async def resolve_safe(host: str, port: int, policy: UrlPolicy) -> list[IPAddress]:
    """Resolve a host and refuse it if any answer is a forbidden address."""
    literal = parse_host_literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise UnsafeDestination(f"cannot resolve {host}: {exc.strerror}", field="url") from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        reason = forbidden_reason(address, policy)
        if reason:
            raise UnsafeDestination(f"{host} is refused: {reason}", field="url")
    return addresses


async def check_destination(url: str, policy: UrlPolicy) -> list[IPAddress]:
    """Save-time check: the URL's form, then every address its host resolves to."""
    check_url(url, policy)
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return await resolve_safe(parts.hostname or "", port, policy)


class SafeResolver(AbstractResolver):
    """aiohttp resolver that returns only checked addresses (the connect-time check)."""

    def __init__(self, policy: UrlPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve_safe(host, port, self._policy)
        results: list[ResolveResult] = []
        for address in addresses:
            fam = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            results.append(
                {
                    "hostname": host,
                    "host": str(address),
                    "port": port,
                    "family": fam,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        return results

    async def close(self) -> None:
        return None
