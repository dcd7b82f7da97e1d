"""`sftphook orgs`: organizations, the tenants that own users, webhooks and tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from sftphook.app import App
from sftphook.cli import context

orgs_app = typer.Typer(help="Organizations (tenants).", no_args_is_help=True)


@orgs_app.command("add")
def add(name: Annotated[str, typer.Argument(help="A short name, used by --org.")]) -> None:
    """Add an organization."""

    async def work(app: App) -> str:
        return (await app.accounts.add_organization(name)).id

    organization_id = context.run(work)
    print(f"organization {name} added (id {organization_id})")


@orgs_app.command("list")
def list_orgs() -> None:
    """List the organizations."""

    async def work(app: App) -> list[list[object]]:
        return [
            [o.name, o.id, context.when(o.created_at)]
            for o in await app.accounts.list_organizations()
        ]

    context.table(["name", "id", "created"], context.run(work))
