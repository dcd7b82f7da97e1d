"""`/api/v1/organization`: the token's own organization, and where its owner notices go."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from sftphook.api import problems
from sftphook.api.deps import AppDep, CurrentActor, OrganizationId
from sftphook.store.models import Organization

router = APIRouter(prefix="/organization", tags=["organization"], responses=problems.responses(401))


class OrganizationOut(BaseModel):
    id: str
    name: str
    notice_email: str | None = Field(
        description="Receives owner notices: a webhook paused automatically, a signing secret "
        "rotated. Null: no notices are sent (they are still in the audit log)."
    )
    created_at: int = Field(description="Unix epoch milliseconds.")

    @classmethod
    def of(cls, org: Organization) -> OrganizationOut:
        return cls(
            id=org.id, name=org.name, notice_email=org.notice_email, created_at=org.created_at
        )


class OrganizationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notice_email: str | None = Field(
        max_length=320,
        description="An address (`ops@example.com`, `Ops <ops@example.com>`, or several "
        "separated by commas); null or an empty string stops owner notices.",
    )


@router.get("", summary="Get the token's organization")
async def get_organization(app: AppDep, organization_id: OrganizationId) -> OrganizationOut:
    return OrganizationOut.of(await app.accounts.get_organization(organization_id))


@router.patch(
    "",
    responses=problems.responses(422),
    summary="Change the token's organization",
    description="Sets where owner notices go. The change is in the audit log.",
)
async def update_organization(
    body: OrganizationUpdate, app: AppDep, organization_id: OrganizationId, actor: CurrentActor
) -> OrganizationOut:
    org = await app.accounts.set_notice_email(organization_id, body.notice_email, actor=actor)
    return OrganizationOut.of(org)
