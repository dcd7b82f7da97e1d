"""`/api/v1/events`: the organization's event log, newest first, a page at a time."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from sftphook import cursors
from sftphook.api import problems
from sftphook.api.deps import AppDep, OrganizationId
from sftphook.api.params import Since, Until
from sftphook.api.schemas import EventOut, EventPage
from sftphook.epoch import check_order, parse_time
from sftphook.errors import NotFound
from sftphook.events.model import FileTopicName
from sftphook.store import events

router = APIRouter(prefix="/events", tags=["events"], responses=problems.responses(401))

MAX_LIMIT = 500


@router.get(
    "",
    responses=problems.responses(422),
    summary="List events, newest first",
    description="Filter by `topic`, `path_prefix` and time (`since` ≤ time < `until`); follow "
    "`next` (also in the `Link` header) for older events until it is null.",
)
async def list_events(
    request: Request,
    response: Response,
    app: AppDep,
    organization_id: OrganizationId,
    topic: Annotated[FileTopicName | None, Query(description="Only events of this topic.")] = None,
    path_prefix: Annotated[
        str | None,
        Query(max_length=4096, description="Only events whose path starts with this."),
    ] = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Events per page.")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
    ] = None,
) -> EventPage:
    since_ms = parse_time(since, field="since")
    until_ms = parse_time(until, field="until")
    check_order(since_ms, until_ms)
    before = cursors.decode(cursor) if cursor else None
    # Paths are stored relative to the organization root; "/inbound" means "inbound".
    prefix = path_prefix.lstrip("/") if path_prefix else None
    async with app.db.session() as s:
        rows = await events.list_for(
            s,
            organization_id,
            topic=topic,
            path_prefix=prefix,
            before=before,
            since=since_ms,
            until=until_ms,
            limit=limit + 1,
        )
    page, more = rows[:limit], len(rows) > limit
    next_cursor = cursors.encode(page[-1].created_at, page[-1].id) if more else None
    next_url = None
    if next_cursor is not None:
        query = {
            "topic": topic,
            "path_prefix": path_prefix,
            "since": since,
            "until": until,
            "limit": limit,
            "cursor": next_cursor,
        }
        next_url = f"{request.url.path}?" + urlencode(
            {k: str(v) for k, v in query.items() if v is not None}
        )
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return EventPage(data=[EventOut.of(e) for e in page], next_cursor=next_cursor, next=next_url)


@router.get("/{event_id}", responses=problems.responses(404), summary="Get one event")
async def get_event(event_id: str, app: AppDep, organization_id: OrganizationId) -> EventOut:
    async with app.db.session() as s:
        event = await events.get(s, organization_id, event_id)
    if event is None:
        raise NotFound(f"no event with id {event_id!r}")
    return EventOut.of(event)
