"""Verify sftphook's webhook requests in a Python receiver: `verify(secret, body, headers)`.

    from sftphook.receiver import InvalidSignature, verify

    try:
        payload = verify(os.environ["WEBHOOK_SECRET"], raw_body, request.headers)
    except InvalidSignature as exc:
        return 401, str(exc)

Two signature schemes arrive on every request (DESIGN.md §4); either one is enough:

- Standard Webhooks: `webhook-signature` (`v1,<base64>` entries, space-separated) over
  `<webhook-id>.<webhook-timestamp>.<body>`, keyed with the base64-decoded part of `whsec_…`.
  Its timestamp must be within `tolerance` seconds of now, which stops replays.
- `X-Hub-Signature-256` / `X-Hub-Signature`: `sha256=<hex HMAC-SHA256 of the body>`, keyed with
  the whole secret string (SFTP To Go's and GitHub's format). It carries no timestamp.

A stale or future `webhook-timestamp` refuses the request even when the other scheme matches.
Pass `schemes=("standard",)` to accept only the scheme with replay protection.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any, Literal, Protocol

__all__ = [
    "DEFAULT_TOLERANCE",
    "InvalidSignature",
    "check_signature",
    "verify",
]

DEFAULT_TOLERANCE = 300
_SECRET_PREFIX = "whsec_"
_HUB_HEADERS = ("X-Hub-Signature-256", "X-Hub-Signature")

Scheme = Literal["standard", "hub"]


class InvalidSignature(ValueError):
    """The request is not signed by any of the secrets. The message says what failed; it never
    carries a secret or the signature that was expected."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("; ".join(self.reasons))


class _HasItems(Protocol):
    def items(self) -> Iterable[tuple[Any, Any]]: ...


# A dict, aiohttp's or Starlette's headers, Flask's (werkzeug) headers, or ASGI's raw pairs.
HeadersLike = _HasItems | Iterable[tuple[str | bytes, str | bytes]]


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _header(headers: HeadersLike, name: str) -> str | None:
    """The first value of a header, found without regard to case."""
    pairs = headers.items() if hasattr(headers, "items") else headers
    wanted = name.lower()
    for key, value in pairs:
        if _text(key).lower() == wanted:
            return _text(value).strip()
    return None


def _as_bytes(body: bytes | bytearray | memoryview | str) -> bytes:
    return body.encode() if isinstance(body, str) else bytes(body)


def _secret_list(secret: str | Iterable[str]) -> list[str]:
    # None is what os.environ.get gives for an unset variable: say so rather than TypeError.
    secrets = [secret] if isinstance(secret, str) or secret is None else list(secret)
    if not secrets or any(not isinstance(s, str) or not s for s in secrets):
        raise ValueError("verify needs at least one signing secret (a non-empty string)")
    return secrets


def _standard_key(secret: str) -> bytes | None:
    encoded = secret[len(_SECRET_PREFIX) :] if secret.startswith(_SECRET_PREFIX) else secret
    encoded = encoded.rstrip("=")
    # Standard Webhooks libraries also accept the base64 without its padding.
    encoded += "=" * (-len(encoded) % 4)
    try:
        return base64.b64decode(encoded, validate=True) or None
    except (binascii.Error, ValueError):
        return None


