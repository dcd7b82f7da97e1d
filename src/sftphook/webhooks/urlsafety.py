"""Where webhooks may be sent: URL rules checked at save time and again at connect time.

The connect-time check is `resolve_safe`, which the sender (`webhooks/http.py`) calls for every
new connection and whose addresses are the only ones it dials, so a name cannot resolve to a
public address when saved and to a private one when used (no DNS rebinding). An IP-literal host
is checked against the policy before the sender connects, in case the policy changed since the
URL was saved (once per URL for the transport's life: the policy is fixed for that long).

Everything here except `system_lookup` is pure: addresses are classified from tables, not from
the running Python's `ipaddress.is_global` (whose answers differ between Python versions), and
name resolution goes through a `Lookup` that tests replace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from sftphook.errors import InvalidInput, UnsafeDestination

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Resolves a host name to every address it has; raises OSError when it cannot.
Lookup = Callable[[str, int], Awaitable[list[IPAddress]]]

MAX_URL_LENGTH = 2048
MAX_HOST_LENGTH = 253


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

    def allows(self, address: IPAddress) -> bool:
        """Whether the operator listed a network that holds this address."""
        return any(address in net for net in self.allowed_networks)


def _table(*rows: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(net), name) for net, name in rows)


# IANA's special-purpose registries: none of these is a place a webhook may go.
_IPV4_SPECIAL = _table(
    ("0.0.0.0/8", 'an unspecified ("this network") address'),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (CGNAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an address for IETF protocol assignments"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a 6to4 relay anycast address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("255.255.255.255/32", "a broadcast address"),
    ("240.0.0.0/4", "a reserved address"),
)
_IPV6_SPECIAL = _table(
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    ("::/96", "an IPv4-compatible (deprecated) address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("2001::/32", "a Teredo address"),
    ("2001:db8::/32", "a documentation address"),
    ("2001::/23", "an address for IETF protocol assignments"),
    ("3fff::/20", "a documentation address"),
    ("5f00::/16", "an SRv6 segment identifier"),
    ("fc00::/7", "a unique-local address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local (deprecated) address"),
    ("ff00::/8", "a multicast address"),
)
_IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address that a NAT64 or 6to4 address leads to, with the form's name."""
    if address in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        sixtofour = address.sixtofour
        assert sixtofour is not None  # every address of 2002::/16 carries one
        return "6to4", sixtofour
    return None


def _describe(address: IPAddress, policy: UrlPolicy) -> str | None:
    """What kind of forbidden address this is ("a loopback address"), or None when allowed."""
    if policy.allows(address):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            # A socket connects to the IPv4 address itself: judge it as that address.
            inner = _describe(mapped, policy)
            return f"the IPv4-mapped form of {mapped}, {inner}" if inner else None
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            form, ipv4 = embedded
            inner = _describe(ipv4, policy)
            return f"a {form} address leading to {ipv4}, {inner}" if inner else None
        for network, name in _IPV6_SPECIAL:
            if address in network:
                return name
        if address not in _IPV6_GLOBAL_UNICAST:
            return "not a global unicast address"
        return None
    for network, name in _IPV4_SPECIAL:
        if address in network:
            return name
    return None


def forbidden_reason(address: IPAddress, policy: UrlPolicy) -> str | None:
    """Why an address may not be a destination, or None when it may."""
    description = _describe(address, policy)
    return f"{address} is {description}" if description else None


_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_HEX_NUMBER = re.compile(r"0x[0-9a-f]*")


def _ipv4_number(part: str) -> int | None:
    """One part of an IPv4 address as inet_aton and the URL standard read it: 0x… is hex,
    a leading 0 is octal."""
    if _HEX_NUMBER.fullmatch(part):
        return int(part[2:] or "0", 16)
    if not part.isascii() or not part.isdigit():
        return None
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8) if all(c in "01234567" for c in part) else None
    return int(part)


