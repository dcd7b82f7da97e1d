"""The `sftphook` command and its top-level subcommands."""

from __future__ import annotations

import asyncio
import contextlib
import resource
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from sftphook import __version__, logs
from sftphook.app import ROLES, App
from sftphook.cli import context, listen
from sftphook.cli import webhooks as webhooks_cli
from sftphook.cli.admins import admins_app
from sftphook.cli.audit import audit_app
from sftphook.cli.bans import bans_app
from sftphook.cli.events import events_app
from sftphook.cli.orgs import orgs_app
from sftphook.cli.tokens import tokens_app
from sftphook.cli.users import users_app
from sftphook.errors import CannotListen, InvalidConfiguration, SftphookError
from sftphook.retention import Pruner
from sftphook.store.models import now_ms
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
app.add_typer(users_app, name="users")
app.add_typer(orgs_app, name="orgs")
app.add_typer(tokens_app, name="tokens")
app.add_typer(events_app, name="events")
app.add_typer(admins_app, name="admins")
app.add_typer(audit_app, name="audit")
app.add_typer(bans_app, name="bans")
app.add_typer(webhooks_cli.app, name="webhooks")
app.command("listen")(listen.listen)


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
    logs.configure(settings.log_level)
    wanted = frozenset(r.strip() for r in roles.split(",") if r.strip())
    if not wanted or wanted - ROLES:
        context.fail(f"--roles takes a comma-separated subset of {', '.join(sorted(ROLES))}")
    raise_open_files_limit()
    asyncio.run(_serve(context.open_app(settings), wanted))


def raise_open_files_limit() -> None:
    """Lift the soft limit on open descriptors to the hard one.

    Each SFTP connection holds a socket and its sessions' open files (`sftp.max_connections`,
    `max_sessions_per_connection`, `max_open_handles`); service managers often start processes
    with a soft limit of 1,024 under a much higher hard one.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # (Linux refuses an unlimited number of files: its own ceiling is 1,048,576 by default.)
    wanted = hard if hard != resource.RLIM_INFINITY else 1_048_576
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def _serve(server: App, roles: frozenset[str]) -> None:
    try:
        # Here first (serve() does it again, in milliseconds), so that a database that cannot be
        # opened is one error line rather than a traceback.
        await context.prepare(server)
    except BaseException:
        await server.db.close()
        raise
    ready = asyncio.Event()

    async def announce() -> None:
        await ready.wait()
        print("\n".join(describe(server)), flush=True)

    announcing = asyncio.create_task(announce())
    try:
        await server.serve(roles, ready=ready)
    except InvalidConfiguration as exc:
        # Raised before anything listens (`App.serve`): one line, as for the settings' own
        # checks.
        context.fail(f"invalid configuration: {exc.message}")
    except CannotListen as exc:
        # A role that could not listen: the roles started before it are stopped with it.
        context.fail(exc.message)
    finally:
        announcing.cancel()


def describe(server: App) -> list[str]:
    """What `serve` prints once it listens: where data lives and how to reach each part."""
    settings = server.settings
    url = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    lines = [
        f"sftphook {__version__} is running",
        f"  data      {settings.data_dir.resolve()}",
        f"  database  {url}",
    ]
    sftp = getattr(server, "sftp", None)
    if sftp is not None:
        host = settings.sftp.host
        port = sftp.port
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        lines.append(f"  SFTP      {host}:{port}   (try: sftp -P {port} USER@{shown})")
        # (algorithm, "SHA256:…") per host key, as `ssh` shows them on first connection.
        for algorithm, fingerprint in sftp.host_key_fingerprints:
            lines.append(f"  host key  {algorithm} {fingerprint}")
    if server.http_server is not None:
        bound = f"http://{settings.http.host}:{server.http_port}"
        if "http" in server.roles:
            base = settings.http.public_url or bound
            lines.append(f"  HTTP      {base.rstrip('/')}/   (API: /api/v1, docs: /api/v1/docs)")
        else:
            # The ops endpoints alone: the address they are bound to, not the dashboard's.
            lines.append(f"  metrics   {bound}/metrics   (health: /healthz, /readyz)")
    return lines


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (the server also does this at start)."""
    settings = context.load_settings()

    async def work() -> str:
        app = context.open_app(settings)
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                current, pending = await app.db.pending_migrations()
            except (OSError, SQLAlchemyError):
                pending = []  # `prepare` says why, as every command does
            if not pending:
                await context.prepare(app)
                current, _ = await app.db.pending_migrations()
                return f"database is up to date (revision {current})"
            with _MigrationProgress(current, pending) as progress:
                try:
                    await app.prepare(progress.ran)
                except (OSError, SQLAlchemyError) as exc:
                    # One transaction (SQLite and PostgreSQL alike): none of it was kept.
                    reason = exc.orig if isinstance(exc, DBAPIError) else exc
                    revision, _ = progress.running
                    context.fail(
                        f"migration {revision} failed: {reason}; the upgrade was rolled back, "
                        f"the database is still at {current or 'no schema'}"
                    )
            _, left = await app.db.pending_migrations()
            return f"database upgraded to revision {pending[-1][0]}" + (
                f" ({len(left)} still pending)" if left else ""
            )
        finally:
            await app.db.close()

    try:
        print(asyncio.run(work()))
    except SftphookError as exc:
        context.fail(exc.message)


class _MigrationProgress:
    """Says which migration runs (a spinner on a terminal: an index on a large table takes
    minutes) and prints each one run, with its time, on stdout. All of them commit together
    at the end, or none."""

    def __init__(self, current: str | None, pending: list[tuple[str, str]]) -> None:
        self._pending = pending
        self._done = 0
        self._status = context.err_console.status("") if context.err_console.is_terminal else None
        start = current or "an empty database"
        print(f"upgrading from {start}: {len(pending)} migration(s)", flush=True)

    def __enter__(self) -> _MigrationProgress:
        if self._status is not None:
            self._show_next()
            self._status.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._status is not None:
            self._status.stop()

    @property
    def running(self) -> tuple[str, str]:
        """The migration under way (revision, description)."""
        return self._pending[min(self._done, len(self._pending) - 1)]

    def _show_next(self) -> None:
        if self._status is not None and self._done < len(self._pending):
            revision, doc = self.running
            self._status.update(f"running {revision}: {doc}")

    def ran(self, revision: str, doc: str, seconds: float) -> None:
        print(f"  {revision}: {doc} ({seconds:.2f} s)", flush=True)
        self._done += 1
        self._show_next()


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
        if dry_run:
            return await pruner.preview()
        if not context.err_console.is_terminal:
            return await pruner.prune()
        # A first prune of a large database takes minutes: a bar on stderr (stdout holds the
        # result alone, for scripts), counting first what there is to remove.
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("deliveries and events"),
            TimeRemainingColumn(),
            transient=True,
            console=context.err_console,
        ) as bar:
            task = bar.add_task("counting", total=None)
            now = now_ms()
            found = await pruner.preview(now)
            bar.update(task, description="pruning", total=found.deliveries + found.events)

            def advance(done: PruneCounts) -> None:
                bar.update(task, completed=done.deliveries + done.events)

            return await pruner.prune(now, progress=advance)

    counts = context.run(work)
    verb = "would remove" if dry_run else "removed"
    print(
        f"{verb} {counts.deliveries} deliveries, {counts.attempts} attempts and "
        f"{counts.events} events (windows: deliveries {settings.retention.deliveries_days:g} "
        f"days, events {settings.retention.events_days:g} days)"
    )


def main() -> None:
    app(prog_name="sftphook")
