"""A running sftphook App in a thread of its own, for the bad-input tests whose clients block
(paramiko, hypothesis), plus the figures they watch: open descriptors and open sessions."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from sftphook.app import App
from sftphook.config import Settings
from tests.conftest import serving

T = TypeVar("T")


def open_fds() -> int:
    """Open file descriptors of this process (the server runs in it)."""
    return len(os.listdir("/proc/self/fd"))


class ThreadedServer:
    """`with ThreadedServer(settings, roles) as srv:` runs the roles in a thread's event loop;
    `srv.call(coro)` runs a coroutine there and returns its result."""

    def __init__(self, settings: Settings, roles: frozenset[str]) -> None:
        self._settings = settings
        self._roles = roles
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._cm: Any = None
        self.app: App

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        self._cm = serving(self._settings, self._roles)
        self.app = self.call(self._cm.__aenter__())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self._cm.__aexit__(None, None, None), timeout=90)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
            self._loop.close()

    def alive(self) -> bool:
        """The App's serve task is still running (nothing stopped it)."""

        async def check() -> bool:
            return not any(
                t.done() for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "App.serve"
            )

        return self.call(check(), timeout=10)

    def session_count(self) -> int:
        async def count() -> int:
            return len(self.app.sftp.sessions)

        return self.call(count(), timeout=10)

    def open_transfers(self) -> int:
        """Open files in every session's handle table."""

        async def count() -> int:
            return sum(len(s._open) for s in self.app.sftp.sessions)

        return self.call(count(), timeout=10)

    def settle(self, fds: int, sessions: int, limit: float = 5.0) -> tuple[int, int]:
        """Wait until descriptors and sessions are back to the given figures (a closed channel
        is cleaned up asynchronously); returns the last figures seen."""
        deadline = time.monotonic() + limit
        while True:
            now = (open_fds(), self.session_count())
            if now == (fds, sessions) or time.monotonic() > deadline:
                return now
            time.sleep(0.02)
