"""Owner notices: an email to the organization's notice address when a webhook is paused
automatically or its signing secret is rotated.

Nothing waits for a notice: the action queues it (after its transaction commits) and one
background task owned by the App sends it through `settings.smtp`, retrying transient SMTP
failures a few times. Every notice ends as one audit line: `notice.sent`, `notice.failed` or
`notice.skipped` (no SMTP host configured). A notice never carries a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from sftphook.audit import SYSTEM, Actor, AuditLog, after_commit, safe_url
from sftphook.channels.email import SMTPError, SMTPSender, build_message, parse_recipients
from sftphook.channels.messages import Notice, format_time
from sftphook.config import SMTPSettings
from sftphook.store import organizations
from sftphook.store.database import Database
from sftphook.store.models import Webhook, now_ms

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000


@dataclasses.dataclass(frozen=True, slots=True)
class OwnerNotice:
    """One notice about one webhook, to be sent to its organization's notice address."""

    organization_id: str
    webhook_id: str
    # webhook.auto_paused | webhook.secret_rotated
    about: str
    notice: Notice


def _resume_hint(webhook_id: str, public_url: str | None) -> str:
    hint = (
        f"`sftphook webhooks resume {webhook_id}`, "
        f"POST /api/v1/webhooks/{webhook_id}/resume, or the Resume button on the dashboard"
    )
    if public_url:
        hint += f" ({public_url.rstrip('/')}/webhooks)"
    return hint


def paused_notice(
    webhook: Webhook, reason: str, paused_at: int, public_url: str | None
) -> OwnerNotice:
    sentence = f"Webhook “{webhook.nickname}” was paused automatically"
    facts = (
        ("Webhook", webhook.nickname),
        ("Id", webhook.id),
        ("Endpoint", safe_url(webhook.url, webhook.type)),
        ("Why", reason),
        ("Paused at", format_time(paused_at)),
        ("Meanwhile", "new events are kept and are delivered when you resume it"),
        ("To resume", _resume_hint(webhook.id, public_url)),
    )
    return OwnerNotice(
        organization_id=webhook.organization_id,
        webhook_id=webhook.id,
        about="webhook.auto_paused",
        notice=Notice(
            topic="webhook.auto_paused",
            sentence=sentence,
            facts=facts,
            actor=SYSTEM.id,
            action="paused",
            path=None,
        ),
    )


def rotated_notice(
    *,
    organization_id: str,
    webhook_id: str,
    nickname: str,
    actor: Actor,
    rotated_at: int,
    grace_seconds: float,
) -> OwnerNotice:
    if grace_seconds > 0:
        grace = (
            f"{grace_seconds:g} s: the previous secret also signs until "
            f"{format_time(rotated_at + round(grace_seconds * 1000))}"
        )
    else:
        grace = "none: the previous secret stopped signing at once"
    facts = (
        ("Webhook", nickname),
        ("Id", webhook_id),
        ("Rotated by", f"{actor.id} ({actor.type})"),
        ("When", format_time(rotated_at)),
        ("Grace period", grace),
        ("What to do", "make sure your receiver verifies with the new secret"),
    )
    return OwnerNotice(
        organization_id=organization_id,
        webhook_id=webhook_id,
        about="webhook.secret_rotated",
        notice=Notice(
            topic="webhook.secret_rotated",
            sentence=f"The signing secret of webhook “{nickname}” was rotated",
            facts=facts,
            actor=actor.id,
            action="rotated",
            path=None,
        ),
    )


