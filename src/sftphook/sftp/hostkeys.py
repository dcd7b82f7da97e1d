"""The server's host keys: created once in the data directory (mode 0600) and kept."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import asyncssh

log = logging.getLogger(__name__)

# (file name, algorithm, key size); ed25519 first: what current clients prefer.
HOST_KEYS = (
    ("ssh_host_ed25519_key", "ssh-ed25519", None),
    ("ssh_host_rsa_key", "ssh-rsa", 3072),
)


def load_or_create(directory: Path) -> list[asyncssh.SSHKey]:
    """The host keys in `directory`, creating any that are missing."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys = []
    for file_name, algorithm, size in HOST_KEYS:
        path = directory / file_name
        if not path.exists():
            options: dict[str, Any] = {"key_size": size} if size else {}
            key = asyncssh.generate_private_key(algorithm, **options)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key.export_private_key())
            (directory / f"{file_name}.pub").write_bytes(key.export_public_key())
            log.info("created host key %s", path)
        keys.append(asyncssh.read_private_key(path))
    return keys


def fingerprints(keys: list[asyncssh.SSHKey]) -> list[tuple[str, str]]:
    """(algorithm, SHA256 fingerprint) of each key, as `ssh` shows them."""
    return [(key.get_algorithm(), key.get_fingerprint("sha256")) for key in keys]
