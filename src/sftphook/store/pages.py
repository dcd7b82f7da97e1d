"""Newest-first pages by keyset: (created_at, id) descending, after the last row of the
previous page, so a page costs the same however deep it is and rows added meanwhile are not
seen twice."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_

_S = TypeVar("_S", bound=Select[Any])


def newest_first(query: _S, model: Any, *, before: tuple[int, str] | None, limit: int) -> _S:
    """`query` ordered newest first, from after `before` (the last row of the previous page)."""
    if before is not None:
        created_at, row_id = before
        query = query.where(
            or_(
                model.created_at < created_at,
                and_(model.created_at == created_at, model.id < row_id),
            )
        )
    return query.order_by(model.created_at.desc(), model.id.desc()).limit(limit)
