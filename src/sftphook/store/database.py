"""The database handle: one async engine, its sessions, and the migrations that shape it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError
from sqlalchemy import Table, create_engine, event, exc, make_url, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from sftphook.errors import unknown_schema

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

log = logging.getLogger(__name__)

# Nodes that start together on one PostgreSQL database migrate one at a time under this
# transaction-scoped advisory lock; the others then find the schema current.
MIGRATION_LOCK = 0x5F7090C6

T = TypeVar("T")


def is_connection_lost(error: BaseException) -> bool:
    """Whether `error` means the database could not be reached (restarting, shut down, network)
    or stayed locked past the busy timeout (SQLite), rather than that the statement was wrong:
    the work may simply be tried again."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, OSError | ConnectionError | exc.InterfaceError):
            return True
        if isinstance(current, exc.OperationalError) and any(
            text in str(current.orig) for text in ("database is locked", "database is busy")
        ):
            return True
        name = type(current).__name__
        # asyncpg's errors for a server that is going away or not accepting yet.
        if name in (
            "ConnectionDoesNotExistError",
            "ConnectionFailureError",
            "CannotConnectNowError",
            "AdminShutdownError",
            "CrashShutdownError",
            "TooManyConnectionsError",
            "InternalClientError",
        ):
            return True
        # SQLAlchemy keeps the driver's error in `.orig` (and usually as the cause too).
        orig = current.orig if isinstance(current, exc.DBAPIError) else None
        current = current.__cause__ or current.__context__ or orig
    return False


async def retry_while_unreachable(
    work: Callable[[], Awaitable[T]],
    *,
    what: str,
    give_up_after: float,
    first_delay: float = 0.1,
    max_delay: float = 2.0,
) -> T:
    """Run `work`, and again with a growing pause while the database is unreachable, for up to
    `give_up_after` seconds; other errors, and the last connection error, propagate."""
    deadline = time.monotonic() + give_up_after
    delay = first_delay
    while True:
        try:
            return await work()
        except Exception as error:
            if not is_connection_lost(error) or time.monotonic() + delay > deadline:
                raise
            log.warning(
                "database unreachable while %s (%s); trying again in %.1f s",
                what,
                type(error).__name__,
                delay,
            )
        await asyncio.sleep(delay)
        delay = min(max_delay, delay * 2)


# Told of each migration as it is applied: its revision, its description, the seconds it took.
MigrationStep = Callable[[str, str, float], None]


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


# How long a SQLite connection waits for another's write lock.
BUSY_TIMEOUT_MS = 10_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; NORMAL syncs at checkpoints, which in WAL
    # mode keeps every committed transaction across a process crash (not across power loss).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# A transaction that may run on the event loop must have cost, on average, less than this.
INLINE_BUDGET = 0.0005
# The weight of the latest inline transaction in that average.
INLINE_WEIGHT = 0.2
# The writer's connection does not checkpoint at its commits (an inline commit would then copy
# the WAL and fsync on the event loop): the writer thread checkpoints after this many commits.
CHECKPOINT_EVERY = 200


class _Busy(Exception):
    """Another connection holds SQLite's write lock: this transaction waits on the thread."""


def sqlite_driver(connection: Connection) -> sqlite3.Connection | None:
    """The stdlib `sqlite3` connection under `connection` (a `Database.write` transaction on
    SQLite), or None on any other database."""
    if connection.dialect.name != "sqlite":
        return None
    driver = connection.connection.driver_connection
    return driver if isinstance(driver, sqlite3.Connection) else None


@contextlib.contextmanager
def driver_errors(statement: str) -> Iterator[None]:
    """`sqlite3`'s errors as SQLAlchemy's (`exc.OperationalError`, `exc.IntegrityError`, ...),
    the ones the rest of the store and `is_connection_lost` expect."""
    try:
        yield
    except sqlite3.Error as error:
        raise exc.DBAPIError.instance(statement, None, error, sqlite3.Error) from error


