"""Queries on deliveries and their attempts; the claim that makes the table a work queue.

A delivery is *due* when its status is pending or retrying, its `next_attempt_at` has passed and
it holds no live lease. Claiming sets `lease_owner`/`lease_expires_at`; a worker that dies leaves
a lease that expires, and the delivery is due again. On PostgreSQL the candidates are locked with
`FOR UPDATE SKIP LOCKED`, so nodes never wait on one another; SQLite has one writer, and the
guarded UPDATE is atomic by itself.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import and_, exists, false, func, or_, select, text, true, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from sftphook.store.models import Attempt, Delivery, Webhook
from sftphook.store.pages import newest_first

# PostgreSQL channel on which new due work is announced to every node's workers.
CHANNEL = "sftphook_deliveries"

ACTIVE = ("pending", "retrying")
FINAL = ("succeeded", "failed", "skipped")
STATUSES = ("pending", "retrying", "succeeded", "failed", "held", "skipped")


async def announce(session: AsyncSession) -> None:
    """Tell the workers of every node that deliveries are due, when this transaction commits
    (PostgreSQL NOTIFY; on SQLite there is one node and the commit hook wakes it)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"NOTIFY {CHANNEL}"))


def announce_sync(connection: Connection) -> None:
    """`announce` inside a `Database.write` transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"NOTIFY {CHANNEL}"))


def _lease_free(now: int) -> Any:
    return or_(Delivery.lease_expires_at.is_(None), Delivery.lease_expires_at <= now)


CLAIMED_COLUMNS = (
    Delivery.id,
    Delivery.organization_id,
    Delivery.webhook_id,
    Delivery.event_id,
    Delivery.topic,
    Delivery.kind,
    Delivery.payload,
    Delivery.attempt_count,
)


async def claim(
    session: AsyncSession,
    *,
    token: str,
    now: int,
    lease_ms: int,
    limit: int,
    exclude_webhooks: Collection[str] = (),
) -> list[Any]:
    """Lease up to `limit` due deliveries to `token`, oldest due first; rows of
    `CLAIMED_COLUMNS`. Deliveries of `exclude_webhooks` (at their limits here) are left alone.

    For a webhook with strict ordering, an event delivery is due only when no earlier event
    delivery of that webhook is still active (pending, retrying or in flight), which keeps one
    in flight, in event order. Pings and manual re-sends are not ordered.
    """
    claim_on = _claim_postgres if session.get_bind().dialect.name == "postgresql" else _claim_sqlite
    return await claim_on(
        session,
        token=token,
        now=now,
        lease_ms=lease_ms,
        limit=limit,
        exclude_webhooks=list(exclude_webhooks),
    )


def _lease_values(token: str, now: int, lease_ms: int) -> dict[str, Any]:
    return {"lease_owner": token, "lease_expires_at": now + lease_ms, "updated_at": now}


async def _claim_sqlite(
    session: AsyncSession,
    *,
    token: str,
    now: int,
    lease_ms: int,
    limit: int,
    exclude_webhooks: list[str],
) -> list[Any]:
    # SQLite has one writer and one node: this single UPDATE is atomic, and the node's
    # sequence numbers only grow, so "no earlier active delivery" keeps one in flight.
    heads = []
    for status in ACTIVE:
        prior = aliased(Delivery)
        first = (
            select(prior.sequence)
            .where(
                prior.webhook_id == Delivery.webhook_id,
                prior.kind == "event",
                prior.status == status,
            )
            .order_by(prior.sequence)
            .limit(1)
            .scalar_subquery()
        )
        heads.append(Delivery.sequence <= func.coalesce(first, Delivery.sequence))
    is_head = and_(*heads)
    candidates = (
        select(Delivery.id)
        .join(Webhook, Webhook.id == Delivery.webhook_id)
        .where(
            Delivery.status.in_(ACTIVE),
            Delivery.next_attempt_at <= now,
            _lease_free(now),
            or_(Delivery.kind != "event", Webhook.ordered == false(), is_head),
        )
        .order_by(Delivery.next_attempt_at, Delivery.sequence)
        .limit(limit)
    )
    if exclude_webhooks:
        candidates = candidates.where(Delivery.webhook_id.not_in(list(exclude_webhooks)))
    stmt = (
        update(Delivery)
        .where(
            Delivery.id.in_(candidates.scalar_subquery()),
            Delivery.status.in_(ACTIVE),
            _lease_free(now),
        )
        .values(**_lease_values(token, now, lease_ms))
        .returning(*CLAIMED_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(stmt)
    return list(result.all())


async def _claim_postgres(
    session: AsyncSession,
    *,
    token: str,
    now: int,
    lease_ms: int,
    limit: int,
    exclude_webhooks: list[str],
) -> list[Any]:
    """Two steps, so that nodes never wait on one another and never send an ordered webhook's
    deliveries side by side.

    1. Deliveries without ordering: locked with `FOR UPDATE SKIP LOCKED` in a materialized CTE
       (the LIMIT applies once, whatever plan PostgreSQL picks), then leased.
    2. Ordered webhooks: the webhook row is locked first (`FOR NO KEY UPDATE SKIP LOCKED`, which
       does not block the fan-out's foreign-key checks), so one node at a time picks that
       webhook's head. Under READ COMMITTED each later statement sees every claim committed by
       the node that held the lock before, and the head is taken only when no event delivery
       of the webhook holds a live lease: nodes' sequence numbers come from their own clocks,
       so a later-committed event may carry a smaller number than the one in flight.
    """
    due = (
        select(Delivery.id)
        .join(Webhook, Webhook.id == Delivery.webhook_id)
        .where(
            Delivery.status.in_(ACTIVE),
            Delivery.next_attempt_at <= now,
            _lease_free(now),
            or_(Delivery.kind != "event", Webhook.ordered == false()),
            *([Delivery.webhook_id.not_in(exclude_webhooks)] if exclude_webhooks else []),
        )
        .order_by(Delivery.next_attempt_at, Delivery.sequence)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Delivery)
        .cte("due")
        .prefix_with("MATERIALIZED")
    )
    result = await session.execute(
        update(Delivery)
        .where(Delivery.id == due.c.id, Delivery.status.in_(ACTIVE), _lease_free(now))
        .values(**_lease_values(token, now, lease_ms))
        .returning(*CLAIMED_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    claimed = list(result.all())
    room = limit - len(claimed)
    if room <= 0:
        return claimed
    waiting = aliased(Delivery)
    sending = aliased(Delivery)
    ordered_hooks = await session.execute(
        select(Webhook.id)
        .where(
            Webhook.ordered == true(),
            exists().where(
                waiting.webhook_id == Webhook.id,
                waiting.kind == "event",
                waiting.status.in_(ACTIVE),
                waiting.next_attempt_at <= now,
                or_(waiting.lease_expires_at.is_(None), waiting.lease_expires_at <= now),
            ),
            *([Webhook.id.not_in(exclude_webhooks)] if exclude_webhooks else []),
            # Busy ones would only take room from the others (checked again under the lock).
            ~exists().where(
                sending.webhook_id == Webhook.id,
                sending.kind == "event",
                sending.status.in_(ACTIVE),
                sending.lease_expires_at > now,
            ),
        )
        .order_by(Webhook.id)
        .limit(room)
        .with_for_update(skip_locked=True, key_share=True)
    )
    for webhook_id in ordered_hooks.scalars().all():
        row = await _claim_head(session, webhook_id, token=token, now=now, lease_ms=lease_ms)
        if row is not None:
            claimed.append(row)
    return claimed


async def _claim_head(
    session: AsyncSession, webhook_id: str, *, token: str, now: int, lease_ms: int
) -> Any | None:
    """Lease the first active event delivery of an ordered webhook whose row lock we hold."""
    of_webhook = (
        Delivery.webhook_id == webhook_id,
        Delivery.kind == "event",
    )
    busy = await session.scalar(
        select(Delivery.id)
        .where(*of_webhook, Delivery.status.in_(ACTIVE), Delivery.lease_expires_at > now)
        .limit(1)
    )
    if busy is not None:
        return None
    firsts: list[Any] = []
    for status in ACTIVE:  # one seek each in ix_deliveries_webhook_head
        first = await session.execute(
            select(Delivery.id, Delivery.sequence)
            .where(*of_webhook, Delivery.status == status)
            .order_by(Delivery.sequence)
            .limit(1)
        )
        firsts.extend(first.all())
    if not firsts:
        return None
    head_id = min(firsts, key=lambda r: r[1])[0]
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.id == head_id,
            Delivery.status.in_(ACTIVE),
            Delivery.next_attempt_at <= now,
            _lease_free(now),
        )
        .values(**_lease_values(token, now, lease_ms))
        .returning(*CLAIMED_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    return result.first()


async def next_due(session: AsyncSession, after: int) -> int | None:
    """The earliest moment after `after` at which something may become due: a scheduled try or
    a lease running out."""
    scheduled = await session.scalar(
        select(func.min(Delivery.next_attempt_at)).where(
            Delivery.status.in_(ACTIVE), Delivery.next_attempt_at > after
        )
    )
    lease = await session.scalar(
        select(func.min(Delivery.lease_expires_at)).where(
            Delivery.status.in_(ACTIVE), Delivery.lease_expires_at > after
        )
    )
    times = [t for t in (scheduled, lease) if t is not None]
    return min(times) if times else None


async def by_ids(session: AsyncSession, delivery_ids: Collection[str]) -> dict[str, Delivery]:
    result = await session.execute(select(Delivery).where(Delivery.id.in_(list(delivery_ids))))
    return {d.id: d for d in result.scalars()}


async def lease_owners(
    session: AsyncSession, delivery_ids: Collection[str]
) -> dict[str, str | None]:
    """Who holds each delivery's lease (a missing id: the delivery no longer exists)."""
    result = await session.execute(
        select(Delivery.id, Delivery.lease_owner).where(Delivery.id.in_(list(delivery_ids)))
    )
    return {row[0]: row[1] for row in result.all()}


async def release_leases(session: AsyncSession, leases: Collection[tuple[str, str]]) -> None:
    """Give back (delivery id, lease token) leases of cancelled work, so it is due again at once."""
    for delivery_id, token in leases:
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.lease_owner == token)
            .values(lease_owner=None, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )


