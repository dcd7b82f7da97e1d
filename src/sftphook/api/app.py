"""Builds the FastAPI application that serves the API (and, later, the dashboard)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from sftphook import __version__
from sftphook.api import deliveries, health, metrics, problems, webhooks
from sftphook.web import mount as mount_dashboard

if TYPE_CHECKING:
    from sftphook.app import App


def create_app(app: App) -> FastAPI:
    api = FastAPI(
        title="sftphook",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    api.state.sftphook = app
    problems.install(api)
    api.include_router(health.router)
    api.include_router(metrics.router)
    api.include_router(webhooks.router)
    api.include_router(deliveries.router)
    mount_dashboard(api, app)
    return api
