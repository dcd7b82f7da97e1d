"""PostgreSQL: a pooled connection in steady use is not pinged before each transaction (the
ping was three round trips out of seven per event), and one that sat idle is, so that a
connection the server dropped meanwhile is replaced instead of failing the next caller."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from sftphook.store import Database, database
from tests.conftest import POSTGRES_ADMIN_DSN


def _select_one(connection: Any) -> int:
    return int(connection.execute(text("SELECT 1")).scalar_one())


def _backend_pid(connection: Any) -> int:
    return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.fixture
async def db(postgres_url: str) -> Any:
    db = Database(postgres_url)
    pings: list[object] = []
    dialect = db.engine.sync_engine.dialect
    ping = dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    dialect.do_ping = counted  # type: ignore[method-assign]
    db.pings = pings  # type: ignore[attr-defined]
    try:
        yield db
    finally:
        await db.close()


async def test_a_connection_in_steady_use_is_not_pinged(db: Database, monkeypatch) -> None:
    monkeypatch.setattr(database, "PING_AFTER_IDLE", 60.0)
    for _ in range(20):
        assert await db.read(_select_one) == 1
        await db.write(_select_one)
    assert db.pings == []  # type: ignore[attr-defined]


async def test_an_idle_connection_is_pinged_and_replaced_if_the_server_dropped_it(
    db: Database, monkeypatch
) -> None:
    monkeypatch.setattr(database, "PING_AFTER_IDLE", 0.05)
    first = await db.read(_backend_pid)
    # The server ends that connection while it waits in the pool (a restart, an idle timeout
    # on the way): without the ping, the next caller would get the error.
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
    finally:
        await admin.close()
    await asyncio.sleep(0.1)
    second = await db.read(_backend_pid)
    assert second != first
    assert len(db.pings) == 1  # type: ignore[attr-defined]
    # A transaction works on the new connection too.
    await db.write(_select_one)
