"""Pruning stays in small transactions however many deliveries an old event has, on SQLite and
on PostgreSQL alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from sftphook.config import RetentionSettings
from sftphook.retention import DAY_MS, Pruner
from sftphook.store import Database
from sftphook.store import retention as queries
from sftphook.store.ids import ordered_id
from sftphook.store.models import Attempt, Delivery, Event, Organization, Webhook, new_id

NOW = 1_800_000_000_000
OLD = NOW - 100 * DAY_MS
RECENT = NOW - DAY_MS


def _seed(events: int, webhooks: int, *, attempts: int, updated_at: int) -> Any:
    """An organization, `webhooks` webhooks and `events` 100-day-old events, each delivered
    (succeeded) to every webhook, each delivery with `attempts` attempts."""

    def seed(connection: Connection) -> None:
        connection.execute(Organization.__table__.insert(), {"id": "o", "name": "o"})
        hooks = [
            {
                "id": new_id(),
                "organization_id": "o",
                "nickname": f"h{i}",
                "url": "https://example.com/",
                "topics": ["file.created"],
                "secret_encrypted": "x",
            }
            for i in range(webhooks)
        ]
        connection.execute(Webhook.__table__.insert(), hooks)
        event_rows = [
            {
                "id": ordered_id(),
                "organization_id": "o",
                "topic": "file.created",
                "actor_id": "u",
                "path": f"f{i}",
                "created_at": OLD,
            }
            for i in range(events)
        ]
        connection.execute(Event.__table__.insert(), event_rows)
        delivery_rows = [
            {
                "id": ordered_id(),
                "organization_id": "o",
                "webhook_id": hook["id"],
                "event_id": event["id"],
                "topic": "file.created",
                "status": "succeeded",
                "created_at": OLD,
                "updated_at": updated_at,
                "completed_at": updated_at,
            }
            for event in event_rows
            for hook in hooks
        ]
        connection.execute(Delivery.__table__.insert(), delivery_rows)
        if attempts:
            connection.execute(
                Attempt.__table__.insert(),
                [
                    {
                        "id": ordered_id(),
                        "delivery_id": delivery["id"],
                        "request_url": "https://example.com/",
                        "number": n + 1,
                        "created_at": OLD,
                    }
                    for delivery in delivery_rows
                    for n in range(attempts)
                ],
            )

    return seed


async def _count(db: Database, model: Any) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_an_old_event_s_deliveries_are_removed_a_batch_at_a_time(db: Database) -> None:
    # Delivered to 7 webhooks, re-sent lately (their deliveries are within their window): the
    # event's own window takes them, and each transaction may still remove only a batch.
    await db.write(_seed(1, 7, attempts=2, updated_at=RECENT))
    deliveries_before, events_before = NOW - 30 * DAY_MS, NOW - 90 * DAY_MS

    async with db.transaction() as s:
        step = await queries.prune_batch(
            s, deliveries_before=deliveries_before, events_before=events_before, batch=3
        )
    assert step.deliveries <= 3 and step.attempts <= 6
    assert await _count(db, Delivery) == 7 - step.deliveries
    assert await _count(db, Attempt) == 14 - step.attempts

    pruner = Pruner(db, RetentionSettings(deliveries_days=30, events_days=90), batch=3, pause=0)
    preview = await pruner.preview(NOW)
    removed = await pruner.prune(NOW)
    assert (removed.deliveries, removed.attempts, removed.events) == (
        7 - step.deliveries,
        14 - step.attempts,
        1,
    )
    # The preview counts the deliveries that go with their event.
    assert (preview.deliveries, preview.attempts, preview.events) == (
        removed.deliveries,
        removed.attempts,
        removed.events,
    )
    assert (await _count(db, Event), await _count(db, Delivery), await _count(db, Attempt)) == (
        0,
        0,
        0,
    )


async def test_an_old_event_still_owed_keeps_every_delivery(db: Database) -> None:
    await db.write(_seed(1, 4, attempts=1, updated_at=RECENT))

    def hold_one(connection: Connection) -> None:
        one = connection.execute(select(Delivery.id).limit(1)).scalar_one()
        connection.execute(update(Delivery).where(Delivery.id == one).values(status="held"))

    await db.write(hold_one)
    pruner = Pruner(db, RetentionSettings(deliveries_days=30, events_days=90), batch=2, pause=0)

    assert (await pruner.preview(NOW)).total == 0
    assert (await pruner.prune(NOW)).total == 0
    assert (await _count(db, Event), await _count(db, Delivery), await _count(db, Attempt)) == (
        1,
        4,
        4,
    )


async def test_prune_removes_events_with_more_deliveries_than_a_statement_takes(
    db: Database,
) -> None:
    # 500 events (one batch) to 66 webhooks, re-sent lately: 33,000 deliveries that go with
    # their events, more ids than PostgreSQL takes parameters in one statement (32,767).
    await db.write(_seed(500, 66, attempts=0, updated_at=RECENT))
    pruner = Pruner(db, RetentionSettings(deliveries_days=30, events_days=90), pause=0)

    removed = await pruner.prune(NOW)

    assert (removed.deliveries, removed.events) == (33_000, 500)
    assert (await _count(db, Event), await _count(db, Delivery)) == (0, 0)
