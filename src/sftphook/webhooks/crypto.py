"""Secrets at rest: AES-256-GCM with a key from the settings or a 0600 key file."""

from __future__ import annotations

import base64
import os
import secrets
import time
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1"


class SecretBox:
    """Encrypts short strings (signing secrets, authorization values) for the database."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the encryption key must be 32 bytes (base64 of 32 bytes)")
        self._aead = AESGCM(key)

    def encrypt(self, plain: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, plain.encode(), _VERSION.encode())
        return f"{_VERSION}:" + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, token: str) -> str:
        version, _, data = token.partition(":")
        if version != _VERSION:
            raise ValueError("unknown encrypted value format")
        raw = base64.b64decode(data)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], _VERSION.encode()).decode()
        except InvalidTag as exc:
            raise ValueError(
                "cannot decrypt a stored secret: the encryption key differs from the one that "
                "encrypted it"
            ) from exc


def decode_key(value: str) -> bytes:
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except ValueError as exc:
        raise ValueError("the encryption key must be base64 of 32 bytes") from exc
    if len(key) != 32:
        raise ValueError("the encryption key must be base64 of 32 bytes")
    return key


def load_or_create_key(path: Path) -> bytes:
    """Read the key file, or create it (mode 0600) with a new random key."""
    if path.exists():
        return decode_key(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process (a CLI command beside the server) created it first.
        time.sleep(0.1)
        return decode_key(path.read_text())
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    return decode_key(path.read_text())


def open_box(encryption_key: str | None, key_file: Path) -> SecretBox:
    """The box for this install: the configured key, or the key file (created on first use)."""
    key = decode_key(encryption_key) if encryption_key else load_or_create_key(key_file)
    return SecretBox(key)
