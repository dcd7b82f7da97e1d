"""Fixtures for the SFTP tests: a running SFTP front, a user with a password and a key, and a
way to run real clients without blocking the loop the server runs in."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import select

from sftphook.app import App
from sftphook.config import Settings
from sftphook.storage.local import LocalReadHandle
from sftphook.store.models import Event
from tests.conftest import serving

PASSWORD = "correct horse battery"


@dataclasses.dataclass
class Server:
    app: App
    port: int
    org_id: str
    key_file: Path
    username: str = "alice"
    password: str = PASSWORD

    @property
    def root(self) -> Path:
        return self.app.settings.files_root / self.org_id

    def ssh_options(self) -> list[str]:
        return [
            "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes",
            "-o", "LogLevel=ERROR",
            "-o", "IdentitiesOnly=yes",
            "-i", str(self.key_file),
        ]  # fmt: skip

    async def events(self) -> list[Event]:
        async with self.app.db.session() as s:
            rows = await s.scalars(select(Event).order_by(Event.created_at))
            return list(rows)

    async def connect(self, **kwargs: object) -> asyncssh.SSHClientConnection:
        options: dict[str, object] = {
            "username": self.username,
            "password": self.password,
            "known_hosts": None,
            "client_keys": None,
            # The client shares this process's CPU with the server: the cheaper cipher.
            "encryption_algs": ["aes128-gcm@openssh.com"],
        }
        options.update(kwargs)
        return await asyncssh.connect("127.0.0.1", self.port, **options)  # type: ignore[arg-type]


@dataclasses.dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


async def run(
    argv: Sequence[str],
    *,
    stdin: bytes | None = None,
    limit: float = 60,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Result:
    """Run a client in a subprocess without blocking the event loop the server runs in."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return Result(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))


def write_client_key(directory: Path) -> tuple[Path, str]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    path = directory / "id_ed25519"
    path.write_bytes(key.export_private_key())
    path.chmod(0o600)
    public = key.export_public_key().decode().strip()
    (directory / "id_ed25519.pub").write_text(public + "\n")
    return path, public


@pytest.fixture
def client_key(tmp_path: Path) -> tuple[Path, str]:
    keys = tmp_path / "client"
    keys.mkdir()
    return write_client_key(keys)


@pytest.fixture(scope="session")
def host_keys_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Host keys made once per test run: an RSA key takes a while to generate."""
    from sftphook.sftp import hostkeys

    directory = tmp_path_factory.mktemp("host_keys")
    hostkeys.load_or_create(directory)
    return directory


def reuse_host_keys(settings: Settings, cache: Path) -> None:
    settings.host_keys_dir.mkdir(parents=True, exist_ok=True)
    for path in cache.iterdir():
        shutil.copy2(path, settings.host_keys_dir / path.name)


@pytest.fixture
async def server(
    settings: Settings,
    client_key: tuple[Path, str],
    host_keys_cache: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Server]:
    """The `sftp` role, or the roles a test gives with
    `@pytest.mark.parametrize("server", [frozenset({"sftp", "http"})], indirect=True)`."""
    reuse_host_keys(settings, host_keys_cache)
    roles = getattr(request, "param", frozenset({"sftp"}))
    async with serving(settings, roles) as app:
        org = await app.accounts.resolve_organization(None)
        await app.accounts.add_user(org.id, "alice", password=PASSWORD, public_keys=[client_key[1]])
        running = Server(app=app, port=app.sftp.port, org_id=org.id, key_file=client_key[0])
        running.root.mkdir(parents=True, exist_ok=True)
        yield running


def topics(events: Sequence[Event]) -> list[tuple[str, str]]:
    return [(e.topic, e.path) for e in events]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """The files read from their start by the server (the names it opened them by)."""
    started: list[tuple[str, ...]] = []
    pread = LocalReadHandle.pread

    def counted(self: LocalReadHandle, offset: int, size: int) -> bytes:
        if offset == 0:
            started.append(self.org_parts)
        return pread(self, offset, size)

    monkeypatch.setattr(LocalReadHandle, "pread", counted)
    return started
