"""The database: models, migrations and repositories (SQLite by default, PostgreSQL too)."""

from sftphook.store.database import Database

__all__ = ["Database"]
