"""A NUL character anywhere in a request (path, query or JSON body) is a 422 problem that names
where it is, on SQLite and PostgreSQL alike; PostgreSQL cannot store or even compare text with
NUL in it, which used to make each of these a plain-text 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import nullcontext

import httpx
import pytest

from sftphook.config import Settings
from tests.api.conftest import Tenant, assert_problem
from tests.conftest import postgres_database, serving


@pytest.fixture(params=["sqlite", "postgresql"])
async def tenant(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Tenant]:
    async with postgres_database() if request.param == "postgresql" else nullcontext(None) as url:
        if url is not None:
            settings = settings.model_copy(update={"database_url": url})
        async with serving(settings, frozenset({"http"})) as app:
            org = await app.accounts.resolve_organization(None)
            _, token = await app.accounts.create_token(org.id, "tests")
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{app.http_port}",
                headers={"Authorization": f"Bearer {token}"},
            ) as client:
                yield Tenant(org.id, token, client)


async def _webhook_id(tenant: Tenant) -> str:
    resp = await tenant.client.post(
        "/api/v1/webhooks",
        json={"nickname": "orders", "url": "http://127.0.0.1:9/h", "topics": ["file.created"]},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def test_nul_in_a_path_or_query_is_422_naming_the_parameter(tenant: Tenant) -> None:
    hook = await _webhook_id(tenant)
    for method, url, field in [
        ("GET", "/api/v1/users/a%00b", "username"),
        ("PATCH", "/api/v1/users/a%00b", "username"),
        ("DELETE", "/api/v1/users/a%00b", "username"),
        ("GET", "/api/v1/events/a%00b", "event_id"),
        ("GET", "/api/v1/events?path_prefix=in%00", "path_prefix"),
        ("GET", "/api/v1/audit?action=webhook.created&action=a%00", "action"),
        ("GET", "/api/v1/audit?target_id=a%00b", "target_id"),
        ("DELETE", "/api/v1/tokens/a%00b", "token_id"),
        ("GET", "/api/v1/webhooks/a%00b", "webhook_id"),
        ("POST", "/api/v1/webhooks/a%00b/ping", "webhook_id"),
        ("GET", f"/api/v1/webhooks/{hook}/deliveries?cursor=1_a%00b", "cursor"),
        ("GET", "/api/v1/deliveries/a%00b", "delivery_id"),
        ("POST", "/api/v1/deliveries/a%00b/redeliver", "delivery_id"),
    ]:
        kwargs = {"json": {"enabled": False}} if method == "PATCH" else {}
        resp = await tenant.client.request(method, url, **kwargs)
        body = assert_problem(resp, 422)
        assert body["errors"] == [{"field": field, "message": "must not contain NUL characters"}]


async def test_nul_in_a_body_is_422_naming_the_field_and_changes_nothing(tenant: Tenant) -> None:
    hook = await _webhook_id(tenant)
    before = (await tenant.client.get(f"/api/v1/webhooks/{hook}")).json()
    for method, url, body, field in [
        ("POST", "/api/v1/tokens", {"name": "ci\x00"}, "name"),
        ("POST", "/api/v1/users", {"username": "u1", "password": "pass\x00word"}, "password"),
        ("PATCH", "/api/v1/organization", {"notice_email": "ops@example.com\x00"}, "notice_email"),
        ("PATCH", f"/api/v1/webhooks/{hook}", {"nickname": "a\x00b"}, "nickname"),
        (
            "PATCH",
            f"/api/v1/webhooks/{hook}",
            {"filter": [{"field": "Path", "operator": "is", "value": "a\x00"}]},
            "filter.0.value",
        ),
        ("POST", f"/api/v1/webhooks/{hook}/pause", {"reason": "\x00"}, "reason"),
    ]:
        resp = await tenant.client.request(method, url, json=body)
        problem = assert_problem(resp, 422)
        assert problem["errors"] == [{"field": field, "message": "must not contain NUL characters"}]

    assert (await tenant.client.get(f"/api/v1/webhooks/{hook}")).json() == before
    assert [t["name"] for t in (await tenant.client.get("/api/v1/tokens")).json()["data"]] == [
        "tests"
    ]
    assert (await tenant.client.get("/api/v1/users")).json()["data"] == []
    assert (await tenant.client.get("/api/v1/organization")).json()["notice_email"] is None


async def test_escaped_backslash_before_u0000_is_not_a_nul(tenant: Tenant) -> None:
    resp = await tenant.client.post(
        "/api/v1/tokens",
        content=b'{"name": "a\\\\u0000"}',
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["name"] == "a\\u0000"


async def test_nul_without_a_token_is_still_401(tenant: Tenant) -> None:
    resp = await tenant.client.get("/api/v1/users/a%00b", headers={"Authorization": ""})
    assert_problem(resp, 401)


async def test_a_nul_deep_in_nested_lists_is_never_a_500(tenant: Tenant) -> None:
    """The check walked the body by recursion: near the depth the JSON parser still takes, it
    ran out of stack (a 500) where the parser had not."""
    statuses = set()
    for depth in range(850, 1000):
        body = '{"name": ' + "[" * depth + '"\\u0000"' + "]" * depth + "}"
        resp = await tenant.client.post(
            "/api/v1/tokens", content=body.encode(), headers={"Content-Type": "application/json"}
        )
        statuses.add(resp.status_code)
        assert resp.status_code < 500, (depth, resp.text)
    assert 422 in statuses
