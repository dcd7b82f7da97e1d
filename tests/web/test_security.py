"""The dashboard's guards, over real HTTP: sessions, CSRF, throttling, organizations, secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sftphook.accounts.admins import AdminService
from sftphook.config import Settings
from sftphook.web.sessions import COOKIE_NAME
from tests.web.conftest import CSRF, PASSWORD, Dashboard, Receiver, _dashboard, csrf_of, login

PAGES = ["/webhooks", "/users", "/events"]


async def _add_webhook(client: httpx.AsyncClient, token: str, url: str, nickname: str) -> str:
    resp = await client.post(
        "/webhooks",
        data={
            "csrf_token": token,
            "nickname": nickname,
            "url": url,
            "topics": ["file.created"],
            "authorization_header": "Bearer hush-hush",
        },
    )
    assert resp.status_code == 303, resp.text
    return resp.headers["location"]


async def test_pages_need_a_session(dashboard: Dashboard) -> None:
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        for path in [*PAGES, "/webhooks/x/deliveries", "/deliveries/x"]:
            resp = await client.get(path)
            assert resp.status_code == 303
            assert resp.headers["location"].startswith("/login")
        resp = await client.post("/users", data={"username": "mallory"})
        # A page that says why, with the way back in (it was a bare "log in again").
        assert resp.status_code == 401 and resp.headers["content-type"].startswith("text/html")
        assert 'href="/login"' in resp.text and "Log in again" in resp.text
        # The pages' own refreshes get the short answer they stop on.
        fetched = await client.get(
            "/webhooks/x/deliveries/rows", headers={"X-Requested-With": "fetch"}
        )
        assert fetched.status_code == 401
        # A cookie signed with another key is no session either.
        client.cookies.set(COOKIE_NAME, "eyJub25jZSI6IngifQ.AAAA")
        assert (await client.get("/users")).status_code == 303
    assert await dashboard.app.accounts.list_users(dashboard.organization.id) == []


async def test_session_cookie_is_httponly_and_samesite(dashboard: Dashboard) -> None:
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        resp = await client.get("/login")
        cookie = resp.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        assert "secure" not in cookie  # plain http on 127.0.0.1; https adds it
        assert resp.headers["cache-control"] == "no-store"
        assert resp.headers["x-frame-options"] == "DENY"
        assert "default-src 'self'" in resp.headers["content-security-policy"]


async def test_forged_form_without_csrf_token_is_refused(dashboard: Dashboard) -> None:
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        token = await login(client)
        for data in ({}, {"csrf_token": "forged"}, {"csrf_token": token[:-2] + "xx"}):
            resp = await client.post(
                "/users", data={**data, "username": "mallory", "password": "p" * 12}
            )
            assert resp.status_code == 403
            assert "expired" in resp.text
        assert await dashboard.app.accounts.list_users(dashboard.organization.id) == []
        # The same form with the token goes through.
        resp = await client.post(
            "/users", data={"csrf_token": token, "username": "alice", "password": "p" * 12}
        )
        assert resp.status_code == 303


async def test_login_form_needs_its_csrf_token(dashboard: Dashboard) -> None:
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        await client.get("/login")
        resp = await client.post("/login", data={"username": "admin", "password": PASSWORD})
        assert resp.status_code == 403
        assert COOKIE_NAME not in resp.headers.get("location", "")


async def test_logins_are_throttled_after_repeated_failures(dashboard: Dashboard) -> None:
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        token = CSRF.search((await client.get("/login")).text).group(1)  # type: ignore[union-attr]
        statuses = []
        for _ in range(6):
            resp = await client.post(
                "/login", data={"username": "admin", "password": "wrong!", "csrf_token": token}
            )
            statuses.append(resp.status_code)
        assert statuses[:5] == [401] * 5 and statuses[5] == 429
        # Even the right password waits now.
        resp = await client.post(
            "/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token}
        )
        assert resp.status_code == 429 and "Retry-After" in resp.headers


async def test_login_never_redirects_to_another_site(dashboard: Dashboard) -> None:
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        token = CSRF.search((await client.get("/login")).text).group(1)  # type: ignore[union-attr]
        resp = await client.post(
            "/login",
            data={
                "username": "admin",
                "password": PASSWORD,
                "csrf_token": token,
                "next": "//evil.example/",
            },
        )
        assert resp.status_code == 303 and resp.headers["location"] == "/webhooks"


async def test_logout_ends_the_session_even_for_a_copied_cookie(dashboard: Dashboard) -> None:
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        token = await login(client)
        stolen = client.cookies.get(COOKIE_NAME)
        assert (await client.post("/logout", data={"csrf_token": token})).status_code == 303
    async with httpx.AsyncClient(base_url=dashboard.base, cookies={COOKIE_NAME: stolen}) as other:
        assert (await other.get("/webhooks")).status_code == 303


async def test_log_out_in_a_second_tab_after_the_first_lands_on_the_login_page(
    dashboard: Dashboard,
) -> None:
    """Log out ends every session, so the other tab's Log out button found none and answered
    a bare "log in again" (401) instead of the login page."""
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        token = await login(client)
        other_tab = client.cookies.get(COOKIE_NAME)
        assert (await client.post("/logout", data={"csrf_token": token})).status_code == 303
    async with httpx.AsyncClient(base_url=dashboard.base, cookies={COOKIE_NAME: other_tab}) as tab:
        resp = await tab.post("/logout", data={"csrf_token": token})
        assert resp.status_code == 303 and resp.headers["location"] == "/login"
        assert (await tab.get("/webhooks")).status_code == 303


async def test_a_new_admin_password_ends_the_sessions_of_the_old_one(
    dashboard: Dashboard,
) -> None:
    """`sftphook admins passwd` after a cookie leaked: the copy must stop working."""
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        await login(client)
        stolen = client.cookies.get(COOKIE_NAME)
        await AdminService(dashboard.app.db).set_password("admin", "a brand new password")
        resp = await client.get("/webhooks")
        assert resp.status_code == 303 and resp.headers["location"].startswith("/login")
        await login(client, password="a brand new password")
        assert (await client.get("/webhooks")).status_code == 200
    async with httpx.AsyncClient(base_url=dashboard.base, cookies={COOKIE_NAME: stolen}) as other:
        assert (await other.get("/webhooks")).status_code == 303


async def test_one_organization_never_sees_another(
    dashboard: Dashboard, receiver: Receiver
) -> None:
    app = dashboard.app
    other = await app.accounts.add_organization("globex")
    await AdminService(app.db).add_admin("globex-admin", PASSWORD, [other.id])
    await app.accounts.add_user(other.id, "globex-partner", password="p" * 12)
    theirs, _ = await app.webhooks.create(
        other.id, nickname="Globex ledger", url=receiver.url, topics=["file.created"]
    )
    ping = await app.webhooks.ping(other.id, theirs.id)
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        token = await login(client)
        for path in PAGES:
            text = (await client.get(path)).text
            assert "globex" not in text.lower()
        for path in (
            f"/webhooks/{theirs.id}/deliveries",
            f"/webhooks/{theirs.id}/edit",
            f"/deliveries/{ping.id}",
            f"/webhooks/{theirs.id}/deliveries/rows",
        ):
            assert (await client.get(path)).status_code == 404
        for path in (
            f"/webhooks/{theirs.id}/delete",
            f"/webhooks/{theirs.id}/ping",
            f"/webhooks/{theirs.id}/pause",
            "/users/globex-partner/delete",
            f"/deliveries/{ping.id}/redeliver",
        ):
            resp = await client.post(path, data={"csrf_token": token})
            assert resp.status_code == 404, path
        # Switching to an organization the admin does not belong to changes nothing.
        await client.post("/organization", data={"csrf_token": token, "organization_id": other.id})
        assert "globex" not in (await client.get("/webhooks")).text.lower()
    assert (await app.webhooks.get(other.id, theirs.id)).state == "enabled"
    assert [u.username for u in await app.accounts.list_users(other.id)] == ["globex-partner"]


async def test_an_admin_of_two_organizations_switches_between_them(dashboard: Dashboard) -> None:
    app = dashboard.app
    other = await app.accounts.add_organization("initech")
    await AdminService(app.db).add_membership("admin", other.id)
    await app.accounts.add_user(other.id, "initech-partner", password="p" * 12)
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        token = await login(client)
        assert "initech-partner" not in (await client.get("/users")).text
        resp = await client.post(
            "/organization",
            data={"csrf_token": token, "organization_id": other.id, "next": "/users"},
        )
        assert resp.status_code == 303 and resp.headers["location"] == "/users"
        assert "initech-partner" in (await client.get("/users")).text


async def test_switching_organization_on_a_delivery_page_lands_on_a_page(
    dashboard: Dashboard, receiver: Receiver
) -> None:
    """From /deliveries/<id> the switch went to /deliveries, which is no page (404)."""
    app = dashboard.app
    other = await app.accounts.add_organization("initech")
    await AdminService(app.db).add_membership("admin", other.id)
    hook, _ = await app.webhooks.create(
        dashboard.organization.id, nickname="Ledger", url=receiver.url, topics=["file.created"]
    )
    ping = await app.webhooks.ping(dashboard.organization.id, hook.id)
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        token = await login(client)
        for path in (f"/deliveries/{ping.id}", f"/webhooks/{hook.id}/deliveries", "/nowhere"):
            resp = await client.post(
                "/organization",
                data={"csrf_token": token, "organization_id": other.id, "next": path},
            )
            assert resp.status_code == 303
            landed = await client.get(resp.headers["location"])
            assert landed.status_code == 200, (path, resp.headers["location"])


async def test_the_secret_is_shown_once_and_never_again(
    dashboard: Dashboard, receiver: Receiver
) -> None:
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        token = await login(client)
        location = await _add_webhook(client, token, receiver.url, "Ledger")
        reveal = await client.get(location)
        assert reveal.headers["cache-control"] == "no-store"
        secret = reveal.text.split('id="signing-secret" readonly value="')[1].split('"')[0]
        assert secret.startswith("whsec_")
        assert "hush-hush" not in reveal.text
        # The same address again (reload, back) shows nothing.
        again = await client.get(location)
        assert secret not in again.text
        hooks = await dashboard.app.webhooks.list_webhooks(dashboard.organization.id)
        hook = hooks[0]
        await dashboard.app.webhooks.ping(dashboard.organization.id, hook.id)
        await receiver.wait_for(1)
        rows, _ = await dashboard.app.webhooks.list_deliveries(dashboard.organization.id, hook.id)
        for path in [
            *PAGES,
            location,
            f"/webhooks/{hook.id}/edit",
            f"/webhooks/{hook.id}/deliveries",
            f"/deliveries/{rows[0].id}",
        ]:
            text = (await client.get(path)).text
            assert secret not in text, path
            assert "hush-hush" not in text, path


async def test_another_session_cannot_read_a_secret_message(
    dashboard: Dashboard, receiver: Receiver
) -> None:
    async with httpx.AsyncClient(base_url=dashboard.base) as first:
        token = await login(first)
        location = await _add_webhook(first, token, receiver.url, "Ledger")
        async with httpx.AsyncClient(base_url=dashboard.base) as second:
            await login(second)
            assert "whsec_" not in (await second.get(location)).text
        assert "whsec_" in (await first.get(location)).text


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"url": "ftp://example.com/x"}, "url", "https://"),
        ({"url": "https://10.1.2.3/x"}, "url", "private"),
        ({"topics": []}, "topics", "at least one"),
        ({"nickname": ""}, "nickname", "nickname"),
        (
            {"filter_field": "Path", "filter_operator": "matches", "filter_value": "(["},
            "filter",
            "filter",
        ),
    ],
)
async def test_bad_webhook_input_is_shown_next_to_its_field(
    dashboard: Dashboard, receiver: Receiver, data: dict, field: str, message: str
) -> None:
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        token = await login(client)
        form = {
            "csrf_token": token,
            "nickname": "x",
            "url": receiver.url,
            "topics": ["file.created"],
        }
        form.update(data)
        resp = await client.post("/webhooks", data=form)
        assert resp.status_code == 422
        error = resp.text.split(f'id="{field}-error">')[1].split("</p>")[0]
        assert message in error
        assert await dashboard.app.webhooks.list_webhooks(dashboard.organization.id) == []


async def test_login_page_says_how_to_create_the_first_admin(dashboard: Dashboard) -> None:
    # The fixture added an admin after start; a fresh login page shows no hint then.
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        assert "admins add" not in (await client.get("/login")).text
    await AdminService(dashboard.app.db).remove_admin("admin")
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        assert "sftphook admins add" in (await client.get("/login")).text


async def test_csrf_token_of_the_login_page_is_worthless_after_login(dashboard: Dashboard) -> None:
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        before = CSRF.search((await client.get("/login")).text).group(1)  # type: ignore[union-attr]
        await client.post(
            "/login", data={"username": "admin", "password": PASSWORD, "csrf_token": before}
        )
        after = await csrf_of(client, "/users")
        assert after != before
        resp = await client.post(
            "/users", data={"csrf_token": before, "username": "bob", "password": "p" * 12}
        )
        assert resp.status_code == 403


@pytest.fixture
async def pg_dashboard(settings: Settings, postgres_url: str) -> AsyncIterator[Dashboard]:
    """The dashboard on PostgreSQL, which cannot store a NUL character in text."""
    settings.database_url = postgres_url
    async for value in _dashboard(settings, frozenset({"http"})):
        yield value


async def test_a_nul_character_in_a_form_or_filter_is_refused_not_a_server_error(
    pg_dashboard: Dashboard, receiver: Receiver
) -> None:
    """On PostgreSQL each of these was a 500; the login form one even before logging in."""
    app, org = pg_dashboard.app, pg_dashboard.organization.id
    async with httpx.AsyncClient(base_url=pg_dashboard.base) as client:
        token = CSRF.search((await client.get("/login")).text).group(1)  # type: ignore[union-attr]
        resp = await client.post(
            "/login", data={"username": "ad\x00min", "password": PASSWORD, "csrf_token": token}
        )
        assert resp.status_code == 401 and "Wrong name or password" in resp.text
        token = await login(client)
        for path, params in (("/events", {"path": "inbound\x00"}), ("/audit", {"target": "a\x00"})):
            resp = await client.get(path, params=params)
            assert resp.status_code == 422 and "NUL" in resp.text, path
        form = {"csrf_token": token, "url": receiver.url, "topics": ["file.created"]}
        resp = await client.post("/webhooks", data={**form, "nickname": "Ledger\x00"})
        assert resp.status_code == 422 and "NUL" in resp.text
        resp = await client.post(
            "/audit/notice-email", data={"csrf_token": token, "notice_email": "a\x00@example.com"}
        )
        assert resp.status_code == 422 and "NUL" in resp.text
    assert await app.webhooks.list_webhooks(org) == []
    assert (await app.accounts.get_organization(org)).notice_email is None


async def test_a_nul_character_in_a_dashboard_path_is_refused_not_a_server_error(
    pg_dashboard: Dashboard,
) -> None:
    """Ids and names in a page's path went to PostgreSQL unchecked: each of these was a 500."""
    async with httpx.AsyncClient(base_url=pg_dashboard.base) as client:
        token = await login(client)
        for path in ("/webhooks/a%00b/edit", "/webhooks/a%00b/deliveries", "/deliveries/a%00b"):
            resp = await client.get(path)
            assert resp.status_code == 422 and "NUL" in resp.text, path
        resp = await client.post("/users/a%00b/disable", data={"csrf_token": token})
        assert resp.status_code == 422 and "NUL" in resp.text
        # Logged out, the login page comes first, as for any page.
        client.cookies.clear()
        resp = await client.get("/webhooks/a%00b/edit")
        assert resp.status_code == 303 and resp.headers["location"].startswith("/login")
