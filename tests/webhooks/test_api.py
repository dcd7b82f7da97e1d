"""REST management of webhooks: secrets shown once, bad input refused with problem+json."""

from __future__ import annotations

import aiohttp
import pytest
from sqlalchemy import func, select

from sftphook.config import Settings
from sftphook.store.models import Delivery, Webhook
from tests.conftest import serving
from tests.webhooks.conftest import file_event, org_id, wait_until

HTTP = frozenset({"http"})


class Api:
    def __init__(self, base: str, token: str, client: aiohttp.ClientSession) -> None:
        self.base, self.token, self.client = base, token, client

    async def call(self, method: str, path: str, json=None, token: str | None = None, **params):
        headers = {"Authorization": f"Bearer {token or self.token}"}
        async with self.client.request(
            method, self.base + path, json=json, headers=headers, params=params or None
        ) as resp:
            text = await resp.text()
            ctype = resp.headers.get("Content-Type", "")
            body = await resp.json(content_type=None) if text and "json" in ctype else text
            return resp.status, ctype, body


@pytest.fixture
async def api(settings):
    async with serving(settings, frozenset({"http", "worker"})) as app:
        org = await org_id(app)
        _, token = await app.accounts.create_token(org, "test")
        async with aiohttp.ClientSession() as client:
            yield app, Api(f"http://127.0.0.1:{app.http_port}/api/v1", token, client)


async def _count(app, model) -> int:
    async with app.db.session() as s:
        return await s.scalar(select(func.count()).select_from(model))


async def test_create_shows_the_secret_once_and_masks_the_authorization(api, receiver):
    app, client = api
    status, _, created = await client.call(
        "POST",
        "/webhooks",
        {
            "nickname": "ingest",
            "url": receiver.url,
            "topics": ["file.created", "file.deleted"],
            "authorization_header": "Bearer top-secret-value",
            "filter": [{"field": "Path", "operator": "starts_with", "value": "inbound/"}],
        },
    )
    assert status == 201
    secret = created["signing_secret"]
    assert secret.startswith("whsec_")
    assert created["authorization_header"] == "Bearer ***"
    hook_id = created["id"]
    for path in ("/webhooks", f"/webhooks/{hook_id}"):
        status, _, body = await client.call("GET", path)
        assert status == 200
        assert secret not in str(body) and "top-secret-value" not in str(body)
    status, _, body = await client.call("PATCH", f"/webhooks/{hook_id}", {"nickname": "renamed"})
    assert status == 200 and body["nickname"] == "renamed"
    assert body["authorization_header"] == "Bearer ***" and "signing_secret" not in body
    status, _, body = await client.call(
        "PATCH", f"/webhooks/{hook_id}", {"authorization_header": None}
    )
    assert body["authorization_header"] is None
    # Secrets are encrypted at rest.
    async with app.db.session() as s:
        row = await s.get(Webhook, hook_id)
    assert secret not in row.secret_encrypted

    status, _, rotated = await client.call(
        "POST", f"/webhooks/{hook_id}/rotate-secret", {"grace_seconds": 60}
    )
    assert status == 200 and rotated["signing_secret"] not in (secret, None)
    assert rotated["previous_secret_expires_at"] is not None

    status, _, ping = await client.call("POST", f"/webhooks/{hook_id}/ping")
    assert status == 202 and ping["topic"] == "webhook.ping"
    await receiver.wait_for(1)

    async def ping_done():
        _, _, d = await client.call("GET", f"/deliveries/{ping['id']}")
        return d["status"] == "succeeded"

    await wait_until(ping_done)
    status, _, detail = await client.call("GET", f"/deliveries/{ping['id']}")
    assert detail["attempts"][0]["response_status"] == 200
    status, _, page = await client.call(
        "GET", f"/webhooks/{hook_id}/deliveries", topic="webhook.ping"
    )
    assert [d["id"] for d in page["items"]] == [ping["id"]]

    status, _, _ = await client.call("DELETE", f"/webhooks/{hook_id}")
    assert status == 204
    status, ctype, _ = await client.call("GET", f"/webhooks/{hook_id}")
    assert status == 404 and ctype.startswith("application/problem+json")