async def get(session: AsyncSession, organization_id: str, delivery_id: str) -> Delivery | None:
    result = await session.execute(
        select(Delivery).where(
            Delivery.organization_id == organization_id, Delivery.id == delivery_id
        )
    )
    return result.scalar_one_or_none()


async def attempts_of(session: AsyncSession, delivery_id: str) -> list[Attempt]:
    result = await session.execute(
        select(Attempt)
        .where(Attempt.delivery_id == delivery_id)
        .order_by(Attempt.number, Attempt.created_at)
    )
    return list(result.scalars())


async def list_for_webhook(
    session: AsyncSession,
    organization_id: str,
    webhook_id: str,
    *,
    statuses: Sequence[str] = (),
    topic: str | None = None,
    since: int | None = None,
    until: int | None = None,
    before: tuple[int, str] | None = None,
    limit: int = 50,
) -> list[Delivery]:
    """Newest first; `before` is the (created_at, id) of the last row of the previous page."""
    query = select(Delivery).where(
        Delivery.organization_id == organization_id, Delivery.webhook_id == webhook_id
    )
    if statuses:
        query = query.where(Delivery.status.in_(list(statuses)))
    if topic:
        query = query.where(Delivery.topic == topic)
    if since is not None:
        query = query.where(Delivery.created_at >= since)
    if until is not None:
        query = query.where(Delivery.created_at < until)
    query = newest_first(query, Delivery, before=before, limit=limit)
    result = await session.execute(query)
    return list(result.scalars())


