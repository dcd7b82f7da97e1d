"""The operations endpoints alone (`/metrics`, `/healthz`, `/readyz`): what a node without the
`http` role serves on `http.host`:`http.port`, without the dashboard or the REST API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from sftphook import __version__
from sftphook.api import health, metrics, problems

if TYPE_CHECKING:
    from sftphook.app import App


def create_ops_app(app: App) -> FastAPI:
    # No OpenAPI document and no docs page: they describe the API, which this app does not serve.
    ops = FastAPI(
        title="sftphook", version=__version__, openapi_url=None, docs_url=None, redoc_url=None
    )
    ops.state.sftphook = app
    problems.install(ops)  # a 404 is application/problem+json, as on a node with the http role
    ops.include_router(health.router)
    ops.include_router(metrics.router)
    return ops
