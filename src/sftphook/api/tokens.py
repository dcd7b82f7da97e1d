"""`/api/v1/tokens`: the organization's API tokens; a new token is shown once."""

from __future__ import annotations

from fastapi import APIRouter, status

from sftphook.api import problems
from sftphook.api.deps import AppDep, CurrentActor, OrganizationId
from sftphook.api.schemas import TokenCreate, TokenCreated, TokenList, TokenOut

router = APIRouter(prefix="/tokens", tags=["tokens"], responses=problems.responses(401))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problems.responses(422),
    summary="Create an API token",
    description="The response carries the token itself; no later response does.",
)
async def create_token(
    body: TokenCreate, app: AppDep, organization_id: OrganizationId, actor: CurrentActor
) -> TokenCreated:
    token, plain = await app.accounts.create_token(organization_id, body.name, actor=actor)
    return TokenCreated(**TokenOut.of(token).model_dump(), token=plain)


@router.get("", summary="List API tokens (without the tokens themselves)")
async def list_tokens(app: AppDep, organization_id: OrganizationId) -> TokenList:
    tokens = await app.accounts.list_tokens(organization_id)
    return TokenList(data=[TokenOut.of(t) for t in tokens])


@router.delete(
    "/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems.responses(404),
    summary="Revoke an API token",
    description="Requests with it get 401 from then on. Revoking twice is not an error.",
)
async def revoke_token(
    token_id: str, app: AppDep, organization_id: OrganizationId, actor: CurrentActor
) -> None:
    await app.accounts.revoke_token(organization_id, token_id, actor=actor)
