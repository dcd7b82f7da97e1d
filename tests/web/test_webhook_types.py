"""The dashboard's webhook form: endpoint type (email takes recipients) and delivery tuning."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sftphook.config import Settings, SMTPSettings
from tests.web.conftest import Dashboard, Receiver, _dashboard, login


@pytest.fixture
async def mail_dashboard(settings: Settings) -> AsyncIterator[Dashboard]:
    smtp = SMTPSettings(host="127.0.0.1", port=2525, starttls=False)
    async for value in _dashboard(settings.model_copy(update={"smtp": smtp}), frozenset({"http"})):
        yield value


def _form(token: str, **fields: Any) -> dict[str, Any]:
    return {"csrf_token": token, "topics": ["file.created"], **fields}


async def test_add_and_edit_a_slack_endpoint_with_tuning(
    mail_dashboard: Dashboard, receiver: Receiver
) -> None:
    app, org = mail_dashboard.app, mail_dashboard.organization.id
    async with httpx.AsyncClient(base_url=mail_dashboard.base) as client:
        token = await login(client)
        resp = await client.post(
            "/webhooks",
            data=_form(token, nickname="Ops", type="slack", url=receiver.url,
                       retry_schedule="5, 5m", timeout="4", max_concurrency="2",
                       rate_limit="1.5"),
        )  # fmt: skip
        assert resp.status_code == 303, resp.text
        # Slack requests are not signed: no secret "to copy now" on the page after it.
        listed = await client.get(resp.headers["location"])
        assert "Webhook Ops added." in listed.text
        assert 'id="reveal-secret"' not in listed.text and "whsec_" not in listed.text
        (hook,) = await app.webhooks.list_webhooks(org)
        # Its secret, rotated, is shown (for a later change of type), said to sign nothing yet.
        rotated = await client.post(f"/webhooks/{hook.id}/rotate", data={"csrf_token": token})
        assert rotated.status_code == 303, rotated.text
        shown = await client.get(rotated.headers["location"])
        assert 'id="reveal-secret"' in shown.text and "whsec_" in shown.text
        assert "are not signed while it is a Slack endpoint" in shown.text
        assert "Every request to" not in shown.text
        hook = await app.webhooks.get(org, hook.id)
        assert hook.type == "slack" and hook.retry_schedule == [5, 300]
        assert (hook.timeout, hook.max_concurrency, hook.rate_limit) == (4, 2, 1.5)

        page = await client.get(f"/webhooks/{hook.id}/edit")
        assert re.search(r'<option value="slack" selected>', page.text)
        assert 'name="retry_schedule"' in page.text and 'value="5, 300"' in page.text
        assert 'name="rate_limit" inputmode="decimal" maxlength="20" value="1.5"' in page.text

        # Out of range: the field's error shows, nothing changes.
        bad = await client.post(
            f"/webhooks/{hook.id}/edit",
            data=_form(token, nickname="Renamed", type="slack", url=receiver.url,
                       rate_limit="0", timeout="4"),
        )  # fmt: skip
        assert bad.status_code == 422 and 'id="rate_limit-error"' in bad.text
        assert await app.webhooks.get(org, hook.id) == hook

        # An emptied field returns to the default; the type changes to Teams.
        ok = await client.post(
            f"/webhooks/{hook.id}/edit",
            data=_form(token, nickname="Ops", type="teams", url=receiver.url,
                       retry_schedule="none", max_concurrency="2", rate_limit="1.5"),
        )  # fmt: skip
        assert ok.status_code == 303, ok.text
        after = await app.webhooks.get(org, hook.id)
        assert after.type == "teams" and after.timeout is None and after.rate_limit == 1.5
        # No retries at all is a value of its own, not the default, and shows as such.
        assert after.retry_schedule == []
        page = await client.get(f"/webhooks/{hook.id}/edit")
        assert 'name="retry_schedule" maxlength="400" value="none"' in page.text


async def test_the_edit_form_shows_tuning_set_through_the_api_exactly(
    mail_dashboard: Dashboard, receiver: Receiver
) -> None:
    # Saving the form unchanged must not round what the API set (six digits, `1.23457e+06`).
    app, org = mail_dashboard.app, mail_dashboard.organization.id
    tuning = {"retry_schedule": [0.5, 604799.5], "timeout": 12.345678, "rate_limit": 1234.5678}
    hook, _ = await app.webhooks.create(
        org, nickname="Exact", url=receiver.url, topics=["file.created"], settings=tuning
    )
    async with httpx.AsyncClient(base_url=mail_dashboard.base) as client:
        token = await login(client)
        page = await client.get(f"/webhooks/{hook.id}/edit")
        values = dict(re.findall(r'name="(\w+)"[^>]*? value="([^"]*)"', page.text))
        assert values["retry_schedule"] == "0.5, 604799.5"
        assert (values["timeout"], values["rate_limit"]) == ("12.345678", "1234.5678")
        saved = await client.post(
            f"/webhooks/{hook.id}/edit",
            data=_form(token, nickname="Exact", type="webhook", url=receiver.url,
                       **{k: values[k] for k in ("retry_schedule", "timeout", "rate_limit")}),
        )  # fmt: skip
        assert saved.status_code == 303, saved.text
    after = await app.webhooks.get(org, hook.id)
    assert (after.retry_schedule, after.timeout, after.rate_limit) == (
        [0.5, 604799.5],
        12.345678,
        1234.5678,
    )


async def test_email_endpoint_takes_recipients(mail_dashboard: Dashboard) -> None:
    app, org = mail_dashboard.app, mail_dashboard.organization.id
    async with httpx.AsyncClient(base_url=mail_dashboard.base) as client:
        token = await login(client)
        bad = await client.post(
            "/webhooks", data=_form(token, nickname="Mail", type="email", url="ops at example")
        )
        assert bad.status_code == 422 and 'id="url-error"' in bad.text
        # The re-shown form keeps the type, so the field is labelled for recipients.
        assert re.search(r"data-url-label[^>]*>Recipients<", bad.text)
        assert await app.webhooks.list_webhooks(org) == []
        resp = await client.post(
            "/webhooks",
            data=_form(token, nickname="Mail", type="email", url="Ops <ops@example.com>"),
        )
        assert resp.status_code == 303
        (hook,) = await app.webhooks.list_webhooks(org)
        assert hook.type == "email" and hook.url == "Ops <ops@example.com>"
        page = await client.get(f"/webhooks/{hook.id}/edit")
        assert re.search(r"data-url-label[^>]*>Recipients<", page.text)
        listing = await client.get("/webhooks")
        assert '<div class="muted small">Email</div>' in listing.text


async def test_email_without_smtp_is_refused_on_the_type_field(dashboard: Dashboard) -> None:
    async with httpx.AsyncClient(base_url=dashboard.base) as client:
        token = await login(client)
        page = await client.get("/webhooks")
        assert "needs an SMTP server in the configuration" in page.text
        bad = await client.post(
            "/webhooks", data=_form(token, nickname="Mail", type="email", url="ops@example.com")
        )
        assert bad.status_code == 422 and 'id="type-error"' in bad.text
        assert "SFTPHOOK_SMTP__HOST" in bad.text


async def _add_webhook_dialog(dashboard: Dashboard, browser: Any) -> tuple[Any, Any, Any]:
    """A browser logged in to the dashboard, its Add webhook dialog open."""
    context = await browser.new_context(base_url=dashboard.base)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    await page.goto("/login")
    await page.get_by_label("Name").fill(dashboard.admin)
    await page.get_by_label("Password").fill(dashboard.password)
    await page.get_by_role("button", name="Log in").click()
    await page.get_by_role("button", name="Add webhook").first.click()
    return context, page, page.get_by_role("dialog", name="Add webhook")


@pytest.mark.e2e
async def test_choosing_email_in_the_dialog_asks_for_recipients(
    mail_dashboard: Dashboard, browser: Any
) -> None:
    from playwright.async_api import expect

    context, page, dialog = await _add_webhook_dialog(mail_dashboard, browser)
    await expect(dialog.get_by_label("Endpoint URL")).to_be_visible()
    await dialog.get_by_label("Endpoint type").select_option("email")
    await expect(dialog.get_by_label("Recipients")).to_be_visible()
    await expect(dialog.get_by_label("Authorization header")).to_be_hidden()
    await dialog.get_by_label("Nickname").fill("Ops mail")
    await dialog.get_by_label("Recipients").fill("Ops <ops@example.com>, dev@example.com")
    await dialog.get_by_text("Delivery tuning").click()
    await dialog.get_by_label("Rate limit (requests per second)").fill("3")
    await dialog.get_by_role("button", name="Add webhook").click()
    await expect(page.get_by_text("Webhook Ops mail added.")).to_be_visible()
    # Email is not signed: no secret dialog.
    await expect(page.get_by_role("dialog", name="Signing secret")).to_have_count(0)
    (hook,) = await mail_dashboard.app.webhooks.list_webhooks(mail_dashboard.organization.id)
    assert hook.type == "email" and hook.rate_limit == 3
    assert hook.url == "Ops <ops@example.com>, dev@example.com"
    await context.close()


@pytest.mark.e2e
async def test_a_refused_authorization_header_on_an_email_endpoint_is_shown(
    mail_dashboard: Dashboard, browser: Any
) -> None:
    """A header typed before choosing Email is still sent and refused, but its field and error
    came back hidden with the email type: the dialog reopened with no visible reason."""
    from playwright.async_api import expect

    context, page, dialog = await _add_webhook_dialog(mail_dashboard, browser)
    await dialog.get_by_label("Nickname").fill("Ops mail")
    await dialog.get_by_label("Authorization header").fill("Bearer abc")
    await dialog.get_by_label("Endpoint type").select_option("email")
    await dialog.get_by_label("Recipients").fill("ops@example.com")
    await dialog.get_by_role("button", name="Add webhook").click()
    dialog = page.get_by_role("dialog", name="Add webhook")
    await expect(dialog.locator("#authorization_header-error")).to_be_visible()
    await dialog.get_by_label("Authorization header").fill("")
    await dialog.get_by_role("button", name="Add webhook").click()
    await expect(page.get_by_text("Webhook Ops mail added.")).to_be_visible()
    # Email is not signed: no secret dialog.
    await expect(page.get_by_role("dialog", name="Signing secret")).to_have_count(0)
    (hook,) = await mail_dashboard.app.webhooks.list_webhooks(mail_dashboard.organization.id)
    assert hook.type == "email" and hook.authorization_header is None
    await context.close()
