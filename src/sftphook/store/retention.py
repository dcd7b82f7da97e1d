"""Queries that prune old delivery data and events, a small batch per transaction."""

from __future__ import annotations

import dataclasses

from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from sftphook.store.deliveries import FINAL as FINISHED
from sftphook.store.deliveries import OWED
from sftphook.store.models import Attempt, Delivery, Event


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
    # The statuses named, not "not finished": those are found through ix_deliveries_due, and
    # this runs again for every batch.
    unfinished = exists().where(Delivery.event_id == Event.id, Delivery.status.in_(OWED))
    return and_(Event.created_at < cutoff_ms, ~unfinished)


def _of_old_events(cutoff_ms: int) -> ColumnElement[bool]:
    """Deliveries (all finished) of events past their window that owe nothing: they go before
    their event, a batch at a time like any other."""
    return Delivery.event_id.in_(select(Event.id).where(_old_events(cutoff_ms)))


async def count(
    session: AsyncSession, *, deliveries_before: int, events_before: int
) -> PruneCounts:
    """What a prune with these cutoffs (epoch ms) would remove."""
    old = select(Delivery.id).where(
        or_(_old_deliveries(deliveries_before), _of_old_events(events_before))
    )
    deliveries = await session.scalar(select(func.count()).select_from(old.subquery()))
    attempts = await session.scalar(
        select(func.count()).select_from(Attempt).where(Attempt.delivery_id.in_(old))
    )
    events = await session.scalar(
        select(func.count()).select_from(Event).where(_old_events(events_before))
    )
    return PruneCounts(int(deliveries or 0), int(attempts or 0), int(events or 0))


@dataclasses.dataclass
class Candidates:
    """What one batch will try to remove: ids found by `find_batch`, checked again by
    `remove_batch`."""

    deliveries: list[str]
    events: list[str]


async def find_batch(
    session: AsyncSession, *, deliveries_before: int, events_before: int, batch: int
) -> Candidates:
    """Up to `batch` old deliveries and `batch` old events.

    An old event's deliveries count toward the `batch` deliveries, and the event goes once it
    has none left: an event delivered to many webhooks does not make one long transaction or
    more ids than one statement takes. This is the search through the tables (a scan when
    little is old): run it outside the write transaction, so that on SQLite the event commits
    of the SFTP front do not wait for it."""
    deliveries = list(
        await session.scalars(
            select(Delivery.id).where(_old_deliveries(deliveries_before)).limit(batch)
        )
    )
    events = list(
        await session.scalars(select(Event.id).where(_old_events(events_before)).limit(batch))
    )
    if events and len(deliveries) < batch:
        deliveries += await session.scalars(
            select(Delivery.id)
            .where(Delivery.event_id.in_(events), Delivery.id.not_in(deliveries))
            .limit(batch - len(deliveries))
        )
    return Candidates(deliveries, events)


async def remove_batch(
    session: AsyncSession, found: Candidates, *, events_before: int
) -> PruneCounts:
    """Remove what `find_batch` found that may still go, by id: a short write transaction."""
    counts = PruneCounts()
    if found.deliveries:
        # By id alone (a status in the condition would lead SQLite to walk ix_deliveries_due):
        # they were finished when found, and a finished delivery stays so; one that another
        # node's prune took meanwhile is simply not there.
        ids = found.deliveries
        result = await session.execute(delete(Attempt).where(Attempt.delivery_id.in_(ids)))
        counts.attempts = result.rowcount or 0  # type: ignore[attr-defined]
        result = await session.execute(delete(Delivery).where(Delivery.id.in_(ids)))
        counts.deliveries = result.rowcount or 0  # type: ignore[attr-defined]
    if not found.events:
        return counts
    # An event goes only once it has no delivery left (a later batch removes those first), so
    # that the delete's cascade never takes one: a re-send can add a delivery to an old event
    # at any moment. On PostgreSQL the events are locked first, skipping any that a re-send
    # holds (inserting a delivery locks its event FOR KEY SHARE until the insert commits); the
    # delete, a later statement, then sees every delivery committed before the lock, and none
    # can be added to a locked event.
    # On SQLite the delete checks for deliveries in the same statement, under the write lock.
    event_ids = list(
        await session.scalars(
            select(Event.id)
            .where(Event.id.in_(found.events), _old_events(events_before))
            .with_for_update(skip_locked=True)
        )
    )
    if event_ids:
        result = await session.execute(
            delete(Event)
            .where(Event.id.in_(event_ids), ~exists().where(Delivery.event_id == Event.id))
            .execution_options(synchronize_session=False)
        )
        counts.events = result.rowcount or 0  # type: ignore[attr-defined]
    return counts


async def prune_batch(
    session: AsyncSession, *, deliveries_before: int, events_before: int, batch: int
) -> PruneCounts:
    """`find_batch` and `remove_batch` in one transaction."""
    found = await find_batch(
        session, deliveries_before=deliveries_before, events_before=events_before, batch=batch
    )
    return await remove_batch(session, found, events_before=events_before)
