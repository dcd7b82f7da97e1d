"""Sending one webhook request: the transport seam, its response and error, and header masking.

The engine hands a transport a URL, headers and a body and gets back a `Response` or a
`TransportError`; tests can pass any object with the same `send` method. The transport the
engine builds is `webhooks.http.HttpTransport`; what every transport shares (the request headers,
the TLS context, the IP-literal check) lives here.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from sftphook import __version__
from sftphook.webhooks.urlsafety import UrlPolicy, forbidden_reason, parse_host_literal

USER_AGENT = f"sftphook/{__version__}"
MASK = "***"
# URLs whose IP-literal check is remembered (cleared when it grows past this).
LITERAL_CACHE_SIZE = 4096


@dataclasses.dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    # At most the transport's `max_body` bytes.
    body: bytes
    truncated: bool = False


class TransportError(Exception):
    """The request got no HTTP response: refused, reset, timed out, TLS failure, unsafe address."""


class Transport(Protocol):
    """`time_limit` (seconds) is given only for a webhook with a timeout of its own; otherwise
    the transport's applies."""

    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, *, time_limit: float | None = None
    ) -> Response: ...

    async def close(self) -> None: ...


def request_headers(signatures: Mapping[str, str], authorization: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **signatures}
    if authorization:
        headers["Authorization"] = authorization
    return headers


def masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers as stored in the attempt log: the authorization value and signatures hidden."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in ("authorization", "proxy-authorization", "cookie"):
            out[name] = MASK
        elif lower in ("x-hub-signature", "x-hub-signature-256"):
            out[name] = "sha256=" + MASK
        elif lower == "webhook-signature":
            out[name] = " ".join("v1," + MASK for _ in value.split())
        else:
            out[name] = value
    return out


def tls_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """Verified TLS: the system trust store, plus the operator's CA bundle when configured."""
    context = ssl.create_default_context()
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


def literal_refusal(url: str, policy: UrlPolicy) -> str | None:
    """Why `url`'s host, an IP literal, may not be a destination; None when it may or when the
    host is a name (names are checked when a connection is opened)."""
    literal = parse_host_literal(urlsplit(url).hostname or "")
    return forbidden_reason(literal, policy) if literal is not None else None
