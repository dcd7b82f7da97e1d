"""The service behind the API and the CLI: fan-out rules, the delivery log, re-sends."""

from __future__ import annotations

from aiohttp import web

from sftphook.events import Topic
from sftphook.store.models import now_ms
from tests.conftest import serving
from tests.webhooks.conftest import file_event, org_id, wait_until


async def test_fan_out_follows_topics_and_filters(app, receiver):
    org = await org_id(app)
    inbound, _ = await app.webhooks.create(
        org,
        nickname="inbound csv",
        url=receiver.url,
        topics=["file.created", "file.deleted"],
        filter=[
            {"field": "Path", "operator": "starts_with", "value": "inbound/"},
            {"field": "Path", "operator": "matches", "value": r"\.csv$"},
        ],
    )
    downloads, _ = await app.webhooks.create(
        org, nickname="downloads", url=receiver.url, topics=["file.downloaded"]
    )
    await app.recorder.record(file_event(org, path="inbound/a.csv"))
    await app.recorder.record(file_event(org, path="inbound/a.xml"))
    await app.recorder.record(file_event(org, path="outbound/a.csv"))
    await app.recorder.record(file_event(org, path="inbound/b.csv", topic=Topic.FILE_DELETED))
    await app.recorder.record(file_event(org, path="x.bin", topic=Topic.FILE_DOWNLOADED))
    rows, _ = await app.webhooks.list_deliveries(org, inbound.id)
    assert sorted(r.topic for r in rows) == ["file.created", "file.deleted"]
    rows, _ = await app.webhooks.list_deliveries(org, downloads.id)
    assert [r.topic for r in rows] == ["file.downloaded"]


async def test_delivery_log_pages_and_filters(app, receiver):
    org = await org_id(app)
    hook, _ = await app.webhooks.create(
        org, nickname="p", url=receiver.url, topics=["file.created", "file.deleted"]
    )
    start = now_ms()
    for i in range(7):
        await app.recorder.record(file_event(org, path=f"{i}"))
    await app.recorder.record(file_event(org, path="gone", topic=Topic.FILE_DELETED))
    seen, cursor = [], None
    while True:
        page, cursor = await app.webhooks.list_deliveries(org, hook.id, limit=3, cursor=cursor)
        seen.extend(page)
        if cursor is None:
            break
    assert len(seen) == 8 and len({d.id for d in seen}) == 8
    assert [d.created_at for d in seen] == sorted((d.created_at for d in seen), reverse=True)
    deleted, _ = await app.webhooks.list_deliveries(org, hook.id, topic="file.deleted")
    assert len(deleted) == 1
    none, _ = await app.webhooks.list_deliveries(org, hook.id, until=start)
    assert none == []


async def test_resends_do_not_count_toward_auto_pause_and_bulk_resend_picks_failed(
    settings, receiver
):
    answers = {"fail": True}

    async def switch(request, received):
        return web.Response(status=400 if answers["fail"] else 200)

    receiver.behaviour = switch
    hooks = settings.webhooks.model_copy(update={"auto_pause_after": 3})
    settings = settings.model_copy(update={"webhooks": hooks})
    async with serving(settings, frozenset({"worker"})) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org, nickname="r", url=receiver.url, topics=["file.created"]
        )
        for i in range(2):
            await app.recorder.record(file_event(org, path=f"{i}.csv"))

        async def settled(count):
            rows, _ = await app.webhooks.list_deliveries(org, hook.id)
            return len(rows) == count and all(r.status in ("succeeded", "failed") for r in rows)

        await wait_until(lambda: settled(2))
        failed, _ = await app.webhooks.list_deliveries(org, hook.id, statuses=["failed"])
        for row in failed:  # manual re-sends that fail again
            await app.webhooks.redeliver(org, row.id)
        await wait_until(lambda: settled(4))
        view = await app.webhooks.get(org, hook.id)
        assert view.state == "enabled" and view.failure_streak == 2

        answers["fail"] = False
        progress = []
        ids = await app.webhooks.redeliver_failed(
            org, hook.id, progress=lambda done, total: progress.append((done, total))
        )
        assert len(ids) == 4 and progress[-1] == (4, 4)
        await wait_until(lambda: settled(8))
        for new_id in ids:
            view, attempts = await app.webhooks.get_delivery(org, new_id)
            assert view.kind == "redelivery" and view.status == "succeeded"
        bodies = {r.json()["Id"] for r in receiver.requests}
        assert len(bodies) == 2  # the same two events, sent again


async def test_completed_deliveries_past_retention_are_pruned(app, receiver):
    from sqlalchemy import update

    from sftphook.retention import Pruner
    from sftphook.store.models import Delivery

    org = await org_id(app)
    hook, _ = await app.webhooks.create(
        org, nickname="old", url=receiver.url, topics=["file.created"]
    )
    for i in range(3):
        await app.recorder.record(file_event(org, path=f"{i}"))
    rows, _ = await app.webhooks.list_deliveries(org, hook.id)
    old = now_ms() - 31 * 86_400_000
    async with app.db.transaction() as s:
        await s.execute(
            update(Delivery)
            .where(Delivery.id.in_([rows[0].id, rows[1].id]))
            .values(created_at=old, updated_at=old, status="succeeded")
        )
        # Old but not finished: kept.
        await s.execute(
            update(Delivery).where(Delivery.id == rows[2].id).values(created_at=old, updated_at=old)
        )
    removed = await Pruner(app.db, app.settings.retention).prune()
    assert removed.deliveries == 2
    left, _ = await app.webhooks.list_deliveries(org, hook.id)
    assert [d.id for d in left] == [rows[2].id]


async def test_an_update_that_changes_nothing_leaves_no_trace(app, receiver):
    # `PATCH {}`, or a form saved as it was: no new updated_at, no "changed: []" audit line.
    org = await org_id(app)
    hook, _ = await app.webhooks.create(
        org, nickname="same", url=receiver.url, topics=["file.created"]
    )
    for unchanged in ({}, {"nickname": "same", "topics": ["file.created"], "ordered": False}):
        after = await app.webhooks.update(org, hook.id, **unchanged)
        assert after.updated_at == hook.updated_at
    renamed = await app.webhooks.update(org, hook.id, nickname="renamed")
    assert renamed.updated_at >= hook.updated_at and renamed.nickname == "renamed"
    entries, _ = await app.audit.list(org, actions=["webhook.updated"])
    assert [e.details["changed"] for e in entries] == [["nickname"]]
