"""Signing secrets and the signature headers of DESIGN.md §4, as pure functions."""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"


def generate_secret() -> str:
    """`whsec_` + base64 of 32 random bytes: the form Standard Webhooks libraries accept."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def hub_signature(secret: str, body: bytes) -> str:
    """`X-Hub-Signature`: `sha256=<hex HMAC-SHA256>` keyed with the whole secret string."""
    return "sha256=" + hmac.digest(secret.encode(), body, "sha256").hex()


def standard_key(secret: str) -> bytes:
    """The Standard Webhooks HMAC key: the base64-decoded part after `whsec_`."""
    encoded = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(encoded)


def standard_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` entry of `webhook-signature`."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    mac = hmac.digest(standard_key(secret), signed, "sha256")
    return "v1," + base64.b64encode(mac).decode()


def signature_headers(
    secrets_: Sequence[str], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Every signature header for a body. `secrets_[0]` is the current secret; during a rotation
    grace period the previous one follows and `webhook-signature` carries both."""
    if not secrets_:
        raise ValueError("at least one signing secret is needed")
    hub = hub_signature(secrets_[0], body)
    return {
        "X-Hub-Signature": hub,
        "X-Hub-Signature-256": hub,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            standard_signature(s, message_id, timestamp, body) for s in secrets_
        ),
    }
