"""Per-webhook limits on the engine: requests in flight at once, and requests started per second.

Pure bookkeeping, with the time (`now`, monotonic seconds) passed in. The engine offers every
claimed job; the answer is start it now, hold it (its webhook is at a limit) or give it back
(enough of that webhook's jobs are held already: its lease is returned, and the webhook is left
out of claims until it has room again, so its backlog never crowds out other webhooks' work).
Held jobs start in claim order as slots free up and tokens refill; one held too long (its lease
would run out) is given back instead of started.

The rate limit is a token bucket holding one token: starts are at least 1/rate seconds apart,
so no one-second window sees more than rate + 1 of them.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import math
from typing import Generic, TypeVar

T = TypeVar("T")

# Held jobs per webhook: enough to keep its slots busy, few enough to start within seconds.
HOLD_SECONDS = 2.0


class TokenBucket:
    """`rate` tokens a second, at most `capacity` kept; a start takes one token."""

    def __init__(self, rate: float, now: float, capacity: float = 1.0) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("a token bucket needs a positive rate and room for one token")
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def ready_at(self, now: float) -> float:
        """When the next token is there (`now` when one is already)."""
        self._refill(now)
        if self._tokens >= 1:
            return now
        return now + (1 - self._tokens) / self.rate

    def full(self, now: float) -> bool:
        self._refill(now)
        return self._tokens >= self.capacity


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    max_concurrency: int | None = None
    rate_limit: float | None = None

    @property
    def unlimited(self) -> bool:
        return self.max_concurrency is None and self.rate_limit is None

    @property
    def hold(self) -> int:
        """How many claimed jobs of one webhook may wait for a slot or a token."""
        bounds = []
        if self.max_concurrency is not None:
            bounds.append(2 * self.max_concurrency)
        if self.rate_limit is not None:
            bounds.append(math.ceil(self.rate_limit * HOLD_SECONDS))
        return max(1, min(bounds)) if bounds else 0


class Admission(enum.Enum):
    START = "start"
    HOLD = "hold"
    GIVE_BACK = "give back"


class _Gate(Generic[T]):
    def __init__(self, limits: Limits, now: float) -> None:
        self.limits = limits
        # The started jobs not finished yet, by identity: a job counts only if it started here,
        # whatever the webhook's limits became since.
        self.running: set[int] = set()
        self.bucket: TokenBucket | None = None
        self.held: collections.deque[tuple[float, T]] = collections.deque()
        self.configure(limits, now)

    def configure(self, limits: Limits, now: float) -> None:
        self.limits = limits
        rate = limits.rate_limit
        if rate is None:
            self.bucket = None
        elif self.bucket is None or self.bucket.rate != rate:
            self.bucket = TokenBucket(rate, now)

    def has_slot(self) -> bool:
        limit = self.limits.max_concurrency
        return limit is None or len(self.running) < limit

    def try_start(self, job: T, now: float) -> bool:
        if not self.has_slot():
            return False
        if self.bucket is not None and not self.bucket.take(now):
            return False
        self.running.add(id(job))
        return True

    def idle(self, now: float) -> bool:
        return not self.running and not self.held and (self.bucket is None or self.bucket.full(now))


class Throttle(Generic[T]):
    """Which of the claimed jobs of each webhook may start now."""

    def __init__(self, *, max_hold_seconds: float) -> None:
        # A held job's lease must not run out before it starts: past this age it goes back.
        self._max_hold = max_hold_seconds
        self._gates: dict[str, _Gate[T]] = {}

    def offer(self, key: str, limits: Limits, job: T, now: float) -> Admission:
        gate = self._gates.get(key)
        if gate is None:
            if limits.unlimited:
                return Admission.START
            gate = self._gates[key] = _Gate(limits, now)
        else:
            gate.configure(limits, now)
        if not gate.held and gate.try_start(job, now):
            return Admission.START
        if len(gate.held) < max(1, limits.hold):
            gate.held.append((now, job))
            return Admission.HOLD
        return Admission.GIVE_BACK

    def finished(self, key: str, job: T) -> bool:
        """A started job of `key` got its answer (or gave up): its slot is free. False when
        the job was not counted here (its webhook had no limits when it started)."""
        gate = self._gates.get(key)
        if gate is None or id(job) not in gate.running:
            return False
        gate.running.discard(id(job))
        return True

    def ready(self, now: float) -> tuple[list[T], list[T]]:
        """Held jobs that may start now, and held jobs to give back (held too long)."""
        start: list[T] = []
        give_back: list[T] = []
        for key, gate in list(self._gates.items()):
            while gate.held and now - gate.held[0][0] > self._max_hold:
                give_back.append(gate.held.popleft()[1])
            while gate.held and gate.try_start(gate.held[0][1], now):
                start.append(gate.held.popleft()[1])
            if gate.idle(now):
                del self._gates[key]
        return start, give_back

    def busy(self) -> set[str]:
        """Webhooks to leave out of claims: they hold jobs already, or every slot is taken."""
        return {key for key, gate in self._gates.items() if gate.held or not gate.has_slot()}

    def next_ready_at(self, now: float) -> float | None:
        """The earliest time a held job can start for want of a token (None: nothing waits for
        one; a held job waiting for a slot starts when `finished` frees it)."""
        times = [
            gate.bucket.ready_at(now)
            for gate in self._gates.values()
            if gate.held and gate.bucket is not None and gate.has_slot()
        ]
        return min(times) if times else None

    def drain(self) -> list[T]:
        """Every held job (shutting down: their leases go back)."""
        jobs = [job for gate in self._gates.values() for _, job in gate.held]
        for gate in self._gates.values():
            gate.held.clear()
        return jobs

    @property
    def held(self) -> int:
        return sum(len(g.held) for g in self._gates.values())