def _good(receiver_url: str, **changes):
    body = {"nickname": "n", "url": receiver_url, "topics": ["file.created"]}
    body.update(changes)
    return body


@pytest.mark.parametrize(
    "changes",
    [
        {"topics": ["file.exploded"]},
        {"topics": []},
        {"url": "not a url"},
        {"url": "ftp://example.com/hook"},
        {"filter": [{"field": "Path", "operator": "matches", "value": "(unclosed"}]},
        {"filter": [{"field": "Size", "operator": "is", "value": "1"}]},
        {"nickname": "x" * 129},
        {"url": "https://example.com/" + "a" * 2100},
        {"authorization_header": "Bearer x\r\nX-Injected: 1"},
        {"authorization_header": "x" * 5000},
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(api, receiver, changes):
    app, client = api
    status, ctype, body = await client.call("POST", "/webhooks", _good(receiver.url, **changes))
    assert status == 422, body
    assert ctype.startswith("application/problem+json") and body["detail"]
    assert await _count(app, Webhook) == 0


async def test_a_bad_pattern_is_named_as_every_other_field(api, receiver):
    """`errors[].field` is dotted (`filter.1.value`, as a NUL or an unknown field there is);
    a pattern that did not compile was `filter[1].value`."""
    app, client = api
    rules = [
        {"field": "Path", "operator": "starts_with", "value": "inbound/"},
        {"field": "Path", "operator": "matches", "value": r"(a)\1"},
    ]
    status, _, body = await client.call("POST", "/webhooks", _good(receiver.url, filter=rules))
    assert status == 422, body
    assert [e["field"] for e in body["errors"]] == ["filter.1.value"]
    assert body["detail"].startswith("filter.1.value is not a valid regular expression")


@pytest.mark.parametrize("field", ["nickname", "type", "url", "topics", "filter", "ordered"])
async def test_patch_with_null_for_a_field_that_cannot_be_empty_is_422(api, receiver, field):
    """`null` removes the authorization header and returns tuning to its default; for the other
    fields it used to be a 200 that silently kept the old value (`"filter": null` kept every
    rule)."""
    app, client = api
    rule = {"field": "Path", "operator": "starts_with", "value": "inbound/"}
    status, _, created = await client.call("POST", "/webhooks", _good(receiver.url, filter=[rule]))
    assert status == 201, created
    status, ctype, body = await client.call("PATCH", f"/webhooks/{created['id']}", {field: None})
    assert status == 422 and ctype.startswith("application/problem+json"), body
    assert [e["field"] for e in body["errors"]] == [field]
    assert "leave the field out" in body["detail"]
    # The validator's own words, without pydantic's "Value error, " before them.
    assert "Value error" not in body["detail"] + body["errors"][0]["message"]
    status, _, current = await client.call("GET", f"/webhooks/{created['id']}")
    assert current["filter"] == [rule] and current["updated_at"] == created["updated_at"]


@pytest.fixture
def strict_settings(settings: Settings) -> Settings:
    hooks = settings.webhooks.model_copy(update={"allow_http": False, "allowed_networks": []})
    return settings.model_copy(update={"webhooks": hooks})


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.8/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://localhost/hook",  # a name that resolves to a loopback address
    ],
)
async def test_unsafe_destinations_are_refused(strict_settings, url):
    async with serving(strict_settings, HTTP) as app:
        org = await org_id(app)
        _, token = await app.accounts.create_token(org, "t")
        async with aiohttp.ClientSession() as http:
            client = Api(f"http://127.0.0.1:{app.http_port}/api/v1", token, http)
            status, ctype, body = await client.call(
                "POST", "/webhooks", {"nickname": "n", "url": url, "topics": ["file.created"]}
            )
        assert status == 422 and ctype.startswith("application/problem+json"), body
        assert await _count(app, Webhook) == 0


