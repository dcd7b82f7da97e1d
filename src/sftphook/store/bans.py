"""Failed logins and bans shared by every node: functions for `Database.write`.

Each node keeps its own count too (`sftp/defender.py`), which answers at once and works while
the database is away; this table adds the count of the whole cluster, so an address gets
`threshold` tries in all, not `threshold` per node. An address here is the key the SFTP front
counts a client under: an IPv4 address, or an IPv6 client's network (`2001:db8:1:2::/64`).
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

from sqlalchemy import Table, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from sftphook.store.models import LoginFailure

_TABLE = cast(Table, LoginFailure.__table__)
# How long a lift is kept for the nodes to read (they do every few seconds): the rows of
# addresses whose ban is over are not pruned sooner.
LIFTS_KEPT_MS = 60_000


class Ban(NamedTuple):
    """An address (or IPv6 network), its failed logins in the current count, and when its ban
    ends (epoch ms; None: not banned, only counted)."""

    address: str
    failures: int
    banned_until: int | None


class Lifted(NamedTuple):
    """What `lift` found: when the ban it lifted would have ended (None: there was none), and
    how many failures were counted."""

    banned_until: int | None
    failures: int


def record_failure(
    connection: Connection,
    address: str,
    *,
    now: int,
    threshold: int,
    window_ms: int,
    duration_ms: int,
) -> int | None:
    """Count one failed login of `address`. Returns when its ban ends (epoch ms) if this failure
    got it banned, else None (not yet, or banned already)."""
    fresh = {
        "address": address,
        "failures": 0,
        "window_started_at": now,
        "banned_until": None,
        "updated_at": now,
    }
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    connection.execute(dialect.insert(_TABLE).values(fresh).on_conflict_do_nothing())
    # The row is locked until the commit on PostgreSQL; SQLite has one writer at a time.
    row = connection.execute(
        select(_TABLE).where(_TABLE.c.address == address).with_for_update()
    ).one()
    if row.banned_until is not None and row.banned_until > now:
        return None
    if now - row.window_started_at >= window_ms or row.banned_until is not None:
        failures, started = 1, now  # a new window (or the first failure after a ban)
    else:
        failures, started = row.failures + 1, row.window_started_at
    values: dict[str, Any] = {
        "failures": failures,
        "window_started_at": started,
        "banned_until": None,
        "updated_at": now,
    }
    banned_until = None
    if failures >= threshold:
        # The count stays, for `sftphook bans list`; the first failure after the ban starts
        # a new one.
        banned_until = now + duration_ms
        values.update(banned_until=banned_until)
    connection.execute(update(_TABLE).where(_TABLE.c.address == address).values(values))
    return banned_until


def active_bans(connection: Connection, *, now: int) -> list[tuple[str, int]]:
    """(address, ban end in epoch ms) of every address banned now."""
    rows = connection.execute(
        select(_TABLE.c.address, _TABLE.c.banned_until).where(_TABLE.c.banned_until > now)
    )
    return [(row.address, row.banned_until) for row in rows]


def bans(connection: Connection, *, now: int, window_ms: int | None = None) -> list[Ban]:
    """Every address banned now, by address; with `window_ms`, also those whose failures are
    being counted (not banned yet)."""
    banned = _TABLE.c.banned_until > now
    wanted = banned
    if window_ms is not None:
        counting = (
            _TABLE.c.banned_until.is_(None)
            & (_TABLE.c.failures > 0)
            & (_TABLE.c.window_started_at > now - window_ms)
        )
        wanted = or_(banned, counting)
    rows = connection.execute(
        select(_TABLE.c.address, _TABLE.c.failures, _TABLE.c.banned_until)
        .where(wanted)
        .order_by(_TABLE.c.address)
    )
    return [
        Ban(
            row.address,
            row.failures,
            row.banned_until if row.banned_until and row.banned_until > now else None,
        )
        for row in rows
    ]


def lift(connection: Connection, address: str, *, now: int, window_ms: int) -> Lifted | None:
    """End the ban of `address` and forget its failures; None when nothing was stored for it.
    The row stays, with `lifted_at`, for every node to drop the ban it holds in memory."""
    row = connection.execute(
        select(_TABLE).where(_TABLE.c.address == address).with_for_update()
    ).one_or_none()
    if row is None:
        return None
    banned = row.banned_until if row.banned_until is not None and row.banned_until > now else None
    counting = row.banned_until is None and row.window_started_at > now - window_ms
    counted = row.failures if banned is not None or counting else 0
    connection.execute(
        update(_TABLE)
        .where(_TABLE.c.address == address)
        .values(
            failures=0,
            window_started_at=now,
            banned_until=None,
            updated_at=now,
            lifted_at=now,
        )
    )
    return Lifted(banned, counted)


def lifts(connection: Connection, *, since: int) -> list[tuple[str, int]]:
    """(address, when) of the bans lifted after `since` (epoch ms)."""
    rows = connection.execute(
        select(_TABLE.c.address, _TABLE.c.lifted_at).where(_TABLE.c.lifted_at > since)
    )
    return [(row.address, row.lifted_at) for row in rows]


def prune(connection: Connection, *, now: int, window_ms: int) -> int:
    """Forget addresses whose ban is over, whose failures are out of the window, and whose
    lift (if any) every node has had time to read."""
    result = connection.execute(
        delete(_TABLE).where(
            or_(_TABLE.c.banned_until.is_(None), _TABLE.c.banned_until <= now),
            _TABLE.c.window_started_at <= now - window_ms,
            or_(_TABLE.c.lifted_at.is_(None), _TABLE.c.lifted_at <= now - LIFTS_KEPT_MS),
        )
    )
    return int(result.rowcount or 0)
