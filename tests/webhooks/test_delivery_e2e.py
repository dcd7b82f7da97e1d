"""The engine against real HTTP receivers on 127.0.0.1: payloads, signatures, retries, pauses."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web
from standardwebhooks import Webhook as StandardWebhook

from sftphook.webhooks import signing
from tests.conftest import serving
from tests.webhooks.conftest import file_event, org_id, wait_until

WORKER = frozenset({"worker"})


async def _delivery_status(app, org, delivery_id):
    view, attempts = await app.webhooks.get_delivery(org, delivery_id)
    return view, attempts


async def _only_delivery(app, org, webhook_id):
    rows, _ = await app.webhooks.list_deliveries(org, webhook_id)
    assert len(rows) == 1
    return rows[0]


async def test_file_event_arrives_signed_with_sftptogo_payload(settings, receiver):
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        hook, secret = await app.webhooks.create(
            org,
            nickname="ingest",
            url=receiver.url,
            topics=["file.created"],
            authorization_header="Bearer s3cr3t-token",
        )
        event = file_event(org, sha256="ab" * 32)
        await app.recorder.record(event)
        (got,) = await receiver.wait_for(1)
        body = got.body
        data = json.loads(body)
        assert data["Id"] == event.id and data["Topic"] == "file.created"
        assert data["Data"] == {
            "Path": "inbound/invoice+2026%2B1.csv",
            "Size": 42,
            "Sha256": "ab" * 32,
        }
        assert data["Actor"] == {"Type": "User", "Id": "partner-acme"}
        assert data["Metadata"]["Webhook"]["Id"] == hook.id
        assert data["Metadata"]["Event"] == {"Id": event.id, "Topic": "file.created"}
        assert got.headers["Authorization"] == "Bearer s3cr3t-token"
        assert got.headers["Content-Type"] == "application/json"
        assert got.headers["User-Agent"].startswith("sftphook/")
        assert got.headers["X-Hub-Signature"] == signing.hub_signature(secret, body)
        assert got.headers["X-Hub-Signature-256"] == got.headers["X-Hub-Signature"]
        StandardWebhook(secret).verify(body, got.headers)
        delivery_id = data["Metadata"]["Delivery"]["Id"]
        assert got.headers["webhook-id"] == delivery_id

        async def succeeded():
            view, _ = await _delivery_status(app, org, delivery_id)
            return view.status == "succeeded"

        await wait_until(succeeded)
        view, attempts = await _delivery_status(app, org, delivery_id)
        assert view.attempt_count == 1 and len(attempts) == 1
        attempt = attempts[0]
        assert attempt.response_status == 200 and attempt.response_body == "ok"
        assert attempt.request_headers["Authorization"] == "***"
        assert "s3cr3t" not in json.dumps(attempt.request_headers)
        assert attempt.request_body == body.decode()
        assert attempt.duration_ms is not None and attempt.duration_ms >= 0


async def test_500_then_200_is_retried_and_each_attempt_has_its_own_attempt_id(settings, receiver):
    answers = iter([500, 503, 200])

    async def flaky(request, received):
        return web.Response(status=next(answers), text="nope")

    receiver.behaviour = flaky
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        hook, secret = await app.webhooks.create(
            org, nickname="flaky", url=receiver.url, topics=["file.created"]
        )
        await app.recorder.record(file_event(org))
        got = await receiver.wait_for(3)
        # On the 0.2 s schedule, not on the 2 s safety timer.
        assert got[1].at - got[0].at < 1.5 and got[2].at - got[1].at < 1.5
        ids = {r.headers["webhook-id"] for r in got}
        assert len(ids) == 1  # the same delivery on every retry
        attempt_ids = {json.loads(r.body)["Metadata"]["Attempt"]["Id"] for r in got}
        assert len(attempt_ids) == 3
        for r in got:
            StandardWebhook(secret).verify(r.body, r.headers)

        async def done():
            d = await _only_delivery(app, org, hook.id)
            return d.status == "succeeded"

        await wait_until(done)
        d = await _only_delivery(app, org, hook.id)
        _, attempts = await app.webhooks.get_delivery(org, d.id)
        assert [a.response_status for a in attempts] == [500, 503, 200]
        assert [a.number for a in attempts] == [1, 2, 3]


async def test_event_while_receiver_is_down_arrives_once_it_is_up(settings, receiver):
    port = receiver.port
    await receiver.stop()
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org, nickname="later", url=f"http://127.0.0.1:{port}/hook", topics=["file.created"]
        )
        events = [file_event(org, path=f"f{i}.csv") for i in range(5)]
        for e in events:
            await app.recorder.record(e)

        async def retrying():
            rows, _ = await app.webhooks.list_deliveries(org, hook.id, statuses=["retrying"])
            return len(rows) == 5

        await wait_until(retrying)
        await receiver.start(port)
        got = await receiver.wait_for(5)
        await asyncio.sleep(0.3)
        assert sorted(json.loads(r.body)["Id"] for r in got) == sorted(e.id for e in events)
        assert len(receiver.requests) == 5
