"""`sftphook orgs`: organizations, the tenants that own users, webhooks and tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from sftphook.app import App
from sftphook.audit import CLI
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
            [o.name, o.id, context.when(o.created_at), o.notice_email or ""]
            for o in await app.accounts.list_organizations()
        ]

    context.table(["name", "id", "created", "notice email"], context.run(work))


@orgs_app.command("set-notice-email")
def set_notice_email(
    org: Annotated[str, typer.Argument(help="Organization name or id.")],
    address: Annotated[
        str,
        typer.Argument(
            help="Where owner notices go (`ops@example.com`, `Ops <ops@example.com>`, several "
            "separated by commas); an empty string stops them."
        ),
    ],
) -> None:
    """Set the address that receives owner notices (a webhook paused automatically, a signing
    secret rotated)."""

    async def work(app: App) -> str | None:
        organization = await app.accounts.resolve_organization(org)
        updated = await app.accounts.set_notice_email(organization.id, address, actor=CLI)
        return updated.notice_email

    value = context.run(work)
    if value:
        print(f"owner notices of {org} go to {value}")
    else:
        print(f"owner notices of {org} are no longer sent (they stay in the audit log)")
