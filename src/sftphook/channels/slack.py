"""Slack incoming-webhook messages (Block Kit)."""

from __future__ import annotations

import json

from sftphook.channels.messages import Notice

# What Slack takes (more is refused with 400 invalid_blocks): a section's text, and each field.
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000


def _escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fit(text: str, limit: int) -> str:
    """Escaped mrkdwn cut to `limit` characters, ending with "…" when cut (never inside an
    entity such as `&amp;`): long paths, escaped, can exceed what Slack takes."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    entity = cut.rfind("&")
    if entity != -1 and ";" not in cut[entity:]:
        cut = cut[:entity]
    return cut + "…"


def slack_body(notice: Notice) -> bytes:
    sentence = notice.sentence
    if sentence.startswith(notice.actor):
        headline = f"*{_escape(notice.actor)}*" + _escape(sentence[len(notice.actor) :])
    else:
        headline = _escape(sentence)
    fields = [
        {"type": "mrkdwn", "text": _fit(f"*{_escape(label)}*\n{_escape(value)}", MAX_FIELD_TEXT)}
        for label, value in notice.facts
    ]
    message = {
        # Shown in notifications and where blocks cannot be drawn; Slack parses it as mrkdwn
        # too, so a file name must not mention (`<!channel>`) or link there either.
        "text": _escape(sentence),
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _fit(headline, MAX_SECTION_TEXT)},
            },
            # Slack takes at most ten fields in a section.
            {"type": "section", "fields": fields[:10]},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"sftphook · {_escape(notice.topic)}"}],
            },
        ],
    }
    return json.dumps(message, ensure_ascii=False).encode()
