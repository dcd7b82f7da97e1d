"""Dashboard sessions: a signed cookie, CSRF tokens bound to it, and login throttling.

The cookie holds no secret, only who is logged in and which organization is current, signed
with HMAC-SHA256 under a key kept in the settings table (shared by every node). Logging out
records the time in the settings table; sessions of that admin issued before it are refused. A
session also carries a tag of the admin's password (the salt of its hash), so a new password
ends it too, while a rehash of the same password at login does not.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import time
from collections import deque

from sqlalchemy.exc import IntegrityError

from sftphook.store import settings as settings_store
from sftphook.store.database import Database
from sftphook.store.models import password_salt

COOKIE_NAME = "sftphook_session"
MAX_AGE_SECONDS = 12 * 3600
KEY_SETTING = "dashboard.session_key"
LOGOUT_SETTING = "dashboard.sessions_after.{admin_id}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclasses.dataclass(frozen=True, slots=True)
class WebSession:
    """One browser's session; `nonce` also keys its CSRF token and one-time messages."""

    nonce: str
    issued_at: int
    admin_id: str | None = None
    organization_id: str | None = None
    # `SessionCodec.credential_tag` of the password hash the admin logged in with.
    credential: str | None = None

    @classmethod
    def anonymous(cls, now_ms: int) -> WebSession:
        return cls(nonce=secrets.token_urlsafe(18), issued_at=now_ms)

    def logged_in(
        self,
        admin_id: str,
        organization_id: str | None,
        now_ms: int,
        credential: str | None = None,
    ) -> WebSession:
        # A fresh nonce at login: a nonce planted before login is worthless afterwards.
        return WebSession(secrets.token_urlsafe(18), now_ms, admin_id, organization_id, credential)

    def switched(self, organization_id: str) -> WebSession:
        return dataclasses.replace(self, organization_id=organization_id)


class SessionCodec:
    """Signs and checks session cookies and the CSRF tokens derived from them."""

    def __init__(self, key: bytes, max_age_seconds: int = MAX_AGE_SECONDS) -> None:
        self._key = key
        self._max_age_ms = max_age_seconds * 1000

    def _mac(self, purpose: str, data: bytes) -> bytes:
        return hmac.new(self._key, purpose.encode() + b"\0" + data, hashlib.sha256).digest()

    def dumps(self, session: WebSession) -> str:
        body = json.dumps(dataclasses.asdict(session), separators=(",", ":")).encode()
        return _b64(body) + "." + _b64(self._mac("session", body))

    def loads(self, value: str | None, now_ms: int) -> WebSession | None:
        if not value or value.count(".") != 1 or len(value) > 2048:
            return None
        body_part, mac_part = value.split(".")
        try:
            body = _unb64(body_part)
            mac = _unb64(mac_part)
        except ValueError:
            return None
        if not hmac.compare_digest(mac, self._mac("session", body)):
            return None
        try:
            session = WebSession(**json.loads(body))
        except (ValueError, TypeError):
            return None
        if not 0 <= now_ms - session.issued_at <= self._max_age_ms:
            return None
        return session

    def csrf_token(self, session: WebSession) -> str:
        return _b64(self._mac("csrf", session.nonce.encode()))

    def check_csrf(self, session: WebSession, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session))

    def credential_tag(self, password_hash: str) -> str:
        """Names one setting of a password without revealing it (the cookie is signed, not
        secret): a tag of the hash's salt, which a new password replaces and a rehash with new
        argon2 parameters keeps (`store.models.password_salt`)."""
        return _b64(self._mac("credential", password_salt(password_hash).encode())[:16])

    def _whole_hash_tag(self, password_hash: str) -> str:
        # What sessions issued before tags named the salt carry: the tag of the whole hash.
        # Accepted while that hash is unchanged; it can go once such sessions have expired
        # (MAX_AGE_SECONDS after an upgrade).
        return _b64(self._mac("credential", password_hash.encode())[:16])

    def same_credential(self, session: WebSession, password_hash: str) -> bool:
        if session.credential is None:
            return False
        return hmac.compare_digest(
            session.credential, self.credential_tag(password_hash)
        ) or hmac.compare_digest(session.credential, self._whole_hash_tag(password_hash))


async def load_key(db: Database) -> bytes:
    """The signing key from the settings table, created on first use."""
    async with db.session() as s:
        stored = await settings_store.get(s, KEY_SETTING)
    if stored is None:
        try:
            async with db.transaction() as s:
                await settings_store.put(s, KEY_SETTING, _b64(secrets.token_bytes(32)))
        except IntegrityError:
            pass  # another node created it first
        async with db.session() as s:
            stored = await settings_store.get(s, KEY_SETTING)
    assert stored is not None
    return _unb64(stored)


async def sessions_valid_after(db: Database, admin_id: str) -> int:
    async with db.session() as s:
        value = await settings_store.get(s, LOGOUT_SETTING.format(admin_id=admin_id))
    return int(value) if value else 0


async def end_sessions(db: Database, admin_id: str, now_ms: int) -> None:
    async with db.transaction() as s:
        await settings_store.put(s, LOGOUT_SETTING.format(admin_id=admin_id), str(now_ms))


class LoginThrottle:
    """Refuses logins for a while after repeated failures from one address or for one name."""

    def __init__(
        self, max_failures: int = 5, window: float = 300.0, lockout: float = 300.0
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] > max(self.window, self.lockout):
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, keys: list[str], now: float | None = None) -> float | None:
        """Seconds to wait when any key is locked out, else None."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        for key in keys:
            times = list(self._recent(key, now))
            if len(times) < self.max_failures:
                continue
            # Locked when the last `max_failures` failures fell within one window.
            if times[-1] - times[-self.max_failures] <= self.window:
                wait = max(wait, times[-1] + self.lockout - now)
        return wait if wait > 0 else None

    def failed(self, keys: list[str], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if len(self._failures) > 100_000:
            self._failures.clear()  # bounded memory under a spray of addresses
        for key in keys:
            self._failures.setdefault(key, deque(maxlen=self.max_failures * 4)).append(now)

    def succeeded(self, keys: list[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)
