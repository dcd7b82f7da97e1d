"""`sftphook bans`: list the bans every node shares, and lift one (on a running server too)."""

from __future__ import annotations

import asyncio
import functools
import time

import asyncssh
import pytest

from sftphook.app import App
from sftphook.config import Settings
from sftphook.store import bans as ban_store
from sftphook.store.audit import EVERY_ORGANIZATION
from sftphook.store.models import now_ms
from tests.cli.conftest import Cli, error_line, table_rows
from tests.conftest import serving
from tests.sftp.test_shared_bans import connect_as_alice

PASSWORD = "correct horse battery"


async def _fail(app: App, address: str, times: int, threshold: int = 3) -> None:
    for _ in range(times):
        await app.db.write(
            functools.partial(
                ban_store.record_failure,
                address=address,
                now=now_ms(),
                threshold=threshold,
                window_ms=300_000,
                duration_ms=900_000,
            )
        )


async def test_bans_are_listed_and_lifted_through_the_command_line(cli: Cli, app: App) -> None:
    await _fail(app, "203.0.113.7", 3)
    await _fail(app, "2001:db8:1:2::/64", 3)
    await _fail(app, "198.51.100.1", 2)  # counted, not banned
    before = now_ms()

    rows = table_rows(cli("bans", "list"))
    assert [(r["address"], r["failures"]) for r in rows] == [
        ("2001:db8:1:2::/64", "3"),
        ("203.0.113.7", "3"),
    ]
    for row in rows:  # ISO 8601 UTC, 15 minutes ahead
        assert row["banned_until"] > time.strftime("%Y-%m-%dT%H:%M", time.gmtime(before / 1000))
        assert row["banned_until"].endswith("Z")
    counting = table_rows(cli("bans", "list", "--counting"))
    assert ("198.51.100.1", "2", "") in [tuple(r.values()) for r in counting]

    # An address inside the banned network lifts the network's ban.
    lifted = cli("bans", "lift", "2001:db8:1:2:abcd::99")
    assert lifted.returncode == 0, lifted.stderr
    assert "ban of network 2001:db8:1:2::/64 lifted" in lifted.stdout
    assert [r["address"] for r in table_rows(cli("bans", "list"))] == ["203.0.113.7"]
    lifted = cli("bans", "lift", "203.0.113.7")
    assert lifted.returncode == 0 and "ban of address 203.0.113.7 lifted" in lifted.stdout
    assert table_rows(cli("bans", "list")) == []

    # No ban: said so, exit 1; the failures counted are forgotten all the same.
    again = cli("bans", "lift", "2001:db8:1:2::/64")
    assert again.returncode == 1
    assert error_line(again) == "error: network 2001:db8:1:2::/64 is not banned"
    counted = cli("bans", "lift", "198.51.100.1")
    assert counted.returncode == 1
    assert "address 198.51.100.1 is not banned; its 2 failed login(s) were forgotten" in (
        error_line(counted)
    )
    assert table_rows(cli("bans", "list", "--counting")) == []
    bad = cli("bans", "lift", "not-an-address")
    assert bad.returncode == 1 and "neither an IP address nor a network" in error_line(bad)

    entries, _ = await app.audit.list(EVERY_ORGANIZATION, actions=["sftp.ban_lifted"])
    assert sorted((e.actor_type, e.target_type, e.target_id) for e in entries) == [
        ("cli", "address", "203.0.113.7"),
        ("cli", "network", "2001:db8:1:2::/64"),
    ]
    network_line = next(e for e in entries if e.target_type == "network")
    assert network_line.details["address"] == "2001:db8:1:2:abcd::99"
    assert network_line.details["banned_until"] > before


async def test_bans_list_is_a_table_on_a_terminal(terminal, app: App) -> None:
    await _fail(app, "203.0.113.7", 3)
    term = terminal("bans", "list")
    output = term.expect("203.0.113.7")
    assert term.wait() == 0
    assert "banned_until" in output and ("│" in output or "┃" in output)


async def test_a_banned_client_logs_in_right_after_the_ban_is_lifted(
    cli: Cli, settings: Settings
) -> None:
    """A partner's job retried a wrong password and got banned for ten minutes; the operator
    lifts the ban, and the running server (which holds bans in memory) lets it in at once."""
    settings.sftp.ban_threshold = 3
    settings.sftp.ban_duration = 600
    async with serving(settings, frozenset({"sftp"})) as server:
        org = await server.accounts.ensure_default_organization()
        await server.accounts.add_user(org.id, "alice", password=PASSWORD)
        port = server.sftp.port
        for _ in range(3):
            with pytest.raises(asyncssh.PermissionDenied):
                await connect_as_alice(port, "wrong password")
        with pytest.raises((asyncssh.Error, OSError)):
            await connect_as_alice(port, PASSWORD)

        lifted = await asyncio.to_thread(cli, "bans", "lift", "127.0.0.1")
        assert lifted.returncode == 0, lifted.stderr
        started = time.monotonic()
        while True:
            try:
                connection = await connect_as_alice(port, PASSWORD)
                break
            except (asyncssh.Error, OSError):
                # The node reads lifts every 2 s (`sftp/bans.py` POLL_SECONDS).
                assert time.monotonic() - started < 10, "the ban held after the lift"
                await asyncio.sleep(0.2)
        connection.close()
        await connection.wait_closed()
