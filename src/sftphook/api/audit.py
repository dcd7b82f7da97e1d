"""`/api/v1/audit`: the organization's audit log, newest first, a page at a time."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from sftphook.api import problems
from sftphook.api.deps import AppDep, OrganizationId
from sftphook.api.params import Since, Until
from sftphook.audit import MAX_PAGE
from sftphook.epoch import parse_time
from sftphook.store.models import AuditEntry

router = APIRouter(prefix="/audit", tags=["audit"], responses=problems.responses(401))


class AuditActor(BaseModel):
    type: str = Field(
        description="`token` (an API token, by its name), `admin` (a dashboard account), "
        "`cli`, `system` (automatic actions) or `address` (a client that failed to log in).",
        examples=["token"],
    )
    id: str = Field(examples=["deploy pipeline"])


class AuditTarget(BaseModel):
    type: str = Field(examples=["webhook"])
    id: str


class AuditEntryOut(BaseModel):
    id: str
    created_at: int = Field(description="Unix epoch milliseconds.")
    actor: AuditActor
    action: str = Field(examples=["webhook.secret_rotated"])
    target: AuditTarget
    details: dict[str, Any] = Field(description="Facts of the action; never a secret.")

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryOut:
        return cls(
            id=entry.id,
            created_at=entry.created_at,
            actor=AuditActor(type=entry.actor_type, id=entry.actor_id),
            action=entry.action,
            target=AuditTarget(type=entry.target_type, id=entry.target_id),
            details=dict(entry.details or {}),
        )


class AuditPage(BaseModel):
    data: list[AuditEntryOut] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next (older) page; null on the last page."
    )
    next: str | None = Field(description="The URL of the next page; null on the last page.")


@router.get(
    "",
    responses=problems.responses(422),
    summary="List the audit log, newest first",
    description="Who did what, when: webhooks created, changed, paused (by whom, or "
    "automatically and why), resumed, deleted, pinged, secrets rotated; SFTP users added, "
    "changed, disabled, removed; API tokens created and revoked; failed SFTP and dashboard "
    "logins (one line per address and minute, with a count) and bans; owner notices. "
    "Follow `next` (also in the `Link` header) for older lines until it is null.",
)
async def list_audit(
    request: Request,
    response: Response,
    app: AppDep,
    organization_id: OrganizationId,
    action: Annotated[
        list[str] | None,
        Query(
            max_length=20,
            description="Only these actions (repeat, or separate with commas); "
            "`webhook.*` matches a whole family.",
        ),
    ] = None,
    target_type: Annotated[str | None, Query(max_length=32, examples=["webhook"])] = None,
    target_id: Annotated[str | None, Query(max_length=255)] = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Lines per page.")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
    ] = None,
) -> AuditPage:
    actions = [a.strip() for value in action or [] for a in value.split(",") if a.strip()]
    rows, next_cursor = await app.audit.list(
        organization_id,
        actions=actions,
        target_type=target_type,
        target_id=target_id,
        since=parse_time(since, field="since"),
        until=parse_time(until, field="until"),
        cursor=cursor,
        limit=limit,
    )
    next_url = None
    if next_cursor is not None:
        query: list[tuple[str, str]] = [("action", a) for a in actions]
        for key, value in (
            ("target_type", target_type),
            ("target_id", target_id),
            ("since", since),
            ("until", until),
            ("limit", str(limit)),
            ("cursor", next_cursor),
        ):
            if value is not None:
                query.append((key, value))
        next_url = f"{request.url.path}?{urlencode(query)}"
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return AuditPage(
        data=[AuditEntryOut.of(e) for e in rows], next_cursor=next_cursor, next=next_url
    )
