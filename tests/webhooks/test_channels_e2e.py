"""Slack, Teams and email endpoints end to end: an event recorded, the engine sends, a real local
server (aiohttp for the chat services, aiosmtpd for email) checks what arrives."""

from __future__ import annotations

import email
import email.policy
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from sftphook.config import Settings, SMTPSettings
from sftphook.errors import InvalidInput, UnsafeDestination
from tests.conftest import serving
from tests.support.teams import read_card
from tests.webhooks.conftest import Receiver, file_event, org_id, wait_until

WORKER = frozenset({"worker"})
SMTP_USER = "sftphook-mailer"
SMTP_PASSWORD = "smtp-pass-4711-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MailHandler:
    """Accepts mail, or answers with the scripted replies first (`451 …`, `550 …`)."""

    def __init__(self) -> None:
        self.answers: list[str] = []
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.logins: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.answers:
            return self.answers.pop(0)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 2.0.0 queued as 4711"


class MailServer:
    def __init__(self) -> None:
        self.handler = MailHandler()
        self.port = _free_port()

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
            ok = isinstance(data, LoginPassword) and data.password == SMTP_PASSWORD.encode()
            if ok:
                self.handler.logins.append(data.login)
            return AuthResult(success=ok)

        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticate,
            auth_require_tls=False,
        )


@pytest.fixture
def mail() -> Iterator[MailServer]:
    server = MailServer()
    server.controller.start()
    try:
        yield server
    finally:
        server.controller.stop()


@pytest.fixture
def mail_settings(settings: Settings, mail: MailServer) -> Settings:
    smtp = SMTPSettings(
        host="127.0.0.1",
        port=mail.port,
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        starttls=False,
        from_="sftphook <noreply@example.com>",
        timeout=5,
    )
    return settings.model_copy(update={"smtp": smtp})


async def _delivery(app: Any, org: str, hook_id: str, final: bool = True) -> Any:
    async def settled() -> bool:
        rows, _ = await app.webhooks.list_deliveries(org, hook_id)
        return bool(rows) and (not final or rows[0].status in ("succeeded", "failed"))

    await wait_until(settled)
    rows, _ = await app.webhooks.list_deliveries(org, hook_id)
    view, attempts = await app.webhooks.get_delivery(org, rows[0].id)
    return view, attempts


async def test_slack_receives_a_block_kit_message(settings, receiver: Receiver):
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org, nickname="ops channel", type="slack", url=receiver.url, topics=["file.created"]
        )
        assert hook.type == "slack"
        await app.recorder.record(
            file_event(org, path="inbound/invoice 2026.csv", size=357464, client_ip="192.0.2.7")
        )
        (got,) = await receiver.wait_for(1)
        assert got.headers["Content-Type"] == "application/json"
        assert "X-Hub-Signature" not in got.headers  # a chat service reads, it does not verify
        body = got.json()
        assert body["text"] == "partner-acme uploaded inbound/invoice 2026.csv (349 KB)"
        headline, facts, context = body["blocks"]
        assert headline["type"] == "section" and headline["text"]["type"] == "mrkdwn"
        assert headline["text"]["text"].startswith("*partner-acme*")
        fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in facts["fields"]}
        assert fields["*Topic*"] == "file.created"
        assert fields["*Path*"] == "inbound/invoice 2026.csv"
        assert fields["*Size*"] == "349 KB (357,464 bytes)"
        assert fields["*Actor*"] == "partner-acme (User)"
        assert fields["*Time*"].endswith("UTC")
        assert context["type"] == "context"
        view, attempts = await _delivery(app, org, hook.id)
        assert view.status == "succeeded" and attempts[0].response_status == 200
        assert json.loads(attempts[0].request_body) == body


async def test_teams_receives_an_adaptive_card(settings, receiver: Receiver):
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org, nickname="teams", type="teams", url=receiver.url, topics=["file.deleted"]
        )
        from sftphook.events import Topic

        await app.recorder.record(file_event(org, topic=Topic.FILE_DELETED, size=None))
        (got,) = await receiver.wait_for(1)
        body = got.json()
        assert body["type"] == "message"
        (attachment,) = body["attachments"]
        assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        card = attachment["content"]
        assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
        headline, facts = read_card(card)
        assert headline == "partner-acme deleted inbound/invoice 2026+1.csv"
        assert facts["Topic"] == "file.deleted" and facts["Actor"] == "partner-acme (User)"
        assert "Size" not in facts
        view, _ = await _delivery(app, org, hook.id)
        assert view.status == "succeeded"


