"""`Database.write`: one transaction per call, on SQLite in the store's writer thread."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import func, select

from sftphook.store import Database, database
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


async def test_a_small_write_runs_on_the_loop_when_nothing_else_writes(tmp_path, monkeypatch):
    # The budget is the production one's hundredfold: what is tested is the choice, not this
    # machine's speed (a loaded machine's first commits can take over half a millisecond).
    monkeypatch.setattr(database, "INLINE_BUDGET", 0.05)
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    try:
        await db.upgrade()
        here = threading.current_thread().name
        threads = [await db.write(_add_org(f"inline-{i}"), inline=True) for i in range(20)]
        assert set(threads) == {here}
        # Without `inline`, or while inline transactions have lately been slow: the thread.
        assert (await db.write(_add_org("plain"))).startswith("sftphook-db-writer")
        writer = db._writer
        assert writer is not None
        writer._inline_cost = 1.0
        assert (await db.write(_add_org("slow"), inline=True)).startswith("sftphook-db-writer")
        # Timed there, a quick transaction brings the average back under the budget.
        for i in range(40):
            await db.write(_add_org(f"again-{i}"), inline=True)
        assert await db.write(_add_org("back"), inline=True) == here
        assert await db.write(_count) == 63
    finally:
        await db.close()


async def test_an_inline_write_never_waits_on_the_loop_for_another_writer(tmp_path):
    """Another connection (a CLI command, another process) holds the write lock: the write
    goes to the thread and waits there, and the event loop keeps turning meanwhile."""
    import sqlite3

    path = tmp_path / "w.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        await db.upgrade()
        await db.write(_add_org("first"), inline=True)
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.create_task(db.write(_add_org("waited"), inline=True))
        ticks = 0
        longest = 0.0
        loop = asyncio.get_running_loop()
        for _ in range(30):
            before = loop.time()
            await asyncio.sleep(0.01)
            longest = max(longest, loop.time() - before)
            ticks += 1
        assert not write.done()
        other.execute("COMMIT")
        thread = await asyncio.wait_for(write, 5)
        assert thread.startswith("sftphook-db-writer")
        assert ticks == 30 and longest < 0.2
        assert await db.write(_count) == 2
        # The lock is free again: the next small write is inline once more.
        assert await db.write(_add_org("after"), inline=True) == threading.current_thread().name
    finally:
        other.close()
        await db.close()


async def test_the_writer_checkpoints_on_its_thread(tmp_path, monkeypatch):
    """The writer's connection does not checkpoint at commit (an inline commit would then copy
    the WAL and fsync on the loop); its thread does, every `CHECKPOINT_EVERY` commits."""
    from sftphook.store import database

    monkeypatch.setattr(database, "CHECKPOINT_EVERY", 10)
    checkpoints: list[str] = []
    original = database._SqliteWriter._checkpoint

    def spy(self):
        checkpoints.append(threading.current_thread().name)
        original(self)

    monkeypatch.setattr(database._SqliteWriter, "_checkpoint", spy)
    path = tmp_path / "w.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await db.upgrade()
        assert (
            await db.write(lambda c: c.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()) == 0
        )
        for i in range(35):
            await db.write(_add_org(f"o-{i}"), inline=True)
        for _ in range(20):  # the queued checkpoints run on the thread
            if len(checkpoints) >= 3:
                break
            await asyncio.sleep(0.05)
        assert len(checkpoints) == 3
        assert all(name.startswith("sftphook-db-writer") for name in checkpoints)
    finally:
        await db.close()
    # Closing checkpoints what is left.
    assert len(checkpoints) == 4
