"""What one recorded event costs: `EventRecorder.record()` latency and aiosqlite round trips (none
since the recorder writes through `Database.write`).

    PYTHONPATH=src .venv/bin/python bench/event_commit.py [--events 300]
    PYTHONPATH=src .venv/bin/python bench/event_commit.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

Records events one after another (as one SFTP client uploading files does) into a fresh SQLite
database in a temporary directory, with the recorder's writer task running as in the server; then,
for comparison in the same minute, the same inserts committed with one hop to one dedicated
thread: SQLAlchemy Core on a sync engine, and the stdlib `sqlite3`.

With `--postgres ADMIN_DSN`, records them instead in a database it creates on that server (and
drops), alternating two ways of writing a group of events: in one transaction, statement by
statement (the version before), and as one statement after the fan-out's query (this version,
`Database.write(one_statement=True)`); each without a webhook and with one that every event
matches (a delivery per event, and a NOTIFY). It counts the round trips to the server per
event.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import aiosqlite.core  # noqa: E402

from sftphook.app import App  # noqa: E402
from sftphook.config import Settings  # noqa: E402
from sftphook.events import EventRecord, Topic  # noqa: E402
from sftphook.store.models import Base, Event  # noqa: E402

_calls: collections.Counter[str] = collections.Counter()


def count_round_trips() -> None:
    """Count the calls that go to aiosqlite's thread and back."""
    original = aiosqlite.core.Connection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        _calls[getattr(fn, "__name__", repr(fn))] += 1
        return await original(self, fn, *args, **kwargs)

    aiosqlite.core.Connection._execute = counted  # type: ignore[method-assign]


async def measure(events: int) -> None:
    latencies = await _record_events(events)
    report("EventRecorder.record() (with the fan-out listener)", latencies)
    per_event = {name: n / events for name, n in sorted(_calls.items())}
    print(f"  aiosqlite round trips per event: {sum(per_event.values()):.1f} {per_event}")
    with tempfile.TemporaryDirectory(prefix="sftphook-event-commit-") as tmp:
        core = await one_hop(_core_committer(Path(tmp)), events)
        report("sync SQLAlchemy Core, one thread", core)
    with tempfile.TemporaryDirectory(prefix="sftphook-event-commit-") as tmp:
        report("stdlib sqlite3, one thread", await one_hop(_sqlite3_committer(Path(tmp)), events))


def count_postgres_round_trips() -> None:
    """Count asyncpg's calls that each make one round trip: simple queries (BEGIN, COMMIT,
    ROLLBACK), the ping's `;`, and prepared statements."""
    from asyncpg.connection import Connection
    from asyncpg.prepared_stmt import PreparedStatement

    def counting(cls: Any, name: str) -> None:
        original = getattr(cls, name)

        async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            query = args[0] if cls is Connection and args else ""
            label = str(query).split()[0].rstrip(";") if str(query).strip(" ;") else ";"
            _calls[label if cls is Connection else "statement"] += 1
            return await original(self, *args, **kwargs)

        setattr(cls, name, counted)

    for name in ("execute", "fetchrow"):
        counting(Connection, name)
    for name in ("fetch", "fetchrow", "executemany"):
        counting(PreparedStatement, name)


