"""The Audit page: what admins did, failed dashboard logins, filters, and the notice address."""

from __future__ import annotations

import base64
import re

import httpx

from tests.web.conftest import CSRF, Dashboard, login

WRONG = "wrong-password-for-admin"


def _table(html: str) -> str:
    """The audit table's rows (the filter's options name every action too)."""
    found = re.search(r"<tbody>(.*)</tbody>", html, re.S)
    return found.group(1) if found else ""


async def test_audit_page_lists_actions_failed_logins_and_filters(dashboard: Dashboard) -> None:
    async with httpx.AsyncClient(base_url=dashboard.base) as intruder:
        page = await intruder.get("/login")
        token = CSRF.search(page.text)
        assert token is not None
        resp = await intruder.post(
            "/login",
            data={"username": "admin", "password": WRONG, "csrf_token": token.group(1)},
        )
        assert resp.status_code == 401
    await dashboard.app.security.flush()

    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        csrf = await login(client)
        resp = await client.post(
            "/users",
            data={"csrf_token": csrf, "username": "partner-b", "password": "a long password 1"},
        )
        assert resp.status_code == 303, resp.text
        page = await client.get("/audit")
        assert page.status_code == 200
        assert 'href="/audit" aria-current="page"' in page.text
        text = _table(page.text)
        assert "user.added" in text and "partner-b" in text and "admin" in text
        assert "dashboard.login_failed" in text and "127.0.0.1" in text
        assert WRONG not in text and "a long password 1" not in text

        only = await client.get("/audit", params={"action": "user.*"})
        assert "user.added" in _table(only.text)
        assert "dashboard.login_failed" not in _table(only.text)
        nothing = await client.get("/audit", params={"since": "2100-01-01"})
        assert "Nothing recorded that matches this filter" in nothing.text
        target = await client.get("/audit", params={"target": "partner-b"})
        assert "user.added" in _table(target.text)
        assert "dashboard.login_failed" not in _table(target.text)

        refused = await client.post(
            "/audit/notice-email", data={"csrf_token": csrf, "notice_email": "nope"}
        )
        assert refused.status_code == 422 and "email addresses" in refused.text
        saved = await client.post(
            "/audit/notice-email",
            data={"csrf_token": csrf, "notice_email": "Ops <ops@example.com>"},
        )
        assert saved.status_code == 303
        after = await client.get(saved.headers["location"])
        assert "Owner notices go to Ops &lt;ops@example.com&gt;" in after.text
        assert re.search(r'name="notice_email"[^>]*value="Ops &lt;ops@example.com&gt;"', after.text)
        assert "organization.updated" in _table(after.text)

    org = await dashboard.app.accounts.get_organization(dashboard.organization.id)
    assert org.notice_email == "Ops <ops@example.com>"
    rows, _ = await dashboard.app.audit.list(org.id, actions=["user.added"])
    assert (rows[0].actor_type, rows[0].actor_id) == ("admin", "admin")
    failed, _ = await dashboard.app.audit.list(org.id, actions=["dashboard.login_failed"])
    assert failed[0].details["usernames"] == ["admin"] and failed[0].details["count"] == 1


async def test_notice_address_form_needs_a_valid_csrf_token(dashboard: Dashboard) -> None:
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        await login(client)
        resp = await client.post(
            "/audit/notice-email", data={"csrf_token": "forged", "notice_email": "a@example.com"}
        )
        assert resp.status_code == 403
    org = await dashboard.app.accounts.get_organization(dashboard.organization.id)
    assert org.notice_email is None


async def test_a_refused_notice_address_stays_in_its_field(dashboard: Dashboard) -> None:
    """The refused form showed the stored address (here none) instead of what was typed."""
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        csrf = await login(client)
        refused = await client.post(
            "/audit/notice-email", data={"csrf_token": csrf, "notice_email": "ops@@example"}
        )
        assert refused.status_code == 422
        assert re.search(r'name="notice_email"[^>]*value="ops@@example"', refused.text)
        assert 'id="notice-email-error"' in refused.text


async def test_dates_in_the_wrong_order_are_explained_in_the_filter_that_keeps_them(
    dashboard: Dashboard,
) -> None:
    """From after To (easy to pick in the date fields) gave the bare error page "since must be
    earlier than until": the filter was gone, and the form has no field called since."""
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        await login(client)
        params = {"action": "user.*", "since": "2026-02-01", "until": "2026-01-01"}
        page = await client.get("/audit", params=params)
        assert page.status_code == 422
        error = page.text.split('id="dates-error">')[1].split("</p>")[0]
        assert "From" in error and "To" in error
        assert re.search(r'name="since" type="date" value="2026-02-01"', page.text)
        assert re.search(r'name="until" type="date" value="2026-01-01"', page.text)
        assert '<option value="user.*" selected>' in page.text
        # The same day in both is one whole day, not an error.
        same = await client.get("/audit", params={"since": "2026-01-01", "until": "2026-01-01"})
        assert same.status_code == 200


async def test_out_of_range_dates_and_links_are_no_server_error(dashboard: Dashboard) -> None:
    """The last day ISO 8601 can say, and `before` links with times no integer column holds,
    were 500s."""
    huge = base64.urlsafe_b64encode(b"99999999999999999999:x").decode().rstrip("=")
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        await login(client)
        last_day = await client.get("/audit", params={"until": "9999-12-31"})
        assert last_day.status_code == 200, last_day.text
        refused = await client.get("/audit", params={"before": huge})
        assert refused.status_code == 422 and "cursor is not one" in refused.text
        for before in ["99999999999999999999:x", "²:x", "-5:x", "5:"]:
            events = await client.get("/events", params={"before": before})
            assert events.status_code == 200, (before, events.text)
