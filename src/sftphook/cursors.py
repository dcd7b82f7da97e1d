"""Page cursors of the newest-first lists (events, audit entries): the (created_at, id) of the
last row of a page, opaque to clients."""

from __future__ import annotations

import base64
import binascii

from sftphook.epoch import epoch_ms
from sftphook.errors import InvalidInput


def encode(created_at: int, row_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at}:{row_id}".encode()).decode().rstrip("=")


def decode(cursor: str) -> tuple[int, str]:
    """The (created_at, id) of the last row of the previous page; `InvalidInput` for anything
    this API did not give out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, row_id = raw.split(":", 1)
        created_at = epoch_ms(created)
        if created_at is None or not row_id or len(row_id) > 64:
            raise ValueError
        return created_at, row_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput(
            "cursor is not one this API gave out: pass `next_cursor` from the previous page",
            field="cursor",
        ) from exc
