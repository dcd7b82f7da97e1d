"""Queries on deliveries and their attempts; the claim that makes the table a work queue.

A delivery is *due* when its status is pending or retrying, its `next_attempt_at` has passed and
it holds no live lease. Claiming sets `lease_owner`/`lease_expires_at`; a worker that dies leaves
a lease that expires, and the delivery is due again. On PostgreSQL the candidates are locked with
`FOR UPDATE SKIP LOCKED`, so nodes never wait on one another; SQLite has one writer, and a claim
in one write transaction (`Database.write`, BEGIN IMMEDIATE) is atomic by itself.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import (
    Select,
    Table,
    and_,
    bindparam,
    exists,
    false,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from sftphook.store.database import notify
from sftphook.store.models import Attempt, Delivery, Event, Webhook
from sftphook.store.pages import newest_first

# PostgreSQL channel on which new due work is announced to every node's workers.
CHANNEL = "sftphook_deliveries"

ACTIVE = ("pending", "retrying")
FINAL = ("succeeded", "failed", "skipped")
STATUSES = ("pending", "retrying", "succeeded", "failed", "held", "skipped")
# Still owed a send: active, or held while the webhook is paused.
OWED = (*ACTIVE, "held")


async def announce(session: AsyncSession) -> None:
    """Tell the workers of every node that deliveries are due, when this transaction commits
    (PostgreSQL NOTIFY; on SQLite there is one node and the commit hook wakes it)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"NOTIFY {CHANNEL}"))


def announce_sync(connection: Connection) -> None:
    """`announce` inside a `Database.write` transaction."""
    notify(connection, CHANNEL)


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

# The claim's statements are built once, with bound parameters: building one per claim (its
# correlated subqueries above all) cost more than running it.
_D = cast(Table, Delivery.__table__)
_W = cast(Table, Webhook.__table__)
_NOW: BindParameter[int] = bindparam("now")
_LEASE_FREE = or_(_D.c.lease_expires_at.is_(None), _D.c.lease_expires_at <= _NOW)
_CLAIMED = tuple(_D.c[column.key] for column in CLAIMED_COLUMNS)


def _sqlite_due() -> Select[Any]:
    """Due deliveries of one status (`:status`), oldest due first, walking `ix_deliveries_due`.

    Within one `next_attempt_at` the index keeps rowid order, which is insertion order and so
    sequence order: ordering by it costs no sort (ordering by `sequence` made SQLite sort every
    due row of a released backlog, which shares one `next_attempt_at`, on every claim)."""
    heads = []
    for status in ACTIVE:
        prior = _D.alias(f"prior_{status}")
        first = (
            select(prior.c.sequence)
            .where(
                prior.c.webhook_id == _D.c.webhook_id,
                prior.c.kind == "event",
                prior.c.status == status,
            )
            .order_by(prior.c.sequence)
            .limit(1)
            .scalar_subquery()
        )
        heads.append(_D.c.sequence <= func.coalesce(first, _D.c.sequence))
    # Asked only of event deliveries (SQLite evaluates OR left to right), one primary-key seek.
    ordered = select(_W.c.ordered).where(_W.c.id == _D.c.webhook_id).scalar_subquery()
    return (
        select(*_CLAIMED, _D.c.next_attempt_at, _D.c.sequence)
        .where(
            _D.c.status == bindparam("status"),
            _D.c.next_attempt_at <= _NOW,
            _LEASE_FREE,
            _D.c.webhook_id.not_in(bindparam("exclude", expanding=True)),
            or_(_D.c.kind != "event", ordered == false(), and_(*heads)),
        )
        .order_by(_D.c.next_attempt_at, literal_column("deliveries.rowid"))
        .limit(bindparam("limit"))
    )


_SQLITE_DUE = _sqlite_due()
_LEASE_VALUES = {
    "lease_owner": bindparam("token"),
    "lease_expires_at": bindparam("expires"),
    "updated_at": _NOW,
}
_SQLITE_LEASE = (
    update(_D).where(_D.c.id.in_(bindparam("ids", expanding=True))).values(**_LEASE_VALUES)
)


def _pg_due(excluding: bool) -> Any:
    return (
        select(_D.c.id)
        .join(_W, _W.c.id == _D.c.webhook_id)
        .where(
            _D.c.status.in_(ACTIVE),
            _D.c.next_attempt_at <= _NOW,
            _LEASE_FREE,
            # An event delivery of a paused webhook waits for the resume (see `_claim_postgres`).
            or_(_D.c.kind != "event", and_(_W.c.ordered == false(), _W.c.state != "paused")),
            *([_D.c.webhook_id.not_in(bindparam("exclude", expanding=True))] if excluding else []),
        )
        .order_by(_D.c.next_attempt_at, _D.c.sequence)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True, of=_D)
        .cte("due")
        .prefix_with("MATERIALIZED")
    )


