"""Failed logins are counted across the nodes of a cluster, and a ban holds on every node."""

from __future__ import annotations

import asyncio
import base64
import functools
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncssh
import pytest

from sftphook.app import App
from sftphook.audit import CLI
from sftphook.config import Settings
from sftphook.sftp.bans import SharedBans, lift_ban
from sftphook.sftp.defender import Defender
from sftphook.store import Database
from sftphook.store import audit as audit_store
from sftphook.store import bans as ban_store
from tests.conftest import postgres_database, serving

PASSWORD = "correct horse battery"


@asynccontextmanager
async def sqlite_database(tmp_path: Path) -> AsyncIterator[str]:
    yield f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"


def _database(backend: str, tmp_path: Path):
    return sqlite_database(tmp_path) if backend == "sqlite" else postgres_database()


@asynccontextmanager
async def _store(backend: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database of `backend` for the store's own functions, closed after."""
    async with _database(backend, tmp_path) as url:
        db = Database(url)
        try:
            await db.upgrade()
            yield db
        finally:
            await db.close()


async def connect_as_alice(port: int, password: str) -> asyncssh.SSHClientConnection:
    """A password login of the user `alice` (the tests' banned client) on 127.0.0.1."""
    return await asyncssh.connect(
        "127.0.0.1",
        port,
        username="alice",
        password=password,
        known_hosts=None,
        client_keys=None,
        encryption_algs=["aes128-gcm@openssh.com"],
    )


async def _until(check, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_failures_on_two_nodes_add_up_to_one_ban_on_both(backend: str, tmp_path: Path):
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    async with _database(backend, tmp_path) as url:
        nodes = [
            Settings.load(
                data_dir=tmp_path / name,
                database_url=url,
                encryption_key=key,
                sftp={
                    "host": "127.0.0.1",
                    "port": 0,
                    "ban_threshold": 4,
                    "ban_window": 60,
                    "ban_duration": 60,
                },
                http={"host": "127.0.0.1", "port": 0},
            )
            for name in ("a", "b")
        ]
        setup = App(nodes[0])
        await setup.prepare()
        org = await setup.accounts.ensure_default_organization()
        await setup.accounts.add_user(org.id, "alice", password=PASSWORD)
        await setup.db.close()
        async with (
            serving(nodes[0], frozenset({"sftp"})) as a,
            serving(nodes[1], frozenset({"sftp"})) as b,
        ):
            # Two wrong passwords on each node: each node alone stays under its threshold.
            for node in (a, b, a, b):
                with pytest.raises(asyncssh.PermissionDenied):
                    await connect_as_alice(node.sftp.port, "wrong password")
            # The fourth failure in all bans the address: at once on the node that counted it,
            # and on the other one at its next reading of the bans.
            for node in (b, a):
                await _until(
                    lambda n=node: n.sftp.defender.is_banned("127.0.0.1", time.monotonic())
                )
            for node in (a, b):
                with pytest.raises((asyncssh.Error, OSError)):
                    await connect_as_alice(node.sftp.port, PASSWORD)
        # One ban, in the audit log once (written when the nodes stop, if not before).
        reader = App(nodes[0])
        try:
            entries, _ = await reader.audit.list(
                audit_store.EVERY_ORGANIZATION, actions=["sftp.address_banned"]
            )
        finally:
            await reader.db.close()
    assert [(e.target_id, e.organization_id) for e in entries] == [("127.0.0.1", org.id)]


def _failing(
    db: Database, address: str, *, threshold: int
) -> Callable[[int], Awaitable[int | None]]:
    """A failed login of `address` at a given time (ms), as `SharedBans` records one: returns
    the end of the ban it makes, if it makes one (a 10 s window, bans of 100 s)."""

    async def fail(now: int) -> int | None:
        work = functools.partial(
            ban_store.record_failure,
            address=address,
            now=now,
            threshold=threshold,
            window_ms=10_000,
            duration_ms=100_000,
        )
        return await db.write(work)

    return fail


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_shared_count_has_a_window_and_bans_end(backend: str, tmp_path: Path):
    async with _store(backend, tmp_path) as db:
        fail = _failing(db, "203.0.113.7", threshold=3)

        assert await fail(0) is None
        assert await fail(1_000) is None
        assert await fail(20_000) is None  # the first two fell out of the window
        assert await fail(21_000) is None
        assert await fail(22_000) == 122_000  # the third in the window: banned
        assert await fail(50_000) is None  # banned already: not banned again
        bans = await db.read(functools.partial(ban_store.active_bans, now=60_000))
        assert bans == [("203.0.113.7", 122_000)]
        assert await db.read(functools.partial(ban_store.active_bans, now=122_000)) == []
        # After the ban, counting starts again from one.
        assert await fail(130_000) is None
        assert await fail(131_000) is None
        assert await fail(132_000) == 232_000
        # Pruning keeps a live ban and forgets what is over.
        assert (
            await db.write(functools.partial(ban_store.prune, now=200_000, window_ms=10_000)) == 0
        )
        assert (
            await db.write(functools.partial(ban_store.prune, now=300_000, window_ms=10_000)) == 1
        )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_lift_ends_the_ban_and_is_kept_for_the_nodes_to_read(backend: str, tmp_path: Path):
    async with _store(backend, tmp_path) as db:
        fail = _failing(db, "2001:db8:1:2::/64", threshold=2)

        async def lift(now: int) -> ban_store.Lifted | None:
            return await db.write(
                functools.partial(
                    ban_store.lift, address="2001:db8:1:2::/64", now=now, window_ms=10_000
                )
            )

        assert await lift(0) is None  # nothing stored
        await fail(0)
        assert await fail(1_000) == 101_000
        listed = await db.read(functools.partial(ban_store.bans, now=2_000))
        assert listed == [ban_store.Ban("2001:db8:1:2::/64", 2, 101_000)]
        assert await lift(5_000) == ban_store.Lifted(101_000, 2)
        assert await db.read(functools.partial(ban_store.active_bans, now=6_000)) == []
        assert await db.read(functools.partial(ban_store.lifts, since=4_999)) == [
            ("2001:db8:1:2::/64", 5_000)
        ]
        assert await db.read(functools.partial(ban_store.lifts, since=5_000)) == []
        # Counted from one again.
        assert await fail(6_000) is None
        assert await lift(7_000) == ban_store.Lifted(None, 1)
        # The row is kept while the nodes may still have to read the lift.
        prune = functools.partial(ban_store.prune, window_ms=1_000)
        assert await db.write(functools.partial(prune, now=7_000 + 30_000)) == 0
        assert await db.write(functools.partial(prune, now=7_000 + ban_store.LIFTS_KEPT_MS)) == 1


async def test_a_node_drops_a_lifted_ban_once_and_keeps_a_ban_made_since(tmp_path: Path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    try:
        await db.upgrade()
        defender = Defender(threshold=2, window=60, duration=600)
        shared = SharedBans(db, defender, on_banned=lambda client, key: None)
        for address in ("203.0.113.7", "198.51.100.1"):
            for _ in range(2):
                defender.failed(address, time.monotonic())
                await shared._record(address, address)
        await shared.sync()
        assert defender.is_banned("203.0.113.7", time.monotonic())

        result = await lift_ban(db, "203.0.113.7", ipv6_prefix=64, window=60, actor=CLI)
        assert result.banned_until is not None and result.failures == 2
        await shared.sync()
        assert not defender.is_banned("203.0.113.7", time.monotonic())
        assert defender.is_banned("198.51.100.1", time.monotonic())

        # Banned again on this node alone (the database was away, say): the lift, read
        # again at the next sync, does not undo a ban made after it.
        defender.failed("203.0.113.7", time.monotonic())
        defender.failed("203.0.113.7", time.monotonic())
        await shared.sync()
        assert defender.is_banned("203.0.113.7", time.monotonic())
    finally:
        await db.close()
