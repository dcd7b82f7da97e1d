"""What every command shares: the settings, an App to call services on, and output."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from sftphook.app import App
from sftphook.config import Settings
from sftphook.errors import SftphookError

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)

_state: dict[str, Path | None] = {"config": None}


def set_config_file(path: Path | None) -> None:
    _state["config"] = path


def load_settings() -> Settings:
    try:
        return Settings.load(_state["config"])
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        fail(f"invalid configuration: {exc}")


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def run(work: Callable[[App], Awaitable[T]]) -> T:
    """Run `work` against an App whose database is migrated; domain errors end the command."""

    async def _go() -> T:
        app = App(load_settings())
        try:
            await app.prepare()
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
            t.add_row(*("" if v is None else str(v) for v in row))
        console.print(t)
    else:
        print("\t".join(columns))
        for row in rows:
            print("\t".join("" if v is None else str(v) for v in row))
