"""`sftphook webhooks …`: manage webhooks, read the delivery log, send deliveries again."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from sftphook.app import App
from sftphook.audit import CLI
from sftphook.cli import context
from sftphook.epoch import parse_time
from sftphook.webhooks import tuning
from sftphook.webhooks.endpoints import TYPES
from sftphook.webhooks.filters import parse_rule_text
from sftphook.webhooks.service import DeliveryView, WebhookView

app = typer.Typer(
    help="Webhooks: add, list, ping, pause, and their delivery log.", no_args_is_help=True
)

OrgOption = Annotated[
    str | None,
    typer.Option("--org", help="Organization name or id; default: the default organization."),
]
FINAL = ("succeeded", "failed", "skipped")

TypeOption = Annotated[
    str | None,
    typer.Option("--type", help="Endpoint type: " + ", ".join(TYPES) + " (default webhook)."),
]
TimeoutOption = Annotated[
    float | None, typer.Option(help="Seconds to wait for an answer (this webhook only).")
]
RetryOption = Annotated[
    str | None,
    typer.Option(
        "--retry-schedule",
        help="Delays before each retry, e.g. '5, 60, 300' or '5s, 5m, 2h'; 'none' for no retries.",
    ),
]
ConcurrencyOption = Annotated[
    int | None, typer.Option("--max-concurrency", help="Requests in flight at once, at most.")
]
RateOption = Annotated[
    float | None, typer.Option("--rate-limit", help="Requests started per second, at most.")
]
RESET_NAMES = {name.replace("_", "-"): name for name in tuning.FIELDS}


def _tuning_changes(
    timeout: float | None,
    retry_schedule: str | None,
    max_concurrency: int | None,
    rate_limit: float | None,
    reset: list[str] | None = None,
) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name in reset or []:
        field = RESET_NAMES.get(name.strip().replace("_", "-"))
        if field is None:
            context.fail(f"--reset {name}: choose from " + ", ".join(RESET_NAMES))
        changes[field] = None
    if timeout is not None:
        changes["timeout"] = timeout
    if retry_schedule is not None:
        changes["retry_schedule"] = tuning.parse_schedule_text(retry_schedule)
    if max_concurrency is not None:
        changes["max_concurrency"] = max_concurrency
    if rate_limit is not None:
        changes["rate_limit"] = rate_limit
    return changes


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _tuning_rows(view: WebhookView, defaults: tuning.Tuning) -> list[tuple[str, Any]]:
    def shown(own: Any, default: Any, fmt: Any) -> str:
        if own is not None:
            return fmt(own)
        return ("no limit" if default is None else fmt(default)) + " (default)"

    def schedule(values: Any) -> str:
        return ", ".join(_seconds(v) for v in values) or "no retries"

    return [
        ("retry schedule", shown(view.retry_schedule, defaults.retry_schedule, schedule)),
        ("timeout", shown(view.timeout, defaults.timeout, _seconds)),
        ("max concurrency", shown(view.max_concurrency, defaults.max_concurrency, str)),
        ("rate limit", shown(view.rate_limit, defaults.rate_limit, lambda v: f"{v:g}/s")),
    ]


async def _org(a: App, org: str | None) -> str:
    return (await a.accounts.resolve_organization(org)).id


def _print_webhook(view: WebhookView, defaults: tuning.Tuning) -> None:
    rows: list[tuple[str, Any]] = [
        ("id", view.id),
        ("nickname", view.nickname),
        ("type", view.type),
        ("recipients" if view.type == "email" else "url", view.url),
        ("topics", ", ".join(view.topics)),
        ("filter", "; ".join(f"{r['field']} {r['operator']} {r['value']}" for r in view.filter)),
        ("ordered", "yes" if view.ordered else "no"),
        ("authorization", view.authorization_header or ""),
        ("state", view.state + (f" ({view.paused_reason})" if view.paused_reason else "")),
        ("failure streak", view.failure_streak),
        ("old secret valid until", context.when(view.previous_secret_expires_at)),
        *_tuning_rows(view, defaults),
        ("created", context.when(view.created_at)),
    ]
    context.table(["field", "value"], rows)


def _delivery_rows(rows: list[DeliveryView]) -> list[list[Any]]:
    return [
        [
            d.id,
            d.topic,
            d.kind,
            d.status,
            d.attempt_count,
            d.last_response_status or "",
            context.when(d.created_at),
            (d.last_error or "")[:60],
        ]
        for d in rows
    ]


DELIVERY_COLUMNS = ["id", "topic", "kind", "status", "attempts", "last status", "created", "error"]


@app.command("add")
def add(
    url: Annotated[
        str,
        typer.Option(help="The endpoint (https://…); for --type email, the recipients."),
    ],
    nickname: Annotated[str, typer.Option("--nickname", "-n", help="A name to recognize it by.")],
    topic: Annotated[
        list[str],
        typer.Option("--topic", "-t", help="file.created, file.deleted, file.downloaded, …"),
    ],
    authorization: Annotated[
        str | None,
        typer.Option(
            help="Sent as the Authorization header of every request (--authorization-stdin "
            "keeps it out of shell history and `ps`)."
        ),
    ] = None,
    authorization_stdin: Annotated[
        bool,
        typer.Option(
            "--authorization-stdin",
            help="Read the Authorization value from the first line of standard input.",
        ),
    ] = False,
    filter_: Annotated[
        list[str] | None,
        typer.Option(
            "--filter", help="A rule 'FIELD OPERATOR VALUE', e.g. 'Path starts_with in/'."
        ),
    ] = None,
    ordered: Annotated[bool, typer.Option(help="Deliver one at a time, in event order.")] = False,
    type_: TypeOption = None,
    timeout: TimeoutOption = None,
    retry_schedule: RetryOption = None,
    max_concurrency: ConcurrencyOption = None,
    rate_limit: RateOption = None,
    org: OrgOption = None,
) -> None:
    """Add a webhook (or a Slack, Teams or email endpoint) and print its signing secret
    (shown this once; Slack, Teams and email requests are not signed)."""
    if authorization_stdin:
        if authorization is not None:
            context.fail("give --authorization or --authorization-stdin, not both", code=2)
        authorization = sys.stdin.readline().rstrip("\r\n")
        if not authorization:
            context.fail("--authorization-stdin: standard input had no value on its first line")

    async def work(a: App) -> tuple[WebhookView, str]:
        # In here: a rule that does not parse is a domain error, which `run` reports.
        rules = [parse_rule_text(f) for f in filter_ or []]
        settings = _tuning_changes(timeout, retry_schedule, max_concurrency, rate_limit)
        return await a.webhooks.create(
            await _org(a, org),
            nickname=nickname,
            url=url,
            topics=topic,
            authorization_header=authorization,
            filter=rules,
            ordered=ordered,
            type=type_ or "webhook",
            settings=settings,
            actor=CLI,
        )

    view, secret = context.run(work)
    print(f"webhook {view.id} added")
    if view.type != "webhook":
        # Nothing checks a signature there: a secret shown "to copy now" would only mislead.
        print(
            f"its requests are not signed ({view.type}); changed to type webhook later, it gets "
            "a signing secret with `sftphook webhooks rotate-secret`"
        )
        return
    print(f"signing secret: {secret}")
    print("copy it now: it is not shown again (rotate it with `sftphook webhooks rotate-secret`)")


@app.command("list")
def list_(org: OrgOption = None) -> None:
    """List the webhooks."""

    async def work(a: App) -> list[WebhookView]:
        return await a.webhooks.list_webhooks(await _org(a, org))

    rows = [
        [w.id, w.nickname, w.type, w.url, ",".join(w.topics), w.state] for w in context.run(work)
    ]
    context.table(["id", "nickname", "type", "url", "topics", "state"], rows)


@app.command("show")
def show(webhook_id: str, org: OrgOption = None) -> None:
    """Show one webhook (its secret and authorization value stay hidden)."""

    async def work(a: App) -> tuple[WebhookView, tuning.Tuning]:
        view = await a.webhooks.get(await _org(a, org), webhook_id)
        return view, tuning.effective({}, a.settings.webhooks)

    _print_webhook(*context.run(work))


@app.command("update")
def update(
    webhook_id: str,
    nickname: Annotated[str | None, typer.Option("--nickname", "-n")] = None,
    url: Annotated[
        str | None,
        typer.Option(help="The endpoint (https://…); for an email endpoint, the recipients."),
    ] = None,
    type_: TypeOption = None,
    topic: Annotated[
        list[str] | None, typer.Option("--topic", "-t", help="Replaces the topics.")
    ] = None,
    timeout: TimeoutOption = None,
    retry_schedule: RetryOption = None,
    max_concurrency: ConcurrencyOption = None,
    rate_limit: RateOption = None,
    reset: Annotated[
        list[str] | None,
        typer.Option(
            help="Return a setting to the configured default: "
            + ", ".join(RESET_NAMES)
            + " (repeat for more)."
        ),
    ] = None,
    org: OrgOption = None,
) -> None:
    """Change a webhook: what is given changes, the rest stays."""

    async def work(a: App) -> tuple[WebhookView, tuning.Tuning]:
        settings = _tuning_changes(timeout, retry_schedule, max_concurrency, rate_limit, reset)
        view = await a.webhooks.update(
            await _org(a, org),
            webhook_id,
            nickname=nickname,
            url=url,
            topics=topic or None,
            type=type_,
            settings=settings,
            actor=CLI,
        )
        return view, tuning.effective({}, a.settings.webhooks)

    view, defaults = context.run(work)
    print(f"webhook {view.id} updated")
    _print_webhook(view, defaults)


@app.command("ping")
def ping(
    webhook_id: str,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 15.0,
    org: OrgOption = None,
) -> None:
    """Send a webhook.ping through the running server and show the receiver's answer."""

    async def work(a: App) -> tuple[DeliveryView, str]:
        organization = await _org(a, org)
        kind = (await a.webhooks.get(organization, webhook_id)).type
        delivery = await a.webhooks.ping(organization, webhook_id, actor_id="cli", actor=CLI)
        deadline = time.monotonic() + wait
        while delivery.status not in FINAL and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            delivery, _ = await a.webhooks.get_delivery(organization, delivery.id)
        return delivery, kind

    delivery, kind = context.run(work)
    if delivery.status == "succeeded":
        protocol = "SMTP" if kind == "email" else "HTTP"
        print(f"ping {delivery.id} delivered: {protocol} {delivery.last_response_status}")
    elif delivery.status == "failed":
        context.fail(f"ping {delivery.id} failed: {delivery.last_error}")
    else:
        print(f"ping {delivery.id} is queued; a running `sftphook serve` sends it")


