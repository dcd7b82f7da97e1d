"""Password hashing (argon2id), done off the event loop."""

from __future__ import annotations

import asyncio
import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    # Verified against when a user does not exist, so that an unknown user costs the same time.
    # Made on first use, not at import: every CLI command imports this module.
    return _hasher.hash("sftphook-no-such-user")


MIN_LENGTH = 8
MAX_LENGTH = 1024


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def hash_password_async(password: str) -> str:
    # Hashing costs as much as verifying: off the event loop too, so an API call that sets a
    # password does not stall SFTP transfers.
    return await asyncio.to_thread(hash_password, password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if len(password) > MAX_LENGTH:
        return False
    try:
        return (
            _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    # argon2 takes tens of milliseconds of CPU: never on the event loop.
    return await asyncio.to_thread(verify_password, password_hash, password)
