"""Errors as `application/problem+json` (RFC 9457) responses."""

from __future__ import annotations

import typing
from typing import Any

import annotated_types
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.fields import FieldInfo
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
            {"field": _field_name(err), "message": _message(request, err)} for err in exc.errors()
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

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # A bug: the exception is logged (it is raised again after this answer), never shown.
        if not request.url.path.startswith("/api/"):
            return PlainTextResponse("Internal Server Error", status_code=500)
        body = {
            "type": "about:blank",
            "title": "Internal error",
            "status": 500,
            "detail": "the server failed to answer this request; the error is in its log",
            "instance": request.url.path,
        }
        return problem_response(500, body)

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


# Errors about a number: their message should give the whole accepted range, not the one bound
# pydantic checked ("less than or equal to 500").
_NUMBER_ERRORS = frozenset(
    {
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "int_parsing",
        "int_type",
        "int_from_float",
        "float_parsing",
        "float_type",
        "finite_number",
    }
)


def _message(request: Request, error: Any) -> str:
    # A validator's own message, without the prefix pydantic puts before it.
    default = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if error.get("type") not in _NUMBER_ERRORS:
        return default
    declared = _declared_field(request.scope.get("route"), tuple(error.get("loc", ())))
    if declared is None:
        return default
    return _range_text(declared) or default


def _declared_field(route: Any, loc: tuple[Any, ...]) -> FieldInfo | None:
    """The query parameter or body field that `loc` names, as its route declares it."""
    if not isinstance(route, APIRoute) or len(loc) < 2:
        return None
    if loc[0] == "query" and len(loc) == 2:
        for param in route.dependant.query_params:
            if param.alias == loc[1]:
                return param.field_info
        return None
    if loc[0] != "body" or route.body_field is None:
        return None
    model = _model_of(route.body_field.field_info.annotation)
    field: FieldInfo | None = None
    for name in loc[1:]:
        if model is None or not isinstance(name, str) or name not in model.model_fields:
            return None
        field = model.model_fields[name]
        model = _model_of(field.annotation)
    return field


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model in `Model` or `Model | None`."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _range_text(field: FieldInfo) -> str | None:
    """ "must be an integer from 1 to 500", for the bounds a field declares."""
    bounds: dict[str, Any] = {}
    for bound in field.metadata:
        for name in ("ge", "gt", "le", "lt"):
            value = getattr(bound, name, None)
            if isinstance(bound, annotated_types.BaseMetadata) and value is not None:
                bounds[name] = value
    if not bounds:
        return None
    kinds = {a for a in (field.annotation, *typing.get_args(field.annotation)) if a is not None}
    kind = "an integer" if int in kinds and float not in kinds else "a number"
    if "ge" in bounds and "le" in bounds:
        return f"must be {kind} from {bounds['ge']} to {bounds['le']}"
    words = {"ge": "at least", "gt": "greater than", "le": "at most", "lt": "less than"}
    parts = [f"{words[name]} {value}" for name, value in bounds.items()]
    return f"must be {kind} " + " and ".join(parts)


_DESCRIPTIONS = {
    401: "Missing, invalid or revoked API token.",
    404: "No such object in this token's organization.",
    409: "An object with this name already exists.",
    413: "The request body is larger than any valid request (2 MiB). Nothing was changed.",
    422: "Invalid input: `errors` names each field (or query parameter) to fix. Nothing was "
    "changed.",
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