@app.command("rotate-secret")
def rotate_secret(
    webhook_id: str,
    grace: Annotated[
        float, typer.Option(help="Seconds during which the old secret also signs.")
    ] = 0,
    org: OrgOption = None,
) -> None:
    """Issue a new signing secret (shown this once)."""

    async def work(a: App) -> tuple[WebhookView, str]:
        return await a.webhooks.rotate_secret(
            await _org(a, org), webhook_id, grace_seconds=grace, actor=CLI
        )

    view, secret = context.run(work)
    print(f"new signing secret: {secret}")
    if view.type != "webhook":
        print(
            f"its requests are not signed while it is a {view.type} endpoint; "
            "this secret signs them once its type is webhook"
        )
    if view.previous_secret_expires_at:
        print(f"the old secret also signs until {context.when(view.previous_secret_expires_at)}")


@app.command("pause")
def pause(
    webhook_id: str,
    reason: Annotated[str, typer.Option(help="Why, for the log.")] = "paused by an operator",
    org: OrgOption = None,
) -> None:
    """Stop sending; new events are kept until `resume`."""

    async def work(a: App) -> WebhookView:
        return await a.webhooks.pause(await _org(a, org), webhook_id, reason=reason, actor=CLI)

    context.run(work)
    print(f"webhook {webhook_id} paused")


