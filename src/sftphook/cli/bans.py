"""`sftphook bans`: the SFTP front's bans after failed logins, as every node shares them."""

from __future__ import annotations

from typing import Annotated

import typer

from sftphook.app import App
from sftphook.audit import CLI
from sftphook.cli import context
from sftphook.sftp.bans import POLL_SECONDS, LiftResult, lift_ban, list_bans
from sftphook.store.bans import Ban

bans_app = typer.Typer(
    help="Addresses banned after failed SFTP logins: list them, lift a ban.",
    no_args_is_help=True,
)


@bans_app.command("list")
def list_(
    counting: Annotated[
        bool,
        typer.Option(
            "--counting",
            help="Also the addresses with failed logins counted in the current window, not "
            "banned yet (their banned_until is empty).",
        ),
    ] = False,
) -> None:
    """List the addresses (an IPv6 client's network) banned now on every node, with the
    failed logins that got each banned."""

    async def work(app: App) -> list[Ban]:
        return await list_bans(app.db, window=app.settings.sftp.ban_window if counting else None)

    bans = context.run(work)
    context.table(
        ["address", "failures", "banned_until"],
        [(b.address, b.failures, context.when(b.banned_until)) for b in bans],
    )


@bans_app.command("lift")
def lift(
    address: Annotated[
        str,
        typer.Argument(
            help="An address, or a network as `bans list` shows it; an IPv6 address lifts "
            "the ban of its network."
        ),
    ],
) -> None:
    """Lift a ban on every node (within seconds) and forget the address's failed logins."""

    async def work(app: App) -> LiftResult:
        cfg = app.settings.sftp
        return await lift_ban(
            app.db, address, ipv6_prefix=cfg.ipv6_prefix, window=cfg.ban_window, actor=CLI
        )

    result = context.run(work)
    what = f"network {result.key}" if "/" in result.key else f"address {result.key}"
    if result.banned_until is None:
        forgotten = (
            f"; its {result.failures} failed login(s) were forgotten" if result.failures else ""
        )
        context.fail(f"{what} is not banned{forgotten}")
    print(f"ban of {what} lifted (it ran until {context.when(result.banned_until)})")
    context.note(f"every SFTP node lets it in again within {POLL_SECONDS:g} s")
