"""Email notifications: the message (plain text and HTML) and an SMTP sender.

SMTP answers sort into two kinds, as SMTP itself defines them: 4xx (and a lost connection) are
transient and worth retrying; 5xx are permanent and fail the delivery at once.
"""

from __future__ import annotations

import email.utils
import html
from collections.abc import Sequence
from email.message import EmailMessage

import aiosmtplib

from sftphook.channels.messages import Notice
from sftphook.errors import InvalidInput

MAX_RECIPIENTS = 50


class SMTPError(Exception):
    """Sending failed; `code` is the SMTP reply code (None when no server answered)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def transient(self) -> bool:
        return self.code is None or 400 <= self.code < 500


class SMTPPermanentError(SMTPError):
    """A 5xx answer: retrying will not help."""


def parse_recipients(value: str) -> list[str]:
    """`ops@example.com, Jane Doe <jane@example.com>` (a `mailto:` prefix is allowed) → the
    addresses formatted for a header; InvalidInput names what is wrong."""
    text = value.strip()
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:") :]
    pairs = email.utils.getaddresses([text])
    recipients: list[str] = []
    for name, address in pairs:
        local, at, domain = address.partition("@")
        if not at or not local or "." not in domain or any(c in address for c in " <>\r\n"):
            raise InvalidInput(
                "recipients must be email addresses, like `ops@example.com` or "
                "`Jane Doe <jane@example.com>`, separated by commas",
                field="url",
            )
        recipients.append(email.utils.formataddr((name, address)))
    if not recipients:
        raise InvalidInput("give at least one email recipient", field="url")
    if len(recipients) > MAX_RECIPIENTS:
        raise InvalidInput(f"at most {MAX_RECIPIENTS} recipients", field="url")
    return recipients


def _header_text(text: str) -> str:
    """`text` fit for a header: a character that cannot be shown there (a line break in a file
    name) is written as its escape, `\\n`, so the name stays recognisable on one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def build_message(notice: Notice, *, sender: str, recipients: Sequence[str]) -> EmailMessage:
    message = EmailMessage()
    # File names may hold any character but `/` and NUL; a header may not hold a line break.
    message["Subject"] = _header_text(f"[sftphook] {notice.sentence}")
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = email.utils.make_msgid(domain="sftphook")
    width = max(len(label) for label, _ in notice.facts)
    text_facts = "\n".join(f"{label.ljust(width)}  {value}" for label, value in notice.facts)
    message.set_content(f"{notice.sentence}\n\n{text_facts}\n\n-- \nsent by sftphook\n")
    rows = "".join(
        f"<tr><th align='left' style='padding:2px 12px 2px 0'>{html.escape(label)}</th>"
        f"<td>{html.escape(value)}</td></tr>"
        for label, value in notice.facts
    )
    message.add_alternative(
        "<!doctype html><html><body style='font-family:sans-serif'>"
        f"<p><strong>{html.escape(notice.sentence)}</strong></p>"
        f"<table>{rows}</table>"
        "<p style='color:#777;font-size:small'>sent by sftphook</p></body></html>",
        subtype="html",
    )
    return message


class SMTPSender:
    """Sends through one configured SMTP server (STARTTLS and login when configured)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._starttls = starttls
        self._timeout = timeout

    async def send(self, message: EmailMessage) -> str:
        """Send; returns the server's final answer. Raises SMTPError (transient or not)."""
        try:
            errors, answer = await aiosmtplib.send(
                message,
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                start_tls=self._starttls,
                use_tls=False,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            code = max(codes) if codes else None
            raise _error("every recipient was refused", code) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _error(f"the SMTP server answered {exc.code} {exc.message}", exc.code) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise SMTPError(f"could not reach the SMTP server: {exc}") from exc
        if errors:
            refused = ", ".join(f"{addr} ({resp.code})" for addr, resp in errors.items())
            answer = f"{answer}; refused: {refused}"
        return answer


def _error(message: str, code: int | None) -> SMTPError:
    if code is not None and code >= 500:
        return SMTPPermanentError(message, code)
    return SMTPError(message, code)
