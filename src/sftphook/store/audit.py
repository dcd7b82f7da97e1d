"""Queries on the audit log: add lines, update an aggregated line, list newest first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sftphook.store.models import AuditEntry
from sftphook.store.pages import newest_first

# Marks "every organization, and the lines of none" (the operator's view, from the CLI).
EVERY_ORGANIZATION: Any = object()


async def add_many(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(AuditEntry), list(rows))


async def update_details(session: AsyncSession, changes: Sequence[dict[str, Any]]) -> None:
    """Rewrite the details of aggregated lines (`{"id": …, "details": …}` each)."""
    for change in changes:
        await session.execute(
            update(AuditEntry)
            .where(AuditEntry.id == change["id"])
            .values(details=change["details"])
            .execution_options(synchronize_session=False)
        )


async def list_for(
    session: AsyncSession,
    organization_id: str | None,
    *,
    actions: Sequence[str] = (),
    target_type: str | None = None,
    target_id: str | None = None,
    since: int | None = None,
    until: int | None = None,
    before: tuple[int, str] | None = None,
    limit: int = 50,
) -> list[AuditEntry]:
    """Newest first. `organization_id` None: the lines of no organization; EVERY_ORGANIZATION:
    all of them. `before` is the (created_at, id) of the last line of the previous page. An
    action ending in `.*` matches its whole family (`webhook.*`)."""
    query = select(AuditEntry)
    if organization_id is None:
        query = query.where(AuditEntry.organization_id.is_(None))
    elif organization_id is not EVERY_ORGANIZATION:
        query = query.where(AuditEntry.organization_id == organization_id)
    if actions:
        exact = [a for a in actions if not a.endswith(".*")]
        families = [a[:-1] for a in actions if a.endswith(".*")]
        clauses: list[Any] = []
        if exact:
            clauses.append(AuditEntry.action.in_(exact))
        clauses.extend(AuditEntry.action.startswith(f, autoescape=True) for f in families)
        query = query.where(or_(*clauses))
    if target_type:
        query = query.where(AuditEntry.target_type == target_type)
    if target_id:
        query = query.where(AuditEntry.target_id == target_id)
    if since is not None:
        query = query.where(AuditEntry.created_at >= since)
    if until is not None:
        query = query.where(AuditEntry.created_at < until)
    query = newest_first(query, AuditEntry, before=before, limit=limit)
    return list((await session.execute(query)).scalars())
