"""The webhooks pages: the list, add and edit, the actions menu, and the delivery log.

Every change goes through the webhook service (`app.webhooks`), the same one the REST API and
the CLI call. A new signing secret reaches the browser once, through a one-time message.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select
from starlette.datastructures import FormData

from sftphook.errors import InvalidInput
from sftphook.events.model import FILE_TOPICS, Topic
from sftphook.store.deliveries import STATUSES
from sftphook.store.models import Attempt
from sftphook.web.pages import CurrentPage, Page, PostedPage, field
from sftphook.webhooks import tuning
from sftphook.webhooks.endpoints import TYPE_LABELS
from sftphook.webhooks.filters import FIELDS, OPERATORS
from sftphook.webhooks.service import DeliveryView, WebhookView

router = APIRouter(include_in_schema=False)

TOPIC_LABELS = {
    str(Topic.FILE_CREATED): ("File created", "a file finished uploading, or a directory was made"),
    str(Topic.FILE_DELETED): ("File deleted", "a file or directory was removed"),
    str(Topic.FILE_DOWNLOADED): ("File downloaded", "a file was read"),
    str(Topic.FILE_RENAMED): ("File renamed", "a file or directory was renamed"),
}
OPERATOR_LABELS = {
    "is": "is",
    "is_not": "is not",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "matches": "matches (regex)",
}
FIELD_LABELS = {"Path": "Path", "ActorId": "User", "ActorType": "Actor type"}
GRACE_CHOICES = [(0, "No grace period"), (3600, "1 hour"), (86400, "24 hours"), (604800, "7 days")]
PAGE_SIZE = 50
ERROR_FIELDS = ("nickname", "type", "url", "authorization_header", "topics", "filter")


def _common(page: Page | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {}
    if page is not None:
        context["defaults"] = tuning.effective({}, page.app.settings.webhooks)
        context["email_available"] = page.app.webhooks.email_available
    return {
        **context,
        "types": TYPE_LABELS,
        "nav": "webhooks",
        "topic_labels": TOPIC_LABELS,
        "operators": [(o, OPERATOR_LABELS.get(o, o)) for o in OPERATORS],
        "fields": [(f, FIELD_LABELS.get(f, f)) for f in FIELDS],
        "grace_choices": GRACE_CHOICES,
        "statuses": STATUSES,
    }


def _form_values(form: FormData) -> dict[str, Any]:
    fields = [v for v in form.getlist("filter_field") if isinstance(v, str)]
    operators = [v for v in form.getlist("filter_operator") if isinstance(v, str)]
    values = [v for v in form.getlist("filter_value") if isinstance(v, str)]
    rules = [
        {"field": f, "operator": o, "value": v}
        for f, o, v in zip(fields, operators, values, strict=False)
        if v != ""
    ]
    authorization = form.get("authorization_header")
    return {
        "nickname": field(form, "nickname"),
        "type": field(form, "type"),
        **{name: field(form, name) for name in tuning.FIELDS},
        "url": field(form, "url"),
        "authorization_header": authorization.strip() if isinstance(authorization, str) else "",
        "topics": [t for t in form.getlist("topics") if isinstance(t, str)],
        "filter": rules,
        "ordered": form.get("ordered") == "on",
        "remove_authorization": form.get("remove_authorization") == "on",
    }


def _tuning(values: dict[str, Any], *, keep_empty: bool) -> dict[str, Any]:
    """The tuning fields of the form as service values; an empty field is the default (None),
    left out when adding."""
    out: dict[str, Any] = {}
    for name in tuning.FIELDS:
        text = values.get(name, "").strip()
        if not text:
            if keep_empty:
                out[name] = None
            continue
        if name == "retry_schedule":
            out[name] = tuning.parse_schedule_text(text)
            continue
        try:
            number = float(text)
        except ValueError as exc:
            raise InvalidInput(f"{name.replace('_', ' ')} must be a number", field=name) from exc
        out[name] = int(number) if name == "max_concurrency" and number.is_integer() else number
    return out


def _errors(exc: InvalidInput) -> dict[str, str]:
    name = exc.field or "form"
    if name.startswith("filter"):
        name = "filter"
    if name not in ERROR_FIELDS and name not in tuning.FIELDS:
        name = "form"
    return {name: exc.message}


async def _last_deliveries(page: Page, hooks: list[WebhookView]) -> dict[str, DeliveryView]:
    last: dict[str, DeliveryView] = {}
    for hook in hooks:
        rows, _ = await page.app.webhooks.list_deliveries(page.org_id, hook.id, limit=1)
        if rows:
            last[hook.id] = rows[0]
    return last


async def _list(
    page: Page,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    hooks = await page.app.webhooks.list_webhooks(page.org_id)
    context = _common(page)
    context.update(
        webhooks=hooks,
        last=await _last_deliveries(page, hooks),
        errors=errors or {},
        values=values or {"type": "webhook", "topics": [str(Topic.FILE_CREATED)], "filter": []},
        open_dialog="add-webhook" if errors else None,
    )
    return await page.render("webhooks.html", context, status_code=status_code)


@router.get("/webhooks")
async def webhooks_page(page: CurrentPage) -> Response:
    return await _list(page)


@router.post("/webhooks")
async def add_webhook(posted: PostedPage) -> Response:
    page, form = posted
    values = _form_values(form)
    try:
        view, secret = await page.app.webhooks.create(
            page.org_id,
            nickname=values["nickname"],
            url=values["url"],
            topics=values["topics"],
            authorization_header=values["authorization_header"] or None,
            filter=values["filter"],
            ordered=values["ordered"],
            type=values["type"] or "webhook",
            settings=_tuning(values, keep_empty=False),
            actor=page.actor,
        )
    except InvalidInput as exc:
        return await _list(page, errors=_errors(exc), values=values, status_code=422)
    if view.type != "webhook":
        # Slack, Teams and email requests are not signed: no secret to show "only once".
        return await page.redirect("/webhooks", notice=f"Webhook {view.nickname} added.")
    return await page.redirect(
        "/webhooks",
        notice=f"Webhook {view.nickname} added.",
        secret=secret,
        secret_for=view.nickname,
        secret_kind="created",
    )


@router.get("/webhooks/{webhook_id}/edit")
async def edit_form(webhook_id: str, page: CurrentPage) -> Response:
    hook = await page.app.webhooks.get(page.org_id, webhook_id)
    context = _common(page)
    context.update(webhook=hook, errors={}, values=_view_values(hook))
    return await page.render("webhook_edit.html", context)


def _number(value: float) -> str:
    """A number as it was set, for a form that saves it back: `12.345678`, `300` (`:g` keeps
    six digits, so saving an unchanged form rounded what the API had set)."""
    text = repr(float(value))
    return text.removesuffix(".0")


def _view_values(hook: WebhookView) -> dict[str, Any]:
    schedule = hook.retry_schedule
    return {
        "nickname": hook.nickname,
        "type": hook.type,
        "retry_schedule": (", ".join(_number(v) for v in schedule) or "none")
        if schedule is not None
        else "",
        "timeout": _number(hook.timeout) if hook.timeout is not None else "",
        "max_concurrency": str(hook.max_concurrency) if hook.max_concurrency else "",
        "rate_limit": _number(hook.rate_limit) if hook.rate_limit is not None else "",
        "url": hook.url,
        "authorization_header": "",
        "topics": hook.topics,
        "filter": hook.filter,
        "ordered": hook.ordered,
    }


@router.post("/webhooks/{webhook_id}/edit")
async def edit(webhook_id: str, posted: PostedPage) -> Response:
    page, form = posted
    hook = await page.app.webhooks.get(page.org_id, webhook_id)
    values = _form_values(form)
    changes: dict[str, Any] = {
        "nickname": values["nickname"],
        "url": values["url"],
        "topics": values["topics"],
        "filter": values["filter"],
        "ordered": values["ordered"],
        "type": values["type"] or None,
    }
    # An empty field keeps the stored value: it was never shown, so it cannot be edited.
    if values["remove_authorization"]:
        changes["authorization_header"] = None
    elif values["authorization_header"]:
        changes["authorization_header"] = values["authorization_header"]
    try:
        # An empty tuning field returns to the default; the form shows every stored value.
        changes["settings"] = _tuning(values, keep_empty=True)
        await page.app.webhooks.update(page.org_id, webhook_id, actor=page.actor, **changes)
    except InvalidInput as exc:
        context = _common(page)
        context.update(webhook=hook, errors=_errors(exc), values=values)
        return await page.render("webhook_edit.html", context, status_code=422)
    return await page.redirect("/webhooks", notice=f"Webhook {values['nickname']} saved.")


@router.post("/webhooks/{webhook_id}/ping")
async def ping(webhook_id: str, posted: PostedPage) -> Response:
    page, _ = posted
    await page.app.webhooks.ping(
        page.org_id, webhook_id, actor_id=page.admin.username, actor=page.actor
    )
    return await page.redirect(
        f"/webhooks/{webhook_id}/deliveries", notice="Ping sent. It appears below in a moment."
    )


@router.post("/webhooks/{webhook_id}/rotate")
async def rotate(webhook_id: str, posted: PostedPage) -> Response:
    page, form = posted
    grace = field(form, "grace_seconds") or "0"
    # ASCII digits only: isdigit() alone takes "²", which float() refuses. Anything else is
    # refused rather than read as "no grace period".
    if not (grace.isascii() and grace.isdigit()):
        raise InvalidInput("grace_seconds must be a whole number of seconds", field="grace_seconds")
    view, secret = await page.app.webhooks.rotate_secret(
        page.org_id, webhook_id, grace_seconds=float(grace), actor=page.actor
    )
    return await page.redirect(
        "/webhooks",
        notice=f"Signing secret of {view.nickname} rotated.",
        secret=secret,
        secret_for=view.nickname,
        secret_kind="rotated",
        # Slack, Teams and email requests are not signed: the secret waits for a type change.
        secret_type=view.type,
    )


@router.post("/webhooks/{webhook_id}/pause")
async def pause(webhook_id: str, posted: PostedPage) -> Response:
    page, _ = posted
    view = await page.app.webhooks.pause(
        page.org_id, webhook_id, reason=f"paused by {page.admin.username}", actor=page.actor
    )
    return await page.redirect(
        "/webhooks", notice=f"{view.nickname} is paused; new events are kept until you resume."
    )


@router.post("/webhooks/{webhook_id}/resume")
async def resume(webhook_id: str, posted: PostedPage) -> Response:
    page, form = posted
    deliver = field(form, "held") != "skip"
    view, count = await page.app.webhooks.resume(
        page.org_id, webhook_id, deliver_held=deliver, actor=page.actor
    )
    what = "sent" if deliver else "skipped"
    plural = "y" if count == 1 else "ies"
    return await page.redirect(
        "/webhooks", notice=f"{view.nickname} resumed; {count} held deliver{plural} {what}."
    )


@router.post("/webhooks/{webhook_id}/delete")
async def delete(webhook_id: str, posted: PostedPage) -> Response:
    page, _ = posted
    hook = await page.app.webhooks.get(page.org_id, webhook_id)
    await page.app.webhooks.remove(page.org_id, webhook_id, actor=page.actor)
    return await page.redirect("/webhooks", notice=f"Webhook {hook.nickname} deleted.")


# The delivery log


async def _durations(page: Page, rows: list[DeliveryView]) -> dict[str, float | None]:
    """The duration of each delivery's latest attempt (the ids come from a scoped query)."""
    if not rows:
        return {}
    async with page.app.db.session() as s:
        result = await s.execute(
            select(Attempt.delivery_id, Attempt.number, Attempt.duration_ms).where(
                Attempt.delivery_id.in_([d.id for d in rows])
            )
        )
        latest: dict[str, tuple[int, float | None]] = {}
        for delivery_id, number, duration in result:
            if delivery_id not in latest or number > latest[delivery_id][0]:
                latest[delivery_id] = (number, duration)
    return {k: v[1] for k, v in latest.items()}


