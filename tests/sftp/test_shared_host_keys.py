"""Nodes on one database present one host key, whoever starts first, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncssh
import pytest

from sftphook.app import App
from sftphook.config import Settings
from sftphook.errors import InvalidConfiguration
from sftphook.sftp import hostkeys
from sftphook.webhooks.crypto import SecretBox
from tests.conftest import postgres_database, serving


@asynccontextmanager
async def sqlite_database(tmp_path: Path) -> AsyncIterator[str]:
    yield f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"


async def presented(port: int) -> set[str]:
    found = set()
    for algs in (["ssh-ed25519"], ["rsa-sha2-256"]):
        key = await asyncssh.get_server_host_key("127.0.0.1", port, server_host_key_algs=algs)
        assert key is not None
        found.add(key.get_fingerprint("sha256"))
    return found


@pytest.fixture(scope="module")
def other_host_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("other_host_keys")
    hostkeys.load_or_create(directory)
    return directory


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_two_nodes_starting_together_present_the_same_host_keys(
    backend: str, tmp_path: Path, host_keys_cache: Path, other_host_keys: Path
) -> None:
    database = sqlite_database(tmp_path) if backend == "sqlite" else postgres_database()
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    async with database as url:
        nodes = []
        # Each node comes with host keys of its own, as two separately installed machines do.
        for name, keys in (("a", host_keys_cache), ("b", other_host_keys)):
            settings = Settings.load(
                data_dir=tmp_path / name,
                database_url=url,
                encryption_key=key,
                sftp={"host": "127.0.0.1", "port": 0},
                http={"host": "127.0.0.1", "port": 0},
            )
            shutil.copytree(keys, settings.host_keys_dir)
            nodes.append(settings)
        apps = [App(settings) for settings in nodes]
        await apps[0].prepare()
        # The start-up race itself, node against node (each with its own connections). Whole
        # Apps cannot race in one process: Alembic's migration context is process-global.
        raced = await asyncio.gather(
            *(hostkeys.load_shared(a.db, a.secret_box, a.settings.host_keys_dir) for a in apps)
        )
        for a in apps:
            await a.db.close()
        shown = []
        fronts = []
        for settings in nodes:
            async with serving(settings, frozenset({"sftp"})) as node:
                shown.append(await presented(node.sftp.port))
                fronts.append(set(dict(node.sftp.host_key_fingerprints).values()))

    assert [set(dict(hostkeys.fingerprints(keys)).values()) for keys in raced] == shown
    assert shown[0] == shown[1] == fronts[0] == fronts[1]
    assert len(shown[0]) == 2
    for settings in nodes:
        # The shared keys are copied to each node's data directory, private parts 0600.
        on_disk = hostkeys.load_or_create(settings.host_keys_dir)
        assert {k.get_fingerprint("sha256") for k in on_disk} == shown[0]
        for file_name, _alg, _size in hostkeys.HOST_KEYS:
            mode = os.stat(settings.host_keys_dir / file_name).st_mode & 0o777
            assert mode == 0o600
    # The loser's own keys are kept aside, not lost.
    kept = [s for s in nodes if (s.host_keys_dir / "ssh_host_ed25519_key.previous").exists()]
    assert len(kept) == 1


async def test_a_node_with_another_encryption_key_is_told_why_it_cannot_start(
    app: App, tmp_path: Path, host_keys_cache: Path
) -> None:
    await hostkeys.load_shared(app.db, app.secret_box, host_keys_cache)
    stranger = SecretBox(secrets.token_bytes(32))
    with pytest.raises(InvalidConfiguration, match="same encryption key"):
        await hostkeys.load_shared(app.db, stranger, tmp_path / "keys")
