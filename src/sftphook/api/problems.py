"""Errors as `application/problem+json` (RFC 9457) responses."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sftphook.api.schemas import Problem
from sftphook.errors import SftphookError

PROBLEM_JSON = "application/problem+json"


def problem_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(SftphookError)
    async def _domain(request: Request, exc: SftphookError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        return problem_response(exc.http_status, exc.to_problem(request.url.path), headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_name(err), "message": err.get("msg", "invalid value")}
            for err in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        body = {
            "type": "https://sftphook.dev/problems/invalid-input",
            "title": "Invalid input",
            "status": 422,
            "detail": detail,
            "instance": request.url.path,
            "errors": errors,
        }
        return problem_response(422, body)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = {
            "type": "about:blank",
            "title": str(exc.detail) if exc.status_code >= 400 else "Error",
            "status": exc.status_code,
            "detail": str(exc.detail),
            "instance": request.url.path,
        }
        return problem_response(exc.status_code, body, getattr(exc, "headers", None))


def _field_name(error: Any) -> str:
    """`limit` for ("query", "limit"), `public_keys.0` for ("body", "public_keys", 0)."""
    loc = list(error.get("loc", ()))
    if error.get("type") == "json_invalid":
        return "body"
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]
    return ".".join(str(p) for p in loc) or "body"


_DESCRIPTIONS = {
    401: "Missing, invalid or revoked API token.",
    404: "No such object in this token's organization.",
    409: "An object with this name already exists.",
    422: "Invalid input: `errors` names each field to fix. Nothing was changed.",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem responses a route can give."""
    return {status: {"model": Problem, "description": _DESCRIPTIONS[status]} for status in statuses}


def document(app: FastAPI) -> None:
    """Make the OpenAPI document describe error responses as they are sent: every one is
    `application/problem+json`, and a 422 is a Problem, not FastAPI's own validation shape."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    for status, response in operation.get("responses", {}).items():
                        _to_problem(status, response)
            schemas = schema.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _to_problem(status: str, response: dict[str, Any]) -> None:
    content = response.get("content", {})
    if status[:1] not in ("4", "5") or "application/json" not in content:
        return
    body = content.pop("application/json")
    if "HTTPValidationError" in str(body.get("schema", {}).get("$ref", "")):
        body = {"schema": {"$ref": "#/components/schemas/Problem"}}
        response["description"] = _DESCRIPTIONS[422]
    content[PROBLEM_JSON] = body
