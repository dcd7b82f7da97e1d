"""Queries on recorded events, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

from sftphook.events import EventRecord, Topic
from sftphook.store import Database
from sftphook.store import events as event_store
from sftphook.store.models import Organization, now_ms

PATHS = ["inbound/a.csv", "Inbound/B.csv", "INBOUND/c.csv", "inbox/d.csv", "été/e.csv", "Été/f.csv"]


async def test_a_path_prefix_is_compared_as_written(db: Database) -> None:
    def record(connection):
        connection.execute(
            Organization.__table__.insert(), {"id": "o", "name": "o", "created_at": now_ms()}
        )
        rows = [
            EventRecord(organization_id="o", topic=Topic.FILE_CREATED, actor_id="u", path=p)
            for p in PATHS
        ]
        event_store.insert(connection, [r.as_row() for r in rows])

    await db.write(record)

    async def paths(prefix: str) -> set[str]:
        async with db.session() as session:
            rows = await event_store.list_for(session, "o", path_prefix=prefix, limit=50)
        return {row.path for row in rows}

    # SQLite's LIKE would take all three spellings of "inbound/".
    assert await paths("inbound/") == {"inbound/a.csv"}
    assert await paths("Inbound/") == {"Inbound/B.csv"}
    assert await paths("inb") == {"inbound/a.csv", "inbox/d.csv"}
    # Characters, not bytes: "é" is two bytes in UTF-8.
    assert await paths("été/") == {"été/e.csv"}
    assert await paths("Ét") == {"Été/f.csv"}
    assert await paths("inbound/a.csv") == {"inbound/a.csv"}
    assert await paths("inbound/a.csvx") == set()
