"""A running server with a dashboard account, a real webhook receiver, and headless Chromium."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from sftphook.accounts.admins import AdminService
from sftphook.app import App
from sftphook.config import Settings
from sftphook.store.models import Organization
from tests.conftest import require_binary, serving

PASSWORD = "correct horse battery"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclasses.dataclass
class Received:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """An aiohttp server on 127.0.0.1 that records every request it gets and answers 200."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        # The status every request is answered with (tests of failed deliveries change it).
        self.status = 200
        # The body every request is answered with, when set (else a small JSON object).
        self.body: bytes | None = None
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        received = Received(dict(request.headers), await request.read())
        async with self._arrived:
            self.requests.append(received)
            self._arrived.notify_all()
        if self.body is not None:
            return web.Response(body=self.body, status=self.status)
        return web.json_response({"received": self.status < 300}, status=self.status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, count: int, within: float = 15.0) -> list[Received]:
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return self.requests


@dataclasses.dataclass
class Dashboard:
    app: App
    base: str
    organization: Organization
    admin: str = "admin"
    password: str = PASSWORD


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _dashboard(settings: Settings, roles: frozenset[str]) -> AsyncIterator[Dashboard]:
    async with serving(settings, roles) as app:
        org = await app.accounts.resolve_organization(None)
        await AdminService(app.db).add_admin("admin", PASSWORD, [org.id])
        yield Dashboard(app, f"http://127.0.0.1:{app.http_port}", org)


@pytest.fixture
async def dashboard(settings: Settings) -> AsyncIterator[Dashboard]:
    """HTTP and workers (what the security tests need)."""
    async for value in _dashboard(settings, frozenset({"http", "worker"})):
        yield value


@pytest.fixture
async def full_dashboard(settings: Settings) -> AsyncIterator[Dashboard]:
    """Every role, SFTP included."""
    async for value in _dashboard(settings, frozenset({"http", "worker", "sftp"})):
        yield value


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    require_binary("chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/screenshots when SFTPHOOK_SCREENSHOTS=1, else a temp dir."""
    if os.environ.get("SFTPHOOK_SCREENSHOTS"):
        target = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    else:
        target = tmp_path / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    return target


async def login(client: httpx.AsyncClient, name: str = "admin", password: str = PASSWORD) -> str:
    """Log an httpx client in through the form; returns a CSRF token of the new session."""
    page = await client.get("/login")
    token = CSRF.search(page.text)
    assert token is not None
    resp = await client.post(
        "/login",
        data={"username": name, "password": password, "csrf_token": token.group(1)},
    )
    assert resp.status_code == 303, resp.text
    return await csrf_of(client, "/webhooks")


async def csrf_of(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    token = CSRF.search(page.text)
    assert token is not None
    return token.group(1)


def eventually(deadline: float = 10.0) -> float:
    return time.monotonic() + deadline
