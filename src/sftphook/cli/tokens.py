"""`sftphook tokens`: API tokens, each scoped to one organization and shown once."""

from __future__ import annotations

from typing import Annotated

import typer

from sftphook.app import App
from sftphook.audit import CLI
from sftphook.cli import context
from sftphook.cli.context import OrgOption

tokens_app = typer.Typer(help="API tokens for the REST API.", no_args_is_help=True)


@tokens_app.command("create")
def create(
    org: OrgOption = None,
    name: Annotated[str, typer.Option("--name", "-n", help="What the token is for.")] = "cli",
) -> None:
    """Create a token and print it alone on stdout. It is shown this once: store it now."""

    async def work(app: App) -> tuple[str, str]:
        organization = await app.accounts.resolve_organization(org)
        _, plain = await app.accounts.create_token(organization.id, name, actor=CLI)
        return plain, organization.name

    plain, org_name = context.run(work)
    print(plain)
    context.note(
        f"token {name!r} for organization {org_name}: shown once, store it now. "
        "Use it as `Authorization: Bearer <token>`."
    )


@tokens_app.command("list")
def list_tokens(org: OrgOption = None) -> None:
    """List the tokens of an organization (never the tokens themselves)."""

    async def work(app: App) -> list[list[object]]:
        organization = await app.accounts.resolve_organization(org)
        return [
            [
                t.id,
                t.name,
                t.prefix + "…",
                context.when(t.created_at),
                context.when(t.last_used_at),
                context.when(t.revoked_at),
            ]
            for t in await app.accounts.list_tokens(organization.id)
        ]

    context.table(["id", "name", "prefix", "created", "last_used", "revoked"], context.run(work))


@tokens_app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The id shown by `tokens list`.")],
    org: OrgOption = None,
) -> None:
    """Revoke a token: requests with it get 401 from then on."""

    async def work(app: App) -> None:
        organization = await app.accounts.resolve_organization(org)
        await app.accounts.revoke_token(organization.id, token_id, actor=CLI)

    context.run(work)
    print(f"token {token_id} revoked")