class OwnerNotices:
    """Queues owner notices and sends them in the background (`run`, `close`)."""

    def __init__(
        self,
        db: Database,
        smtp: SMTPSettings,
        *,
        public_url: str | None = None,
        retry_delays: Sequence[float] = (2.0, 10.0, 60.0),
    ) -> None:
        self._db = db
        self._smtp = smtp
        self._public_url = public_url
        self._retry_delays = tuple(retry_delays)
        self._queue: asyncio.Queue[OwnerNotice | None] = asyncio.Queue(QUEUE_LIMIT)
        self._warned_no_smtp = False
        self._running = False

    # Handing notices over (never blocks)

    async def webhook_auto_paused(self, session: AsyncSession, webhook: Webhook) -> None:
        """The engine paused `webhook` in `session`'s transaction: audit it there, and queue
        the notice once that transaction commits."""
        reason = webhook.paused_reason or "paused automatically"
        paused_at = webhook.paused_at or now_ms()
        await AuditLog.record_by(
            session,
            webhook.organization_id,
            SYSTEM,
            "webhook.paused",
            "webhook",
            webhook.id,
            {"nickname": webhook.nickname, "reason": reason, "automatic": True},
        )
        notice = paused_notice(webhook, reason, paused_at, self._public_url)
        after_commit(session, lambda: self.queue(notice))

    def secret_rotated(
        self,
        *,
        organization_id: str,
        webhook_id: str,
        nickname: str,
        actor: Actor,
        rotated_at: int,
        grace_seconds: float,
    ) -> None:
        self.queue(
            rotated_notice(
                organization_id=organization_id,
                webhook_id=webhook_id,
                nickname=nickname,
                actor=actor,
                rotated_at=rotated_at,
                grace_seconds=grace_seconds,
            )
        )

    def queue(self, notice: OwnerNotice) -> None:
        try:
            self._queue.put_nowait(notice)
        except asyncio.QueueFull:
            log.error(
                "owner notice about webhook %s dropped: %d notices are already waiting",
                notice.webhook_id,
                QUEUE_LIMIT,
            )

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    # The background task

    async def run(self) -> None:
        """Send queued notices, one at a time, until `close()` (which drains the queue)."""
        self._running = True
        try:
            while True:
                notice = await self._queue.get()
                if notice is None:
                    break
                try:
                    await self.deliver(notice)
                except Exception:
                    log.exception("owner notice about webhook %s failed", notice.webhook_id)
        finally:
            self._running = False

    async def close(self, deadline: float = 15.0) -> None:
        """Stop after what is queued now; `run` is cancelled by its owner past `deadline`."""
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            await self._queue.put(None)

    @contextlib.asynccontextmanager
    async def running(self, deadline: float = 15.0) -> AsyncIterator[None]:
        """Run the sender for the duration of a block, then drain it within `deadline` (the
        command line's way: it has no long-running task group)."""
        task = asyncio.create_task(self.run(), name="owner-notices")
        try:
            yield
        finally:
            await self.close()
            try:
                async with asyncio.timeout(deadline):
                    await asyncio.shield(task)
            except TimeoutError:
                log.warning("owner notices still unsent after %.0f s: given up", deadline)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def deliver(self, item: OwnerNotice) -> str:
        """Send one notice now (with retries) and audit the outcome; returns the action."""
        async with self._db.session() as s:
            org = await organizations.get(s, item.organization_id)
        if org is None or not org.notice_email:
            return "none"
        details: dict[str, object] = {
            "about": item.about,
            "to": org.notice_email,
            "subject": item.notice.sentence,
        }
        host = self._smtp.host
        if not host:
            if not self._warned_no_smtp:
                self._warned_no_smtp = True
                log.warning(
                    "owner notices are recorded in the audit log only: set SFTPHOOK_SMTP__HOST "
                    "to send them by email"
                )
            details["reason"] = "no SMTP host is configured"
            return await self._audit(item, "notice.skipped", details)
        try:
            recipients = parse_recipients(org.notice_email)
        except Exception:
            details["error"] = "the notice address is not a valid email address"
            return await self._audit(item, "notice.failed", details)
        message = build_message(item.notice, sender=self._smtp.from_, recipients=recipients)
        password = self._smtp.password.get_secret_value() if self._smtp.password else None
        sender = SMTPSender(
            host,
            self._smtp.port,
            username=self._smtp.username,
            password=password,
            starttls=self._smtp.starttls,
            timeout=self._smtp.timeout,
        )
        tries = 0
        while True:
            tries += 1
            try:
                await sender.send(message)
            except SMTPError as exc:
                if exc.transient and tries <= len(self._retry_delays):
                    delay = self._retry_delays[tries - 1]
                    log.info("owner notice: SMTP said %s; trying again in %g s", exc, delay)
                    await asyncio.sleep(delay)
                    continue
                log.error(
                    "owner notice about webhook %s not sent after %d tries: %s",
                    item.webhook_id,
                    tries,
                    exc,
                )
                details.update(error=str(exc)[:500], smtp_code=exc.code, tries=tries)
                return await self._audit(item, "notice.failed", details)
            details["tries"] = tries
            return await self._audit(item, "notice.sent", details)

    async def _audit(self, item: OwnerNotice, action: str, details: dict[str, object]) -> str:
        async with self._db.transaction() as s:
            await AuditLog.record_by(
                s, item.organization_id, SYSTEM, action, "webhook", item.webhook_id, dict(details)
            )
        return action
