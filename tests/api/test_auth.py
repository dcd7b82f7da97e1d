"""Bearer tokens: who gets in, and what one organization can see of another."""

import pytest

from sftphook.events import EventRecord, Topic
from tests.api.conftest import assert_problem

ROUTES = [
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("GET", "/api/v1/users/someone"),
    ("PATCH", "/api/v1/users/someone"),
    ("DELETE", "/api/v1/users/someone"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/events/some-id"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/some-id"),
]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer shk_not-a-real-token",
        "Bearer not-even-the-prefix",
        "Basic dXNlcjpwYXNz",
        "Bearer shk_" + "a" * 5000,
    ],
)
async def test_missing_or_invalid_token_is_401_everywhere(anonymous, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in ROUTES:
        resp = await anonymous.request(method, path, headers=headers, json={"name": "x"})
        body = assert_problem(resp, 401)
        assert resp.headers["www-authenticate"] == "Bearer"
        assert "Bearer" in body["detail"] or "token" in body["detail"]


async def test_revoked_token_is_401(alpha, http_app):
    token, plain = await http_app.accounts.create_token(alpha.organization_id, "short-lived")
    headers = {"Authorization": f"Bearer {plain}"}
    assert (await alpha.client.get("/api/v1/users", headers=headers)).status_code == 200
    await http_app.accounts.revoke_token(alpha.organization_id, token.id)
    assert_problem(await alpha.client.get("/api/v1/users", headers=headers), 401)


async def test_an_organization_sees_nothing_of_another(alpha, beta, http_app):
    await beta.client.post(
        "/api/v1/users", json={"username": "beta-user", "password": "password-b"}
    )
    beta_event = EventRecord(
        organization_id=beta.organization_id,
        topic=Topic.FILE_CREATED,
        actor_id="beta-user",
        path="secret/plan.pdf",
    )
    await http_app.recorder.record(beta_event)
    beta_tokens = (await beta.client.get("/api/v1/tokens")).json()["data"]

    assert (await alpha.client.get("/api/v1/users")).json()["data"] == []
    assert (await alpha.client.get("/api/v1/events")).json()["data"] == []
    alpha_tokens = (await alpha.client.get("/api/v1/tokens")).json()["data"]
    assert {t["id"] for t in alpha_tokens}.isdisjoint(t["id"] for t in beta_tokens)

    assert_problem(await alpha.client.get("/api/v1/users/beta-user"), 404)
    patch = await alpha.client.patch("/api/v1/users/beta-user", json={"enabled": False})
    assert_problem(patch, 404)
    assert_problem(await alpha.client.delete("/api/v1/users/beta-user"), 404)
    assert_problem(await alpha.client.get(f"/api/v1/events/{beta_event.id}"), 404)
    assert_problem(await alpha.client.delete(f"/api/v1/tokens/{beta_tokens[0]['id']}"), 404)

    # Nothing of beta's changed.
    user = (await beta.client.get("/api/v1/users/beta-user")).json()
    assert user["enabled"] is True
    assert (await beta.client.get("/api/v1/tokens")).json()["data"] == beta_tokens
    events = (await beta.client.get("/api/v1/events")).json()["data"]
    assert [e["id"] for e in events] == [beta_event.id]


async def test_an_unexpected_error_is_a_500_problem_that_tells_nothing_of_it(
    alpha, http_app, monkeypatch, caplog
):
    """Errors are problem+json, the unexpected one too (it was Starlette's text/plain), and its
    answer says nothing of the exception: that goes to the log."""

    async def broken(organization_id):
        raise RuntimeError("secret detail of the failure")

    monkeypatch.setattr(http_app.accounts, "list_users", broken)
    resp = await alpha.client.get("/api/v1/users")
    body = assert_problem(resp, 500)
    assert "secret detail" not in resp.text
    assert body["instance"] == "/api/v1/users"
    assert "secret detail of the failure" in caplog.text  # in the log, with its traceback
