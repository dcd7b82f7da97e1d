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
- `uvloop`: the servers run on uvloop's event loop instead of asyncio's own (not a dependency
  of sftphook: `pip install uvloop` first).
- `slow-spell`: sftphook's storage calls start as if a slow spell of the disk had just moved
  every kind of call to the I/O threads (`sftp/offload.py`, an average cost of 10 ms each):
  whether, and how soon, they come back to the loop once the disk is quick (with
  `request-times`, the "(kind on the loop)" and "(kind on the thread)" counts say it).
- `no-spares`: local disk without the empty files made ahead of uploads (`storage/spares.py`):
  each upload creates its temporary file in its open, and an overwritten or removed file is
  freed in the call (what the spare-files thread gives, or takes from the client on 2 cores).
- `request-times`: not a change but a measurement. Each server times every SFTP request from its
  arrival to its reply, and the gap before the client's next request, split into the wait for
  the reply's socket write, the client's turn (with the network), and asyncssh's receive path up
  to the handler; sftphook also times its event commits and their transactions (on the loop or
  the writer thread), and the BEGIN of those on the loop. At the end of each SFTP session (one
  benchmark operation) a table per request type, each thread's user and system CPU and the
  garbage collector's runs are appended to the file named by BENCH_REQUEST_TIMES.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any


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


def request_times() -> None:
    import statistics
    import sys
    import time

    from asyncssh import sftp

    names = {v: k for k, v in vars(sftp).items() if k.startswith("FXP_") and isinstance(v, int)}
    server = "stock asyncssh" if "stock_asyncssh" in sys.argv[0] else "sftphook"
    from asyncssh.connection import SSHConnection

    handler = sftp.SFTPServerHandler
    process, cleanup = handler._process_packet, handler._cleanup
    # The client gap in three parts (one connection at a time, as the benchmark runs): the reply
    # waiting for its socket write, the client's turn and the network, then the packet's way
    # through asyncssh to the handler.
    marks = {"reply": 0.0, "sent": 0.0, "arrived": 0.0}
    storage: dict[str, list[float]] = {}
    received = SSHConnection.data_received

    def data_received(self: Any, data: bytes, datatype: Any = None) -> None:
        if marks["arrived"] < marks["reply"]:
            marks["arrived"] = time.perf_counter()
        received(self, data, datatype)

    SSHConnection.data_received = data_received  # type: ignore[method-assign]
    # The socket write that sends the reply (sftphook's may come a little after the handler).
    from asyncio import selector_events

    transport_class: Any = getattr(selector_events, "_SelectorSocketTransport")  # noqa: B009
    socket_write = transport_class.write

    def written(self: Any, data: Any) -> None:
        if marks["sent"] < marks["reply"]:
            marks["sent"] = time.perf_counter()
        socket_write(self, data)

    transport_class.write = written
    if server == "sftphook":
        from sftphook.events.recorder import EventRecorder

        record = EventRecorder.record
        recorded: list[float] = []

        async def timed_record(self: Any, event: Any) -> None:
            started = time.perf_counter()
            try:
                await record(self, event)
            finally:
                recorded.append(time.perf_counter() - started)

        EventRecorder.record = timed_record  # type: ignore[method-assign]

        from sftphook.store.database import _SqliteWriter

        run_transaction = _SqliteWriter._run
        transactions: dict[str, list[float]] = {"(db on the loop)": [], "(db on the thread)": []}

        def timed_run(self: Any, work: Any, *, wait: bool) -> Any:
            started = time.perf_counter()
            try:
                return run_transaction(self, work, wait=wait)
            finally:
                where = "(db on the thread)" if wait else "(db on the loop)"
                transactions[where].append(time.perf_counter() - started)

        _SqliteWriter._run = timed_run  # type: ignore[method-assign]

        # The BEGIN IMMEDIATE of those on the loop (the write lock, and the GIL back after it).
        begin = _SqliteWriter._begin
        transactions["(db begin on the loop)"] = []

        def timed_begin(connection: Any, wait: bool) -> None:
            started = time.perf_counter()
            try:
                begin(connection, wait)
            finally:
                if not wait:
                    transactions["(db begin on the loop)"].append(time.perf_counter() - started)

        _SqliteWriter._begin = staticmethod(timed_begin)  # type: ignore[method-assign,assignment]

        # Each storage call by kind, on the loop or in an I/O thread (`sftp/offload.py`).
        from sftphook.sftp.offload import Offload

        offload_run = Offload.run

        async def timed_offload(self: Any, kind: str, call: Any, /, *args: Any, **kw: Any) -> Any:
            where = "loop" if self.inline(kind) else "thread"
            started = time.perf_counter()
            try:
                return await offload_run(self, kind, call, *args, **kw)
            finally:
                storage.setdefault(f"({kind} on the {where})", []).append(
                    time.perf_counter() - started
                )

        Offload.run = timed_offload  # type: ignore[method-assign]

    def spent(self: Any) -> dict[str, list[float]]:
        times: dict[str, list[float]] | None = getattr(self, "_bench_times", None)
        if times is None:
            times = self._bench_times = {}
        return times

    async def timed(self: Any, pkttype: int, pktid: int, packet: Any) -> None:
        started = time.perf_counter()
        times = spent(self)
        previous: float | None = getattr(self, "_bench_reply", None)
        if previous is not None:
            times.setdefault("(client gap)", []).append(started - previous)
            sent = max(marks["sent"], previous)
            if marks["arrived"] >= sent:
                times.setdefault("(gap: to send)", []).append(sent - previous)
                times.setdefault("(gap: client)", []).append(marks["arrived"] - sent)
                times.setdefault("(gap: to handler)", []).append(started - marks["arrived"])
        try:
            await process(self, pkttype, pktid, packet)
        finally:
            done = self._bench_reply = marks["reply"] = time.perf_counter()
            times.setdefault(names.get(pkttype, str(pkttype)), []).append(done - started)

    async def report(self: Any, exc: Any) -> None:
        # One table per SFTP session (one `sftp -b` batch: one benchmark operation).
        times = spent(self)
        if server == "sftphook" and recorded:
            times["(event record)"] = list(recorded)
            recorded.clear()
            for where, values in transactions.items():
                if values:
                    times[where] = list(values)
                    values.clear()
            for where, values in storage.items():
                times[where] = list(values)
            storage.clear()
        target = os.environ.get("BENCH_REQUEST_TIMES")
        if target and sum(len(v) for v in times.values()) > 10:
            lines = [
                f"{server}: {'request':<14} {'count':>7} {'median ms':>10} {'p90 ms':>8}"
                f" {'total s':>8}"
            ]
            for name, values in sorted(times.items(), key=lambda kv: -sum(kv[1])):
                values.sort()
                lines.append(
                    f"{server}: {name:<14} {len(values):>7}"
                    f" {statistics.median(values) * 1e3:>10.3f}"
                    f" {values[int(len(values) * 0.9)] * 1e3:>8.3f} {sum(values):>8.3f}"
                )
            lines.extend(f"{server}: {line}" for line in _thread_cpu(threads_before))
            lines.append(f"{server}: gc collections by generation: {_gc_collections(gc_before)}")
            _append(target, "\n".join(lines) + "\n\n")
        times.clear()
        await cleanup(self, exc)

    threads_before: dict[str, tuple[float, float]] = {}
    _thread_cpu(threads_before)
    gc_before: list[int] = []
    _gc_collections(gc_before)
    handler._process_packet = timed  # type: ignore[method-assign]
    handler._cleanup = report  # type: ignore[method-assign]


