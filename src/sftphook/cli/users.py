"""`sftphook users`: add, list, change and remove SFTP users."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from sftphook.accounts import validation
from sftphook.app import App
from sftphook.audit import CLI
from sftphook.cli import context
from sftphook.cli.context import OrgOption
from sftphook.errors import InvalidInput

users_app = typer.Typer(help="SFTP users: logins of an organization.", no_args_is_help=True)

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input."
    ),
]


def read_password(from_stdin: bool, *, required: bool) -> str | None:
    """The new password: from stdin, else asked (hidden, twice) on a terminal.

    Never an argument: command lines end up in shell history and in `ps` output.
    """
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            context.fail("--password-stdin: standard input had no password on its first line")
        return line
    if not required:
        return None
    if not sys.stdin.isatty():
        context.fail(
            "no password given: pipe one with --password-stdin, give --key, or run in a terminal",
            code=2,
        )
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return password


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The login name.")],
    org: OrgOption = None,
    password_stdin: PasswordStdin = False,
    key: Annotated[
        list[Path] | None,
        typer.Option(
            "--key",
            "-k",
            help="A public key file (OpenSSH format, one or more keys); repeat for more.",
        ),
    ] = None,
    home: Annotated[
        str, typer.Option(help="Home directory inside the organization's root (its chroot).")
    ] = "/",
    permissions: Annotated[
        str, typer.Option(help="Comma-separated: read, write, delete, list.")
    ] = "read,write,delete,list",
) -> None:
    """Add an SFTP user. Without --key or --password-stdin, asks for a password."""
    try:  # before asking for a password, so that a typo does not cost one
        validation.check_name(name, what="username", field="username")
        validation.normalize_permissions(permissions)
        validation.normalize_home(home)
    except InvalidInput as exc:
        context.fail(exc.message)
    keys: list[str] = []
    for path in key or []:
        try:
            keys.append(path.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            context.fail(f"cannot read key file {path}: {getattr(exc, 'strerror', None) or exc}")
    password = read_password(password_stdin, required=not keys)

    async def work(app: App) -> tuple[str, str]:
        organization = await app.accounts.resolve_organization(org)
        user = await app.accounts.add_user(
            organization.id,
            name,
            password=password,
            public_keys=keys,
            home=home,
            permissions=permissions,
            actor=CLI,
        )
        return user.home, organization.name

    user_home, org_name = context.run(work)
    print(f"user {name} added to organization {org_name} (home {user_home})")


@users_app.command("list")
def list_users(org: OrgOption = None) -> None:
    """List the SFTP users of an organization."""

    async def work(app: App) -> list[list[object]]:
        organization = await app.accounts.resolve_organization(org)
        users = await app.accounts.list_users(organization.id)
        return [
            [
                u.username,
                "yes" if u.enabled else "no",
                u.home,
                u.permissions,
                ",".join(
                    kind
                    for kind, present in (("password", u.password_hash), ("key", u.public_keys))
                    if present
                ),
                context.when(u.created_at),
            ]
            for u in users
        ]

    rows = context.run(work)
    context.table(["username", "enabled", "home", "permissions", "login", "created"], rows)


@users_app.command("remove")
def remove(name: str, org: OrgOption = None) -> None:
    """Remove an SFTP user (their open sessions end; their files stay)."""

    async def work(app: App) -> None:
        organization = await app.accounts.resolve_organization(org)
        await app.accounts.remove_user(organization.id, name, actor=CLI)

    context.run(work)
    print(f"user {name} removed")


@users_app.command("passwd")
def passwd(name: str, org: OrgOption = None, password_stdin: PasswordStdin = False) -> None:
    """Set a user's password (their open sessions end)."""

    async def work(app: App) -> None:
        organization = await app.accounts.resolve_organization(org)
        # The user first: a typo in the name should not cost typing a password twice.
        await app.accounts.get_user(organization.id, name)
        password = read_password(password_stdin, required=True)
        await app.accounts.update_user(organization.id, name, password=password, actor=CLI)

    context.run(work)
    print(f"password of {name} changed")


def _set_enabled(name: str, org: str | None, enabled: bool) -> None:
    async def work(app: App) -> None:
        organization = await app.accounts.resolve_organization(org)
        await app.accounts.update_user(organization.id, name, enabled=enabled, actor=CLI)

    context.run(work)
    print(f"user {name} {'enabled' if enabled else 'disabled'}")


@users_app.command("disable")
def disable(name: str, org: OrgOption = None) -> None:
    """Refuse a user's logins and end their open sessions."""
    _set_enabled(name, org, False)


@users_app.command("enable")
def enable(name: str, org: OrgOption = None) -> None:
    """Let a disabled user log in again."""
    _set_enabled(name, org, True)
