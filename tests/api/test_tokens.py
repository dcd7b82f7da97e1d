import httpx

from tests.api.conftest import assert_problem


async def test_token_is_shown_once_then_listed_without_secret(alpha, base_url):
    resp = await alpha.client.post("/api/v1/tokens", json={"name": "pipeline"})
    assert resp.status_code == 201, resp.text
    created = resp.json()
    plain = created["token"]
    assert plain.startswith("shk_") and plain.startswith(created["prefix"])
    assert len(plain) > 40

    listed = (await alpha.client.get("/api/v1/tokens")).json()["data"]
    mine = next(t for t in listed if t["id"] == created["id"])
    assert mine["name"] == "pipeline" and mine["revoked_at"] is None
    assert "token" not in mine and "token_hash" not in mine
    assert all(plain not in str(t) for t in listed)

    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {plain}"}
    ) as new_client:
        assert (await new_client.get("/api/v1/users")).status_code == 200
        assert (await alpha.client.delete(f"/api/v1/tokens/{created['id']}")).status_code == 204
        assert_problem(await new_client.get("/api/v1/users"), 401)
    listed = (await alpha.client.get("/api/v1/tokens")).json()["data"]
    assert next(t for t in listed if t["id"] == created["id"])["revoked_at"] is not None
    # Revoking twice is not an error; an unknown id is.
    assert (await alpha.client.delete(f"/api/v1/tokens/{created['id']}")).status_code == 204
    assert_problem(await alpha.client.delete("/api/v1/tokens/nope"), 404)


async def test_invalid_token_input_is_422(alpha):
    for payload, field in [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 129}, "name"),
        ({"name": "ok", "scopes": ["all"]}, "scopes"),
        ({"name": "   "}, "name"),
    ]:
        body = assert_problem(await alpha.client.post("/api/v1/tokens", json=payload), 422)
        assert field in [e["field"] for e in body["errors"]], (payload, body)
    listed = (await alpha.client.get("/api/v1/tokens")).json()["data"]
    assert [t["name"] for t in listed] == ["tests"]
