"""Failed logins and bans shared by the nodes of a cluster, through the store.

The node's own `Defender` still decides at once (before the key exchange, and while the
database is away); every failure is also counted in the store (`store/bans.py`), and each node
reads the bans there every few seconds. So an address gets `ban_threshold` tries in all, however
many nodes the load balancer spreads it over, and a ban made on one node holds on every node.
A ban an operator lifts (`sftphook bans lift`, `lift_ban` here) is dropped by every node at its
next reading. Addresses are counted and stored under their key (`addresses.py`): an IPv6
client's is its network.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ipaddress
import logging
import time
from collections.abc import Callable

from sqlalchemy.engine import Connection

from sftphook.addresses import address_key, describe
from sftphook.audit import Actor, AuditLog
from sftphook.errors import InvalidInput
from sftphook.sftp.defender import Defender
from sftphook.store import bans as ban_store
from sftphook.store.database import Database
from sftphook.store.models import now_ms

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
PRUNE_SECONDS = 300.0


class SharedBans:
    def __init__(
        self,
        db: Database,
        defender: Defender,
        *,
        on_banned: Callable[[str, str], None],
        poll: float = POLL_SECONDS,
    ) -> None:
        self._db = db
        self._defender = defender
        self._on_banned = on_banned
        self._poll = poll
        self._tasks: set[asyncio.Task[None]] = set()
        # The lifts this node has applied (address: when it was lifted), each applied once.
        self._lifted: dict[str, int] = {}

    def failed(self, address: str, client: str) -> None:
        """Count a failed login of `address` (the key of `client`, the address it came from)
        in the store (in the background)."""
        task = asyncio.create_task(self._record(address, client))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, address: str, client: str) -> None:
        d = self._defender
        work = functools.partial(
            ban_store.record_failure,
            address=address,
            now=now_ms(),
            threshold=d.threshold,
            window_ms=round(d.window * 1000),
            duration_ms=round(d.duration * 1000),
        )
        try:
            until = await self._db.write(work)
        except Exception as error:
            log.warning("could not share a failed login of %s: %s", client, error)
            return
        if until is not None and self._apply(address, until):
            log.warning(
                "%s banned for %.0f s after %d failed logins within %.0f s (all nodes)",
                describe(address, client),
                d.duration,
                d.threshold,
                d.window,
            )
            self._on_banned(client, address)

    def _apply(self, address: str, until_ms: int) -> bool:
        now = time.monotonic()
        return self._defender.ban(address, now + (until_ms - now_ms()) / 1000, now)

    async def sync(self) -> None:
        """Drop the bans an operator lifted, then take the bans other nodes made."""
        now = now_ms()

        def read(connection: Connection) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
            since = now - ban_store.LIFTS_KEPT_MS
            return ban_store.lifts(connection, since=since), ban_store.active_bans(
                connection, now=now
            )

        lifts, bans = await self._db.read(read)
        for address, lifted_at in lifts:
            if self._lifted.get(address) == lifted_at:
                continue
            self._lifted[address] = lifted_at
            if self._defender.lift(address):
                log.info("ban of %s lifted", describe(address))
        for address, lifted_at in list(self._lifted.items()):
            if lifted_at <= now - ban_store.LIFTS_KEPT_MS:
                del self._lifted[address]
        # After the lifts: a ban made since a lift is in the store, and comes back here.
        for address, until in bans:
            if self._apply(address, until):
                log.info("%s banned by another node", describe(address))

    async def run(self) -> None:
        """Read the bans every `poll` seconds, and forget old failures now and then."""
        pruned = time.monotonic()
        while True:
            try:
                await self.sync()
                if time.monotonic() - pruned > PRUNE_SECONDS:
                    pruned = time.monotonic()
                    window_ms = round(self._defender.window * 1000)
                    await self._db.write(
                        functools.partial(ban_store.prune, now=now_ms(), window_ms=window_ms)
                    )
            except Exception as error:
                log.warning("could not read the bans of the other nodes: %s", error)
            await asyncio.sleep(self._poll)

    async def close(self, deadline: float = 2.0) -> None:
        """Let the failures being counted land (for up to `deadline` seconds)."""
        tasks = list(self._tasks)
        if not tasks:
            return
        _done, late = await asyncio.wait(tasks, timeout=deadline)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


# The operator's side: what `sftphook bans` calls.


async def list_bans(db: Database, *, window: float | None = None) -> list[ban_store.Ban]:
    """The addresses banned now, from the store (every node's); with `window` (seconds, the
    `sftp.ban_window`), also those whose failed logins are being counted."""
    window_ms = None if window is None else round(window * 1000)
    return await db.read(functools.partial(ban_store.bans, now=now_ms(), window_ms=window_ms))


def ban_key(text: str, ipv6_prefix: int) -> str:
    """The key a ban of `text` is stored under: an address's (`address_key`: an IPv6 address
    gives its network), or a network as `bans list` shows it (`2001:db8:1:2::/64`)."""
    text = text.strip()
    try:
        if "/" not in text:
            ipaddress.ip_address(text)
            return address_key(text, ipv6_prefix)
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidInput(
            f"{text!r} is neither an IP address nor a network: give an address "
            "(203.0.113.7, 2001:db8:1:2::7) or a network as `sftphook bans list` shows it",
            field="address",
        ) from None
    if network.num_addresses == 1:
        return address_key(str(network.network_address), 128)
    return str(network)


@dataclasses.dataclass(frozen=True, slots=True)
class LiftResult:
    key: str  # what was looked up: the address, or the IPv6 network
    banned_until: int | None  # when the lifted ban would have ended; None: there was none
    failures: int  # the failed logins that were counted, now forgotten


async def lift_ban(
    db: Database, text: str, *, ipv6_prefix: int, window: float, actor: Actor
) -> LiftResult:
    """End the ban of an address or network on every node and forget its failed logins; the
    audit log records a lifted ban. Each node drops the ban within `POLL_SECONDS`."""
    key = ban_key(text, ipv6_prefix)
    now = now_ms()
    async with db.transaction() as s:
        lifted = await s.run_sync(
            lambda session: ban_store.lift(
                session.connection(), key, now=now, window_ms=round(window * 1000)
            )
        )
        if lifted is not None and lifted.banned_until is not None:
            details: dict[str, object] = {"banned_until": lifted.banned_until}
            if text.strip() != key:
                details["address"] = text.strip()
            await AuditLog.record_by(
                s,
                None,
                actor,
                "sftp.ban_lifted",
                "network" if "/" in key else "address",
                key,
                details,
            )
    if lifted is None:
        return LiftResult(key, None, 0)
    return LiftResult(key, lifted.banned_until, lifted.failures)
