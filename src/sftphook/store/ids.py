"""Row ids: random (version 4) and time-ordered (version 7) UUIDs, RFC 9562.

The append-only tables (events, deliveries, attempts, the audit log) take version-7 ids: 48 bits
of milliseconds since the epoch, a 12-bit counter, then 62 random bits. A new row's id then
lands at the end of the primary key's index, not on a random page of it: inserting 40,000
attempt rows in batches of 256 cost about 35 % less SQLite time that way (docs/performance.md).
The counter (RFC 9562's "fixed bit-length dedicated counter") starts at a random value below
2,048 in each millisecond and counts up within it, so the ids one process makes sort in the
order they were made: events recorded in the same millisecond are listed newest first in that
order, not at random (past 4,096 ids in one millisecond, the next ones take the following
millisecond). The other tables keep random ids from `uuid.uuid4` (`models.new_id`): theirs
would tell when a user or a token was made, and they are small and rarely written.

These ids (and lease tokens) are made on every event and delivery attempt. They must be unique
and hard to guess, not secret (nothing is reached by knowing one: every lookup is scoped to an
organization), so they come from a generator seeded once from `os.urandom` rather than from
`uuid4` (a system call per id, and the GIL changes hands at each). A forked child draws a new
seed.
"""

from __future__ import annotations

import os
import random
import threading
import time

_V4_MASK = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_V4_MARKS = (0x4000 << 64) | (0x8000 << 48)
_VARIANT = 0x8000 << 48  # the 10 variant bits, as in every RFC 9562 UUID


class Ids:
    def __init__(self) -> None:
        self._rng = random.Random(os.urandom(32))
        # The millisecond and counter of the last version-7 id (ids are made on several threads).
        self._lock = threading.Lock()
        self._ms = 0
        self._counter = 0

    def reseed(self) -> None:
        self._rng.seed(os.urandom(32))
        # In a forked child another thread of the parent may have held the lock: a new one.
        self._lock = threading.Lock()

    def uuid4(self) -> str:
        return _text(self._rng.getrandbits(128) & _V4_MASK | _V4_MARKS)

    def uuid7(self) -> str:
        """Milliseconds (48 bits), version 7, a 12-bit counter, the variant, 62 random bits."""
        now = time.time_ns() // 1_000_000
        with self._lock:
            bits = self._rng.getrandbits(73)
            if now > self._ms:
                self._ms = now
                self._counter = bits >> 62  # 11 random bits: room to count up
            else:
                self._counter += 1
                if self._counter > 0xFFF:
                    self._ms += 1
                    self._counter = 0
            value = (
                self._ms << 80
                | 0x7 << 76
                | self._counter << 64
                | _VARIANT
                | (bits & ((1 << 62) - 1))
            )
        return _text(value)


def _text(value: int) -> str:
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


IDS = Ids()
os.register_at_fork(after_in_child=IDS.reseed)


def ordered_id() -> str:
    """A time-ordered id for a row of an append-only table."""
    return IDS.uuid7()
