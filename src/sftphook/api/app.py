"""Builds the FastAPI application that serves the API (and, later, the dashboard)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, FastAPI

from sftphook import __version__
from sftphook.api import (
    audit,
    deliveries,
    deps,
    events,
    health,
    limits,
    metrics,
    organization,
    problems,
    tokens,
    users,
    webhooks,
)
from sftphook.web import mount as mount_dashboard

if TYPE_CHECKING:
    from sftphook.app import App

DESCRIPTION = """\
The REST API of sftphook. Every request needs an API token of one organization
(`sftphook tokens create`, or `POST /api/v1/tokens`) as `Authorization: Bearer <token>`;
it sees and changes only that organization's objects. Errors are `application/problem+json`.
"""


def create_app(app: App) -> FastAPI:
    api = FastAPI(
        title="sftphook",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    api.state.sftphook = app
    # Every body, the dashboard's forms too: none of them is valid at this size.
    api.add_middleware(limits.BoundedBody, prefix="/", limit=limits.MAX_BODY)
    problems.install(api)
    problems.document(api)
    api.include_router(health.router)
    api.include_router(metrics.router)
    # Every route under /api/v1 refuses query parameters it does not take, and NUL characters
    # before a value can reach the database; with the body bound, any can answer 413 and 422.
    checked = [Depends(deps.refuse_unknown_query), Depends(deps.refuse_nul)]
    answers = problems.responses(413, 422)
    v1 = APIRouter(prefix="/api/v1")
    for router in (users.router, events.router, tokens.router, audit.router, organization.router):
        v1.include_router(router)
    for router in (v1, webhooks.router, deliveries.router):
        api.include_router(router, dependencies=checked, responses=answers)
    # Last: the dashboard serves `/` and must not shadow the API's paths.
    mount_dashboard(api, app)
    return api
