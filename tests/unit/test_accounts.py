"""The accounts service's rules, as every front (API, CLI, dashboard) relies on them."""

from __future__ import annotations

import pytest

from sftphook.accounts import passwords
from sftphook.app import App
from sftphook.errors import InvalidInput
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
