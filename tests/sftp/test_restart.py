"""A real `sftphook serve` process: events and host keys survive a restart."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncssh
from sqlalchemy import select

from sftphook.app import App
from sftphook.config import Settings
from sftphook.store import Database
from sftphook.store.models import Event
from tests.sftp.conftest import PASSWORD, reuse_host_keys

_LISTENING = re.compile(rb"SFTP on 127\.0\.0\.1:(\d+)")


@asynccontextmanager
async def serve_process(data_dir: Path) -> AsyncIterator[int]:
    env = {
        "SFTPHOOK_DATA_DIR": str(data_dir),
        "SFTPHOOK_SFTP__HOST": "127.0.0.1",
        "SFTPHOOK_SFTP__PORT": "0",
        "SFTPHOOK_HTTP__HOST": "127.0.0.1",
        "SFTPHOOK_HTTP__PORT": "0",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from sftphook.cli import main; main()", "serve", "--roles", "sftp",
        env={**os.environ, **env}, stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stderr is not None
    seen = b""
    try:
        async with asyncio.timeout(60):
            while True:
                line = await proc.stderr.readline()
                assert line, f"server exited before listening: {seen.decode(errors='replace')}"
                seen += line
                match = _LISTENING.search(line)
                if match:
                    break
        drain = asyncio.create_task(proc.stderr.read())
        yield int(match.group(1))
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
    await drain
    assert code == 0


async def test_events_and_host_keys_survive_a_restart(
    tmp_path: Path, host_keys_cache: Path
) -> None:
    data_dir = tmp_path / "data"
    settings = Settings.load(data_dir=data_dir)
    reuse_host_keys(settings, host_keys_cache)
    app = App(settings)
    await app.prepare()
    org = await app.accounts.resolve_organization(None)
    await app.accounts.add_user(org.id, "alice", password=PASSWORD)
    await app.db.close()
    options = {
        "username": "alice",
        "password": PASSWORD,
        "known_hosts": None,
        "client_keys": None,
        "encryption_algs": ["aes128-gcm@openssh.com"],
    }

    async with (
        serve_process(data_dir) as port,
        asyncssh.connect("127.0.0.1", port, **options) as conn,  # type: ignore[arg-type]
        conn.start_sftp_client() as sftp,
        sftp.open("kept.txt", "wb") as fh,
    ):
        first_key = conn.get_server_host_key().get_fingerprint()
        await fh.write(b"kept across restarts")

    async with (
        serve_process(data_dir) as port,
        asyncssh.connect("127.0.0.1", port, **options) as conn,  # type: ignore[arg-type]
        conn.start_sftp_client() as sftp,
        sftp.open("kept.txt", "rb") as fh,
    ):
        assert conn.get_server_host_key().get_fingerprint() == first_key
        assert await fh.read() == b"kept across restarts"

    db = Database(Settings.load(data_dir=data_dir).resolved_database_url)
    try:
        async with db.session() as s:
            events = list(await s.scalars(select(Event).order_by(Event.created_at)))
    finally:
        await db.close()
    assert [(e.topic, e.path) for e in events] == [
        ("file.created", "kept.txt"),
        ("file.downloaded", "kept.txt"),
    ]
