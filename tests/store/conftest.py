"""Fixtures for the store's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sftphook.store import Database
from tests.conftest import postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database, once on SQLite and once on PostgreSQL (a database of its own)."""
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        await database.upgrade()
        try:
            yield database
        finally:
            await database.close()
        return
    async with postgres_database() as url:
        database = Database(url)
        await database.upgrade()
        try:
            yield database
        finally:
            await database.close()
