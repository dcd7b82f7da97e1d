"""The audit log: who did what, when; written in the transaction of the action it records.

Management actions (a webhook created, a user removed, a token revoked) are recorded by the
service that performs them, with `AuditLog.record` on the service's own session, so an action
and its line commit together or not at all. Failed logins and bans happen outside any
transaction and can come by the thousand: `SecurityRecorder` buffers them and writes one line per
(organization, address, minute) with a count, so password spraying cannot become a write storm.

Details never carry a secret: keys that name one are dropped before anything is written.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from sftphook import cursors
from sftphook.epoch import check_order
from sftphook.errors import InvalidInput
from sftphook.store import audit as audit_store
from sftphook.store.database import Database
from sftphook.store.ids import ordered_id
from sftphook.store.models import AuditEntry, now_ms

log = logging.getLogger(__name__)

MAX_PAGE = 500
# Substrings of detail keys that are never written (a careless caller cannot leak a value).
_SECRET_KEYS = ("secret", "password", "token", "authorization", "hash", "key")


@dataclasses.dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an API token (by its name), a dashboard admin, the command line, the system."""

    type: str
    id: str

    @classmethod
    def token(cls, name: str) -> Actor:
        return cls("token", name)

    @classmethod
    def admin(cls, username: str) -> Actor:
        return cls("admin", username)


CLI = Actor("cli", "cli")
SYSTEM = Actor("system", "system")


def clean_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """The details without any key that could hold a secret (checked at every depth)."""
    if not details:
        return {}
    cleaned: dict[str, Any] = {}
    for key, value in details.items():
        if any(word in key.lower() for word in _SECRET_KEYS):
            continue
        cleaned[key] = clean_details(value) if isinstance(value, dict) else value
    return cleaned


# Endpoint types whose URL path is the credential (a Slack or Teams incoming webhook: whoever
# knows it can post to the channel).
SECRET_PATH_TYPES = ("slack", "teams")


def safe_url(url: str, kind: str = "webhook") -> str:
    """A URL as the audit log and notices show it: no user info, query or fragment (where
    receivers sometimes put a token), and for an endpoint of `kind` slack or teams no path
    either (`https://hooks.slack.com/…`)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        if kind in SECRET_PATH_TYPES:
            return urlunsplit((parts.scheme, host, "/…", "", ""))
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    except ValueError:
        return "(unreadable URL)"


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run `callback` once this session's transaction commits (never on a rollback)."""

    def fire(_session: Any) -> None:
        try:
            callback()
        except Exception:
            log.exception("after-commit callback failed")

    event.listen(session.sync_session, "after_commit", fire, once=True)


def entry_row(
    organization_id: str | None,
    actor_type: str,
    actor_id: str,
    action: str,
    target_type: str,
    target_id: str,
    details: dict[str, Any] | None = None,
    *,
    created_at: int | None = None,
) -> dict[str, Any]:
    return {
        "id": ordered_id(),
        "organization_id": organization_id,
        "created_at": created_at if created_at is not None else now_ms(),
        "actor_type": actor_type[:16],
        "actor_id": actor_id[:128],
        "action": action[:64],
        "target_type": target_type[:32],
        "target_id": target_id[:255],
        "details": clean_details(details),
    }


