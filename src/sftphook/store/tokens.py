"""Queries on API tokens."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sftphook.store.models import ApiToken


async def by_hash(session: AsyncSession, token_hash: str) -> ApiToken | None:
    result = await session.execute(select(ApiToken).where(ApiToken.token_hash == token_hash))
    return result.scalar_one_or_none()


async def get(session: AsyncSession, organization_id: str, token_id: str) -> ApiToken | None:
    result = await session.execute(
        select(ApiToken).where(ApiToken.organization_id == organization_id, ApiToken.id == token_id)
    )
    return result.scalar_one_or_none()


async def list_for(session: AsyncSession, organization_id: str) -> list[ApiToken]:
    result = await session.execute(
        select(ApiToken)
        .where(ApiToken.organization_id == organization_id)
        .order_by(ApiToken.created_at)
    )
    return list(result.scalars())
