"""Rules for names, homes, permissions and keys, as pure functions raising InvalidInput."""

from __future__ import annotations

import posixpath
import re
from typing import Any, cast

import asyncssh
from asyncssh.saslprep import SASLPrepError, saslprep

from sftphook.accounts.passwords import MAX_LENGTH, MIN_LENGTH
from sftphook.errors import InvalidInput

PERMISSIONS = ("read", "write", "delete", "list")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(value: str, *, what: str, field: str) -> str:
    if not _NAME.match(value):
        raise InvalidInput(
            f"{what} {value!r} is not valid: use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            field=field,
        )
    return value


def normalize_home(value: str) -> str:
    """`partners/acme`, `/partners/acme/` → `/partners/acme`; refuses `..` and odd characters."""
    if "\x00" in value or "\\" in value:
        raise InvalidInput("home must not contain NUL or backslash characters", field="home")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidInput("home must not contain '..'", field="home")
    if len(value) > 1024:
        raise InvalidInput("home is longer than 1024 characters", field="home")
    return posixpath.join("/", *parts) if parts else "/"


def normalize_permissions(value: str | list[str] | tuple[str, ...]) -> str:
    items = value.split(",") if isinstance(value, str) else list(value)
    wanted = {p.strip().lower() for p in items if p.strip()}
    unknown = wanted - set(PERMISSIONS)
    if unknown:
        raise InvalidInput(
            f"unknown permission(s) {', '.join(sorted(unknown))}; choose from "
            + ", ".join(PERMISSIONS),
            field="permissions",
        )
    return ",".join(p for p in PERMISSIONS if p in wanted)


def check_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise InvalidInput(
            f"password is too short: use at least {MIN_LENGTH} characters", field="password"
        )
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"password is longer than {MAX_LENGTH} characters", field="password")
    return password


def check_user_password(password: str) -> str:
    """An SFTP user's password in the form SSH delivers it, to be hashed.

    An SSH server gets the typed password after SASLprep (RFC 4013, asked by RFC 4252; asyncssh
    applies it before `validate_password`): a no-break space arrives as a space, `e` and a
    combining accent as `é`. Stored as typed, such a password could never log in; one SASLprep
    refuses (control characters, right-to-left text mixed with left-to-right) cannot be sent.
    """
    try:
        prepared = saslprep(password)
    except SASLPrepError:
        # The reason names the character: it stays out of the message, as the password does.
        raise InvalidInput(
            "password has characters SSH clients cannot send (control characters, or "
            "right-to-left text mixed with left-to-right): choose another",
            field="password",
        ) from None
    return check_password(prepared)


MIN_RSA_BITS = 2048


def key_refusal(key: asyncssh.SSHKey) -> str | None:
    """Why a public key type or size is not accepted for login, or None. DSA is refused (1024-bit
    by definition, dropped by OpenSSH 9.8); RSA needs at least 2048 bits, as NIST and OpenSSH's
    `RequiredRSASize` advise."""
    algorithm = key.algorithm.decode(errors="replace")
    if algorithm == "ssh-dss" or algorithm.startswith("ssh-dss-"):
        return "DSA keys are not accepted: use an Ed25519, ECDSA or RSA (2048+ bits) key"
    if algorithm == "ssh-rsa":
        bits = cast(Any, key)._key.pyca_key.key_size
        if bits < MIN_RSA_BITS:
            return f"RSA keys need at least {MIN_RSA_BITS} bits (this one has {bits})"
    return None


def normalize_public_keys(keys: list[str] | tuple[str, ...]) -> str:
    """Check each OpenSSH public key line and return them one per line."""
    lines: list[str] = []
    for raw in keys:
        for line in raw.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                key = asyncssh.import_public_key(line)
            except (asyncssh.KeyImportError, ValueError) as exc:
                raise InvalidInput(
                    f"not an OpenSSH public key: {line[:40]!r}…", field="public_keys"
                ) from exc
            refusal = key_refusal(key)
            if refusal:
                raise InvalidInput(refusal, field="public_keys")
            lines.append(line)
    return "\n".join(lines)
