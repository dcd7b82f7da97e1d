"""REST: `/api/v1/deliveries/{id}` — one delivery with its attempts, and sending it again."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, status

from sftphook.api import problems
from sftphook.api.deps import AppDep, OrganizationId

router = APIRouter(
    prefix="/api/v1/deliveries", tags=["deliveries"], responses=problems.responses(401, 404)
)


@router.get("/{delivery_id}")
async def get_delivery(app: AppDep, org: OrganizationId, delivery_id: str) -> dict[str, Any]:
    """The delivery and every attempt: request headers (secrets masked) and body, response
    status, headers and the first 64 KiB of its body, duration, error."""
    view, attempts = await app.webhooks.get_delivery(org, delivery_id)
    return {**dataclasses.asdict(view), "attempts": [dataclasses.asdict(a) for a in attempts]}


@router.post("/{delivery_id}/redeliver", status_code=status.HTTP_202_ACCEPTED)
async def redeliver(app: AppDep, org: OrganizationId, delivery_id: str) -> dict[str, Any]:
    """Send the delivery's event again, as a new delivery."""
    return dataclasses.asdict(await app.webhooks.redeliver(org, delivery_id))
