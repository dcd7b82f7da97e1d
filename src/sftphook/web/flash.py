"""One-time messages kept on the server (a new signing secret): read once, then gone.

A secret shown after a redirect must not live in a URL, a cookie or a cached page: the page
carries only a random id, the value stays here, and the first read removes it.
"""

from __future__ import annotations

import secrets
import time
from typing import Any


class OneTimeStore:
    def __init__(self, ttl: float = 600.0, max_items: int = 10_000) -> None:
        self._ttl = ttl
        self._max_items = max_items
        self._items: dict[str, tuple[str, float, dict[str, Any]]] = {}

    def put(self, owner: str, value: dict[str, Any]) -> str:
        """Keep `value` for the session `owner`; returns the id to read it with."""
        now = time.monotonic()
        self._expire(now)
        if len(self._items) >= self._max_items:
            oldest = min(self._items, key=lambda k: self._items[k][1])
            del self._items[oldest]
        item_id = secrets.token_urlsafe(16)
        self._items[item_id] = (owner, now, value)
        return item_id

    def take(self, owner: str, item_id: str | None) -> dict[str, Any] | None:
        """The value, once, and only for the session that stored it."""
        if not item_id:
            return None
        self._expire(time.monotonic())
        item = self._items.get(item_id)
        if item is None or not secrets.compare_digest(item[0], owner):
            return None
        del self._items[item_id]
        return item[2]

    def _expire(self, now: float) -> None:
        for key in [k for k, (_, t, _) in self._items.items() if now - t > self._ttl]:
            del self._items[key]
