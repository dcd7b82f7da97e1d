"""Liveness and readiness."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from sftphook.api.deps import AppDep

if TYPE_CHECKING:
    from sftphook.app import App

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(app: AppDep) -> JSONResponse:
    """200 when this node can do the work of each of its roles, 503 (naming what is not) when
    it cannot: every role needs the database; `sftp` also its listener accepting connections
    and its file store taking files (`storage`: the files root still the writable directory it
    opened, or the bucket answering; "timed out" past a deadline), `worker` its delivery engine
    claiming. The listener and the engine stop first at a shutdown, so a draining node is taken
    out of its balancer before it stops answering."""
    checks = {"database": await _database(app)}
    if "sftp" in app.roles:
        front = app.sftp
        checks["sftp"] = "ok" if front is not None and front.accepting else "not listening"
        readiness = app.storage_readiness
        checks["storage"] = "not open" if readiness is None else await readiness.check()
    if "worker" in app.roles:
        checks["worker"] = "ok" if app.engine.claiming else "not claiming"
    ready = all(state == "ok" for state in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", **checks}, status_code=200 if ready else 503
    )


async def _database(app: App) -> str:
    try:
        async with app.db.session() as s:
            await s.execute(text("SELECT 1"))
    except Exception:
        return "unreachable"
    return "ok"
