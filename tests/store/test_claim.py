"""The claim that makes the deliveries table a work queue, on SQLite and PostgreSQL alike: oldest
due first across statuses, one head at a time for an ordered webhook, busy webhooks left out."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from sftphook.store import Database
from sftphook.store import deliveries as delivery_store
from sftphook.store.models import Delivery, Organization, Webhook

DELIVERIES = Delivery.__table__
NOW = 1_000_000
LEASE_MS = 60_000


async def _webhook(db: Database, webhook_id: str, *, ordered: bool = False) -> None:
    def work(connection: Any) -> None:
        if connection.execute(select(Organization.id)).first() is None:
            connection.execute(
                Organization.__table__.insert(), {"id": "org", "name": "org", "created_at": 0}
            )
        connection.execute(
            Webhook.__table__.insert(),
            {
                "id": webhook_id,
                "organization_id": "org",
                "nickname": webhook_id,
                "url": "https://example.com/hook",
                "topics": ["file.created"],
                "filter": [],
                "ordered": ordered,
                "secret_encrypted": "sealed",
                "settings": {},
            },
        )

    await db.write(work)


async def _deliveries(db: Database, *rows: dict[str, Any]) -> None:
    """Inserted in the order given (as the fan-out inserts them, in sequence order)."""
    full = [
        {
            "organization_id": "org",
            "webhook_id": "w",
            "topic": "file.created",
            "kind": "event",
            "status": "pending",
            "lease_owner": None,
            "lease_expires_at": None,
            "created_at": 0,
            "updated_at": 0,
            **row,
        }
        for row in rows
    ]
    await db.write(lambda connection: connection.execute(DELIVERIES.insert(), full))


async def _claim(db: Database, *, now: int = NOW, limit: int = 10, exclude=()) -> list[str]:
    rows = await db.write(
        lambda connection: delivery_store.claim_sync(
            connection,
            token=f"token-{now}",
            now=now,
            lease_ms=LEASE_MS,
            limit=limit,
            exclude_webhooks=exclude,
        )
    )
    return [row.id for row in rows]


async def test_claim_takes_the_oldest_due_first_across_statuses(db: Database):
    await _webhook(db, "w")
    await _deliveries(
        db,
        {"id": "a", "status": "pending", "next_attempt_at": 200, "sequence": 1},
        {"id": "b", "status": "retrying", "next_attempt_at": 100, "sequence": 2},
        {"id": "c", "status": "pending", "next_attempt_at": 100, "sequence": 3},
        {"id": "d", "status": "retrying", "next_attempt_at": 300, "sequence": 4},
        {"id": "e", "status": "pending", "next_attempt_at": 100, "sequence": 5},
        # Never due now: leased by someone else, scheduled later, held, done.
        {
            "id": "leased",
            "next_attempt_at": 50,
            "sequence": 6,
            "lease_owner": "other",
            "lease_expires_at": NOW + 1,
        },
        {"id": "later", "next_attempt_at": NOW + 1, "sequence": 7},
        {"id": "held", "status": "held", "next_attempt_at": 0, "sequence": 8},
        {"id": "done", "status": "succeeded", "next_attempt_at": None, "sequence": 9},
    )
    first = await _claim(db, limit=3)
    assert sorted(first) == ["b", "c", "e"]
    if db.is_sqlite:
        assert first == ["b", "c", "e"]  # in (next_attempt_at, sequence) order
    assert sorted(await _claim(db)) == ["a", "d"]
    assert await _claim(db) == []
    # An expired lease is due again.
    assert sorted(await _claim(db, now=NOW + 1)) == ["later", "leased"]


async def test_claim_leases_to_the_token_and_keys_the_lease_on_it(db: Database):
    await _webhook(db, "w")
    await _deliveries(db, {"id": "a", "next_attempt_at": 0, "sequence": 1})
    assert await _claim(db) == ["a"]

    def lease(connection: Any) -> tuple[Any, ...]:
        row = connection.execute(
            select(Delivery.lease_owner, Delivery.lease_expires_at, Delivery.updated_at)
        ).one()
        return tuple(row)

    assert await db.write(lease) == (f"token-{NOW}", NOW + LEASE_MS, NOW)
    # Giving a lease back takes the right token.
    await db.write(lambda c: delivery_store.release_leases(c, [("a", "not-mine")]))
    assert await _claim(db) == []
    await db.write(lambda c: delivery_store.release_leases(c, [("a", f"token-{NOW}")]))
    assert await _claim(db) == ["a"]


async def test_an_ordered_webhook_sends_its_head_alone_and_in_sequence_order(db: Database):
    await _webhook(db, "w", ordered=True)
    await _deliveries(
        db,
        # The head is the retrying delivery (lower sequence), not due until NOW + 500.
        {"id": "second", "status": "pending", "next_attempt_at": 0, "sequence": 3},
        {"id": "head", "status": "retrying", "next_attempt_at": NOW + 500, "sequence": 2},
        {"id": "third", "status": "pending", "next_attempt_at": 0, "sequence": 4},
        # Pings are not ordered.
        {"id": "ping", "kind": "ping", "next_attempt_at": 0, "sequence": 5},
    )
    assert await _claim(db) == ["ping"]
    assert await _claim(db, now=NOW + 500) == ["head"]
    # The head is in flight: the next waits for its result.
    assert await _claim(db, now=NOW + 600) == []

    def finish_head(connection: Any) -> None:
        connection.execute(
            DELIVERIES.update()
            .where(DELIVERIES.c.id == "head")
            .values(status="succeeded", lease_owner=None, lease_expires_at=None)
        )

    await db.write(finish_head)
    assert await _claim(db, now=NOW + 600) == ["second"]


async def test_an_ordered_webhook_does_not_hold_up_an_unordered_one(db: Database):
    await _webhook(db, "w", ordered=True)
    await _webhook(db, "free")
    await _deliveries(
        db,
        *({"id": f"w{i}", "next_attempt_at": 0, "sequence": i} for i in range(5)),
        *(
            {"id": f"f{i}", "webhook_id": "free", "next_attempt_at": 0, "sequence": 10 + i}
            for i in range(3)
        ),
    )
    assert sorted(await _claim(db)) == ["f0", "f1", "f2", "w0"]


async def test_claim_leaves_out_busy_webhooks(db: Database):
    await _webhook(db, "w")
    await _webhook(db, "busy")
    await _webhook(db, "busy-ordered", ordered=True)
    await _deliveries(
        db,
        {"id": "busy-1", "webhook_id": "busy", "next_attempt_at": 0, "sequence": 1},
        {"id": "ordered-1", "webhook_id": "busy-ordered", "next_attempt_at": 0, "sequence": 2},
        {"id": "mine", "next_attempt_at": 0, "sequence": 3},
    )
    assert await _claim(db, exclude={"busy", "busy-ordered"}) == ["mine"]
    assert sorted(await _claim(db)) == ["busy-1", "ordered-1"]


async def test_next_due_is_the_first_scheduled_try_or_lease_end(db: Database):
    await _webhook(db, "w")
    assert await db.write(lambda c: delivery_store.next_due_sync(c, NOW)) is None
    await _deliveries(
        db,
        {"id": "soon", "status": "retrying", "next_attempt_at": NOW + 900, "sequence": 1},
        {"id": "later", "status": "pending", "next_attempt_at": NOW + 5000, "sequence": 2},
        {"id": "held", "status": "held", "next_attempt_at": NOW + 10, "sequence": 3},
        {
            "id": "leased",
            "next_attempt_at": 0,
            "sequence": 4,
            "lease_owner": "x",
            "lease_expires_at": NOW + 700,
        },
    )
    assert await db.write(lambda c: delivery_store.next_due_sync(c, NOW)) == NOW + 700
    assert await db.write(lambda c: delivery_store.next_due_sync(c, NOW + 700)) == NOW + 900