async def test_slack_answering_500_is_retried_like_a_webhook(settings, receiver: Receiver):
    from aiohttp import web

    answers = iter([500, 200])

    async def flaky(request: web.Request, received: Any) -> web.Response:
        return web.Response(status=next(answers), text="invalid_token?")

    receiver.behaviour = flaky
    async with serving(settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org, nickname="s", type="slack", url=receiver.url, topics=["file.created"]
        )
        await app.recorder.record(file_event(org))
        view, attempts = await _delivery(app, org, hook.id)
        assert view.status == "succeeded"
        assert [a.response_status for a in attempts] == [500, 200]


async def test_email_arrives_with_text_and_html_and_the_log_keeps_no_password(
    mail_settings, mail: MailServer
):
    async with serving(mail_settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org,
            nickname="mail",
            type="email",
            url="ops@example.com, Jane Doe <jane@example.com>",
            topics=["file.created"],
        )
        assert hook.url == "ops@example.com, Jane Doe <jane@example.com>"
        await app.recorder.record(file_event(org, path="inbound/ü.csv", size=2048))
        view, attempts = await _delivery(app, org, hook.id)
        assert view.status == "succeeded", view.last_error
        ((rcpts, message),) = mail.handler.messages
        assert rcpts == ["ops@example.com", "jane@example.com"]
        assert mail.handler.logins == [SMTP_USER.encode()]
        assert message["Subject"] == "[sftphook] partner-acme uploaded inbound/ü.csv (2.0 KB)"
        assert message["From"] == "sftphook <noreply@example.com>"
        plain = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert "partner-acme uploaded inbound/ü.csv" in plain and "2,048 bytes" in plain
        assert "<strong>partner-acme uploaded inbound/ü.csv (2.0 KB)</strong>" in html
        (attempt,) = attempts
        assert attempt.response_status == 250 and "queued as 4711" in (attempt.response_body or "")
        assert attempt.request_headers["SMTP-Server"] == f"127.0.0.1:{mail.port}"
        assert "Subject: [sftphook]" in (attempt.request_body or "")
        assert SMTP_PASSWORD not in json.dumps(
            [attempt.request_headers, attempt.request_body, attempt.response_body, attempt.error]
        )


async def test_email_of_a_file_name_with_a_line_break_is_delivered(mail_settings, mail: MailServer):
    """SFTP allows any character but `/` and NUL in a name: a line break must neither fail the
    message (a header cannot hold one) nor start a header of its own."""
    async with serving(mail_settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org, nickname="m", type="email", url="ops@example.com", topics=["file.created"]
        )
        path = "inbound/report\r\nBcc: someone@example.net\n.csv"
        await app.recorder.record(file_event(org, path=path, size=10))
        view, attempts = await _delivery(app, org, hook.id)
        assert view.status == "succeeded", view.last_error
        assert len(attempts) == 1
        ((rcpts, message),) = mail.handler.messages
        assert rcpts == ["ops@example.com"] and message["Bcc"] is None
        assert message["Subject"] == (
            "[sftphook] partner-acme uploaded inbound/report\\r\\nBcc: someone@example.net"
            "\\n.csv (10 bytes)"
        )
        # The body is no header: the name is there as it is (its line breaks as the part's).
        plain = message.get_body(("plain",)).get_content()
        assert "inbound/report\r\nBcc: someone@example.net\r\n.csv" in plain


async def test_email_451_is_retried_then_delivered(mail_settings, mail: MailServer):
    mail.handler.answers = ["451 4.3.0 mailbox busy, try again"]
    async with serving(mail_settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org, nickname="m", type="email", url="ops@example.com", topics=["file.created"]
        )
        await app.recorder.record(file_event(org))
        view, attempts = await _delivery(app, org, hook.id)
        assert view.status == "succeeded"
        assert [a.response_status for a in attempts] == [451, 250]
        assert "451" in (attempts[0].error or "")
        assert len(mail.handler.messages) == 1


