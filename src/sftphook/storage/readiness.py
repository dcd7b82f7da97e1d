"""The storage check of `/readyz`: `StorageBackend.check()` off the event loop, with a deadline.

A hung NFS mount or an S3 endpoint that accepts connections and never answers would hold the
check, and the probe, for as long as the kernel or the socket lets it: the probe gets "timed
out" at the deadline instead, and later probes wait for that same check rather than each start
a thread that would hang too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from sftphook.storage.base import StorageBackend

log = logging.getLogger(__name__)

# How long `/readyz` waits for the file store: under a balancer's usual probe timeout.
CHECK_DEADLINE = 2.0


class StorageReadiness:
    """The readiness of one opened backend, for the probes of one event loop."""

    def __init__(self, backend: StorageBackend, deadline: float = CHECK_DEADLINE) -> None:
        self._backend = backend
        self._deadline = deadline
        self._running: asyncio.Future[str] | None = None

    async def check(self) -> str:
        """`"ok"`, the backend's reason, or `"timed out"` when it has not answered in time."""
        if self._running is None or self._running.done():
            self._running = self._start()
        try:
            return await asyncio.wait_for(asyncio.shield(self._running), self._deadline)
        except TimeoutError:
            return "timed out"

    def _start(self) -> asyncio.Future[str]:
        # A daemon thread, not the loop's executor: one stuck in the kernel must not hold the
        # process at its exit, nor a worker the rest of the node needs.
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str] = loop.create_future()

        def run() -> None:
            state = _checked(self._backend)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(_settle, answer, state)

        threading.Thread(target=run, name="storage-check", daemon=True).start()
        return answer


def _checked(backend: StorageBackend) -> str:
    try:
        return backend.check()
    except Exception:
        log.exception("the file store check failed")
        return "check failed"


def _settle(answer: asyncio.Future[str], state: str) -> None:
    if not answer.done():
        answer.set_result(state)
