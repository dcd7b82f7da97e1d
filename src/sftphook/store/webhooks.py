"""Queries on webhooks (subscriptions); every lookup by id is scoped to an organization."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from sftphook.store.database import driver_errors, sqlite_driver
from sftphook.store.models import Webhook


async def get(session: AsyncSession, organization_id: str, webhook_id: str) -> Webhook | None:
    result = await session.execute(
        select(Webhook).where(Webhook.organization_id == organization_id, Webhook.id == webhook_id)
    )
    return result.scalar_one_or_none()


async def list_for(session: AsyncSession, organization_id: str) -> list[Webhook]:
    result = await session.execute(
        select(Webhook)
        .where(Webhook.organization_id == organization_id)
        .order_by(Webhook.created_at, Webhook.id)
    )
    return list(result.scalars())


async def for_organizations(
    session: AsyncSession, organization_ids: Collection[str]
) -> list[Webhook]:
    """Every webhook of these organizations (the fan-out's candidates)."""
    result = await session.execute(
        select(Webhook)
        .where(Webhook.organization_id.in_(list(organization_ids)))
        .order_by(Webhook.created_at, Webhook.id)
    )
    return list(result.scalars())


# Built once: a statement built per call costs more to compile-cache than SQLite takes to run it.
_FAN_OUT_CANDIDATES = (
    select(Webhook.id, Webhook.organization_id, Webhook.topics, Webhook.filter, Webhook.state)
    .where(Webhook.organization_id.in_(bindparam("organizations", expanding=True)))
    .order_by(Webhook.created_at, Webhook.id)
)
# The same on SQLite, for the `sqlite3` connection itself (one per number of organizations).
_FAN_OUT_SQL = (
    "SELECT id, organization_id, topics, filter, state FROM webhooks"
    " WHERE organization_id IN ({}) ORDER BY created_at, id"
)


class Candidate(NamedTuple):
    id: str
    organization_id: str
    topics: list[Any]
    filter: list[Any]
    state: str


def fan_out_candidates(
    connection: Connection, organization_ids: Collection[str]
) -> list[Candidate]:
    """`for_organizations` inside a `Database.write` transaction, with only the columns the
    fan-out reads. It runs before every event's commit: on SQLite straight on the `sqlite3`
    connection (the JSON columns decoded here), as Core costs several times SQLite's work."""
    organizations = list(organization_ids)
    driver = sqlite_driver(connection)
    if driver is None:
        result = connection.execute(_FAN_OUT_CANDIDATES, {"organizations": organizations})
        return [Candidate(*row) for row in result]
    sql = _FAN_OUT_SQL.format(", ".join("?" * len(organizations)))
    with driver_errors(sql):
        rows = driver.execute(sql, organizations).fetchall()
    return [
        Candidate(id, organization, json.loads(topics), json.loads(rules), state)
        for id, organization, topics, rules, state in rows
    ]


async def by_ids(session: AsyncSession, webhook_ids: Collection[str]) -> dict[str, Webhook]:
    """Locked like `streaks` (recording results that pause a webhook)."""
    result = await session.execute(
        select(Webhook)
        .where(Webhook.id.in_(list(webhook_ids)))
        .order_by(Webhook.id)
        .with_for_update(key_share=True)
    )
    return {w.id: w for w in result.scalars()}


_W = cast(Table, Webhook.__table__)
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
# What a claim needs to send (URL, secrets, type, ordering, per-webhook settings).
_FOR_SENDING = select(
    _W.c.id,
    _W.c.organization_id,
    _W.c.type,
    _W.c.url,
    _W.c.ordered,
    _W.c.secret_encrypted,
    _W.c.previous_secret_encrypted,
    _W.c.previous_secret_expires_at,
    _W.c.authorization_encrypted,
    _W.c.settings,
).where(_W.c.id.in_(_IDS))
# What recording results reads: the state (a paused webhook's retries are held) and the streak.
# Locked (PostgreSQL; in id order) before the deliveries are, the order in which a pause or a
# resume writes them (the webhook, then its deliveries): results are written with the state
# a pause or resume committed, and recording them cannot deadlock with one. The fan-out's
# foreign-key checks do not wait for this lock; an ordered claim skips the webhook meanwhile.
_STREAKS = (
    select(_W.c.id, _W.c.state, _W.c.failure_streak)
    .where(_W.c.id.in_(_IDS))
    .order_by(_W.c.id)
    .with_for_update(key_share=True)
)
# `updated_at` follows by the column's `onupdate`, as it does through the ORM.
_SET_STREAK = (
    update(_W).where(_W.c.id == bindparam("webhook_id")).values(failure_streak=bindparam("streak"))
)


def for_sending(connection: Connection, webhook_ids: Collection[str]) -> dict[str, Any]:
    """The columns a delivery's send needs, by webhook id, inside a `Database.write`."""
    rows = connection.execute(_FOR_SENDING, {"ids": list(webhook_ids)}).all()
    return {row.id: row for row in rows}


def streaks(connection: Connection, webhook_ids: Collection[str]) -> dict[str, Any]:
    """(id, state, failure_streak) by webhook id, inside a `Database.write`, which it keeps the
    webhooks' rows locked for."""
    rows = connection.execute(_STREAKS, {"ids": list(webhook_ids)}).all()
    return {row.id: row for row in rows}


def set_streaks(connection: Connection, streak_by_webhook: dict[str, int]) -> None:
    if streak_by_webhook:
        connection.execute(
            _SET_STREAK,
            [{"webhook_id": w, "streak": n} for w, n in streak_by_webhook.items()],
        )
