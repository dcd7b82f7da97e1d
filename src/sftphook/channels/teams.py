"""Microsoft Teams incoming-webhook messages (an Adaptive Card)."""

from __future__ import annotations

import json

from sftphook.channels.messages import Notice


def teams_body(notice: Notice) -> bytes:
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": notice.sentence,
                "wrap": True,
                "weight": "Bolder",
                "size": "Medium",
            },
            {
                "type": "FactSet",
                "facts": [{"title": label, "value": value} for label, value in notice.facts],
            },
        ],
    }
    message = {
        "type": "message",
        "summary": notice.sentence,
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }
    return json.dumps(message, ensure_ascii=False).encode()
