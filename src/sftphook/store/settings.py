"""Key/value settings shared by every node (host keys, install facts)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from sftphook.store.models import Setting, now_ms


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


async def add_if_absent(session: AsyncSession, key: str, value: str) -> None:
    """Insert `key` unless a row exists, even one another transaction is committing: the first
    writer wins and this one waits for it (read the row afterwards to see who won)."""
    insert: Any
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = (
        insert(Setting)
        .values(key=key, value=value, updated_at=now_ms())
        .on_conflict_do_nothing(index_elements=["key"])
    )
    await session.execute(statement)
