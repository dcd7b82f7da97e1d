"""Dashboard accounts: the service, `sftphook admins`, and the first-start hint."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest
from argon2 import PasswordHasher, extract_parameters
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from sftphook.accounts import passwords
from sftphook.accounts.admins import AdminService
from sftphook.app import App
from sftphook.cli import app as cli
from sftphook.config import Settings
from sftphook.errors import AlreadyExists, InvalidInput
from sftphook.store.models import Admin, AuditEntry
from tests.conftest import serving
from tests.web.conftest import PASSWORD, Dashboard, login


async def test_admin_passwords_are_argon2_hashes_and_verify(app: App) -> None:
    org = await app.accounts.resolve_organization(None)
    admins = AdminService(app.db)
    admin = await admins.add_admin("ops", "long enough secret", [org.id])
    assert admin.password_hash.startswith("$argon2id$")
    assert await admins.authenticate("ops", "long enough secret") is not None
    assert await admins.authenticate("ops", "wrong password") is None
    assert await admins.authenticate("nobody", "long enough secret") is None
    assert [o.name for o in await admins.organizations_of(admin.id)] == ["default"]
    with pytest.raises(AlreadyExists):
        await admins.add_admin("ops", "another secret!", [org.id])
    with pytest.raises(InvalidInput):
        await admins.add_admin("short", "pw", [org.id])


async def _ticks_while_hashing(
    work: Callable[[], Awaitable[object]], monkeypatch: pytest.MonkeyPatch
) -> list[tuple[float, float, list[float]]]:
    """Run `work` while a task ticks every 5 ms; for each password hash it made, (its
    duration, the longest gap between ticks around it, the ticks that came while it ran).
    A hash on the event loop gets no tick at all: the loop cannot run the ticking task."""
    hashes: list[tuple[float, float]] = []
    real = passwords.hash_password

    def timed(password: str) -> str:
        start = time.monotonic()
        try:
            return real(password)
        finally:
            hashes.append((start, time.monotonic()))

    monkeypatch.setattr(passwords, "hash_password", timed)
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.005)

    ticking = asyncio.create_task(tick())
    try:
        await asyncio.sleep(0.02)  # ticking before the work starts
        await work()
        await asyncio.sleep(0.02)  # and after it ends
    finally:
        ticking.cancel()
    found = []
    for start, end in hashes:
        during = [t for t in ticks if start < t < end]
        # From the last tick before the hash to the first after it.
        span = [t for t in ticks if t <= start][-1:] + during + [t for t in ticks if t >= end][:1]
        found.append((end - start, max(b - a for a, b in itertools.pairwise(span)), during))
    return found


async def test_admin_passwords_are_hashed_off_the_event_loop(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = await app.accounts.resolve_organization(None)
    admins = AdminService(app.db)

    async def add_then_set() -> None:
        await admins.add_admin("ops", "long enough secret", [org.id])
        await admins.set_password("ops", "the next secret")

    hashes = await _ticks_while_hashing(add_then_set, monkeypatch)
    assert len(hashes) == 2  # add_admin's, then set_password's
    for duration, longest_gap, during in hashes:
        # argon2id takes tens of milliseconds; the loop went on ticking all the while.
        assert len(during) >= 3, (duration, during)
        assert longest_gap < duration / 2, (duration, longest_gap)
    assert await admins.authenticate("ops", "the next secret") is not None


def test_admins_add_reads_the_password_from_stdin(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SFTPHOOK_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    result = runner.invoke(
        cli, ["admins", "add", "ops", "--password-stdin"], input="a fine password\n"
    )
    assert result.exit_code == 0, result.output
    assert "admin ops added (default)" in result.output
    listed = runner.invoke(cli, ["admins", "list"])
    assert listed.exit_code == 0
    assert "ops\tdefault" in listed.output
    again = runner.invoke(
        cli, ["admins", "add", "ops", "--password-stdin"], input="a fine password\n"
    )
    assert again.exit_code == 1 and "already exists" in again.output
    unknown = runner.invoke(
        cli, ["admins", "add", "x", "--password-stdin", "--org", "nope"], input="pw pw pw pw\n"
    )
    assert unknown.exit_code == 1 and "no organization named 'nope'" in unknown.output


def _client(app: App) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.http_port}")


async def test_first_start_without_an_admin_says_how_to_create_one(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="sftphook.app"):
        async with serving(settings, frozenset({"http"})) as app, _client(app) as c:
            login = await c.get("/login")
    assert "sftphook admins add admin --password-stdin" in caplog.text
    assert "sftphook admins add" in login.text


async def test_session_cookie_is_secure_behind_an_https_proxy(settings: Settings) -> None:
    async with serving(settings, frozenset({"http"})) as app, _client(app) as c:
        resp = await c.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "secure" in resp.headers["set-cookie"].lower()


WEAK = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


async def _admin_hash(app: App, username: str = "admin") -> str:
    async with app.db.session() as s:
        return (
            await s.execute(select(Admin.password_hash).where(Admin.username == username))
        ).scalar_one()


async def _store_admin_hash(app: App, password_hash: str, username: str = "admin") -> None:
    async with app.db.transaction() as s:
        await s.execute(
            update(Admin).where(Admin.username == username).values(password_hash=password_hash)
        )


async def test_a_dashboard_login_rehashes_a_weaker_hash_and_keeps_the_sessions(
    dashboard: Dashboard,
) -> None:
    app = dashboard.app
    async with app.db.transaction() as s:
        await s.execute(delete(AuditEntry))
    weak = WEAK.hash(PASSWORD)
    await _store_admin_hash(app, weak)
    async with httpx.AsyncClient(base_url=dashboard.base) as first:
        await login(first)  # verified against the weak hash, which it replaces
        stored = await _admin_hash(app)
        assert stored != weak and not passwords.needs_rehash(stored)
        assert extract_parameters(stored) == extract_parameters(passwords.hash_password("x" * 8))
        assert passwords.verify_password(stored, PASSWORD)
        # The session issued with the weak hash goes on, and so does a new one.
        assert (await first.get("/webhooks")).status_code == 200
        async with httpx.AsyncClient(base_url=dashboard.base) as second:
            await login(second)
            assert (await second.get("/webhooks")).status_code == 200
        assert (await first.get("/webhooks")).status_code == 200
    assert await _admin_hash(app) == stored
    async with app.db.session() as s:
        actions = list((await s.execute(select(AuditEntry.action))).scalars())
    assert actions == []  # no "password changed" line: nothing was changed


async def test_an_admin_rehash_never_replaces_a_password_set_meanwhile(app: App) -> None:
    org = await app.accounts.resolve_organization(None)
    admins = AdminService(app.db)
    await admins.add_admin("ops", "long enough secret", [org.id])
    await _store_admin_hash(app, WEAK.hash("long enough secret"), "ops")
    verified = next(a for a, _ in await admins.list_admins() if a.username == "ops")
    await admins.set_password("ops", "the next secret")
    await admins._rehash_password(verified, "long enough secret")
    assert passwords.verify_password(await _admin_hash(app, "ops"), "the next secret")


async def test_a_failed_admin_rehash_lets_the_admin_in(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    org = await app.accounts.resolve_organization(None)
    admins = AdminService(app.db)
    await admins.add_admin("ops", "long enough secret", [org.id])
    weak = WEAK.hash("long enough secret")
    await _store_admin_hash(app, weak, "ops")

    def fail(password_hash: str, password: str) -> str:
        raise RuntimeError(f"out of memory hashing {password}")

    monkeypatch.setattr(passwords, "rehash", fail)
    assert await admins.authenticate("ops", "long enough secret") is not None
    assert await _admin_hash(app, "ops") == weak
    assert "could not rehash the password of admin ops: RuntimeError" in caplog.text
    assert "long enough secret" not in caplog.text
