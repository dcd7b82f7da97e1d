"""Migration 0003 builds the audit log table as the model describes it, and goes back down."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from sftphook.store import Database
from sftphook.store.database import alembic_config
from sftphook.store.models import Base


def _audit_differences(sync_conn):
    diffs = compare_metadata(MigrationContext.configure(sync_conn), Base.metadata)
    return [d for d in diffs if "audit_log" in repr(d)]


async def test_audit_log_migration_matches_the_model_and_downgrades(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    db = Database(url)
    try:
        await db.upgrade()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_audit_differences) == []

        def downgrade(connection):
            cfg = alembic_config(url)
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, "0002")

        async with db.engine.begin() as conn:
            await conn.run_sync(downgrade)
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert "audit_log" not in tables and "webhooks" in tables
        await db.upgrade()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_audit_differences) == []
    finally:
        await db.close()
