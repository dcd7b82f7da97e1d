"""Retention prunes exactly what is past its window, and never an event still owed."""

from __future__ import annotations

from sqlalchemy import func, select

from sftphook.config import RetentionSettings
from sftphook.retention import DAY_MS, Pruner
from sftphook.store.models import Attempt, Delivery, Event, Webhook

NOW = 1_800_000_000_000


async def _seed(app) -> dict[str, str]:
    org = await app.accounts.resolve_organization(None)
    async with app.db.transaction() as s:
        hook = Webhook(
            organization_id=org.id,
            nickname="h",
            url="https://example.com/",
            topics=["file.created"],
            secret_encrypted="x",
        )
        s.add(hook)
        await s.flush()

        def event(name: str, age_days: float) -> Event:
            e = Event(
                organization_id=org.id,
                topic="file.created",
                actor_id="u",
                path=name,
                created_at=NOW - int(age_days * DAY_MS),
            )
            s.add(e)
            return e

        def delivery(e: Event, status: str, age_days: float) -> Delivery:
            d = Delivery(
                organization_id=org.id,
                webhook_id=hook.id,
                event_id=e.id,
                topic="file.created",
                status=status,
                created_at=NOW - int(age_days * DAY_MS),
                updated_at=NOW - int(age_days * DAY_MS),
            )
            s.add(d)
            return d

        fresh = event("fresh", 1)
        old_done = event("old-done", 100)
        old_owed = event("old-owed", 100)
        middle = event("middle", 40)
        await s.flush()
        keep = delivery(fresh, "succeeded", 1)
        gone = delivery(middle, "failed", 40)
        owed = delivery(old_owed, "retrying", 100)
        done = delivery(old_done, "succeeded", 100)
        await s.flush()
        for d in (keep, gone, done):
            s.add(Attempt(delivery_id=d.id, request_url="https://example.com/"))
    return {"keep": keep.id, "gone": gone.id, "owed": owed.id, "done": done.id}


async def _count(app, model) -> int:
    async with app.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_prune_removes_exactly_what_is_past_the_windows(app):
    ids = await _seed(app)
    pruner = Pruner(app.db, RetentionSettings(deliveries_days=30, events_days=90), batch=1)

    preview = await pruner.preview(NOW)
    assert (preview.deliveries, preview.attempts, preview.events) == (2, 2, 1)
    assert await _count(app, Delivery) == 4  # a preview changes nothing

    removed = await pruner.prune(NOW)
    assert (removed.deliveries, removed.attempts, removed.events) == (2, 2, 1)
    async with app.db.session() as s:
        left = set(await s.scalars(select(Delivery.id)))
        paths = set(await s.scalars(select(Event.path)))
    assert left == {ids["keep"], ids["owed"]}
    # The 100-day-old event whose delivery is still retrying stays; so do the younger ones.
    assert paths == {"fresh", "middle", "old-owed"}
    assert await _count(app, Attempt) == 1


async def test_prune_twice_removes_nothing_more(app):
    await _seed(app)
    pruner = Pruner(app.db, RetentionSettings(deliveries_days=30, events_days=90))
    await pruner.prune(NOW)
    again = await pruner.prune(NOW)
    assert again.total == 0
