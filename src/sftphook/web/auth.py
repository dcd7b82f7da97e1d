"""Logging in and out, and switching the current organization."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from sftphook.addresses import address_key
from sftphook.nul import nul_in
from sftphook.store.models import now_ms
from sftphook.web.pages import (
    NO_STORE,
    LoginRequired,
    PostedPage,
    field,
    get_state,
    posted_page,
    read_session,
    set_session_cookie,
)
from sftphook.web.sessions import COOKIE_NAME, WebSession, end_sessions

router = APIRouter(include_in_schema=False)
# The sections that have a list page of their own.
_LIST_PAGES = ("webhooks", "users", "events", "audit")


def _safe_next(value: str | None) -> str:
    """Only a local path: never send a freshly logged-in admin to another site."""
    if not value:
        return "/webhooks"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return "/webhooks"
    if "\\" in value:
        return "/webhooks"
    return value


async def _login_page(
    request: Request,
    *,
    error: str | None = None,
    username: str = "",
    status_code: int = 200,
    retry_after: float | None = None,
) -> Response:
    state = get_state(request)
    codec = await state.codec()
    session = await read_session(request)
    if session is None:
        session = WebSession.anonymous(now_ms())
    headers = dict(NO_STORE)
    if retry_after:
        headers["Retry-After"] = str(int(retry_after) + 1)
    response = state.templates.TemplateResponse(
        request,
        "login.html",
        {
            "csrf": codec.csrf_token(session),
            "error": error,
            "username": username,
            "next": _safe_next(request.query_params.get("next")),
            "no_admin": await state.admins.count() == 0,
        },
        status_code=status_code,
        headers=headers,
    )
    set_session_cookie(request, response, codec, session)
    return response


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/webhooks", status_code=303)


@router.get("/login")
async def login_form(request: Request) -> Response:
    return await _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    state = get_state(request)
    codec = await state.codec()
    form = await request.form()
    username = field(form, "username")
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    session = await read_session(request)
    token = form.get("csrf_token")
    if session is None or not codec.check_csrf(session, token if isinstance(token, str) else None):
        return await _login_page(
            request,
            error="Your login form expired (or cookies are off). Please try again.",
            username=username,
            status_code=403,
        )
    client = request.client.host if request.client else "unknown"
    # An IPv6 browser by its /64 (the SFTP front's default `sftp.ipv6_prefix`): one end site
    # holds 2^64 addresses and could otherwise try five passwords from each.
    keys = [f"ip:{address_key(client)}", f"name:{username.lower()}"]
    wait = state.throttle.retry_after(keys)
    if wait is not None:
        return await _login_page(
            request,
            error=f"Too many failed logins. Try again in {int(wait // 60) + 1} minute(s).",
            username=username,
            status_code=429,
            retry_after=wait,
        )
    # No admin name holds a NUL character, and PostgreSQL cannot even be asked about one: such a
    # name is not refused but answered as any unknown name is (401, and counted by the throttle).
    lookup = bool(username) and nul_in(username) is None
    admin = await state.admins.authenticate(username, password) if lookup else None
    if admin is None:
        state.throttle.failed(keys)
        # The organizations of a known admin see the failure; an unknown name belongs to none.
        state.app.security.login_failed(
            await state.admins.organization_ids_of_name(username) if lookup else [],
            source="dashboard",
            address=client,
            username=username,
        )
        return await _login_page(
            request, error="Wrong name or password.", username=username, status_code=401
        )
    state.throttle.succeeded(keys)
    organizations = await state.admins.organizations_of(admin.id)
    current = organizations[0].id if organizations else None
    if current is None:
        return await _login_page(
            request,
            error="Your account has no organization yet: ask for one with `sftphook admins grant`.",
            username=username,
            status_code=403,
        )
    response = RedirectResponse(_safe_next(field(form, "next")), status_code=303, headers=NO_STORE)
    credential = codec.credential_tag(admin.password_hash)
    set_session_cookie(
        request, response, codec, session.logged_in(admin.id, current, now_ms(), credential)
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    try:
        page, _ = await posted_page(request)
    except LoginRequired:
        # Already ended (Log out in another tab, a new password, expiry): nothing left to end,
        # and the login page is where the button promised to go.
        page = None
    if page is not None:
        await end_sessions(page.app.db, page.admin.id, now_ms())
    response = RedirectResponse("/login", status_code=303, headers=NO_STORE)
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


@router.post("/organization")
async def switch_organization(posted: PostedPage) -> Response:
    page, form = posted
    wanted = field(form, "organization_id")
    target = next((o for o in page.organizations if o.id == wanted), None)
    # Ids of one organization mean nothing in another: go to the section's list page. A
    # delivery's page belongs to the webhooks (there is no list of every delivery).
    section = _safe_next(field(form, "next")).strip("/").split("/")[0]
    back = "/" + section if section in _LIST_PAGES else "/webhooks"
    response = RedirectResponse(back, status_code=303, headers=NO_STORE)
    if target is not None:
        set_session_cookie(page.request, response, page.codec, page.session.switched(target.id))
    return response
