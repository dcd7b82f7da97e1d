"""Queries on recorded events."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Row, Select, Table, bindparam, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from sftphook.store.database import PlainInsert
from sftphook.store.models import Event
from sftphook.store.pages import newest_first


async def list_for(
    session: AsyncSession,
    organization_id: str,
    *,
    topic: str | None = None,
    path_prefix: str | None = None,
    before: tuple[int, str] | None = None,
    after_created_at: int | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int = 50,
) -> list[Event]:
    """Newest first, `since` ≤ created_at < `until`. `before` is the (created_at, id) of the last
    row of the previous page."""
    query = select(Event).where(Event.organization_id == organization_id)
    if topic:
        query = query.where(Event.topic == topic)
    if path_prefix:
        # Not LIKE: SQLite's ignores ASCII case, PostgreSQL's does not. Both count characters.
        query = query.where(func.substr(Event.path, 1, len(path_prefix)) == path_prefix)
    if after_created_at is not None:
        query = query.where(Event.created_at > after_created_at)
    if since is not None:
        query = query.where(Event.created_at >= since)
    if until is not None:
        query = query.where(Event.created_at < until)
    query = newest_first(query, Event, before=before, limit=limit)
    result = await session.execute(query)
    return list(result.scalars())


async def get(session: AsyncSession, organization_id: str, event_id: str) -> Event | None:
    result = await session.execute(
        select(Event).where(Event.organization_id == organization_id, Event.id == event_id)
    )
    return result.scalar_one_or_none()


_E = cast(Table, Event.__table__)
# Every column, each row holding them all (`EventRecord.as_row`).
_INSERT = PlainInsert(_E, tuple(column.name for column in _E.columns))


def insert(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert events (rows with every column) inside a `Database.write` transaction."""
    _INSERT.execute(connection, rows)


# by_ids' statement per tuple of columns asked for, built once.
_BY_IDS: dict[tuple[str, ...], Select[Any]] = {}


def by_ids(
    connection: Connection, event_ids: Collection[str], columns: tuple[str, ...]
) -> dict[str, Row[Any]]:
    """Event rows by id with `columns` (which include `id`) in that order, inside a
    `Database.write` transaction; a caller can unpack a row straight into its own record."""
    statement = _BY_IDS.get(columns)
    if statement is None:
        statement = _BY_IDS[columns] = select(*(_E.c[name] for name in columns)).where(
            _E.c.id.in_(bindparam("ids", expanding=True))
        )
    rows = connection.execute(statement, {"ids": list(event_ids)}).all()
    return {row.id: row for row in rows}