class PlainInsert:
    """An INSERT of many rows of plain values (text, numbers, bytes, None) into `table`.

    On SQLite it goes straight to the `sqlite3` connection, one prepared statement for the
    whole group: per call SQLAlchemy's Core costs several times what SQLite does for a row of an
    event, which is on the path of every SFTP reply that completes a file operation. Elsewhere it
    is the Core INSERT. `columns` are the keys of every row; a column left out must have no
    default of SQLAlchemy's to apply, and no listed column may need converting, which is checked
    here once.
    """

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        from sqlalchemy.dialects import sqlite

        dialect = sqlite.dialect()
        listed = set(columns)
        for column in table.columns:
            if column.name in listed and column.type.bind_processor(dialect) is not None:
                raise ValueError(f"{table.name}.{column.name} needs converting: not plain")
            if column.name not in listed and column.default is not None:
                raise ValueError(f"{table.name}.{column.name} has a default that would be skipped")
        unknown = listed - {column.name for column in table.columns}
        if unknown:
            raise ValueError(f"{table.name} has no column {', '.join(sorted(unknown))}")
        self.columns = tuple(columns)
        self.table = table.name
        self.core = table.insert()
        self.sql = (
            f"INSERT INTO {table.name} ({', '.join(self.columns)})"
            f" VALUES ({', '.join('?' * len(self.columns))})"
        )

    def execute(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        driver = sqlite_driver(connection)
        if driver is None:
            gathered = _gathered(connection)
            if gathered is not None:
                gathered.inserts.append((self, list(rows)))
                return
            connection.execute(self.core, list(rows))
            return
        columns = self.columns
        values = [tuple([row[name] for name in columns]) for row in rows]
        with driver_errors(self.sql):
            driver.executemany(self.sql, values)


def notify(connection: Connection, channel: str) -> None:
    """PostgreSQL NOTIFY on `channel`, delivered when the write that calls it commits; nothing on
    other databases. `channel` is an identifier of this code's, never user input."""
    if connection.dialect.name != "postgresql":
        return
    gathered = _gathered(connection)
    if gathered is not None:
        if channel not in gathered.channels:
            gathered.channels.append(channel)
        return
    connection.execute(text(f"NOTIFY {channel}"))


# `Database.write(one_statement=True)` on PostgreSQL: a write gathered in the connection's `info`
# while its work runs.
_GATHERED = "sftphook.gathered"
# A gathered write of up to this many rows is sent as one statement; a larger one in a
# transaction (a statement is compiled for each number of rows, and PostgreSQL takes at most
# 32,767 parameters in one).
ONE_STATEMENT_ROWS = 16


class _Gathered:
    """The INSERTs (`PlainInsert`) and notifications of one write, kept to be sent together."""

    def __init__(self) -> None:
        self.inserts: list[tuple[PlainInsert, list[Mapping[str, Any]]]] = []
        self.channels: list[str] = []

    @property
    def rows(self) -> int:
        return sum(len(rows) for _, rows in self.inserts)

    def statement(self) -> tuple[str, tuple[Any, ...]] | None:
        """All of it as one statement and its parameters, or None when there is nothing to send:
        the INSERTs as data-modifying WITH clauses, the notifications as `pg_notify` calls."""
        inserts = [(insert, rows) for insert, rows in self.inserts if rows]
        if not inserts and not self.channels:
            return None
        shape = (tuple((insert.table, len(rows)) for insert, rows in inserts), tuple(self.channels))
        sql = _ONE_STATEMENT_SQL.get(shape)
        if sql is None:
            sql = _ONE_STATEMENT_SQL[shape] = _one_statement_sql(inserts, self.channels)
        params = tuple(
            row[name] for insert, rows in inserts for row in rows for name in insert.columns
        )
        return sql, params

    def send(self, connection: Connection) -> None:
        """Statement by statement, in the caller's transaction (not gathering: each call runs)."""
        for insert, rows in self.inserts:
            if rows:
                insert.execute(connection, rows)
        for channel in self.channels:
            notify(connection, channel)


# The text of each shape of gathered write sent so far (tables, row counts, channels): asyncpg
# then finds its prepared statement by that text.
_ONE_STATEMENT_SQL: dict[tuple[Any, ...], str] = {}


def _one_statement_sql(
    inserts: Sequence[tuple[PlainInsert, Sequence[Mapping[str, Any]]]], channels: Sequence[str]
) -> str:
    number = 0
    clauses = []
    for insert, rows in inserts:
        values = []
        for _ in rows:
            values.append(
                "(" + ", ".join(f"${number + i + 1}" for i in range(len(insert.columns))) + ")"
            )
            number += len(insert.columns)
        clauses.append(
            f"INSERT INTO {insert.table} ({', '.join(insert.columns)}) VALUES {', '.join(values)}"
        )
    if len(clauses) == 1 and not channels:
        return clauses[0]
    notified = ", ".join(f"pg_notify('{channel}', '')" for channel in channels) or "1"
    ctes = ", ".join(f"w{i} AS ({clause})" for i, clause in enumerate(clauses))
    return f"WITH {ctes} SELECT {notified}" if ctes else f"SELECT {notified}"


def _gathered(connection: Connection) -> _Gathered | None:
    return cast("_Gathered | None", connection.info.get(_GATHERED))


def _only_reads_while_gathering(
    connection: Connection, _cursor: Any, statement: str, *_args: Any
) -> None:
    # A statement of a gathered write's own would be committed at once, alone (the connection
    # is in autocommit): refused, so that the write stays whole or nothing.
    if connection.info.get(_GATHERED) is not None and statement.lstrip()[:6].upper() != "SELECT":
        raise RuntimeError(
            "a write gathered into one statement (Database.write(one_statement=True)) may only"
            f" read, and write through PlainInsert and notify: {statement.split()[0]} refused"
        )


def _gathering(connection: Connection, work: Callable[[Connection], T]) -> tuple[T, _Gathered]:
    gathered = _Gathered()
    connection.info[_GATHERED] = gathered
    try:
        return work(connection), gathered
    finally:
        del connection.info[_GATHERED]


class _SqliteWriter:
    """One `sqlite3` connection for write transactions, and the thread that runs them.

    A write through aiosqlite is a round trip to its thread for every cursor, execute, fetch,
    close and commit (a recorded event with its fan-out was twelve); here a whole transaction is
    one hand-off. Work is queued to the thread in order, so the process's writers take turns
    instead of sleeping in SQLite's busy handler.

    A small transaction (an event's commit, `run(..., inline=True)`) skips the hand-off when
    nothing else is writing: it runs on the event loop, where the hand-off and the two thread
    wake-ups cost more than SQLite's own work. It never waits there: the write lock is taken
    without a busy timeout, and when another connection holds it, or when inline transactions
    have lately been slow, or when the thread is busy, the transaction goes to the thread as any
    other. Checkpoints happen on the thread only.
    """

    def __init__(self, url: str) -> None:
        sync_url = make_url(url).set(drivername="sqlite")
        self._engine: Engine = create_engine(
            sync_url,
            poolclass=NullPool,
            # Used by the thread and, under `_lock`, by the event loop's thread.
            connect_args={"timeout": 10, "check_same_thread": False},
            json_serializer=json_text,
        )
        event.listen(self._engine, "connect", _sqlite_pragmas)
        event.listen(self._engine, "connect", _no_autocheckpoint)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sftphook-db-writer")
        self._connection: Connection | None = None
        # Held by whoever runs a transaction on the connection, the thread or the loop.
        self._lock = threading.Lock()
        self._inline_cost = 0.0
        self._last_cost = 0.0
        self._commits = 0

    async def run(self, work: Callable[[Connection], T], *, inline: bool = False) -> T:
        loop = asyncio.get_running_loop()
        if inline and self._inline_cost < INLINE_BUDGET and self._lock.acquire(blocking=False):
            try:
                result = self._run(work, wait=False)
                self._note(self._last_cost)
                return result
            except _Busy:
                pass
            finally:
                self._lock.release()
                if self._commits >= CHECKPOINT_EVERY:
                    self._commits = 0  # one checkpoint queued, not one per commit until it runs
                    loop.run_in_executor(self._executor, self._on_thread, None, False)
        # A transaction that could have run inline is timed on the thread too, so that a slow
        # spell (a busy disk) that sent such transactions there can end.
        return cast(T, await loop.run_in_executor(self._executor, self._on_thread, work, inline))

    def _note(self, seconds: float) -> None:
        self._inline_cost += (seconds - self._inline_cost) * INLINE_WEIGHT

    def _on_thread(self, work: Callable[[Connection], T] | None, timed: bool) -> T | None:
        """A transaction on the thread (None: only a checkpoint), then a checkpoint when due."""
        with self._lock:
            result = self._run(work, wait=True) if work is not None else None
            if timed:
                self._note(self._last_cost)
            if work is None:
                self._checkpoint()
            elif self._commits >= CHECKPOINT_EVERY:
                self._commits = 0
                self._checkpoint()
            return result

    def _run(self, work: Callable[[Connection], T], *, wait: bool) -> T:
        if self._connection is None or self._connection.invalidated:
            # The transaction is ours, not SQLAlchemy's (its begin and commit bookkeeping cost
            # more than SQLite's): BEGIN IMMEDIATE takes the write lock at once, so a writer
            # that waits does so before it has read anything.
            self._connection = self._engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            )
        connection = self._connection
        try:
            self._begin(connection, wait)
            began = time.perf_counter()
            try:
                result = work(connection)
                driver = connection.connection.driver_connection
                assert driver is not None
                with driver_errors("COMMIT"):
                    driver.execute("COMMIT")
                self._commits += 1
                # The transaction's own time, without any wait for another writer's lock.
                self._last_cost = time.perf_counter() - began
            except BaseException:
                driver = connection.connection.driver_connection
                if driver is not None and driver.in_transaction:
                    with contextlib.suppress(Exception):
                        connection.exec_driver_sql("ROLLBACK")
                raise
            return result
        except _Busy:
            raise
        except BaseException:
            if connection.invalidated or connection.closed:
                self._connection = None
            raise

    @staticmethod
    def _begin(connection: Connection, wait: bool) -> None:
        if wait:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            return
        # Straight to the driver: this runs on the event loop before every event's commit.
        driver = connection.connection.driver_connection
        assert driver is not None
        driver.execute("PRAGMA busy_timeout=0")
        try:
            with driver_errors("BEGIN IMMEDIATE"):
                driver.execute("BEGIN IMMEDIATE")
        except exc.OperationalError as error:
            if "locked" in str(error.orig) or "busy" in str(error.orig):
                raise _Busy from error
            raise
        finally:
            driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def _checkpoint(self) -> None:
        """Copy the WAL into the database file as far as readers allow (never waits for them)."""
        if self._connection is not None:
            try:
                self._connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except exc.DBAPIError:
                log.warning("WAL checkpoint failed", exc_info=True)

    def _close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._checkpoint()
                self._connection.close()
                self._connection = None
            self._engine.dispose()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)


