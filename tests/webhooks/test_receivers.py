"""Receivers that misbehave: the engine stays responsive and records what happened."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import trustme
from aiohttp import web
from standardwebhooks import Webhook as StandardWebhook

from sftphook.store.models import Delivery
from tests.conftest import serving
from tests.webhooks.conftest import Receiver, file_event, org_id, wait_until

WORKER = frozenset({"worker"})


async def _final(app, org, hook_id, count=1, within=15.0):
    async def done():
        rows, _ = await app.webhooks.list_deliveries(org, hook_id, limit=200)
        return len(rows) >= count and all(
            r.status in ("succeeded", "failed", "held", "skipped") for r in rows
        )

    await wait_until(done, within)
    rows, _ = await app.webhooks.list_deliveries(org, hook_id, limit=200)
    return rows


async def test_hanging_receiver_times_out_and_others_still_get_theirs(settings, receiver):
    hang = Receiver()

    async def never(request, received):
        await asyncio.sleep(3600)
        return web.Response()

    hang.behaviour = never
    await hang.start()
    hooks = settings.webhooks.model_copy(update={"timeout": 0.5, "retry_schedule": []})
    settings = settings.model_copy(update={"webhooks": hooks})
    try:
        async with serving(settings, WORKER) as app:
            org = await org_id(app)
            slow, _ = await app.webhooks.create(
                org, nickname="slow", url=hang.url, topics=["file.created"]
            )
            fast, _ = await app.webhooks.create(
                org, nickname="fast", url=receiver.url, topics=["file.created"]
            )
            t0 = time.monotonic()
            await app.recorder.record(file_event(org))
            await receiver.wait_for(1)
            assert time.monotonic() - t0 < 0.5  # not stuck behind the hanging one
            (row,) = await _final(app, org, slow.id)
            assert row.status == "failed" and "timed out" in (row.last_error or "")
            _, attempts = await app.webhooks.get_delivery(org, row.id)
            assert attempts[0].error and attempts[0].response_status is None
    finally:
        await hang.stop()


async def test_connection_reset_is_retried(settings, receiver):
    calls = {"n": 0}

    async def reset_first(request, received):
        calls["n"] += 1
        if calls["n"] == 1:
            assert request.transport is not None
            request.transport.abort()
            await asyncio.sleep(1)
        return web.Response(text="ok")

    receiver.behaviour = reset_first
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org, nickname="r", url=receiver.url, topics=["file.created"]
        )
        await app.recorder.record(file_event(org))
        (row,) = await _final(app, org, hook.id)
        assert row.status == "succeeded" and row.attempt_count == 2
        _, attempts = await app.webhooks.get_delivery(org, row.id)
        assert attempts[0].error and attempts[1].response_status == 200


async def test_429_retry_after_is_honoured(settings, receiver):
    async def busy_once(request, received):
        if len(receiver.requests) == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(text="ok")

    receiver.behaviour = busy_once
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org, nickname="r", url=receiver.url, topics=["file.created"]
        )
        await app.recorder.record(file_event(org))
        got = await receiver.wait_for(2)
        gap = got[1].at - got[0].at
        assert 0.9 <= gap < 2.5  # Retry-After (1 s), not the 0.2 s schedule
        (row,) = await _final(app, org, hook.id)
        assert row.status == "succeeded"


async def test_410_fails_the_delivery_and_pauses_the_webhook(settings, receiver):
    async def gone(request, received):
        return web.Response(status=410)

    receiver.behaviour = gone
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org, nickname="g", url=receiver.url, topics=["file.created"]
        )
        await app.recorder.record(file_event(org))
        (row,) = await _final(app, org, hook.id)
        assert row.status == "failed" and row.attempt_count == 1
        view = await app.webhooks.get(org, hook.id)
        assert view.state == "paused" and "410" in (view.paused_reason or "")
        await app.recorder.record(file_event(org, path="later.csv"))
        rows, _ = await app.webhooks.list_deliveries(org, hook.id, statuses=["held"])
        assert len(rows) == 1
        await asyncio.sleep(0.3)
        assert len(receiver.requests) == 1


async def test_redirect_is_not_followed_and_fails_at_once(settings, receiver):
    async def moved(request, received):
        if request.path == "/hook":
            raise web.HTTPFound("/elsewhere")
        return web.Response(text="should never be reached")

    receiver.behaviour = moved
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org, nickname="m", url=receiver.url, topics=["file.created"]
        )
        await app.recorder.record(file_event(org))
        (row,) = await _final(app, org, hook.id)
        assert row.status == "failed" and row.last_response_status == 302
        assert [r.path for r in receiver.requests] == ["/hook"]


async def test_2gb_response_body_is_cut_at_64kib(settings, receiver):
    chunk = b"x" * (1024 * 1024)

    async def huge(request, received):
        resp = web.StreamResponse(headers={"Content-Length": str(2 * 1024**3)})
        await resp.prepare(request)
        try:
            for _ in range(2048):
                await resp.write(chunk)
        except (ConnectionResetError, RuntimeError):
            pass
        return resp

    receiver.behaviour = huge
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org, nickname="big", url=receiver.url, topics=["file.created"]
        )
        t0 = time.monotonic()
        await app.recorder.record(file_event(org))
        (row,) = await _final(app, org, hook.id)
        assert time.monotonic() - t0 < 1.5
        assert row.status == "succeeded"
        _, attempts = await app.webhooks.get_delivery(org, row.id)
        assert len(attempts[0].response_body or "") == 64 * 1024


async def test_auto_pause_after_consecutive_failures_but_not_for_pings(settings, receiver):
    async def broken(request, received):
        return web.Response(status=400)

    receiver.behaviour = broken
    hooks = settings.webhooks.model_copy(update={"auto_pause_after": 3})
    settings = settings.model_copy(update={"webhooks": hooks})
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org, nickname="b", url=receiver.url, topics=["file.created"]
        )
        for _ in range(4):  # pings never count
            await app.webhooks.ping(org, hook.id)
        await _final(app, org, hook.id, count=4)
        assert (await app.webhooks.get(org, hook.id)).state == "enabled"
        for i in range(2):
            await app.recorder.record(file_event(org, path=f"{i}.csv"))
        await _final(app, org, hook.id, count=6)
        view = await app.webhooks.get(org, hook.id)
        assert view.state == "enabled" and view.failure_streak == 2
        await app.recorder.record(file_event(org, path="third.csv"))
        await _final(app, org, hook.id, count=7)
        view = await app.webhooks.get(org, hook.id)
        assert view.state == "paused" and "3 consecutive" in (view.paused_reason or "")


async def test_success_resets_the_failure_streak(settings, receiver):
    answers = iter([400, 400, 200, 400, 400])

    async def mixed(request, received):
        return web.Response(status=next(answers))

    receiver.behaviour = mixed
    hooks = settings.webhooks.model_copy(update={"auto_pause_after": 3})
    settings = settings.model_copy(update={"webhooks": hooks})
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org, nickname="b", url=receiver.url, topics=["file.created"], ordered=True
        )
        for i in range(5):
            await app.recorder.record(file_event(org, path=f"{i}.csv"))
        await _final(app, org, hook.id, count=5)
        view = await app.webhooks.get(org, hook.id)
        assert view.state == "enabled" and view.failure_streak == 2


async def test_ordered_webhook_receives_events_in_order_under_load(settings, receiver):
    async def jittery(request, received):
        await asyncio.sleep(0.001 * (len(receiver.requests) % 3))
        if len(receiver.requests) % 7 == 0:
            return web.Response(status=503)
        return web.Response(text="ok")

    receiver.behaviour = jittery
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org, nickname="o", url=receiver.url, topics=["file.created"], ordered=True
        )
        events = [file_event(org, path=f"{i:03}.csv") for i in range(30)]
        await asyncio.gather(*(app.recorder.record(e) for e in events))
        await _final(app, org, hook.id, count=30, within=30)
        succeeded_order = []
        for r in receiver.requests:
            eid = r.json()["Id"]
            if not succeeded_order or succeeded_order[-1] != eid:
                succeeded_order.append(eid)
        async with app.db.session() as s:
            from sqlalchemy import select

            rows = (await s.execute(select(Delivery.event_id).order_by(Delivery.sequence))).all()
        assert succeeded_order == [r[0] for r in rows]
        # One in flight: a request only starts after the previous one got its answer.
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 30


async def test_https_with_a_custom_ca_is_verified(settings, tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server_ctx = __import__("ssl").create_default_context(__import__("ssl").Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    secure = Receiver(ssl_context=server_ctx, host="localhost")
    await secure.start()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    trusting = settings.model_copy(
        update={"webhooks": settings.webhooks.model_copy(update={"ca_bundle": bundle})}
    )
    no_retry = {"retry_schedule": []}
    untrusting = settings.model_copy(
        update={"webhooks": settings.webhooks.model_copy(update=no_retry)}
    )
    try:
        async with serving(untrusting, WORKER) as app:
            org = await org_id(app)
            hook, _ = await app.webhooks.create(
                org, nickname="tls", url=secure.url, topics=["file.created"]
            )
            await app.recorder.record(file_event(org))
            (row,) = await _final(app, org, hook.id)
            assert row.status == "failed" and "certificate" in (row.last_error or "").lower()
            assert secure.requests == []
        async with serving(trusting, WORKER) as app:
            await app.webhooks.redeliver(org, row.id)
            (got,) = await secure.wait_for(1)
            _, secret = await app.webhooks.rotate_secret(org, hook.id)
            await app.webhooks.ping(org, hook.id)
            got = await secure.wait_for(2)
            assert got[1].json()["Topic"] == "webhook.ping"
            StandardWebhook(secret).verify(got[1].body, got[1].headers)
    finally:
        await secure.stop()


async def test_rotation_grace_period_signs_with_both_secrets(settings, receiver):
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        hook, old = await app.webhooks.create(
            org, nickname="rot", url=receiver.url, topics=["file.created"]
        )
        _, new = await app.webhooks.rotate_secret(org, hook.id, grace_seconds=60)
        await app.webhooks.ping(org, hook.id)
        (got,) = await receiver.wait_for(1)
        assert len(got.headers["webhook-signature"].split()) == 2
        StandardWebhook(new).verify(got.body, got.headers)
        StandardWebhook(old).verify(got.body, got.headers)
        data = json.loads(got.body)
        assert data["Data"]["Id"] == hook.id and "whsec" not in got.body.decode()

        _, newest = await app.webhooks.rotate_secret(org, hook.id)
        await app.webhooks.ping(org, hook.id)
        got = (await receiver.wait_for(2))[1]
        assert len(got.headers["webhook-signature"].split()) == 1
        StandardWebhook(newest).verify(got.body, got.headers)
        try:
            StandardWebhook(new).verify(got.body, got.headers)
        except Exception:
            pass
        else:
            raise AssertionError("the replaced secret still verifies")


async def test_a_ca_bundle_that_cannot_be_read_stops_the_start(settings, tmp_path):
    bad = tmp_path / "missing.pem"
    broken = settings.model_copy(
        update={"webhooks": settings.webhooks.model_copy(update={"ca_bundle": bad})}
    )
    with pytest.raises(BaseException) as caught:
        async with serving(broken, WORKER):
            pass
    assert "ca_bundle" in repr(caught.value) or "ca_bundle" in str(caught.value.__cause__)
