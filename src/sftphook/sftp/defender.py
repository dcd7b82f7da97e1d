"""Brute-force protection: addresses with too many failed logins are banned for a while.

Pure bookkeeping: every method takes `now`, so the rules are tested without waiting. An
"address" here is the key a client is counted under (`addresses.py` `address_key`): an
IPv4 address, or an IPv6 client's network.

Expiry is incremental, so that a scan from many addresses costs each failure the same: failure
records are kept in the order of their last failure and bans in a heap by their end, and each
call pops only what has expired from the front. Memory is bounded: past `max_addresses` failure
records (or bans), the oldest record (the ban that ends first) is dropped.
"""

from __future__ import annotations

import collections
import heapq
import logging

from sftphook.addresses import describe

log = logging.getLogger(__name__)

# At most about 60 MB of failure records at the default `ban_threshold` (10), 20 MB of bans.
MAX_ADDRESSES = 100_000


class Defender:
    def __init__(
        self,
        *,
        threshold: int,
        window: float,
        duration: float,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.threshold = threshold
        self.window = window
        self.duration = duration
        self.max_addresses = max_addresses
        # The failures within the window of each address, oldest last failure first.
        self._failures: collections.OrderedDict[str, list[float]] = collections.OrderedDict()
        self._banned_until: dict[str, float] = {}
        # (end, address) of every ban; an entry whose end is no longer the address's (the ban
        # was extended or lifted) is skipped when it comes up.
        self._ends: list[tuple[float, str]] = []

    def is_banned(self, address: str, now: float) -> bool:
        self._expire(now)
        until = self._banned_until.get(address)
        return until is not None and now < until

    def ban(self, address: str, until: float, now: float) -> bool:
        """Ban `address` until `until` (another node's ban); True when it was not banned here."""
        self._expire(now)
        was_banned = self.is_banned(address, now)
        if until > self._banned_until.get(address, 0.0):
            self._set_ban(address, until)
        return not was_banned and until > now

    def lift(self, address: str) -> bool:
        """Forget the ban and the failures of `address`; True when it was banned."""
        self._failures.pop(address, None)
        return self._banned_until.pop(address, None) is not None

    def failed(self, address: str, now: float, *, client: str | None = None) -> bool:
        """Count a failed login; True when this failure got the address banned. `client` is
        the address the failure came from, when `address` is its network (for the log)."""
        self._expire(now)
        failures = self._failures.get(address)
        if failures is None:
            # A list, not a deque: a tenth of the memory for the usual one or two failures.
            failures = self._failures[address] = []
            if len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(address)
        failures.append(now)
        # Only the last `threshold` failures within the window can decide a ban.
        if len(failures) > self.threshold:
            del failures[0]
        expired = 0
        while expired < len(failures) and failures[expired] <= now - self.window:
            expired += 1
        del failures[:expired]
        if len(failures) >= self.threshold and not self.is_banned(address, now):
            self._set_ban(address, now + self.duration)
            del self._failures[address]
            log.warning(
                "%s banned for %.0f s after %d failed logins within %.0f s",
                describe(address, client),
                self.duration,
                self.threshold,
                self.window,
            )
            return True
        return False

    def _set_ban(self, address: str, until: float) -> None:
        self._banned_until[address] = until
        heapq.heappush(self._ends, (until, address))
        while len(self._banned_until) > self.max_addresses:
            end, dropped = heapq.heappop(self._ends)
            if self._banned_until.get(dropped) == end:
                del self._banned_until[dropped]
        if len(self._ends) > 2 * len(self._banned_until) + 1024:
            # Bans extended again and again (each node re-reads the cluster's every few
            # seconds) leave entries behind: rebuilt once they outnumber the bans.
            self._ends = [(end, a) for a, end in self._banned_until.items()]
            heapq.heapify(self._ends)

    def _expire(self, now: float) -> None:
        ends = self._ends
        while ends and ends[0][0] <= now:
            end, address = heapq.heappop(ends)
            if self._banned_until.get(address) == end:
                del self._banned_until[address]
        failures = self._failures
        while failures:
            address, times = next(iter(failures.items()))
            if times and times[-1] > now - self.window:
                break
            del failures[address]