async def _deliveries_context(
    page: Page, webhook_id: str, status: str, topic: str, cursor: str
) -> dict[str, Any]:
    hook = await page.app.webhooks.get(page.org_id, webhook_id)
    status = status if status in STATUSES else ""
    topic = topic if topic in FILE_TOPICS or topic == str(Topic.WEBHOOK_PING) else ""
    rows, next_cursor = await page.app.webhooks.list_deliveries(
        page.org_id,
        webhook_id,
        statuses=[status] if status else (),
        topic=topic or None,
        cursor=cursor or None,
        limit=PAGE_SIZE,
    )
    context = _common()
    context.update(
        webhook=hook,
        deliveries=rows,
        durations=await _durations(page, rows),
        status=status,
        topic=topic,
        cursor=cursor,
        next_cursor=next_cursor,
        all_topics=[*sorted(FILE_TOPICS), str(Topic.WEBHOOK_PING)],
    )
    return context


@router.get("/webhooks/{webhook_id}/deliveries")
async def deliveries_page(
    webhook_id: str, page: CurrentPage, status: str = "", topic: str = "", cursor: str = ""
) -> Response:
    context = await _deliveries_context(page, webhook_id, status, topic, cursor)
    return await page.render("deliveries.html", context)


@router.get("/webhooks/{webhook_id}/deliveries/rows")
async def deliveries_rows(
    webhook_id: str, page: CurrentPage, status: str = "", topic: str = "", cursor: str = ""
) -> Response:
    """The table body alone, polled by the open page so that new deliveries appear."""
    context = await _deliveries_context(page, webhook_id, status, topic, cursor)
    return await page.render("delivery_rows.html", context)


