"""Queries on webhooks (subscriptions); every lookup by id is scoped to an organization."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
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


async def by_ids(session: AsyncSession, webhook_ids: Collection[str]) -> dict[str, Webhook]:
    result = await session.execute(select(Webhook).where(Webhook.id.in_(list(webhook_ids))))
    return {w.id: w for w in result.scalars()}
