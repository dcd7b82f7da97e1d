"""The same migrations build the same schema on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import AsyncExitStack

import pytest
from sqlalchemy import func, inspect, select, text

from sftphook.accounts import AccountService
from sftphook.errors import UnknownSchema
from sftphook.events import EventRecord, EventRecorder, Topic
from sftphook.store import Database
from sftphook.store.models import Base, Event
from tests.conftest import postgres_database


def _tables(sync_conn):
    return set(inspect(sync_conn).get_table_names())


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request, tmp_path):
    async with AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
        else:
            url = await stack.enter_async_context(postgres_database())
        db = Database(url)
        stack.push_async_callback(db.close)
        yield db


async def test_upgrade_creates_every_table_and_is_repeatable(database):
    await database.upgrade()
    await database.upgrade()  # a second run is a no-op
    async with database.engine.connect() as conn:
        tables = await conn.run_sync(_tables)
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


async def test_grouped_event_commits_work_on_both_databases(database):
    await database.upgrade()
    org = await AccountService(database).ensure_default_organization()
    recorder = EventRecorder(database)
    started = asyncio.Event()
    writer = asyncio.create_task(recorder.run(started))
    await started.wait()
    await asyncio.gather(
        *(
            recorder.record(
                EventRecord(
                    organization_id=org.id,
                    topic=Topic.FILE_CREATED,
                    actor_id="u",
                    path=f"d/ü {i}.csv",
                    size=i,
                )
            )
            for i in range(100)
        )
    )
    await recorder.close()
    await writer
    async with database.session() as s:
        assert await s.scalar(select(func.count()).select_from(Event)) == 100
        assert await s.scalar(select(func.max(Event.size))) == 99


def _unindexed_foreign_keys(sync_conn, tables):
    inspector = inspect(sync_conn)
    missing = []
    for table in tables:
        leading = [index["column_names"] for index in inspector.get_indexes(table)]
        leading.append(inspector.get_pk_constraint(table)["constrained_columns"])
        for key in inspector.get_foreign_keys(table):
            columns = key["constrained_columns"]
            if not any(index[: len(columns)] == columns for index in leading):
                missing.append(f"{table}.{','.join(columns)}")
    return missing


async def test_the_foreign_keys_of_the_event_tables_are_indexed(database):
    # Removing a row (pruning an event) looks up the rows that refer to it, for the foreign key:
    # without an index on the referring column, each removed row reads that whole table.
    await database.upgrade()
    tables = ("events", "deliveries", "attempts", "audit_log")
    async with database.engine.connect() as conn:
        assert await conn.run_sync(_unindexed_foreign_keys, tables) == []


async def test_a_migration_that_fails_midway_leaves_the_schema_as_it_was(database):
    """One transaction for the whole upgrade, on SQLite too (whose driver runs DDL outside a
    transaction unless one was begun): a crash or error half-way leaves no half-made schema,
    and the next upgrade starts again from where the database was."""

    class Stop(Exception):
        pass

    def fail_after_the_third(revision: str, doc: str, seconds: float) -> None:
        if revision == "0003":
            raise Stop

    with pytest.raises(Stop):
        await database.upgrade(on_step=fail_after_the_third)
    async with database.engine.connect() as conn:
        tables = await conn.run_sync(_tables)
    assert tables <= {"alembic_version"}, tables

    await database.upgrade()
    async with database.engine.connect() as conn:
        tables = await conn.run_sync(_tables)
    assert set(Base.metadata.tables) <= tables


async def test_an_up_to_date_sqlite_database_is_upgraded_without_its_write_lock(tmp_path):
    """Every start and every CLI command upgrade the schema: when there is nothing to apply,
    that takes no write lock, which a running server's event commits would wait for."""
    path = tmp_path / "db.sqlite"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await db.upgrade()
        writer = sqlite3.connect(path, isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")  # another process writing
            async with asyncio.timeout(3):
                await db.upgrade()
        finally:
            writer.close()
    finally:
        await db.close()


async def test_a_schema_of_a_newer_version_is_refused_with_what_to_do(database):
    """A database a newer sftphook upgraded (its revision unknown here): a clear error, not
    alembic's traceback, and nothing is changed."""
    await database.upgrade()
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(UnknownSchema, match="at revision 0099, which sftphook .* does not know"):
        await database.upgrade()
    with pytest.raises(UnknownSchema):
        await database.pending_migrations()
    async with database.engine.connect() as conn:
        assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).all() == [
            ("0099",)
        ]
