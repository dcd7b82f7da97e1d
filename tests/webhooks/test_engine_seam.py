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
