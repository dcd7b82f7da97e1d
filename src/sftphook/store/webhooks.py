"""Queries on webhooks (subscriptions); every lookup by id is scoped to an organization."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

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


def fan_out_candidates(connection: Connection, organization_ids: Collection[str]) -> list[Row[Any]]:
    """`for_organizations` inside a `Database.write` transaction, with only the columns the
    fan-out reads (id, organization_id, topics, filter, state)."""
    parameters = {"organizations": list(organization_ids)}
    return list(connection.execute(_FAN_OUT_CANDIDATES, parameters))


async def by_ids(session: AsyncSession, webhook_ids: Collection[str]) -> dict[str, Webhook]:
    result = await session.execute(select(Webhook).where(Webhook.id.in_(list(webhook_ids))))
    return {w.id: w for w in result.scalars()}
