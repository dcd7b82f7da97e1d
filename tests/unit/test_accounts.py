"""The accounts service's rules, as every front (API, CLI, dashboard) relies on them."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, extract_parameters

from sftphook.accounts import passwords
from sftphook.app import App
from sftphook.errors import InvalidInput
from sftphook.store.models import password_salt
from tests.api.conftest import PUBLIC_KEY


async def test_an_empty_password_is_too_short_not_no_password(app: App) -> None:
    """Only None means "no password": "" was taken for it, so update_user(password="") removed
    a key holder's password (the dashboard's empty reset form did that), and add_user with ""
    and no key made a user who could not log in at all."""
    org = await app.accounts.resolve_organization(None)
    with pytest.raises(InvalidInput, match="too short"):
        await app.accounts.add_user(org.id, "nobody", password="")
    assert await app.accounts.list_users(org.id) == []

    await app.accounts.add_user(org.id, "acme", password="first password", public_keys=[PUBLIC_KEY])
    with pytest.raises(InvalidInput, match="too short"):
        await app.accounts.update_user(org.id, "acme", password="")
    user = await app.accounts.get_user(org.id, "acme")
    assert passwords.verify_password(user.password_hash, "first password")
    # None still removes it (the API's `"password": null`).
    await app.accounts.update_user(org.id, "acme", password=None)
    assert (await app.accounts.get_user(org.id, "acme")).password_hash is None


WEAK = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def test_a_hash_with_weaker_parameters_is_rehashed_with_the_same_salt() -> None:
    weak = WEAK.hash("old but fine")
    assert passwords.needs_rehash(weak)
    new = passwords.rehash(weak, "old but fine")
    assert not passwords.needs_rehash(new)
    assert extract_parameters(new) == extract_parameters(passwords.hash_password("x" * 8))
    assert password_salt(new) == password_salt(weak)
    assert passwords.verify_password(new, "old but fine")
    assert not passwords.verify_password(new, "another one")


def test_a_salt_of_another_length_is_no_reason_to_rehash() -> None:
    """A rehash keeps the salt: counting its length would rehash such a hash at every login."""
    current = passwords._hasher
    other_salt = PasswordHasher(
        time_cost=current.time_cost,
        memory_cost=current.memory_cost,
        parallelism=current.parallelism,
        hash_len=current.hash_len,
        salt_len=current.salt_len + 8,
    )
    assert not passwords.needs_rehash(other_salt.hash("old but fine"))
    assert not passwords.needs_rehash("not an argon2 hash")


def test_the_dummy_hash_of_unknown_users_has_current_parameters() -> None:
    """An unknown name must cost what a known one costs once its hash is rehashed."""
    assert not passwords.needs_rehash(passwords._dummy_hash())
    assert not passwords.verify_password(None, "sftphook-no-such-user")


def test_a_new_password_gets_a_new_salt() -> None:
    """The salt names one setting of a password: sessions end when it changes."""
    assert password_salt(passwords.hash_password("same password")) != password_salt(
        passwords.hash_password("same password")
    )
