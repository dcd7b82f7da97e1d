"""`GET /metrics`: Prometheus text exposition of events, deliveries, attempts and the queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from sftphook.api.deps import AppDep
from sftphook.store import deliveries as delivery_store
from sftphook.store.models import now_ms
from sftphook.webhooks.metrics import Family

if TYPE_CHECKING:
    from sftphook.sftp.server import SFTPFront

router = APIRouter(tags=["metrics"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(app: AppDep) -> PlainTextResponse:
    async with app.db.session() as s:
        counts = await delivery_store.owed_counts(s)
        oldest = await delivery_store.oldest_active_created_at(s)
    depth = sum(counts[status] for status in delivery_store.ACTIVE)
    age = max(0.0, (now_ms() - oldest) / 1000) if oldest is not None else 0.0
    text = app.metrics.render(
        deliveries_by_status=counts,
        queue_depth=depth,
        oldest_pending_age_seconds=age,
        others=_sftp_families(app.sftp) if app.sftp is not None else (),
    )
    return PlainTextResponse(text, media_type=CONTENT_TYPE)


def _sftp_families(front: SFTPFront) -> list[Family]:
    """This node's SFTP connections, when it runs the SFTP role."""
    return [
        Family(
            "sftphook_sftp_connections",
            "gauge",
            "SFTP connections open on this node (logged in or logging in).",
            [({}, front.connection_count)],
        ),
        Family(
            "sftphook_sftp_connections_logging_in",
            "gauge",
            "Of those, connections that have not logged in yet.",
            [({}, front.logging_in_count)],
        ),
        Family(
            "sftphook_sftp_sessions",
            "gauge",
            "SFTP and SCP sessions open on this node.",
            [({}, len(front.sessions))],
        ),
        Family(
            "sftphook_sftp_connections_refused_total",
            "counter",
            "Connections refused before their key exchange, by reason.",
            [({"reason": reason}, count) for reason, count in sorted(front.refused.items())],
        ),
        Family(
            "sftphook_sftp_connections_closed_idle_total",
            "counter",
            "Connections closed after sftp.idle_timeout without data.",
            [({}, front.closed_idle)],
        ),
    ]