def _check_standard(
    secrets: list[str], body: bytes, headers: HeadersLike, tolerance: float | None, now: float
) -> str | None:
    """None when `webhook-signature` matches; otherwise why not. Raises for a bad timestamp."""
    signature = _header(headers, "webhook-signature") or ""
    message_id = _header(headers, "webhook-id")
    timestamp_text = _header(headers, "webhook-timestamp")
    if not message_id or not timestamp_text:
        return "webhook-signature is present but webhook-id or webhook-timestamp is missing"
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise InvalidSignature(["webhook-timestamp is not a whole number of seconds"]) from None
    if tolerance is not None:
        skew = now - timestamp
        if skew > tolerance:
            raise InvalidSignature(
                [
                    f"webhook-timestamp is {skew:.0f} s old, more than the {tolerance:g} s "
                    "tolerance (a replayed request, or a clock that is off)"
                ]
            )
        if -skew > tolerance:
            raise InvalidSignature(
                [
                    f"webhook-timestamp is {-skew:.0f} s in the future, more than the "
                    f"{tolerance:g} s tolerance (a clock that is off)"
                ]
            )
    given: list[bytes] = []
    for entry in signature.split():
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        try:
            given.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not given:
        return "webhook-signature has no v1 entry"
    keys = [k for k in (_standard_key(s) for s in secrets) if k is not None]
    if not keys:
        return "webhook-signature cannot be checked: no secret is a whsec_ secret"
    signed = f"{message_id}.{timestamp_text}.".encode() + body
    # Compare every pair, without stopping early, so timing says nothing about which matched.
    matched = False
    for key in keys:
        expected = hmac.new(key, signed, hashlib.sha256).digest()
        for candidate in given:
            matched |= hmac.compare_digest(expected, candidate)
    if matched:
        return None
    count = "the secret" if len(secrets) == 1 else f"any of the {len(secrets)} secrets"
    return f"webhook-signature does not match {count}"


def _check_hub(secrets: list[str], body: bytes, name: str, value: str) -> str | None:
    """None when an `X-Hub-Signature*` value matches; otherwise why not."""
    algorithm, _, digest = value.partition("=")
    if algorithm.lower() != "sha256" or not digest:
        return f"{name} is not of the form sha256=<hex>"
    candidate = digest.lower().encode("utf-8", "replace")
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
        matched |= hmac.compare_digest(expected, candidate)
    if matched:
        return None
    count = "the secret" if len(secrets) == 1 else f"any of the {len(secrets)} secrets"
    return f"{name} does not match {count}"


def check_signature(
    secret: str | Iterable[str],
    body: bytes | bytearray | memoryview | str,
    headers: HeadersLike,
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
    now: float | None = None,
    schemes: Collection[Scheme] = ("standard", "hub"),
) -> str:
    """Check a request's signature and return the header that verified it.

    `secret` is one `whsec_…` secret or several (during a rotation, the new and the old).
    `body` must be the raw bytes as received, before any JSON parsing. `tolerance` is how far
    `webhook-timestamp` may be from `now` (seconds; None turns the check off).
    Raises InvalidSignature.
    """
    secrets = _secret_list(secret)
    if not schemes or any(s not in ("standard", "hub") for s in schemes):
        raise ValueError('schemes takes "standard", "hub" or both')
    raw = _as_bytes(body)
    moment = time.time() if now is None else now
    reasons: list[str] = []
    if "standard" in schemes and _header(headers, "webhook-signature") is not None:
        reason = _check_standard(secrets, raw, headers, tolerance, moment)
        if reason is None:
            return "webhook-signature"
        reasons.append(reason)
    if "hub" in schemes:
        for name in _HUB_HEADERS:
            value = _header(headers, name)
            if value is not None:
                reason = _check_hub(secrets, raw, name, value)
                if reason is None:
                    return name
                reasons.append(reason)
                break
    if not reasons:
        wanted = ["webhook-signature"] if "standard" in schemes else []
        wanted += _HUB_HEADERS if "hub" in schemes else ()
        reasons.append(f"no signature header (expected {' or '.join(wanted)})")
    raise InvalidSignature(reasons)


def verify(
    secret: str | Iterable[str],
    body: bytes | bytearray | memoryview | str,
    headers: HeadersLike,
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
    now: float | None = None,
    schemes: Collection[Scheme] = ("standard", "hub"),
) -> Any:
    """Check a request's signature (see `check_signature`) and return its parsed JSON payload.

    Raises InvalidSignature when the signature does not verify, and json.JSONDecodeError (also
    a ValueError) when a correctly signed body is not JSON.
    """
    check_signature(secret, body, headers, tolerance=tolerance, now=now, schemes=schemes)
    return json.loads(_as_bytes(body))
