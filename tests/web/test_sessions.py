"""Session cookies, CSRF tokens, login throttling and one-time messages, as pure code."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac

from argon2 import PasswordHasher

from sftphook.accounts import passwords
from sftphook.app import App
from sftphook.store import settings as settings_store
from sftphook.web.flash import OneTimeStore
from sftphook.web.sessions import LoginThrottle, SessionCodec, WebSession

NOW = 1_800_000_000_000


def test_a_session_survives_the_round_trip_and_nothing_else_does() -> None:
    codec = SessionCodec(b"k" * 32)
    session = WebSession.anonymous(NOW).logged_in("admin-1", "org-1", NOW)
    cookie = codec.dumps(session)
    assert codec.loads(cookie, NOW + 1000) == session
    body, mac = cookie.split(".")
    assert codec.loads(body + "." + mac[::-1], NOW) is None
    assert SessionCodec(b"x" * 32).loads(cookie, NOW) is None
    assert codec.loads(cookie, NOW + 13 * 3600 * 1000) is None  # expired
    assert codec.loads("garbage", NOW) is None and codec.loads(None, NOW) is None


def test_csrf_tokens_belong_to_one_session() -> None:
    codec = SessionCodec(b"k" * 32)
    first, second = WebSession.anonymous(NOW), WebSession.anonymous(NOW)
    token = codec.csrf_token(first)
    assert codec.check_csrf(first, token)
    assert not codec.check_csrf(second, token)
    assert not codec.check_csrf(first, None) and not codec.check_csrf(first, "")
    # Logging in changes the nonce, so a token planted before login is worthless after.
    assert not codec.check_csrf(first.logged_in("a", "o", NOW), token)


def test_the_credential_tag_survives_a_rehash_but_not_a_new_password() -> None:
    codec = SessionCodec(b"k" * 32)
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("the password")
    session = WebSession.anonymous(NOW).logged_in("a1", "o1", NOW, codec.credential_tag(weak))
    assert codec.same_credential(session, passwords.rehash(weak, "the password"))
    assert not codec.same_credential(session, passwords.hash_password("the password"))
    assert not codec.same_credential(session, passwords.hash_password("another password"))


def test_a_session_tagged_with_the_whole_hash_holds_while_the_hash_is_unchanged() -> None:
    """Sessions issued before tags named the salt carry the tag of the whole hash."""
    codec = SessionCodec(b"k" * 32)
    stored = passwords.hash_password("the password")
    old_tag = base64.urlsafe_b64encode(
        hmac.new(b"k" * 32, b"credential\0" + stored.encode(), hashlib.sha256).digest()[:16]
    )
    session = WebSession.anonymous(NOW).logged_in("a1", "o1", NOW, old_tag.rstrip(b"=").decode())
    assert codec.same_credential(session, stored)
    assert not codec.same_credential(session, passwords.hash_password("the password"))


def test_throttle_locks_out_after_repeated_failures_then_forgives() -> None:
    throttle = LoginThrottle(max_failures=3, window=60, lockout=120)
    keys = ["ip:1.2.3.4", "name:admin"]
    for t in range(3):
        assert throttle.retry_after(keys, now=t) is None
        throttle.failed(keys, now=t)
    assert throttle.retry_after(keys, now=3) == 119
    assert throttle.retry_after(["name:admin"], now=100) == 22
    assert throttle.retry_after(keys, now=200) is None
    throttle.failed(keys, now=300)
    throttle.succeeded(keys)
    assert throttle.retry_after(keys, now=301) is None


async def test_one_time_messages_are_read_once_by_their_session_only(app: App) -> None:
    store = OneTimeStore(app.db, app.secret_box)
    item = await store.put("session-a", {"secret": "whsec_x"})
    async with app.db.session() as s:
        stored = await settings_store.get(s, "dashboard.message." + item)
    assert stored is not None and "whsec_x" not in stored  # encrypted at rest
    assert await store.take("session-b", item) is None
    assert await store.take("session-a", item) == {"secret": "whsec_x"}
    assert await store.take("session-a", item) is None


async def test_one_time_messages_expire(app: App) -> None:
    store = OneTimeStore(app.db, app.secret_box, ttl_seconds=0)
    item = await store.put("session-a", {"secret": "whsec_x"})
    await asyncio.sleep(0.01)
    assert await store.take("session-a", item) is None