def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


# A pooled PostgreSQL connection that waited longer than this (seconds) is checked before use.
PING_AFTER_IDLE = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use only if it has been idle for `PING_AFTER_IDLE`.

    SQLAlchemy's `pool_pre_ping` checks every checkout, and its asyncpg ping is three round
    trips (BEGIN, `;`, ROLLBACK): with them an event's transaction took 7 round trips instead of
    4. A connection in steady use is not checked; one that sat idle (the server may have
    restarted or a firewall dropped it meanwhile) is, and is replaced if it does not answer.
    Should a connection in use die, the statement fails as a lost connection, the pool drops
    every connection older than that failure, and the callers that retry (event commits,
    delivery claims and results) go on with fresh ones.
    """

    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception:  # `;` fails only on a connection that is gone
            alive = False
        if not alive:
            # The pool closes this one and checks out a fresh connection (three tries).
            raise exc.DisconnectionError("a pooled connection no longer answers")

    event.listen(engine, "checkin", checked_in)
    event.listen(engine, "checkout", checkout)


def json_text(value: Any) -> str:
    """JSON columns' text (the attempt log's headers): compact, non-ASCII as is. What orjson
    does not take (an integer past 64 bits) goes through the standard library."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False)


class Database:
    """Owns the engine. Repositories take a session from `session()` and never commit."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo, "json_serializer": json_text}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 10}
        else:
            kwargs.update(pool_size=10, max_overflow=20)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            _ping_when_idle(self.engine.sync_engine)
            event.listen(
                self.engine.sync_engine, "before_cursor_execute", _only_reads_while_gathering
            )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writer: _SqliteWriter | None = None

    async def write(
        self, work: Callable[[Connection], T], *, inline: bool = False, one_statement: bool = False
    ) -> T:
        """Run `work(connection)` in one write transaction (committed when it returns, rolled back
        when it raises) and return its result. `work` is synchronous and uses Core statements.

        On SQLite it runs on the writer thread: one hand-off per transaction, whatever `work`
        does; with `inline` (for a transaction of well under a millisecond) on the event loop
        when nothing else is writing (see `_SqliteWriter`). On PostgreSQL (asyncpg has no thread
        to hop to) it runs through `run_sync` on a pooled connection.

        `one_statement` (PostgreSQL): `work`'s reads run at once, outside a transaction, and
        what it writes through `PlainInsert` and `notify` is gathered and sent when it returns,
        as one statement, which PostgreSQL applies whole or not at all: a group of events and
        its deliveries in two round trips (the fan-out's query, then this) instead of four to
        six (BEGIN, the statements one by one, COMMIT). `work` must then write nothing else and
        read nothing it writes. More than `ONE_STATEMENT_ROWS` rows go in one transaction."""
        if self.is_sqlite:
            if self._writer is None:
                self._writer = _SqliteWriter(self.url)
            return await self._writer.run(work, inline=inline)
        if one_statement:
            return await self._write_gathered(work)
        async with self.engine.begin() as connection:
            return await connection.run_sync(work)

    async def _write_gathered(self, work: Callable[[Connection], T]) -> T:
        async with self.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            result, gathered = await connection.run_sync(_gathering, work)
            if gathered.rows <= ONE_STATEMENT_ROWS:
                statement = gathered.statement()
                if statement is not None:
                    await connection.exec_driver_sql(*statement)
                return result
        async with self.engine.begin() as connection:
            await connection.run_sync(gathered.send)
        return result

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for one unit of work: `async with db.session() as s, s.begin(): ...`."""
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside a transaction that commits on success and rolls back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def read(self, work: Callable[[Connection], T]) -> T:
        """Run `work(connection)` on a pooled connection, for reads with Core statements."""
        async with self.engine.connect() as connection:
            return await connection.run_sync(work)

    async def pending_migrations(self) -> tuple[str | None, list[tuple[str, str]]]:
        """The schema's revision now (None: no schema yet) and the migrations `upgrade` would
        apply, oldest first, as (revision, description)."""
        self._make_sqlite_directory()
        async with self.engine.connect() as conn:
            return await conn.run_sync(self._pending)

    def _pending(self, connection: Connection) -> tuple[str | None, list[tuple[str, str]]]:
        current = MigrationContext.configure(connection).get_current_revision()
        script = ScriptDirectory.from_config(alembic_config(self.url))
        try:
            steps = list(script.iterate_revisions("heads", current))
        except ResolutionError:
            raise unknown_schema(current) from None
        return current, [(s.revision, s.doc) for s in reversed(steps)]

    def _make_sqlite_directory(self) -> None:
        if self.is_sqlite:
            path = self.url.split(":///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)

    async def upgrade(self, on_step: MigrationStep | None = None) -> None:
        """Bring the schema to the newest migration (run at start and by `sftphook db upgrade`);
        `on_step` is called after each migration applied."""
        # Up to date (every start, every CLI command): nothing to write, so no lock taken (on
        # SQLite the write lock, which a running server's event commits would wait for).
        _, pending = await self.pending_migrations()
        if not pending:
            return
        async with self.engine.begin() as conn:
            if self.is_sqlite:
                # Python's sqlite3 runs DDL outside any transaction until a statement that
                # changes rows begins one: a failure (or a kill) half-way through would leave
                # tables of a migration that alembic_version does not record, and every later
                # start failing on them. One transaction for the whole upgrade instead, which
                # takes the write lock at once: a second process upgrading waits for it
                # (busy_timeout), then finds the schema current.
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            await conn.run_sync(self._upgrade_sync, on_step)

    def _upgrade_sync(self, connection: Connection, on_step: MigrationStep | None = None) -> None:
        cfg = alembic_config(self.url)
        cfg.attributes["connection"] = connection
        if on_step is not None:
            started = time.monotonic()

            def applied(*, step: Any, **_: Any) -> None:
                nonlocal started
                now = time.monotonic()
                revision = step.up_revision
                on_step(revision.revision, revision.doc, now - started)
                started = now

            cfg.attributes["on_version_apply"] = applied
        # Again under the lock (another node may have upgraded since): a revision of a newer
        # version is a clear error, not alembic's.
        self._pending(connection)
        command.upgrade(cfg, "head")

    async def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.close()
        await self.engine.dispose()
