"""Pause and resume against what runs beside them: an event's fan-out, and results of sends in
flight. The races are PostgreSQL's (SQLite has one writer); each is made deterministic by
holding one transaction open by hand."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from typing import Any

import pytest
from aiohttp import web

from sftphook.events import EventRecord
from sftphook.store import deliveries as delivery_store
from sftphook.store import events as event_store
from sftphook.store.models import now_ms
from sftphook.webhooks.engine import DeliveryEngine
from sftphook.webhooks.fanout import fan_out_sync
from tests.conftest import serving
from tests.webhooks.conftest import file_event, org_id

WORKER = frozenset({"worker"})


def _record(connection, event: EventRecord) -> None:
    """What the recorder writes for one event: the event and its deliveries."""
    event_store.insert(connection, [event.as_row()])
    fan_out_sync(connection, [event])


@pytest.mark.parametrize("ordered", [False, True])
@pytest.mark.parametrize("deliver_held", [True, False])
async def test_event_recorded_while_a_pause_commits_is_held_until_resume(
    pg_settings, receiver, pg_app, deliver_held, ordered
):
    org = await org_id(pg_app)
    hook, _ = await pg_app.webhooks.create(
        org, nickname="p", url=receiver.url, topics=["file.created"], ordered=ordered
    )
    event = file_event(org)
    async with pg_app.db.engine.connect() as connection, connection.begin():
        # The event's fan-out reads the webhook as enabled; the pause commits before it does.
        await connection.run_sync(lambda sync: _record(sync, event))
        await pg_app.webhooks.pause(org, hook.id)

    engine = DeliveryEngine(pg_app.db, pg_settings.webhooks, pg_app.secret_box, pg_app.metrics)
    assert await engine.claim(10, now_ms()) == []  # nothing is sent while paused

    _, count = await pg_app.webhooks.resume(org, hook.id, deliver_held=deliver_held)
    assert count == 1  # held like the others
    (row,) = (await pg_app.webhooks.list_deliveries(org, hook.id))[0]
    if not deliver_held:
        assert row.status == "skipped"
        assert await engine.claim(10, now_ms()) == []
        return
    async with serving(pg_settings, WORKER):
        (got,) = await receiver.wait_for(1)
    assert got.json()["Id"] == event.id


async def _paused_in_flight(app, settings, receiver):
    """A delivery claimed and sent while its webhook is paused (so held), whose endpoint answers
    503 (a retry): the organization, the webhook, the engine and the attempt's result."""
    receiver.behaviour = _unavailable
    org = await org_id(app)
    hook, _ = await app.webhooks.create(
        org, nickname="f", url=receiver.url, topics=["file.created"]
    )
    await app.recorder.record(file_event(org))
    engine = DeliveryEngine(app.db, settings.webhooks, app.secret_box, app.metrics)
    (job,) = await engine.claim(10, now_ms())
    await app.webhooks.pause(org, hook.id)
    result = await engine.attempt(job)
    assert result.response is not None and result.response.status == 503
    return org, hook, engine, result


async def _unavailable(request, received):
    return web.Response(status=503)


async def _assert_stays_skipped(app, org, hook, engine, receiver, decisions) -> None:
    assert decisions == [None]  # superseded: not this result's to decide
    (row,) = (await app.webhooks.list_deliveries(org, hook.id))[0]
    _, attempts = await app.webhooks.get_delivery(org, row.id)
    assert row.status == "skipped"
    assert [a.response_status for a in attempts] == [503]  # the attempt is still logged
    await asyncio.sleep(0.3)  # past the retry the result asked for
    assert await engine.claim(10, now_ms()) == []
    assert len(receiver.requests) == 1


