"""Secrets stay secret: a scenario creates SFTP users (passwords), API tokens, webhooks (signing
secrets, authorization values) and a dashboard admin, uses them all — right and wrong — then
every log line (DEBUG and up) and every API and dashboard response the scenario received is
searched for each secret. The only place a secret may appear is the one response that created
it."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field

import asyncssh
import httpx
import pytest
from aiohttp import web

from sftphook.accounts.admins import AdminService
from sftphook.config import Settings
from tests.conftest import serving
from tests.reliability.conftest import Ledger
from tests.sftp.conftest import host_keys_cache, reuse_host_keys  # noqa: F401

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Recorded:
    """Every response the scenario received, and which secret each one created."""

    responses: list[tuple[str, str, str | None]] = field(default_factory=list)

    def keep(self, response: httpx.Response, created: str | None = None) -> httpx.Response:
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        where = f"{response.request.method} {response.request.url.path}"
        self.responses.append((where, headers + "\n\n" + response.text, created))
        return response

    def hits(self, secret: str) -> Iterator[str]:
        for where, text, created in self.responses:
            if secret in text and created != secret:
                yield where


async def test_no_secret_reaches_a_log_line_or_a_later_response(
    settings: Settings,
    host_keys_cache: object,  # noqa: F811
    ledger: Ledger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    reuse_host_keys(settings, host_keys_cache)  # type: ignore[arg-type]
    made: dict[str, str] = {}  # secret -> what it is
    seen = Recorded()
    received: list[dict[str, str]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append(dict(request.headers))
        await request.read()
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_post("/hook", receive)
    runner = web.AppRunner(receiver)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with serving(settings, frozenset({"sftp", "http", "worker"})) as app:
            org = await app.accounts.resolve_organization(None)
            _, bootstrap = await app.accounts.create_token(org.id, "bootstrap")
            made[bootstrap] = "token"
            admin_password = "admin " + secrets.token_urlsafe(12)
            made[admin_password] = "admin password"
            await AdminService(app.db).add_admin("boss", admin_password, [org.id])
            base = f"http://127.0.0.1:{app.http_port}"
            api = httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {bootstrap}"}, timeout=30
            )
            async with api:
                # Users with passwords; one changed.
                pw1, pw2, pw3 = (secrets.token_urlsafe(16) for _ in range(3))
                made.update({pw1: "password", pw2: "password", pw3: "password"})
                for name, pw in (("sec-a", pw1), ("sec-b", pw2)):
                    r = await api.post("/api/v1/users", json={"username": name, "password": pw})
                    seen.keep(r)
                    assert r.status_code == 201, r.text
                seen.keep(await api.patch("/api/v1/users/sec-b", json={"password": pw3}))
                seen.keep(await api.get("/api/v1/users"))
                seen.keep(await api.get("/api/v1/users/sec-a"))
                # Tokens.
                r = await api.post("/api/v1/tokens", json={"name": "second"})
                second, second_id = r.json()["token"], r.json()["id"]
                made[second] = "token"
                seen.keep(r, created=second)
                seen.keep(await api.get("/api/v1/tokens"))
                seen.keep(
                    await api.get("/api/v1/users", headers={"Authorization": f"Bearer {second}x"})
                )
                # Webhooks: signing secrets, rotated secrets, authorization values.
                auth_value = "Bearer hook-" + secrets.token_urlsafe(20)
                made[auth_value] = "authorization value"
                made[auth_value.split(" ", 1)[1]] = "authorization value"
                r = await api.post(
                    "/api/v1/webhooks",
                    json={
                        "nickname": "secret-test",
                        "url": f"http://127.0.0.1:{hook_port}/hook",
                        "topics": ["file.created"],
                        "authorization_header": auth_value,
                    },
                )
                assert r.status_code == 201, r.text
                hook = r.json()
                made[hook["signing_secret"]] = "signing secret"
                seen.keep(r, created=hook["signing_secret"])
                r = await api.post(
                    f"/api/v1/webhooks/{hook['id']}/rotate-secret", json={"grace_seconds": 60}
                )
                rotated = r.json()["signing_secret"]
                made[rotated] = "signing secret"
                seen.keep(r, created=rotated)
                other_auth = "Token " + secrets.token_urlsafe(20)
                made[other_auth.split(" ", 1)[1]] = "authorization value"
                seen.keep(
                    await api.patch(
                        f"/api/v1/webhooks/{hook['id']}", json={"authorization_header": other_auth}
                    )
                )
                seen.keep(await api.get("/api/v1/webhooks"))
                seen.keep(await api.get(f"/api/v1/webhooks/{hook['id']}"))
                # Deliveries: a ping and a file event reach the receiver, and are logged.
                seen.keep(await api.post(f"/api/v1/webhooks/{hook['id']}/ping"))
                async with (
                    await asyncssh.connect(
                        "127.0.0.1",
                        app.sftp.port,
                        username="sec-a",
                        password=pw1,
                        known_hosts=None,
                        client_keys=None,
                    ) as conn,
                    conn.start_sftp_client() as sftp,
                    sftp.open("report.csv", "wb") as fh,
                ):
                    await fh.write(b"a,b\n")
                with pytest.raises(asyncssh.PermissionDenied):
                    await asyncssh.connect(
                        "127.0.0.1",
                        app.sftp.port,
                        username="sec-b",
                        password=pw1,  # another user's password
                        known_hosts=None,
                        client_keys=None,
                    )
                for _ in range(100):
                    if len(received) >= 2:
                        break
                    await asyncio.sleep(0.05)
                assert len(received) >= 2
                r = seen.keep(await api.get(f"/api/v1/webhooks/{hook['id']}/deliveries"))
                for delivery in r.json()["items"]:
                    seen.keep(await api.get(f"/api/v1/deliveries/{delivery['id']}"))
                seen.keep(await api.get("/api/v1/events"))
                seen.keep(await api.delete(f"/api/v1/tokens/{second_id}"))
            # The dashboard: a wrong and a right admin password.
            async with httpx.AsyncClient(base_url=base, timeout=30) as web_client:
                for password in ("wrong " + admin_password, admin_password):
                    made.setdefault(password, "admin password")
                    page = seen.keep(await web_client.get("/login"))
                    token = CSRF.search(page.text)
                    assert token is not None
                    seen.keep(
                        await web_client.post(
                            "/login",
                            data={
                                "username": "boss",
                                "password": password,
                                "csrf_token": token.group(1),
                            },
                        )
                    )
                seen.keep(await web_client.get("/webhooks"))
                seen.keep(await web_client.get(f"/webhooks/{hook['id']}"))
    finally:
        await runner.cleanup()
    # The receiver did get the authorization value: that is where it belongs.
    assert any(h.get("Authorization") == other_auth for h in received)
    logs = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records
    )
    hits: list[str] = []
    for secret, what in made.items():
        if secret in logs:
            hits.append(f"{what} in a log line")
        hits += [f"{what} in the response of {where}" for where in seen.hits(secret)]
    ledger.record(
        "secrets",
        "passwords, tokens, signing secrets, authorization values, admin password: "
        "logs at DEBUG and every API and dashboard response",
        tried=len(made) * (len(seen.responses) + 1),
        leaked=len(hits),
        note=f"{len(made)} secrets x {len(caplog.records)} log lines and "
        f"{len(seen.responses)} responses",
    )
    assert not hits, hits