def _gc_collections(before: list[int]) -> list[int]:
    """The garbage collector's runs per generation since the last call."""
    import gc

    now = [generation["collections"] for generation in gc.get_stats()]
    spent = [n - b for n, b in zip(now, before, strict=False)] if before else now
    before[:] = now
    return spent


def _append(path: str, text: str) -> None:
    with open(path, "a") as out:
        out.write(text)


def _thread_cpu(before: dict[str, tuple[float, float]]) -> list[str]:
    """User and system CPU seconds of each of this process's threads since the last call
    (Linux), busiest first."""
    tick = os.sysconf("SC_CLK_TCK")
    now: dict[str, tuple[float, float]] = {}
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            with open(f"/proc/self/task/{task}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2 :].split()
            now[task] = (int(fields[11]) / tick, int(fields[12]) / tick)
    spent = {
        task: (user - before.get(task, (0.0, 0.0))[0], system - before.get(task, (0.0, 0.0))[1])
        for task, (user, system) in now.items()
    }
    lines = [
        f"thread {task:<8} user {user:6.2f} s  system {system:6.2f} s"
        for task, (user, system) in sorted(spent.items(), key=lambda kv: -sum(kv[1]))
        if user + system > 0
    ]
    before.clear()
    before.update(now)
    return lines


def slow_spell() -> None:
    from sftphook.sftp import offload

    init = offload.Offload.__init__

    class _SlowSoFar(dict[str, float]):
        # Every kind not seen yet starts at 10 ms.
        def get(self, kind: str, default: float | None = None) -> float:  # type: ignore[override]
            return super().get(kind, 0.01)

    def seeded(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._cost = _SlowSoFar()

    offload.Offload.__init__ = seeded  # type: ignore[method-assign]


def no_spares() -> None:
    from sftphook.storage import local

    # `LocalBackend.open` makes its spare files with this; None is a backend without them.
    local.SpareFiles = lambda directory: None  # type: ignore[assignment,misc]


def use_uvloop() -> None:
    import asyncio

    try:
        import uvloop
    except ImportError:
        raise SystemExit("--experiment uvloop needs uvloop (pip install uvloop)") from None
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def short_switch_interval() -> None:
    import sys

    # A thread back from a system call waits for the GIL up to the switch interval (5 ms by
    # default) before it asks the running thread to let go.
    sys.setswitchinterval(0.0005)


EXPERIMENTS: dict[str, Callable[[], None]] = {
    "coalesce": coalesce_writes,
    "no-events": events_off,
    "inline-io": inline_io,
    "inline-db": inline_db,
    "request-times": request_times,
    "uvloop": use_uvloop,
    "switch-interval": short_switch_interval,
    "slow-spell": slow_spell,
    "no-spares": no_spares,
}
KNOWN = tuple(EXPERIMENTS)


def apply(environ: dict[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    names = [n.strip() for n in env.get("BENCH_EXPERIMENTS", "").split(",") if n.strip()]
    for name in names:
        if name not in EXPERIMENTS:
            raise SystemExit(f"unknown experiment {name!r}; known: {', '.join(KNOWN)}")
        EXPERIMENTS[name]()
    return names
