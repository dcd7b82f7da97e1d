"""Passwords and tokens never come back after creation, in a response or a log line."""

import logging

from sftphook.events import EventRecord, Topic


async def test_passwords_and_tokens_never_reach_responses_or_logs(alpha, http_app, caplog):
    caplog.set_level(logging.DEBUG)
    # Even SQL statement logging (with parameters) must show only hashes.
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    password, new_password = "Pa55word-Alpha-1", "Pa55word-Alpha-2"
    responses = []

    async def call(method, url, **kwargs):
        resp = await alpha.client.request(method, url, **kwargs)
        responses.append(resp)
        return resp

    created = await call("POST", "/api/v1/tokens", json={"name": "second"})
    token = created.json()["token"]
    await call("POST", "/api/v1/users", json={"username": "sec", "password": password})
    await call("PATCH", "/api/v1/users/sec", json={"password": new_password})
    # Rejected input does not echo the password back either.
    await call("POST", "/api/v1/users", json={"username": "../x", "password": password})
    await call("PATCH", "/api/v1/users/sec", json={"password": password, "oops": 1})
    await call("POST", "/api/v1/users", json={"username": "sec", "password": password})
    await http_app.recorder.record(
        EventRecord(
            organization_id=alpha.organization_id,
            topic=Topic.FILE_CREATED,
            actor_id="sec",
            path="x",
        )
    )
    for url in ("/api/v1/users", "/api/v1/users/sec", "/api/v1/tokens", "/api/v1/events"):
        await call("GET", url)
    await call("GET", "/api/v1/users", headers={"Authorization": f"Bearer {token}x"})
    await call("DELETE", f"/api/v1/tokens/{created.json()['id']}")
    await call("GET", "/api/v1/users", headers={"Authorization": f"Bearer {token}"})

    assert [r.status_code for r in responses] == [
        201, 201, 200, 422, 422, 409, 200, 200, 200, 200, 401, 204, 401,
    ]  # fmt: skip
    secrets = [password, new_password, token, alpha.token]
    for resp in responses[1:]:
        text = resp.text + " ".join(f"{k}: {v}" for k, v in resp.headers.items())
        for secret in secrets:
            assert secret not in text, (resp.request.url, resp.status_code)
    assert responses[0].text.count(token) == 1
    log_text = "\n".join(r.getMessage() for r in caplog.records)
    assert "INSERT INTO users" in log_text  # the capture did see the statements
    for secret in secrets:
        assert secret not in log_text
