"""`GET /metrics`: Prometheus text exposition of events, deliveries, attempts and the queue."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from sftphook.api.deps import AppDep
from sftphook.store import deliveries as delivery_store
from sftphook.store.models import now_ms

router = APIRouter(tags=["metrics"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(app: AppDep) -> PlainTextResponse:
    async with app.db.session() as s:
        counts = await delivery_store.counts_by_status(s)
        oldest = await delivery_store.oldest_active_created_at(s)
    depth = sum(counts.get(status, 0) for status in delivery_store.ACTIVE)
    age = max(0.0, (now_ms() - oldest) / 1000) if oldest is not None else 0.0
    text = app.metrics.render(
        deliveries_by_status={s: counts.get(s, 0) for s in delivery_store.STATUSES},
        queue_depth=depth,
        oldest_pending_age_seconds=age,
    )
    return PlainTextResponse(text, media_type=CONTENT_TYPE)