async def test_unknown_and_foreign_ids_are_not_found(api, receiver):
    app, client = api
    other = await app.accounts.add_organization("other")
    _, other_token = await app.accounts.create_token(other.id, "other")
    foreign, _ = await app.webhooks.create(
        other.id, nickname="theirs", url=receiver.url, topics=["file.created"]
    )
    await app.recorder.record(file_event(other.id))
    rows, _ = await app.webhooks.list_deliveries(other.id, foreign.id)
    for method, path in [
        ("GET", "/webhooks/nope"),
        ("GET", f"/webhooks/{foreign.id}"),
        ("PATCH", f"/webhooks/{foreign.id}"),
        ("DELETE", f"/webhooks/{foreign.id}"),
        ("POST", f"/webhooks/{foreign.id}/ping"),
        ("POST", f"/webhooks/{foreign.id}/rotate-secret"),
        ("POST", f"/webhooks/{foreign.id}/pause"),
        ("POST", f"/webhooks/{foreign.id}/resume"),
        ("GET", f"/webhooks/{foreign.id}/deliveries"),
        ("POST", f"/webhooks/{foreign.id}/deliveries/redeliver"),
        ("GET", f"/deliveries/{rows[0].id}"),
        ("POST", f"/deliveries/{rows[0].id}/redeliver"),
    ]:
        status, ctype, body = await client.call(method, path, {} if method == "PATCH" else None)
        assert status == 404, (method, path, body)
        assert ctype.startswith("application/problem+json")
    status, _, body = await client.call("GET", "/webhooks")
    assert body["items"] == []
    status, _, body = await client.call("GET", "/webhooks", token=other_token)
    assert [w["id"] for w in body["items"]] == [foreign.id]
    assert (await app.webhooks.get(other.id, foreign.id)).state == "enabled"
    assert await _count(app, Delivery) == 1


async def test_pause_holds_events_and_resume_can_deliver_or_skip_them(api, receiver):
    app, client = api
    org = await org_id(app)
    _, _, hook = await client.call("POST", "/webhooks", _good(receiver.url))
    status, _, paused = await client.call("POST", f"/webhooks/{hook['id']}/pause")
    assert paused["state"] == "paused"
    first = file_event(org, path="a.csv")
    await app.recorder.record(first)
    _, _, page = await client.call("GET", f"/webhooks/{hook['id']}/deliveries", status="held")
    assert len(page["items"]) == 1
    status, _, resumed = await client.call(
        "POST", f"/webhooks/{hook['id']}/resume", {"deliver_held": True}
    )
    assert resumed["state"] == "enabled" and resumed["held_deliveries"] == 1
    (got,) = await receiver.wait_for(1)
    assert got.json()["Id"] == first.id

    await client.call("POST", f"/webhooks/{hook['id']}/pause")
    await app.recorder.record(file_event(org, path="b.csv"))
    status, _, resumed = await client.call(
        "POST", f"/webhooks/{hook['id']}/resume", {"deliver_held": False}
    )
    assert resumed["held_deliveries"] == 1
    _, _, page = await client.call("GET", f"/webhooks/{hook['id']}/deliveries", status="skipped")
    assert len(page["items"]) == 1
    await app.recorder.record(file_event(org, path="c.csv"))
    await receiver.wait_for(2)
    assert [r.json()["Data"]["Path"] for r in receiver.requests] == ["a.csv", "c.csv"]


async def test_metrics_expose_events_deliveries_and_latency(api, receiver):
    app, client = api
    org = await org_id(app)
    await app.webhooks.create(org, nickname="m", url=receiver.url, topics=["file.created"])
    await app.recorder.record(file_event(org))
    await receiver.wait_for(1)

    metrics_url = f"http://127.0.0.1:{app.http_port}/metrics"

    async def scrape():
        async with client.client.get(metrics_url) as resp:  # no token: scrapers have none
            return resp.status, resp.headers["Content-Type"], await resp.text()

    async def counted():
        return (
            'sftphook_webhook_deliveries_completed_total{status="succeeded"} 1'
            in (await scrape())[2]
        )

    await wait_until(counted)
    status, ctype, text = await scrape()
    assert status == 200 and ctype.startswith("text/plain")
    assert 'sftphook_events_total{topic="file.created"} 1' in text
    assert "sftphook_webhook_attempt_duration_seconds_count 1" in text
    assert 'sftphook_webhook_deliveries_completed_total{status="failed"} 0' in text
    assert 'sftphook_webhook_deliveries{status="pending"} 0' in text
    assert 'sftphook_webhook_deliveries{status="succeeded"}' not in text
    assert "sftphook_webhook_queue_depth 0" in text
    assert "sftphook_webhook_oldest_pending_age_seconds 0" in text
