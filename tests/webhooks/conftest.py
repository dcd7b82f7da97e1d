"""Real HTTP(S) receivers on 127.0.0.1 and settings with a short retry schedule."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from sftphook.config import Settings
from sftphook.events import EventRecord, Topic

Behaviour = Callable[[web.Request, "Received"], Awaitable[web.StreamResponse]]


@dataclasses.dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class Receiver:
    """An aiohttp.web server that records every request and answers as `behaviour` says."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        self.requests: list[Received] = []
        self.behaviour: Behaviour | None = None
        self._ssl = ssl_context
        self._host = host
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl else "http"
        return f"{scheme}://{self._host}:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        received = Received(request.path, dict(request.headers), body, time.monotonic())
        async with self._changed:
            self.requests.append(received)
            self._changed.notify_all()
        if self.behaviour is not None:
            return await self.behaviour(request, received)
        return web.Response(text="ok")

    async def start(self, port: int = 0) -> None:
        app = web.Application(client_max_size=1024**2 * 16)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, ssl_context=self._ssl)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, count: int, within: float = 10.0) -> list[Received]:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.requests) >= count)
        return self.requests


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Fast retries, a short timeout, no jitter: nothing in a test waits long."""
    hooks = settings.webhooks.model_copy(
        update={
            "retry_schedule": [0.2, 0.2, 0.2],
            "retry_jitter": 0.0,
            "timeout": 2.0,
            "lease_seconds": 5.0,
        }
    )
    return settings.model_copy(update={"webhooks": hooks})


@pytest.fixture
def pg_settings(settings: Settings, postgres_url: str) -> Settings:
    """The same settings on a throwaway PostgreSQL database."""
    return settings.model_copy(update={"database_url": postgres_url})


@pytest.fixture
async def pg_app(pg_settings: Settings) -> AsyncIterator[Any]:
    """A prepared App on PostgreSQL, without running servers."""
    from sftphook.app import App

    application = App(pg_settings)
    await application.prepare()
    try:
        yield application
    finally:
        await application.db.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def org_id(app: Any) -> str:
    return (await app.accounts.resolve_organization(None)).id


def file_event(org: str, path: str = "inbound/invoice 2026+1.csv", **kw: Any) -> EventRecord:
    values: dict[str, Any] = {"topic": Topic.FILE_CREATED, "actor_id": "partner-acme", "size": 42}
    values.update(kw)
    return EventRecord(organization_id=org, path=path, **values)


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], within: float = 10.0, step: float = 0.05
) -> None:
    deadline = time.monotonic() + within
    while True:
        if await predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)
