"""Owner notices reach a real SMTP server (aiosmtpd on 127.0.0.1) when the engine pauses a
webhook on its own or a signing secret is rotated; each notice is in the audit log."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from sftphook.audit import Actor
from sftphook.config import Settings
from sftphook.notices import OwnerNotices, rotated_notice
from sftphook.store.models import AuditEntry
from tests.conftest import serving
from tests.webhooks.conftest import Receiver, file_event, org_id, wait_until


class Mailbox:
    """An SMTP server that answers DATA with the queued `answers` first, then accepts."""

    def __init__(self) -> None:
        self.answers: list[str] = []
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.tries = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.tries += 1
        if self.answers:
            return self.answers.pop(0)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    handler = Mailbox()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def _with_smtp(settings: Settings, port: int | None) -> Settings:
    hooks = settings.webhooks.model_copy(
        update={"auto_pause_after": 2, "retry_schedule": [0.05], "retry_jitter": 0.0}
    )
    smtp = settings.smtp.model_copy(
        update={
            "host": "127.0.0.1" if port else None,
            "port": port or 25,
            "starttls": False,
            "from_": "sftphook <notices@example.com>",
        }
    )
    return settings.model_copy(update={"webhooks": hooks, "smtp": smtp})


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


async def _audit(app: Any, action: str) -> list[AuditEntry]:
    rows, _ = await app.audit.list((await org_id(app)), actions=[action], limit=50)
    return rows


async def _fail_twice(app: Any, receiver: Receiver) -> str:
    async def refuse(request: web.Request, received: Any) -> web.StreamResponse:
        return web.Response(status=500, text="down")

    receiver.behaviour = refuse
    org = await org_id(app)
    view, _ = await app.webhooks.create(
        org, nickname="orders feed", url=receiver.url, topics=["file.created"]
    )
    for path in ("a.csv", "b.csv"):
        await app.recorder.record(file_event(org, path=path))
    return str(view.id)


async def test_auto_pause_and_rotation_notices_arrive_by_email(
    settings: Settings, receiver: Receiver, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    async with serving(_with_smtp(settings, port), frozenset({"worker"})) as app:
        org = await org_id(app)
        await app.accounts.set_notice_email(org, "Owner <owner@example.com>")
        wid = await _fail_twice(app, receiver)
        await wait_until(lambda: _has(box, 1), within=20)
        rcpts, paused = box.messages[0]
        assert rcpts == ["owner@example.com"]
        assert paused["From"] == "sftphook <notices@example.com>"
        assert "orders feed" in paused["Subject"] and "paused automatically" in paused["Subject"]
        body = _text(paused)
        assert "paused after 2 consecutive failed deliveries" in body
        assert f"sftphook webhooks resume {wid}" in body
        assert f"/api/v1/webhooks/{wid}/resume" in body

        (line,) = await _audit(app, "webhook.paused")
        assert (line.actor_type, line.actor_id) == ("system", "system")
        assert line.details["automatic"] is True
        assert "2 consecutive failed deliveries" in line.details["reason"]
        assert (await app.webhooks.get(org, wid)).state == "paused"

        _, secret = await app.webhooks.rotate_secret(
            org, wid, grace_seconds=3600, actor=Actor.admin("alice")
        )
        await wait_until(lambda: _has(box, 2), within=10)
        _, rotated = box.messages[1]
        assert "signing secret" in rotated["Subject"] and "orders feed" in rotated["Subject"]
        body = _text(rotated)
        assert "alice (admin)" in body and "3600 s" in body
        assert secret not in rotated.as_string()
        await wait_until(lambda: _count(app, "notice.sent", 2), within=10)
        sent = await _audit(app, "notice.sent")
        assert {r.details["about"] for r in sent} == {
            "webhook.auto_paused",
            "webhook.secret_rotated",
        }
        assert all(r.details["to"] == "Owner <owner@example.com>" for r in sent)


async def test_without_smtp_host_notices_are_only_audited(
    settings: Settings, receiver: Receiver
) -> None:
    async with serving(_with_smtp(settings, None), frozenset({"worker"})) as app:
        org = await org_id(app)
        await app.accounts.set_notice_email(org, "owner@example.com")
        await _fail_twice(app, receiver)
        await wait_until(lambda: _count(app, "notice.skipped", 1), within=20)
        (line,) = await _audit(app, "notice.skipped")
        assert line.details["reason"] == "no SMTP host is configured"
        assert line.details["about"] == "webhook.auto_paused"


async def test_no_notice_address_no_notice(settings: Settings, receiver: Receiver) -> None:
    async with serving(_with_smtp(settings, None), frozenset({"worker"})) as app:
        await _fail_twice(app, receiver)
        await wait_until(lambda: _count(app, "webhook.paused", 1), within=20)
        await asyncio.sleep(0.2)
        assert await _audit(app, "notice.*") == []


async def test_transient_smtp_failures_are_retried_and_permanent_ones_recorded(
    app: Any, settings: Settings, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    org = await org_id(app)
    await app.accounts.set_notice_email(org, "owner@example.com")
    notices = OwnerNotices(app.db, _with_smtp(settings, port).smtp, retry_delays=(0.01, 0.01, 0.01))
    notice = rotated_notice(
        organization_id=org,
        webhook_id="w-1",
        nickname="orders",
        actor=Actor("cli", "cli"),
        rotated_at=0,
        grace_seconds=0,
    )
    box.answers = ["451 try again later", "421 busy"]
    assert await notices.deliver(notice) == "notice.sent"
    assert box.tries == 3 and len(box.messages) == 1

    box.answers = ["550 no such mailbox"]
    assert await notices.deliver(notice) == "notice.failed"
    assert box.tries == 4
    (failed,) = await _audit(app, "notice.failed")
    assert failed.details["smtp_code"] == 550 and failed.details["tries"] == 1

    box.answers = ["451 later"] * 5
    assert await notices.deliver(notice) == "notice.failed"
    assert box.tries == 4 + 4  # the first try and three retries


async def test_notices_are_drained_when_the_app_stops(
    settings: Settings, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    async with serving(_with_smtp(settings, port), frozenset({"worker"})) as app:
        org = await org_id(app)
        await app.accounts.set_notice_email(org, "owner@example.com")
        view, _ = await app.webhooks.create(
            org, nickname="n", url="http://127.0.0.1:9/x", topics=["file.created"]
        )
        for _ in range(3):
            await app.webhooks.rotate_secret(org, view.id)
    assert len(box.messages) == 3


async def _has(box: Mailbox, count: int) -> bool:
    return len(box.messages) >= count


async def _count(app: Any, action: str, count: int) -> bool:
    return len(await _audit(app, action)) >= count


async def test_a_chat_webhook_url_is_shown_without_its_secret_path(
    settings: Settings, receiver: Receiver, mailbox: tuple[Mailbox, int]
) -> None:
    """A Slack or Teams incoming-webhook URL carries its credential in the path: the audit log
    and the owner notices show only where it goes."""
    box, port = mailbox
    token = "T0ORG/B0HOOK/xoxTokenThatPostsToTheChannel"

    async def gone(request: web.Request, received: Any) -> web.StreamResponse:
        return web.Response(status=410)

    receiver.behaviour = gone
    async with serving(_with_smtp(settings, port), frozenset({"worker"})) as app:
        org = await org_id(app)
        await app.accounts.set_notice_email(org, "owner@example.com")
        view, _ = await app.webhooks.create(
            org,
            nickname="ops channel",
            type="slack",
            url=f"{receiver.url}/services/{token}",
            topics=["file.created"],
        )
        await app.recorder.record(file_event(org))
        await wait_until(lambda: _has(box, 1), within=20)
        await app.webhooks.remove(org, view.id)
        lines = await _audit(app, "webhook.*")
    body = _text(box.messages[0][1])
    assert f"http://127.0.0.1:{receiver.port}/…" in body
    assert "xoxToken" not in box.messages[0][1].as_string()
    shown = {line.action: line.details["url"] for line in lines if "url" in line.details}
    assert shown == {
        "webhook.created": f"http://127.0.0.1:{receiver.port}/…",
        "webhook.deleted": f"http://127.0.0.1:{receiver.port}/…",
    }
