"""The delivery queue on PostgreSQL, as several nodes use it: SKIP LOCKED claims, NOTIFY wake-ups,
strict ordering across nodes."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from sqlalchemy import func, select, update

from sftphook.events import EventRecorder
from sftphook.store import Database
from sftphook.store.models import Delivery, now_ms
from sftphook.webhooks.engine import DeliveryEngine
from sftphook.webhooks.fanout import fan_out_sync
from tests.conftest import serving
from tests.webhooks.conftest import file_event, org_id


def _engine_on_own_pool(app, settings) -> DeliveryEngine:
    """An engine with its own connection pool, as another node has."""
    return DeliveryEngine(
        Database(settings.database_url), settings.webhooks, app.secret_box, app.metrics
    )


async def _record_many(app, org: str, count: int) -> None:
    """Through a grouped recorder, as an SFTP node records a burst."""
    recorder = EventRecorder(app.db)
    recorder.add_sync_listener(fan_out_sync)
    started = asyncio.Event()
    writer = asyncio.create_task(recorder.run(started))
    await started.wait()
    await asyncio.gather(
        *(recorder.record(file_event(org, path=f"in/{i}.csv")) for i in range(count))
    )
    await recorder.close()
    await writer


async def test_notify_wakes_workers_of_another_node(pg_settings, receiver, pg_app):
    org = await org_id(pg_app)
    await pg_app.webhooks.create(org, nickname="n", url=receiver.url, topics=["file.created"])
    async with serving(pg_settings, frozenset({"worker"})) as node:
        node.engine._safety = 60.0  # only a notification can wake it in time
        for _ in range(100):
            if node.engine.listening:
                break
            await asyncio.sleep(0.05)
        assert node.engine.listening
        t0 = time.monotonic()
        await pg_app.recorder.record(file_event(org))  # another App: its commit hook wakes no one
        await receiver.wait_for(1, within=5)
        assert time.monotonic() - t0 < 2


async def test_concurrent_claims_of_several_nodes_never_share_a_delivery(
    pg_settings, receiver, pg_app
):
    org = await org_id(pg_app)
    for name in ("a", "b"):
        await pg_app.webhooks.create(org, nickname=name, url=receiver.url, topics=["file.created"])
    await _record_many(pg_app, org, 150)  # 300 deliveries
    nodes = [_engine_on_own_pool(pg_app, pg_settings) for _ in range(4)]

    async def drain(engine: DeliveryEngine) -> list[str]:
        got: list[str] = []
        while batch := await engine.claim(16, now_ms()):
            got.extend(j.delivery_id for j in batch)
            await asyncio.sleep(0)
        return got

    try:
        claimed = await asyncio.gather(*(drain(n) for n in nodes))
    finally:
        for n in nodes:
            await n._db.close()
    every = [d for batch in claimed for d in batch]
    assert len(every) == len(set(every)) == 300
    assert sum(1 for batch in claimed if batch) >= 2  # the work was shared, not serialised


async def test_ordered_webhook_has_one_delivery_in_flight_across_nodes(
    pg_settings, receiver, pg_app
):
    org = await org_id(pg_app)
    hook, _ = await pg_app.webhooks.create(
        org, nickname="o", url=receiver.url, topics=["file.created"], ordered=True
    )
    await _record_many(pg_app, org, 20)
    nodes = [_engine_on_own_pool(pg_app, pg_settings) for _ in range(3)]
    try:
        rounds = await asyncio.gather(*(n.claim(10, now_ms()) for n in nodes for _ in range(3)))
        claimed = [j for batch in rounds for j in batch]
        assert len(claimed) == 1
        head = claimed[0]
        async with pg_app.db.session() as s:
            first = await s.scalar(
                select(Delivery.id)
                .where(Delivery.webhook_id == hook.id)
                .order_by(Delivery.sequence)
            )
        assert head.delivery_id == first

        # Another node's clock runs behind: an event it records later sorts before the one in
        # flight. It must still wait for the delivery in flight to be recorded.
        await pg_app.recorder.record(file_event(org, path="late.csv"))
        async with pg_app.db.transaction() as s:
            lowest = await s.scalar(select(func.min(Delivery.sequence)))
            await s.execute(
                update(Delivery)
                .where(Delivery.webhook_id == hook.id, Delivery.lease_owner.is_(None))
                .where(
                    Delivery.created_at == select(func.max(Delivery.created_at)).scalar_subquery()
                )
                .values(sequence=lowest - 1)
            )
        assert await nodes[1].claim(10, now_ms()) == []
    finally:
        for n in nodes:
            await n._db.close()


async def test_abandoned_claims_are_taken_by_another_node_after_the_lease(
    pg_settings, receiver, pg_app
):
    org = await org_id(pg_app)
    await pg_app.webhooks.create(org, nickname="l", url=receiver.url, topics=["file.created"])
    await _record_many(pg_app, org, 5)
    hooks = pg_settings.webhooks.model_copy(update={"lease_seconds": 1.0})
    doomed = DeliveryEngine(pg_app.db, hooks, pg_app.secret_box, pg_app.metrics)
    assert len(await doomed.claim(10, now_ms())) == 5
    assert await doomed.claim(10, now_ms()) == []
    await asyncio.sleep(1.1)
    survivor = _engine_on_own_pool(pg_app, pg_settings)
    try:
        assert len(await survivor.claim(10, now_ms())) == 5
    finally:
        await survivor._db.close()


async def test_ordered_webhook_is_sent_in_order_by_two_nodes(pg_settings, receiver, pg_app):
    concurrency = {"now": 0, "max": 0}

    async def jittery(request, received):
        concurrency["now"] += 1
        concurrency["max"] = max(concurrency["max"], concurrency["now"])
        try:
            await asyncio.sleep(0.002 * (len(receiver.requests) % 3))
            if len(receiver.requests) % 7 == 0:
                return web.Response(status=503)  # retried: the next waits for it
            return web.Response(text="ok")
        finally:
            concurrency["now"] -= 1

    receiver.behaviour = jittery
    org = await org_id(pg_app)
    hook, _ = await pg_app.webhooks.create(
        org, nickname="o", url=receiver.url, topics=["file.created"], ordered=True
    )
    worker = frozenset({"worker"})
    async with serving(pg_settings, worker), serving(pg_settings, worker):
        await _record_many(pg_app, org, 30)

        async def all_done() -> bool:
            async with pg_app.db.session() as s:
                done = await s.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.webhook_id == hook.id, Delivery.status == "succeeded")
                )
            return done == 30

        deadline = time.monotonic() + 30
        while not await all_done():
            assert time.monotonic() < deadline, "not every delivery succeeded in time"
            await asyncio.sleep(0.1)
    order: list[str] = []
    for r in receiver.requests:
        if not order or order[-1] != r.json()["Id"]:
            order.append(r.json()["Id"])
    async with pg_app.db.session() as s:
        rows = (await s.execute(select(Delivery.event_id).order_by(Delivery.sequence))).all()
    assert order == [r[0] for r in rows]
    assert concurrency["max"] == 1  # one in flight at a time, across both nodes
