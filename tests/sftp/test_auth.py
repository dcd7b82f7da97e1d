"""Who gets in: passwords, keys, banned addresses, disabled and removed users."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from sftphook.config import Settings
from sftphook.sftp.defender import Defender
from tests.cli.conftest import SRC, command
from tests.conftest import require_binary
from tests.sftp.conftest import Server, run, write_client_key


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.sftp.ban_threshold = 3
    settings.sftp.ban_window = 60
    settings.sftp.ban_duration = 60
    return settings


async def test_wrong_password_is_refused(server: Server) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        await server.connect(password="wrong password")
    with pytest.raises(asyncssh.PermissionDenied):
        await server.connect(username="nobody")


async def test_key_auth_with_openssh_and_a_wrong_key(server: Server, tmp_path: Path) -> None:
    sftp = require_binary("sftp")
    batch = tmp_path / "batch"
    batch.write_text("pwd\n")
    ok = await run(
        [sftp, *server.ssh_options(), "-P", str(server.port), "-b", str(batch),
         f"{server.username}@127.0.0.1"]
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    other = tmp_path / "other"
    other.mkdir()
    wrong_key, _ = write_client_key(other)
    options = server.ssh_options()
    options[options.index(str(server.key_file))] = str(wrong_key)
    refused = await run(
        [sftp, *options, "-P", str(server.port), "-b", str(batch), f"{server.username}@127.0.0.1"]
    )
    assert refused.returncode != 0
    assert "Permission denied" in refused.stderr


async def test_repeated_failures_ban_the_address(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sftphook")
    for _ in range(3):
        with pytest.raises(asyncssh.PermissionDenied):
            await server.connect(password="wrong password")
    with pytest.raises((asyncssh.Error, OSError)):
        await server.connect()  # the right password, from a banned address
    assert "refused a connection from banned address 127.0.0.1" in caplog.text
    assert "127.0.0.1 banned" in caplog.text
    assert server.password not in caplog.text and "wrong password" not in caplog.text


def test_defender_forgets_old_failures_and_lifts_bans() -> None:
    defender = Defender(threshold=3, window=10, duration=100)
    assert not defender.failed("a", 0)
    assert not defender.failed("a", 1)
    assert not defender.failed("a", 20)  # the first two fell out of the window
    assert not defender.is_banned("a", 20)
    assert not defender.failed("a", 21)
    assert defender.failed("a", 22)
    assert defender.is_banned("a", 50) and not defender.is_banned("b", 50)
    assert not defender.is_banned("a", 122)


def test_defender_forgets_bans_that_ended() -> None:
    """An address banned once stayed in memory for good unless it came back: a year of
    scanners, each from a new address, grew the process without end."""
    defender = Defender(threshold=1, window=10, duration=100)
    for wave in range(30):  # 1,000 new addresses banned every 200 s, each ban over in 100 s
        for i in range(1_000):
            assert defender.failed(f"10.{wave}.{i // 256}.{i % 256}", wave * 200)
    assert len(defender._banned_until) <= 11_000
    assert defender.is_banned("10.29.0.1", 5_850)  # the running bans are kept
    assert defender.ban("192.0.2.1", 10_000, 6_000)  # another node's ban
    assert defender.is_banned("192.0.2.1", 6_000)


@pytest.mark.parametrize("change", ["disable", "remove", "new password"])
async def test_revoked_user_loses_open_sessions(server: Server, change: str) -> None:
    accounts = server.app.accounts
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        await sftp.listdir(".")
        if change == "disable":
            await accounts.update_user(server.org_id, "alice", enabled=False)
        elif change == "remove":
            await accounts.remove_user(server.org_id, "alice")
        else:
            await accounts.update_user(server.org_id, "alice", password="a brand new password")
        with pytest.raises((asyncssh.SFTPError, asyncssh.Error, OSError)):
            for _ in range(50):
                await sftp.listdir(".")
    with pytest.raises(asyncssh.PermissionDenied):
        await server.connect()


async def _session_ends(sftp: asyncssh.SFTPClient, within: float = 15.0) -> bool:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        try:
            await sftp.listdir(".")
        except (asyncssh.SFTPError, asyncssh.Error, OSError):
            return True
        await asyncio.sleep(0.2)
    return False


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["users", "disable", "alice"], b""),
        (["users", "remove", "alice"], b""),
        (["users", "passwd", "alice", "--password-stdin"], b"a brand new password\n"),
    ],
)
async def test_a_change_made_with_the_command_line_ends_open_sessions(
    server: Server, args: list[str], stdin: bytes
) -> None:
    """docs/cli.md: changes take effect in a running server at once. The command runs in its
    own process (as it does for an operator, or on another node), so the server must learn of
    the change from the database; it used to keep such sessions open until they ended."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFTPHOOK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env["SFTPHOOK_DATA_DIR"] = str(server.app.settings.data_dir)
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        await sftp.listdir(".")
        proc = await asyncio.create_subprocess_exec(
            *command(*args),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate(stdin)
        assert proc.returncode == 0, err
        assert await _session_ends(sftp)


@pytest.mark.parametrize(
    "change", [{"permissions": "read,list"}, {"home": "/elsewhere"}], ids=["permissions", "home"]
)
async def test_narrowing_permissions_or_home_ends_open_sessions(
    server: Server, change: dict[str, str]
) -> None:
    """A session keeps the permissions and home it logged in with: one that went on after they
    were narrowed could still write, delete or reach what the user no longer may."""
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        await sftp.listdir(".")
        await server.app.accounts.update_user(server.org_id, "alice", **change)
        assert await _session_ends(sftp, within=5.0)
    async with await server.connect() as conn, conn.start_sftp_client() as sftp:
        if "permissions" in change:
            with pytest.raises(asyncssh.SFTPError):
                async with sftp.open("new.txt", "w") as f:
                    await f.write("x")


async def test_host_keys_are_kept_across_starts(server: Server) -> None:
    front = server.app.sftp
    algorithms = [a for a, _ in front.host_key_fingerprints]
    assert algorithms == ["ssh-ed25519", "ssh-rsa"]
    for path in server.app.settings.host_keys_dir.iterdir():
        if not path.name.endswith(".pub"):
            assert path.stat().st_mode & 0o777 == 0o600
    from sftphook.sftp import hostkeys

    again = hostkeys.load_or_create(server.app.settings.host_keys_dir)
    assert hostkeys.fingerprints(again) == front.host_key_fingerprints
    async with await server.connect() as conn:
        assert (
            conn.get_server_host_key().get_fingerprint()
            in dict(front.host_key_fingerprints).values()
        )


async def test_password_tries_sent_without_waiting_are_checked_one_at_a_time_and_counted(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncssh cancels a password check when the client's next request arrives, but not the
    argon2 hash it started. A client that sent its tries without waiting for the answers had
    each one hashed at once (64 MiB of memory each) and only the last counted as a failure:
    a spray sent that way was never banned."""
    from asyncssh.connection import SSHClientConnection
    from asyncssh.constants import MSG_USERAUTH_REQUEST

    from sftphook.accounts import passwords

    send = SSHClientConnection.send_userauth_request

    async def send_five(
        conn: SSHClientConnection, method: bytes, *args: bytes, **kwargs: object
    ) -> None:
        for _ in range(4 if method == b"password" else 0):
            packet = conn._get_userauth_request_packet(method, args)
            conn.send_userauth_packet(MSG_USERAUTH_REQUEST, packet[1:])
            await asyncio.sleep(0.03)  # each check has started when the next try arrives
        await send(conn, method, *args, **kwargs)  # type: ignore[arg-type]

    verify = passwords.verify_password
    lock = threading.Lock()
    running = most = checked = 0

    def counted(password_hash: str | None, password: str) -> bool:
        nonlocal running, most, checked
        with lock:
            running += 1
            checked += 1
            most = max(most, running)
        try:
            return verify(password_hash, password)
        finally:
            with lock:
                running -= 1

    defender = server.app.sftp.defender
    failed = defender.failed
    failures = 0

    def count_failure(address: str, now: float, **kwargs: Any) -> bool:
        nonlocal failures
        failures += 1
        return failed(address, now, **kwargs)

    monkeypatch.setattr(SSHClientConnection, "send_userauth_request", send_five)
    monkeypatch.setattr(passwords, "verify_password", counted)
    monkeypatch.setattr(defender, "failed", count_failure)
    with pytest.raises(asyncssh.PermissionDenied):
        await server.connect(password="wrong password", preferred_auth="password")
    assert most == 1
    assert checked >= 2
    assert failures == checked


async def test_the_failure_that_bans_an_address_ends_its_connection(server: Server) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        await server.connect(password="wrong password", preferred_auth="password")
    with pytest.raises(asyncssh.PermissionDenied):
        await server.connect(password="wrong password", preferred_auth="password")
    with pytest.raises(asyncssh.DisconnectError) as third:
        await server.connect(password="wrong password", preferred_auth="password")
    assert third.value.reason == "too many failed logins: try again later"


@pytest.mark.parametrize(
    "password",
    ["correct\u00a0horse battery", "cafe\u0301 au lait", "\uff50\uff41\uff53\uff53word!"],
    ids=["no-break space", "decomposed accent", "full-width letters"],
)
async def test_a_password_that_ssh_normalizes_still_logs_in(server: Server, password: str) -> None:
    """SSH servers get a password after SASLprep (RFC 4013; asyncssh applies it): a no-break
    space becomes a space, `e` and a combining accent become `é`. A password set with such
    characters was stored as typed and could never log in."""
    await server.app.accounts.update_user(server.org_id, "alice", password=password)
    async with await server.connect(password=password, preferred_auth="password"):
        pass


async def test_a_password_that_ssh_cannot_carry_is_refused(server: Server) -> None:
    from sftphook.errors import InvalidInput

    for password in ("tab\tin the password", "mixed \u05e9\u05dc\u05d5\u05dd text"):
        with pytest.raises(InvalidInput, match="characters SSH clients cannot send") as refused:
            await server.app.accounts.update_user(server.org_id, "alice", password=password)
        assert refused.value.field == "password"
        assert password not in refused.value.message
    async with await server.connect():
        pass  # the password is unchanged
