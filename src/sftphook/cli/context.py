"""What every command shares: the settings, an App to call services on, and output."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from sftphook.app import App
from sftphook.config import Settings
from sftphook.errors import SftphookError, UnknownSchema
from sftphook.store.database import MigrationStep

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)

_state: dict[str, Path | None] = {"config": None}

OrgOption = Annotated[
    str | None,
    typer.Option("--org", "-o", help="Organization name or id; default: the default organization."),
]


def set_config_file(path: Path | None) -> None:
    _state["config"] = path


def load_settings() -> Settings:
    try:
        return Settings.load(_state["config"])
    except ValidationError as exc:
        fail(f"invalid configuration: {settings_errors(exc)}")
    except (FileNotFoundError, ValueError) as exc:
        fail(f"invalid configuration: {exc}")


def settings_errors(exc: ValidationError) -> str:
    """`sftp.port: Input should be a valid integer; log_level: …`, one line for every setting
    that is wrong (pydantic's own text spans lines and ends in a link)."""
    parts = []
    for error in exc.errors():
        name = ".".join(str(p) for p in error["loc"]) or "settings"
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{name}: {message}")
    return "; ".join(parts)


def fail(message: str, code: int = 1) -> NoReturn:
    """One red line on stderr, then exit (1 for errors, 2 for misuse of the command)."""
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def note(message: str) -> None:
    """A remark for the person at the terminal, on stderr, so that stdout stays parseable."""
    err_console.print(escape(message), highlight=False, soft_wrap=True)


def when(ms: int | None) -> str:
    """Epoch milliseconds as ISO 8601 UTC, the form both people and scripts read."""
    if ms is None:
        return ""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def shown_url(url: str) -> str:
    """A database URL with its password masked, to print."""
    return make_url(url).render_as_string(hide_password=True)


def open_app(settings: Settings) -> App:
    """An App for `settings`; a data directory, database URL or key that cannot work ends the
    command with what is wrong, not a traceback."""
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create the data directory {settings.data_dir}: {exc.strerror or exc}")
    try:
        shown = shown_url(settings.resolved_database_url)
    except ArgumentError:
        # Not even parsed: the value is not repeated, it may hold a password.
        fail(
            "invalid configuration: database_url is not a database URL; use "
            "sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER:PASSWORD@HOST/DATABASE"
        )
    try:
        return App(settings)
    except (SQLAlchemyError, ImportError) as exc:
        # A sync driver (`sqlite://`, `postgresql://`), or one that is not installed.
        fail(
            f"invalid configuration: database_url {shown} cannot be used ({exc}); use "
            "sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER:PASSWORD@HOST/DATABASE"
        )
    except ValueError as exc:  # the encryption key
        fail(f"invalid configuration: {exc}")
    except OSError as exc:  # the key file
        fail(f"cannot read or create the encryption key file: {exc}")


async def prepare(app: App, on_migration: MigrationStep | None = None) -> None:
    """Migrate the database (and make the default organization); a database that cannot be
    reached or opened ends the command with the reason."""
    try:
        await app.prepare(on_migration)
    except UnknownSchema as exc:
        fail(exc.message)
    except (OSError, SQLAlchemyError) as exc:
        reason = exc.orig if isinstance(exc, DBAPIError) else exc
        fail(f"cannot open the database {shown_url(app.db.url)}: {reason}")


def run(work: Callable[[App], Awaitable[T]]) -> T:
    """Run `work` against an App whose database is migrated; domain errors end the command."""
    settings = load_settings()

    async def _go() -> T:
        app = open_app(settings)
        try:
            await prepare(app)
            # Owner notices a command causes (a rotation) are sent before it exits.
            async with app.notices.running():
                return await work(app)
        finally:
            await app.db.close()

    try:
        return asyncio.run(_go())
    except SftphookError as exc:
        fail(exc.message)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """A Rich table on a terminal; tab-separated lines with a header otherwise (for scripts)."""
    if sys.stdout.isatty():
        t = Table(*columns, title=title)
        for row in rows:
            # Text, not str: a value such as a path with "[x]" in it is shown, not read as markup.
            t.add_row(*(Text("" if v is None else str(v)) for v in row))
        console.print(t)
    else:
        print("\t".join(columns))
        for row in rows:
            print(plain_row(row))


def plain_row(row: Sequence[Any]) -> str:
    """One tab-separated line; tabs and newlines inside values (file names may have them) are
    written as \\t and \\n so that every record stays on one line."""
    return "\t".join(
        "" if v is None else str(v).replace("\t", "\\t").replace("\n", "\\n") for v in row
    )
