"""The webhook service: what the REST API, the CLI and the dashboard call to manage webhooks,
look at their deliveries and send things again. Each method is one transaction.

Secrets leave this module only twice: the signing secret in `create`'s and `rotate_secret`'s
answers. Views carry the authorization value masked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sftphook.audit import SYSTEM, Actor, AuditLog, safe_url
from sftphook.config import SMTPSettings, WebhookSettings
from sftphook.epoch import check_order, epoch_ms
from sftphook.errors import InvalidInput, NotFound
from sftphook.events.model import FILE_TOPICS, Topic
from sftphook.store import deliveries as delivery_store
from sftphook.store import webhooks as webhook_store
from sftphook.store.database import Database
from sftphook.store.models import Attempt, Delivery, Webhook, new_id, now_ms
from sftphook.webhooks import endpoints, filters, signing, tuning
from sftphook.webhooks.crypto import SecretBox
from sftphook.webhooks.fanout import delivery_row
from sftphook.webhooks.urlsafety import Lookup, UrlPolicy, system_lookup

log = logging.getLogger(__name__)

MAX_NICKNAME = 128
MAX_AUTHORIZATION = 4096
MAX_GRACE_SECONDS = 7 * 24 * 3600
MAX_PAGE = 200
_UNSET: Any = object()
_NO_EMAIL_AUTHORIZATION = "email endpoints send no authorization header; leave it empty"


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookView:
    id: str
    organization_id: str
    nickname: str
    # webhook | slack | teams | email
    type: str
    # The endpoint URL; for an email endpoint, the recipients.
    url: str
    # Masked: the value is shown once, never again.
    authorization_header: str | None
    topics: list[str]
    filter: list[dict[str, str]]
    ordered: bool
    state: str
    paused_reason: str | None
    paused_at: int | None
    failure_streak: int
    # While set, the previous secret still signs (rotation grace period), until this time.
    previous_secret_expires_at: int | None
    created_at: int
    updated_at: int
    # The webhook's own delivery tuning; None follows the configured default.
    retry_schedule: list[float] | None = None
    timeout: float | None = None
    max_concurrency: int | None = None
    rate_limit: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveryView:
    id: str
    organization_id: str
    webhook_id: str
    event_id: str | None
    topic: str
    kind: str
    status: str
    attempt_count: int
    next_attempt_at: int | None
    last_response_status: int | None
    last_error: str | None
    created_at: int
    updated_at: int
    completed_at: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class AttemptView:
    id: str
    number: int
    created_at: int
    duration_ms: float | None
    request_url: str
    request_headers: dict[str, Any]
    request_body: str | None
    response_status: int | None
    response_headers: dict[str, Any] | None
    response_body: str | None
    error: str | None


def mask_authorization(value: str | None) -> str | None:
    """`Bearer ***` for `Bearer abc…`: the scheme helps tell values apart, the rest is hidden."""
    if not value:
        return None
    scheme, sep, _ = value.partition(" ")
    if sep and scheme.isalpha() and len(scheme) <= 16:
        return f"{scheme} ***"
    return "***"


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def delivery_view(d: Delivery) -> DeliveryView:
    return DeliveryView(
        id=d.id,
        organization_id=d.organization_id,
        webhook_id=d.webhook_id,
        event_id=d.event_id,
        topic=d.topic,
        kind=d.kind,
        status=d.status,
        attempt_count=d.attempt_count,
        next_attempt_at=d.next_attempt_at if d.status in ("pending", "retrying", "held") else None,
        last_response_status=d.last_response_status,
        last_error=d.last_error,
        created_at=d.created_at,
        updated_at=d.updated_at,
        completed_at=d.completed_at,
    )


def attempt_view(a: Attempt) -> AttemptView:
    return AttemptView(
        id=a.id,
        number=a.number,
        created_at=a.created_at,
        duration_ms=a.duration_ms,
        request_url=a.request_url,
        request_headers=dict(a.request_headers or {}),
        request_body=_text(a.request_body),
        response_status=a.response_status,
        response_headers=a.response_headers,
        response_body=_text(a.response_body),
        error=a.error,
    )


def check_nickname(value: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_NICKNAME:
        raise InvalidInput(f"nickname must be 1 to {MAX_NICKNAME} characters", field="nickname")
    return value


def check_topics(values: Sequence[str]) -> list[str]:
    if not values:
        raise InvalidInput(
            "topics must name at least one of " + ", ".join(sorted(FILE_TOPICS)), field="topics"
        )
    unknown = [t for t in values if t not in FILE_TOPICS]
    if unknown:
        raise InvalidInput(
            f"unknown topic {unknown[0]!r}; choose from " + ", ".join(sorted(FILE_TOPICS)),
            field="topics",
        )
    return sorted(set(values))


def check_authorization(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > MAX_AUTHORIZATION:
        raise InvalidInput(
            f"authorization_header is longer than {MAX_AUTHORIZATION} characters",
            field="authorization_header",
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidInput(
            "authorization_header must not contain control characters or line breaks",
            field="authorization_header",
        )
    return value


def parse_cursor(cursor: str | None) -> tuple[int, str] | None:
    if not cursor:
        return None
    created, _, delivery_id = cursor.partition("_")
    created_at = epoch_ms(created)
    if created_at is None or not delivery_id:
        raise InvalidInput("cursor is not one this API gave out", field="cursor")
    return created_at, delivery_id


class WebhookService:
    def __init__(
        self,
        db: Database,
        settings: WebhookSettings,
        box: SecretBox,
        *,
        notify: Callable[[], None] | None = None,
        smtp: SMTPSettings | None = None,
        lookup: Lookup = system_lookup,
    ) -> None:
        self._db = db
        self._settings = settings
        self._box = box
        self._smtp = smtp or SMTPSettings()
        self._policy = UrlPolicy.from_settings(settings.allow_http, settings.allowed_networks)
        # How URL hosts are resolved for the save-time check (the system resolver; a table in
        # tests).
        self.lookup = lookup
        # Wakes the local delivery workers when this service queues something.
        self.notify: Callable[[], None] = notify or (lambda: None)
        # Told of each rotation once it is committed (the owner notice); never gets the secret.
        self.on_secret_rotated: Callable[..., None] = lambda **_: None

    def view(self, webhook: Webhook) -> WebhookView:
        authorization = (
            self._box.decrypt(webhook.authorization_encrypted)
            if webhook.authorization_encrypted
            else None
        )
        now = now_ms()
        grace = webhook.previous_secret_expires_at
        tuned = webhook.settings or {}
        return WebhookView(
            id=webhook.id,
            organization_id=webhook.organization_id,
            nickname=webhook.nickname,
            type=webhook.type,
            url=webhook.url,
            authorization_header=mask_authorization(authorization),
            topics=list(webhook.topics),
            filter=[dict(r) for r in webhook.filter or []],
            ordered=webhook.ordered,
            state=webhook.state,
            paused_reason=webhook.paused_reason,
            paused_at=webhook.paused_at,
            failure_streak=webhook.failure_streak,
            previous_secret_expires_at=grace if grace and grace > now else None,
            created_at=webhook.created_at,
            updated_at=webhook.updated_at,
            retry_schedule=tuned.get("retry_schedule"),
            timeout=tuned.get("timeout"),
            max_concurrency=tuned.get("max_concurrency"),
            rate_limit=tuned.get("rate_limit"),
        )

    def effective_tuning(self, view: WebhookView) -> tuning.Tuning:
        """What applies to this webhook: its own values, the configured defaults for the rest."""
        stored = {name: getattr(view, name) for name in tuning.FIELDS}
        return tuning.effective(stored, self._settings)

    @property
    def email_available(self) -> bool:
        return bool(self._smtp.host)

    # Management

    async def create(
        self,
        organization_id: str,
        *,
        nickname: str,
        url: str,
        topics: Sequence[str],
        authorization_header: str | None = None,
        filter: Sequence[Mapping[str, Any]] | None = None,
        ordered: bool = False,
        type: str = "webhook",
        settings: Mapping[str, Any] | None = None,
        actor: Actor = SYSTEM,
    ) -> tuple[WebhookView, str]:
        """A new webhook and its signing secret (returned here once, then never again).

        `type` is the endpoint type (`endpoints.TYPES`); for `email`, `url` holds the recipients.
        `settings` sets the webhook's own tuning (`tuning.FIELDS`; None keeps a default).
        """
        nickname = check_nickname(nickname)
        kind = endpoints.check_type(type)
        topic_list = check_topics(topics)
        rules = filters.parse_rules(filter)
        authorization = check_authorization(authorization_header)
        if kind == "email" and authorization:
            raise InvalidInput(_NO_EMAIL_AUTHORIZATION, field="authorization_header")
        tuned = tuning.merge({}, settings or {})
        destination = await endpoints.check_endpoint(
            kind, url, self._policy, self._smtp, lookup=self.lookup
        )
        secret = signing.generate_secret()
        webhook = Webhook(
            id=new_id(),
            organization_id=organization_id,
            nickname=nickname,
            type=kind,
            url=destination,
            authorization_encrypted=self._box.encrypt(authorization) if authorization else None,
            topics=topic_list,
            filter=[r.as_dict() for r in rules],
            ordered=ordered,
            state="enabled",
            secret_encrypted=self._box.encrypt(secret),
            failure_streak=0,
            settings=tuned,
        )
        async with self._db.transaction() as s:
            s.add(webhook)
            await AuditLog.record_by(
                s,
                organization_id,
                actor,
                "webhook.created",
                "webhook",
                webhook.id,
                {"nickname": nickname, "url": safe_url(url, kind), "topics": topic_list},
            )
        log.info("webhook added: %s (%s)", webhook.id, nickname)
        return self.view(webhook), secret

    async def list_webhooks(self, organization_id: str) -> list[WebhookView]:
        async with self._db.session() as s:
            return [self.view(w) for w in await webhook_store.list_for(s, organization_id)]

    async def get(self, organization_id: str, webhook_id: str) -> WebhookView:
        async with self._db.session() as s:
            return self.view(await self._webhook(s, organization_id, webhook_id))

    async def update(
        self,
        organization_id: str,
        webhook_id: str,
        *,
        nickname: str | None = None,
        url: str | None = None,
        topics: Sequence[str] | None = None,
        authorization_header: str | None = _UNSET,
        filter: Sequence[Mapping[str, Any]] | None = None,
        ordered: bool | None = None,
        type: str | None = None,
        settings: Mapping[str, Any] | None = None,
        actor: Actor = SYSTEM,
    ) -> WebhookView:
        """Change what is given; `authorization_header=None` removes the header. In `settings`,
        a field given as None returns to the configured default; fields left out stay."""
        changes: dict[str, Any] = {}
        if nickname is not None:
            changes["nickname"] = check_nickname(nickname)
        if topics is not None:
            changes["topics"] = check_topics(topics)
        if filter is not None:
            changes["filter"] = [r.as_dict() for r in filters.parse_rules(filter)]
        if authorization_header is not _UNSET:
            value = check_authorization(authorization_header)
            changes["authorization_encrypted"] = self._box.encrypt(value) if value else None
        if ordered is not None:
            changes["ordered"] = ordered
        if type is not None:
            changes["type"] = endpoints.check_type(type)
        if settings:
            # Checked against nothing first, so a bad value is refused before any lookup.
            tuning.merge({}, settings)
        if url is not None or type is not None:
            kind = changes.get("type")
            if url is None or kind is None:
                async with self._db.session() as s:
                    current = await self._webhook(s, organization_id, webhook_id)
                url = current.url if url is None else url
                kind = current.type if kind is None else kind
            if kind == "email" and changes.get("authorization_encrypted"):
                raise InvalidInput(_NO_EMAIL_AUTHORIZATION, field="authorization_header")
            # Changing the type checks the destination again: a URL is no list of recipients.
            changes["url"] = await endpoints.check_endpoint(
                kind, url, self._policy, self._smtp, lookup=self.lookup
            )
        async with self._db.transaction() as s:
            webhook = await self._webhook(s, organization_id, webhook_id)
            if settings:
                # A new dict: the JSON column notices a replaced value, not an edited one.
                changes["settings"] = tuning.merge(webhook.settings or {}, settings)
            # Names of what changed, not values: an authorization value is a secret.
            changed = sorted(
                k.removesuffix("_encrypted") for k, v in changes.items() if getattr(webhook, k) != v
            )
            if not changed:
                # Nothing differs (`PATCH {}`, a form saved as it was): nothing to record.
                return self.view(webhook)
            for key, value in changes.items():
                setattr(webhook, key, value)
            webhook.updated_at = now_ms()
            await AuditLog.record_by(
                s,
                organization_id,
                actor,
                "webhook.updated",
                "webhook",
                webhook.id,
                {"nickname": webhook.nickname, "changed": changed},
            )
        return self.view(webhook)

    async def remove(self, organization_id: str, webhook_id: str, *, actor: Actor = SYSTEM) -> None:
        """Remove the webhook with its deliveries and attempts."""
        async with self._db.transaction() as s:
            webhook = await self._webhook(s, organization_id, webhook_id)
            await AuditLog.record_by(
                s,
                organization_id,
                actor,
                "webhook.deleted",
                "webhook",
                webhook.id,
                {"nickname": webhook.nickname, "url": safe_url(webhook.url, webhook.type)},
            )
            await s.delete(webhook)
        log.info("webhook removed: %s", webhook_id)

    async def rotate_secret(
        self,
        organization_id: str,
        webhook_id: str,
        *,
        grace_seconds: float = 0,
        actor: Actor = SYSTEM,
    ) -> tuple[WebhookView, str]:
        """A new signing secret at once; the old one keeps signing for `grace_seconds`."""
        # Written so that NaN, which compares false either way, is refused too.
        if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
            raise InvalidInput(
                f"grace_seconds must be between 0 and {MAX_GRACE_SECONDS}", field="grace_seconds"
            )
        secret = signing.generate_secret()
        async with self._db.transaction() as s:
            webhook = await self._webhook(s, organization_id, webhook_id)
            now = now_ms()
            if grace_seconds > 0:
                webhook.previous_secret_encrypted = webhook.secret_encrypted
                webhook.previous_secret_expires_at = now + round(grace_seconds * 1000)
            else:
                webhook.previous_secret_encrypted = None
                webhook.previous_secret_expires_at = None
            webhook.secret_encrypted = self._box.encrypt(secret)
            webhook.updated_at = now
            await AuditLog.record_by(
                s,
                organization_id,
                actor,
                "webhook.secret_rotated",
                "webhook",
                webhook.id,
                {"nickname": webhook.nickname, "grace_seconds": grace_seconds},
            )
        log.info("webhook %s: signing secret rotated (grace %g s)", webhook_id, grace_seconds)
        self.on_secret_rotated(
            organization_id=organization_id,
            webhook_id=webhook.id,
            nickname=webhook.nickname,
            actor=actor,
            rotated_at=now,
            grace_seconds=grace_seconds,
        )
        return self.view(webhook), secret

    async def pause(
        self,
        organization_id: str,
        webhook_id: str,
        *,
        reason: str = "paused by an operator",
        actor: Actor = SYSTEM,
    ) -> WebhookView:
        """Stop sending; events that arrive meanwhile are kept (held) for `resume`."""
        async with self._db.transaction() as s:
            webhook = await self._webhook(s, organization_id, webhook_id)
            if webhook.state != "paused":
                now = now_ms()
                webhook.state = "paused"
                webhook.paused_reason = reason[:255]
                webhook.paused_at = now
                webhook.updated_at = now
                await s.flush()
                await delivery_store.hold_active(s, webhook.id)
                await AuditLog.record_by(
                    s,
                    organization_id,
                    actor,
                    "webhook.paused",
                    "webhook",
                    webhook.id,
                    {"nickname": webhook.nickname, "reason": reason[:255], "automatic": False},
                )
        return self.view(webhook)

    async def resume(
        self,
        organization_id: str,
        webhook_id: str,
        *,
        deliver_held: bool = True,
        actor: Actor = SYSTEM,
    ) -> tuple[WebhookView, int]:
        """Send again. Held deliveries are sent (`deliver_held`) or marked skipped; returns the
        view and how many held deliveries were released or skipped."""
        async with self._db.transaction() as s:
            webhook = await self._webhook(s, organization_id, webhook_id)
            was_paused = webhook.state == "paused"
            now = now_ms()
            webhook.state = "enabled"
            webhook.paused_reason = None
            webhook.paused_at = None
            webhook.failure_streak = 0
            webhook.updated_at = now
            await s.flush()
            if was_paused:
                # On PostgreSQL an event recorded while the pause committed may have come in
                # `pending` (claims leave it alone meanwhile): it is held with the others.
                await delivery_store.hold_active(s, webhook.id)
            if deliver_held:
                count = await delivery_store.release_held(s, webhook.id, now)
                await delivery_store.announce(s)
            else:
                count = await delivery_store.skip_held(s, webhook.id, now)
            await AuditLog.record_by(
                s,
                organization_id,
                actor,
                "webhook.resumed",
                "webhook",
                webhook.id,
                {"nickname": webhook.nickname, "held": count, "delivered_held": deliver_held},
            )
        self.notify()
        return self.view(webhook), count

    async def ping(
        self,
        organization_id: str,
        webhook_id: str,
        *,
        actor_id: str = "operator",
        actor: Actor = SYSTEM,
    ) -> DeliveryView:
        """Queue a `webhook.ping` (sent even while paused; one attempt, no retries)."""
        async with self._db.transaction() as s:
            webhook = await self._webhook(s, organization_id, webhook_id)
            now = now_ms()
            snapshot = {
                "id": new_id(),
                "created_at": now,
                "actor_type": "User",
                "actor_id": actor_id,
                "webhook": {
                    "Id": webhook.id,
                    "Alias": webhook.nickname,
                    "Url": webhook.url,
                    "Topics": list(webhook.topics),
                    "State": webhook.state,
                    "OrganizationId": webhook.organization_id,
                    "CreatedAt": webhook.created_at,
                    "UpdatedAt": webhook.updated_at,
                },
            }
            row = delivery_row(
                organization_id=organization_id,
                webhook_id=webhook.id,
                topic=str(Topic.WEBHOOK_PING),
                kind="ping",
                payload=json.dumps(snapshot).encode(),
                now=now,
            )
            delivery = await self._queue(s, row)
            await AuditLog.record_by(
                s,
                organization_id,
                actor,
                "webhook.pinged",
                "webhook",
                webhook.id,
                {"nickname": webhook.nickname, "delivery_id": delivery.id},
            )
        self.notify()
        return delivery_view(delivery)

    async def _queue(self, s: AsyncSession, row: dict[str, Any]) -> Delivery:
        """Insert one delivery and announce it to every node; the caller commits, then calls
        `notify()` for this node's workers."""
        await s.execute(insert(Delivery), [row])
        await delivery_store.announce(s)
        delivery = await s.get(Delivery, row["id"])
        if delivery is None:  # inserted a moment ago in this same transaction
            raise RuntimeError("a delivery just queued cannot be read back")
        return delivery

    # Delivery log and replay

    async def list_deliveries(
        self,
        organization_id: str,
        webhook_id: str,
        *,
        statuses: Sequence[str] = (),
        topic: str | None = None,
        since: int | None = None,
        until: int | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[DeliveryView], str | None]:
        """Newest first, one page, and the cursor of the next page (None on the last)."""
        for status in statuses:
            if status not in delivery_store.STATUSES:
                raise InvalidInput(
                    f"unknown status {status!r}; choose from " + ", ".join(delivery_store.STATUSES),
                    field="status",
                )
        if topic is not None and topic not in {str(t) for t in Topic}:
            raise InvalidInput(f"unknown topic {topic!r}", field="topic")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        check_order(since, until)
        before = parse_cursor(cursor)
        async with self._db.session() as s:
            await self._webhook(s, organization_id, webhook_id)
            rows = await delivery_store.list_for_webhook(
                s,
                organization_id,
                webhook_id,
                statuses=statuses,
                topic=topic,
                since=since,
                until=until,
                before=before,
                limit=limit + 1,
            )
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = f"{rows[-1].created_at}_{rows[-1].id}" if more and rows else None
        return [delivery_view(d) for d in rows], next_cursor

    async def get_delivery(
        self, organization_id: str, delivery_id: str
    ) -> tuple[DeliveryView, list[AttemptView]]:
        async with self._db.session() as s:
            delivery = await delivery_store.get(s, organization_id, delivery_id)
            if delivery is None:
                raise NotFound(f"no delivery with id {delivery_id!r}")
            attempts = await delivery_store.attempts_of(s, delivery.id)
        return delivery_view(delivery), [attempt_view(a) for a in attempts]

    async def redeliver(self, organization_id: str, delivery_id: str) -> DeliveryView:
        """Send a delivery's event again, as a new delivery (one attempt; it never counts toward
        auto-pause)."""
        async with self._db.transaction() as s:
            original = await delivery_store.get(s, organization_id, delivery_id)
            if original is None:
                raise NotFound(f"no delivery with id {delivery_id!r}")
            row = self._redelivery_row(original, now_ms())
            with _webhook_deleted_meanwhile(original.webhook_id):
                inserted = await delivery_store.insert_of_stored_events(s, [row])
            if not inserted:
                # Retention removed the event (and with it this delivery) meanwhile.
                raise NotFound(
                    f"delivery {delivery_id!r} and its event were removed by retention "
                    "(retention.events_days), so it can no longer be sent again"
                )
            await delivery_store.announce(s)
            delivery = await s.get(Delivery, row["id"])
            if delivery is None:  # inserted a moment ago in this same transaction
                raise RuntimeError("a delivery just queued cannot be read back")
        self.notify()
        return delivery_view(delivery)

    async def redeliver_failed(
        self,
        organization_id: str,
        webhook_id: str,
        *,
        since: int | None = None,
        until: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        chunk: int = 200,
    ) -> list[str]:
        """Re-send every failed delivery of a webhook created in [since, until); returns the new
        deliveries' ids. `progress(done, total)` is called after each chunk. A delivery that
        retention removes meanwhile, or whose event it removes, is not sent again."""
        check_order(since, until)
        async with self._db.session() as s:
            await self._webhook(s, organization_id, webhook_id)
            ids = await delivery_store.failed_ids(
                s, organization_id, webhook_id, since=since, until=until
            )
        created: list[str] = []
        if progress is not None:
            progress(0, len(ids))
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            async with self._db.transaction() as s:
                originals = await delivery_store.by_ids(s, part)
                now = now_ms()
                rows = [self._redelivery_row(originals[i], now) for i in part if i in originals]
                with _webhook_deleted_meanwhile(webhook_id):
                    inserted = (
                        await delivery_store.insert_of_stored_events(s, rows) if rows else set()
                    )
                if inserted:
                    await delivery_store.announce(s)
            created.extend(r["id"] for r in rows if r["id"] in inserted)
            self.notify()
            if progress is not None:
                progress(min(start + chunk, len(ids)), len(ids))
        return created

    @staticmethod
    def _redelivery_row(original: Delivery, now: int) -> dict[str, Any]:
        return delivery_row(
            organization_id=original.organization_id,
            webhook_id=original.webhook_id,
            topic=original.topic,
            kind="redelivery",
            event_id=original.event_id,
            payload=original.payload,
            now=now,
        )

    async def _webhook(
        self, session: AsyncSession, organization_id: str, webhook_id: str
    ) -> Webhook:
        webhook = await webhook_store.get(session, organization_id, webhook_id)
        if webhook is None:
            raise NotFound(f"no webhook with id {webhook_id!r}")
        return webhook


@contextlib.contextmanager
def _webhook_deleted_meanwhile(webhook_id: str) -> Iterator[None]:
    """New deliveries of a webhook deleted since they were read: the foreign key refuses them
    (the only one that can, their event's being checked in the insert itself)."""
    try:
        yield
    except IntegrityError:
        raise NotFound(
            f"the webhook {webhook_id!r} was deleted meanwhile: nothing was sent again"
        ) from None
