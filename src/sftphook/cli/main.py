"""The `sftphook` command and its top-level subcommands."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from sftphook import __version__
from sftphook.app import ROLES, App
from sftphook.cli import context
from sftphook.retention import Pruner
from sftphook.store.retention import PruneCounts

app = typer.Typer(
    name="sftphook",
    help="A self-hosted SFTP server that turns every file event into a signed webhook.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _version(value: bool) -> None:
    if value:
        print(f"sftphook {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="A TOML settings file.", envvar="SFTPHOOK_CONFIG"),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    context.set_config_file(config)


@app.command()
def serve(
    roles: Annotated[
        str, typer.Option(help="Comma-separated roles this node runs: sftp, http, worker.")
    ] = "sftp,http,worker",
) -> None:
    """Run the server: SFTP, the dashboard and API, and the delivery workers."""
    settings = context.load_settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    wanted = frozenset(r.strip() for r in roles.split(",") if r.strip())
    if not wanted or wanted - ROLES:
        context.fail(f"--roles takes a comma-separated subset of {', '.join(sorted(ROLES))}")
    asyncio.run(App(settings).serve(wanted))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (the server also does this at start)."""

    async def work(app: App) -> None:
        return None  # context.run migrates before calling work

    context.run(work)
    print("database is up to date")


@app.command()
def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be removed; remove nothing.")
    ] = False,
) -> None:
    """Remove delivery data and events past their retention windows (the server also does this
    hourly)."""
    settings = context.load_settings()

    async def work(app: App) -> PruneCounts:
        pruner = Pruner(app.db, app.settings.retention)
        return await (pruner.preview() if dry_run else pruner.prune())

    counts = context.run(work)
    verb = "would remove" if dry_run else "removed"
    print(
        f"{verb} {counts.deliveries} deliveries, {counts.attempts} attempts and "
        f"{counts.events} events (windows: deliveries {settings.retention.deliveries_days:g} "
        f"days, events {settings.retention.events_days:g} days)"
    )


def main() -> None:
    app()
