"""The event recorder: commits events in groups, before the SFTP reply that completes them.

Every caller of `record()` waits for its event to be committed, but callers that arrive while a
commit is under way share the next one: one writer, one transaction per group. An event that
finds nothing committing and nothing queued is committed by its caller at once, without the
hand-offs to the writer task and back (one task's per turn of the event loop: the rest of a
burst from many tasks is grouped as before). Listeners run in that same transaction, so
whatever they write (a webhook's deliveries) commits with the event or not at all. On
PostgreSQL the events and what the listeners write go as one statement after the listeners'
reads (`Database.write(one_statement=True)`): two round trips per group. A group
whose listeners are all synchronous (`add_sync_listener`, statements on the transaction's
connection) is one `Database.write`: on SQLite run on the event loop when nothing else writes,
or else a single hand-off to the store's writer thread, which is what keeps an event cheap next
to the SFTP work it follows.

When the database cannot be reached (PostgreSQL restarting, a network blip) a group is tried
again with a growing pause for up to `retry_for` seconds, so the SFTP replies waiting on it are
only late; a try whose commit went through but whose answer was lost is recognised by its event
ids, never recorded twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from sftphook.events.model import EventRecord
from sftphook.store import events as event_store
from sftphook.store.database import Database, retry_while_unreachable
from sftphook.store.models import Event

log = logging.getLogger(__name__)

# Run inside the transaction that records the events; must not commit.
EventListener = Callable[[AsyncSession, Sequence[EventRecord]], Awaitable[None]]
SyncEventListener = Callable[[Connection, Sequence[EventRecord]], None]
# Runs after the commit (to wake workers, count metrics); must not block or raise.
CommitHook = Callable[[Sequence[EventRecord]], None]

_Pending = tuple[EventRecord, asyncio.Future[None]]
# A group this small may commit on the event loop when nothing else is writing (SQLite): the
# hand-off to the writer thread and back cost more than the commit itself.
INLINE_GROUP = 8


class RecorderClosed(RuntimeError):
    """The recorder is shutting down and takes no more events."""


class EventRecorder:
    def __init__(self, db: Database, *, max_batch: int = 512, retry_for: float = 30.0) -> None:
        self._db = db
        self._max_batch = max_batch
        self._retry_for = retry_for
        self._listeners: list[EventListener] = []
        self._sync_listeners: list[SyncEventListener] = []
        self._commit_hooks: list[CommitHook] = []
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._closed = False
        self._running = False
        # Held while a group commits: one group at a time, whether the writer task commits it
        # or `record()` does for a lone event.
        self._group = asyncio.Lock()
        # The task whose event was committed by its caller in this turn of the event loop.
        self._direct_this_turn: asyncio.Task[object] | None = None

    def add_listener(self, listener: EventListener) -> None:
        """An async listener (an ORM session); a group then commits through a session, several
        hand-offs on SQLite. Prefer `add_sync_listener`."""
        self._listeners.append(listener)

    def add_sync_listener(self, listener: SyncEventListener) -> None:
        """A listener that runs on the write transaction's connection (on SQLite in the store's
        writer thread, so it must not touch the event loop). It writes only through `PlainInsert`
        and `notify`, and reads nothing the group writes: on PostgreSQL its reads run first and
        its writes go with the events' in one statement (`Database.write(one_statement=True)`)."""
        self._sync_listeners.append(listener)

    def add_commit_hook(self, hook: CommitHook) -> None:
        self._commit_hooks.append(hook)

    async def record(self, event: EventRecord) -> None:
        """Return once `event` is committed; raise if it could not be."""
        if self._closed:
            raise RecorderClosed("the server is shutting down")
        if not self._running:
            # No writer task (a CLI command, a test): commit this one alone.
            await self._commit([event])
            return
        task = asyncio.current_task()
        if (
            not self._group.locked()
            and self._queue.empty()
            and self._direct_this_turn in (None, task)
        ):
            # Nothing committing or waiting: commit it here, without the two hand-offs to the
            # writer task and back. Events that come meanwhile, or from other tasks later in
            # this same turn of the loop (a burst: a commit on the loop does not yield), queue
            # for the writer's next group.
            if self._direct_this_turn is None:
                self._direct_this_turn = task
                asyncio.get_running_loop().call_soon(self._turn_ended)
            async with self._group:
                await self._commit([event])
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((event, done))
        await done

    def _turn_ended(self) -> None:
        self._direct_this_turn = None

    async def run(self, started: asyncio.Event | None = None) -> None:
        """The writer loop; returns after `close()` once every queued event is committed."""
        self._running = True
        if started is not None:
            started.set()
        try:
            while True:
                first = await self._queue.get()
                if first is None:
                    break
                batch = [first]
                stop = False
                while len(batch) < self._max_batch and not self._queue.empty():
                    item = self._queue.get_nowait()
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                async with self._group:
                    await self._commit_batch(batch)
                if stop:
                    break
        finally:
            self._running = False
            # A lone event committing in its caller finishes before this returns; anything
            # still queued (cancelled mid-way) is committed, never dropped.
            async with self._group:
                leftover: list[_Pending] = []
                while not self._queue.empty():
                    item = self._queue.get_nowait()
                    if item is not None:
                        leftover.append(item)
                if leftover:
                    await self._commit_batch(leftover)

    async def close(self) -> None:
        """Stop taking events and let the writer flush what it has."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    async def _commit_batch(self, batch: list[_Pending]) -> None:
        events = [event for event, _ in batch]
        try:
            await self._commit(events)
        except Exception as exc:
            log.exception("could not record %d event(s)", len(events))
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for _, done in batch:
            if not done.done():
                done.set_result(None)

    async def _commit(self, events: Sequence[EventRecord]) -> None:
        tries = 0

        async def once() -> None:
            nonlocal tries
            tries += 1
            if tries > 1 and await self._committed_before(events):
                return
            rows = [e.as_row() for e in events]
            if not self._listeners:
                await self._db.write(
                    lambda connection: self._write(connection, rows, events),
                    inline=len(events) <= INLINE_GROUP,
                    one_statement=True,
                )
                return
            async with self._db.transaction() as session:
                await session.execute(insert(Event), rows)
                for sync_listener in self._sync_listeners:
                    await session.run_sync(_on_connection(sync_listener, events))
                for listener in self._listeners:
                    await listener(session, events)

        await retry_while_unreachable(once, what="recording events", give_up_after=self._retry_for)
        for hook in self._commit_hooks:
            try:
                hook(events)
            except Exception:
                log.exception("event commit hook failed")

    def _write(
        self, connection: Connection, rows: list[dict[str, object]], events: Sequence[EventRecord]
    ) -> None:
        event_store.insert(connection, rows)
        for listener in self._sync_listeners:
            listener(connection, events)

    async def _committed_before(self, events: Sequence[EventRecord]) -> bool:
        """Whether an earlier try committed this group (one transaction: all of it or none)."""
        async with self._db.session() as session:
            found = await session.scalar(
                select(func.count()).select_from(Event).where(Event.id.in_([e.id for e in events]))
            )
        return bool(found)


def _on_connection(
    listener: SyncEventListener, events: Sequence[EventRecord]
) -> Callable[[Session], None]:
    """A sync listener as `AsyncSession.run_sync` calls it, on the session's connection."""

    def run(session: Session) -> None:
        listener(session.connection(), events)

    return run
