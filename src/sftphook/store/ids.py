"""Row ids: random (version 4) and time-ordered (version 7) UUIDs, RFC 9562.

The append-only tables (events, deliveries, attempts, the audit log) take version-7 ids: 48 bits
of milliseconds since the epoch, then 74 random bits. A new row's id then lands at the end of the
primary key's index, not on a random page of it: inserting 40,000 attempt rows in batches of 256
cost about 35 % less SQLite time that way (docs/performance.md). The other tables keep random
ids from `uuid.uuid4` (`models.new_id`): theirs would tell when a user or a token was made, and
they are small and rarely written.

These ids (and lease tokens) are made on every event and delivery attempt. They must be unique
and hard to guess, not secret (nothing is reached by knowing one: every lookup is scoped to an
organization), so they come from a generator seeded once from `os.urandom` rather than from
`uuid4` (a system call per id, and the GIL changes hands at each). A forked child draws a new
seed.
"""

from __future__ import annotations

import os
import random
import time

_V4_MASK = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_V4_MARKS = (0x4000 << 64) | (0x8000 << 48)
_VARIANT = 0x8000 << 48  # the 10 variant bits, as in every RFC 9562 UUID


class Ids:
    def __init__(self) -> None:
        self._rng = random.Random(os.urandom(32))

    def reseed(self) -> None:
        self._rng.seed(os.urandom(32))

    def uuid4(self) -> str:
        return _text(self._rng.getrandbits(128) & _V4_MASK | _V4_MARKS)

    def uuid7(self) -> str:
        """Milliseconds (48 bits), version 7, 12 random bits, the variant, 62 random bits."""
        bits = self._rng.getrandbits(74)
        value = (
            (time.time_ns() // 1_000_000) << 80
            | 0x7 << 76
            | (bits >> 62) << 64
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
