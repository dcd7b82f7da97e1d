"""Fixtures shared by every test: settings in a temporary data directory, a migrated App."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from sftphook.app import App
from sftphook.config import Settings
from tests.support import radosgw as radosgw_support
from tests.support.radosgw import Radosgw

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_ADMIN_DSN = os.environ.get(
    "SFTPHOOK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def require_binary(name: str) -> str:
    """The path of an external client; missing is a skip on a laptop and a failure in CI."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (the CI script installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load(
        data_dir=tmp_path / "data",
        sftp={"host": "127.0.0.1", "port": 0},
        http={"host": "127.0.0.1", "port": 0},
        webhooks={"allow_http": True, "allowed_networks": ["127.0.0.0/8", "::1/128"]},
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[App]:
    """A prepared App (schema and default organization) without running servers."""
    application = App(settings)
    await application.prepare()
    try:
        yield application
    finally:
        await application.db.close()


@asynccontextmanager
async def serving(settings: Settings, roles: frozenset[str]) -> AsyncIterator[App]:
    """Run an App's roles in the current event loop until the block ends (ports are ephemeral:
    read `app.sftp.port` and `app.http_port`)."""
    application = App(settings)
    ready = asyncio.Event()
    task = asyncio.create_task(application.serve(roles, ready=ready, install_signal_handlers=False))
    ready_wait = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, ready_wait}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready_wait.cancel()
        task.result()  # raises what stopped the server
        raise RuntimeError("server stopped before it was ready")
    try:
        yield application
    finally:
        application.request_stop()
        await asyncio.wait_for(task, 60)


@pytest.fixture
async def http_app(settings: Settings) -> AsyncIterator[App]:
    """An App serving HTTP only."""
    async with serving(settings, frozenset({"http"})) as application:
        yield application


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """Create a database on the test server, yield its SQLAlchemy URL, drop it afterwards."""
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN}: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    name = f"sftphook_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+asyncpg://", 1
        )
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def radosgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radosgw]:
    """A real S3-compatible server (Ceph radosgw) on 127.0.0.1, shared by the session."""
    missing = radosgw_support.missing_binaries()
    if missing:
        message = f"Ceph's radosgw is not installed (missing {', '.join(missing)})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    gateway = radosgw_support.start(tmp_path_factory.mktemp("ceph"))
    try:
        yield gateway
    finally:
        gateway.stop()
