"""`sftphook audit`: the audit log — who did what, when."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from sftphook.app import App
from sftphook.cli import context
from sftphook.store.audit import EVERY_ORGANIZATION
from sftphook.store.models import AuditEntry

audit_app = typer.Typer(help="The audit log: who did what, when.", no_args_is_help=True)

COLUMNS = ["time", "organization", "actor", "action", "target", "details", "id"]
_PAGE = 500


def _details(entry: AuditEntry) -> str:
    details = entry.details or {}
    return json.dumps(details, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


@audit_app.command("list")
def list_audit(
    org: Annotated[
        str | None,
        typer.Option(
            "--org",
            "-o",
            help="Only this organization (name or id); default: every organization, and the "
            "lines of none (failed logins with unknown names, their bans).",
        ),
    ] = None,
    action: Annotated[
        list[str] | None,
        typer.Option(help="Only this action (repeatable); `webhook.*` matches a family."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many lines.")] = 50,
) -> None:
    """List the audit log, newest first."""
    actions = [a.strip() for value in action or [] for a in value.split(",") if a.strip()]

    async def work(app: App) -> list[list[Any]]:
        names = {o.id: o.name for o in await app.accounts.list_organizations()}
        scope: Any = EVERY_ORGANIZATION
        if org is not None:
            scope = (await app.accounts.resolve_organization(org)).id
        rows: list[AuditEntry] = []
        cursor: str | None = None
        while len(rows) < limit:
            page, cursor = await app.audit.list(
                scope, actions=actions, cursor=cursor, limit=min(_PAGE, limit - len(rows))
            )
            rows.extend(page)
            if cursor is None:
                break
        return [
            [
                context.when(e.created_at),
                names.get(e.organization_id, "") if e.organization_id else "-",
                f"{e.actor_type}:{e.actor_id}",
                e.action,
                f"{e.target_type}:{e.target_id}",
                _details(e),
                e.id,
            ]
            for e in rows
        ]

    context.table(COLUMNS, context.run(work))
