"""Queries on SFTP users; every one but the login lookup is scoped by organization."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sftphook.store.models import User


async def by_username(session: AsyncSession, username: str) -> User | None:
    """The login lookup: usernames are unique across organizations."""
    result = await session.execute(select(User).where(User.username == username))
    return result.scalar_one_or_none()


async def by_usernames(session: AsyncSession, usernames: Collection[str]) -> list[User]:
    """The users with these login names, of any organization (the SFTP front's session check)."""
    result = await session.execute(select(User).where(User.username.in_(list(usernames))))
    return list(result.scalars())


async def replace_password_hash(
    session: AsyncSession, user_id: str, verified_hash: str, new_hash: str
) -> bool:
    """Store a rehash of the password: only if the hash is still the one verified (a password
    changed meanwhile wins), and with nothing else changed, `updated_at` included."""
    result = await session.execute(
        update(User)
        .where(User.id == user_id, User.password_hash == verified_hash)
        .values(password_hash=new_hash, updated_at=User.updated_at)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def get(session: AsyncSession, organization_id: str, username: str) -> User | None:
    result = await session.execute(
        select(User).where(User.organization_id == organization_id, User.username == username)
    )
    return result.scalar_one_or_none()


async def list_for(session: AsyncSession, organization_id: str) -> list[User]:
    result = await session.execute(
        select(User).where(User.organization_id == organization_id).order_by(User.username)
    )
    return list(result.scalars())
