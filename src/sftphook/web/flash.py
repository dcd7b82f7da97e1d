"""One-time messages kept on the server (a new signing secret): read once, then gone.

A secret shown after a redirect must not live in a URL, a cookie or a cached page: the page
carries only a random id, and the value waits in the settings table, encrypted like every
other secret at rest, until the first read deletes it. Being in the database, the page after a
form may be served by any node.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from sqlalchemy import delete

from sftphook.store.database import Database
from sftphook.store.models import Setting, now_ms
from sftphook.webhooks.crypto import SecretBox

_PREFIX = "dashboard.message."


class OneTimeStore:
    def __init__(self, db: Database, box: SecretBox, ttl_seconds: float = 600.0) -> None:
        self._db = db
        self._box = box
        self._ttl_ms = int(ttl_seconds * 1000)

    async def put(self, owner: str, value: dict[str, Any]) -> str:
        """Keep `value` for the session `owner`; returns the id to read it with."""
        item_id = secrets.token_urlsafe(16)
        now = now_ms()
        sealed = self._box.encrypt(json.dumps({"owner": owner, "value": value}))
        async with self._db.transaction() as s:
            await s.execute(
                delete(Setting).where(
                    Setting.key.startswith(_PREFIX), Setting.updated_at < now - self._ttl_ms
                )
            )
            s.add(Setting(key=_PREFIX + item_id, value=sealed, updated_at=now))
        return item_id

    async def take(self, owner: str, item_id: str | None) -> dict[str, Any] | None:
        """The value, once, and only for the session that stored it."""
        if not item_id or len(item_id) > 64:
            return None
        async with self._db.transaction() as s:
            row = await s.get(Setting, _PREFIX + item_id)
            if row is None:
                return None
            stored = json.loads(self._box.decrypt(row.value))
            if not secrets.compare_digest(stored["owner"], owner):
                return None
            fresh = row.updated_at >= now_ms() - self._ttl_ms
            await s.delete(row)
        value: dict[str, Any] = stored["value"]
        return value if fresh else None
