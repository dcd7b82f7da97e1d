"""`sftphook admins`: dashboard accounts (separate from SFTP users)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from sftphook.accounts.admins import AdminService
from sftphook.app import App
from sftphook.cli import context

admins_app = typer.Typer(
    help="Dashboard accounts (separate from SFTP users).", no_args_is_help=True
)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not sys.stdin.isatty():
        # A prompt would echo what it reads, then abort at the end of input.
        context.fail(
            "no password given: pipe one with --password-stdin, or run in a terminal", code=2
        )
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    if not password:
        context.fail("the password is empty")
    return password


@admins_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The admin's login name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    org: Annotated[
        list[str] | None,
        typer.Option("--org", help="An organization the admin may manage (repeatable)."),
    ] = None,
) -> None:
    """Create a dashboard account with access to the given organizations (default: the
    default organization)."""
    password = _read_password(password_stdin)

    async def work(app: App) -> None:
        names: list[str | None] = list(org) if org else [None]
        orgs = [await app.accounts.resolve_organization(o) for o in names]
        await AdminService(app.db).add_admin(name, password, [o.id for o in orgs])
        print(f"admin {name} added ({', '.join(o.name for o in orgs)})")

    context.run(work)


@admins_app.command("grant")
def grant(
    name: Annotated[str, typer.Argument(help="The admin's login name.")],
    org: Annotated[str, typer.Option("--org", help="The organization to add.")],
) -> None:
    """Give an existing admin access to one more organization."""

    async def work(app: App) -> None:
        organization = await app.accounts.resolve_organization(org)
        await AdminService(app.db).add_membership(name, organization.id)
        print(f"admin {name} may now manage {organization.name}")

    context.run(work)


@admins_app.command("passwd")
def passwd(
    name: Annotated[str, typer.Argument(help="The admin's login name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Set a new dashboard password."""
    password = _read_password(password_stdin)

    async def work(app: App) -> None:
        await AdminService(app.db).set_password(name, password)
        print(f"password of admin {name} changed")

    context.run(work)


@admins_app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="The admin's login name.")]) -> None:
    """Delete a dashboard account."""

    async def work(app: App) -> None:
        await AdminService(app.db).remove_admin(name)
        print(f"admin {name} removed")

    context.run(work)


@admins_app.command("list")
def list_() -> None:
    """List dashboard accounts and their organizations."""

    async def work(app: App) -> None:
        rows = await AdminService(app.db).list_admins()
        context.table(
            ["name", "organizations", "created"],
            [
                (a.username, ", ".join(o.name for o in orgs), context.when(a.created_at))
                for a, orgs in rows
            ],
        )

    context.run(work)