def _pg_claim_unordered(excluding: bool) -> Any:
    due = _pg_due(excluding)
    return (
        update(_D)
        .where(_D.c.id == due.c.id, _D.c.status.in_(ACTIVE), _LEASE_FREE)
        .values(**_LEASE_VALUES)
        .returning(*_CLAIMED)
    )


def _pg_ordered_hooks(excluding: bool) -> Select[Any]:
    waiting = _D.alias("waiting")
    sending = _D.alias("sending")
    return (
        select(_W.c.id)
        .where(
            _W.c.ordered == true(),
            _W.c.state != "paused",
            exists().where(
                waiting.c.webhook_id == _W.c.id,
                waiting.c.kind == "event",
                waiting.c.status.in_(ACTIVE),
                waiting.c.next_attempt_at <= _NOW,
                or_(waiting.c.lease_expires_at.is_(None), waiting.c.lease_expires_at <= _NOW),
            ),
            *([_W.c.id.not_in(bindparam("exclude", expanding=True))] if excluding else []),
            # Busy ones would only take room from the others (checked again under the lock).
            ~exists().where(
                sending.c.webhook_id == _W.c.id,
                sending.c.kind == "event",
                sending.c.status.in_(ACTIVE),
                sending.c.lease_expires_at > _NOW,
            ),
        )
        .order_by(_W.c.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True, key_share=True)
    )


_PG_CLAIM_UNORDERED = {excluding: _pg_claim_unordered(excluding) for excluding in (False, True)}
_PG_ORDERED_HOOKS = {excluding: _pg_ordered_hooks(excluding) for excluding in (False, True)}
_OF_WEBHOOK = (_D.c.webhook_id == bindparam("webhook_id"), _D.c.kind == "event")
_PG_HEAD_BUSY = (
    select(_D.c.id)
    .where(*_OF_WEBHOOK, _D.c.status.in_(ACTIVE), _D.c.lease_expires_at > _NOW)
    .limit(1)
)
# One seek each in ix_deliveries_webhook_head.
_PG_HEAD_FIRST = (
    select(_D.c.id, _D.c.sequence)
    .where(*_OF_WEBHOOK, _D.c.status == bindparam("status"))
    .order_by(_D.c.sequence)
    .limit(1)
)
_PG_HEAD_LEASE = (
    update(_D)
    .where(
        _D.c.id == bindparam("head_id"),
        _D.c.status.in_(ACTIVE),
        _D.c.next_attempt_at <= _NOW,
        _LEASE_FREE,
    )
    .values(**_LEASE_VALUES)
    .returning(*_CLAIMED)
)


def claim_sync(
    connection: Connection,
    *,
    token: str,
    now: int,
    lease_ms: int,
    limit: int,
    exclude_webhooks: Collection[str] = (),
) -> list[Any]:
    """Lease up to `limit` due deliveries to `token`, oldest due first; rows that start with
    `CLAIMED_COLUMNS`. Deliveries of `exclude_webhooks` (at their limits here) are left alone.
    Runs in the caller's write transaction (`Database.write`).

    For a webhook with strict ordering, an event delivery is due only when no earlier event
    delivery of that webhook is still active (pending, retrying or in flight), which keeps one
    in flight, in event order. Pings and manual re-sends are not ordered.
    """
    parameters: dict[str, Any] = {
        "token": token,
        "now": now,
        "expires": now + lease_ms,
        "limit": limit,
        "exclude": list(exclude_webhooks),
    }
    if connection.dialect.name == "postgresql":
        return _claim_postgres(connection, parameters)
    return _claim_sqlite(connection, parameters)


def _claim_sqlite(connection: Connection, parameters: dict[str, Any]) -> list[Any]:
    # SQLite has one writer and one node, and `Database.write` holds the write lock from BEGIN
    # IMMEDIATE: nothing changes between these reads and the UPDATE, which keys on the ids
    # alone (a guard in its WHERE made SQLite walk every active row instead of the primary
    # key). The node's sequence numbers only grow, so "no earlier active delivery" keeps one
    # in flight. Each status is one short walk of the index in order; the two lists merge.
    rows: list[Any] = []
    for status in ACTIVE:
        rows.extend(connection.execute(_SQLITE_DUE, {**parameters, "status": status}).all())
    if not rows:
        return rows
    rows.sort(key=lambda row: (row.next_attempt_at, row.sequence))
    del rows[parameters["limit"] :]
    connection.execute(_SQLITE_LEASE, {**parameters, "ids": [row.id for row in rows]})
    return rows


