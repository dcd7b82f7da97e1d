"""What every dashboard page shares: the logged-in admin, the current organization, CSRF,
rendering with `Cache-Control: no-store`, and redirects that carry a one-time message."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.datastructures import FormData

from sftphook import nul
from sftphook.accounts.admins import AdminService
from sftphook.audit import Actor
from sftphook.store.models import Admin, Organization, now_ms
from sftphook.web.flash import OneTimeStore
from sftphook.web.sessions import (
    COOKIE_NAME,
    MAX_AGE_SECONDS,
    LoginThrottle,
    SessionCodec,
    WebSession,
    load_key,
    sessions_valid_after,
)

if TYPE_CHECKING:
    from sftphook.app import App

HERE = Path(__file__).parent
# Every dashboard response: never cached (a page may have shown a secret), never framed, and
# nothing loaded or run from anywhere but this server.
NO_STORE = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
}


class LoginRequired(Exception):
    """No valid session: the browser goes to the login page."""


class FormRefused(Exception):
    """A POST without a valid CSRF token (a forged or stale form)."""


def _datetime(ms: int | None) -> str:
    if ms is None:
        return ""
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _when(ms: int | None) -> Markup:
    """The date and the time, each kept whole, so that a narrow column breaks between them."""
    day, _, rest = _datetime(ms).partition(" ")
    return Markup('<span class="nowrap">{}</span> <span class="nowrap">{}</span>').format(day, rest)


def _size(value: int | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"


# JSON nested deeper than this is shown as it came: indented, each level adds two spaces to
# every line below it, so 3,000 nested arrays (6 KB) would make 18 MB of page.
PRETTY_DEPTH = 20


def _pretty_json(raw: bytes | str | None) -> str:
    """A payload or a receiver's response body, indented if it is JSON of a sane depth; else
    as it came (a receiver's body can be anything)."""
    if raw is None:
        return ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        # Not JSON, or nested deeper than Python's parser recurses.
        return text
    if not _nested_at_most(value, PRETTY_DEPTH):
        return text
    return json.dumps(value, indent=2, ensure_ascii=False)


def _nested_at_most(value: object, depth: int) -> bool:
    """Whether `value` has at most `depth` levels of arrays and objects (without recursion:
    Python 3.13's parser reads thousands of levels)."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if level > depth:
            return False
        stack.extend((child, level + 1) for child in children)
    return True


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["datetime"] = _datetime
    templates.env.filters["when"] = _when
    templates.env.filters["size"] = _size
    templates.env.filters["pretty_json"] = _pretty_json
    return templates


class WebState:
    """The dashboard's long-lived parts, one per HTTP server."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.admins = AdminService(app.db)
        self.templates = make_templates()
        self.throttle = LoginThrottle()
        self.messages = OneTimeStore(app.db, app.secret_box)
        self._codec: SessionCodec | None = None
        self._lock = asyncio.Lock()

    async def codec(self) -> SessionCodec:
        if self._codec is None:
            async with self._lock:
                if self._codec is None:
                    self._codec = SessionCodec(await load_key(self.app.db))
        return self._codec


def get_state(request: Request) -> WebState:
    return request.app.state.web


async def read_session(request: Request) -> WebSession | None:
    codec = await get_state(request).codec()
    return codec.loads(request.cookies.get(COOKIE_NAME), now_ms())


def is_https(request: Request) -> bool:
    """Served over https: directly, behind a local proxy that says so, or by configuration."""
    public = get_state(request).app.settings.http.public_url or ""
    return request.url.scheme == "https" or public.startswith("https://")


def set_session_cookie(
    request: Request, response: Response, codec: SessionCodec, session: WebSession
) -> None:
    response.set_cookie(
        COOKIE_NAME,
        codec.dumps(session),
        max_age=MAX_AGE_SECONDS,
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )


@dataclasses.dataclass
class Page:
    """A request from a logged-in admin, scoped to the current organization."""

    request: Request
    state: WebState
    codec: SessionCodec
    session: WebSession
    admin: Admin
    organization: Organization
    organizations: list[Organization]

    @property
    def app(self) -> App:
        return self.state.app

    @property
    def org_id(self) -> str:
        return self.organization.id

    @property
    def actor(self) -> Actor:
        return Actor.admin(self.admin.username)

    @property
    def csrf(self) -> str:
        return self.codec.csrf_token(self.session)

    async def render(
        self, template: str, context: dict[str, Any] | None = None, status_code: int = 200
    ) -> HTMLResponse:
        values: dict[str, Any] = {"page": self, "csrf": self.csrf}
        item = self.request.query_params.get("m")
        message = await self.state.messages.take(self.session.nonce, item) if item else None
        values["message"] = message or {}
        values.update(context or {})
        return self.state.templates.TemplateResponse(
            self.request, template, values, status_code=status_code, headers=NO_STORE
        )

    async def redirect(self, path: str, **message: Any) -> RedirectResponse:
        """303 to `path`; `message` (a notice, a secret) is shown once by the next page."""
        if message:
            item = await self.state.messages.put(self.session.nonce, message)
            path += ("&" if "?" in path else "?") + urlencode({"m": item})
        return RedirectResponse(path, status_code=303, headers=NO_STORE)


async def _page(request: Request) -> Page:
    state = get_state(request)
    codec = await state.codec()
    session = codec.loads(request.cookies.get(COOKIE_NAME), now_ms())
    if session is None or session.admin_id is None:
        raise LoginRequired()
    if session.issued_at < await sessions_valid_after(state.app.db, session.admin_id):
        raise LoginRequired()
    admin = await state.admins.get(session.admin_id)
    # A new password (`sftphook admins passwd`) ends the sessions opened with the old one.
    if admin is None or not codec.same_credential(session, admin.password_hash):
        raise LoginRequired()
    organizations = await state.admins.organizations_of(admin.id)
    current = next((o for o in organizations if o.id == session.organization_id), None)
    if current is None:
        if not organizations:
            raise LoginRequired()
        current = organizations[0]
        session = session.switched(current.id)
    _refuse_nul([*request.path_params.items(), *request.query_params.multi_items()])
    return Page(request, state, codec, session, admin, current, organizations)


async def posted_page(request: Request) -> tuple[Page, FormData]:
    """The page of a form post: raises LoginRequired without a session, FormRefused without
    its CSRF token."""
    page = await _page(request)
    form = await request.form()
    token = form.get("csrf_token")
    if not page.codec.check_csrf(page.session, token if isinstance(token, str) else None):
        raise FormRefused()
    _refuse_nul(form.multi_items())
    return page, form


CurrentPage = Annotated[Page, Depends(_page)]
PostedPage = Annotated[tuple[Page, FormData], Depends(posted_page)]


def _refuse_nul(values: Iterable[tuple[str, Any]]) -> None:
    """A NUL character in a value is refused before any query sees it (`nul.refuse_nul`), in a
    sentence for the person at the form. Names are not looked at: a page reads only the fields
    it knows, and no known name holds one."""
    nul.refuse_nul(values, message=_nul_sentence, names=False)


def _nul_sentence(field: str) -> str:
    return f"{field.replace('_', ' ')} contains a NUL character; remove it"


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def login_url(next_path: str) -> str:
    return "/login?" + urlencode({"next": next_path}) if next_path not in ("", "/") else "/login"