async def measure_postgres(admin_dsn: str, events: int, rounds: int = 2) -> None:
    import asyncpg

    from sftphook.store import database

    count_postgres_round_trips()
    name = f"sftphook_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    write = database.Database.write

    async def in_a_transaction(self: Any, work: Any, **kwargs: Any) -> Any:
        return await write(self, work, **{**kwargs, "one_statement": False})

    ways = {
        "one transaction (the version before)": in_a_transaction,
        "one statement (this version)": write,
    }
    try:
        for _ in range(rounds):
            for webhook in (False, True):
                for what, way in ways.items():
                    database.Database.write = way  # type: ignore[method-assign]
                    try:
                        latencies = await _record_events(events, f"{base}/{name}", webhook)
                    finally:
                        database.Database.write = write  # type: ignore[method-assign]
                    report(f"PostgreSQL, {what}, {'a' if webhook else 'no'} webhook", latencies)
                    per_event = {k: round(n / events, 2) for k, n in sorted(_calls.items())}
                    print(f"  round trips per event: {sum(per_event.values()):.1f} {per_event}")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _record_events(events: int, url: str | None = None, webhook: bool = False) -> list[float]:
    """Record `events` one after another through a running recorder; each one's latency. On
    the SQLite database of a temporary data directory, or on `url`; with `webhook`, one that
    takes every event (its deliveries are created, not sent)."""
    with tempfile.TemporaryDirectory(prefix="sftphook-event-commit-") as tmp:
        settings = Settings.load(
            data_dir=Path(tmp),
            # The webhook's address, never called (no delivery workers run here).
            webhooks={"allow_http": True, "allowed_networks": ["127.0.0.0/8"]},
            **({"database_url": url} if url else {}),
        )
        app = App(settings)
        await app.prepare()
        org = await app.accounts.ensure_default_organization()
        hooks = await app.webhooks.list_webhooks(org.id)
        if webhook and not hooks:
            await app.webhooks.create(
                org.id, nickname="bench", url=WEBHOOK_URL, topics=[str(Topic.FILE_CREATED)]
            )
        elif not webhook:
            for hook in hooks:
                await app.webhooks.remove(org.id, hook.id)
        started = asyncio.Event()
        writer = asyncio.create_task(app.recorder.run(started))
        await started.wait()
        _calls.clear()
        latencies = []
        for i in range(events):
            event = EventRecord(
                organization_id=org.id,
                topic=Topic.FILE_CREATED,
                actor_id="bench",
                path=f"inbound/file-{i:05d}.dat",
                size=4096,
                sha256="0" * 64,
                protocol="SFTP",
                client_ip="127.0.0.1",
                session_id="bench",
            )
            began = time.perf_counter()
            await app.recorder.record(event)
            latencies.append(time.perf_counter() - began)
        await app.recorder.close()
        await writer
        await app.db.close()
    return latencies


# Never called: the bench runs no delivery workers.
WEBHOOK_URL = "http://127.0.0.1:9/sftphook"


def report(what: str, latencies: list[float]) -> None:
    latencies = sorted(latencies)
    print(
        f"{what}: median {statistics.median(latencies) * 1e3:.2f} ms, "
        f"p90 {latencies[int(len(latencies) * 0.9)] * 1e3:.2f} ms, "
        f"mean {statistics.mean(latencies) * 1e3:.2f} ms over {len(latencies)} events"
    )


def _row(i: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "organization_id": "org",
        "topic": "file.created",
        "created_at": int(time.time() * 1000),
        "actor_type": "User",
        "actor_id": "bench",
        "path": f"inbound/file-{i:05d}.dat",
        "previous_path": None,
        "size": 4096,
        "sha256": "0" * 64,
        "protocol": "SFTP",
        "client_ip": "127.0.0.1",
        "session_id": "bench",
    }


def _pragmas(conn: Any) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")


def _core_committer(tmp: Path) -> Callable[[list[dict[str, Any]]], None]:
    from sqlalchemy import Table, create_engine, event, insert

    engine = create_engine(f"sqlite:///{tmp / 'events.db'}")
    event.listen(engine, "connect", lambda conn, _record: _pragmas(conn))
    Base.metadata.create_all(engine)
    statement = insert(cast(Table, Event.__table__))

    def commit(rows: list[dict[str, Any]]) -> None:
        with engine.begin() as conn:
            conn.execute(statement, rows)

    return commit


def _sqlite3_committer(tmp: Path) -> Callable[[list[dict[str, Any]]], None]:
    db = sqlite3.connect(tmp / "events.db", check_same_thread=False, isolation_level=None)
    _pragmas(db)
    columns = list(_row(0))
    db.execute(f"CREATE TABLE events ({', '.join(columns)})")
    sql = f"INSERT INTO events VALUES ({', '.join('?' for _ in columns)})"

    def commit(rows: list[dict[str, Any]]) -> None:
        db.execute("BEGIN")
        db.executemany(sql, [tuple(r.values()) for r in rows])
        db.execute("COMMIT")

    return commit


async def one_hop(commit: Callable[[list[dict[str, Any]]], None], events: int) -> list[float]:
    loop = asyncio.get_running_loop()
    latencies = []
    with ThreadPoolExecutor(max_workers=1) as writer:
        for i in range(events):
            began = time.perf_counter()
            await loop.run_in_executor(writer, commit, [_row(i)])
            latencies.append(time.perf_counter() - began)
    return latencies


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=300)
    p.add_argument("--postgres", metavar="ADMIN_DSN", help="measure on this PostgreSQL server")
    a = p.parse_args()
    if a.postgres:
        asyncio.run(measure_postgres(a.postgres, a.events))
        return
    count_round_trips()
    asyncio.run(measure(a.events))


if __name__ == "__main__":
    main()