@app.command("resume")
def resume(
    webhook_id: str,
    deliver_held: Annotated[
        bool,
        typer.Option(
            "--deliver-held/--skip-held", help="Send the events that arrived while paused, or not."
        ),
    ] = True,
    org: OrgOption = None,
) -> None:
    """Send again, with or without what arrived while paused."""

    async def work(a: App) -> tuple[WebhookView, int]:
        return await a.webhooks.resume(
            await _org(a, org), webhook_id, deliver_held=deliver_held, actor=CLI
        )

    _, count = context.run(work)
    what = "queued" if deliver_held else "skipped"
    print(f"webhook {webhook_id} resumed; {count} held deliveries {what}")


@app.command("remove")
def remove(
    webhook_id: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    org: OrgOption = None,
) -> None:
    """Remove a webhook with its delivery log."""
    if not yes:
        if not sys.stdin.isatty():
            context.fail(
                f"webhook {webhook_id} not removed: nothing to confirm it with; "
                "run in a terminal or pass --yes",
                code=2,
            )
        if not typer.confirm(f"remove webhook {webhook_id} and its delivery log?", err=True):
            context.fail(f"webhook {webhook_id} not removed")

    async def work(a: App) -> None:
        await a.webhooks.remove(await _org(a, org), webhook_id, actor=CLI)

    context.run(work)
    print(f"webhook {webhook_id} removed")


