"""Mounts the dashboard on the FastAPI app: its pages, static files and error pages."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from sftphook.errors import SftphookError
from sftphook.web import audit, auth, events, users, webhooks
from sftphook.web.pages import HERE, NO_STORE, FormRefused, LoginRequired, WebState, login_url

if TYPE_CHECKING:
    from sftphook.app import App

# Paths that belong to the API: their errors stay application/problem+json.
_API_PREFIXES = ("/api/", "/healthz", "/readyz", "/metrics")


def mount(api: FastAPI, app: App) -> None:
    api.state.web = state = WebState(app)
    api.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    api.include_router(auth.router)
    api.include_router(users.router)
    api.include_router(events.router)
    api.include_router(audit.router)
    api.include_router(webhooks.router)

    @api.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        if request.headers.get("x-requested-with") == "fetch":
            # The pages' own refresh: it stops, and the next click lands on the login page.
            return Response("log in again", status_code=401, headers=NO_STORE)
        if request.method != "GET":
            # A form sent after the session ended: say so, with the way back in.
            return _error_page(
                state,
                request,
                401,
                "Log in again",
                "Your session has ended (you logged out, your password changed, or it expired), "
                "so this form was not sent. Log in, then send it again.",
                link=("/login", "Log in"),
            )
        return RedirectResponse(login_url(target), status_code=303, headers=NO_STORE)

    @api.exception_handler(FormRefused)
    async def _refused(request: Request, exc: FormRefused) -> Response:
        return _error_page(
            state,
            request,
            403,
            "This form has expired",
            "The page was open too long or came from elsewhere. Go back, reload it and try again.",
        )

    api_errors = api.exception_handlers.get(SftphookError)

    @api.exception_handler(SftphookError)
    async def _domain(request: Request, exc: SftphookError) -> Response:
        if request.url.path.startswith(_API_PREFIXES) and api_errors is not None:
            handled = api_errors(request, exc)
            return await handled if inspect.isawaitable(handled) else handled
        return _error_page(state, request, exc.http_status, exc.title, exc.message)


def _error_page(
    state: WebState,
    request: Request,
    status: int,
    title: str,
    detail: str,
    *,
    link: tuple[str, str] = ("/webhooks", "Back to the dashboard"),
) -> HTMLResponse:
    return state.templates.TemplateResponse(
        request,
        "error.html",
        {"title": title, "detail": detail, "status": status, "link": link},
        status_code=status,
        headers=NO_STORE,
    )
