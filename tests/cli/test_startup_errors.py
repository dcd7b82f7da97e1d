"""Settings that cannot work (a database that does not answer, a URL that is no database URL, a
data directory that cannot be made, a malformed key, signature algorithms no host key has) end a
command with one `error:` line and status 1, as docs/cli.md promises; they used to print a Python
traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sftphook.config import Settings
from sftphook.sftp import hostkeys
from sftphook.store import Database
from sftphook.store import settings as stored_settings
from sftphook.webhooks.crypto import SecretBox
from tests.cli.conftest import Cli, error_line, serve_error, serve_on_a_taken_port


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        (
            "SFTPHOOK_DATABASE_URL",
            "postgresql+asyncpg://sftphook:hunter2@127.0.0.1:1/sftphook",
            ["cannot open the database postgresql+asyncpg://sftphook:***@127.0.0.1:1/sftphook"],
        ),
        ("SFTPHOOK_DATABASE_URL", "not a url", ["database_url", "not a database URL"]),
        ("SFTPHOOK_DATABASE_URL", "sqlite:///sftphook.db", ["database_url", "sqlite+aiosqlite"]),
        ("SFTPHOOK_DATABASE_URL", "postgresql://db/sftphook", ["database_url", "asyncpg"]),
        ("SFTPHOOK_ENCRYPTION_KEY", "not-a-key", ["encryption key must be base64 of 32 bytes"]),
    ],
)
def test_unusable_settings_are_one_error_line(
    cli: Cli, cli_env: dict[str, str], setting: str, value: str, words: list[str]
) -> None:
    cli_env[setting] = value
    result = cli("users", "list")
    assert result.returncode == 1, result.stderr
    line = error_line(result)
    for word in words:
        assert word in line, (word, line)
    assert "hunter2" not in result.stderr + result.stdout


def test_a_data_directory_that_cannot_be_made_is_one_error_line(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cli_env["SFTPHOOK_DATA_DIR"] = str(blocker / "data")
    result = cli("tokens", "list")
    assert result.returncode == 1, result.stderr
    assert f"cannot create the data directory {blocker / 'data'}" in error_line(result)


def test_serve_with_an_unreachable_database_is_one_error_line(
    cli: Cli, cli_env: dict[str, str]
) -> None:
    cli_env["SFTPHOOK_DATABASE_URL"] = "postgresql+asyncpg://sftphook:hunter2@127.0.0.1:1/x"
    cli_env["SFTPHOOK_HTTP__PORT"] = "0"
    result = cli("serve", "--roles", "http")
    assert result.returncode == 1, result.stderr
    assert "cannot open the database postgresql+asyncpg://sftphook:***@127.0.0.1:1/x" in (
        error_line(result)
    )
    assert "hunter2" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("SFTPHOOK_SFTP__PORT", "abc", ["sftp.port", "valid integer"]),
        ("SFTPHOOK_SFTP__PROT", "2022", ["sftp.prot", "not permitted"]),
        ("SFTPHOOK_LOG_LEVEL", "verbose", ["log_level must be one of DEBUG"]),
    ],
)
def test_invalid_settings_are_one_line_naming_each_setting(
    cli: Cli, cli_env: dict[str, str], setting: str, value: str, words: list[str]
) -> None:
    cli_env[setting] = value
    result = cli("orgs", "list")
    assert result.returncode == 1, result.stderr
    line = error_line(result)
    assert line.startswith("error: invalid configuration: ")
    for word in words:
        assert word in line, (word, line)


def test_serve_with_signature_algorithms_no_host_key_has_stops_before_listening(
    cli: Cli, cli_env: dict[str, str]
) -> None:
    cli_env["SFTPHOOK_SFTP__SIGNATURE_ALGORITHMS"] = '["ecdsa-sha2-nistp256"]'
    cli_env["SFTPHOOK_SFTP__PORT"] = "0"
    cli_env["SFTPHOOK_HTTP__PORT"] = "0"
    logged, last = serve_error(cli("serve"))
    assert last.startswith(
        "error: invalid configuration: sftp.signature_algorithms: no host key can sign with any "
        "of ['ecdsa-sha2-nistp256']: the host keys are ssh-ed25519 and ssh-rsa, which sign with "
        "ssh-ed25519, rsa-sha2-256, rsa-sha2-512, "
    )
    # The rest is the log of what came before (migrations, the host keys made): neither the
    # HTTP nor the SFTP role listened.
    assert not [line for line in logged if "dashboard and API on" in line or "SFTP on" in line]


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("SFTPHOOK_HTTP__PORT", "the dashboard and API cannot listen on 127.0.0.1:{port}"),
        ("SFTPHOOK_SFTP__PORT", "SFTP cannot listen on 127.0.0.1:{port}"),
    ],
)
def test_serve_on_a_port_already_taken_is_one_error_line(
    cli: Cli, cli_env: dict[str, str], setting: str, words: str
) -> None:
    # Every role: the HTTP one starts before the SFTP one. Before the error, only the log of
    # the start (`serve_error`).
    port, _, line = serve_on_a_taken_port(cli, cli_env, setting)
    assert line.startswith(f"error: {words.format(port=port)}: "), line
    assert "in use" in line and setting in line, line


async def test_serve_with_host_keys_stored_under_another_encryption_key_is_one_error_line(
    cli: Cli, cli_env: dict[str, str], settings: Settings
) -> None:
    # Another node stored the install's host keys with its own encryption key.
    db = Database(settings.resolved_database_url)
    try:
        await db.upgrade()
        other = SecretBox(os.urandom(32))
        async with db.transaction() as session:
            await stored_settings.add_if_absent(
                session, hostkeys.SETTING_KEY, other.encrypt('{"ed25519": "x"}')
            )
    finally:
        await db.close()
    cli_env["SFTPHOOK_SFTP__PORT"] = "0"
    cli_env["SFTPHOOK_HTTP__PORT"] = "0"
    result = cli("serve")
    assert result.returncode == 1, result.stderr
    *logged, line = result.stderr.splitlines()
    assert line == (
        "error: invalid configuration: the SFTP host keys stored in the database cannot be "
        "decrypted: every node needs the same encryption key (SFTPHOOK_ENCRYPTION_KEY, or the "
        "same secret.key file)"
    ), result.stderr
    assert not [entry for entry in logged if "Traceback" in entry or "listen" in entry]
