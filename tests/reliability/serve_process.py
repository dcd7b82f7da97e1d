"""A real `sftphook serve` process for the fault tests: a data directory prepared with a user
and webhooks, start, SIGKILL or SIGTERM, start again; SFTP uploads from asyncssh clients; and
what the store holds, read straight from the database file."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncssh
from sqlalchemy import func, select

from sftphook.app import App
from sftphook.config import Settings
from sftphook.store import Database
from sftphook.store.models import Delivery, Event
from tests.sftp.conftest import PASSWORD, reuse_host_keys

SRC = str(Path(__file__).resolve().parents[2] / "src")
USERNAME = "partner"
# Clients log in with a key: a password login costs an argon2 hash on the server, which 50
# sessions at once turn into the whole of the test's time.
CLIENT_KEY = asyncssh.generate_private_key("ssh-ed25519")
_SFTP_LINE = re.compile(rb"SFTP\s+127\.0\.0\.1:(\d+)")


def base_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "sftp": {"host": "127.0.0.1", "port": 0},
        "http": {"host": "127.0.0.1", "port": 0},
        "webhooks": {"allow_http": True, "allowed_networks": ["127.0.0.0/8"]},
    }
    values.update(overrides)
    return Settings.load(**values)


async def prepare(settings: Settings, host_keys: Path, webhook_urls: Sequence[str] = ()) -> str:
    """Schema, the default organization, one SFTP user and the webhooks; returns the org id."""
    reuse_host_keys(settings, host_keys)
    app = App(settings)
    try:
        await app.prepare()
        org = (await app.accounts.resolve_organization(None)).id
        await add_partner(app, org)
        for n, url in enumerate(webhook_urls):
            await app.webhooks.create(org, nickname=f"hook{n}", url=url, topics=["file.created"])
    finally:
        await app.db.close()
    return org


async def add_partner(app: App, org: str) -> None:
    """The SFTP user the clients of these tests log in as."""
    public = CLIENT_KEY.export_public_key().decode().strip()
    await app.accounts.add_user(org, USERNAME, password=PASSWORD, public_keys=[public])


def serve_env(data_dir: Path, webhooks: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "SFTPHOOK_DATA_DIR": str(data_dir),
        "SFTPHOOK_SFTP__HOST": "127.0.0.1",
        "SFTPHOOK_SFTP__PORT": "0",
        "SFTPHOOK_HTTP__HOST": "127.0.0.1",
        "SFTPHOOK_HTTP__PORT": "0",
        "SFTPHOOK_WEBHOOKS__ALLOW_HTTP": "true",
        "SFTPHOOK_WEBHOOKS__ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "SFTPHOOK_WEBHOOKS__RETRY_JITTER": "0",
    }
    for key, value in (webhooks or {}).items():
        env[f"SFTPHOOK_WEBHOOKS__{key.upper()}"] = value
    return env


class ServeProcess:
    """`sftphook serve --roles sftp,worker` in a subprocess; its log goes to `log`."""

    def __init__(self, env: dict[str, str], log: Path, roles: str = "sftp,worker") -> None:
        self.env = env
        self.log = log
        self.roles = roles
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def start(self) -> int:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "from sftphook.cli import main; main()",
                "serve", "--roles", self.roles,
                env=self.env, stdout=asyncio.subprocess.PIPE, stderr=log,
            )  # fmt: skip
        assert self.proc.stdout is not None
        async with asyncio.timeout(60):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    raise AssertionError(f"serve exited early: {self.log.read_text()[-3000:]}")
                match = _SFTP_LINE.search(line)
                if match:
                    self.port = int(match.group(1))
                    break
        # Keep reading what `serve` prints so that it never blocks on a full pipe.
        self._drain = asyncio.create_task(self.proc.stdout.read())
        return self.port

    async def kill(self) -> None:
        await self.signal(signal.SIGKILL)

    async def signal(self, sig: int, within: float = 60) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), within)
        await self._drain
        self.proc = None
        return code

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None


async def connect(port: int, source: str | None = None) -> asyncssh.SSHClientConnection:
    """Log in as the partner; from the loopback address `source` if given (127.0.0.0/8 is all
    this machine's), so that many clients need not share one address's connection limit."""
    return await asyncssh.connect(
        "127.0.0.1",
        port,
        username=USERNAME,
        known_hosts=None,
        client_keys=[CLIENT_KEY],
        encryption_algs=["aes128-gcm@openssh.com"],
        local_addr=(source, 0) if source else None,
    )


async def upload(port: int, files: dict[str, bytes]) -> None:
    """Upload every file over one SFTP session, one after another."""
    async with await connect(port) as conn, conn.start_sftp_client() as sftp:
        for name, data in files.items():
            async with sftp.open(name, "wb") as f:
                await f.write(data)


def content(name: str, size: int) -> bytes:
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


class Store:
    """Read the server's database from outside the server."""

    def __init__(self, settings: Settings) -> None:
        self.db = Database(settings.resolved_database_url)

    async def created_paths(self) -> list[str]:
        async with self.db.session() as s:
            rows = await s.scalars(select(Event.path).where(Event.topic == "file.created"))
            return list(rows)

    async def event_ids(self, paths: Sequence[str] | None = None) -> dict[str, str]:
        """path -> event id of the file.created events."""
        async with self.db.session() as s:
            query = select(Event.path, Event.id).where(Event.topic == "file.created")
            rows = (await s.execute(query)).all()
        return {p: i for p, i in rows if paths is None or p in paths}

    async def deliveries_by_status(self) -> dict[str, int]:
        async with self.db.session() as s:
            rows = await s.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
            return {status: int(n) for status, n in rows.all()}

    async def close(self) -> None:
        await self.db.close()
