"""The server's host keys: the same on every node, kept in the database (encrypted) and copied
to the data directory (mode 0600) for inspection.

Nodes behind one load balancer must present one host key, or clients see it change. At start a
node uses the keys the database holds; the first node of an install stores its own (the files
it already had, or new ones), and a node that starts at the same moment and loses that race
takes the winner's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh

from sftphook.errors import InvalidConfiguration
from sftphook.store import settings as stored_settings

if TYPE_CHECKING:
    from sftphook.store import Database
    from sftphook.webhooks.crypto import SecretBox

log = logging.getLogger(__name__)

# (file name, algorithm, key size); ed25519 first: what current clients prefer.
HOST_KEYS = (
    ("ssh_host_ed25519_key", "ssh-ed25519", None),
    ("ssh_host_rsa_key", "ssh-rsa", 3072),
)
SETTING_KEY = "sftp.host_keys"


def load_or_create(directory: Path) -> list[asyncssh.SSHKey]:
    """The host keys in `directory`, creating any that are missing."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys = []
    for file_name, algorithm, size in HOST_KEYS:
        path = directory / file_name
        if path.exists() and path.stat().st_size == 0:
            # Never held a key (a version before this one could leave it so, stopped between
            # creating the file and writing it): nothing is lost by making one.
            log.warning("host key %s is empty: making a new one", path)
            path.unlink()
        if not path.exists():
            options: dict[str, Any] = {"key_size": size} if size else {}
            key = asyncssh.generate_private_key(algorithm, **options)
            if _write_private(path, key.export_private_key(), replace=False):
                (directory / f"{file_name}.pub").write_bytes(key.export_public_key())
                log.info("created host key %s", path)
        keys.append(asyncssh.read_private_key(path))
    return keys


def _write_private(path: Path, data: bytes, *, replace: bool) -> bool:
    """Put `data` at `path`, mode 0600, whole or not at all: written to a temporary file first
    (made anew, whatever a stopped run left under that name), then moved into place. Without
    `replace`, a file that appeared at `path` meanwhile is kept; whether `data` is there now."""
    temp = path.with_name(f".{path.name}.new")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            temp.replace(path)
            return True
        try:
            os.link(temp, path)
        except FileExistsError:
            return False  # another process made this key first: its `.pub` goes with it
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def fingerprints(keys: list[asyncssh.SSHKey]) -> list[tuple[str, str]]:
    """(algorithm, SHA256 fingerprint) of each key, as `ssh` shows them."""
    return [(key.get_algorithm(), key.get_fingerprint("sha256")) for key in keys]


async def load_shared(db: Database, box: SecretBox, directory: Path) -> list[asyncssh.SSHKey]:
    """The install's host keys: the database's, or this node's own stored there first."""
    async with db.session() as session:
        value = await stored_settings.get(session, SETTING_KEY)
    if value is None:
        own = await asyncio.to_thread(load_or_create, directory)
        exported = {
            name: key.export_private_key().decode()
            for (name, _alg, _size), key in zip(HOST_KEYS, own, strict=True)
        }
        async with db.transaction() as session:
            await stored_settings.add_if_absent(
                session, SETTING_KEY, box.encrypt(json.dumps(exported))
            )
            value = await stored_settings.get(session, SETTING_KEY)
        assert value is not None
        if _decrypt(box, value) == exported:
            log.info("stored this node's host keys in the database for every node to use")
            return own
        log.warning("another node stored its host keys first: using those")
    keys = _decrypt(box, value)
    await asyncio.to_thread(_write_copies, directory, keys)
    return [asyncssh.import_private_key(pem) for pem in keys.values()]


_fingerprint_cache: dict[str, list[tuple[str, str]]] = {}


async def shared_fingerprints(db: Database, box: SecretBox) -> list[tuple[str, str]]:
    """The fingerprints of the install's host keys as stored in the database: what every node
    serves, readable on a node without the SFTP role (which has no key files). Empty until an
    SFTP node has started once."""
    async with db.session() as session:
        value = await stored_settings.get(session, SETTING_KEY)
    if value is None:
        return []
    found = _fingerprint_cache.get(value)
    if found is None:
        keys = [asyncssh.import_private_key(pem) for pem in _decrypt(box, value).values()]
        found = fingerprints(keys)
        _fingerprint_cache.clear()  # one install, one value: keep only the current one
        _fingerprint_cache[value] = found
    return found


def _decrypt(box: SecretBox, value: str) -> dict[str, str]:
    try:
        keys = json.loads(box.decrypt(value))
    except ValueError:
        raise InvalidConfiguration(
            "the SFTP host keys stored in the database cannot be decrypted: every node needs "
            "the same encryption key (SFTPHOOK_ENCRYPTION_KEY, or the same secret.key file)"
        ) from None
    if not isinstance(keys, dict) or not keys:
        raise InvalidConfiguration(
            f"the database setting {SETTING_KEY!r} is not a set of host keys"
        )
    return {str(name): str(pem) for name, pem in keys.items()}


def _write_copies(directory: Path, keys: dict[str, str]) -> None:
    """Copy the shared keys to `directory`; a different key found there is kept as
    `<name>.previous` rather than lost."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, pem in keys.items():
        if "/" in name or name.startswith("."):
            continue
        path = directory / name
        data = pem.encode()
        key = asyncssh.import_private_key(data)
        if path.exists():
            # Compared as keys: two exports of one key differ (OpenSSH adds random check bytes).
            with contextlib.suppress(asyncssh.KeyImportError, ValueError):
                if asyncssh.read_private_key(path).public_data == key.public_data:
                    continue
            path.replace(directory / f"{name}.previous")
            log.warning("host key %s replaced by the one every node shares", path)
        _write_private(path, data, replace=True)
        (directory / f"{name}.pub").write_bytes(key.export_public_key())
