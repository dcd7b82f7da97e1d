"""Slack incoming-webhook messages (Block Kit)."""

from __future__ import annotations

import json

from sftphook.channels.messages import Notice


def _escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(notice: Notice) -> bytes:
    sentence = notice.sentence
    if sentence.startswith(notice.actor):
        headline = f"*{_escape(notice.actor)}*" + _escape(sentence[len(notice.actor) :])
    else:
        headline = _escape(sentence)
    fields = [
        {"type": "mrkdwn", "text": f"*{_escape(label)}*\n{_escape(value)}"}
        for label, value in notice.facts
    ]
    message = {
        # Shown in notifications and where blocks cannot be drawn; Slack parses it as mrkdwn
        # too, so a file name must not mention (`<!channel>`) or link there either.
        "text": _escape(sentence),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
            # Slack takes at most ten fields in a section.
            {"type": "section", "fields": fields[:10]},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"sftphook · {_escape(notice.topic)}"}],
            },
        ],
    }
    return json.dumps(message, ensure_ascii=False).encode()
