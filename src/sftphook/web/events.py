"""The events page: the newest file events of the organization, filtered by topic and path."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from sftphook.epoch import epoch_ms
from sftphook.events.model import FILE_TOPICS
from sftphook.store import events as event_store
from sftphook.web.pages import CurrentPage

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50


def _cursor(value: str | None) -> tuple[int, str] | None:
    """The (created_at, id) of `before`; a link this page did not make starts from the newest."""
    if not value or ":" not in value:
        return None
    created, _, event_id = value.partition(":")
    created_at = epoch_ms(created)
    return (created_at, event_id) if created_at is not None and event_id else None


@router.get("/events")
async def events_page(
    page: CurrentPage, topic: str = "", path: str = "", before: str = ""
) -> Response:
    topic = topic if topic in FILE_TOPICS else ""
    path = path.strip().lstrip("/")[:1024]
    async with page.app.db.session() as s:
        rows = await event_store.list_for(
            s,
            page.org_id,
            topic=topic or None,
            path_prefix=path or None,
            before=_cursor(before),
            limit=PAGE_SIZE + 1,
        )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    older = f"{rows[-1].created_at}:{rows[-1].id}" if more and rows else None
    return await page.render(
        "events.html",
        {
            "nav": "events",
            "events": rows,
            "topics": sorted(FILE_TOPICS),
            "topic": topic,
            "path": path,
            "older": older,
        },
    )
