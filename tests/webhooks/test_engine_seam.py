"""The engine through its transport seam: no sockets, a scripted transport."""

from __future__ import annotations

import random
from collections.abc import Mapping

from standardwebhooks import Webhook as StandardWebhook

from sftphook.webhooks import signing
from sftphook.webhooks.engine import DeliveryEngine
from sftphook.webhooks.sender import Response, TransportError
from tests.webhooks.conftest import file_event, org_id


class ScriptedTransport:
    def __init__(self, answers: list[Response | Exception]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, dict[str, str], bytes]] = []

    async def send(self, url: str, headers: Mapping[str, str], body: bytes) -> Response:
        self.sent.append((url, dict(headers), body))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def close(self) -> None:
        return None


async def test_claim_send_and_record_without_sockets(app):
    org = await org_id(app)
    hook, secret = await app.webhooks.create(
        org,
        nickname="seam",
        url="http://127.0.0.1:9/hook",
        topics=["file.created"],
        authorization_header="Token abc",
    )
    await app.recorder.record(file_event(org))
    transport = ScriptedTransport(
        [TransportError("connection refused"), Response(503, {"Retry-After": "7"}, b"busy")]
    )
    clock = {"now": 1_000_000}
    engine = DeliveryEngine(
        app.db,
        app.settings.webhooks,
        app.secret_box,
        app.metrics,
        transport=transport,
        rng=random.Random(0),
        clock=lambda: clock["now"],
    )
    (job,) = await engine.claim(10, 2_000_000_000_000)
    first = await engine.attempt(job)
    assert first.error == "connection refused" and first.response is None
    url, headers, body = transport.sent[0]
    assert url == hook.url and headers["Authorization"] == "Token abc"
    assert headers["X-Hub-Signature-256"] == signing.hub_signature(secret, body)
    StandardWebhook(secret).verify(body, headers)
    assert first.request_headers["Authorization"] == "***"
    (decision,) = await engine.record([first])
    assert decision is not None and decision.verdict == "retry"
    assert decision.next_attempt_at == clock["now"] + 200  # schedule[0] = 0.2 s, no jitter

    (job,) = await engine.claim(10, 2_000_000_000_000)
    assert job.attempt_number == 2
    second = await engine.attempt(job)
    (decision,) = await engine.record([second])
    assert decision.next_attempt_at == clock["now"] + 7000  # Retry-After wins
    view, attempts = await app.webhooks.get_delivery(org, job.delivery_id)
    assert view.status == "retrying" and view.attempt_count == 2
    assert [a.error for a in attempts] == ["connection refused", None]
    assert attempts[1].response_status == 503 and attempts[1].response_body == "busy"


async def test_a_webhook_whose_secret_cannot_be_read_does_not_hold_up_others(app):
    import os

    from sqlalchemy import update

    from sftphook.store.models import Webhook
    from sftphook.webhooks.crypto import SecretBox

    org = await org_id(app)
    broken, _ = await app.webhooks.create(
        org, nickname="broken", url="http://127.0.0.1:9/a", topics=["file.created"]
    )
    fine, _ = await app.webhooks.create(
        org, nickname="fine", url="http://127.0.0.1:9/b", topics=["file.created"]
    )
    other_key = SecretBox(os.urandom(32))
    async with app.db.transaction() as s:
        await s.execute(
            update(Webhook)
            .where(Webhook.id == broken.id)
            .values(secret_encrypted=other_key.encrypt("whsec_x"))
        )
    await app.recorder.record(file_event(org))
    engine = DeliveryEngine(
        app.db, app.settings.webhooks, app.secret_box, app.metrics, transport=ScriptedTransport([])
    )
    jobs = await engine.claim(10, 2_000_000_000_000)
    assert [j.webhook_id for j in jobs] == [fine.id]


def _engine(app, transport, **settings) -> DeliveryEngine:
    return DeliveryEngine(
        app.db,
        app.settings.webhooks.model_copy(update=settings),
        app.secret_box,
        app.metrics,
        transport=transport,
        rng=random.Random(0),
    )


async def _webhook_row(app, webhook_id: str):
    from sqlalchemy import select

    from sftphook.store.models import Webhook

    async with app.db.session() as s:
        row = await s.execute(
            select(Webhook.state, Webhook.paused_reason, Webhook.failure_streak).where(
                Webhook.id == webhook_id
            )
        )
        return row.one()


async def _hook_with_events(app, org: str, nickname: str, count: int):
    """A webhook on file.created at a closed port, and `count` events for it (paths in/0.csv, …;
    one event: the default path)."""
    hook, _ = await app.webhooks.create(
        org, nickname=nickname, url="http://127.0.0.1:9/hook", topics=["file.created"]
    )
    for i in range(count):
        await app.recorder.record(
            file_event(org, path=f"in/{i}.csv") if count > 1 else file_event(org)
        )
    return hook


