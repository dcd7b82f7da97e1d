"""The statements run before every event's commit (`PlainInsert`, `fan_out_candidates`): straight
through `sqlite3` on SQLite, Core elsewhere, with the same rows, values and errors either way."""

from __future__ import annotations

from typing import Any, cast

import pytest
from sqlalchemy import Table, exc, select

from sftphook.store import Database
from sftphook.store import events as event_store
from sftphook.store import webhooks as webhook_store
from sftphook.store.database import PlainInsert, sqlite_driver
from sftphook.store.models import Delivery, Event, Organization, Webhook
from sftphook.webhooks.fanout import INSERT_DELIVERIES, delivery_row

EVENTS = cast(Table, Event.__table__)


def _event(event_id: str, **values: Any) -> dict[str, Any]:
    row = {column.name: None for column in EVENTS.columns}
    row.update(
        id=event_id,
        organization_id="org",
        topic="file.created",
        created_at=1_700_000_000_123,
        actor_type="User",
        actor_id="alice",
        path="in/é + %.csv",
    )
    row.update(values)
    return row


async def _organizations(db: Database, *names: str) -> None:
    def work(connection: Any) -> None:
        for name in names:
            connection.execute(
                Organization.__table__.insert(), {"id": name, "name": name, "created_at": 0}
            )

    await db.write(work)


async def test_events_are_stored_as_given(db: Database) -> None:
    await _organizations(db, "org")
    rows = [
        _event("e1"),
        _event("e2", size=2**40, sha256="ab" * 32, previous_path="old", client_ip="::1"),
    ]

    def work(connection: Any) -> bool:
        event_store.insert(connection, rows)
        return sqlite_driver(connection) is not None

    used_driver = await db.write(work)
    assert used_driver is (db.url.startswith("sqlite"))
    async with db.session() as session:
        stored = (await session.execute(select(EVENTS).order_by(EVENTS.c.id))).mappings().all()
    assert [dict(row) for row in stored] == rows


async def test_a_constraint_error_is_sqlalchemys_and_nothing_is_kept(db: Database) -> None:
    await _organizations(db, "org")

    def twice(connection: Any) -> None:
        event_store.insert(connection, [_event("same")])
        event_store.insert(connection, [_event("same")])

    with pytest.raises(exc.IntegrityError):
        await db.write(twice)

    def count(connection: Any) -> int:
        return len(connection.execute(select(EVENTS.c.id)).all())

    assert await db.write(count) == 0


async def test_deliveries_and_fan_out_candidates(db: Database) -> None:
    await _organizations(db, "org", "other")

    def webhooks(connection: Any) -> None:
        for webhook_id, org, created, topics, rules, state in [
            ("w2", "org", 2, ["file.deleted"], [], "paused"),
            ("w1", "org", 1, ["file.created", "file.deleted"], [{"field": "path"}], "enabled"),
            ("w3", "other", 3, ["file.created"], [], "enabled"),
        ]:
            connection.execute(
                Webhook.__table__.insert(),
                {
                    "id": webhook_id,
                    "organization_id": org,
                    "nickname": webhook_id,
                    "url": "https://example.com/hook",
                    "topics": topics,
                    "filter": rules,
                    "state": state,
                    "secret_encrypted": "sealed",
                    "settings": {},
                    "created_at": created,
                },
            )
        event_store.insert(connection, [_event("e1")])
        INSERT_DELIVERIES.execute(
            connection,
            [
                delivery_row(
                    organization_id="org",
                    webhook_id="w1",
                    topic="file.created",
                    kind="event",
                    event_id="e1",
                    now=5,
                ),
                delivery_row(
                    organization_id="org",
                    webhook_id="w2",
                    topic="webhook.ping",
                    kind="ping",
                    payload=b"\x00{}",
                    now=6,
                ),
            ],
        )

    await db.write(webhooks)
    candidates = await db.write(lambda c: webhook_store.fan_out_candidates(c, ["org"]))
    assert candidates == [
        ("w1", "org", ["file.created", "file.deleted"], [{"field": "path"}], "enabled"),
        ("w2", "org", ["file.deleted"], [], "paused"),
    ]
    assert [c.id for c in await db.write(lambda c: webhook_store.fan_out_candidates(c, []))] == []
    both = await db.write(lambda c: webhook_store.fan_out_candidates(c, ["org", "other"]))
    assert [c.id for c in both] == ["w1", "w2", "w3"]
    async with db.session() as session:
        stored = (await session.scalars(select(Delivery).order_by(Delivery.created_at))).all()
    assert [(d.webhook_id, d.event_id, d.payload, d.status, d.attempt_count) for d in stored] == [
        ("w1", "e1", None, "pending", 0),
        ("w2", None, b"\x00{}", "pending", 0),
    ]
    assert [d.next_attempt_at for d in stored] == [5, 6]


def test_a_plain_insert_refuses_columns_it_would_get_wrong() -> None:
    webhooks = cast(Table, Webhook.__table__)
    with pytest.raises(ValueError, match="topics needs converting"):
        PlainInsert(webhooks, [column.name for column in webhooks.columns])
    with pytest.raises(ValueError, match="created_at has a default"):
        PlainInsert(EVENTS, [c.name for c in EVENTS.columns if c.name != "created_at"])
    with pytest.raises(ValueError, match="no column nope"):
        PlainInsert(EVENTS, [*(c.name for c in EVENTS.columns), "nope"])
    # What the recorder and the fan-out use passes these checks (they run at import, too).
    assert set(INSERT_DELIVERIES.columns) == set(
        delivery_row(organization_id="o", webhook_id="w", topic="t", kind="event")
    )
