"""Dependencies named once: the running App, and the organization a bearer token belongs to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sftphook import nul
from sftphook.audit import Actor
from sftphook.errors import InvalidInput, Unauthorized
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


NUL_MESSAGE = "must not contain NUL characters"


def _nul_message(field: str) -> str:
    return NUL_MESSAGE  # the field is named beside it, in the problem's `errors`


async def refuse_nul(request: Request, _: Annotated[ApiToken, Depends(get_token)]) -> None:
    """Refuse a NUL character in the path, the query (names too) or a JSON body, naming where
    it is (`nul.refuse_nul`).

    PostgreSQL can neither store nor compare text that holds one: left to the database, any
    such value was a 500. Runs after the token check, so that a stranger still gets 401."""
    nul.refuse_nul(
        [*request.path_params.items(), *request.query_params.multi_items()],
        message=_nul_message,
        names=True,
    )
    body = await request.body()  # read (and kept) by FastAPI already
    # JSON can only spell a NUL as an escape: most bodies are not looked into.
    if b"\\u0000" not in body:
        return
    try:
        document = await request.json()  # as FastAPI parsed it (Starlette keeps it)
    except (ValueError, RecursionError):
        return  # not JSON: the route's own validation says what is wrong
    # Named by its path (`filter.0.value`); "body" for a NUL in a top-level key, or in a body
    # that is one string.
    nul.refuse_nul([("body", document)], message=_nul_message, names=False)


async def refuse_unknown_query(
    request: Request, _: Annotated[ApiToken, Depends(get_token)]
) -> None:
    """Refuse a query parameter the route does not take, as an unknown body field is refused: a
    misspelt filter (`?topics=`) would otherwise answer the whole, unfiltered list."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    accepted = _query_names(route.dependant)
    unknown = sorted({name for name in request.query_params if name not in accepted})
    if not unknown:
        return
    takes = (
        "this route takes " + ", ".join(accepted)
        if accepted
        else "this route takes no query parameters"
    )
    message = f"unknown query parameter; {takes}"
    raise InvalidInput(
        f"unknown query parameter {', '.join(unknown)}: {takes}",
        errors=[{"field": name, "message": message} for name in unknown],
    )


def _query_names(dependant: Dependant) -> list[str]:
    """The query parameters a route takes, its dependencies' included, in declaration order."""
    names = [param.alias for param in dependant.query_params]
    for sub in dependant.dependencies:
        names += [name for name in _query_names(sub) if name not in names]
    return names


AppDep = Annotated["App", Depends(get_app)]
CurrentActor = Annotated[Actor, Depends(get_actor)]
OrganizationId = Annotated[str, Depends(get_organization_id)]
