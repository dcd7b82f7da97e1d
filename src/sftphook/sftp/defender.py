"""Brute-force protection: addresses with too many failed logins are banned for a while.

Pure bookkeeping: every method takes `now`, so the rules are tested without waiting. An
"address" here is the key a client is counted under (`addresses.py` `address_key`): an
IPv4 address, or an IPv6 client's network.
"""

from __future__ import annotations

import collections
import logging

from sftphook.addresses import describe

log = logging.getLogger(__name__)


class Defender:
    def __init__(self, *, threshold: int, window: float, duration: float) -> None:
        self.threshold = threshold
        self.window = window
        self.duration = duration
        self._failures: dict[str, collections.deque[float]] = {}
        self._banned_until: dict[str, float] = {}
        self._bans_bound = 10_000

    def is_banned(self, address: str, now: float) -> bool:
        until = self._banned_until.get(address)
        if until is None:
            return False
        if now >= until:
            del self._banned_until[address]
            return False
        return True

    def ban(self, address: str, until: float, now: float) -> bool:
        """Ban `address` until `until` (another node's ban); True when it was not banned here."""
        self._prune(now)
        was_banned = self.is_banned(address, now)
        if until > self._banned_until.get(address, 0.0):
            self._banned_until[address] = until
        return not was_banned and until > now

    def failed(self, address: str, now: float, *, client: str | None = None) -> bool:
        """Count a failed login; True when this failure got the address banned. `client` is
        the address the failure came from, when `address` is its network (for the log)."""
        self._prune(now)
        failures = self._failures.setdefault(address, collections.deque())
        failures.append(now)
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) >= self.threshold and not self.is_banned(address, now):
            self._banned_until[address] = now + self.duration
            failures.clear()
            log.warning(
                "%s banned for %.0f s after %d failed logins within %.0f s",
                describe(address, client),
                self.duration,
                self.threshold,
                self.window,
            )
            return True
        return False

    def _prune(self, now: float) -> None:
        # Bounded memory under a scan from many addresses: an ended ban is otherwise forgotten
        # only when its address comes back.
        if len(self._banned_until) > self._bans_bound:
            for address in [a for a, until in self._banned_until.items() if until <= now]:
                del self._banned_until[address]
            # Swept again once it doubles: a sweep that finds every ban running is not redone
            # at each failure, or at each ban that `SharedBans.sync` applies.
            self._bans_bound = max(10_000, 2 * len(self._banned_until))
        if len(self._failures) > 10_000:
            for address in [
                a for a, f in self._failures.items() if not f or f[-1] <= now - self.window
            ]:
                del self._failures[address]
