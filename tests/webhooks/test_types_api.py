"""REST: endpoint types and per-webhook tuning on create, update and show; bad input is a
problem+json response that changes nothing."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from sftphook.config import SMTPSettings
from tests.conftest import serving
from tests.webhooks.conftest import org_id
from tests.webhooks.test_api import Api


@pytest.fixture
async def api(settings):
    smtp = SMTPSettings(host="127.0.0.1", port=2525, starttls=False)
    async with serving(settings.model_copy(update={"smtp": smtp}), frozenset({"http"})) as app:
        org = await org_id(app)
        _, token = await app.accounts.create_token(org, "test")
        async with aiohttp.ClientSession() as client:
            yield app, Api(f"http://127.0.0.1:{app.http_port}/api/v1", token, client)


def _problem(status: int, ctype: str, body: Any, code: int = 422) -> dict[str, Any]:
    assert status == code, body
    assert ctype.startswith("application/problem+json")
    return body


async def test_type_and_tuning_round_trip(api, receiver):
    _, client = api
    status, _, created = await client.call(
        "POST",
        "/webhooks",
        {
            "nickname": "ops",
            "type": "slack",
            "url": receiver.url,
            "topics": ["file.created"],
            "retry_schedule": [1, 60],
            "timeout": 4.5,
            "max_concurrency": 3,
            "rate_limit": 2.5,
        },
    )
    assert status == 201, created
    assert created["type"] == "slack"
    assert created["retry_schedule"] == [1, 60] and created["timeout"] == 4.5
    assert created["max_concurrency"] == 3 and created["rate_limit"] == 2.5
    hook = created["id"]
    # Null returns a field to the configured default; fields left out stay.
    status, _, body = await client.call(
        "PATCH", f"/webhooks/{hook}", {"timeout": None, "type": "teams"}
    )
    assert status == 200, body
    assert body["type"] == "teams" and body["timeout"] is None and body["max_concurrency"] == 3
    status, _, shown = await client.call("GET", f"/webhooks/{hook}")
    assert shown["type"] == "teams" and shown["retry_schedule"] == [1, 60]
    # The default type is webhook.
    status, _, plain = await client.call(
        "POST", "/webhooks", {"nickname": "p", "url": receiver.url, "topics": ["file.created"]}
    )
    assert plain["type"] == "webhook" and plain["rate_limit"] is None


async def test_email_endpoint_takes_recipients(api):
    _, client = api
    status, _, created = await client.call(
        "POST",
        "/webhooks",
        {
            "nickname": "mail",
            "type": "email",
            "url": "ops@example.com,  Jane Doe <jane@example.com>",
            "topics": ["file.created"],
        },
    )
    assert status == 201, created
    assert created["url"] == "ops@example.com, Jane Doe <jane@example.com>"
    # Turning it into a Slack endpoint needs a URL: recipients are not one.
    body = _problem(*await client.call("PATCH", f"/webhooks/{created['id']}", {"type": "slack"}))
    assert body["errors"][0]["field"] == "url"


BAD_CREATES = [
    ({"type": "pager"}, "type"),
    ({"type": "email", "url": "not an address"}, "url"),
    ({"type": "email", "url": "ops@example.com, <>"}, "url"),
    ({"type": "email", "url": "ops@example.com", "authorization_header": "Bearer x"}, None),
    ({"type": "slack", "url": "https://10.20.30.40/services/T0/B0/x"}, "url"),
    ({"type": "teams", "url": "https://[fd00::1]/webhookb2/x"}, "url"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": 301}, "timeout"),
    ({"max_concurrency": 0}, "max_concurrency"),
    ({"rate_limit": 0}, "rate_limit"),
    ({"rate_limit": -3}, "rate_limit"),
    ({"retry_schedule": [-5]}, "retry_schedule.0"),
    ({"retry_schedule": [1] * 21}, "retry_schedule"),
]


@pytest.mark.parametrize(("change", "field"), BAD_CREATES)
async def test_bad_create_is_refused_and_nothing_is_added(api, receiver, change, field):
    app, client = api
    payload = {"nickname": "x", "url": receiver.url, "topics": ["file.created"], **change}
    body = _problem(*await client.call("POST", "/webhooks", payload))
    if field is not None:
        assert field in {e["field"] for e in body["errors"]}, body
    assert await app.webhooks.list_webhooks(await org_id(app)) == []


@pytest.mark.parametrize(("change", "field"), BAD_CREATES)
async def test_bad_update_is_refused_and_nothing_changes(api, receiver, change, field):
    app, client = api
    _, _, created = await client.call(
        "POST",
        "/webhooks",
        {"nickname": "x", "url": receiver.url, "topics": ["file.created"], "timeout": 3},
    )
    hook = created["id"]
    _, _, before = await client.call("GET", f"/webhooks/{hook}")
    payload = dict(change)
    if payload.get("type") == "email" and "url" not in payload:
        payload["url"] = "ops@example.com"
    payload["nickname"] = "renamed"
    _problem(*await client.call("PATCH", f"/webhooks/{hook}", payload))
    _, _, after = await client.call("GET", f"/webhooks/{hook}")
    assert after == before


async def test_email_without_an_smtp_server_is_refused_clearly(settings, receiver):
    async with serving(settings, frozenset({"http"})) as app:
        org = await org_id(app)
        _, token = await app.accounts.create_token(org, "test")
        async with aiohttp.ClientSession() as session:
            client = Api(f"http://127.0.0.1:{app.http_port}/api/v1", token, session)
            body = _problem(
                *await client.call(
                    "POST",
                    "/webhooks",
                    {
                        "nickname": "m",
                        "type": "email",
                        "url": "ops@example.com",
                        "topics": ["file.created"],
                    },
                )
            )
            assert body["errors"] == [{"field": "type", "message": body["detail"]}]
            assert "SMTP" in body["detail"] and "SFTPHOOK_SMTP__HOST" in body["detail"]
            _, _, created = await client.call(
                "POST",
                "/webhooks",
                {"nickname": "w", "url": receiver.url, "topics": ["file.created"]},
            )
            body = _problem(
                *await client.call(
                    "PATCH",
                    f"/webhooks/{created['id']}",
                    {"type": "email", "url": "ops@example.com"},
                )
            )
            assert body["errors"][0]["field"] == "type"
            _, _, after = await client.call("GET", f"/webhooks/{created['id']}")
            assert after["type"] == "webhook" and after["url"] == receiver.url
