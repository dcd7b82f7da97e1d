"""Email notifications through a real SMTP server on 127.0.0.1 (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import socket

import pytest
from aiosmtpd.controller import Controller

from sftphook.channels import (
    SMTPError,
    SMTPPermanentError,
    SMTPSender,
    describe_event,
    parse_recipients,
)
from sftphook.channels.email import build_message
from sftphook.errors import InvalidInput
from sftphook.events import EventRecord, Topic

EVENT = EventRecord(
    organization_id="o",
    topic=Topic.FILE_CREATED,
    actor_id="partner-acme",
    path="inbound/ü.csv",
    size=2048,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Handler:
    def __init__(self, answers: list[str] | None = None) -> None:
        self.answers = list(answers or [])
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        if self.answers:
            return self.answers.pop(0)
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


@pytest.fixture
def smtp_server():
    servers = []

    def start(answers: list[str] | None = None):
        handler = _Handler(answers)
        port = _free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        servers.append(controller)
        return handler, port

    yield start
    for controller in servers:
        controller.stop()


def _message():
    return build_message(
        describe_event(EVENT),
        sender="sftphook <noreply@example.com>",
        recipients=parse_recipients("Ops Team <ops@example.com>, dev@example.com"),
    )


async def test_email_arrives_with_text_and_html_parts(smtp_server):
    handler, port = smtp_server()
    await SMTPSender("127.0.0.1", port, starttls=False).send(_message())
    ((rcpts, raw),) = handler.messages
    assert rcpts == ["ops@example.com", "dev@example.com"]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == "[sftphook] partner-acme uploaded inbound/ü.csv (2.0 KB)"
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Size" in plain and "2,048 bytes" in plain
    assert "<strong>partner-acme uploaded inbound/ü.csv (2.0 KB)</strong>" in html


async def test_transient_smtp_answer_is_retryable(smtp_server):
    handler, port = smtp_server(["451 4.3.0 try again later"])
    sender = SMTPSender("127.0.0.1", port, starttls=False)
    with pytest.raises(SMTPError) as caught:
        await sender.send(_message())
    assert caught.value.code == 451 and caught.value.transient
    assert not isinstance(caught.value, SMTPPermanentError)
    await sender.send(_message())  # the retry goes through
    assert len(handler.messages) == 1


async def test_permanent_smtp_answer_fails(smtp_server):
    _, port = smtp_server(["550 5.1.1 no such user"])
    with pytest.raises(SMTPPermanentError) as caught:
        await SMTPSender("127.0.0.1", port, starttls=False).send(_message())
    assert caught.value.code == 550 and not caught.value.transient


async def test_unreachable_server_is_transient():
    port = _free_port()
    with pytest.raises(SMTPError) as caught:
        await SMTPSender("127.0.0.1", port, starttls=False, timeout=5).send(_message())
    assert caught.value.transient


@pytest.mark.parametrize("bad", ["", "not-an-address", "a@b", "x@y.z, <>"])
def test_bad_recipients_are_refused(bad):
    with pytest.raises(InvalidInput):
        parse_recipients(bad)


def test_recipients_accept_names_and_mailto():
    assert parse_recipients("mailto:Jane Doe <jane@example.com>") == ["Jane Doe <jane@example.com>"]