class AuditLog:
    """Records lines in the caller's transaction and reads them back, a page at a time."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    async def record(
        session: AsyncSession,
        organization_id: str | None,
        actor_type: str,
        actor_id: str,
        action: str,
        target_type: str,
        target_id: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Add a line inside the caller's transaction (it commits with the action)."""
        row = entry_row(
            organization_id, actor_type, actor_id, action, target_type, target_id, details
        )
        await audit_store.add_many(session, [row])

    @staticmethod
    async def record_by(
        session: AsyncSession,
        organization_id: str | None,
        actor: Actor,
        action: str,
        target_type: str,
        target_id: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        await AuditLog.record(
            session, organization_id, actor.type, actor.id, action, target_type, target_id, details
        )

    async def list(
        self,
        organization_id: Any,
        *,
        actions: Sequence[str] = (),
        target_type: str | None = None,
        target_id: str | None = None,
        since: int | None = None,
        until: int | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[AuditEntry], str | None]:
        """Newest first, one page, and the cursor of the next page (None on the last).
        `organization_id` may be `audit_store.EVERY_ORGANIZATION` (the operator's view)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        check_order(since, until)
        before = cursors.decode(cursor) if cursor else None
        async with self._db.session() as s:
            rows = await audit_store.list_for(
                s,
                organization_id,
                actions=actions,
                target_type=target_type,
                target_id=target_id,
                since=since,
                until=until,
                before=before,
                limit=limit + 1,
            )
        page, more = rows[:limit], len(rows) > limit
        next_cursor = cursors.encode(page[-1].created_at, page[-1].id) if more and page else None
        return page, next_cursor


@dataclasses.dataclass(slots=True)
class _Bucket:
    """The failed logins of one (organization, action, address, minute), as one line."""

    id: str
    first_at: int
    last_at: int
    count: int = 0
    usernames: list[str] = dataclasses.field(default_factory=list)
    methods: list[str] = dataclasses.field(default_factory=list)
    written: bool = False
    dirty: bool = True


_BucketKey = tuple[str | None, str, str, int]


class SecurityRecorder:
    """Failed logins and bans, buffered in memory and written in one transaction per interval.

    A failed login adds to the line of its (organization, action, address, minute): the first
    flush inserts the line, later ones update its count. At most `max_buckets` lines are open;
    beyond that, failures are counted under the address `*`. Bans are written at the next
    flush, which they bring forward.
    """

    def __init__(
        self,
        db: Database,
        *,
        interval: float = 5.0,
        max_buckets: int = 1000,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._db = db
        self._interval = interval
        self._max_buckets = max_buckets
        self._clock = clock
        self._buckets: dict[_BucketKey, _Bucket] = {}
        self._pending: list[dict[str, Any]] = []
        # The organizations whose users each address tried lately (a ban is shown to them).
        self._targets: collections.OrderedDict[str, set[str | None]] = collections.OrderedDict()
        self._wake = asyncio.Event()
        self._stopping = False
        self._lock = asyncio.Lock()

    def login_failed(
        self,
        organization_ids: Iterable[str | None],
        *,
        source: str,
        address: str,
        username: str,
        method: str = "password",
        network: str | None = None,
    ) -> None:
        """Count one failed login (`source`: sftp or dashboard). Never blocks. `network`: what
        a ban of `address` would apply to, when more than the address (an IPv6 client's)."""
        now = self._clock()
        minute = now // 60_000
        action = f"{source}.login_failed"
        orgs = list(dict.fromkeys(organization_ids)) or [None]
        banned = network or address
        targets = self._targets.setdefault(banned, set())
        targets.update(orgs)
        self._targets.move_to_end(banned)
        while len(self._targets) > 10_000:
            self._targets.popitem(last=False)
        for org in orgs:
            key: _BucketKey = (org, action, address, minute)
            bucket = self._buckets.get(key)
            if bucket is None and len(self._buckets) >= self._max_buckets:
                self._forget(minute)
            if bucket is None and len(self._buckets) >= self._max_buckets:
                key = (org, action, "*", minute)
                bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(id=ordered_id(), first_at=now, last_at=now)
            bucket.count += 1
            bucket.last_at = now
            bucket.dirty = True
            name = username[:64]
            if name not in bucket.usernames and len(bucket.usernames) < 10:
                bucket.usernames.append(name)
            if method not in bucket.methods:
                bucket.methods.append(method)

    def address_banned(
        self,
        *,
        source: str,
        address: str,
        duration: float,
        failures: int,
        window: float,
        network: str | None = None,
    ) -> None:
        """Record a ban; it is shown to each organization whose users the banned clients tried. With
        a `network` other than `address` (an IPv6 client's), the network is what is banned (the
        line's target), and `address` the client whose failure got it banned."""
        banned = network or address
        orgs = self._targets.pop(banned, None) or {None}
        now = self._clock()
        target_type = "address" if banned == address else "network"
        details: dict[str, Any] = {
            "address": address,
            **({"network": banned} if target_type == "network" else {}),
            "duration_seconds": duration,
            "failed_logins": failures,
            "window_seconds": window,
            "banned_until": now + round(duration * 1000),
        }
        for org in sorted(orgs, key=lambda o: o or ""):
            self._pending.append(
                entry_row(
                    org,
                    "address",
                    address,
                    f"{source}.address_banned",
                    target_type,
                    banned,
                    details,
                    created_at=now,
                )
            )
        self._wake.set()

    async def run(self) -> None:
        """Flush every `interval` seconds (sooner after a ban) until `close()`."""
        while not self._stopping:
            try:
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("could not write failed logins to the audit log")

    async def close(self) -> None:
        self._stopping = True
        self._wake.set()
        await self.flush()

    async def flush(self) -> None:
        """Write what is buffered now; lines of minutes that are over are then forgotten."""
        async with self._lock:
            now_minute = self._clock() // 60_000
            pending = len(self._pending)
            inserts = self._pending[:pending]
            updates: list[dict[str, Any]] = []
            flushed: list[_Bucket] = []
            for (org, action, address, _minute), bucket in self._buckets.items():
                if not bucket.dirty:
                    continue
                details = {
                    "address": address,
                    "count": bucket.count,
                    "usernames": list(bucket.usernames),
                    "methods": list(bucket.methods),
                    "first_at": bucket.first_at,
                    "last_at": bucket.last_at,
                }
                if bucket.written:
                    updates.append({"id": bucket.id, "details": details})
                else:
                    row = entry_row(
                        org,
                        "address",
                        address,
                        action,
                        "address",
                        address,
                        details,
                        created_at=bucket.first_at,
                    )
                    row["id"] = bucket.id
                    inserts.append(row)
                # Failures that arrive while this flush writes mark the bucket again.
                bucket.dirty = False
                flushed.append(bucket)
            if not inserts and not updates:
                self._forget(now_minute)
                return
            try:
                async with self._db.transaction() as s:
                    await audit_store.add_many(s, inserts)
                    await audit_store.update_details(s, updates)
            except BaseException:
                for bucket in flushed:
                    bucket.dirty = True
                raise
            del self._pending[:pending]
            for bucket in flushed:
                bucket.written = True
            self._forget(now_minute)

    def _forget(self, now_minute: int) -> None:
        for key in [k for k, b in self._buckets.items() if k[3] < now_minute and not b.dirty]:
            del self._buckets[key]