def _stop_in(
    monkeypatch: pytest.MonkeyPatch, name: str, *, before: bool = False
) -> tuple[asyncio.Event, asyncio.Event]:
    """Make `delivery_store.<name>` stop inside its caller's transaction, after its work (or
    before it), until the second event is set; the first is set when it stops there."""
    reached, proceed = asyncio.Event(), asyncio.Event()
    original = getattr(delivery_store, name)

    async def stopping(*args: Any) -> Any:
        if before:
            reached.set()
            await proceed.wait()
            return await original(*args)
        value = await original(*args)
        reached.set()
        await proceed.wait()  # the transaction stays open meanwhile
        return value

    monkeypatch.setattr(delivery_store, name, stopping)
    return reached, proceed


async def _record_during(
    stopped: tuple[asyncio.Event, asyncio.Event], change: Awaitable[Any], record: Awaitable[Any]
) -> tuple[Any, Any]:
    """Start `change` (a resume) until it stops (`_stop_in`), record a result meanwhile, let the
    change go on; both outcomes."""
    reached, proceed = stopped
    changing = asyncio.ensure_future(change)
    await reached.wait()
    recording = asyncio.ensure_future(record)
    await asyncio.sleep(0.3)  # the result's transaction reads and writes what it may now
    proceed.set()
    return await changing, await recording


async def test_a_result_does_not_bring_back_a_delivery_skipped_while_in_flight(
    settings, receiver, app
):
    org, hook, engine, result = await _paused_in_flight(app, settings, receiver)
    await app.webhooks.resume(org, hook.id, deliver_held=False)
    decisions = await engine.record([result])
    await _assert_stays_skipped(app, org, hook, engine, receiver, decisions)


async def test_a_result_recorded_while_a_resume_skips_does_not_bring_the_delivery_back(
    pg_settings, receiver, pg_app, monkeypatch
):
    org, hook, engine, result = await _paused_in_flight(pg_app, pg_settings, receiver)
    stopped = _stop_in(monkeypatch, "skip_held")
    resume = pg_app.webhooks.resume(org, hook.id, deliver_held=False)
    _, decisions = await _record_during(stopped, resume, engine.record([result]))
    await _assert_stays_skipped(pg_app, org, hook, engine, receiver, decisions)


async def test_a_result_recorded_while_a_resume_commits_does_not_stay_held(
    pg_settings, receiver, pg_app, monkeypatch
):
    org, hook, engine, result = await _paused_in_flight(pg_app, pg_settings, receiver)
    stopped = _stop_in(monkeypatch, "release_held")
    await _record_during(stopped, pg_app.webhooks.resume(org, hook.id), engine.record([result]))
    (row,) = (await pg_app.webhooks.list_deliveries(org, hook.id))[0]
    assert row.status == "retrying"  # not held on an enabled webhook

    receiver.behaviour = None  # answers 200
    async with serving(pg_settings, WORKER):
        await receiver.wait_for(2)
    assert receiver.requests[1].json()["Id"] == receiver.requests[0].json()["Id"]


@pytest.mark.parametrize(("status", "state"), [(400, "enabled"), (410, "paused")])
async def test_a_result_and_a_resume_wait_for_each_other_without_deadlock(
    pg_settings, receiver, pg_app, monkeypatch, status, state
):
    """A failed delivery changes its webhook's failure streak (and a 410 pauses it): the
    result's transaction writes the webhook's row as well as the delivery's, which a resume
    does too (in that order)."""
    org, hook, engine, result = await _paused_in_flight(pg_app, pg_settings, receiver)
    result.response = dataclasses.replace(result.response, status=status)  # failed at once
    # Stopped where the webhook's row is written, the deliveries' not yet.
    stopped = _stop_in(monkeypatch, "hold_active", before=True)
    resumed, (decision,) = await _record_during(
        stopped, pg_app.webhooks.resume(org, hook.id), engine.record([result])
    )
    _, count = resumed
    assert decision is not None and decision.verdict.value == "failed"
    (row,) = (await pg_app.webhooks.list_deliveries(org, hook.id))[0]
    assert row.status == "failed" and count == 1  # released, then decided by its answer
    assert (await pg_app.webhooks.get(org, hook.id)).state == state
