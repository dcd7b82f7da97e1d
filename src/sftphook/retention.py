"""Retention: prunes delivery data and events older than their configured windows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sftphook.config import RetentionSettings
from sftphook.store import retention as queries
from sftphook.store.database import Database
from sftphook.store.models import now_ms
from sftphook.store.retention import PruneCounts

log = logging.getLogger(__name__)

DAY_MS = 86_400_000


class Pruner:
    """Prunes in small transactions with a pause between them, so deliveries never wait long
    for the database (SQLite has one writer)."""

    def __init__(
        self,
        db: Database,
        retention: RetentionSettings,
        *,
        batch: int = 500,
        pause: float = 0.05,
        interval: float = 3600.0,
    ) -> None:
        self._db = db
        self._retention = retention
        self._batch = batch
        self._pause = pause
        self._interval = interval
        self._stop = asyncio.Event()

    def cutoffs(self, now: int) -> tuple[int, int]:
        return (
            now - int(self._retention.deliveries_days * DAY_MS),
            now - int(self._retention.events_days * DAY_MS),
        )

    async def preview(self, now: int | None = None) -> PruneCounts:
        deliveries_before, events_before = self.cutoffs(now if now is not None else now_ms())
        async with self._db.session() as s:
            return await queries.count(
                s, deliveries_before=deliveries_before, events_before=events_before
            )

    async def prune(
        self,
        now: int | None = None,
        *,
        progress: Callable[[PruneCounts], None] | None = None,
    ) -> PruneCounts:
        """Prune everything past the windows as of `now`; returns what was removed.
        `progress`, if given, is called with the running total after each batch."""
        deliveries_before, events_before = self.cutoffs(now if now is not None else now_ms())
        total = PruneCounts()
        while not self._stop.is_set():
            # The search reads; only the removal by id holds the write lock (SQLite's, which
            # every event commit needs).
            async with self._db.session() as s:
                found = await queries.find_batch(
                    s,
                    deliveries_before=deliveries_before,
                    events_before=events_before,
                    batch=self._batch,
                )
            async with self._db.transaction() as s:
                step = await queries.remove_batch(s, found, events_before=events_before)
            total += step
            if progress is not None:
                progress(total)
            if len(found.deliveries) < self._batch and len(found.events) < self._batch:
                break
            await asyncio.sleep(self._pause)
        return total

    async def run(self) -> None:
        """Prune now and then every `interval` seconds until `close()`."""
        while not self._stop.is_set():
            try:
                removed = await self.prune()
                if removed.total:
                    log.info(
                        "pruned %d deliveries, %d attempts, %d events",
                        removed.deliveries,
                        removed.attempts,
                        removed.events,
                    )
            except Exception:
                log.exception("pruning failed; will try again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval)

    async def close(self) -> None:
        self._stop.set()
