from sftphook.accounts import passwords
from tests.api.conftest import PUBLIC_KEY, assert_problem


async def test_user_lifecycle_create_get_list_update_delete(alpha):
    resp = await alpha.client.post(
        "/api/v1/users",
        json={"username": "acme", "password": "correct horse", "home": "partners/acme"},
    )
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert resp.headers["location"] == "/api/v1/users/acme"
    assert created["username"] == "acme" and created["home"] == "/partners/acme"
    assert created["permissions"] == ["read", "write", "delete", "list"]
    assert created["has_password"] is True and created["enabled"] is True
    assert created["organization_id"] == alpha.organization_id
    assert "password" not in created and "password_hash" not in created

    assert (await alpha.client.get("/api/v1/users/acme")).json() == created
    listed = (await alpha.client.get("/api/v1/users")).json()["data"]
    assert [u["username"] for u in listed] == ["acme"]

    resp = await alpha.client.patch(
        "/api/v1/users/acme",
        json={"enabled": False, "permissions": ["read", "list"], "public_keys": [PUBLIC_KEY]},
    )
    assert resp.status_code == 200, resp.text
    updated = resp.json()
    assert updated["enabled"] is False and updated["permissions"] == ["read", "list"]
    assert updated["public_keys"] == [PUBLIC_KEY] and updated["home"] == "/partners/acme"

    resp = await alpha.client.patch("/api/v1/users/acme", json={"password": None})
    assert resp.status_code == 200 and resp.json()["has_password"] is False

    assert (await alpha.client.delete("/api/v1/users/acme")).status_code == 204
    assert_problem(await alpha.client.get("/api/v1/users/acme"), 404)
    assert_problem(await alpha.client.delete("/api/v1/users/acme"), 404)


async def test_password_change_takes_effect_and_is_hashed(alpha, http_app):
    await alpha.client.post("/api/v1/users", json={"username": "pw", "password": "first-pass"})
    resp = await alpha.client.patch("/api/v1/users/pw", json={"password": "second-pass"})
    assert resp.status_code == 200
    user = await http_app.accounts.get_user(alpha.organization_id, "pw")
    assert user.password_hash and user.password_hash.startswith("$argon2id$")
    assert passwords.verify_password(user.password_hash, "second-pass")
    assert not passwords.verify_password(user.password_hash, "first-pass")


async def test_duplicate_username_is_409_and_keeps_the_first(alpha):
    first = await alpha.client.post(
        "/api/v1/users", json={"username": "dup", "password": "password-1"}
    )
    assert first.status_code == 201
    resp = await alpha.client.post(
        "/api/v1/users", json={"username": "dup", "password": "password-2", "home": "/other"}
    )
    body = assert_problem(resp, 409)
    assert "dup" in body["detail"]
    assert (await alpha.client.get("/api/v1/users/dup")).json()["home"] == "/"


async def test_invalid_user_input_is_422_naming_each_field_and_changes_nothing(alpha):
    cases = [
        ({"username": "../etc", "password": "password-1"}, "username"),
        ({"username": "x" * 65, "password": "password-1"}, "username"),
        ({"username": "ok", "password": "short"}, "password"),
        ({"username": "ok"}, "password"),
        ({"username": "ok", "password": "password-1", "home": "../up"}, "home"),
        ({"username": "ok", "password": "password-1", "permissions": ["root"]}, "permissions.0"),
        ({"username": "ok", "public_keys": ["ssh-rsa not-a-key"]}, "public_keys"),
        ({"username": "ok", "password": "password-1", "enabled": "yes"}, "enabled"),
        ({"username": "ok", "password": "password-1", "admin": True}, "admin"),
        ({"username": "ok", "password": "p" * 2000}, "password"),
    ]
    for payload, field in cases:
        resp = await alpha.client.post("/api/v1/users", json=payload)
        body = assert_problem(resp, 422)
        assert field in [e["field"] for e in body["errors"]], (payload, body)
    resp = await alpha.client.post(
        "/api/v1/users", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_problem(resp, 422)
    assert (await alpha.client.get("/api/v1/users")).json()["data"] == []


async def test_invalid_update_is_422_and_changes_nothing(alpha):
    await alpha.client.post("/api/v1/users", json={"username": "keep", "password": "password-1"})
    before = (await alpha.client.get("/api/v1/users/keep")).json()
    cases = [
        ({"home": "/a/../../b", "enabled": False}, "home"),
        ({"enabled": None}, "enabled"),
        ({"username": "renamed"}, "username"),
        # Removing the only credential would lock the user out.
        ({"password": None, "enabled": False}, "password"),
        ({"permissions": ["read", "admin"]}, "permissions.1"),
    ]
    for payload, field in cases:
        resp = await alpha.client.patch("/api/v1/users/keep", json=payload)
        body = assert_problem(resp, 422)
        assert field in [e["field"] for e in body["errors"]], (payload, body)
    assert (await alpha.client.get("/api/v1/users/keep")).json() == before
