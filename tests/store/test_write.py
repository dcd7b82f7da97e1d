"""`Database.write`: one transaction per call, on SQLite in the store's writer thread."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import func, select

from sftphook.store import Database
from sftphook.store.models import Organization, now_ms

ORGS = Organization.__table__


def _add_org(name: str):
    def work(connection):
        connection.execute(ORGS.insert(), {"id": name, "name": name, "created_at": now_ms()})
        return threading.current_thread().name

    return work


def _count(connection) -> int:
    return connection.execute(select(func.count()).select_from(ORGS)).scalar_one()


async def _check_write(db: Database) -> str:
    await db.upgrade()
    thread = await db.write(_add_org("kept"))

    def fails(connection):
        _add_org("lost")(connection)
        raise RuntimeError("work failed")

    with pytest.raises(RuntimeError, match="work failed"):
        await db.write(fails)
    assert await db.write(_count) == 1
    # Writes queued at once all land, each in its own transaction.
    await asyncio.gather(*(db.write(_add_org(f"org-{i}")) for i in range(20)))
    assert await db.write(_count) == 21
    # The async ORM sees what the writer committed.
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Organization)) == 21
    return thread


async def test_sqlite_write_commits_or_rolls_back_on_the_writer_thread(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    try:
        thread = await _check_write(db)
    finally:
        await db.close()
    assert thread.startswith("sftphook-db-writer")
    # Closing stops the writer; a new write after close starts a new one.
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    try:
        assert await db.write(_count) == 21
    finally:
        await db.close()


async def test_postgres_write_commits_or_rolls_back(postgres_url):
    db = Database(postgres_url)
    try:
        thread = await _check_write(db)
    finally:
        await db.close()
    assert thread == threading.main_thread().name
