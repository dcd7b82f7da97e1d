"""A password hashed with other argon2 parameters is hashed again at its next login."""

from __future__ import annotations

import asyncio
import logging

import pytest
from argon2 import PasswordHasher, extract_parameters
from sqlalchemy import func, select, update

from sftphook.accounts import passwords
from sftphook.sftp import server as sftp_server
from sftphook.store import users
from sftphook.store.models import AuditEntry, User, password_salt
from tests.sftp.conftest import Server

WEAK = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
# The session watcher may be in its first, unpatched, sleep when a test starts.
ACCOUNT_CHECK_WAIT = sftp_server.ACCOUNT_CHECK_SECONDS + 0.5


async def _store_hash(server: Server, password_hash: str) -> None:
    async with server.app.db.transaction() as s:
        await s.execute(
            update(User).where(User.username == server.username).values(password_hash=password_hash)
        )


async def _stored(server: Server) -> User:
    async with server.app.db.session() as s:
        user = (await s.execute(select(User).where(User.username == server.username))).scalar_one()
        return user


async def _audit_entries(server: Server) -> int:
    async with server.app.db.session() as s:
        return int((await s.execute(select(func.count()).select_from(AuditEntry))).scalar_one())


async def test_a_login_rehashes_a_weaker_hash_and_keeps_the_session(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    weak = WEAK.hash(server.password)
    await _store_hash(server, weak)
    before = await _stored(server)
    audited = await _audit_entries(server)
    # Compare open sessions with the store often: a rehash must not end them.
    monkeypatch.setattr(sftp_server, "ACCOUNT_CHECK_SECONDS", 0.1)

    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        after = await _stored(server)
        assert after.password_hash != weak
        assert extract_parameters(after.password_hash) == extract_parameters(
            passwords.hash_password("x" * 8)
        )
        assert passwords.verify_password(after.password_hash, server.password)
        assert password_salt(after.password_hash) == password_salt(weak)
        # Nothing else changed, and no "password changed" entry.
        assert after.updated_at == before.updated_at
        assert after.session_access() == before.session_access()
        assert await _audit_entries(server) == audited
        await asyncio.sleep(ACCOUNT_CHECK_WAIT)  # the watcher's sleep in progress, then checks
        assert await sftp.listdir(".") is not None
    async with await server.connect():  # the new hash lets the same password in
        pass
    assert (await _stored(server)).password_hash == after.password_hash


async def test_a_current_hash_is_left_alone(server: Server) -> None:
    stored = (await _stored(server)).password_hash
    async with await server.connect():
        pass
    assert (await _stored(server)).password_hash == stored


async def test_a_rehash_never_replaces_a_password_set_meanwhile(server: Server) -> None:
    weak = WEAK.hash(server.password)
    await _store_hash(server, weak)
    verified = await _stored(server)
    await server.app.accounts.update_user(server.org_id, server.username, password="a new one!")
    await server.app.accounts.rehash_password(verified, server.password)
    now = (await _stored(server)).password_hash
    assert now is not None and passwords.verify_password(now, "a new one!")


async def test_a_failed_rehash_lets_the_login_in_and_logs_no_secret(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    weak = WEAK.hash(server.password)
    await _store_hash(server, weak)

    async def fail(*args: object) -> bool:
        raise RuntimeError(f"database gone while storing {args!r}")

    monkeypatch.setattr(users, "replace_password_hash", fail)
    caplog.set_level(logging.INFO, logger="sftphook")
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        assert await sftp.listdir(".") is not None
    assert (await _stored(server)).password_hash == weak
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "could not rehash the password of user alice: RuntimeError"
    ]
    assert server.password not in caplog.text
    assert weak not in caplog.text
