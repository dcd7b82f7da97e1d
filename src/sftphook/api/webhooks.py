"""REST: `/api/v1/webhooks` — manage webhooks, ping, rotate, pause, resume, their deliveries."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sftphook.api import problems
from sftphook.api.deps import AppDep, CurrentActor, OrganizationId
from sftphook.api.params import Since, Until
from sftphook.epoch import ACCEPTED, parse_time
from sftphook.webhooks import tuning
from sftphook.webhooks.service import DeliveryView, WebhookView

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], responses=problems.responses(401))
# Routes with a webhook id answer 404 for an id of no webhook of the token's organization.
NOT_FOUND = problems.responses(404)

TopicName = Literal["file.created", "file.deleted", "file.downloaded", "file.renamed"]
EndpointType = Literal["webhook", "slack", "teams", "email"]
URL_HELP = (
    "The endpoint: an https:// URL (a Slack or Teams incoming-webhook URL for those types); "
    "for `email`, the recipients, like `ops@example.com, Jane <jane@example.com>`."
)


class FilterRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: Literal["Path", "ActorId", "ActorType"]
    operator: Literal[
        "is", "is_not", "contains", "not_contains", "starts_with", "ends_with", "matches"
    ]
    value: str = Field(max_length=1024)


class TuningFields(BaseModel):
    """A webhook's own delivery tuning; null (or left out on create) follows the configured
    default. The service checks the bounds too, for the CLI and the dashboard."""

    retry_schedule: list[Annotated[float, Field(ge=0, le=tuning.MAX_RETRY_DELAY)]] | None = Field(
        default=None,
        max_length=tuning.MAX_RETRIES,
        description="Seconds to wait before each retry; [] means no retries.",
        examples=[[5, 300, 1800]],
    )
    timeout: float | None = Field(
        default=None,
        ge=tuning.MIN_TIMEOUT,
        le=tuning.MAX_TIMEOUT,
        description="Seconds to wait for an answer to one request.",
    )
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=tuning.MAX_CONCURRENCY,
        description="Requests in flight at once to this endpoint.",
    )
    rate_limit: float | None = Field(
        default=None,
        ge=tuning.MIN_RATE,
        le=tuning.MAX_RATE,
        description="Requests started per second, at most.",
    )

    def given(self) -> dict[str, Any]:
        """The tuning fields present in the request (null ones included: they reset)."""
        present = self.model_fields_set
        return {name: getattr(self, name) for name in tuning.FIELDS if name in present}


class WebhookCreate(TuningFields):
    model_config = ConfigDict(extra="forbid")

    nickname: str = Field(min_length=1, max_length=128)
    type: EndpointType = "webhook"
    url: str = Field(min_length=1, max_length=2048, description=URL_HELP)
    topics: list[TopicName] = Field(min_length=1, max_length=4)
    authorization_header: str | None = Field(default=None, max_length=4096)
    filter: list[FilterRule] = Field(default_factory=list, max_length=20)
    ordered: bool = False


class WebhookUpdate(TuningFields):
    model_config = ConfigDict(extra="forbid")

    nickname: str | None = Field(default=None, min_length=1, max_length=128)
    # Changing the type needs a `url` that suits it (recipients for email).
    type: EndpointType | None = None
    url: str | None = Field(default=None, min_length=1, max_length=2048, description=URL_HELP)
    topics: list[TopicName] | None = Field(default=None, min_length=1, max_length=4)
    # Send null to remove the header.
    authorization_header: str | None = Field(default=None, max_length=4096)
    filter: list[FilterRule] | None = Field(default=None, max_length=20)
    ordered: bool | None = None

    # Null has a meaning for the header (remove it) and the tuning (the default), none here.
    @field_validator("nickname", "type", "url", "topics", "filter", "ordered", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null; leave the field out to keep its value")
        return value


class RotateSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: float = Field(default=0, ge=0, le=7 * 24 * 3600)


class Pause(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="paused by an operator", max_length=255)


class Resume(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # True: send what arrived while paused; false: mark it skipped.
    deliver_held: bool = True


class BulkRedeliver(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: int | str | None = Field(default=None, description=f"From this time on: {ACCEPTED}.")
    until: int | str | None = Field(default=None, description=f"Before this time: {ACCEPTED}.")


def webhook_json(view: WebhookView) -> dict[str, Any]:
    return dataclasses.asdict(view)


def delivery_json(view: DeliveryView) -> dict[str, Any]:
    return dataclasses.asdict(view)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_webhook(
    app: AppDep, org: OrganizationId, actor: CurrentActor, body: WebhookCreate
) -> dict[str, Any]:
    """Create a webhook. The answer carries `signing_secret`, shown this once only."""
    view, secret = await app.webhooks.create(
        org,
        nickname=body.nickname,
        url=body.url,
        topics=list(body.topics),
        authorization_header=body.authorization_header,
        filter=[r.model_dump() for r in body.filter],
        ordered=body.ordered,
        type=body.type,
        settings=body.given(),
        actor=actor,
    )
    return {**webhook_json(view), "signing_secret": secret}


@router.get("")
async def list_webhooks(app: AppDep, org: OrganizationId) -> dict[str, Any]:
    return {"items": [webhook_json(v) for v in await app.webhooks.list_webhooks(org)]}


@router.get("/{webhook_id}", responses=NOT_FOUND)
async def get_webhook(app: AppDep, org: OrganizationId, webhook_id: str) -> dict[str, Any]:
    return webhook_json(await app.webhooks.get(org, webhook_id))


@router.patch("/{webhook_id}", responses=NOT_FOUND)
async def update_webhook(
    app: AppDep, org: OrganizationId, actor: CurrentActor, webhook_id: str, body: WebhookUpdate
) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "nickname": body.nickname,
        "url": body.url,
        "topics": list(body.topics) if body.topics is not None else None,
        "filter": [r.model_dump() for r in body.filter] if body.filter is not None else None,
        "ordered": body.ordered,
        "type": body.type,
        "settings": body.given(),
    }
    if "authorization_header" in body.model_fields_set:
        changes["authorization_header"] = body.authorization_header
    return webhook_json(await app.webhooks.update(org, webhook_id, actor=actor, **changes))


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def remove_webhook(
    app: AppDep, org: OrganizationId, actor: CurrentActor, webhook_id: str
) -> Response:
    await app.webhooks.remove(org, webhook_id, actor=actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{webhook_id}/ping", status_code=status.HTTP_202_ACCEPTED, responses=NOT_FOUND)
async def ping_webhook(
    app: AppDep, org: OrganizationId, actor: CurrentActor, webhook_id: str
) -> dict[str, Any]:
    """Queue a `webhook.ping`; follow it at `GET /api/v1/deliveries/{id}`."""
    return delivery_json(await app.webhooks.ping(org, webhook_id, actor_id="api", actor=actor))


@router.post("/{webhook_id}/rotate-secret", responses=NOT_FOUND)
async def rotate_secret(
    app: AppDep,
    org: OrganizationId,
    actor: CurrentActor,
    webhook_id: str,
    body: Annotated[RotateSecret | None, Body()] = None,
) -> dict[str, Any]:
    """A new signing secret at once (shown this once); the old one keeps signing alongside for
    `grace_seconds`."""
    grace = body.grace_seconds if body is not None else 0
    view, secret = await app.webhooks.rotate_secret(
        org, webhook_id, grace_seconds=grace, actor=actor
    )
    return {**webhook_json(view), "signing_secret": secret}


@router.post("/{webhook_id}/pause", responses=NOT_FOUND)
async def pause_webhook(
    app: AppDep,
    org: OrganizationId,
    actor: CurrentActor,
    webhook_id: str,
    body: Annotated[Pause | None, Body()] = None,
) -> dict[str, Any]:
    reason = body.reason if body is not None else "paused by an operator"
    return webhook_json(await app.webhooks.pause(org, webhook_id, reason=reason, actor=actor))


@router.post("/{webhook_id}/resume", responses=NOT_FOUND)
async def resume_webhook(
    app: AppDep,
    org: OrganizationId,
    actor: CurrentActor,
    webhook_id: str,
    body: Annotated[Resume | None, Body()] = None,
) -> dict[str, Any]:
    deliver = body.deliver_held if body is not None else True
    view, count = await app.webhooks.resume(org, webhook_id, deliver_held=deliver, actor=actor)
    return {**webhook_json(view), "held_deliveries": count, "delivered_held": deliver}


@router.get("/{webhook_id}/deliveries", responses=NOT_FOUND)
async def list_deliveries(
    app: AppDep,
    org: OrganizationId,
    webhook_id: str,
    status_: Annotated[list[str] | None, Query(alias="status")] = None,
    topic: str | None = None,
    since: Since = None,
    until: Until = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Newest first; pass `next_cursor` back as `cursor` for the next page."""
    statuses = [s for value in status_ or [] for s in value.split(",") if s]
    rows, next_cursor = await app.webhooks.list_deliveries(
        org,
        webhook_id,
        statuses=statuses,
        topic=topic,
        since=parse_time(since, field="since"),
        until=parse_time(until, field="until"),
        cursor=cursor,
        limit=limit,
    )
    return {"items": [delivery_json(d) for d in rows], "next_cursor": next_cursor}


@router.post(
    "/{webhook_id}/deliveries/redeliver", status_code=status.HTTP_202_ACCEPTED, responses=NOT_FOUND
)
async def redeliver_failed(
    app: AppDep,
    org: OrganizationId,
    webhook_id: str,
    body: Annotated[BulkRedeliver | None, Body()] = None,
) -> dict[str, Any]:
    """Send again every failed delivery of this webhook created in [since, until)."""
    since = parse_time(body.since, field="since") if body else None
    until = parse_time(body.until, field="until") if body else None
    ids = await app.webhooks.redeliver_failed(org, webhook_id, since=since, until=until)
    return {"count": len(ids), "delivery_ids": ids}