def _claim_postgres(connection: Connection, parameters: dict[str, Any]) -> list[Any]:
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

    Event deliveries of a paused webhook are left alone. The fan-out reads the webhook's state
    outside the transaction that inserts its deliveries (`Database.write(one_statement=True)`),
    so an event recorded while a pause commits can still arrive `pending`, after the pause
    held the others; it waits here, and the resume holds it with them (`hold_active`).
    """
    excluding = bool(parameters["exclude"])
    claimed = list(connection.execute(_PG_CLAIM_UNORDERED[excluding], parameters).all())
    room = parameters["limit"] - len(claimed)
    if room <= 0:
        return claimed
    ordered_hooks = connection.execute(
        _PG_ORDERED_HOOKS[excluding], {**parameters, "limit": room}
    ).scalars()
    for webhook_id in list(ordered_hooks):
        row = _claim_head(connection, webhook_id, parameters)
        if row is not None:
            claimed.append(row)
    return claimed


def _claim_head(connection: Connection, webhook_id: str, parameters: dict[str, Any]) -> Any | None:
    """Lease the first active event delivery of an ordered webhook whose row lock we hold."""
    parameters = {**parameters, "webhook_id": webhook_id}
    if connection.execute(_PG_HEAD_BUSY, parameters).first() is not None:
        return None
    firsts: list[Any] = []
    for status in ACTIVE:
        firsts.extend(connection.execute(_PG_HEAD_FIRST, {**parameters, "status": status}).all())
    if not firsts:
        return None
    head_id = min(firsts, key=lambda r: r[1])[0]
    return connection.execute(_PG_HEAD_LEASE, {**parameters, "head_id": head_id}).first()


# One seek per status in ix_deliveries_due.
_NEXT_SCHEDULED = select(func.min(_D.c.next_attempt_at)).where(
    _D.c.status == bindparam("status"), _D.c.next_attempt_at > bindparam("after")
)
_NEXT_LEASE_END = select(func.min(_D.c.lease_expires_at)).where(
    _D.c.status.in_(ACTIVE), _D.c.lease_expires_at > bindparam("after")
)


def next_due_sync(connection: Connection, after: int) -> int | None:
    """The earliest moment after `after` at which something may become due: a scheduled try or
    a lease running out. (The lease part walks the active rows, there being no index on
    `lease_expires_at`; the engine asks only when a claim came back short.)"""
    times = [
        connection.execute(_NEXT_SCHEDULED, {"status": status, "after": after}).scalar()
        for status in ACTIVE
    ]
    times.append(connection.execute(_NEXT_LEASE_END, {"after": after}).scalar())
    found = [t for t in times if t is not None]
    return min(found) if found else None


async def by_ids(session: AsyncSession, delivery_ids: Collection[str]) -> dict[str, Delivery]:
    result = await session.execute(select(Delivery).where(Delivery.id.in_(list(delivery_ids))))
    return {d.id: d for d in result.scalars()}


# Locked (PostgreSQL; in id order) until the results are written: a resume that skips the
# deliveries, or a claim of a lease that ran out, cannot come between this read and that write.
_LEASE_OWNERS = (
    select(_D.c.id, _D.c.lease_owner)
    .where(_D.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_D.c.id)
    .with_for_update(key_share=True)
)


def lease_owners_sync(
    connection: Connection, delivery_ids: Collection[str]
) -> dict[str, str | None]:
    """Who holds each delivery's lease (a missing id: the delivery no longer exists), inside a
    write transaction, which it keeps the deliveries' rows locked for."""
    rows = connection.execute(_LEASE_OWNERS, {"ids": list(delivery_ids)}).all()
    return {row[0]: row[1] for row in rows}


async def lease_owners(
    session: AsyncSession, delivery_ids: Collection[str]
) -> dict[str, str | None]:
    """`lease_owners_sync` in a session's transaction."""
    return await session.run_sync(lambda sync: lease_owners_sync(sync.connection(), delivery_ids))


# Written by id (the recording of a batch of results); the keys of `RESULT_COLUMNS`.
RESULT_COLUMNS = (
    "status",
    "attempt_count",
    "last_response_status",
    "last_error",
    "lease_owner",
    "lease_expires_at",
    "updated_at",
    "next_attempt_at",
    "completed_at",
)
_RECORD_RESULT = (
    update(_D)
    .where(_D.c.id == bindparam("delivery_id"))
    .values({name: bindparam(name) for name in RESULT_COLUMNS})
)
INSERT_ATTEMPTS = cast(Table, Attempt.__table__).insert()


