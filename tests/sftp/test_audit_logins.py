"""Failed SFTP logins reach the audit log aggregated per address and minute, and bans too; a
password spray from one address becomes a handful of lines, never one write per try."""

from __future__ import annotations

from typing import Any

import asyncssh
import pytest

from sftphook.app import App
from sftphook.audit import SecurityRecorder
from sftphook.config import Settings
from sftphook.store.audit import EVERY_ORGANIZATION
from sftphook.store.models import AuditEntry
from tests.sftp.conftest import Server

WRONG = "not-the-password-123"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.sftp.ban_threshold = 4
    settings.sftp.ban_window = 60
    settings.sftp.ban_duration = 60
    return settings


async def _lines(app: App, action: str) -> list[AuditEntry]:
    rows, _ = await app.audit.list(EVERY_ORGANIZATION, actions=[action], limit=500)
    return rows


async def test_password_spray_is_audited_in_aggregate_and_the_ban_too(server: Server) -> None:
    app = server.app
    for i in range(4):
        username = "alice" if i % 2 == 0 else f"nobody-{i}"
        with pytest.raises(asyncssh.PermissionDenied):
            await server.connect(username=username, password=WRONG)
    with pytest.raises((asyncssh.Error, OSError)):
        await server.connect()  # the right password, from a banned address
    await app.security.flush()

    failed = await _lines(app, "sftp.login_failed")
    # One line per organization (alice's, and none for unknown names), one more for each that
    # the spray straddled a minute boundary in.
    assert 2 <= len(failed) <= 4
    ours = [r for r in failed if r.organization_id == server.org_id]
    unknown = [r for r in failed if r.organization_id is None]
    assert sum(r.details["count"] for r in ours) == 2
    assert sum(r.details["count"] for r in unknown) == 2
    for row in failed:
        assert (row.actor_type, row.actor_id) == ("address", "127.0.0.1")
        assert (row.target_type, row.target_id) == ("address", "127.0.0.1")
        assert row.details["methods"] == ["password"]
        assert WRONG not in str(row.details) and server.password not in str(row.details)
    assert {n for r in ours for n in r.details["usernames"]} == {"alice"}
    assert {n for r in unknown for n in r.details["usernames"]} == {"nobody-1", "nobody-3"}

    banned = await _lines(app, "sftp.address_banned")
    assert {r.organization_id for r in banned} == {server.org_id, None}
    for row in banned:
        assert row.target_id == "127.0.0.1"
        assert row.details["duration_seconds"] == 60 and row.details["failed_logins"] == 4

    # The organization's own view (what its API token sees) has its lines only.
    own, _ = await app.audit.list(server.org_id, actions=["sftp.*"])
    assert {r.action for r in own} == {"sftp.login_failed", "sftp.address_banned"}
    assert all(r.organization_id == server.org_id for r in own)


async def test_a_flood_from_many_addresses_stays_a_bounded_number_of_lines(app: App) -> None:
    clock = {"now": 1_800_000_000_000}
    recorder = SecurityRecorder(app.db, max_buckets=50, clock=lambda: clock["now"])
    org = (await app.accounts.resolve_organization(None)).id
    for i in range(5000):
        recorder.login_failed(
            [org], source="sftp", address=f"10.0.{i // 250}.{i % 250}", username=f"u{i}"
        )
        if i % 1000 == 999:
            await recorder.flush()  # a later flush updates the same lines
    await recorder.flush()
    rows = await _lines(app, "sftp.login_failed")
    assert len(rows) == 51  # 50 addresses, and one line for every address beyond them
    assert sum(r.details["count"] for r in rows) == 5000
    (overflow,) = [r for r in rows if r.target_id == "*"]
    assert overflow.details["count"] == 5000 - 50
    assert len(overflow.details["usernames"]) == 10  # a sample, not every name

    clock["now"] += 60_000  # a new minute: a new line for a known address
    recorder.login_failed([org], source="sftp", address="10.0.0.0", username="again")
    await recorder.flush()
    rows = await _lines(app, "sftp.login_failed")
    assert len(rows) == 52
    newest: Any = rows[0]
    assert newest.target_id == "10.0.0.0" and newest.details["count"] == 1
