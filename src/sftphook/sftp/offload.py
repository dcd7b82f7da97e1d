"""Where a storage call runs: on the event loop while calls of its kind are quick, in an I/O
thread while they are slow.

On local disk, creating a file, a `stat` or a `pwrite` of a few KiB usually takes tens of
microseconds, less than handing the call to a thread and back. But the same `open(O_CREAT)` took
1-6 ms here while other processes kept ext4's journal busy, and on the event loop that time is
taken from every other session. So each kind of call keeps a moving average of what it has cost
lately (measured around the call itself, wherever it ran): under `budget` it runs inline, over
it in a thread, until the average, still measured in the thread, falls back under. A network
store (`blocking`) always uses the threads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

_T = TypeVar("_T")

# About one hand-off to a thread and back on an idle machine.
DEFAULT_BUDGET = 0.0002
# Weight of the newest sample: a 100 ms stall moves a kind to the threads at once, and about
# twenty quick calls bring it back.
WEIGHT = 0.2


class Offload:
    def __init__(
        self, executor: Executor, *, blocking: bool = False, budget: float = DEFAULT_BUDGET
    ) -> None:
        self.executor = executor
        self.blocking = blocking
        self._budget = budget
        self._cost: dict[str, float] = {}

    def inline(self, kind: str) -> bool:
        """Whether a call of `kind` would run on the loop now."""
        return not self.blocking and self._cost.get(kind, 0.0) <= self._budget

    def cost(self, kind: str) -> float:
        """The moving average of a `kind` call, in seconds (0 before the first)."""
        return self._cost.get(kind, 0.0)

    def _note(self, kind: str, seconds: float) -> None:
        # Called from the loop and from the I/O threads: a lost update of a float under the GIL
        # only skips one sample.
        last = self._cost.get(kind)
        self._cost[kind] = seconds if last is None else last + WEIGHT * (seconds - last)

    async def run(self, kind: str, call: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        if self.blocking:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, lambda: call(*args, **kwargs))
        if self.inline(kind):
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self._note(kind, time.perf_counter() - started)

        def timed() -> _T:
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self._note(kind, time.perf_counter() - started)

        return await asyncio.get_running_loop().run_in_executor(self.executor, timed)
