"""The audit page: who did what in the organization, filtered by action, target and time; and
where the organization's owner notices go."""

from __future__ import annotations

import datetime

from fastapi import APIRouter
from fastapi.responses import Response

from sftphook.errors import InvalidInput
from sftphook.store.models import AuditEntry
from sftphook.web.pages import CurrentPage, Page, PostedPage, field

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
ACTIONS = [
    ("", "All actions"),
    ("webhook.*", "Webhooks: every action"),
    ("webhook.created", "Webhook created"),
    ("webhook.updated", "Webhook changed"),
    ("webhook.secret_rotated", "Signing secret rotated"),
    ("webhook.paused", "Webhook paused"),
    ("webhook.resumed", "Webhook resumed"),
    ("webhook.deleted", "Webhook deleted"),
    ("webhook.pinged", "Webhook pinged"),
    ("user.*", "SFTP users: every action"),
    ("token.*", "API tokens: created, revoked"),
    ("sftp.login_failed", "Failed SFTP logins"),
    ("sftp.address_banned", "Addresses banned"),
    ("sftp.ban_lifted", "Bans lifted"),
    ("dashboard.login_failed", "Failed dashboard logins"),
    ("notice.*", "Owner notices"),
    ("organization.updated", "Organization changed"),
]
_KNOWN = {value for value, _ in ACTIONS}


def _day(value: str, *, field_name: str, end: bool = False) -> int | None:
    """A YYYY-MM-DD date (UTC) as epoch ms; `end` gives the start of the next day."""
    if not value:
        return None
    try:
        day = datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{field_name} must be a date such as 2026-01-31") from exc
    if end:
        if day == datetime.date.max:
            return None  # up to the end of 9999: every time there is
        day += datetime.timedelta(days=1)
    start = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
    return int(start.timestamp() * 1000)


async def _render(
    page: Page,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
    notice_email: str | None = None,
) -> Response:
    """`notice_email` is what a refused form sent: shown again in place of the stored one."""
    params = page.request.query_params
    action = params.get("action", "")
    action = action if action in _KNOWN else ""
    target = params.get("target", "").strip()[:255]
    since = params.get("since", "").strip()
    until = params.get("until", "").strip()
    before = params.get("before", "") or None
    errors = dict(errors or {})
    rows: list[AuditEntry] = []
    older = None
    # A date the filter cannot use is explained next to the dates, with the filter kept.
    try:
        since_ms = _day(since, field_name="From")
        until_ms = _day(until, field_name="To", end=True)
        if since_ms is not None and until_ms is not None and since_ms >= until_ms:
            raise InvalidInput("From must be on or before To")
    except InvalidInput as exc:
        errors["dates"] = exc.message
        status = 422
    else:
        rows, older = await page.app.audit.list(
            page.org_id,
            actions=[action] if action else [],
            target_id=target or None,
            since=since_ms,
            until=until_ms,
            cursor=before,
            limit=PAGE_SIZE,
        )
    return await page.render(
        "audit.html",
        {
            "nav": "audit",
            "entries": rows,
            "actions": ACTIONS,
            "action": action,
            "target": target,
            "since": since,
            "until": until,
            "older": older,
            "filtered": bool(action or target or since or until),
            "errors": errors,
            "notice_email": (
                notice_email if notice_email is not None else page.organization.notice_email or ""
            ),
        },
        status_code=status,
    )


@router.get("/audit")
async def audit_page(page: CurrentPage) -> Response:
    return await _render(page)


@router.post("/audit/notice-email")
async def set_notice_email(posted: PostedPage) -> Response:
    page, form = posted
    address = field(form, "notice_email")
    try:
        org = await page.app.accounts.set_notice_email(page.org_id, address, actor=page.actor)
    except InvalidInput as exc:
        return await _render(
            page, errors={"notice_email": exc.message}, status=422, notice_email=address
        )
    notice = (
        f"Owner notices go to {org.notice_email}."
        if org.notice_email
        else "Owner notices are no longer sent by email."
    )
    return await page.redirect("/audit", notice=notice)