def parse_ipv4_spelling(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address behind any spelling that resolvers accept: `2130706433`, `0177.0.0.1`,
    `0x7f.1`, `127.1`, with or without a trailing dot. None when `host` is not one."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_ipv4_number(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        return None
    value = values[-1]
    for index, number in enumerate(values[:-1]):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def parse_host_literal(host: str) -> IPAddress | None:
    """An IP literal in any spelling a resolver would accept (`2130706433`, `0x7f.1`, `[::1]`)."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    return parse_ipv4_spelling(host.lower())


def _ends_in_number(host: str) -> bool:
    """The URL standard's rule: a host whose last label is a number must be an IPv4 address."""
    labels = host.rstrip(".").split(".")
    last = labels[-1] if labels else ""
    return bool(last) and ((last.isascii() and last.isdigit()) or bool(_HEX_NUMBER.fullmatch(last)))


def _is_loopback_name(host: str) -> bool:
    """`localhost` and `*.localhost` (RFC 6761), which resolvers may answer without DNS."""
    name = host.rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def check_host(host: str, policy: UrlPolicy) -> IPAddress | None:
    """The pure check of a URL host: its syntax and, when it is an address, the address.

    Returns the address when the host is an IP literal, None when it is a name to resolve.
    Raises InvalidInput for a host that is not well formed, UnsafeDestination for one that
    points where webhooks may not go.
    """
    if not host:
        raise InvalidInput("url has no host", field="url")
    if ":" in host:
        literal = parse_host_literal(host)
        if literal is None:
            raise InvalidInput(f"url host {host!r} is not a valid IPv6 address", field="url")
        reason = forbidden_reason(literal, policy)
        if reason:
            raise UnsafeDestination(f"url is refused: {reason}", field="url")
        return literal
    host = host.lower()
    if _ends_in_number(host):
        ipv4 = parse_ipv4_spelling(host)
        if ipv4 is None:
            raise InvalidInput(f"url host {host!r} is not a valid IPv4 address", field="url")
        description = _describe(ipv4, policy)
        if description:
            reason = (
                f"{ipv4} is {description}"
                if host == str(ipv4)
                else (f"{host} means {ipv4}, {description}")
            )
            raise UnsafeDestination(f"url is refused: {reason}", field="url")
        if host != str(ipv4):
            # Parsers disagree about these spellings (and aiohttp refuses them), so what was
            # checked might not be what is reached.
            raise UnsafeDestination(
                f"url is refused: {host} is an unusual spelling of {ipv4}; write {ipv4}",
                field="url",
            )
        return ipv4
    name = host[:-1] if host.endswith(".") else host
    try:
        ascii_name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError as exc:
        raise InvalidInput(f"url host {host!r} is not a valid host name", field="url") from exc
    if len(ascii_name) > MAX_HOST_LENGTH or not all(
        _LABEL.fullmatch(label) for label in ascii_name.split(".")
    ):
        raise InvalidInput(f"url host {host!r} is not a valid host name", field="url")
    if _is_loopback_name(ascii_name):
        reason = forbidden_reason(ipaddress.IPv4Address("127.0.0.1"), policy)
        if reason:
            raise UnsafeDestination(
                f"url is refused: {host} is a loopback name ({reason})", field="url"
            )
    return None


def check_url(url: str, policy: UrlPolicy) -> str:
    """Check a URL's form and, when its host is an IP literal, its address. Returns the URL."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"url is longer than {MAX_URL_LENGTH} characters", field="url")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        # urlsplit silently drops tabs and newlines; refuse them so what is saved is what is sent.
        raise InvalidInput("url must not contain spaces or control characters", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"url is not valid: {exc}", field="url") from exc
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise InvalidInput("url must be an absolute https:// URL", field="url")
    if parts.scheme == "http" and not policy.allow_http:
        raise InvalidInput(
            "url must use https:// (plain http is refused unless the operator allows it)",
            field="url",
        )
    if "@" in parts.netloc:
        raise InvalidInput(
            "url must not carry credentials; use the authorization header instead", field="url"
        )
    if port == 0:
        raise InvalidInput("url has an invalid port", field="url")
    check_host(parts.hostname or "", policy)
    return url


async def system_lookup(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for a name (IPv4 and IPv6)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


async def resolve_safe(
    host: str, port: int, policy: UrlPolicy, lookup: Lookup = system_lookup
) -> list[IPAddress]:
    """Resolve a host and refuse it if any answer is a forbidden address."""
    literal = check_host(host, policy)
    if literal is not None:
        return [literal]
    try:
        answers = await lookup(host, port)
    except OSError as exc:
        detail = exc.strerror or str(exc) or type(exc).__name__
        raise UnsafeDestination(f"cannot resolve {host}: {detail}", field="url") from exc
    addresses = list(dict.fromkeys(answers))
    if not addresses:
        raise UnsafeDestination(f"{host} resolves to no address", field="url")
    for address in addresses:
        reason = forbidden_reason(address, policy)
        if reason:
            raise UnsafeDestination(f"{host} is refused: {reason}", field="url")
    return addresses


async def check_destination(
    url: str, policy: UrlPolicy, *, lookup: Lookup = system_lookup
) -> list[IPAddress]:
    """Save-time check: the URL's form, then every address its host resolves to."""
    check_url(url, policy)
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return await resolve_safe(parts.hostname or "", port, policy, lookup)
