"""The whole dashboard flow in headless Chromium, against a running server and a real receiver."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from sftphook.webhooks.signing import hub_signature
from tests.conftest import require_binary
from tests.web.conftest import Dashboard, Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


async def _shot(page: Any, directory: Path, name: str, **options: Any) -> None:
    await page.screenshot(path=str(directory / f"{name}.png"), **options)


async def _sftp(port: int, key: Path, user: str, commands: str, workdir: Path) -> None:
    sftp = require_binary("sftp")
    batch = workdir / "batch.txt"
    batch.write_text(commands)
    proc = await asyncio.create_subprocess_exec(
        sftp,
        "-P", str(port),
        "-i", str(key),
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "BatchMode=yes",
        "-o", "LogLevel=ERROR",
        "-o", "IdentitiesOnly=yes",
        "-b", str(batch),
        f"{user}@127.0.0.1",
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (out + err).decode()


async def _client_key(workdir: Path) -> Path:
    keygen = require_binary("ssh-keygen")
    key = workdir / "id_ed25519"
    proc = await asyncio.create_subprocess_exec(
        keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key),
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await proc.wait() == 0
    return key


async def _nav(page: Any, name: str) -> None:
    await page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()


async def _open_actions(page: Any, nickname: str) -> None:
    await page.get_by_role("button", name=f"Actions for {nickname}").click()


async def test_operator_walks_the_whole_flow_in_a_browser(
    full_dashboard: Dashboard,
    receiver: Receiver,
    browser: Any,
    screenshots: Path,
    tmp_path: Path,
) -> None:
    from playwright.async_api import expect

    dash = full_dashboard
    context = await browser.new_context(viewport=DESKTOP, base_url=dash.base)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=dash.base)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # 1. Log in (the dashboard sends a visitor without a session to the login page).
    await page.goto("/webhooks")
    await expect(page).to_have_url(re.compile(r"/login"))
    await _shot(page, screenshots, "login")
    await page.get_by_label("Name").fill(dash.admin)
    await page.get_by_label("Password").fill(dash.password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(re.compile(r"/webhooks$"))
    await expect(page.get_by_role("heading", name="No webhooks yet")).to_be_visible()

    # 2. Add webhook: a bad URL first, whose error shows next to the field.
    await page.get_by_role("button", name="Add webhook").first.click()
    dialog = page.get_by_role("dialog", name="Add webhook")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_label("Nickname")).to_be_focused()
    await dialog.get_by_label("Nickname").fill("Invoice importer")
    await dialog.get_by_label("Endpoint URL").fill("ftp://example.com/hook")
    await dialog.get_by_role("button", name="Add webhook").click()
    dialog = page.get_by_role("dialog", name="Add webhook")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("#url-error")).to_contain_text("https://")
    await expect(dialog.get_by_label("Endpoint URL")).to_have_attribute("aria-invalid", "true")
    await _shot(page, screenshots, "add-webhook-error")

    await dialog.get_by_label("Endpoint URL").fill(receiver.url)
    await dialog.get_by_label("Authorization header").fill("Bearer app-token-123")
    await dialog.get_by_label("File deleted").check()
    await expect(dialog.get_by_label("File created")).to_be_checked()
    # Filter rows: add two, remove one, keep "Path ends with .csv".
    await dialog.get_by_role("button", name="+ Add rule").click()
    await dialog.get_by_role("button", name="+ Add rule").click()
    rules = dialog.locator(".rule")
    await expect(rules).to_have_count(2)
    await rules.nth(1).get_by_role("button", name="Remove this rule").click()
    await expect(rules).to_have_count(1)
    await rules.nth(0).get_by_label("Field").select_option("Path")
    await rules.nth(0).get_by_label("Operator").select_option("ends_with")
    await rules.nth(0).get_by_label("Value").fill(".csv")
    await _shot(page, screenshots, "add-webhook")
    await dialog.get_by_role("button", name="Add webhook").click()

    # 3. The secret, once, with a copy button.
    reveal = page.get_by_role("dialog", name="Signing secret")
    await expect(reveal).to_be_visible()
    secret = await reveal.get_by_label("Signing secret").input_value()
    assert secret.startswith("whsec_")
    await reveal.get_by_role("button", name="Copy").click()
    await expect(reveal.get_by_role("status")).to_have_text("Copied to the clipboard.")
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    await _shot(
        page,
        screenshots,
        "secret",
        mask=[reveal.get_by_label("Signing secret")],
        mask_color="#e6e9ee",
    )
    await page.keyboard.press("Escape")  # the reveal does not close by accident
    await expect(reveal).to_be_visible()
    await reveal.get_by_role("button", name="Okay, I got the secret").click()
    await expect(reveal).to_have_count(0)
    # Gone from the page itself, not only hidden: the dialog's close handler removes it.
    await expect(page.locator("#reveal-secret")).to_have_count(0)
    assert secret not in await page.content()
    await page.reload()
    assert secret not in await page.content()
    await _nav(page, "Events")
    await page.go_back()
    await expect(page).to_have_url(re.compile(r"/webhooks$"))
    assert secret not in await page.content()
    row = page.locator("tr", has_text="Invoice importer")
    await expect(row).to_contain_text(receiver.url)
    await expect(row).to_contain_text("Enabled")

    # 4. The actions menu works from the keyboard.
    actions = page.get_by_role("button", name="Actions for Invoice importer")
    await actions.focus()
    await page.keyboard.press("ArrowDown")
    menu = page.get_by_role("menu")
    await expect(menu).to_be_visible()
    await expect(menu.get_by_role("menuitem", name="Ping webhook")).to_be_focused()
    await page.keyboard.press("ArrowDown")
    await expect(menu.get_by_role("menuitem", name="View deliveries")).to_be_focused()
    await _shot(page, screenshots, "actions-menu")
    await page.keyboard.press("Escape")
    await expect(menu).to_be_hidden()
    await expect(actions).to_be_focused()
    await _shot(page, screenshots, "webhooks")

    # 5. Ping: confirm, land on the deliveries, see it succeed without reloading.
    await _open_actions(page, "Invoice importer")
    await page.get_by_role("menuitem", name="Ping webhook").click()
    confirm = page.get_by_role("dialog", name="Ping webhook")
    await expect(confirm).to_contain_text("Invoice importer")
    await confirm.get_by_role("button", name="Yes, ping this webhook").click()
    await expect(page).to_have_url(re.compile(r"/deliveries$"))
    (ping,) = await receiver.wait_for(1)
    assert json.loads(ping.body)["Topic"] == "webhook.ping"
    assert ping.headers["X-Hub-Signature"] == hub_signature(secret, ping.body)
    assert ping.headers["Authorization"] == "Bearer app-token-123"
    deliveries = page.locator("#deliveries tbody")
    await expect(deliveries.locator("tr").first).to_contain_text("Succeeded")
    await expect(deliveries.locator("tr").first).to_contain_text("webhook.ping")

    # 6. A delivery's detail: pretty payload, masked headers, the response.
    await deliveries.locator("tr").first.get_by_role("link").first.click()
    await expect(page.locator("#payload")).to_contain_text('"Topic": "webhook.ping"')
    await expect(page.locator("#attempt-1")).to_contain_text("HTTP 200")
    await expect(page.locator("#attempt-1")).to_contain_text("sha256=***")
    await expect(page.locator("#attempt-1")).to_contain_text('"received": true')
    body = await page.content()
    assert secret not in body and "app-token-123" not in body
    await _shot(page, screenshots, "delivery", full_page=True)
    await page.get_by_role("button", name="Re-send").click()
    await receiver.wait_for(2)
    await expect(page.locator("#attempt-1")).to_contain_text("HTTP 200")

    # 7. SFTP users: add one with a public key; the page shows how to connect.
    key = await _client_key(tmp_path)
    await _nav(page, "SFTP users")
    await page.get_by_role("button", name="Add user").click()
    add_user = page.get_by_role("dialog", name="Add SFTP user")
    await add_user.get_by_label("Username").fill("partner-acme")
    public_key = await asyncio.to_thread(Path(f"{key}.pub").read_text)
    await add_user.get_by_label("Public key").fill(public_key)
    await add_user.get_by_role("button", name="Add user").click()
    await expect(page.locator("tr", has_text="partner-acme")).to_contain_text("Enabled")
    port = dash.app.sftp.port
    await expect(page.locator(".command")).to_contain_text(f"sftp -P {port}")
    await expect(page.locator(".fingerprints")).to_contain_text("SHA256:")
    await _shot(page, screenshots, "users")

    # 8. An upload with OpenSSH sftp appears on the open deliveries page without a reload.
    await page.goto("/webhooks")
    await page.get_by_role("link", name="Invoice importer").click()
    rows_before = await deliveries.locator("tr").count()
    (tmp_path / "invoice 2026.csv").write_text("id,amount\n1,100\n")
    await _sftp(port, key, "partner-acme", 'put "invoice 2026.csv"\n', tmp_path)
    created = (await receiver.wait_for(3))[2]
    assert json.loads(created.body)["Data"]["Path"] == "invoice+2026.csv"
    assert created.headers["X-Hub-Signature"] == hub_signature(secret, created.body)
    await expect(deliveries.locator("tr")).to_have_count(rows_before + 1)
    await expect(deliveries.locator("tr").first).to_contain_text("file.created")
    await expect(deliveries.locator("tr").first).to_contain_text("Succeeded")
    await _shot(page, screenshots, "deliveries")
    await page.set_viewport_size(PHONE)
    await _shot(page, screenshots, "deliveries-phone", full_page=True)
    await page.set_viewport_size(DESKTOP)

    # 9. Events: the upload is there, and the topic filter works.
    await _nav(page, "Events")
    await expect(page.locator("tr", has_text="invoice 2026.csv")).to_contain_text("partner-acme")
    await page.get_by_label("Topic").select_option("file.deleted")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("heading", name="No events match this filter")).to_be_visible()
    await page.get_by_label("Topic").select_option("file.created")
    await page.get_by_label("Path starts with").fill("invoice")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("tr", has_text="invoice 2026.csv")).to_be_visible()
    await _shot(page, screenshots, "events")

    # 10. Rotate: a new secret, once; the next ping is signed with it.
    await _nav(page, "Webhooks")
    await _open_actions(page, "Invoice importer")
    await page.get_by_role("menuitem", name="Rotate secret").click()
    rotate = page.get_by_role("dialog", name="Rotate signing secret")
    await rotate.get_by_label("Keep the old secret valid for").select_option("0")
    await rotate.get_by_role("button", name="Yes, rotate the secret").click()
    reveal = page.get_by_role("dialog", name="New signing secret")
    new_secret = await reveal.get_by_label("Signing secret").input_value()
    assert new_secret.startswith("whsec_") and new_secret != secret
    await reveal.get_by_role("button", name="Okay, I got the secret").click()
    await page.reload()
    assert new_secret not in await page.content()
    await _open_actions(page, "Invoice importer")
    await page.get_by_role("menuitem", name="Ping webhook").click()
    await page.get_by_role("button", name="Yes, ping this webhook").click()
    second_ping = (await receiver.wait_for(4))[3]
    assert second_ping.headers["X-Hub-Signature"] == hub_signature(new_secret, second_ping.body)
    assert second_ping.headers["X-Hub-Signature"] != hub_signature(secret, second_ping.body)

    # 11. Pause; an upload while paused is held; resume and deliver it.
    await _nav(page, "Webhooks")
    await _open_actions(page, "Invoice importer")
    await page.get_by_role("menuitem", name="Pause").click()
    await page.get_by_role("button", name="Yes, pause this webhook").click()
    await expect(page.locator("tr", has_text="Invoice importer")).to_contain_text("Paused")
    (tmp_path / "held.csv").write_text("x\n")
    await _sftp(port, key, "partner-acme", "put held.csv\n", tmp_path)
    await asyncio.sleep(0.5)
    assert len(receiver.requests) == 4
    await _open_actions(page, "Invoice importer")
    await page.get_by_role("menuitem", name="Resume").click()
    resume = page.get_by_role("dialog", name="Resume webhook")
    await expect(resume.get_by_label("Deliver them now")).to_be_checked()
    await resume.get_by_role("button", name="Resume").click()
    await expect(page.get_by_role("status")).to_contain_text("1 held delivery sent")
    held = (await receiver.wait_for(5))[4]
    assert json.loads(held.body)["Data"]["Path"] == "held.csv"

    # 12. Edit, then delete.
    await _open_actions(page, "Invoice importer")
    await page.get_by_role("menuitem", name="Edit").click()
    await page.get_by_label("Nickname").fill("Invoices")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.locator("tr", has_text="Invoices")).to_be_visible()

    # Phone width: the same pages stay usable.
    await page.set_viewport_size(PHONE)
    await _shot(page, screenshots, "webhooks-phone", full_page=True)
    await page.set_viewport_size(DESKTOP)

    await _open_actions(page, "Invoices")
    await page.get_by_role("menuitem", name="Delete").click()
    await page.get_by_role("button", name="Yes, delete this webhook").click()
    await expect(page.get_by_role("heading", name="No webhooks yet")).to_be_visible()

    # The audit log has every change above, newest first, with who made it.
    await _nav(page, "Audit")
    rows = page.locator("table.audit tbody tr")
    await expect(rows.first).to_contain_text("webhook.deleted")
    actions = await page.locator("table.audit tbody tr td:nth-child(3)").all_inner_texts()
    for action in ("webhook.created", "webhook.paused", "webhook.resumed", "webhook.updated"):
        assert action in actions, actions
    await page.get_by_label("Action").select_option("webhook.paused")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)
    await _shot(page, screenshots, "audit")

    # 13. Log out: the pages need a session again.
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(re.compile(r"/login"))
    await page.goto("/webhooks")
    await expect(page).to_have_url(re.compile(r"/login"))
    assert errors == []
    await context.close()
