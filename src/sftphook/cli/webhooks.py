"""`sftphook webhooks …`: manage webhooks, read the delivery log, send deliveries again."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import time
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from sftphook.app import App
from sftphook.audit import CLI
from sftphook.cli import context
from sftphook.webhooks.filters import parse_rule_text
from sftphook.webhooks.service import DeliveryView, WebhookView, parse_time

app = typer.Typer(
    help="Webhooks: add, list, ping, pause, and their delivery log.", no_args_is_help=True
)

OrgOption = Annotated[
    str | None, typer.Option("--org", help="Organization name (default: the only one).")
]
FINAL = ("succeeded", "failed", "skipped")


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


async def _org(a: App, org: str | None) -> str:
    return (await a.accounts.resolve_organization(org)).id


def _print_webhook(view: WebhookView) -> None:
    rows = [
        ("id", view.id),
        ("nickname", view.nickname),
        ("url", view.url),
        ("topics", ", ".join(view.topics)),
        ("filter", "; ".join(f"{r['field']} {r['operator']} {r['value']}" for r in view.filter)),
        ("ordered", "yes" if view.ordered else "no"),
        ("authorization", view.authorization_header or ""),
        ("state", view.state + (f" ({view.paused_reason})" if view.paused_reason else "")),
        ("failure streak", view.failure_streak),
        ("old secret valid until", _when(view.previous_secret_expires_at)),
        ("created", _when(view.created_at)),
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
            _when(d.created_at),
            (d.last_error or "")[:60],
        ]
        for d in rows
    ]


DELIVERY_COLUMNS = ["id", "topic", "kind", "status", "attempts", "last status", "created", "error"]


@app.command("add")
def add(
    url: Annotated[str, typer.Option(help="The endpoint (https://…).")],
    nickname: Annotated[str, typer.Option("--nickname", "-n", help="A name to recognize it by.")],
    topic: Annotated[
        list[str],
        typer.Option("--topic", "-t", help="file.created, file.deleted, file.downloaded, …"),
    ],
    authorization: Annotated[
        str | None, typer.Option(help="Sent as the Authorization header of every request.")
    ] = None,
    filter_: Annotated[
        list[str] | None,
        typer.Option(
            "--filter", help="A rule 'FIELD OPERATOR VALUE', e.g. 'Path starts_with in/'."
        ),
    ] = None,
    ordered: Annotated[bool, typer.Option(help="Deliver one at a time, in event order.")] = False,
    org: OrgOption = None,
) -> None:
    """Add a webhook and print its signing secret (shown this once)."""
    rules = [parse_rule_text(f) for f in filter_ or []]

    async def work(a: App) -> tuple[WebhookView, str]:
        return await a.webhooks.create(
            await _org(a, org),
            nickname=nickname,
            url=url,
            topics=topic,
            authorization_header=authorization,
            filter=rules,
            ordered=ordered,
            actor=CLI,
        )

    view, secret = context.run(work)
    print(f"webhook {view.id} added")
    print(f"signing secret: {secret}")
    print("copy it now: it is not shown again (rotate it with `sftphook webhooks rotate-secret`)")


@app.command("list")
def list_(org: OrgOption = None) -> None:
    """List the webhooks."""

    async def work(a: App) -> list[WebhookView]:
        return await a.webhooks.list_webhooks(await _org(a, org))

    rows = [[w.id, w.nickname, w.url, ",".join(w.topics), w.state] for w in context.run(work)]
    context.table(["id", "nickname", "url", "topics", "state"], rows)


@app.command("show")
def show(webhook_id: str, org: OrgOption = None) -> None:
    """Show one webhook (its secret and authorization value stay hidden)."""

    async def work(a: App) -> WebhookView:
        return await a.webhooks.get(await _org(a, org), webhook_id)

    _print_webhook(context.run(work))


@app.command("ping")
def ping(
    webhook_id: str,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 15.0,
    org: OrgOption = None,
) -> None:
    """Send a webhook.ping through the running server and show the receiver's answer."""

    async def work(a: App) -> DeliveryView:
        organization = await _org(a, org)
        delivery = await a.webhooks.ping(organization, webhook_id, actor_id="cli", actor=CLI)
        deadline = time.monotonic() + wait
        while delivery.status not in FINAL and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            delivery, _ = await a.webhooks.get_delivery(organization, delivery.id)
        return delivery

    delivery = context.run(work)
    if delivery.status == "succeeded":
        print(f"ping {delivery.id} delivered: HTTP {delivery.last_response_status}")
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
    if view.previous_secret_expires_at:
        print(f"the old secret also signs until {_when(view.previous_secret_expires_at)}")


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
        typer.confirm(f"remove webhook {webhook_id} and its delivery log?", abort=True)

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
        with Progress(
            TextColumn("redelivering"), BarColumn(), MofNCompleteColumn(), transient=True
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
