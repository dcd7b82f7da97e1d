"""`sftphook events`: the event log, listed or followed as it grows."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterable
from typing import Annotated

import typer

from sftphook.app import App
from sftphook.cli import context
from sftphook.cli.context import OrgOption
from sftphook.events.model import FileTopicName
from sftphook.store import events
from sftphook.store.models import Event, now_ms

events_app = typer.Typer(help="The event log: what happened to which file.", no_args_is_help=True)

COLUMNS = ["time", "topic", "actor", "path", "previous_path", "size", "id"]
POLL_SECONDS = 0.5
# An event's time is taken when it happens; it is committed a moment later, and events of one
# group commit together. Each poll looks this far back so that a late commit is not missed.
LOOKBACK_MS = 30_000
_PAGE = 500
_TOPIC_STYLE = {
    "file.created": "green",
    "file.deleted": "red",
    "file.downloaded": "cyan",
    "file.renamed": "yellow",
}


def _row(event: Event) -> list[object]:
    return [
        context.when(event.created_at),
        event.topic,
        f"{event.actor_type}:{event.actor_id}",
        event.path,
        event.previous_path,
        event.size,
        event.id,
    ]


@events_app.command("list")
def list_events(
    org: OrgOption = None,
    topic: Annotated[FileTopicName | None, typer.Option(help="Only events of this topic.")] = None,
    path_prefix: Annotated[
        str | None, typer.Option(help="Only events whose path starts with this.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many events.")] = 50,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C."),
    ] = False,
) -> None:
    """List recent events, newest first; with --follow, oldest first and then each new one."""
    prefix = path_prefix.lstrip("/") if path_prefix else None
    if follow:
        try:
            context.run(lambda app: _follow(app, org, topic, prefix, limit))
        except KeyboardInterrupt:
            pass  # Ctrl-C is how following ends: not an error, no traceback
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, and let the exit flush go nowhere.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return

    async def work(app: App) -> list[Event]:
        organization = await app.accounts.resolve_organization(org)
        async with app.db.session() as s:
            return await events.list_for(
                s, organization.id, topic=topic, path_prefix=prefix, limit=limit
            )

    context.table(COLUMNS, [_row(e) for e in context.run(work)])


async def _follow(
    app: App, org: str | None, topic: str | None, prefix: str | None, limit: int
) -> None:
    organization = await app.accounts.resolve_organization(org)

    async def since(created_after: int, before: tuple[int, str] | None = None) -> list[Event]:
        found: list[Event] = []
        while True:
            async with app.db.session() as s:
                page = await events.list_for(
                    s,
                    organization.id,
                    topic=topic,
                    path_prefix=prefix,
                    before=before,
                    after_created_at=created_after,
                    limit=_PAGE,
                )
            found += page
            if len(page) < _PAGE:
                return found
            before = (page[-1].created_at, page[-1].id)

    async with app.db.session() as s:
        latest = await events.list_for(
            s, organization.id, topic=topic, path_prefix=prefix, limit=limit
        )
    watermark = max((e.created_at for e in latest), default=now_ms())
    seen = {e.id: e.created_at for e in latest}
    if len(latest) == limit:
        # The window's events older than the `limit` shown are not new: never printed. Only
        # those, read after `latest`: one committed meanwhile is new, and the first poll shows it.
        oldest = (latest[-1].created_at, latest[-1].id)
        seen.update((e.id, e.created_at) for e in await since(watermark - LOOKBACK_MS, oldest))
    printer = _Printer()
    printer.emit(reversed(latest))
    while True:
        await asyncio.sleep(POLL_SECONDS)
        fresh = [e for e in await since(watermark - LOOKBACK_MS) if e.id not in seen]
        if not fresh:
            continue
        fresh.sort(key=lambda e: (e.created_at, e.id))
        printer.emit(fresh)
        seen.update((e.id, e.created_at) for e in fresh)
        watermark = max(watermark, fresh[-1].created_at)
        horizon = watermark - LOOKBACK_MS
        seen = {i: t for i, t in seen.items() if t > horizon}


class _Printer:
    """Prints followed events one line each, as they come: coloured on a terminal, tab-separated
    with a header line otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        if not self.tty:
            print("\t".join(COLUMNS), flush=True)

    def emit(self, batch: Iterable[Event]) -> None:
        for event in batch:
            if self.tty:
                self._pretty(event)
            else:
                print(context.plain_row(_row(event)), flush=True)

    def _pretty(self, event: Event) -> None:
        from rich.text import Text

        line = Text(context.when(event.created_at) + " ", style="dim")
        line.append(f"{event.topic:<16}", style=_TOPIC_STYLE.get(event.topic, ""))
        line.append(f" {event.actor_id}  ")
        if event.previous_path is not None:
            line.append(f"{event.previous_path} → ")
        line.append(event.path, style="bold")
        if event.size is not None:
            line.append(f"  {event.size} B", style="dim")
        context.console.print(line, soft_wrap=True)
