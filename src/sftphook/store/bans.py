"""Failed logins and bans shared by every node: functions for `Database.write`.

Each node keeps its own count too (`sftp/defender.py`), which answers at once and works while
the database is away; this table adds the count of the whole cluster, so an address gets
`threshold` tries in all, not `threshold` per node. An address here is the key the SFTP front
counts a client under: an IPv4 address, or an IPv6 client's network (`2001:db8:1:2::/64`).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from sftphook.store.models import LoginFailure

_TABLE = cast(Table, LoginFailure.__table__)


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
        banned_until = now + duration_ms
        values.update(failures=0, banned_until=banned_until)
    connection.execute(update(_TABLE).where(_TABLE.c.address == address).values(values))
    return banned_until


def active_bans(connection: Connection, *, now: int) -> list[tuple[str, int]]:
    """(address, ban end in epoch ms) of every address banned now."""
    rows = connection.execute(
        select(_TABLE.c.address, _TABLE.c.banned_until).where(_TABLE.c.banned_until > now)
    )
    return [(row.address, row.banned_until) for row in rows]


def prune(connection: Connection, *, now: int, window_ms: int) -> int:
    """Forget addresses whose ban is over and whose failures are out of the window."""
    result = connection.execute(
        delete(_TABLE).where(
            or_(_TABLE.c.banned_until.is_(None), _TABLE.c.banned_until <= now),
            _TABLE.c.window_started_at <= now - window_ms,
        )
    )
    return int(result.rowcount or 0)