async def _statuses(app, org: str, webhook_id: str) -> list[str]:
    rows, _ = await app.webhooks.list_deliveries(org, webhook_id)
    return sorted(r.status for r in rows)


async def test_failures_and_successes_keep_the_failure_streak(app):
    org = await org_id(app)
    hook = await _hook_with_events(app, org, "streak", 3)
    refused, fine = Response(400, {}, b"no"), Response(200, {}, b"ok")
    engine = _engine(app, ScriptedTransport([refused, fine, refused]), auto_pause_after=2)
    paused: list[str] = []

    async def hook_called(session, webhook) -> None:
        paused.append(webhook.id)

    engine.paused_hook = hook_called
    jobs = await engine.claim(10, 2_000_000_000_000)
    assert len(jobs) == 3
    results = [await engine.attempt(job) for job in jobs]
    await engine.record(results[:1])
    assert (await _webhook_row(app, hook.id)).failure_streak == 1
    await engine.record(results[1:])  # a success resets the streak, the failure after counts 1
    row = await _webhook_row(app, hook.id)
    assert (row.state, row.failure_streak) == ("enabled", 1)
    assert paused == []
    assert await _statuses(app, org, hook.id) == ["failed", "failed", "succeeded"]


async def test_a_batch_that_pauses_a_webhook_holds_the_rest_and_calls_the_hook(app):
    org = await org_id(app)
    hook = await _hook_with_events(app, org, "pauses", 4)
    refused = Response(400, {}, b"no")
    engine = _engine(app, ScriptedTransport([refused] * 3), auto_pause_after=2)
    paused: list[tuple[str, str | None]] = []

    async def hook_called(session, webhook) -> None:
        paused.append((webhook.id, webhook.paused_reason))

    engine.paused_hook = hook_called
    jobs = await engine.claim(3, 2_000_000_000_000)
    results = [await engine.attempt(job) for job in jobs]
    decisions = await engine.record(results)
    assert [d.verdict for d in decisions] == ["failed"] * 3
    row = await _webhook_row(app, hook.id)
    assert row.state == "paused" and row.failure_streak == 3
    assert paused == [(hook.id, "paused after 2 consecutive failed deliveries")]
    # The fourth, never claimed, waits for the webhook to be resumed.
    assert await _statuses(app, org, hook.id) == ["failed", "failed", "failed", "held"]
    view, attempts = await app.webhooks.get_delivery(org, jobs[0].delivery_id)
    assert len(attempts) == 1 and attempts[0].response_status == 400


async def test_a_batch_committed_whose_answer_was_lost_is_not_recorded_twice(app):
    from sqlalchemy import exc

    org = await org_id(app)
    await _hook_with_events(app, org, "lost", 1)
    engine = _engine(app, ScriptedTransport([Response(200, {}, b"ok")]))
    (job,) = await engine.claim(10, 2_000_000_000_000)
    result = await engine.attempt(job)
    record = engine.record
    calls = 0

    async def committed_then_lost(batch):
        nonlocal calls
        calls += 1
        await record(batch)
        raise exc.OperationalError("COMMIT", {}, Exception("database is locked"))

    engine.record = committed_then_lost  # type: ignore[method-assign]
    assert await engine._record_retrying([result]) == [None]
    assert calls == 1
    view, attempts = await app.webhooks.get_delivery(org, job.delivery_id)
    assert view.status == "succeeded" and len(attempts) == 1


async def test_the_attempt_log_names_the_host_and_is_not_built_when_info_is_off(
    app, caplog, monkeypatch
):
    import logging

    org = await org_id(app)
    await _hook_with_events(app, org, "log", 2)
    ok = Response(200, {}, b"ok")
    engine = _engine(app, ScriptedTransport([ok, ok]))
    first, second = await engine.claim(10, 2_000_000_000_000)
    with caplog.at_level(logging.INFO, logger="sftphook.webhooks.engine"):
        await engine.record([await engine.attempt(first)])
    (line,) = [r.getMessage() for r in caplog.records if "webhook attempt" in r.getMessage()]
    assert "host=127.0.0.1" in line and "result=succeeded" in line
    built: list[str] = []
    monkeypatch.setattr(engine, "_log_attempt", lambda result, _: built.append(result.attempt_id))
    with caplog.at_level(logging.WARNING, logger="sftphook.webhooks.engine"):
        await engine.record([await engine.attempt(second)])
    assert built == []
