"""Authentication under bad input: password spraying from one address, the timing of unknown
versus known users, and public keys of every type and size."""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import update

from sftphook.app import App
from sftphook.config import Settings
from sftphook.errors import InvalidInput
from sftphook.store.models import User
from tests.conftest import serving
from tests.reliability.conftest import SOAK, Ledger
from tests.sftp.conftest import host_keys_cache, reuse_host_keys  # noqa: F401

PASSWORD = "the right password 42"
TIMING_TRIES = 60 if SOAK else 10


@asynccontextmanager
async def running(
    settings: Settings, cache: Path, *, ban_threshold: int, users: int
) -> AsyncIterator[tuple[App, int, str]]:
    settings.sftp.ban_threshold = ban_threshold
    reuse_host_keys(settings, cache)
    async with serving(settings, frozenset({"sftp"})) as app:
        org = await app.accounts.resolve_organization(None)
        for n in range(users):
            await app.accounts.add_user(org.id, f"user{n}", password=PASSWORD)
        yield app, app.sftp.port, org.id


def connect(
    port: int, username: str, password: str | None = None, **kw: object
) -> asyncssh.SSHClientConnection:
    options: dict[str, object] = {
        "username": username,
        "known_hosts": None,
        "client_keys": None,
        "password": password,
        "encryption_algs": ["aes128-gcm@openssh.com"],
        "connect_timeout": 10,
    }
    options.update(kw)
    return asyncssh.connect("127.0.0.1", port, **options)  # type: ignore[arg-type]


