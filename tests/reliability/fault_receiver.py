"""A webhook receiver on 127.0.0.1 that misbehaves on demand and keeps the books: which event
ids it accepted (answered 2xx), how often, and when.

`behaviour(event_id, try_number)` picks what a request gets: an `Answer` (a status, optional
headers, an optional delay before answering), `HANG` (never answer), or `RESET` (drop the
connection). The receiver can be stopped and started again on the same port, which is how "down"
and "flapping" are made: the port then refuses connections.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import socket
import time
from collections.abc import Callable, Iterable

from aiohttp import web


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay: float = 0.0


HANG = "hang"
RESET = "reset"
Action = Answer | str
Behaviour = Callable[[str, int], Action]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def always_ok(event_id: str, try_number: int) -> Action:
    return Answer()


class FaultyReceiver:
    def __init__(self, behaviour: Behaviour = always_ok, port: int | None = None) -> None:
        self.behaviour = behaviour
        self.port = port or free_port()
        # event id -> monotonic times of every request, and of those answered 2xx.
        self.tries: dict[str, list[float]] = collections.defaultdict(list)
        self.accepted: dict[str, list[float]] = collections.defaultdict(list)
        self.delivery_ids: dict[str, set[str]] = collections.defaultdict(set)
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Condition()
        self._hanging: set[asyncio.Future[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def up(self) -> bool:
        return self._runner is not None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            event_id = str(json.loads(body)["Id"])
        except (ValueError, KeyError, TypeError):
            return web.Response(status=400)
        now = time.monotonic()
        self.tries[event_id].append(now)
        self.delivery_ids[event_id].add(request.headers.get("webhook-id", ""))
        action = self.behaviour(event_id, len(self.tries[event_id]))
        if action == HANG:
            hang: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._hanging.add(hang)
            try:
                await hang
            finally:
                self._hanging.discard(hang)
            return web.Response(status=503)
        if action == RESET:
            if request.transport is not None:
                request.transport.abort()
            await asyncio.sleep(1)
            return web.Response(status=500)
        assert isinstance(action, Answer)
        if action.delay:
            await asyncio.sleep(action.delay)
        if 200 <= action.status < 300:
            async with self._changed:
                self.accepted[event_id].append(time.monotonic())
                self._changed.notify_all()
        return web.Response(status=action.status, headers=action.headers, text="")

    async def start(self) -> None:
        app = web.Application(client_max_size=16 * 1024**2)
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        for _ in range(50):
            try:
                await site.start()
                break
            except OSError:  # the port is still held by the previous run's sockets
                await asyncio.sleep(0.1)
        else:
            await site.start()
        self._runner = runner

    async def stop(self) -> None:
        """Go down: open connections are dropped and the port refuses new ones."""
        runner, self._runner = self._runner, None
        for hang in list(self._hanging):
            hang.cancel()
        if runner is not None:
            await runner.cleanup()

    def release_hangs(self) -> None:
        for hang in list(self._hanging):
            if not hang.done():
                hang.set_result(None)

    async def wait_accepted(self, ids: Iterable[str], within: float) -> bool:
        """Wait until every id in `ids` was accepted at least once; False on timeout."""
        wanted = set(ids)
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: wanted <= self.accepted.keys())
        except TimeoutError:
            return False
        return True

    def tally(self, ids: Iterable[str], *, late_after: float | None = None) -> Tally:
        """Lost: never accepted; duplicated: accepted more than once (each extra acceptance);
        late: first accepted after the monotonic time `late_after`."""
        wanted = list(ids)
        lost = sum(1 for i in wanted if not self.accepted.get(i))
        duplicated = sum(max(0, len(self.accepted.get(i, [])) - 1) for i in wanted)
        late = 0
        if late_after is not None:
            firsts = [self.accepted[i][0] for i in wanted if self.accepted.get(i)]
            late = sum(1 for t in firsts if t > late_after)
        return Tally(tried=len(wanted), lost=lost, duplicated=duplicated, late=late)


@dataclasses.dataclass(frozen=True)
class Tally:
    tried: int
    lost: int
    duplicated: int
    late: int


async def eventually(condition: Callable[[], bool], within: float, step: float = 0.05) -> None:
    """Poll `condition` (state another process or task changes) until it holds."""
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(step)
