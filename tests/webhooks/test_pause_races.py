"""Pause and resume against what runs beside them on PostgreSQL: an event's fan-out, and results
of sends in flight. Each race is made deterministic by holding one transaction open by hand."""

from __future__ import annotations

import pytest

from sftphook.events import EventRecord
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