async def test_password_spraying_from_one_address_is_banned(
    settings: Settings,
    host_keys_cache: Path,  # noqa: F811
    ledger: Ledger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sftphook")
    threshold = 10 if SOAK else 5
    async with running(settings, host_keys_cache, ban_threshold=threshold, users=4) as (
        _,
        port,
        _org,
    ):
        attempts = 0
        banned_after: int | None = None
        for n in range(3 * threshold):
            attempts += 1
            try:
                # One wrong guess per name, across many names (four of them real users):
                # spraying, not brute force.
                async with connect(port, f"user{n % 12}", f"Spring2026!{n}"):
                    pass
                pytest.fail("a wrong password was accepted")
            except asyncssh.PermissionDenied:
                continue
            except (asyncssh.Error, OSError):
                banned_after = attempts - 1
                break
        assert banned_after is not None, "the address was never banned"
        refused_while_banned = 0
        for n in range(3):
            try:
                async with connect(port, f"user{n}", PASSWORD):
                    pass
            except (asyncssh.Error, OSError):
                refused_while_banned += 1
    ledger.record(
        "authentication",
        "password spraying across 12 usernames from one address",
        tried=attempts + 3,
        escaped=(0 if banned_after == threshold else 1) + (3 - refused_while_banned),
        note=f"banned after {banned_after} failed logins (threshold {threshold}); "
        f"the right password refused {refused_while_banned}/3 times while banned",
    )
    assert banned_after == threshold
    assert refused_while_banned == 3
    assert PASSWORD not in caplog.text and "Spring2026!" not in caplog.text


class _Guesser(asyncssh.SSHClient):
    """Offers a wrong password `tries` times on one connection and times each refusal."""

    def __init__(self, tries: int) -> None:
        self._left = tries
        self._last: float | None = None
        self.durations: list[float] = []

    def password_auth_requested(self) -> str | None:
        now = time.perf_counter()
        if self._last is not None:
            self.durations.append(now - self._last)
        if self._left == 0:
            return None
        self._left -= 1
        self._last = time.perf_counter()
        return "not the password"


async def _time_refusals(port: int, username: str, tries: int) -> list[float]:
    guesser = _Guesser(tries)
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.create_connection(
            lambda: guesser,
            "127.0.0.1",
            port,
            username=username,
            known_hosts=None,
            client_keys=None,
            preferred_auth="password",
            encryption_algs=["aes128-gcm@openssh.com"],
        )
    return guesser.durations


async def test_unknown_and_known_users_take_the_same_time_to_refuse(
    settings: Settings,
    host_keys_cache: Path,  # noqa: F811
    ledger: Ledger,
) -> None:
    async with running(settings, host_keys_cache, ban_threshold=10_000, users=1) as (_, port, _org):
        known: list[float] = []
        unknown: list[float] = []
        await _time_refusals(port, "user0", 3)  # warm-up: argon2, the database, the code paths
        for _ in range(TIMING_TRIES // 5):
            known += await _time_refusals(port, "user0", 5)
            unknown += await _time_refusals(port, "nobody-here", 5)
    # Medians: one attempt that waited for a busy machine's CPU must not decide the verdict.
    mk, mu = statistics.median(known), statistics.median(unknown)
    spread = statistics.pstdev(known + unknown)
    # Distinguishable would be a gap larger than the noise of one guess, or above a tenth of it.
    limit = max(spread, 0.1 * min(mk, mu))
    gap = abs(mk - mu)
    ledger.record(
        "authentication",
        "timing of unknown vs known user (wrong password)",
        tried=len(known) + len(unknown),
        escaped=0 if gap < limit else 1,
        note=f"medians: known {mk * 1000:.1f} ms, unknown {mu * 1000:.1f} ms "
        f"(n={len(known)} each), "
        f"gap {gap * 1000:.1f} ms, spread {spread * 1000:.1f} ms, limit {limit * 1000:.1f} ms",
    )
    assert gap < limit


KEY_KINDS = [
    ("ssh-ed25519", {}, True),
    ("ecdsa-sha2-nistp256", {}, True),
    ("ecdsa-sha2-nistp384", {}, True),
    ("ecdsa-sha2-nistp521", {}, True),
    ("ssh-rsa", {"key_size": 2048}, True),
    ("ssh-rsa", {"key_size": 3072}, True),
    ("ssh-rsa", {"key_size": 4096}, True),
    ("ssh-rsa", {"key_size": 1024}, False),
    ("ssh-dss", {}, False),
]


async def test_keys_of_every_type_and_size_are_accepted_or_refused_by_policy(
    settings: Settings,
    host_keys_cache: Path,  # noqa: F811
    ledger: Ledger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    wrong = 0
    async with running(settings, host_keys_cache, ban_threshold=10_000, users=0) as running_app:
        app, port, org = running_app
        for n, (algorithm, options, accepted) in enumerate(KEY_KINDS):
            key = asyncssh.generate_private_key(algorithm, **options)  # type: ignore[arg-type]
            public = key.export_public_key().decode().strip()
            name = f"key{n}"
            try:
                await app.accounts.add_user(org, name, public_keys=[public])
                saved = True
            except InvalidInput as exc:
                saved = False
                assert "public_keys" in str(exc.to_problem())
            if not saved:
                # A key of that kind stored before the rule: refused at login all the same.
                await app.accounts.add_user(org, name, password=PASSWORD)
                async with app.db.transaction() as s:
                    await s.execute(
                        update(User).where(User.username == name).values(public_keys=public)
                    )
            try:
                async with connect(
                    port, name, client_keys=[key], preferred_auth="publickey"
                ) as conn:
                    async with conn.start_sftp_client() as sftp:
                        await sftp.stat(".")
                    logged_in = True
            except asyncssh.PermissionDenied:
                logged_in = False
            if (saved, logged_in) != (accepted, accepted):
                wrong += 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    ledger.record(
        "authentication",
        "public keys: Ed25519, ECDSA P-256/384/521, RSA 2048/3072/4096 accepted; "
        "RSA 1024 and DSA refused",
        tried=len(KEY_KINDS),
        escaped=wrong,
        crashed=len(errors),
        note="refused keys fail at save (422) and, if stored earlier, at login",
    )
    assert wrong == 0
    assert not errors, [r.getMessage() for r in errors]