def record_results(connection: Connection, changes: Sequence[dict[str, Any]]) -> None:
    """Write each delivery's outcome (`delivery_id` plus every key of `RESULT_COLUMNS`), one
    `executemany`."""
    if changes:
        connection.execute(_RECORD_RESULT, list(changes))


_EXTEND_LEASE = (
    update(_D)
    .where(_D.c.id == bindparam("delivery_id"), _D.c.lease_owner == bindparam("token"))
    .values(lease_expires_at=bindparam("expires"))
)


def extend_leases(connection: Connection, token: str, expires: Mapping[str, int]) -> None:
    """Make leases held by `token` last until `expires[delivery id]` (epoch ms), inside the
    claim's `Database.write` transaction."""
    if expires:
        connection.execute(
            _EXTEND_LEASE,
            [{"delivery_id": d, "token": token, "expires": at} for d, at in expires.items()],
        )


_RELEASE_LEASE = (
    update(_D)
    .where(_D.c.id == bindparam("delivery_id"), _D.c.lease_owner == bindparam("token"))
    .values(lease_owner=None, lease_expires_at=None)
)


def release_leases(connection: Connection, leases: Collection[tuple[str, str]]) -> None:
    """Give back (delivery id, lease token) leases of cancelled work, so it is due again at once;
    inside a `Database.write` transaction."""
    if leases:
        connection.execute(
            _RELEASE_LEASE, [{"delivery_id": d, "token": token} for d, token in leases]
        )


# The columns of a new delivery: the keys of `webhooks.fanout.delivery_row`.
NEW_COLUMNS = (
    "id",
    "organization_id",
    "webhook_id",
    "event_id",
    "topic",
    "kind",
    "status",
    "payload",
    "attempt_count",
    "next_attempt_at",
    "sequence",
    "created_at",
    "updated_at",
)
_E = cast(Table, Event.__table__)
# A delivery of an event, inserted only if the event is still stored, which it then locks (FOR
# KEY SHARE on PostgreSQL, the lock of a foreign-key check) until the transaction ends: a prune
# that has deleted the event is waited for, and then nothing is inserted; one that comes later
# skips the locked event (`store.retention.prune_batch`).
_INSERT_OF_STORED_EVENT = insert(_D).from_select(
    list(NEW_COLUMNS),
    select(
        *(
            _E.c.id if name == "event_id" else bindparam(name, type_=_D.c[name].type)
            for name in NEW_COLUMNS
        )
    )
    .where(_E.c.id == bindparam("event_id"))
    .with_for_update(key_share=True),
)


async def insert_of_stored_events(
    session: AsyncSession, rows: Sequence[Mapping[str, Any]]
) -> set[str]:
    """Insert new deliveries (dicts of `NEW_COLUMNS`) of events still stored, and those without
    an event; returns the ids inserted. A delivery whose event retention has removed, or is
    removing, is left out: an insert that went ahead would fail on the foreign key or, committed
    while a prune deletes its event, vanish in the delete's cascade.

    (On SQLite each insert is one statement under the one write lock, which reads the event as
    the last commit left it.)"""
    of_events = [row for row in rows if row["event_id"] is not None]
    others = [row for row in rows if row["event_id"] is None]
    if others:
        await session.execute(insert(_D), others)
    if of_events:
        await session.execute(_INSERT_OF_STORED_EVENT, of_events)
    ids = [row["id"] for row in rows]
    return set(await session.scalars(select(_D.c.id).where(_D.c.id.in_(ids))))


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
    """Held deliveries become `skipped`. One held while in flight loses its lease too, so that
    the result of that send is recorded as an attempt and changes nothing (`superseded`)."""
    result = await session.execute(
        update(Delivery)
        .where(Delivery.webhook_id == webhook_id, Delivery.status == "held")
        .values(
            status="skipped",
            lease_owner=None,
            lease_expires_at=None,
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


# A search of ix_deliveries_due by status that reads nothing but the index: what it costs
# follows the deliveries still owed, not the finished ones kept for the retention window (a
# GROUP BY over every status walked the whole table, on every scrape of `/metrics`).
_OWED_COUNTS = select(_D.c.status, func.count()).where(_D.c.status.in_(OWED)).group_by(_D.c.status)


async def owed_counts(session: AsyncSession) -> dict[str, int]:
    """How many deliveries are in each `OWED` status (every one of them, zero included)."""
    result = await session.execute(_OWED_COUNTS)
    counts = dict.fromkeys(OWED, 0)
    counts.update({status: int(count) for status, count in result.all()})
    return counts


async def oldest_active_created_at(session: AsyncSession) -> int | None:
    value = await session.scalar(
        select(func.min(Delivery.created_at)).where(Delivery.status.in_(ACTIVE))
    )
    return int(value) if value is not None else None
