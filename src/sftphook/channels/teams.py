"""Microsoft Teams incoming-webhook messages (an Adaptive Card)."""

from __future__ import annotations

import json
from typing import Any

from sftphook.channels.messages import Notice

# The fact's title column against its value's, as column weights: the same in every row, so the
# rows line up as a fact set's do.
_TITLE_WEIGHT, _VALUE_WEIGHT = 1, 3


def _plain(text: str, **style: str) -> dict[str, Any]:
    """`text` as it is. A TextBlock or a fact set reads its text as Markdown, so a file named
    `[invoice](https://…)` would show as a link there; a TextRun is never read as Markdown."""
    return {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": text, **style}]}


def _fact(title: str, value: str) -> dict[str, Any]:
    return {
        "type": "ColumnSet",
        "spacing": "Small",
        "columns": [
            {"type": "Column", "width": _TITLE_WEIGHT, "items": [_plain(title, weight="Bolder")]},
            {"type": "Column", "width": _VALUE_WEIGHT, "items": [_plain(value)]},
        ],
    }


def teams_body(notice: Notice) -> bytes:
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            _plain(notice.sentence, weight="Bolder", size="Medium"),
            *(_fact(label, value) for label, value in notice.facts),
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