@router.post("/webhooks/{webhook_id}/redeliver-failed")
async def redeliver_failed(webhook_id: str, posted: PostedPage) -> Response:
    page, _ = posted
    created = await page.app.webhooks.redeliver_failed(page.org_id, webhook_id)
    plural = "y" if len(created) == 1 else "ies"
    return await page.redirect(
        f"/webhooks/{webhook_id}/deliveries",
        notice=f"{len(created)} failed deliver{plural} queued again.",
    )


@router.get("/deliveries/{delivery_id}")
async def delivery_page(delivery_id: str, page: CurrentPage, part: str = "") -> Response:
    delivery, attempts = await page.app.webhooks.get_delivery(page.org_id, delivery_id)
    hook = await page.app.webhooks.get(page.org_id, delivery.webhook_id)
    context = _common()
    context.update(
        webhook=hook,
        delivery=delivery,
        attempts=list(reversed(attempts)),
        payload=attempts[-1].request_body if attempts else None,
    )
    if part == "attempts":
        return await page.render("delivery_attempts.html", context)
    return await page.render("delivery.html", context)


@router.post("/deliveries/{delivery_id}/redeliver")
async def redeliver(delivery_id: str, posted: PostedPage) -> Response:
    page, _ = posted
    new = await page.app.webhooks.redeliver(page.org_id, delivery_id)
    return await page.redirect(
        f"/deliveries/{new.id}", notice="Re-sent as a new delivery; its attempt appears below."
    )
