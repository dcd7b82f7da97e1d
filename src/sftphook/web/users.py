"""The SFTP users page: add, disable, delete, reset a password; how to connect."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import Response

from sftphook.accounts import validation
from sftphook.errors import AlreadyExists, InvalidConfiguration, InvalidInput
from sftphook.sftp import hostkeys
from sftphook.web.pages import CurrentPage, Page, PostedPage, field

if TYPE_CHECKING:
    from sftphook.app import App

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


async def host_key_fingerprints(app: App) -> list[dict[str, str]]:
    """The SHA-256 fingerprints of the server's host keys, as `ssh` shows them.

    Read from the database, where every SFTP node takes its keys from, so that a node without
    the SFTP role (and without key files) shows them too."""
    try:
        found = await hostkeys.shared_fingerprints(app.db, app.secret_box)
    except InvalidConfiguration as exc:
        # Another node's encryption key, say: the page works without them.
        log.error("the host keys stored in the database cannot be read: %s", exc.message)
        return []
    return [{"algorithm": algorithm, "fingerprint": print_} for algorithm, print_ in found]


async def connection(page: Page) -> dict[str, Any]:
    settings = page.app.settings
    front = getattr(page.app, "sftp", None)
    port = getattr(front, "port", None) or settings.sftp.port
    host = settings.sftp.host
    if host in ("0.0.0.0", "::", ""):
        public = settings.http.public_url
        named = urlsplit(public).hostname if public else None
        host = named or page.request.url.hostname or "localhost"
    if ":" in host and not host.startswith("["):
        # An IPv6 address: sftp reads `user@host:path`, so it needs the brackets.
        host = f"[{host}]"
    fingerprints = await host_key_fingerprints(page.app)
    return {"host": host, "port": port, "fingerprints": fingerprints}


async def _render(
    page: Page,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
    open_dialog: str | None = None,
) -> Response:
    users = await page.app.accounts.list_users(page.org_id)
    return await page.render(
        "users.html",
        {
            "nav": "users",
            "users": users,
            "connection": await connection(page),
            "errors": errors or {},
            "values": values or {},
            "permissions": validation.PERMISSIONS,
            "open_dialog": open_dialog,
        },
        status_code=status_code,
    )


@router.get("/users")
async def users_page(page: CurrentPage) -> Response:
    return await _render(page)


@router.post("/users")
async def add_user(posted: PostedPage) -> Response:
    page, form = posted
    username = field(form, "username")
    password = form.get("password")
    password = password if isinstance(password, str) and password else None
    public_key = field(form, "public_keys")
    home = field(form, "home") or "/"
    permissions = [p for p in form.getlist("permissions") if isinstance(p, str)]
    values = {
        "username": username,
        "public_keys": public_key,
        "home": home,
        "permissions": permissions,
    }
    try:
        await page.app.accounts.add_user(
            page.org_id,
            username,
            password=password,
            public_keys=[public_key] if public_key else [],
            home=home,
            permissions=permissions,
            actor=page.actor,
        )
    except (InvalidInput, AlreadyExists) as exc:
        # A taken name is the username field's error too (usernames are SFTP logins, unique).
        name = exc.field if isinstance(exc, InvalidInput) and exc.field else "username"
        return await _render(
            page,
            errors={name: exc.message},
            values=values,
            status_code=exc.http_status,
            open_dialog="add-user",
        )
    return await page.redirect("/users", notice=f"User {username} added.")


@router.post("/users/{username}/enable")
async def enable_user(username: str, posted: PostedPage) -> Response:
    page, _ = posted
    await page.app.accounts.update_user(page.org_id, username, enabled=True, actor=page.actor)
    return await page.redirect("/users", notice=f"User {username} can log in again.")


@router.post("/users/{username}/disable")
async def disable_user(username: str, posted: PostedPage) -> Response:
    page, _ = posted
    await page.app.accounts.update_user(page.org_id, username, enabled=False, actor=page.actor)
    return await page.redirect(
        "/users", notice=f"User {username} is disabled; their sessions ended."
    )


@router.post("/users/{username}/delete")
async def delete_user(username: str, posted: PostedPage) -> Response:
    page, _ = posted
    await page.app.accounts.remove_user(page.org_id, username, actor=page.actor)
    return await page.redirect("/users", notice=f"User {username} deleted. Their files are kept.")


@router.post("/users/{username}/password")
async def reset_password(username: str, posted: PostedPage) -> Response:
    page, form = posted
    password = form.get("password")
    try:
        # An empty field is a password too short for the service, never a removal.
        new = password if isinstance(password, str) else ""
        await page.app.accounts.update_user(page.org_id, username, password=new, actor=page.actor)
    except InvalidInput as exc:
        # Checked against the user first: another organization's user stays "not found".
        await page.app.accounts.get_user(page.org_id, username)
        return await _render(
            page,
            errors={"reset_password": exc.message},
            values={"reset_username": username},
            status_code=422,
            open_dialog="reset-password",
        )
    return await page.redirect("/users", notice=f"Password of {username} changed.")
