"""Key/value settings shared by every node (host keys, install facts)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from sftphook.store.models import Setting


async def get(session: AsyncSession, key: str) -> str | None:
    row = await session.get(Setting, key)
    return row.value if row else None


async def put(session: AsyncSession, key: str, value: str) -> None:
    row = await session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=value))
    else:
        row.value = value
    await session.flush()
