"""Dashboard accounts: the service, `sftphook admins`, and the first-start hint."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from sftphook.accounts.admins import AdminService
from sftphook.app import App
from sftphook.cli import app as cli
from sftphook.config import Settings
from sftphook.errors import AlreadyExists, InvalidInput
from tests.conftest import serving


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
