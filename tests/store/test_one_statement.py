"""`Database.write(one_statement=True)` on PostgreSQL: the work's reads run at once, its writes
(`PlainInsert`, `notify`) go as one statement when it returns, whole or not at all."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, cast

import asyncpg
import pytest
from sqlalchemy import Table, func, select

from sftphook.store import Database
from sftphook.store.database import ONE_STATEMENT_ROWS, PlainInsert, notify
from sftphook.store.models import Organization, now_ms

ORGS = cast(Table, Organization.__table__)
INSERT_ORGS = PlainInsert(ORGS, ("id", "name", "notice_email", "created_at"))
CHANNEL = "sftphook_test_channel"


def _org(name: str) -> dict[str, Any]:
    return {"id": name, "name": name, "notice_email": None, "created_at": now_ms()}


def _names(connection) -> list[str]:
    return sorted(connection.execute(select(ORGS.c.name)).scalars())


@pytest.fixture
async def db(postgres_url: str):
    database = Database(postgres_url)
    await database.upgrade()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def heard(postgres_url: str):
    """The notifications on CHANNEL, as a queue."""
    connection = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
    queue: asyncio.Queue[str] = asyncio.Queue()
    await connection.add_listener(CHANNEL, lambda _c, _pid, channel, _p: queue.put_nowait(channel))
    try:
        yield queue
    finally:
        await connection.close()


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """asyncpg's calls that each cost a round trip to the server, by kind (a simple query's first
    word, or "statement" for a prepared one)."""
    from asyncpg.connection import Connection
    from asyncpg.prepared_stmt import PreparedStatement

    calls: Counter[str] = Counter()

    def count(cls: Any, name: str) -> None:
        original = getattr(cls, name)

        async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            if cls is Connection:
                calls[str(args[0]).split()[0].rstrip(";").upper() if args else ";"] += 1
            else:
                calls["statement"] += 1
            return await original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, counted)

    for name in ("execute", "fetchrow"):
        count(Connection, name)
    for name in ("fetch", "fetchrow", "executemany"):
        count(PreparedStatement, name)
    return calls


async def test_reads_run_first_and_the_writes_land_together_in_two_round_trips(
    db: Database, heard: asyncio.Queue[str], round_trips: Counter[str]
) -> None:
    def work(connection) -> list[str]:
        before = _names(connection)
        INSERT_ORGS.execute(connection, [_org("a"), _org("b")])
        notify(connection, CHANNEL)
        INSERT_ORGS.execute(connection, [_org("c")])
        notify(connection, CHANNEL)  # once per write, however often asked
        # Nothing is written yet: the work's reads see the database as it was.
        return before + _names(connection)

    await db.write(_names)  # the pool's connection is made and checked before counting
    round_trips.clear()
    assert await db.write(work, one_statement=True) == []
    # Two reads and the statement; no BEGIN, no COMMIT, no separate NOTIFY.
    assert round_trips == Counter({"statement": 3})
    assert await db.write(_names) == ["a", "b", "c"]
    assert await asyncio.wait_for(heard.get(), 5) == CHANNEL
    await asyncio.sleep(0.2)
    assert heard.empty()


@pytest.mark.parametrize("rows", [2, ONE_STATEMENT_ROWS + 5], ids=["one statement", "large"])
async def test_a_failing_write_leaves_nothing(
    db: Database, heard: asyncio.Queue[str], rows: int
) -> None:
    def duplicate(connection) -> None:
        INSERT_ORGS.execute(connection, [_org(f"o{i}") for i in range(rows)])
        notify(connection, CHANNEL)
        INSERT_ORGS.execute(connection, [_org("o0")])  # the same id again: refused at the end

    with pytest.raises(Exception, match="duplicate key"):
        await db.write(duplicate, one_statement=True)
    assert await db.write(_names) == []

    def fails(connection) -> None:
        INSERT_ORGS.execute(connection, [_org("kept?")])
        raise RuntimeError("work failed")

    with pytest.raises(RuntimeError, match="work failed"):
        await db.write(fails, one_statement=True)
    assert await db.write(_names) == []
    await asyncio.sleep(0.2)
    assert heard.empty()

    def good(connection) -> None:
        INSERT_ORGS.execute(connection, [_org(f"o{i}") for i in range(rows)])
        notify(connection, CHANNEL)

    await db.write(good, one_statement=True)
    assert await db.write(_names) == sorted(f"o{i}" for i in range(rows))
    assert await asyncio.wait_for(heard.get(), 5) == CHANNEL


async def test_a_statement_of_the_works_own_is_refused_before_it_runs(db: Database) -> None:
    def direct(connection) -> None:
        INSERT_ORGS.execute(connection, [_org("gathered")])
        connection.execute(ORGS.insert(), _org("direct"))

    with pytest.raises(RuntimeError, match="may only read"):
        await db.write(direct, one_statement=True)
    assert await db.write(_names) == []
    # The connection went back to the pool in working order.
    assert await db.write(lambda c: c.execute(select(func.count()).select_from(ORGS)).scalar()) == 0