async def test_email_550_fails_at_once(mail_settings, mail: MailServer):
    mail.handler.answers = ["550 5.1.1 no such user here"]
    async with serving(mail_settings, WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org, nickname="m", type="email", url="nobody@example.com", topics=["file.created"]
        )
        await app.recorder.record(file_event(org))
        view, attempts = await _delivery(app, org, hook.id)
        assert view.status == "failed" and view.attempt_count == 1
        assert view.last_response_status == 550 and "550" in (view.last_error or "")
        assert len(attempts) == 1 and not mail.handler.messages


async def test_email_server_down_is_retried_until_the_schedule_ends(settings):
    port = _free_port()  # nothing listens here
    smtp = SMTPSettings(host="127.0.0.1", port=port, starttls=False, timeout=2)
    async with serving(settings.model_copy(update={"smtp": smtp}), WORKER) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org, nickname="m", type="email", url="ops@example.com", topics=["file.created"]
        )
        await app.recorder.record(file_event(org))
        view, attempts = await _delivery(app, org, hook.id)
        # The test schedule has three retries.
        assert view.status == "failed" and len(attempts) == 4
        assert all(a.response_status is None and a.error for a in attempts)


async def test_pings_reach_every_endpoint_type(mail_settings, mail: MailServer, receiver):
    async with serving(mail_settings, WORKER) as app:
        org = await org_id(app)
        hooks = {}
        for kind in ("webhook", "slack", "teams", "email"):
            url = "ops@example.com" if kind == "email" else f"{receiver.url}/{kind}"
            hooks[kind], _ = await app.webhooks.create(
                org, nickname=f"ping {kind}", type=kind, url=url, topics=["file.created"]
            )
            delivery = await app.webhooks.ping(org, hooks[kind].id, actor_id="jane")
            assert delivery.topic == "webhook.ping"
        got = {r.path.rsplit("/", 1)[-1]: r for r in await receiver.wait_for(3)}
        assert got["webhook"].json()["Topic"] == "webhook.ping"
        assert got["webhook"].json()["Data"]["Alias"] == "ping webhook"
        slack = got["slack"].json()
        assert "ping slack" in slack["text"] and "Test notification" in slack["text"]
        teams, _ = read_card(got["teams"].json()["attachments"][0]["content"])
        assert "ping teams" in teams
        for kind, hook in hooks.items():
            view, _ = await _delivery(app, org, hook.id)
            assert view.status == "succeeded", (kind, view.last_error)
        ((_, message),) = mail.handler.messages
        assert "ping email" in message["Subject"] and "jane" in message.get_body().get_content()


async def test_email_endpoint_needs_an_smtp_server(app):
    org = await org_id(app)
    with pytest.raises(InvalidInput) as caught:
        await app.webhooks.create(
            org, nickname="m", type="email", url="ops@example.com", topics=["file.created"]
        )
    assert caught.value.field == "type" and "SFTPHOOK_SMTP__HOST" in caught.value.message
    assert await app.webhooks.list_webhooks(org) == []


async def test_slack_url_is_checked_again_when_connecting(settings, receiver: Receiver):
    """Saved while the operator allowed loopback; refused at connect time once that is gone."""
    async with serving(settings, frozenset({"http"})) as app:
        org = await org_id(app)
        hook, _ = await app.webhooks.create(
            org, nickname="s", type="slack", url=receiver.url, topics=["file.created"]
        )
    strict = settings.model_copy(
        update={"webhooks": settings.webhooks.model_copy(update={"allowed_networks": []})}
    )
    async with serving(strict, WORKER) as app:
        with pytest.raises(UnsafeDestination):
            await app.webhooks.create(
                org, nickname="t", type="teams", url=receiver.url, topics=["file.created"]
            )
        await app.recorder.record(file_event(org))
        view, attempts = await _delivery(app, org, hook.id)
        assert view.status == "failed"
        assert "loopback" in (attempts[0].error or "") and not receiver.requests
