"""Sending one webhook request: the transport seam, the aiohttp transport, and header masking.

The engine hands a transport a URL, headers and a body and gets back a `Response` or a
`TransportError`; tests can pass any object with the same `send` method. The aiohttp transport
keeps one `ClientSession` (keep-alive), resolves through `SafeResolver` (the connect-time URL
check), verifies TLS against the system store plus an optional CA bundle, follows no redirect and
reads at most `max_body` bytes of a response before it hangs up.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp

from sftphook import __version__
from sftphook.errors import UnsafeDestination
from sftphook.webhooks.urlsafety import (
    Lookup,
    SafeResolver,
    UrlPolicy,
    forbidden_reason,
    parse_host_literal,
    system_lookup,
)

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


class AiohttpTransport:
    def __init__(
        self,
        policy: UrlPolicy,
        *,
        timeout: float = 10.0,
        ca_bundle: Path | None = None,
        max_body: int = 64 * 1024,
        connections: int = 64,
        lookup: Lookup = system_lookup,
    ) -> None:
        self._policy = policy
        self._lookup = lookup
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ssl = tls_context(ca_bundle)
        self._max_body = max_body
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        # The IP-literal verdict per URL (None: allowed or not a literal); the policy is fixed
        # for the transport's life, and the answer depends on nothing else.
        self._literal_checked: dict[str, str | None] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=SafeResolver(self._policy, self._lookup),
                ssl=self._ssl,
                limit=self._connections,
                ttl_dns_cache=None,
                use_dns_cache=False,
                keepalive_timeout=30,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    def _check_literal(self, url: str) -> None:
        # aiohttp does not ask the resolver about IP literals, so check them here.
        try:
            reason = self._literal_checked[url]
        except KeyError:
            reason = literal_refusal(url, self._policy)
            if len(self._literal_checked) >= LITERAL_CACHE_SIZE:
                self._literal_checked.clear()
            self._literal_checked[url] = reason
        if reason:
            raise TransportError(f"refused: {reason}")

    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, *, time_limit: float | None = None
    ) -> Response:
        self._check_literal(url)
        limit = self._timeout if time_limit is None else aiohttp.ClientTimeout(total=time_limit)
        try:
            async with self._client().post(
                url, data=body, headers=dict(headers), allow_redirects=False, timeout=limit
            ) as resp:
                chunks: list[bytes] = []
                size = 0
                truncated = False
                while size < self._max_body:
                    chunk = await resp.content.read(self._max_body - size)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                else:
                    truncated = not resp.content.at_eof()
                if truncated:
                    # Never drain a huge body: drop the connection instead of reusing it.
                    resp.close()
                return Response(
                    status=resp.status,
                    headers={k: v for k, v in resp.headers.items()},
                    body=b"".join(chunks),
                    truncated=truncated,
                )
        except TimeoutError as exc:
            raise TransportError(f"timed out after {limit.total:g} s") from exc
        except UnsafeDestination as exc:
            raise TransportError(exc.message) from exc
        except aiohttp.ClientSSLError as exc:
            raise TransportError(f"TLS error: {_describe(exc)}") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(_describe(exc)) from exc
        except OSError as exc:
            raise TransportError(_describe(exc)) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def literal_refusal(url: str, policy: UrlPolicy) -> str | None:
    """Why `url`'s host, an IP literal, may not be a destination; None when it may or when the
    host is a name (names are checked when a connection is opened)."""
    literal = parse_host_literal(urlsplit(url).hostname or "")
    return forbidden_reason(literal, policy) if literal is not None else None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]