async def hold_active(session: AsyncSession, webhook_id: str) -> int:
    """A paused webhook keeps its event deliveries, held until resumed."""
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.webhook_id == webhook_id,
            Delivery.kind == "event",
            Delivery.status.in_(ACTIVE),
        )
        .values(status="held")
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def release_held(session: AsyncSession, webhook_id: str, now: int) -> int:
    result = await session.execute(
        update(Delivery)
        .where(Delivery.webhook_id == webhook_id, Delivery.status == "held")
        .values(status="pending", next_attempt_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def skip_held(session: AsyncSession, webhook_id: str, now: int) -> int:
    result = await session.execute(
        update(Delivery)
        .where(Delivery.webhook_id == webhook_id, Delivery.status == "held")
        .values(
            status="skipped",
            completed_at=now,
            updated_at=now,
            last_error="skipped when the webhook was resumed",
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def failed_ids(
    session: AsyncSession,
    organization_id: str,
    webhook_id: str,
    *,
    since: int | None = None,
    until: int | None = None,
) -> list[str]:
    query = select(Delivery.id).where(
        Delivery.organization_id == organization_id,
        Delivery.webhook_id == webhook_id,
        Delivery.status == "failed",
    )
    if since is not None:
        query = query.where(Delivery.created_at >= since)
    if until is not None:
        query = query.where(Delivery.created_at < until)
    result = await session.execute(query.order_by(Delivery.created_at, Delivery.id))
    return list(result.scalars())


async def counts_by_status(session: AsyncSession) -> dict[str, int]:
    result = await session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
    return {status: int(count) for status, count in result.all()}


async def oldest_active_created_at(session: AsyncSession) -> int | None:
    value = await session.scalar(
        select(func.min(Delivery.created_at)).where(Delivery.status.in_(ACTIVE))
    )
    return int(value) if value is not None else None
