"""Password hashing (argon2id), done off the event loop."""

from __future__ import annotations

import asyncio
import base64
import functools

from argon2 import Parameters, PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import ARGON2_VERSION

from sftphook.store.models import password_salt

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    # Verified against when a user does not exist, so that an unknown user costs the same time
    # as a known one whose hash has today's parameters (`needs_rehash` brings them there).
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


def needs_rehash(password_hash: str) -> bool:
    """Whether a stored hash was made with other parameters than a new one would be (ours, or
    argon2-cffi's defaults, changed since): slower or faster than the dummy hash of unknown
    users, and weaker when the parameters were raised.

    Like `PasswordHasher.check_needs_rehash`, but the salt's length does not count: a rehash
    keeps the salt (see `rehash`), so a hash whose salt has another length would be rehashed on
    every login without ever reaching today's parameters.
    """
    try:
        stored = extract_parameters(password_hash)
    except InvalidHashError:
        return False
    current = Parameters(
        type=_hasher.type,
        version=ARGON2_VERSION,
        salt_len=stored.salt_len,
        hash_len=_hasher.hash_len,
        time_cost=_hasher.time_cost,
        memory_cost=_hasher.memory_cost,
        parallelism=_hasher.parallelism,
    )
    return stored != current


def rehash(password_hash: str, password: str) -> str:
    """A hash of `password`, just verified against `password_hash`, with today's parameters
    and the same salt.

    The salt names one setting of a password (`store.models.password_salt`): keeping it is
    what lets the SFTP and dashboard sessions opened with the old hash go on, while a new
    password, which gets a new random salt, still ends them. Reusing a salt for the *same*
    password gives an attacker nothing the old hash did not.
    """
    salt = password_salt(password_hash)
    return _hasher.hash(password, salt=base64.b64decode(salt + "=" * (-len(salt) % 4)))


async def rehash_async(password_hash: str, password: str) -> str:
    return await asyncio.to_thread(rehash, password_hash, password)
