"""The fan-out: inside the transaction that records events, one delivery per matching webhook."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from sftphook.events.model import EventRecord
from sftphook.store import deliveries as delivery_store
from sftphook.store import webhooks as webhook_store
from sftphook.store.database import PlainInsert
from sftphook.store.ids import ordered_id
from sftphook.store.models import Delivery, now_ms
from sftphook.webhooks import filters

# The keys of `delivery_row`.
INSERT_DELIVERIES = PlainInsert(cast(Table, Delivery.__table__), delivery_store.NEW_COLUMNS)


class SequenceClock:
    """Increasing numbers that follow the wall clock (microseconds), for delivery order."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns() // 1000)
            return self._last


SEQUENCE = SequenceClock()


def delivery_row(
    *,
    organization_id: str,
    webhook_id: str,
    topic: str,
    kind: str,
    status: str = "pending",
    event_id: str | None = None,
    payload: bytes | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    at = now if now is not None else now_ms()
    return {
        "id": ordered_id(),
        "organization_id": organization_id,
        "webhook_id": webhook_id,
        "event_id": event_id,
        "topic": topic,
        "kind": kind,
        "status": status,
        "payload": payload,
        "attempt_count": 0,
        "next_attempt_at": at,
        "sequence": SEQUENCE.next(),
        "created_at": at,
        "updated_at": at,
    }


def fan_out_sync(connection: Connection, events: Sequence[EventRecord]) -> int:
    """The recorder listener, inside the events' `Database.write` transaction: one delivery per
    matching webhook; events of a paused webhook are kept as `held` deliveries. Returns how many
    deliveries were created."""
    if not events:
        return 0
    organizations = {e.organization_id for e in events}
    candidates = webhook_store.fan_out_candidates(connection, organizations)
    if not candidates:
        return 0
    prepared = [(w, filters.stored_rules(w.filter), frozenset(w.topics)) for w in candidates]
    now = now_ms()
    rows: list[dict[str, Any]] = []
    for event in events:
        topic = str(event.topic)
        for webhook, rules, topics in prepared:
            if webhook.organization_id != event.organization_id or topic not in topics:
                continue
            if not filters.matches(rules, event):
                continue
            rows.append(
                delivery_row(
                    organization_id=event.organization_id,
                    webhook_id=webhook.id,
                    topic=topic,
                    kind="event",
                    status="held" if webhook.state == "paused" else "pending",
                    event_id=event.id,
                    now=now,
                )
            )
    if rows:
        INSERT_DELIVERIES.execute(connection, rows)
        delivery_store.announce_sync(connection)
    return len(rows)


class FanOut:
    """Wires the fan-out to the recorder: deliveries are created in the events' transaction, and
    the workers are woken after the commit only when there is something to send (an upload to
    an organization without webhooks must not cost a claim)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._created = False

    def listener(self, connection: Connection, events: Sequence[EventRecord]) -> None:
        # Runs on the store's writer; the flag is read on the event loop after the commit.
        if fan_out_sync(connection, events):
            self._created = True

    def committed(self, events: Sequence[EventRecord]) -> None:
        # The recorder commits one group at a time, so the flag belongs to this commit (or to
        # one that rolled back, which costs no more than one spare wake).
        if self._created:
            self._created = False
            self._wake()
