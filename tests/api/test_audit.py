"""`/api/v1/audit` and `/api/v1/organization`: every management action is in the log with its
actor, never with a secret, and one organization never sees another's lines."""

from __future__ import annotations

import time

from sftphook.app import App
from tests.api.conftest import PUBLIC_KEY, Tenant, assert_problem

USER_PASSWORD = "first password 1"
NEW_PASSWORD = "second password 2"
AUTHORIZATION = "Bearer receiver-credential-1234567"


async def _all(tenant: Tenant, **params: object) -> list[dict]:
    resp = await tenant.client.get("/api/v1/audit", params={"limit": 500, **params})
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


async def _act_on_everything(http_app: App, t: Tenant) -> dict[str, str]:
    """One of each recorded action through the API; returns the secrets it handled."""
    c = t.client
    secrets: dict[str, str] = {"token": t.token, "password": USER_PASSWORD, "new": NEW_PASSWORD}
    r = await c.post(
        "/api/v1/users",
        json={"username": "partner-a", "password": USER_PASSWORD, "public_keys": [PUBLIC_KEY]},
    )
    assert r.status_code == 201, r.text
    r = await c.patch("/api/v1/users/partner-a", json={"password": NEW_PASSWORD})
    assert r.status_code == 200, r.text
    r = await c.patch("/api/v1/users/partner-a", json={"enabled": False})
    assert r.status_code == 200, r.text
    r = await c.delete("/api/v1/users/partner-a")
    assert r.status_code == 204
    r = await c.post("/api/v1/tokens", json={"name": "second"})
    assert r.status_code == 201
    secrets["second_token"] = r.json()["token"]
    r = await c.delete(f"/api/v1/tokens/{r.json()['id']}")
    assert r.status_code == 204
    r = await c.post(
        "/api/v1/webhooks",
        json={
            "nickname": "orders",
            "url": "http://127.0.0.1:9/hook?key=query-credential",
            "topics": ["file.created"],
            "authorization_header": AUTHORIZATION,
        },
    )
    assert r.status_code == 201, r.text
    hook = r.json()
    secrets["signing"] = hook["signing_secret"]
    wid = hook["id"]
    r = await c.patch(
        f"/api/v1/webhooks/{wid}",
        json={"nickname": "orders", "authorization_header": "Token other-9"},
    )
    assert r.status_code == 200, r.text
    r = await c.post(f"/api/v1/webhooks/{wid}/rotate-secret", json={"grace_seconds": 60})
    assert r.status_code == 200
    secrets["rotated"] = r.json()["signing_secret"]
    r = await c.post(f"/api/v1/webhooks/{wid}/pause", json={"reason": "maintenance window"})
    assert r.status_code == 200
    r = await c.post(f"/api/v1/webhooks/{wid}/resume", json={"deliver_held": False})
    assert r.status_code == 200
    r = await c.post(f"/api/v1/webhooks/{wid}/ping")
    assert r.status_code == 202
    r = await c.delete(f"/api/v1/webhooks/{wid}")
    assert r.status_code == 204
    r = await c.patch("/api/v1/organization", json={"notice_email": "Ops <ops@example.com>"})
    assert r.status_code == 200, r.text
    secrets["authorization"] = "receiver-credential-1234567"
    secrets["other_authorization"] = "other-9"
    secrets["query"] = "query-credential"
    secrets["wid"] = wid
    return secrets


