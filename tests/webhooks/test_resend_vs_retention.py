"""A re-send of an old delivery against a prune of its event, on PostgreSQL, where the two run side
by side: the re-send is kept, or answered with a clear "pruned", never lost. Each interleaving
is forced by holding one side's transaction open by hand.

(On SQLite the prune deletes an event with one statement that checks for its deliveries, and the
re-send inserts with one statement that checks for its event, each under the one write lock:
whichever comes second sees the other.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select, text

from sftphook.config import RetentionSettings
from sftphook.errors import NotFound
from sftphook.retention import DAY_MS, Pruner
from sftphook.store import deliveries as delivery_store
from sftphook.store import retention as retention_queries
from sftphook.store.models import Delivery, Event, now_ms
from sftphook.store.retention import PruneCounts
from tests.webhooks.conftest import org_id

WINDOWS = RetentionSettings(deliveries_days=30, events_days=90)


async def _old_failed_delivery(app: Any) -> tuple[str, str, str, str]:
    """An event past its window with one failed delivery: (organization, webhook, event,
    delivery) ids."""
    org = await org_id(app)
    hook, _ = await app.webhooks.create(
        org, nickname="r", url="http://127.0.0.1:9/h", topics=["file.created"]
    )
    old = now_ms() - 100 * DAY_MS
    async with app.db.transaction() as s:
        event = Event(
            organization_id=org, topic="file.created", actor_id="u", path="a.csv", created_at=old
        )
        s.add(event)
        await s.flush()
        delivery = Delivery(
            organization_id=org,
            webhook_id=hook.id,
            event_id=event.id,
            topic="file.created",
            status="failed",
            attempt_count=1,
            next_attempt_at=None,
            created_at=old,
            updated_at=old,
            completed_at=old,
        )
        s.add(delivery)
    return org, hook.id, event.id, delivery.id


async def _until_waiting_on_a_lock(app: Any, task: asyncio.Task[Any]) -> None:
    """Return once another session of this database waits for a lock, or `task` has finished."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(1000):
        if task.done():
            return
        async with app.db.engine.connect() as connection:
            if await connection.scalar(query):
                return
        await asyncio.sleep(0.01)
    raise AssertionError("neither finished nor waited on a lock")


async def _count(app: Any, model: Any) -> int:
    async with app.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_resend_committed_while_a_prune_runs_keeps_its_delivery_and_event(
    pg_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    org, _, event_id, delivery_id = await _old_failed_delivery(pg_app)
    inserted, commit = asyncio.Event(), asyncio.Event()
    announce = delivery_store.announce

    async def announce_then_hold(session: Any) -> None:
        # The re-send's delivery is inserted; its transaction stays open until `commit`.
        await announce(session)
        inserted.set()
        await commit.wait()

    monkeypatch.setattr(delivery_store, "announce", announce_then_hold)
    resend = asyncio.create_task(pg_app.webhooks.redeliver(org, delivery_id))
    await inserted.wait()
    prune = asyncio.create_task(Pruner(pg_app.db, WINDOWS).prune())
    await _until_waiting_on_a_lock(pg_app, prune)
    commit.set()
    view = await resend
    removed = await prune

    assert removed.deliveries == 1  # the original, finished and past its window
    async with pg_app.db.session() as s:
        kept = await s.get(Delivery, view.id)
        assert kept is not None and kept.status == "pending" and kept.event_id == event_id
        assert await s.get(Event, event_id) is not None


async def test_resend_while_a_prune_removes_its_event_answers_that_it_was_pruned(
    pg_app: Any,
) -> None:
    org, _, event_id, delivery_id = await _old_failed_delivery(pg_app)
    cutoff = now_ms() - 90 * DAY_MS
    async with pg_app.db.transaction() as s:
        removed = await retention_queries.prune_batch(
            s, deliveries_before=cutoff, events_before=cutoff, batch=500
        )
        assert (removed.deliveries, removed.events) == (1, 1)
        # The re-send still sees the delivery; the prune has not committed.
        resend = asyncio.create_task(pg_app.webhooks.redeliver(org, delivery_id))
        await _until_waiting_on_a_lock(pg_app, resend)

    with pytest.raises(NotFound, match="removed by retention"):
        await resend
    assert await _count(pg_app, Delivery) == 0
    assert await _count(pg_app, Event) == 0


async def test_bulk_resend_while_a_prune_removes_an_event_sends_the_others(
    pg_app: Any,
) -> None:
    org, hook_id, _, delivery_id = await _old_failed_delivery(pg_app)
    async with pg_app.db.transaction() as s:
        fresh = Event(organization_id=org, topic="file.created", actor_id="u", path="b.csv")
        s.add(fresh)
        await s.flush()
        s.add(
            Delivery(
                organization_id=org,
                webhook_id=hook_id,
                event_id=fresh.id,
                topic="file.created",
                status="failed",
                next_attempt_at=None,
                created_at=now_ms() - 100 * DAY_MS,  # listed with the other by created_at
            )
        )
    cutoff = now_ms() - 90 * DAY_MS
    async with pg_app.db.transaction() as s:
        removed = await retention_queries.prune_batch(
            s, deliveries_before=cutoff, events_before=cutoff, batch=500
        )
        assert removed.events == 1
        resend = asyncio.create_task(pg_app.webhooks.redeliver_failed(org, hook_id))
        await _until_waiting_on_a_lock(pg_app, resend)

    created = await resend
    assert len(created) == 1
    async with pg_app.db.session() as s:
        (sent,) = [await s.get(Delivery, i) for i in created]
        assert sent is not None and sent.event_id == fresh.id
    assert delivery_id not in created


async def test_resend_on_sqlite_after_a_prune_committed_since_it_read_answers_pruned(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: a prune commits between the re-send's read of the delivery and its insert."""
    org, _, _, delivery_id = await _old_failed_delivery(app)
    read = delivery_store.get

    async def read_then_prune(*args: Any) -> Any:
        found = await read(*args)
        assert await Pruner(app.db, WINDOWS).prune() == PruneCounts(1, 0, 1)
        return found

    monkeypatch.setattr(delivery_store, "get", read_then_prune)
    with pytest.raises(NotFound, match="removed by retention"):
        await app.webhooks.redeliver(org, delivery_id)
    assert await _count(app, Delivery) == 0


async def test_resend_of_a_ping_needs_no_event(app: Any) -> None:
    org = await org_id(app)
    hook, _ = await app.webhooks.create(
        org, nickname="p", url="http://127.0.0.1:9/h", topics=["file.created"]
    )
    ping = await app.webhooks.ping(org, hook.id)
    again = await app.webhooks.redeliver(org, ping.id)
    assert again.kind == "redelivery" and again.topic == "webhook.ping"
    async with app.db.session() as s:
        original, copy = await s.get(Delivery, ping.id), await s.get(Delivery, again.id)
        assert original is not None and copy is not None
        assert copy.event_id is None and copy.payload == original.payload


async def test_resend_after_its_webhook_was_deleted_since_it_read_answers_not_found(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The webhook is deleted between the re-send's read of the delivery and its insert: a
    clear 404, not a foreign-key error (a 500)."""
    org, hook_id, _, delivery_id = await _old_failed_delivery(app)
    read = delivery_store.get

    async def read_then_delete(*args: Any) -> Any:
        found = await read(*args)
        await app.webhooks.remove(org, hook_id)
        return found

    monkeypatch.setattr(delivery_store, "get", read_then_delete)
    with pytest.raises(NotFound, match="webhook .* was deleted"):
        await app.webhooks.redeliver(org, delivery_id)
    assert await _count(app, Delivery) == 0
