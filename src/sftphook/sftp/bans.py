"""Failed logins and bans shared by the nodes of a cluster, through the store.

The node's own `Defender` still decides at once (before the key exchange, and while the
database is away); every failure is also counted in the store (`store/bans.py`), and each node
reads the bans there every few seconds. So an address gets `ban_threshold` tries in all, however
many nodes the load balancer spreads it over, and a ban made on one node holds on every node.
Addresses are counted and stored under their key (`addresses.py`): an IPv6 client's is its
network.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable

from sftphook.addresses import describe
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
        """Take the bans other nodes made."""
        bans = await self._db.read(functools.partial(ban_store.active_bans, now=now_ms()))
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