async def test_every_action_is_recorded_with_the_token_as_actor_and_no_secret(
    http_app: App, alpha: Tenant
) -> None:
    secrets = await _act_on_everything(http_app, alpha)
    wid = secrets.pop("wid")
    resp = await alpha.client.get("/api/v1/audit", params={"limit": 500})
    assert resp.status_code == 200
    for name, value in secrets.items():
        assert value not in resp.text, f"the {name} secret leaked into the audit log"
    entries = resp.json()["data"]
    actions = [e["action"] for e in reversed(entries)]
    assert actions == [
        "token.created",  # the fixture's own token
        "user.added",
        "user.updated",
        "user.disabled",
        "user.removed",
        "token.created",
        "token.revoked",
        "webhook.created",
        "webhook.updated",
        "webhook.secret_rotated",
        "webhook.paused",
        "webhook.resumed",
        "webhook.pinged",
        "webhook.deleted",
        "organization.updated",
    ]
    by_action = {e["action"]: e for e in entries}
    for entry in entries[:-1]:  # all but the fixture's token, created by the service itself
        assert entry["actor"] == {"type": "token", "id": "tests"}, entry
    assert entries[-1]["actor"] == {"type": "system", "id": "system"}
    paused = by_action["webhook.paused"]
    assert paused["target"] == {"type": "webhook", "id": wid}
    assert paused["details"]["reason"] == "maintenance window"
    assert paused["details"]["automatic"] is False
    assert by_action["webhook.updated"]["details"]["changed"] == ["authorization"]
    assert by_action["webhook.created"]["details"]["url"] == "http://127.0.0.1:9/hook"
    assert by_action["webhook.secret_rotated"]["details"]["grace_seconds"] == 60
    assert by_action["user.updated"]["details"] == {"changed": ["password"]}
    assert by_action["user.removed"]["target"] == {"type": "user", "id": "partner-a"}
    assert by_action["organization.updated"]["details"]["notice_email"] == "Ops <ops@example.com>"
    times = [e["created_at"] for e in entries]
    assert times == sorted(times, reverse=True)


async def test_filters_and_cursor_pages(http_app: App, alpha: Tenant) -> None:
    await _act_on_everything(http_app, alpha)
    only = await _all(alpha, action="webhook.paused")
    assert [e["action"] for e in only] == ["webhook.paused"]
    family = await _all(alpha, action="user.*")
    assert {e["action"] for e in family} == {
        "user.added",
        "user.updated",
        "user.disabled",
        "user.removed",
    }
    two = await _all(alpha, action=["user.added", "token.revoked"])
    assert sorted(e["action"] for e in two) == ["token.revoked", "user.added"]
    target = await _all(alpha, target_type="user", target_id="partner-a")
    assert len(target) == 4
    future = int(time.time() * 1000) + 3_600_000
    assert await _all(alpha, since=future) == []
    assert len(await _all(alpha, until="2100-01-01T00:00:00Z")) == 15

    seen: list[str] = []
    url: str | None = "/api/v1/audit?limit=4"
    while url is not None:
        resp = await alpha.client.get(url)
        assert resp.status_code == 200
        body = resp.json()
        assert len(body["data"]) <= 4
        seen.extend(e["id"] for e in body["data"])
        url = body["next"]
        if url is not None:
            assert resp.headers["link"] == f'<{url}>; rel="next"'
    assert len(seen) == len(set(seen)) == 15


async def test_bad_queries_are_problems(alpha: Tenant) -> None:
    assert_problem(await alpha.client.get("/api/v1/audit", params={"cursor": "nonsense"}), 422)
    assert_problem(await alpha.client.get("/api/v1/audit", params={"since": "yesterday"}), 422)
    assert_problem(await alpha.client.get("/api/v1/audit", params={"since": 20, "until": 10}), 422)
    assert_problem(await alpha.client.get("/api/v1/audit", params={"limit": 0}), 422)


async def test_another_organization_sees_none_of_it(
    http_app: App, alpha: Tenant, beta: Tenant, anonymous
) -> None:
    secrets = await _act_on_everything(http_app, alpha)
    lines = await _all(beta)
    assert [e["action"] for e in lines] == ["token.created"]  # beta's own token
    assert await _all(beta, target_id=secrets["wid"]) == []
    org = await beta.client.get("/api/v1/organization")
    assert org.json()["notice_email"] is None and org.json()["name"] == "beta"
    assert_problem(await anonymous.get("/api/v1/audit"), 401)


async def test_organization_notice_address_is_validated(alpha: Tenant) -> None:
    body = assert_problem(
        await alpha.client.patch("/api/v1/organization", json={"notice_email": "not an address"}),
        422,
    )
    assert body["errors"][0]["field"] == "notice_email"
    ok = await alpha.client.patch(
        "/api/v1/organization", json={"notice_email": "a@example.com, B <b@example.com>"}
    )
    assert ok.json()["notice_email"] == "a@example.com, B <b@example.com>"
    cleared = await alpha.client.patch("/api/v1/organization", json={"notice_email": None})
    assert cleared.json()["notice_email"] is None
    assert (await alpha.client.get("/api/v1/organization")).json()["notice_email"] is None
