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

from sftphook.app import App
from sftphook.config import Settings
from sftphook.errors import SftphookError

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
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        fail(f"invalid configuration: {exc}")


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


def run(work: Callable[[App], Awaitable[T]]) -> T:
    """Run `work` against an App whose database is migrated; domain errors end the command."""

    async def _go() -> T:
        app = App(load_settings())
        try:
            await app.prepare()
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