@app.command("deliveries")
def deliveries(
    webhook_id: str,
    status: Annotated[
        list[str] | None, typer.Option(help="pending, retrying, succeeded, failed, held, skipped")
    ] = None,
    topic: Annotated[str | None, typer.Option()] = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601 or epoch ms")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 or epoch ms")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    org: OrgOption = None,
) -> None:
    """The delivery log of a webhook, newest first."""

    async def work(a: App) -> list[DeliveryView]:
        rows, _ = await a.webhooks.list_deliveries(
            await _org(a, org),
            webhook_id,
            statuses=status or [],
            topic=topic,
            since=parse_time(since, field="since"),
            until=parse_time(until, field="until"),
            limit=limit,
        )
        return rows

    context.table(DELIVERY_COLUMNS, _delivery_rows(context.run(work)))


@app.command("delivery")
def delivery(delivery_id: str, org: OrgOption = None) -> None:
    """One delivery with every attempt (as JSON)."""

    async def work(a: App) -> dict[str, Any]:
        view, attempts = await a.webhooks.get_delivery(await _org(a, org), delivery_id)
        return {**dataclasses.asdict(view), "attempts": [dataclasses.asdict(x) for x in attempts]}

    print(json.dumps(context.run(work), indent=2))


@app.command("redeliver")
def redeliver(
    delivery_id: Annotated[str | None, typer.Argument(help="One delivery to send again.")] = None,
    webhook: Annotated[
        str | None, typer.Option(help="Send again every failed delivery of this webhook.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="With --webhook: created at or after")] = None,
    until: Annotated[str | None, typer.Option(help="With --webhook: created before")] = None,
    org: OrgOption = None,
) -> None:
    """Send one delivery again, or (with --webhook) every failed one in a time range."""
    if (delivery_id is None) == (webhook is None):
        context.fail("give either a delivery id or --webhook")
    if delivery_id is not None:
        delivery_ref = delivery_id

        async def one(a: App) -> DeliveryView:
            return await a.webhooks.redeliver(await _org(a, org), delivery_ref)

        print(f"queued as delivery {context.run(one).id}")
        return
    webhook_ref = webhook or ""

    async def bulk(a: App) -> list[str]:
        # On stderr: stdout holds the result alone, for scripts.
        with Progress(
            TextColumn("redelivering"),
            BarColumn(),
            MofNCompleteColumn(),
            transient=True,
            console=context.err_console,
        ) as bar:
            task = bar.add_task("redeliver", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            return await a.webhooks.redeliver_failed(
                await _org(a, org),
                webhook_ref,
                since=parse_time(since, field="since"),
                until=parse_time(until, field="until"),
                progress=advance,
            )

    ids = context.run(bulk)
    print(f"{len(ids)} failed deliveries queued again")
