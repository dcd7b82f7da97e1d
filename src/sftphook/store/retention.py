"""Queries that prune old delivery data and events, a small batch per transaction."""

from __future__ import annotations

import dataclasses

from sqlalchemy import and_, delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from sftphook.store.models import Attempt, Delivery, Event

FINISHED = ("succeeded", "failed")


@dataclasses.dataclass
class PruneCounts:
    deliveries: int = 0
    attempts: int = 0
    events: int = 0

    def __iadd__(self, other: PruneCounts) -> PruneCounts:
        self.deliveries += other.deliveries
        self.attempts += other.attempts
        self.events += other.events
        return self

    @property
    def total(self) -> int:
        return self.deliveries + self.attempts + self.events


def _old_deliveries(cutoff_ms: int) -> ColumnElement[bool]:
    # Only finished deliveries go: one that is pending, retrying or held is still owed.
    return and_(Delivery.status.in_(FINISHED), Delivery.updated_at < cutoff_ms)


def _old_events(cutoff_ms: int) -> ColumnElement[bool]:
    unfinished = exists().where(Delivery.event_id == Event.id, Delivery.status.not_in(FINISHED))
    return and_(Event.created_at < cutoff_ms, ~unfinished)


async def count(
    session: AsyncSession, *, deliveries_before: int, events_before: int
) -> PruneCounts:
    """What a prune with these cutoffs (epoch ms) would remove."""
    old = select(Delivery.id).where(_old_deliveries(deliveries_before))
    deliveries = await session.scalar(select(func.count()).select_from(old.subquery()))
    attempts = await session.scalar(
        select(func.count()).select_from(Attempt).where(Attempt.delivery_id.in_(old))
    )
    events = await session.scalar(
        select(func.count()).select_from(Event).where(_old_events(events_before))
    )
    return PruneCounts(int(deliveries or 0), int(attempts or 0), int(events or 0))


async def prune_batch(
    session: AsyncSession, *, deliveries_before: int, events_before: int, batch: int
) -> PruneCounts:
    """Remove up to `batch` old deliveries (with their attempts) and `batch` old events."""
    counts = PruneCounts()
    ids = list(
        await session.scalars(
            select(Delivery.id).where(_old_deliveries(deliveries_before)).limit(batch)
        )
    )
    if ids:
        result = await session.execute(delete(Attempt).where(Attempt.delivery_id.in_(ids)))
        counts.attempts = result.rowcount or 0  # type: ignore[attr-defined]
        result = await session.execute(delete(Delivery).where(Delivery.id.in_(ids)))
        counts.deliveries = result.rowcount or 0  # type: ignore[attr-defined]
    event_ids = list(
        await session.scalars(select(Event.id).where(_old_events(events_before)).limit(batch))
    )
    if event_ids:
        # Their finished deliveries go with them (the foreign key cascades); count them first.
        gone = await session.scalars(select(Delivery.id).where(Delivery.event_id.in_(event_ids)))
        gone_ids = list(gone)
        if gone_ids:
            result = await session.execute(delete(Attempt).where(Attempt.delivery_id.in_(gone_ids)))
            counts.attempts += result.rowcount or 0  # type: ignore[attr-defined]
            result = await session.execute(delete(Delivery).where(Delivery.id.in_(gone_ids)))
            counts.deliveries += result.rowcount or 0  # type: ignore[attr-defined]
        result = await session.execute(delete(Event).where(Event.id.in_(event_ids)))
        counts.events = result.rowcount or 0  # type: ignore[attr-defined]
    return counts
