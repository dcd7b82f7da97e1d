"""What-if patches bench/sftp.py can apply inside a server process, to measure one cost at a time.

Selected with BENCH_EXPERIMENTS=name,name in the server's environment (`--experiment`):

- `coalesce`: the SSH packets produced in one event-loop turn leave in one socket write, instead
  of one `transport.write` (one `send` syscall, one wake-up of the peer) per packet.
- `no-events`: sftphook's event recorder returns at once (what events cost; not a valid result:
  the targets are for events on).
- `inline-io`: sftphook's I/O thread pool runs each job at once on the event loop (what the
  thread hops of opens, commits and block reads and writes cost).
- `inline-db`: every `Database.write` runs its transaction on the event loop, whatever its size
  and whoever else writes (what the hand-offs to the writer thread cost at most).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

KNOWN = ("coalesce", "no-events", "inline-io", "inline-db")


def coalesce_writes() -> None:
    from asyncssh.connection import SSHConnection

    def send(self: Any, data: bytes) -> None:
        pending: list[bytes] | None = getattr(self, "_bench_pending", None)
        if pending is None:
            pending = self._bench_pending = []
        if not pending:
            self._loop.call_soon(flush, self)
        pending.append(data)

    def flush(self: Any) -> None:
        data = b"".join(self._bench_pending)
        self._bench_pending.clear()
        if self._transport:
            with contextlib.suppress(ConnectionError):
                self._transport.write(data)

    SSHConnection._send = send  # type: ignore[method-assign]


def events_off() -> None:
    from sftphook.events import EventRecorder

    async def record(self: Any, event: Any) -> None:
        return None

    EventRecorder.record = record  # type: ignore[method-assign]


def inline_io() -> None:
    from concurrent.futures import Executor, Future

    from sftphook.sftp import server

    class InlineExecutor(Executor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
            future: Future[Any] = Future()
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)
            return future

    original = server.SFTPFront.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.io_executor = InlineExecutor()

    server.SFTPFront.__init__ = init  # type: ignore[method-assign]


def inline_db() -> None:
    from sftphook.store import database

    async def run(self: Any, work: Any, *, inline: bool = False) -> Any:
        with self._lock:
            return self._run(work, wait=True)

    database._SqliteWriter.run = run  # type: ignore[method-assign]


def apply(environ: dict[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    names = [n.strip() for n in env.get("BENCH_EXPERIMENTS", "").split(",") if n.strip()]
    for name in names:
        if name == "coalesce":
            coalesce_writes()
        elif name == "no-events":
            events_off()
        elif name == "inline-io":
            inline_io()
        elif name == "inline-db":
            inline_db()
        else:
            raise SystemExit(f"unknown experiment {name!r}; known: {', '.join(KNOWN)}")
    return names
