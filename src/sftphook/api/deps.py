"""Dependencies named once: the running App, and the organization a bearer token belongs to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sftphook.audit import Actor
from sftphook.errors import Unauthorized
from sftphook.store.models import ApiToken

if TYPE_CHECKING:
    from sftphook.app import App

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    bearerFormat="shk_…",
    description="An API token of one organization, from `sftphook tokens create` "
    "or `POST /api/v1/tokens`.",
)


def get_app(request: Request) -> App:
    return request.app.state.sftphook


async def get_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiToken:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("send an API token as `Authorization: Bearer <token>`")
    return await get_app(request).accounts.authenticate_token(credentials.credentials)


async def get_organization_id(token: Annotated[ApiToken, Depends(get_token)]) -> str:
    return token.organization_id


async def get_actor(token: Annotated[ApiToken, Depends(get_token)]) -> Actor:
    """Who acts, for the audit log: the token, by its name."""
    return Actor.token(token.name)


AppDep = Annotated["App", Depends(get_app)]
CurrentActor = Annotated[Actor, Depends(get_actor)]
OrganizationId = Annotated[str, Depends(get_organization_id)]
