"""Endpoint types: where a webhook's deliveries go and what they carry.

- `webhook`: the signed JSON payload (DESIGN.md §3) to an HTTPS URL.
- `slack`, `teams`: a readable message (Block Kit, Adaptive Card) to an incoming-webhook URL, under
  the same URL-safety rules as webhooks.
- `email`: a plain-text and HTML message through the configured SMTP server; the webhook's `url`
  holds the recipients (`ops@example.com, Jane <jane@example.com>`).
"""

from __future__ import annotations

from typing import Any

from sftphook.channels import (
    describe_event,
    describe_ping,
    parse_recipients,
    slack_body,
    teams_body,
)
from sftphook.channels.messages import Notice
from sftphook.config import SMTPSettings
from sftphook.errors import InvalidInput
from sftphook.events.model import EventRecord
from sftphook.webhooks.urlsafety import (
    MAX_URL_LENGTH,
    Lookup,
    UrlPolicy,
    check_destination,
    system_lookup,
)

TYPES = ("webhook", "slack", "teams", "email")
CHAT_TYPES = ("slack", "teams")
TYPE_LABELS = {
    "webhook": "Webhook (signed JSON)",
    "slack": "Slack",
    "teams": "Microsoft Teams",
    "email": "Email",
}


def check_type(value: str) -> str:
    if value not in TYPES:
        raise InvalidInput(
            f"unknown endpoint type {value!r}; choose from " + ", ".join(TYPES), field="type"
        )
    return value


def check_smtp(smtp: SMTPSettings) -> None:
    if not smtp.host:
        raise InvalidInput(
            "email endpoints need an SMTP server, and none is configured: set smtp.host "
            "(SFTPHOOK_SMTP__HOST) and the other smtp settings, then restart sftphook",
            field="type",
        )


async def check_endpoint(
    kind: str,
    url: str,
    policy: UrlPolicy,
    smtp: SMTPSettings,
    *,
    lookup: Lookup = system_lookup,
) -> str:
    """The save-time check of a webhook's destination; returns what to store as its `url`."""
    check_type(kind)
    if kind == "email":
        check_smtp(smtp)
        recipients = ", ".join(parse_recipients(url))
        if len(recipients) > MAX_URL_LENGTH:
            raise InvalidInput(
                f"recipients are longer than {MAX_URL_LENGTH} characters", field="url"
            )
        return recipients
    await check_destination(url, policy, lookup=lookup)
    return url


def notice_of(event: EventRecord | None, ping: dict[str, Any] | None) -> Notice:
    """What a delivery says in words: its event, or the ping's webhook snapshot."""
    if event is not None:
        return describe_event(event)
    if ping is None:
        raise ValueError("a delivery has neither an event nor a payload")
    nickname = str(ping.get("webhook", {}).get("Alias", ""))
    return describe_ping(nickname, int(ping["created_at"]), str(ping.get("actor_id", "operator")))


def chat_body(kind: str, notice: Notice) -> bytes:
    if kind == "slack":
        return slack_body(notice)
    if kind == "teams":
        return teams_body(notice)
    raise ValueError(f"{kind!r} is not a chat endpoint type")
